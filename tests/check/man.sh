#!/bin/sh
# SPDX-License-Identifier: MIT
# The manual: every KITD_API function declared in include/kitd has a
# section-3 page (generated from the headers by docs/man/mkman3.py), and
# every page, generated or written (docs/man/*.1), passes `mandoc -Tlint`
# with no message at all.
set -eu
B=${1:-build}
command -v mandoc >/dev/null || { echo "mandoc is missing (Debian: mandoc; make deps installs it)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
${PYTHON:-python3} docs/man/mkman3.py "$tmp/pages" include/kitd/*.h > /dev/null
cp docs/man/*.1 "$tmp/pages/"
missing=""
n=0
for f in $(grep -h -o '^KITD_API[^(]*(' include/kitd/*.h | sed 's/($//' | awk '{print $NF}' | tr -d '*'); do
  [ -s "$tmp/pages/$f.3" ] || missing="$missing $f"
  n=$((n + 1))
done
[ -z "$missing" ] || { echo "KITD_API functions without a manual page:$missing"; exit 1; }
[ -s "$tmp/pages/libkitd.3" ] || { echo "no libkitd.3"; exit 1; }
# mandoc resolves .Xr against the current folder: lint from inside it, so
# that a reference to one of our own pages counts as found.
out=$(cd "$tmp/pages" && mandoc -Tlint ./*.1 ./*.3 2>&1) || true
if [ -n "$out" ]; then echo "mandoc -Tlint:"; echo "$out" | head -n 40; exit 1; fi
# The build tree's pages (what `make install` installs) are the same.
if [ -d "$B/man/man3" ]; then
  diff -r -q -I "^\.Dd " "$B/man/man3" "$tmp/pages" -x '*.1' > "$tmp/diff" 2>&1 ||
    { echo "$B/man/man3 is stale (make man):"; cat "$tmp/diff"; exit 1; }
fi
echo "$n functions, $(ls "$tmp/pages" | wc -l) pages, mandoc -Tlint clean"
