#!/bin/sh
# `make install` into a staging tree, then build the README's example
# against it through pkg-config, as a user would, and run it.
set -eu
B=${1:-build}
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
san=""; case "$B" in build/san-*) san=$(echo "$B" | sed 's|build/san-||; s|-|,|g');; esac
make -s --no-print-directory install DESTDIR="$stage" PREFIX=/usr ${san:+SANITIZE=$san} >/dev/null
for f in usr/include/kitd/kitd.h usr/lib/libkitd.so.0.1.0 usr/lib/libkitd.so.0 usr/lib/libkitd.so usr/lib/libkitd.a usr/lib/pkgconfig/libkitd.pc; do
  [ -e "$stage/$f" ] || { echo "missing after install: $f"; exit 1; }
done
export PKG_CONFIG_PATH="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
flags=$(pkg-config --cflags --libs libkitd)
extra=""; [ -n "$san" ] && extra="-fsanitize=$san"
${CC:-cc} -std=c11 -Wall -Wextra -Werror $extra examples/readme/main.c $flags -o "$stage/readme"
out=$(LD_LIBRARY_PATH="$stage/usr/lib" "$stage/readme")
echo "$out"
# Round robin over two instances: four calls alternate, both instances seen.
[ "$(echo "$out" | sort -u | wc -l)" = 2 ] || { echo "expected two instances"; exit 1; }
[ "$(echo "$out" | sed -n 1p)" = "$(echo "$out" | sed -n 3p)" ] && [ "$(echo "$out" | sed -n 1p)" != "$(echo "$out" | sed -n 2p)" ] || { echo "not alternating"; exit 1; }
echo "installed and linked through pkg-config"
