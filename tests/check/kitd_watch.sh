#!/bin/sh
# SPDX-License-Identifier: MIT
# kitd-watch, the installed tool, follows the GNU command-line conventions:
# --opt=value and --opt value, `--` ends the options, an unknown option is
# named on stderr with exit 2, --help on stdout with exit 0, --version,
# --wait DURATION; diagnostics on stderr, the set on stdout. --verbose shows
# each instance's weight, status and zone, read from the Consul double.
# SOURCE may be a source string (consul://, file://; unknown scheme: exit 2).
set -u
B=${1:-build}
W="$B/bin/kitd-watch"
[ -x "$W" ] || { echo "no $W"; exit 1; }
export LD_LIBRARY_PATH="$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work=$(mktemp -d)
dpid=""
trap '[ -n "$dpid" ] && kill $dpid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
n=0
# run EXPECTED_STATUS ARGS...: stdout in $work/o, stderr in $work/e.
run() {
  want=$1; shift
  "$W" "$@" > "$work/o" 2> "$work/e"; got=$?
  [ "$got" = "$want" ] || fail "kitd-watch $*: exit $got, want $want; stderr: $(cat "$work/e")"
  n=$((n + 1))
}

run 0 --help
grep -q '^Usage: kitd-watch' "$work/o" || fail "--help: no usage on stdout"
[ -s "$work/e" ] && fail "--help wrote to stderr"
for opt in tag passing all dc wait once verbose debug help version; do
  grep -q -- "--$opt" "$work/o" || fail "--help does not list --$opt"
  grep -q "Fl -$opt" docs/man/kitd-watch.1 || fail "kitd-watch.1 does not document --$opt"
done
run 0 -h
grep -q '^Usage:' "$work/o" || fail "-h: no usage"

v=$(sed -n 's/^#define KITD_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/kitd/version.h | paste -sd.)
run 0 --version
grep -q "^kitd-watch (libkitd) $v\$" "$work/o" || fail "--version: $(cat "$work/o"), want $v"

run 2 --bogus web
grep -q -- "--bogus" "$work/e" || fail "unknown option not named: $(cat "$work/e")"
[ -s "$work/o" ] && fail "usage error wrote to stdout"
run 2 -q web
grep -q -- "-- 'q'" "$work/e" || fail "unknown short option not named: $(cat "$work/e")"
run 2
grep -q "missing SOURCE" "$work/e" || fail "no SOURCE: $(cat "$work/e")"
run 2 web api
grep -q "unexpected argument 'api'" "$work/e" || fail "two services: $(cat "$work/e")"
run 2 --tag
grep -q -- "--tag" "$work/e" || fail "missing value not named: $(cat "$work/e")"
for bad in abc 10x -5 0 0s 1.5s ''; do
  run 2 --once --wait="$bad" web
  grep -q "invalid duration" "$work/e" || fail "--wait=$bad: $(cat "$work/e")"
done

# Errors go to stderr, with exit 1: nothing listens on port 1.
CONSUL_HTTP_ADDR=127.0.0.1:1 run 1 --once web
grep -q "level=error service=web err=ECONNECT" "$work/e" || fail "no error on stderr: $(cat "$work/e")"
[ -s "$work/o" ] && fail "the error went to stdout"

"$B/tests/consul-double" --listen 127.0.0.1:0 > "$work/addr" 2> "$work/derr" &
dpid=$!
i=0; while [ ! -s "$work/addr" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
addr=$(head -n 1 "$work/addr")
[ -n "$addr" ] || fail "the double did not start"
export CONSUL_HTTP_ADDR="$addr"
reg() {
  st=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -d "$1" "http://$addr/v1/agent/service/register")
  [ "$st" = 200 ] || fail "register $1: $st"
}
reg '{"ID":"web-1","Name":"web","Address":"10.0.0.1","Port":80,"Tags":["v2"],"Weights":{"Passing":3,"Warning":1},"Meta":{"zone":"eu-1"}}'
reg '{"ID":"web-2","Name":"web","Address":"10.0.0.2","Port":80}'
reg '{"ID":"odd","Name":"--all","Address":"10.0.0.9","Port":9}'

run 0 --once web
grep -q "service=web count=2 instances=10.0.0.1:80,10.0.0.2:80$" "$work/o" || fail "--once: $(cat "$work/o")"
[ "$(wc -l < "$work/o")" = 1 ] || fail "--once without --verbose: one line, got $(cat "$work/o")"
# Both spellings of a value, short options, and options after SERVICE.
for form in "--tag=v2" "--tag v2" "-t v2" "-tv2"; do
  # shellcheck disable=SC2086
  run 0 --once $form web
  grep -q "count=1 instances=10.0.0.1:80$" "$work/o" || fail "$form: $(cat "$work/o")"
done
run 0 web --once --tag v2
grep -q "count=1 instances=10.0.0.1:80$" "$work/o" || fail "options after SERVICE: $(cat "$work/o")"
run 0 --once --wait=10s web
run 0 --once --wait 500ms --dc=dc1 web
run 0 --once --wait 1m30s --all web
# `--` ends the options: "--all" is then a service name.
run 0 --once -- --all
grep -q "service=--all count=1 instances=10.0.0.9:9$" "$work/o" || fail "after --: $(cat "$work/o")"
run 0 --once --verbose web
grep -q "instance=10.0.0.1:80 weight=3 status=passing zone=eu-1$" "$work/o" || fail "--verbose: $(cat "$work/o")"
grep -q "instance=10.0.0.2:80 weight=1 status=passing zone=\"\"$" "$work/o" || fail "--verbose: $(cat "$work/o")"
[ "$(wc -l < "$work/o")" = 3 ] || fail "--verbose: a line per instance: $(cat "$work/o")"
[ -s "$work/e" ] && fail "a good lookup wrote to stderr: $(cat "$work/e")"

# A source string (source.h): consul://HOST:PORT/SERVICE?tag=T, file:///PATH;
# an unknown scheme or a source that does not parse is a usage error.
run 0 --once "consul://$addr/web?tag=v2"
grep -q "source=\"\?consul://$addr/web?tag=v2\"\? count=1 instances=10.0.0.1:80$" "$work/o" ||
  fail "consul:// source: $(cat "$work/o")"
printf '10.0.0.7:70 4\n# a comment\n10.0.0.8:80\n' > "$work/fleet.list"
run 0 --once --verbose "file://$work/fleet.list"
grep -q "count=2 instances=10.0.0.7:70,10.0.0.8:80$" "$work/o" || fail "file:// source: $(cat "$work/o")"
grep -q "instance=10.0.0.7:70 weight=4 status=passing" "$work/o" || fail "file:// --verbose: $(cat "$work/o")"
run 1 --once "file://$work/missing.list"
grep -q "level=error source=.*err=" "$work/e" || fail "missing file: $(cat "$work/e")"
[ -s "$work/o" ] && fail "missing file wrote to stdout"
run 2 --once "http://$addr/web"
grep -q "unknown scheme 'http'" "$work/e" || fail "unknown scheme: $(cat "$work/e")"
[ -s "$work/o" ] && fail "unknown scheme wrote to stdout"
run 2 --once "consul://nohostport/web"
grep -q "HOST:PORT" "$work/e" || fail "bad consul source: $(cat "$work/e")"

# The watch: first set on stdout, then SIGTERM ends it with status 0.
"$W" --wait=1s -v web > "$work/o" 2> "$work/e" &
wpid=$!
i=0; while ! grep -q "count=2" "$work/o" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM $wpid; wait $wpid; st=$?
[ "$st" = 0 ] || fail "watch stopped by SIGTERM: exit $st"
grep -q "zone=eu-1" "$work/o" || fail "watch --verbose: $(cat "$work/o")"
# --stats: on exit, the requests a minute and the last error of the watch.
printf '10.0.0.7:70\n' > "$work/s.list"
"$W" --stats "file://$work/s.list" > "$work/o" 2> "$work/e" &
wpid=$!
i=0; while ! grep -q "count=1" "$work/o" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
rm "$work/s.list"
i=0; while ! grep -q "err=" "$work/e" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -TERM $wpid; wait $wpid; st=$?
[ "$st" = 0 ] || fail "watch --stats stopped by SIGTERM: exit $st"
grep -Eq "stats requests=[2-9][0-9]* seconds=[0-9.]+ requests_per_min=[0-9.]+ errors=[1-9][0-9]* last_error=\"?s.list: No such file" \
  "$work/o" || fail "--stats: $(cat "$work/o")"
n=$((n + 1))
echo "kitd-watch: $n command lines behave"
