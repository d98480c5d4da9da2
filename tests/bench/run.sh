#!/bin/sh
# Run every benchmark binary of a build tree (tests/bench/bench_*); each
# prints its own "bench <name> <value> <unit>" lines (medians of 5 runs).
# Usage: tests/bench/run.sh BUILD_DIR
B=${1:-build}
export KITD_BUILD="$B"
rc=0
for b in "$B"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  "$b" || { echo "bench: $(basename "$b") failed (exit $?)" >&2; rc=1; }
done
exit $rc
