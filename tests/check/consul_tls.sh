#!/bin/sh
# TLS to Consul verifies by default: the Consul double serves HTTPS with a
# certificate from a throwaway CA; kitd-watch (the library's Consul client)
# succeeds with that CA, and is refused with another CA, with a wrong server
# name, or with no CA at all; CONSUL_HTTP_SSL_VERIFY=false turns the check off.
set -u
B=${1:-build}
work=$(mktemp -d)
dpid=""
trap '[ -n "$dpid" ] && kill $dpid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
q() { openssl "$@" >/dev/null 2>&1 || fail "openssl $*"; }

cd "$work"
q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=kitd-test-ca
q req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other-ca
q req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > ext.cnf
q x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext.cnf
cd - >/dev/null

"$B/tests/consul-double" --listen 127.0.0.1:0 --tls-cert "$work/srv.pem" --tls-key "$work/srv.key" \
  > "$work/out" 2> "$work/err" &
dpid=$!
i=0; while [ ! -s "$work/out" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
addr=$(head -n 1 "$work/out")
[ -n "$addr" ] || fail "the double did not start with TLS: $(cat "$work/err")"
curl -s --cacert "$work/ca.pem" -X PUT -d '{"Name":"web","Address":"10.0.0.1","Port":80}' \
  "https://$addr/v1/agent/service/register" || fail "register over https"

watch() { env "$@" "$B/examples/kitd-watch" --once web > "$work/w.out" 2>&1; }
watch CONSUL_HTTP_ADDR="https://$addr" CONSUL_CACERT="$work/ca.pem" ||
  fail "right CA refused: $(cat "$work/w.out")"
grep -q "instances=10.0.0.1:80" "$work/w.out" || fail "no instance: $(cat "$work/w.out")"
echo "right CA: $(cat "$work/w.out")"

watch CONSUL_HTTP_ADDR="https://$addr" CONSUL_CACERT="$work/other.pem" &&
  fail "a wrong CA was accepted"
grep -q "level=error" "$work/w.out" || fail "no error line: $(cat "$work/w.out")"
echo "wrong CA: $(cat "$work/w.out")"

watch CONSUL_HTTP_ADDR="127.0.0.1:${addr##*:}" CONSUL_HTTP_SSL=true CONSUL_CACERT="$work/ca.pem" \
  CONSUL_TLS_SERVER_NAME=wrong.example && fail "a wrong server name was accepted"
echo "wrong server name: $(cat "$work/w.out")"

watch CONSUL_HTTP_ADDR="https://$addr" CONSUL_CACERT="$work/ca.pem" CONSUL_TLS_SERVER_NAME=localhost:8501 ||
  fail "the right server name (with a port suffix) was refused: $(cat "$work/w.out")"

watch CONSUL_HTTP_ADDR="https://$addr" && fail "an unknown CA was accepted by default"
echo "no CA given: $(cat "$work/w.out")"

watch CONSUL_HTTP_ADDR="https://$addr" CONSUL_CACERT="$work/other.pem" CONSUL_HTTP_SSL_VERIFY=false ||
  fail "CONSUL_HTTP_SSL_VERIFY=false still verified: $(cat "$work/w.out")"
echo "TLS: verified by default, wrong CA and wrong name refused, verify=false honoured"
