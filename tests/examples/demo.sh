#!/bin/sh
# `make demo` itself, as a test: alternation, zero failed requests through
# a SIGKILL failover, and the rejoin (the demo exits non-zero otherwise).
set -eu
B=${1:-build}
unset CONSUL_HTTP_ADDR || true
sh examples/demo.sh "$B"
