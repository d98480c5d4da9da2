# Start the Consul double (sourced after lib/lorem.sh): sets CA (its
# host:port) and exports CONSUL_HTTP_ADDR; extra arguments go to the double.
start_double() {
  if [ ! -x "$B/tests/consul-double" ]; then echo "SKIP: no consul-double in $B"; exit 0; fi
  "$B/tests/consul-double" --listen 127.0.0.1:0 --min-interval 100 --no-stagger "$@" \
    > "$TMP/double.out" 2> "$TMP/double.log" &
  PIDS="$PIDS $!"
  i=0; while [ ! -s "$TMP/double.out" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  CA=$(head -n 1 "$TMP/double.out")
  [ -n "$CA" ] || fail "consul-double did not start: $(cat "$TMP/double.log")"
  export CONSUL_HTTP_ADDR="$CA"
}
# wait_registered NAME: until the lorem server NAME logged its registration
wait_registered() {
  i=0
  until grep -q 'action=register state=ok' "$TMP/$1.log"; do
    [ $i -lt 100 ] || fail "$1 did not register: $(cat "$TMP/$1.log")"
    sleep 0.05; i=$((i + 1))
  done
}
