#!/bin/sh
# make demo: a Consul agent (CONSUL_HTTP_ADDR, else our Consul double), two
# lorem servers that register themselves, and the lorem gateway balancing
# across them. It shows the answers alternating, a server killed with
# SIGKILL in the middle of traffic without a failed request, and the server
# rejoining. Everything it starts runs on 127.0.0.1 and is stopped at the
# end, on Ctrl-C too. Last, kitd-gateway reaches the same servers by
# service name.
# Usage: examples/demo.sh BUILD_DIR
set -u
B=${1:-build}
. examples/demo-lib.sh

# --- 1. Consul ---
start_consul
say "Consul: $consul_kind"

# --- 2. two lorem servers ---
srvA=$(start_server a 127.0.0.1:0); pids="$pids $srvA"
srvB=$(start_server b 127.0.0.1:0); pids="$pids $srvB"
portA=$(server_port a); portB=$(server_port b)
say "two lorem servers: A on 127.0.0.1:$portA, B on 127.0.0.1:$portB (each registers itself as 'lorem')"
wait_log "$work/a.log" "action=register" 10 | sed 's/^/  A: /'
wait_log "$work/b.log" "action=register" 10 | sed 's/^/  B: /'

# --- 3. the gateway ---
start_gateway
say "lorem-gateway on $gw: one pipeline (Consul instancer, endpointer, round robin, retry) for its whole life"

wait_passing 2 15 || die "the two servers never became passing in Consul"
echo "  Consul (kitd-watch --passing --once lorem):"
"$B/examples/kitd-watch" --passing --once lorem | sed 's/^/    /'

request() { # prints "<status> <upstream>"
  curl -s -o "$work/last.json" -D "$work/last.h" -m 5 -X POST -H 'Content-Type: application/json' \
    -d '{"requestType":"word","min":3,"max":6}' "http://$gw/sd-lorem" > /dev/null
  st=$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$work/last.h")
  up=$(sed -n 's/^[Xx]-[Uu]pstream: *\([^[:space:]]*\).*/\1/p' "$work/last.h")
  echo "${st:-000} ${up:--}"
}
name_of() { case "$1" in *:$portA) echo A;; *:$portB) echo B;; *) echo "-";; esac; }

# The gateway's own watch follows Consul's within its rate limit: wait
# until its answers come from both servers before showing them.
i=0
while [ $i -lt 100 ]; do
  r1=$(request); r2=$(request)
  [ "$(name_of "${r1#* }")" != "$(name_of "${r2#* }")" ] && [ "${r1% *}" = 200 ] && [ "${r2% *}" = 200 ] && break
  sleep 0.1; i=$((i + 1))
done

# --- 4. alternation ---
say "six requests through the gateway: the answers alternate between the servers"
altA=0; altB=0
for i in 1 2 3 4 5 6; do
  r=$(request); st=${r% *}; up=${r#* }
  n=$(name_of "$up"); [ "$n" = A ] && altA=$((altA + 1)); [ "$n" = B ] && altB=$((altB + 1))
  printf '  %d: HTTP %s from %s (%s) %s\n' "$i" "$st" "$n" "$up" "$(cut -c1-60 "$work/last.json")"
done

# --- 5. failover under traffic ---
say "traffic at full speed; server A is killed with SIGKILL after 1 s"
traffic() { # seconds label -> counts into $work/<label>.txt
  end=$(($(date +%s) + $1)); : > "$work/$2.txt"
  while [ "$(date +%s)" -lt "$end" ]; do request >> "$work/$2.txt"; done
}
traffic 5 failover &
tpid=$!
sleep 1
kill -9 "$srvA"; killed_at=$(date +%s)
echo "  killed A (pid $srvA)"
wait_passing 1 30 && echo "  Consul marked A critical after ~$(( $(date +%s) - killed_at )) s: the watch now has 1 instance"
wait "$tpid"
fo_total=$(wc -l < "$work/failover.txt"); fo_fail=$(grep -vc '^200 ' "$work/failover.txt")
fo_A=$(grep -c ":$portA\$" "$work/failover.txt"); fo_B=$(grep -c ":$portB\$" "$work/failover.txt")
echo "  $fo_total requests during the failover, $fo_fail failed (retries moved each one off the dead server)"

# --- 6. rejoin ---
say "server A restarts on its port and rejoins"
srvA=$(start_server a2 "127.0.0.1:$portA"); pids="$pids $srvA"
wait_log "$work/a2.log" "action=register" 10 | sed 's/^/  A: /'
wait_passing 2 20 || die "A did not rejoin"
echo "  Consul passing set is back to 2"
traffic 2 rejoin
rj_total=$(wc -l < "$work/rejoin.txt"); rj_fail=$(grep -vc '^200 ' "$work/rejoin.txt")
rj_A=$(grep -c ":$portA\$" "$work/rejoin.txt"); rj_B=$(grep -c ":$portB\$" "$work/rejoin.txt")

# --- any service by name: kitd-gateway ---
"$B/examples/kitd-gateway" -listen 127.0.0.1:0 -consul.addr "$chost:$cport" -timeout 2s \
  > "$work/kgw.out" 2> "$work/kgw.log" &
pids="$pids $!"
l=$(wait_log "$work/kgw.log" "action=listen" 10) || die "kitd-gateway did not start: $(cat "$work/kgw.log")"
kgw="127.0.0.1:$(field "$l" port)"
say "kitd-gateway on $kgw: any service by name (METHOD /<service>/<path>), through a kitd_directory"
for req in "POST /lorem/lorem/word/4/8" "POST /lorem/lorem/sentence/3/5" "GET /nosuch/x" "GET /"; do
  m=${req%% *}; p=${req#* }
  out=$(curl -s -X "$m" -w ' -> %{http_code}' "http://$kgw$p")
  echo "  $m $p: $out"
done

say "summary"
printf '  %-22s %9s %7s %7s %7s\n' phase requests failed "to A" "to B"
printf '  %-22s %9s %7s %7s %7s\n' "alternation" 6 0 "$altA" "$altB"
printf '  %-22s %9s %7s %7s %7s\n' "A killed (SIGKILL)" "$fo_total" "$fo_fail" "$fo_A" "$fo_B"
printf '  %-22s %9s %7s %7s %7s\n' "A rejoined" "$rj_total" "$rj_fail" "$rj_A" "$rj_B"
ok=1
[ "$altA" = 3 ] && [ "$altB" = 3 ] || ok=0
[ "$fo_fail" = 0 ] && [ "$rj_fail" = 0 ] || ok=0
[ "$rj_A" -gt 0 ] && [ "$rj_B" -gt 0 ] || ok=0
if [ $ok = 1 ]; then echo; echo "demo: ok (alternation, zero failed requests through the failover, rejoin)"; exit 0; fi
echo; echo "demo: FAILED (see the table)"; exit 1
