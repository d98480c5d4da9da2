#!/bin/sh
# The shared library exports only kitd_ names, and every KITD_API function
# declared in include/kitd has a symbol.
set -eu
B=${1:-build}
lib=$(ls "$B"/libkitd.so.*.*.* | head -n 1)
# Names carry their version (kitd_x@@LIBKITD_0.1, libkitd.map): drop it here;
# tests/check/symbol_versions.sh checks it.
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
bad=$(echo "$syms" | grep -v '^kitd_' | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' || true)
if [ -n "$bad" ]; then echo "symbols without the kitd_ prefix:"; echo "$bad"; exit 1; fi
missing=""
for f in $(grep -h -o '^KITD_API[^(]*(' include/kitd/*.h | sed 's/($//' | awk '{print $NF}' | tr -d '*'); do
  echo "$syms" | grep -qx "$f" || missing="$missing $f"
done
if [ -n "$missing" ]; then echo "declared KITD_API but not exported:$missing"; exit 1; fi
echo "exports: $(echo "$syms" | wc -l) symbols, all kitd_"
