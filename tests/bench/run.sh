#!/bin/sh
# Run every benchmark of a build tree: the bench_* binaries, then the
# bench_*.sh scripts. Each prints "bench NAME VALUE UNIT" lines.
# Usage: tests/bench/run.sh BUILD_DIR
B=${1:-build}
export KITD_BUILD="$B"
for b in "$B"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  "$b"
done
for s in tests/bench/bench_*.sh; do
  [ -f "$s" ] || continue
  sh "$s" "$B"
done
