#!/bin/sh
# Run every benchmark of a build tree: the bench_* binaries, then the
# bench_*.sh scripts. Each prints "bench NAME VALUE UNIT" lines (medians of
# 5 runs). A failing benchmark is reported and makes the exit status 1.
# Usage: tests/bench/run.sh BUILD_DIR
B=${1:-build}
export KITD_BUILD="$B"
rc=0
for b in "$B"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  "$b" || { echo "bench: $(basename "$b") failed" >&2; rc=1; }
done
for s in tests/bench/bench_*.sh; do
  [ -f "$s" ] || continue
  sh "$s" "$B" || { echo "bench: $s failed" >&2; rc=1; }
done
exit $rc
