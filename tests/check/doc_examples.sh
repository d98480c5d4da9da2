#!/bin/sh
# The example of each API page (the ```c block after "## Example"), when it
# is a whole program, compiles against the public headers, links with the
# static library, and runs.
set -eu
B=${1:-build}
CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# A sanitizer tree's library needs the same -fsanitize flags at link time.
SAN=""
case "$(basename "$B")" in san-*) SAN="-fsanitize=$(basename "$B" | sed 's/^san-//; s/-/,/g')";; esac
n=0
for page in docs/api/*.md; do
  name=$(basename "$page" .md)
  awk '/^## Example/{e=1; next} e && /^```c/{c=1; next} c && /^```/{exit} c{print}' "$page" > "$tmp/$name.c"
  # Only whole programs are built; a page may show a fragment instead.
  grep -q 'int main(' "$tmp/$name.c" || continue
  $CC -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $SAN -Iinclude -o "$tmp/$name" "$tmp/$name.c" \
    "$B/libkitd.a" $(pkg-config --libs libcurl jansson 2>/dev/null) -lresolv -lpthread -lm ||
    { echo "$page: example does not build"; exit 1; }
  "$tmp/$name" > "$tmp/$name.out" 2>&1 || { echo "$page: example failed:"; cat "$tmp/$name.out"; exit 1; }
  n=$((n + 1))
done
echo "$n API examples build and run"
