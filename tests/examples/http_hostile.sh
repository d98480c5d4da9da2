#!/bin/sh
# The example HTTP server against hostile clients, on all three programs
# (lorem-server, lorem-gateway, kitd-gateway; both gateways in both modes,
# -mode pool and -mode async), loopback only:
#   - paths are percent-decoded (a bad escape or %00: 400); answers carry
#     Date and Server, the 408 of the header timeout too;
#   - an oversized body gets 413, oversized headers 431, garbage 400, a
#     chunked body 411, HTTP/2 505: each with a JSON {"error": ...} body and
#     Connection: close; pipelined requests are answered in order;
#   - the per-address connection limit: 12 connections from 127.0.0.3 to a
#     server allowing 10 per address: exactly 10 get 200;
#   - 2,000 half-open requests (head never finished) from 127.0.0.2 to
#     lorem-gateway (-header.timeout 2s, each mode): all closed within 3 s
#     of their first byte, while GET /health from 127.0.0.1 every 20 ms gets
#     200 within 100 ms each.
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
L=$B/tests/load/http_load
[ -x "$L" ] || fail "no $L (make check-build)"
start_bg s1 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -max.conns.per.addr 10
P1=$(port_of s1) || exit 1
start_bg gw "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "127.0.0.1:$P1" \
  -header.timeout 2s -max.conns.per.addr 4096 -mode pool
PG=$(port_of gw) || exit 1
start_bg gwa "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "127.0.0.1:$P1" \
  -header.timeout 2s -max.conns.per.addr 4096 -mode async
PGA=$(port_of gwa) || exit 1
# no registry behind it: the server's own answers do not need one
start_bg kg "$B/examples/kitd-gateway" -listen 127.0.0.1:0 -consul.addr 127.0.0.1:1 -timeout 1s \
  -mode pool
PK=$(port_of kg) || exit 1
start_bg kga "$B/examples/kitd-gateway" -listen 127.0.0.1:0 -consul.addr 127.0.0.1:1 -timeout 1s \
  -mode async
PKA=$(port_of kga) || exit 1

# raw PORT STATUS ERROR_REGEX: send stdin, check the answer
raw() {
  "$L" raw "$1" > "$TMP/ans" || fail "http_load raw failed"
  tr -d '\r' < "$TMP/ans" > "$TMP/ans.txt"
  head -n 1 "$TMP/ans.txt" | grep -q "^HTTP/1.1 $2 " ||
    fail "port $1: want $2, got: $(head -c 300 "$TMP/ans.txt")"
  grep -qi '^Content-Type: application/json' "$TMP/ans.txt" || fail "port $1 $2: not JSON"
  grep -qi '^Connection: close' "$TMP/ans.txt" || fail "port $1 $2: no Connection: close"
  tail -n 1 "$TMP/ans.txt" | grep -Eq "^\{\"error\":\"$3" ||
    fail "port $1 $2: body $(tail -n 1 "$TMP/ans.txt")"
  echo "ok $1 $2 $(tail -n 1 "$TMP/ans.txt")"
}
for p in "$P1" "$PG" "$PGA" "$PK" "$PKA"; do
  printf 'POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\nxxxx' | raw "$p" 413 'request body too large'
  (printf 'GET /health HTTP/1.1\r\nHost: t\r\nX-Big: '; head -c 9000 /dev/zero | tr '\0' a
   printf '\r\n\r\n') | raw "$p" 431 'request header fields too large'
  printf '\026\003\001\000\245\001\000\000\241\003\003garbage\r\n\r\n' | raw "$p" 400 'malformed'
  printf 'GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n' | raw "$p" 400 'malformed header'
  printf 'POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | raw "$p" 411 'Transfer-Encoding'
  printf 'GET /health HTTP/2.0\r\nHost: t\r\n\r\n' | raw "$p" 505 'HTTP version'
  # pipelining: two requests in one write, two answers in order
  # (on kitd-gateway the first one is an upstream call: 503)
  printf 'GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' |
    "$L" raw "$p" | grep -ao 'HTTP/1.1 [0-9]*' | tr '\n' ' ' > "$TMP/pl"
  grep -Eqx 'HTTP/1.1 (404|503) HTTP/1.1 200 ' "$TMP/pl" || fail "pipelining on $p: $(cat "$TMP/pl")"
  echo "ok $p pipelined answers in order"
done
# an oversized body sent whole by curl still gets its answer
head -c 70000 /dev/zero > "$TMP/big"
for p in "$PG" "$PGA"; do
  expect 413 '"error":"request body too large"' -XPOST --data-binary @"$TMP/big" "http://127.0.0.1:$p/sd-lorem"
  expect 413 '"error":"request body too large"' -H 'Expect: 100-continue' -XPOST --data-binary @"$TMP/big" "http://127.0.0.1:$p/sd-lorem"
  expect 200 '"message"' -H 'Expect: 100-continue' -XPOST -d '{"requestType":"word","min":4,"max":8}' "http://127.0.0.1:$p/sd-lorem"
done
# kitd-gateway with its registry unreachable: a call ends in 503 with JSON
for p in "$PK" "$PKA"; do
  expect 503 '"error":' "http://127.0.0.1:$p/users/x"
done

# paths are percent-decoded before routing; a bad escape is 400
expect 200 '"message"' -XPOST "http://127.0.0.1:$P1/lorem/%77ord/%31/2"
printf 'POST /lorem/word/%%zz/2 HTTP/1.1\r\nHost: t\r\n\r\n' | raw "$P1" 400 'malformed percent-encoding'
printf 'GET /he%%00alth HTTP/1.1\r\nHost: t\r\n\r\n' | raw "$PG" 400 'malformed percent-encoding'
# every answer has a Date and a Server header
curl -s -D "$TMP/hdr" -o /dev/null "http://127.0.0.1:$PG/health"
grep -Eqi '^Date: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT' "$TMP/hdr" || fail "no Date: $(cat "$TMP/hdr")"
grep -qi '^Server: lorem-gateway' "$TMP/hdr" || fail "no Server: $(cat "$TMP/hdr")"
# and so has a 408 written straight to the socket at the header timeout
printf 'GET /health HTTP/1.1\r\nHo' | raw "$PG" 408 'request not complete'
grep -Eqi '^Date: [A-Z][a-z]{2}, ' "$TMP/ans.txt" || fail "408 without Date: $(cat "$TMP/ans.txt")"
grep -qi '^Server: lorem-gateway' "$TMP/ans.txt" || fail "408 without Server: $(cat "$TMP/ans.txt")"
echo "ok percent-decoded paths, Date and Server headers"

"$L" peraddr "$P1" 12 127.0.0.3 10 || fail "per-address limit"
"$L" peraddr "$P1" 5 127.0.0.4 5 || fail "per-address limit counted across addresses"

"$L" halfopen "$PG" 2000 127.0.0.2 3000 || fail "half-open connections"
expect 200 '"status":true' "http://127.0.0.1:$PG/health"
"$L" halfopen "$PGA" 2000 127.0.0.2 3000 || fail "half-open connections (-mode async)"
expect 200 '"status":true' "http://127.0.0.1:$PGA/health"
echo "http hostile clients: all checks passed"
