# Helpers for the lorem shell tests (sourced; kept in lib/ so that
# run-tests.sh, which runs tests/examples/*.sh, does not run it).
# start_bg NAME CMD...: runs CMD in the background with its stderr in
# $TMP/NAME.log; sets $PID_NAME. port_of NAME: waits for the logged port.
TMP=$(mktemp -d)
PIDS=""
cleanup() {
  # KEEP_LOGS=DIR keeps the logs of a run for a look afterwards
  [ -n "${KEEP_LOGS:-}" ] && cp -r "$TMP" "$KEEP_LOGS" 2>/dev/null
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
start_bg() {
  name=$1; shift
  # empty the log now: the child truncates it only once it runs, and
  # port_of must not read a former process's port under the same name
  : > "$TMP/$name.log"
  "$@" 2> "$TMP/$name.log" > "$TMP/$name.out" &
  PIDS="$PIDS $!"
  eval "PID_$name=$!"
}
port_of() { # NAME: the port=N of the first action=listen line, waiting up to 5 s
  i=0
  while [ $i -lt 100 ]; do
    p=$(sed -n 's/.*action=listen .*port=\([0-9]*\).*/\1/p' "$TMP/$1.log" | head -n 1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.05; i=$((i + 1))
  done
  echo "no listen line from $1:" >&2; cat "$TMP/$1.log" >&2
  return 1
}
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect STATUS BODY_REGEX curl-args...
expect() {
  want=$1; re=$2; shift 2
  got=$(curl -s -o "$TMP/body" -w '%{http_code}' "$@")
  body=$(cat "$TMP/body")
  [ "$got" = "$want" ] || fail "curl $*: status $got, want $want (body: $body)"
  printf '%s' "$body" | grep -Eq -- "$re" || fail "curl $*: body '$body' does not match /$re/"
  echo "ok $want $*" | cut -c1-160
}
