#!/bin/sh
# lorem-server routes and bounds, over HTTP with the curl CLI.
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
start_bg srv "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -seed 1
P=$(port_of srv) || exit 1
U=http://127.0.0.1:$P

expect 200 '^\{"message":"[a-z]+"\}$' -XPOST "$U/lorem/word/5/10"
expect 200 '^\{"message":"[A-Z][a-z ,]*\."\}$' -XPOST "$U/lorem/sentence/5/20"
expect 200 '^\{"message":"[A-Z].*\."\}$' -XPOST "$U/lorem/PARAGRAPH/1/3"
expect 200 '"message"' -XPOST "$U/lorem/Sentence/20/5"
# equal ends: exactly that many words
curl -s -XPOST "$U/lorem/sentence/7/7" | sed 's/.*"message":"\(.*\)".*/\1/' > "$TMP/s"
[ "$(wc -w < "$TMP/s")" = 7 ] || fail "sentence 7/7 has $(wc -w < "$TMP/s") words"
curl -s -XPOST "$U/lorem/word/6/6" | grep -Eq '^\{"message":"[a-z]{6}"\}$' || fail "word 6/6"
# limits: 14 letters, 1000 words, 100 sentences
expect 200 '"message"' -XPOST "$U/lorem/word/14/14"
expect 200 '"message"' -XPOST "$U/lorem/sentence/1000/1000"
expect 200 '"message"' -XPOST "$U/lorem/paragraph/100/100"
expect 400 '"error":".*limit of 14' -XPOST "$U/lorem/word/1/15"
expect 400 '"error":".*limit of 1000' -XPOST "$U/lorem/sentence/1001/2"
expect 400 '"error":".*limit of 100 ' -XPOST "$U/lorem/paragraph/1/101"
expect 400 '"error":".*negative' -XPOST "$U/lorem/word/-1/3"
expect 400 '"error":".*not a number' -XPOST "$U/lorem/word/1/x"
expect 400 '"error":".*limit' -XPOST "$U/lorem/word/1/99999999999999999999999"
expect 400 '"error":"unknown type' -XPOST "$U/lorem/poem/1/3"
expect 404 '"error":"not found' -XPOST "$U/lorem/word/1"
expect 404 '"error":"not found' -XPOST "$U/nope"
expect 404 '"error"' "$U/"
expect 405 '"error":"method not allowed' "$U/lorem/word/1/2"
curl -s -D - -o /dev/null "$U/lorem/word/1/2" | grep -qi '^Allow: POST' || fail "no Allow header"
expect 405 '"error"' -XPOST "$U/health"
expect 200 '^\{"status":true\}$' "$U/health"
curl -s -D - -o /dev/null "$U/health" | grep -qi '^Content-Type: application/json' || fail "content type"
# oversized body and URL
head -c 70000 /dev/zero > "$TMP/big"
expect 413 '"error":"request body too large"' -XPOST --data-binary @"$TMP/big" "$U/lorem/word/1/2"
expect 414 '"error"' -XPOST "$U/$(head -c 3000 /dev/zero | tr '\0' a)"
# keep-alive: many requests over one connection (curl reuses it)
n=$(curl -s -XPOST $(for i in $(seq 50); do printf '%s ' "$U/lorem/word/3/5"; done) | grep -o '"message"' | wc -l)
[ "$n" = 50 ] || fail "keep-alive: $n of 50"
# SIGTERM: clean exit
kill "$PID_srv"; wait "$PID_srv"; rc=$?
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
grep -q 'action=stop' "$TMP/srv.log" || fail "no action=stop"
echo "lorem-server: all checks passed"
