#!/bin/sh
# Each public header compiles on its own, as C11 and as C++.
set -eu
B=${1:-build}
CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
for h in include/kitd/*.h; do
  name=$(basename "$h")
  printf '#include <kitd/%s>\n#include <kitd/%s>\nint main(void) { return 0; }\n' "$name" "$name" > "$tmp/t.c"
  cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -c "$tmp/t.c" -o "$tmp/t.o" || { echo "$name does not compile alone"; exit 1; }
  if command -v c++ >/dev/null; then
    cp "$tmp/t.c" "$tmp/t.cc"
    c++ -Wall -Wextra -Werror -Iinclude -c "$tmp/t.cc" -o "$tmp/t.o" || { echo "$name does not compile as C++"; exit 1; }
  fi
  n=$((n + 1))
done
echo "$n headers compile alone"
