#!/bin/sh
# lorem-gateway and lorem-client over two lorem servers, with a static
# instance list: alternation, failover, errors, GET /metrics (checked by
# promtool).
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
start_bg s1 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -seed 1
start_bg s2 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -seed 2
P1=$(port_of s1) || exit 1
P2=$(port_of s2) || exit 1
# a port with nothing behind it: bind-and-release by a short-lived server
start_bg s3 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register
P3=$(port_of s3) || exit 1
kill "$PID_s3"; wait "$PID_s3" 2>/dev/null
I1=127.0.0.1:$P1; I2=127.0.0.1:$P2; I3=127.0.0.1:$P3

start_bg gw "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "$I1,$I2" \
  -attempt.timeout 500ms -timeout 2s
G=http://127.0.0.1:$(port_of gw) || exit 1
REQ='{"requestType":"word","min":4,"max":8}'

# alternation: one pipeline for the process, global round robin
for i in 1 2 3 4 5 6; do
  curl -s -D - -o /dev/null -XPOST -d "$REQ" "$G/sd-lorem" | tr -d '\r' | sed -n 's/^X-Upstream: //pi'
done > "$TMP/ups"
[ "$(sort -u "$TMP/ups" | wc -l)" = 2 ] || fail "not both upstreams: $(cat "$TMP/ups")"
[ "$(uniq "$TMP/ups" | wc -l)" = 6 ] || fail "upstreams do not alternate: $(cat "$TMP/ups")"
echo "ok alternation: $(tr '\n' ' ' < "$TMP/ups")"
expect 200 '^\{"message":"[a-z]+"\}$' -XPOST -d "$REQ" "$G/sd-lorem"
expect 200 '"message":"[A-Z]' -XPOST -d '{"requestType":"SENTENCE","min":5,"max":20}' "$G/sd-lorem"
expect 400 '"error":"invalid JSON' -XPOST -d '{nope' "$G/sd-lorem"
expect 400 '"error":"missing field' -XPOST -d '{"min":1,"max":2}' "$G/sd-lorem"
expect 400 '"error":".*must be an integer' -XPOST -d '{"requestType":"word","min":"1","max":2}' "$G/sd-lorem"
expect 400 '"error":".*negative' -XPOST -d '{"requestType":"word","min":-1,"max":2}' "$G/sd-lorem"
expect 400 '"error":".*limit' -XPOST -d '{"requestType":"word","min":1,"max":20}' "$G/sd-lorem"
expect 400 '"error":"unknown requestType' -XPOST -d '{"requestType":"poem","min":1,"max":2}' "$G/sd-lorem"
head -c 70000 /dev/zero > "$TMP/big"
expect 413 '"error"' -XPOST --data-binary @"$TMP/big" "$G/sd-lorem"
expect 405 '"error"' "$G/sd-lorem"
expect 404 '"error"' "$G/nope"
expect 200 '"status":true' "$G/health"

# lorem-client through the same static list
"$B/examples/lorem-client" -static "$I1,$I2" -n 4 -type word -min 4 -max 8 -upstream > "$TMP/cl" \
  || fail "lorem-client failed"
[ "$(wc -l < "$TMP/cl")" = 4 ] || fail "lorem-client printed $(wc -l < "$TMP/cl") lines"
[ "$(cut -f1 "$TMP/cl" | sort -u | wc -l)" = 2 ] || fail "client did not use both: $(cat "$TMP/cl")"
echo "ok lorem-client 4 calls"

# the same list named by a source string (file://), and a bad source
printf '%s\n%s\n' "$I1" "$I2" > "$TMP/lorem.list"
"$B/examples/lorem-client" -source "file://$TMP/lorem.list" -n 4 -upstream > "$TMP/cl2" \
  || fail "lorem-client -source file:// failed"
[ "$(cut -f1 "$TMP/cl2" | sort -u | wc -l)" = 2 ] || fail "-source: not both: $(cat "$TMP/cl2")"
"$B/examples/lorem-client" -source "gopher://x/y" -n 1 2> "$TMP/bad" && fail "a bad source was accepted"
grep -q "unknown scheme 'gopher'" "$TMP/bad" || fail "no reason for a bad source: $(cat "$TMP/bad")"
echo "ok lorem-client -source file://, bad source refused"

# failover: a dead instance in the list; every request still succeeds
start_bg gw2 "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "$I1,$I3" \
  -attempt.timeout 500ms -timeout 2s
G2=http://127.0.0.1:$(port_of gw2) || exit 1
for i in 1 2 3 4 5 6; do
  expect 200 '"message"' -XPOST -d "$REQ" "$G2/sd-lorem" > /dev/null
done
echo "ok failover over a dead instance"

# GET /metrics: Prometheus text that promtool accepts, counting the calls
# above, the retries off the dead instance and the watch.
command -v promtool >/dev/null || fail "promtool is missing (Debian: prometheus; make deps installs it)"
curl -s -D "$TMP/mh" -o "$TMP/metrics" "$G2/metrics" || fail "GET /metrics"
tr -d '\r' < "$TMP/mh" | grep -qi '^Content-Type: text/plain; version=0.0.4$' ||
  fail "/metrics Content-Type: $(cat "$TMP/mh")"
promtool check metrics < "$TMP/metrics" > "$TMP/promtool" 2>&1 ||
  fail "promtool rejected /metrics: $(cat "$TMP/promtool")"
grep -q '^kitd_calls_total{service="lorem"} 6$' "$TMP/metrics" || fail "calls: $(cat "$TMP/metrics")"
grep -Eq '^kitd_retries_total\{service="lorem"\} [1-9]' "$TMP/metrics" || fail "no retry counted"
grep -Eq "^kitd_instance_failures_total\{service=\"lorem\",instance=\"$I3\"\} [1-9]" \
  "$TMP/metrics" || fail "no failure of $I3 counted"
grep -q '^kitd_watch_up{watch="lorem"} 1$' "$TMP/metrics" || fail "watch not up"
grep -q '^kitd_call_duration_seconds_count{service="lorem"} 6$' "$TMP/metrics" ||
  fail "histogram count (every call timed: the gateway sets timeouts)"
expect 405 '"error"' -XPOST "$G2/metrics"
echo "ok GET /metrics ($(wc -l < "$TMP/metrics") lines, promtool clean)"
# lorem-server serves its (empty) registry too
curl -s -o "$TMP/smetrics" -w '%{http_code}' "http://127.0.0.1:$P1/metrics" | grep -q 200 ||
  fail "lorem-server GET /metrics"
promtool check metrics < "$TMP/smetrics" || fail "promtool rejected lorem-server's /metrics"
"$B/examples/lorem-client" -static "$I3,$I1" -n 5 -q || fail "client failover"

# kill one live server: the gateway fails over to the other
kill "$PID_s2"; wait "$PID_s2" 2>/dev/null
for i in 1 2 3 4; do
  expect 200 '"message"' -XPOST -d "$REQ" "$G/sd-lorem" > /dev/null
done
echo "ok failover after a server stopped"
# and kill the other: 502 with every attempt listed
kill "$PID_s1"; wait "$PID_s1" 2>/dev/null
expect 502 '"attempts":\[\{"instance":"127.0.0.1:[0-9]+","error":"ECONNECT"' -XPOST -d "$REQ" "$G/sd-lorem"
if "$B/examples/lorem-client" -static "$I1,$I2" -n 1 2> "$TMP/clerr"; then fail "client should fail"; fi
grep -q 'call failed: connection failed' "$TMP/clerr" || fail "client error text: $(cat "$TMP/clerr")"
echo "ok all down: 502 and client exit 1"

# nothing to call at all: 503, and the client gives up after -wait
start_bg gw3 "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static ""
G3=http://127.0.0.1:$(port_of gw3) || exit 1
expect 503 '^\{"error":"no endpoints available"\}$' -XPOST -d "$REQ" "$G3/sd-lorem"
if "$B/examples/lorem-client" -static "" -wait 200ms 2> "$TMP/clerr"; then fail "client should fail"; fi
grep -q 'no instance of lorem found' "$TMP/clerr" || fail "client error: $(cat "$TMP/clerr")"
echo "lorem-gateway: all checks passed"
