#!/bin/sh
# kitd-gateway against the Consul double: any service by name, with
# method, body, query, Content-Type and status passed through; JSON errors
# 400 (malformed path), 404 (no such service), 503 (every instance failed).
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
. "$(dirname "$0")/lib/double.sh"
start_double
start_bg s1 "$B/examples/lorem-server" -listen 127.0.0.1:0 -service words -check ttl -check.ttl 3s
start_bg s2 "$B/examples/lorem-server" -listen 127.0.0.1:0 -service words -check ttl -check.ttl 3s
wait_registered s1; wait_registered s2
# the double itself, registered as a service: an upstream that echoes
# methods, bodies and statuses of its own
CP=${CA##*:}
curl -sf -XPUT -d "{\"Name\":\"agent\",\"ID\":\"agent1\",\"Address\":\"127.0.0.1\",\"Port\":$CP}" \
  "http://$CA/v1/agent/service/register" || fail "cannot register the agent service"

start_bg gw "$B/examples/kitd-gateway" -listen 127.0.0.1:0 -consul.addr "$CA" -timeout 2s
G=http://127.0.0.1:$(port_of gw) || exit 1

expect 200 '^\{"message":"[a-z]+"\}$' -XPOST "$G/words/lorem/word/4/8"
expect 400 '"error":"unknown type' -XPOST "$G/words/lorem/poem/1/2"
expect 405 '"error"' "$G/words/lorem/word/4/8"
# PUT with a body and a query, then read it back through GET
st=$(curl -s -o "$TMP/b" -w '%{http_code}' -XPUT -H 'Content-Type: application/json' \
  -d '{"Name":"made-via-gateway","Port":1}' "$G/agent/v1/agent/service/register?replace-existing-checks=true")
[ "$st" = 200 ] || fail "PUT through the gateway: $st $(cat "$TMP/b")"
expect 200 '"made-via-gateway"' "$G/agent/v1/agent/services"
# an upstream 404 with its own text/plain type passes through
ct=$(curl -s -o "$TMP/b" -w '%{http_code} %{content_type}' "$G/agent/v1/nope")
case "$ct" in "404 text/plain"*) ;; *) fail "upstream status/type not passed: $ct";; esac
grep -q 'Invalid URL path' "$TMP/b" || fail "upstream body not passed: $(cat "$TMP/b")"
echo "ok upstream 404 text/plain passed through"
ct=$(curl -s -o /dev/null -w '%{content_type}' "$G/agent/v1/catalog/services")
case "$ct" in application/json*) ;; *) fail "content type $ct";; esac
echo "ok method, body, query, status and Content-Type pass through"

expect 404 '"error":.*"service":"nobody"' "$G/nobody/x"
expect 400 '"error":"malformed path' "$G/"
expect 400 '"error":"malformed path' "$G//x"
long=$(head -c 300 /dev/zero | tr '\0' a)
expect 400 '"error":"malformed path' "$G/$long/x"
expect 200 '"status":true' "$G/health"

# every instance dead but still registered: 503 with each attempt (a kept-alive
# connection to a killed server may end in a reset, EIO, rather than a refusal)
kill -9 "$PID_s1" "$PID_s2"
expect 503 '"attempts":\[\{"instance":"127.0.0.1:[0-9]+","error":"(ECONNECT|EIO)"' -XPOST "$G/words/lorem/word/4/8"
# the registry gone before a service was ever asked: 503, not 404
curl -s -XPUT "http://$CA/_double/fault?mode=down&paths=all" > /dev/null
expect 503 '"error"' "$G/never-asked/x"
echo "kitd-gateway: all checks passed"
