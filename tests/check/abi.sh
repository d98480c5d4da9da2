#!/bin/sh
# SPDX-License-Identifier: MIT
# The built shared library against the committed ABI baseline
# (abi/libkitd.abi, made by `make abi-baseline`): with the same soname, no
# function or variable may go and no type a public function reaches may
# change incompatibly. Added functions are fine. A new soname (a bumped
# KITD_SOVERSION) passes and asks for a new baseline. docs/abi.md is the
# policy.
set -u
B=${1:-build}
base=abi/libkitd.abi
command -v abidiff >/dev/null || { echo "abidiff is missing (Debian: abigail-tools; make deps installs it)"; exit 1; }
[ -f "$base" ] || { echo "no $base: run make abi-baseline"; exit 1; }
lib=$(ls "$B"/libkitd.so.*.*.* | head -n 1)
readelf -S "$lib" | grep -q '\.debug_info' ||
  { echo "$lib has no debug information (build with -g): cannot compare types"; exit 1; }
old_so=$(sed -n "1s/.*soname='\([^']*\)'.*/\1/p" "$base")
new_so=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
abidiff --no-added-syms --drop-private-types --headers-dir2 include/kitd \
  --suppressions abi/libkitd.abignore "$base" "$lib" > "$tmp/report" 2>&1
rc=$?
if [ $((rc & 3)) != 0 ]; then echo "abidiff failed (exit $rc):"; cat "$tmp/report"; exit 1; fi
added=$(abidiff --stat "$base" "$lib" 2>/dev/null | sed -n 's/^Functions changes summary:.* \([0-9][0-9]*\) Added.*/\1/p')
if [ "$rc" != 0 ]; then
  if [ "$old_so" != "$new_so" ]; then
    echo "ABI changed with a new soname ($old_so -> $new_so): allowed; run make abi-baseline"
    exit 0
  fi
  echo "incompatible ABI change with the same soname $new_so (docs/abi.md):"
  cat "$tmp/report"
  echo "Either keep the old call and type (add a new function instead), or bump"
  echo "KITD_SOVERSION in include/kitd/version.h and run make abi-baseline."
  exit 1
fi
echo "ABI of $new_so compatible with $base (${added:-0} functions added since)"
