#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages libkitd needs to build, test, bench and demo,
# if any is missing. Runs apt-get only when something is missing (as root,
# or through sudo when available). `make deps` runs it; KITD_NO_DEPS=1 makes
# `make check` and the others skip it.
#   build: build-essential pkg-config libcurl4-openssl-dev libjansson-dev
#          python3 (the manual pages)
#   tests: libcmocka-dev libmicrohttpd-dev zlib1g-dev (the Consul double)
#          clang libclang-rt-14-dev valgrind curl wrk openssl
#          mandoc (lint of the manual), cmake (the CMake package),
#          abigail-tools (the ABI check), prometheus (promtool checks the
#          metrics text)
set -e
need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in build-essential pkg-config libcurl4-openssl-dev libjansson-dev libcmocka-dev \
         libmicrohttpd-dev zlib1g-dev clang libclang-rt-14-dev valgrind curl wrk openssl python3 \
         dnsmasq-base etcd-server etcd-client mandoc cmake abigail-tools prometheus; do
  have_pkg "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps: installing:$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
