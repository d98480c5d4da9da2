#!/bin/sh
# Lorem benchmarks over two local lorem servers (static instance list):
#   lorem/client/cN   lorem-client's pipeline (kitd_http + round robin + retry)
#                     called in a loop from N C threads for $SECS seconds
#   lorem/gateway/cN  wrk with N connections against lorem-gateway
#   lorem/direct/wrk  wrk with 4 connections against one server, no libkitd
# Prints one "bench NAME X req/s" line each. Usage: bench_lorem.sh BUILD_DIR
set -u
B=${1:-build}
SECS=${KITD_BENCH_SECONDS:-5}
ST=${KITD_BENCH_SERVER_THREADS:-1}
. "$(dirname "$0")/../examples/lib/lorem.sh"
start_bg s1 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -threads "$ST"
start_bg s2 "$B/examples/lorem-server" -listen 127.0.0.1:0 -no-register -threads "$ST"
I="127.0.0.1:$(port_of s1),127.0.0.1:$(port_of s2)" || exit 1
cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"requestType":"word","min":5,"max":10}'
wrk.headers["Content-Type"] = "application/json"
LUA
rate_client() { # threads
  "$B/examples/lorem-client" -static "$I" -c "$1" -duration "${SECS}s" -q -type word -min 5 -max 10 \
    2>&1 | sed -n 's/.*rate=\([0-9]*\) req\/s.*/\1/p'
}
rate_wrk() { # connections url [script]
  wrk -t "$(( $1 < 2 ? 1 : 2 ))" -c "$1" -d "${SECS}s" ${3:+-s "$3"} "$2" 2>&1 |
    sed -n 's/^Requests\/sec: *\([0-9]*\).*/\1/p'
}
for c in 1 4; do
  echo "bench lorem/client/c$c $(rate_client $c) req/s"
done
start_bg gw "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -static "$I"
G=http://127.0.0.1:$(port_of gw)/sd-lorem || exit 1
for c in 1 4; do
  echo "bench lorem/gateway/c$c $(rate_wrk $c "$G" "$TMP/post.lua") req/s"
done
cat > "$TMP/direct.lua" <<'LUA'
wrk.method = "POST"
LUA
D="http://$(echo "$I" | cut -d, -f1)/lorem/word/5/10"
echo "bench lorem/direct/wrk $(rate_wrk 4 "$D" "$TMP/direct.lua") req/s"
