#!/bin/sh
# Load while a server is killed: the gateway under a bounded wrk load
# (LOAD_SECONDS, default 20 s, 8 connections) over two lorem servers; one is
# killed with SIGKILL after a quarter of the run and restarted at the half.
# No request may fail (non-2xx or socket error). Prints the p99 latency and
# the request rate as `bench` lines. Loopback only.
set -u
B=${1:-build}
secs=${LOAD_SECONDS:-20}
unset CONSUL_HTTP_ADDR || true
. examples/demo-lib.sh
command -v wrk >/dev/null || die "wrk is not installed (make check installs it)"

start_consul
srvA=$(start_server a 127.0.0.1:0); pids="$pids $srvA"
srvB=$(start_server b 127.0.0.1:0); pids="$pids $srvB"
portA=$(server_port a); portB=$(server_port b)
start_gateway
wait_passing 2 20 || die "the servers never became passing"
sleep 1.5 # the gateway's own watch catches up (rate limit of one poll a second)

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"requestType":"sentence","min":5,"max":20}'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t2 -c8 -d"${secs}s" --timeout 5s --latency -s "$work/post.lua" "http://$gw/sd-lorem" > "$work/wrk.txt" 2>&1 &
wrkpid=$!; pids="$pids $wrkpid"
sleep $((secs / 4))
kill -9 "$srvA"
echo "killed server A (127.0.0.1:$portA) at $((secs / 4)) s"
sleep $((secs / 4))
srvA=$(start_server a2 "127.0.0.1:$portA"); pids="$pids $srvA"
echo "restarted server A at $((secs / 2)) s"
wait "$wrkpid"
cat "$work/wrk.txt"
total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk.txt")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk.txt")
sockerr=$(sed -n 's/^ *Socket errors: *\(.*\)/\1/p' "$work/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$work/wrk.txt")
rejoined=$(grep -c "action=register state=ok" "$work/a2.log" 2>/dev/null || echo 0)
echo "bench load/failover/requests ${total:-0} requests"
echo "bench load/failover/failed ${non2xx:-0} requests"
echo "bench load/failover/p99 ${p99:-?} latency"
echo "bench load/failover/rate ${rps:-0} req/s"
[ -n "$total" ] && [ "$total" -gt 0 ] || die "wrk made no requests"
[ -z "$non2xx" ] || die "$non2xx requests failed"
[ -z "$sockerr" ] || die "socket errors: $sockerr"
[ "$rejoined" -ge 1 ] || die "server A did not register again"
echo "load failover: ok, no failed request"
