#!/bin/sh
# The shared library carries the soname the version header promises.
set -eu
B=${1:-build}
so=$(sed -n 's/^#define KITD_SOVERSION \([0-9]*\).*/\1/p' include/kitd/version.h)
lib=$(ls "$B"/libkitd.so.*.*.* | head -n 1)
got=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$got" = "libkitd.so.$so" ] || { echo "soname is '$got', want libkitd.so.$so"; exit 1; }
[ -L "$B/libkitd.so.$so" ] && [ -L "$B/libkitd.so" ] || { echo "missing links"; exit 1; }
echo "soname $got"
