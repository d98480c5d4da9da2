#!/bin/sh
# SPDX-License-Identifier: MIT
# Every symbol the shared library exports carries a LIBKITD_ version from
# libkitd.map, and no internal (kitd__) name gets through.
set -eu
B=${1:-build}
lib=$(ls "$B"/libkitd.so.*.*.* | head -n 1)
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}')
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
unversioned=$(echo "$syms" | grep -v '@@*LIBKITD_[0-9][0-9.]*$' || true)
if [ -n "$unversioned" ]; then echo "exported without a LIBKITD_ version:"; echo "$unversioned"; exit 1; fi
internal=$(echo "$syms" | grep '^kitd__' || true)
if [ -n "$internal" ]; then echo "internal symbols exported:"; echo "$internal"; exit 1; fi
nodes=$(echo "$syms" | sed 's/.*@@*//' | sort -u | tr '\n' ' ')
echo "$(echo "$syms" | wc -l) symbols, versions: $nodes"
