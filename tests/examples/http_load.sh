#!/bin/sh
# The example HTTP server under load, through lorem-gateway (static list,
# one lorem-server behind it), in each mode (-mode pool, -mode async), loopback
# only (-max.conns.per.addr 4096, since every client is 127.0.0.1):
#   - 1,000 concurrent kept-alive connections POST /sd-lorem for 3 s: no
#     socket error, every answer 200, and the gateway's thread count
#     (/proc/PID/task) stays at most cores + 8 all along;
#   - 100,000 connections opened and closed as fast as possible (some after
#     a request, some after half a head): the gateway keeps answering, and
#     its open descriptors (/proc/PID/fd) come back to the count before,
#     its RSS to within 8 MiB of it.
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
L=$B/tests/load/http_load
[ -x "$L" ] || fail "no $L (make check-build)"
N=${HTTP_LOAD_CHURN:-100000}
start_bg s1 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register
P1=$(port_of s1) || exit 1
# check_mode MODE: both checks on a gateway in MODE
check_mode() {
  mode=$1
  # every client here is 127.0.0.1: lift the per-address limit (256)
  start_bg "gw$mode" "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "127.0.0.1:$P1" \
    -max.conns.per.addr 4096 -mode "$mode"
  PG=$(port_of "gw$mode") || exit 1
  eval "GP=\$PID_gw$mode"
  cores=$(nproc)
  echo "-mode $mode"

  "$L" keepalive "$PG" 1000 3 "$GP" /sd-lorem '{"requestType":"word","min":4,"max":8}' > "$TMP/ka" ||
    fail "keep-alive load: $(cat "$TMP/ka")"
  cat "$TMP/ka"
  threads=$(sed -n 's/.*threads at most \([0-9]*\).*/\1/p' "$TMP/ka")
  [ "$threads" -le $((cores + 8)) ] || fail "$threads threads at 1000 connections, want <= $((cores + 8))"
  echo "ok 1000 kept-alive connections on $threads threads ($cores cores)"

  expect 200 '"status":true' "http://127.0.0.1:$PG/health" > /dev/null
  fds() { ls "/proc/$GP/fd" | wc -l; }
  rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$GP/status"; }
  sleep 0.5
  fd0=$(fds); rss0=$(rss)
  "$L" churn "$PG" "$N" || fail "churn"
  expect 200 '"status":true' "http://127.0.0.1:$PG/health" > /dev/null
  expect 200 '"message"' -XPOST -d '{"requestType":"word","min":4,"max":8}' "http://127.0.0.1:$PG/sd-lorem" > /dev/null
  i=0
  while [ "$(fds)" -gt "$fd0" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fd1=$(fds); rss1=$(rss)
  echo "descriptors $fd0 -> $fd1, RSS $rss0 kB -> $rss1 kB"
  [ "$fd1" -le "$fd0" ] || fail "descriptors did not come back: $fd0 before, $fd1 after"
  case "$B" in
  *san-*) echo "(RSS not checked under a sanitizer: it keeps freed memory in quarantine)" ;;
  *) [ "$rss1" -le $((rss0 + 8192)) ] || fail "RSS grew from $rss0 kB to $rss1 kB" ;;
  esac
  echo "ok $N connections opened and closed: still answering, descriptors and RSS back"
  kill "$GP"
  wait "$GP" 2> /dev/null
}
for m in pool async; do
  check_mode "$m"
done
echo "http load: all checks passed"
