#!/bin/sh
# ACL tokens: the Consul double with ACLs on; kitd-watch with the right
# token (from CONSUL_HTTP_TOKEN, or CONSUL_HTTP_TOKEN_FILE, which wins) sees
# the service; an unknown token gets a clear EACL error that never shows the
# token itself.
set -u
B=${1:-build}
work=$(mktemp -d)
dpid=""
trap '[ -n "$dpid" ] && kill $dpid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
good=7f3a9c1e-good-token-41d2
bad=2b8e6d0f-unknown-token-93ac
"$B/tests/consul-double" --listen 127.0.0.1:0 --acl-token "$good" > "$work/out" 2> "$work/err" &
dpid=$!
i=0; while [ ! -s "$work/out" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
addr=$(head -n 1 "$work/out")
[ -n "$addr" ] || fail "the double did not start"
st=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Consul-Token: $good" \
  -d '{"Name":"web","Address":"10.0.0.2","Port":81}' "http://$addr/v1/agent/service/register")
[ "$st" = 200 ] || fail "register with the token: $st"

watch() { env CONSUL_HTTP_ADDR="$addr" "$@" "$B/examples/kitd-watch" --once web > "$work/w.out" 2>&1; }
watch CONSUL_HTTP_TOKEN="$good" || fail "right token refused: $(cat "$work/w.out")"
grep -q "instances=10.0.0.2:81" "$work/w.out" || fail "no instance: $(cat "$work/w.out")"
echo "right token: $(cat "$work/w.out")"

watch CONSUL_HTTP_TOKEN="$bad" && fail "an unknown token was accepted"
grep -q "err=EACL" "$work/w.out" || fail "no EACL error: $(cat "$work/w.out")"
grep -q "ACL not found" "$work/w.out" || fail "no Consul text: $(cat "$work/w.out")"
grep -q "$bad" "$work/w.out" && fail "the token shows in the output"
echo "unknown token: $(cat "$work/w.out")"

printf '  %s\n' "$good" > "$work/token"
watch CONSUL_HTTP_TOKEN="$bad" CONSUL_HTTP_TOKEN_FILE="$work/token" ||
  fail "CONSUL_HTTP_TOKEN_FILE did not win: $(cat "$work/w.out")"
echo "ACL: right token works, unknown token is EACL without the token in sight, the token file wins"
