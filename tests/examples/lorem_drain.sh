#!/bin/sh
# Readiness and a graceful drain. The gateway's /health is 503 with a reason
# while it has no instance, 200 once it has one. Under a bounded wrk load
# (DRAIN_SECONDS, default 6 s, 8 connections) over two lorem servers, one
# server gets SIGTERM after a third of the run: it fails /health,
# deregisters, keeps serving through its grace period, finishes what is in
# flight and exits 0. No request may fail (non-2xx or socket error). A
# second SIGTERM during a drain exits at once. Loopback only.
set -u
B=${1:-build}
secs=${DRAIN_SECONDS:-6}
unset CONSUL_HTTP_ADDR || true
. examples/demo-lib.sh
command -v wrk >/dev/null || die "wrk is not installed (make check installs it)"

start_consul
start_gateway
# No instance yet: not ready, and the reason says what was looked for.
code=$(curl -s -o "$work/h0" -w '%{http_code}' "http://$gw/health")
[ "$code" = 503 ] || die "gateway /health with no instance: $code, want 503 ($(cat "$work/h0"))"
grep -q '"status":false,"reason":"0 passing instances of' "$work/h0" ||
  grep -q '"status":false,"reason":"' "$work/h0" || die "no reason in $(cat "$work/h0")"
echo "ok gateway not ready: $(cat "$work/h0")"

# Started from this shell (not in a $(...)), so that `wait` gets its status.
start_server a 127.0.0.1:0 > /dev/null; srvA=$!; pids="$pids $srvA"
srvB=$(start_server b 127.0.0.1:0); pids="$pids $srvB"
portA=$(server_port a); portB=$(server_port b)
wait_passing 2 20 || die "the servers never became passing"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$gw/health")" = 200 ]; do
  i=$((i + 1)); [ $i -lt 100 ] || die "the gateway never became ready"; sleep 0.1
done
echo "ok gateway ready"

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"requestType":"sentence","min":5,"max":20}'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t2 -c8 -d"${secs}s" --timeout 5s --latency -s "$work/post.lua" "http://$gw/sd-lorem" > "$work/wrk.txt" 2>&1 &
wrkpid=$!; pids="$pids $wrkpid"
sleep $((secs / 3))
kill -TERM "$srvA"
echo "SIGTERM to server A (127.0.0.1:$portA) at $((secs / 3)) s"
# While it drains, its /health fails (it still answers: the grace period).
sleep 0.3
code=$(curl -s -o "$work/hA" -w '%{http_code}' "http://127.0.0.1:$portA/health")
[ "$code" = 503 ] || die "draining server /health: $code, want 503"
grep -q '"reason":"draining"' "$work/hA" || die "draining /health body: $(cat "$work/hA")"
wait "$srvA"; rcA=$?
[ "$rcA" = 0 ] || die "server A exited $rcA after SIGTERM, want 0: $(tail -n 5 "$work/a.log")"
grep -q "action=drain step=done" "$work/a.log" || die "no drain line: $(tail -n 5 "$work/a.log")"
grep -q "action=deregister" "$work/a.log" || die "server A did not deregister"
wait "$wrkpid"
cat "$work/wrk.txt"
total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk.txt")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk.txt")
sockerr=$(sed -n 's/^ *Socket errors: *\(.*\)/\1/p' "$work/wrk.txt")
echo "bench drain/requests ${total:-0} requests"
echo "bench drain/failed ${non2xx:-0} requests"
[ -n "$total" ] && [ "$total" -gt 0 ] || die "wrk made no requests"
[ -z "$non2xx" ] || die "$non2xx requests failed"
[ -z "$sockerr" ] || die "socket errors: $sockerr"
echo "ok drain under load: $total requests, none failed"

# A second SIGTERM during the grace period exits at once (status 1).
start_server c 127.0.0.1:0 > /dev/null; srvC=$!; pids="$pids $srvC"
server_port c > /dev/null
kill -TERM "$srvC"; sleep 0.3; kill -TERM "$srvC"
t0=$(date +%s)
wait "$srvC"; rcC=$?
[ "$rcC" = 1 ] || die "second SIGTERM: exit $rcC, want 1"
[ $(( $(date +%s) - t0 )) -le 1 ] || die "second SIGTERM did not exit at once"
echo "ok second SIGTERM exits at once"
echo "lorem drain: ok"
