#!/bin/sh
# The gateway under many connections: lorem-gateway with a static list over
# one lorem-server, loopback, wrk POSTing /sd-lorem:
#   gateway/c8/rps         wrk -t2 -c8    requests per second
#   gateway/c1000/rps      wrk -t2 -c1000 requests per second
#   gateway/c1000/p99      wrk -t2 -c1000 --latency: 99th percentile, ms
#   gateway/threads/c1000  the gateway's threads (/proc/PID/task), the most
#                          seen during the c1000 run
#   gateway/c1000/cpu      CPU time (user + system, /proc/PID/stat) of the
#                          gateway per request in the c1000 run, us; a
#                          steadier figure than the rates on a shared machine
#   gateway/c1000/cpu_server  the same of the lorem-server
# Each run lasts KITD_BENCH_SECONDS (5).
#
# Several builds or settings can be measured in one alternating run, so
# that all see the same machine: KITD_BENCH_CONFIGS is a space-separated
# list of NAME=BUILD_DIR[,FLAG,FLAG...] (the flags go to lorem-gateway),
# each measured once per round in the order given, ROUNDS rounds, the
# median kept; the first config's lines are named plainly, the others'
# with /NAME appended. KITD_BENCH_BASE=DIR (the build tree of another
# commit) is short for KITD_BENCH_CONFIGS="new=BUILD_DIR base=DIR". ROUNDS
# (KITD_BENCH_ROUNDS) is 1 for one config, 2 by default for more.
# Usage: bench_gateway.sh BUILD_DIR
set -u
B=${1:-build}
SECS=${KITD_BENCH_SECONDS:-5}
BASE=${KITD_BENCH_BASE:-}
CONFIGS=${KITD_BENCH_CONFIGS:-new=$B${BASE:+ base=$BASE}}
n_configs=$(echo $CONFIGS | wc -w)
ROUNDS=${KITD_BENCH_ROUNDS:-$([ "$n_configs" -gt 1 ] && echo 2 || echo 1)}
command -v wrk > /dev/null || { echo "bench_gateway: no wrk" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
. "$(dirname "$0")/../examples/lib/lorem.sh"
cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"requestType":"word","min":5,"max":10}'
wrk.headers["Content-Type"] = "application/json"
LUA

# cpu_ticks PID: user + system time of the process, in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2> /dev/null || echo 0; }
TCK=$(getconf CLK_TCK)
# per_req TICKS REQUESTS: microseconds per request
per_req() { awk -v t="$1" -v n="$2" -v k="$TCK" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / k / n : 0) }'; }

# one_round TAG BUILD[,FLAG...]: start a server and a gateway of BUILD,
# measure, stop
one_round() {
  tag=$1; bd=${2%%,*}; gflags=""
  case "$2" in *,*) gflags=$(echo "${2#*,}" | tr ',' ' ') ;; esac
  start_bg "s$tag" "$bd/examples/lorem-server" -listen 127.0.0.1:0 -no-register
  sp=$(port_of "s$tag") || return 1
  # every wrk connection comes from 127.0.0.1: lift the per-address limit
  # where the build has one
  extra=""
  "$bd/examples/lorem-gateway" -help 2>&1 | grep -q max.conns.per.addr && extra="-max.conns.per.addr 4096"
  # shellcheck disable=SC2086
  start_bg "g$tag" "$bd/examples/lorem-gateway" -listen 127.0.0.1:0 -static "127.0.0.1:$sp" $extra $gflags
  gp=$(port_of "g$tag") || return 1
  eval "gpid=\$PID_g$tag; spid=\$PID_s$tag"
  url="http://127.0.0.1:$gp/sd-lorem"
  wrk -t2 -c8 -d"${SECS}s" -s "$TMP/post.lua" "$url" > "$TMP/w8" 2>&1
  rps8=$(sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p' "$TMP/w8")
  : > "$TMP/thr"
  gcpu0=$(cpu_ticks "$gpid"); scpu0=$(cpu_ticks "$spid")
  rm -f "$TMP/stop"
  ( while [ ! -e "$TMP/stop" ] && kill -0 "$gpid" 2> /dev/null; do
      ls "/proc/$gpid/task" 2> /dev/null | wc -l >> "$TMP/thr"; sleep 0.2
    done ) &
  sampler=$!
  wrk -t2 -c1000 -d"${SECS}s" --timeout 5s --latency -s "$TMP/post.lua" "$url" > "$TMP/w1000" 2>&1
  : > "$TMP/stop"
  gcpu1=$(cpu_ticks "$gpid"); scpu1=$(cpu_ticks "$spid")
  wait "$sampler" 2> /dev/null
  nreq=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$TMP/w1000")
  gcpu=$(per_req $((gcpu1 - gcpu0)) "${nreq:-0}"); scpu=$(per_req $((scpu1 - scpu0)) "${nreq:-0}")
  rps1000=$(sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p' "$TMP/w1000")
  p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
        else if (v ~ /ms$/) sub(/ms$/, "", v); else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.2f", v }' "$TMP/w1000")
  errs=$(sed -n 's/^ *Socket errors: *\(.*\)/\1/p' "$TMP/w1000")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$TMP/w1000")
  thr=$(sort -n "$TMP/thr" | tail -n 1)
  # a round with non-2xx answers: was the lorem-server still there?
  alive=up; kill -0 "$spid" 2> /dev/null || alive=gone
  echo "$tag ${rps8:-0} ${rps1000:-0} ${p99:-0} ${thr:-0} $gcpu $scpu errors=[${errs:-none}] non2xx=${non2xx:-0} server=$alive" >> "$TMP/rounds"
  kill "$gpid" "$spid"; wait "$gpid" "$spid" 2> /dev/null
}

: > "$TMP/rounds"
r=0
while [ $r -lt "$ROUNDS" ]; do
  for cf in $CONFIGS; do
    one_round "${cf%%=*}" "${cf#*=}" || exit 1
  done
  r=$((r + 1))
done
echo "# columns: config c8/rps c1000/rps c1000/p99 threads gateway-cpu-us/req server-cpu-us/req"
sed 's/^/# round: /' "$TMP/rounds"
# median (upper for an even count) of column COL over the rounds of TAG
med() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$TMP/rounds" | sort -n |
  awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }'; }
first=1
for cf in $CONFIGS; do
  tag=${cf%%=*}
  sfx=/$tag; [ $first = 1 ] && sfx=""
  first=0
  echo "bench gateway/c8/rps$sfx $(med "$tag" 2) req/s"
  echo "bench gateway/c1000/rps$sfx $(med "$tag" 3) req/s"
  echo "bench gateway/c1000/p99$sfx $(med "$tag" 4) ms"
  echo "bench gateway/threads/c1000$sfx $(med "$tag" 5) threads"
  echo "bench gateway/c1000/cpu$sfx $(med "$tag" 6) us"
  echo "bench gateway/c1000/cpu_server$sfx $(med "$tag" 7) us"
done
