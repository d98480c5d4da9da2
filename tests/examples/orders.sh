#!/bin/sh
# examples/orders against the Consul double while instances of "users" and
# "billing" come, go and get killed: no order may fail while one instance
# of each service lives.
set -u
B=${1:-build}
. "$(dirname "$0")/lib/lorem.sh"
. "$(dirname "$0")/lib/double.sh"
start_double
# A TTL of 4 s (heartbeats every 1.3 s): long enough that a loaded machine
# does not make a live instance critical, so only the kills below remove
# instances; a killed one stays "passing" until its TTL runs out, which the
# retries must cover.
server() { # NAME SERVICE
  start_bg "$1" "$B/examples/lorem-server" -listen 127.0.0.1:0 -service "$2" -check ttl \
    -check.ttl 4s -threads 2
  wait_registered "$1"
}
server u1 users; server u2 users; server b1 billing; server b2 billing

# 80 orders, one every 50 ms: about 4 s of traffic while the set changes
"$B/examples/orders" 80 50 > "$TMP/orders.out" 2> "$TMP/orders.err" &
ORD=$!
sleep 0.5
kill -9 "$PID_u1"                 # killed: still registered until its TTL runs out
sleep 0.5
server u3 users                   # a new one comes
kill "$PID_b1"                    # leaves cleanly: deregisters
sleep 0.5
server b3 billing
kill -9 "$PID_u2"                 # only u3 left
sleep 0.5
kill -9 "$PID_b2"                 # only b3 left
sleep 0.5
server u4 users
kill "$PID_u3"                    # only u4 left
wait "$ORD"; rc=$?
n=$(grep -c '^order [0-9]* user=' "$TMP/orders.out")
[ "$rc" = 0 ] || fail "orders failed (exit $rc): $(grep FAILED "$TMP/orders.out" | head -3) $(head -5 "$TMP/orders.err")"
[ "$n" = 80 ] || fail "$n orders of 80 went through"
echo "ok 80 orders, none failed, while 4 instances were killed and 3 came"

# every service gone: the order fails, and says why
kill "$PID_u4"; wait "$PID_u4" 2>/dev/null
if "$B/examples/orders" 1 0 > "$TMP/o2.out" 2> "$TMP/o2.err"; then fail "orders should fail with no users"; fi
grep -q 'orders: users: no endpoints available' "$TMP/o2.err" || fail "error text: $(cat "$TMP/o2.err")"
echo "ok no users: exit 1 with the reason"
