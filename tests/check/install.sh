#!/bin/sh
# SPDX-License-Identifier: MIT
# `make install` into a staging tree, then build the README's example
# against it as a user would, through pkg-config and through CMake's
# find_package(libkitd CONFIG) (shared and static targets), and run it.
set -eu
B=${1:-build}
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
san=""; case "$B" in build/san-*) san=$(echo "$B" | sed 's|build/san-||; s|-|,|g');; esac
MAKEFLAGS= make -s --no-print-directory install DESTDIR="$stage" PREFIX=/usr ${san:+SANITIZE=$san} >/dev/null
v=$(sed -n 's/^#define KITD_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/kitd/version.h | paste -sd.)
so=$(sed -n 's/^#define KITD_SOVERSION \([0-9]*\).*/\1/p' include/kitd/version.h)
for f in usr/include/kitd/kitd.h usr/lib/libkitd.so.$v usr/lib/libkitd.so.$so usr/lib/libkitd.so \
         usr/lib/libkitd.a usr/lib/pkgconfig/libkitd.pc usr/lib/cmake/libkitd/libkitdConfig.cmake \
         usr/lib/cmake/libkitd/libkitdConfigVersion.cmake usr/bin/kitd-watch \
         usr/share/man/man1/kitd-watch.1 usr/share/man/man3/libkitd.3 \
         usr/share/man/man3/kitd_instancer_subscribe.3; do
  [ -e "$stage/$f" ] || { echo "missing after install: $f"; exit 1; }
done
# Nothing outside the stage's /usr, and no build-tree rpath in the tool.
[ "$(ls "$stage")" = usr ] || { echo "install wrote outside PREFIX: $(ls "$stage")"; exit 1; }
if readelf -d "$stage/usr/bin/kitd-watch" | grep -q 'R.*PATH'; then
  echo "the installed kitd-watch carries an rpath"; exit 1
fi
LD_LIBRARY_PATH="$stage/usr/lib" "$stage/usr/bin/kitd-watch" --version | grep -q "^kitd-watch (libkitd) $v$" ||
  { echo "installed kitd-watch --version"; exit 1; }
export PKG_CONFIG_PATH="$stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
flags=$(pkg-config --cflags --libs libkitd)
extra=""; [ -n "$san" ] && extra="-fsanitize=$san"
${CC:-cc} -std=c11 -Wall -Wextra -Werror $extra examples/readme/main.c $flags -o "$stage/readme"
out=$(LD_LIBRARY_PATH="$stage/usr/lib" "$stage/readme")
echo "$out"
# Round robin over two instances: four calls alternate, both instances seen
# (the starting one is random).
alternates() {
  [ "$(echo "$1" | sort -u | wc -l)" = 2 ] || { echo "expected two instances"; return 1; }
  [ "$(echo "$1" | sed -n 1p)" = "$(echo "$1" | sed -n 3p)" ] && [ "$(echo "$1" | sed -n 1p)" != "$(echo "$1" | sed -n 2p)" ] || { echo "not alternating"; return 1; }
}
alternates "$out" || exit 1
echo "installed and linked through pkg-config"

# CMake: the same program through find_package(libkitd CONFIG), once with
# the shared target and once with the static one.
if ! command -v cmake >/dev/null; then echo "cmake is missing (Debian: cmake; make deps installs it)"; exit 1; fi
mkdir -p "$stage/cm"
cat > "$stage/cm/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.13)
project(readme C)
find_package(libkitd $v CONFIG REQUIRED)
add_executable(readme_shared "$PWD/examples/readme/main.c")
target_link_libraries(readme_shared PRIVATE kitd::kitd)
add_executable(readme_static "$PWD/examples/readme/main.c")
target_link_libraries(readme_static PRIVATE kitd::kitd_static)
CMAKE
env -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_PATH cmake -S "$stage/cm" -B "$stage/cm/b" -DCMAKE_PREFIX_PATH="$stage/usr" -DCMAKE_C_STANDARD=11 \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $extra" > "$stage/cm/log" 2>&1 ||
  { cat "$stage/cm/log"; echo "cmake configure failed"; exit 1; }
cmake --build "$stage/cm/b" > "$stage/cm/log" 2>&1 || { cat "$stage/cm/log"; echo "cmake build failed"; exit 1; }
for t in shared static; do
  out2=$(LD_LIBRARY_PATH="$stage/usr/lib" "$stage/cm/b/readme_$t")
  alternates "$out2" || { echo "CMake ($t) build prints:"; echo "$out2"; exit 1; }
done
# The static program does not need libkitd.so; the shared one does.
readelf -d "$stage/cm/b/readme_static" | grep -q 'libkitd\.so' && { echo "kitd::kitd_static linked the .so"; exit 1; }
readelf -d "$stage/cm/b/readme_shared" | grep -q "libkitd\.so\.$so" || { echo "kitd::kitd did not link libkitd.so.$so"; exit 1; }
# An incompatible version request is refused.
sed -i "s/libkitd $v CONFIG/libkitd 99.0 CONFIG/" "$stage/cm/CMakeLists.txt"
if env -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_PATH cmake -S "$stage/cm" -B "$stage/cm/b2" -DCMAKE_PREFIX_PATH="$stage/usr" > "$stage/cm/log" 2>&1; then
  echo "find_package(libkitd 99.0) was accepted"; exit 1
fi
echo "installed and linked through CMake (kitd::kitd, kitd::kitd_static)"

# A multiarch LIBDIR: the .pc file and the CMake package follow it, and
# CMake finds the package there by itself.
arch=$(${CC:-cc} -print-multiarch 2>/dev/null || true)
if [ -n "$arch" ]; then
  ma="$stage/ma"
  MAKEFLAGS= make -s --no-print-directory install DESTDIR="$ma" PREFIX=/usr LIBDIR="/usr/lib/$arch" \
    ${san:+SANITIZE=$san} >/dev/null
  [ -e "$ma/usr/lib/$arch/libkitd.so.$v" ] && [ -e "$ma/usr/lib/$arch/cmake/libkitd/libkitdConfig.cmake" ] ||
    { echo "LIBDIR=/usr/lib/$arch not honoured"; exit 1; }
  grep -q "^libdir=/usr/lib/$arch\$" "$ma/usr/lib/$arch/pkgconfig/libkitd.pc" || { echo "libkitd.pc ignores LIBDIR"; exit 1; }
  sed -i "s/libkitd 99.0 CONFIG/libkitd $v CONFIG/" "$stage/cm/CMakeLists.txt"
  env -u PKG_CONFIG_SYSROOT_DIR -u PKG_CONFIG_PATH cmake -S "$stage/cm" -B "$stage/cm/b3" \
    -DCMAKE_PREFIX_PATH="$ma/usr" -DCMAKE_C_FLAGS="$extra" > "$stage/cm/log" 2>&1 &&
    cmake --build "$stage/cm/b3" > "$stage/cm/log" 2>&1 || { cat "$stage/cm/log"; echo "CMake with LIBDIR=/usr/lib/$arch failed"; exit 1; }
  alternates "$(LD_LIBRARY_PATH="$ma/usr/lib/$arch" "$stage/cm/b3/readme_shared")" || { echo "multiarch build"; exit 1; }
  # uninstall leaves no file behind.
  MAKEFLAGS= make -s --no-print-directory uninstall DESTDIR="$ma" PREFIX=/usr LIBDIR="/usr/lib/$arch" >/dev/null
  left=$(find "$ma" -type f -o -type l)
  [ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; exit 1; }
  echo "LIBDIR=/usr/lib/$arch: .pc and CMake package follow it; uninstall removes every file"
fi
