#!/bin/sh
# Build each fuzz target with clang + libFuzzer (+ ASan/UBSan) and run it for
# N seconds on a copy of its seed corpus. New crashes are left in
# build/fuzz/<target>/; copy them into tests/fuzz/regressions/<target>/ once
# fixed, so that `make check` replays them.
# Usage: tests/fuzz/run.sh SECONDS
set -eu
secs=${1:-30}
out=build/fuzz
mkdir -p "$out"
deps="$(pkg-config --cflags --libs libcurl jansson libmicrohttpd) -lresolv -lpthread -lm"
libsrc=$(find lib -name '*.c' | sort)
exsrc=$(ls examples/lorem/*.c 2>/dev/null || true)
for f in tests/fuzz/fuzz_*.c; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .c | sed 's/^fuzz_//')
  bin="$out/fuzz_$name"
  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -Iinclude -Ilib -Iexamples $f $libsrc $exsrc $deps -o "$bin"
  mkdir -p "$out/$name/corpus"
  cp -r tests/fuzz/corpus/$name/. "$out/$name/corpus/" 2>/dev/null || true
  echo "== $name: ${secs}s"
  (cd "$out/$name" && "../fuzz_$name" -max_total_time="$secs" -print_final_stats=1 \
     -max_len=65536 corpus 2>&1 | grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|==.*ERROR|SUMMARY)|cov:' | tail -n 4)
done
