#!/bin/sh
# Replay every fuzz target's seed corpus and saved regression inputs (crashes
# the fuzzer once found) through the target, in this build's flavour.
set -eu
B=${1:-build}
n=0
for t in "$B"/tests/fuzz/replay_*; do
  [ -x "$t" ] || continue
  name=${t##*/replay_}
  dirs=""
  for d in tests/fuzz/corpus/$name tests/fuzz/regressions/$name; do [ -d "$d" ] && dirs="$dirs $d"; done
  [ -n "$dirs" ] || { echo "$name: no corpus"; exit 1; }
  echo "$name: $("$t" $dirs | tail -n 1)"
  n=$((n + 1))
done
echo "$n fuzz targets replayed"
