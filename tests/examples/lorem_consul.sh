#!/bin/sh
# The whole lorem-consul loop against the Consul double: two lorem servers
# register themselves (one HTTP check, one TTL check), the gateway and the
# client find them through Consul, and a server that stops deregisters and
# drops out of the rotation.
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
if [ ! -x "$B/tests/consul-double" ]; then echo "SKIP: no consul-double in $B"; exit 0; fi
"$B/tests/consul-double" --listen 127.0.0.1:0 --min-interval 100 --no-stagger > "$TMP/double.out" 2> "$TMP/double.log" &
PIDS="$PIDS $!"
i=0; while [ ! -s "$TMP/double.out" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
CA=$(head -n 1 "$TMP/double.out"); CP=${CA##*:}
[ -n "$CP" ] || fail "consul-double did not start: $(cat "$TMP/double.log")"
C="-consul.addr 127.0.0.1 -consul.port $CP"

start_bg s1 "$B/examples/lorem-server" $C -listen 127.0.0.1:0 -check http -check.interval 200ms
start_bg s2 "$B/examples/lorem-server" -consul.addr=127.0.0.1 --consul.port "$CP" -listen 127.0.0.1:0 -check ttl -check.ttl 3s
P1=$(port_of s1) || exit 1
P2=$(port_of s2) || exit 1
i=0
until grep -q 'action=register state=ok' "$TMP/s1.log" && grep -q 'action=register state=ok' "$TMP/s2.log"; do
  [ $i -lt 100 ] || fail "servers did not register: $(cat "$TMP/s1.log" "$TMP/s2.log")"
  sleep 0.05; i=$((i + 1))
done
curl -s "http://$CA/v1/agent/services" > "$TMP/svcs"
grep -q "\"lorem-127.0.0.1-$P1\"" "$TMP/svcs" || fail "no stable ID lorem-127.0.0.1-$P1 in $(cat "$TMP/svcs")"
grep -q '"ru-rocker"' "$TMP/svcs" || fail "no ru-rocker tag"
echo "ok both registered"
# both passing (the HTTP check needs one run)
i=0
until [ "$(curl -s "http://$CA/v1/health/service/lorem?passing=1" | grep -o '"ServiceID": *"lorem-[^"]*"' | sort -u | wc -l)" = 2 ]; do
  [ $i -lt 100 ] || fail "not both passing"
  sleep 0.05; i=$((i + 1))
done
echo "ok both passing"

start_bg gw "$B/examples/lorem-gateway" $C -listen 127.0.0.1:0 -attempt.timeout 500ms -timeout 2s
G=http://127.0.0.1:$(port_of gw)/sd-lorem || exit 1
REQ='{"requestType":"word","min":4,"max":8}'
i=0
until curl -s -o /dev/null -w '%{http_code}' -XPOST -d "$REQ" "$G" | grep -q 200; do
  [ $i -lt 100 ] || fail "gateway never served"
  sleep 0.05; i=$((i + 1))
done
for i in 1 2 3 4 5 6; do
  curl -s -D - -o /dev/null -XPOST -d "$REQ" "$G" | tr -d '\r' | sed -n 's/^X-Upstream: //pi'
done > "$TMP/ups"
[ "$(sort -u "$TMP/ups" | wc -l)" = 2 ] || fail "not both upstreams: $(cat "$TMP/ups")"
[ "$(uniq "$TMP/ups" | wc -l)" = 6 ] || fail "no alternation: $(cat "$TMP/ups")"
echo "ok gateway alternates through Consul: $(tr '\n' ' ' < "$TMP/ups")"
"$B/examples/lorem-client" $C -n 3 -type sentence -min 3 -max 6 > "$TMP/cl" || fail "client via Consul"
[ "$(wc -l < "$TMP/cl")" = 3 ] || fail "client printed $(wc -l < "$TMP/cl") lines"
echo "ok lorem-client via Consul"

# stop s1: it deregisters, and the gateway keeps serving from s2 only
kill "$PID_s1"; wait "$PID_s1"
grep -q 'action=deregister' "$TMP/s1.log" || fail "no action=deregister in s1's log"
curl -s "http://$CA/v1/agent/services" | grep -q "lorem-127.0.0.1-$P1" && fail "s1 still registered"
sleep 0.3
for i in 1 2 3 4; do
  curl -s -D - -o /dev/null -XPOST -d "$REQ" "$G" | tr -d '\r' | sed -n 's/^X-Upstream: //pi'
done > "$TMP/ups2"
[ "$(sort -u "$TMP/ups2")" = "127.0.0.1:$P2" ] || fail "after s1 left: $(cat "$TMP/ups2")"
echo "ok after deregistration only s2 serves"
echo "lorem-consul: all checks passed"
