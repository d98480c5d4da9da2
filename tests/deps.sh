#!/bin/sh
# Install the Debian packages libkitd needs to build, test, bench and demo,
# if any is missing. Runs apt-get only when something is missing (as root,
# or through sudo when available).
set -e
need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in build-essential pkg-config libcurl4-openssl-dev libjansson-dev libcmocka-dev \
         libmicrohttpd-dev clang libclang-rt-14-dev valgrind curl wrk openssl python3 \
         dnsmasq-base etcd-server etcd-client; do
  have_pkg "$p" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps: installing:$need"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
