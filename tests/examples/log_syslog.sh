#!/bin/sh
# SPDX-License-Identifier: MIT
# The syslog adapter example: one record reaches syslog(3) as one logfmt
# message (LOG_PERROR copies it to stderr, which is what is checked).
set -u
B=${1:-build}
out=$("$B/examples/log-syslog" kitd-test 2>&1) || { echo "log-syslog failed: $out"; exit 1; }
echo "$out" | grep -Eq '^kitd-test(\[[0-9]+\])?: ts=[0-9T:.-]+Z level=warn component=endpointer msg="factory failed; instance skipped" instance=10.0.0.7:8080$' ||
  { echo "unexpected syslog line: $out"; exit 1; }
echo "ok log-syslog: $out"
