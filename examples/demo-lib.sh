# Shell functions shared by `make demo` and the load tests: start the
# Consul agent (or our double), lorem servers and the gateway, each on a
# free loopback port, and wait for them. Sourced after setting $B (the build
# dir); it makes $work (a scratch folder) and stops every process listed in
# $pids on exit, Ctrl-C included.

work=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM


say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# Wait until a log file holds `pattern`; print the matching line.
wait_log() { # file pattern seconds
  i=0
  while [ $i -lt $(($3 * 10)) ]; do
    line=$(grep -m1 "$2" "$1" 2>/dev/null) && { echo "$line"; return 0; }
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

start_consul() { # sets agent, chost, cport; exports CONSUL_HTTP_ADDR
  if [ -n "${CONSUL_HTTP_ADDR:-}" ]; then
    agent=${CONSUL_HTTP_ADDR#http://}
    consul_kind="the agent at $agent (CONSUL_HTTP_ADDR)"
  else
    "$B/tests/consul-double" --listen 127.0.0.1:0 > "$work/consul.out" 2> "$work/consul.log" &
    pids="$pids $!"
    i=0; while [ ! -s "$work/consul.out" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    agent=$(head -n 1 "$work/consul.out")
    [ -n "$agent" ] || die "the Consul double did not start"
    consul_kind="our Consul double at $agent (no CONSUL_HTTP_ADDR)"
  fi
  chost=${agent%:*}; cport=${agent##*:}
  export CONSUL_HTTP_ADDR=$agent
}

start_server() { # name listen-address -> pid
  "$B/examples/lorem-server" -listen "$2" -consul.addr "$chost" -consul.port "$cport" \
    -check http -check.interval 1s -check.timeout 500ms > "$work/$1.out" 2> "$work/$1.log" &
  echo $!
}

server_port() { # name -> port it listens on
  l=$(wait_log "$work/$1.log" "action=listen" 10) || die "server $1 did not start: $(cat "$work/$1.log")"
  field "$l" port
}

start_gateway() { # sets gwpid, gw
  "$B/examples/lorem-gateway" -listen 127.0.0.1:0 -consul.addr "$chost" -consul.port "$cport" \
    -attempts 3 -attempt.timeout 500ms -timeout 2s > "$work/gw.out" 2> "$work/gw.log" &
  gwpid=$!; pids="$pids $gwpid"
  l=$(wait_log "$work/gw.log" "action=listen" 10) || die "the gateway did not start: $(cat "$work/gw.log")"
  gw="127.0.0.1:$(field "$l" port)"
}

passing() { "$B/examples/kitd-watch" --passing --once lorem 2>/dev/null | tr ' ' '\n' | sed -n 's/^count=//p'; }
wait_passing() { # count seconds
  i=0
  while [ $i -lt $(($2 * 10)) ]; do
    [ "$(passing)" = "$1" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
