#!/bin/sh
# Run every test binary and check script of a build tree; print one result
# line per test and a closing "N passed, N failed" line.
# Usage: tests/run-tests.sh BUILD_DIR   (KITD_VALGRIND=1: under memcheck)
B=${1:-build}
export KITD_BUILD="$B"
pass=0; fail=0; failed=""
scale=${KITD_TEST_TIMEOUT_SCALE:-1}
[ -n "$KITD_VALGRIND" ] && scale=$((scale * 10))
case "$B" in *san-thread*|*san-address*) scale=$((scale * 3));; esac
export KITD_TEST_TIMEOUT_SCALE=$scale
run() { # name, timeout seconds, command...
  name=$1; t=$(( $2 * scale )); shift 2
  log="$B/test-logs/$(echo "$name" | tr '/' '_').log"
  mkdir -p "$B/test-logs"
  if timeout -k 5 "$t" "$@" > "$log" 2>&1; then
    pass=$((pass + 1)); echo "PASS $name"
  else
    rc=$?
    fail=$((fail + 1)); failed="$failed $name"
    echo "FAIL $name (exit $rc); last lines of $log:"; tail -n 25 "$log" | sed 's/^/    /'
  fi
}
VG=""
if [ -n "$KITD_VALGRIND" ]; then
  # --fair-sched: valgrind runs one thread at a time, and by default may
  # hand its lock to the same thread again and again; threads contending
  # for one mutex (test_directory's evictions) then starve for seconds.
  VG="valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect"
fi
# Script checks (symbols, soname, headers): not under valgrind.
for s in tests/check/*.sh; do
  [ -f "$s" ] || continue
  [ -n "$KITD_VALGRIND" ] && continue
  run "check/$(basename "$s" .sh)" 120 sh "$s" "$B"
done
for t in $(find "$B/tests/unit" "$B/tests/integration" -type f -perm -u+x -name 'test_*' 2>/dev/null | sort); do
  name=${t#$B/tests/}
  run "$name" 120 $VG "$t"
done
for s in tests/examples/*.sh; do
  [ -f "$s" ] || continue
  [ -n "$KITD_VALGRIND" ] && continue
  run "examples/$(basename "$s" .sh)" 180 sh "$s" "$B"
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
