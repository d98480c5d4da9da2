#!/bin/sh
# The Consul double behaves as shared/consul-api.md says: it is checked
# here with curl against exact status codes, texts and JSON fields.
# Usage: tests/check/consul_double.sh BUILD_DIR
set -u
B=${1:-build}
D="$B/tests/consul-double"
[ -x "$D" ] || { echo "no $D"; exit 1; }
T=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }

# start ARGS...: run a double, set A (its address) and DP (its pid)
start() {
    : > "$T/addr"
    "$D" --listen 127.0.0.1:0 "$@" > "$T/addr" 2> "$T/err.$n" &
    DP=$!
    PIDS="$PIDS $DP"
    i=0
    while [ ! -s "$T/addr" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
    A=$(head -n 1 "$T/addr")
    case "$A" in 127.0.0.1:[0-9]*) ;; *) fail "no address printed: '$A'";; esac
}
# stop: SIGTERM, must exit 0
stop() {
    kill -TERM "$DP"
    wait "$DP"; rc=$?
    [ $rc = 0 ] || fail "double exited $rc on SIGTERM: $(cat "$T"/err.* 2>/dev/null)"
    PIDS=$(echo "$PIDS" | sed "s/ $DP\$//; s/ $DP / /")
}
# req METHOD PATH [BODY] [curl args...]: sets code, curl_rc; body in $T/body, headers in $T/hdr
req() {
    m=$1; p=$2; shift 2
    if [ $# -gt 0 ]; then data=$1; shift; else data=""; fi
    if [ -n "$data" ]; then
        code=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' --max-time 20 -X "$m" \
            --data-binary "$data" "$@" "http://$A$p"); curl_rc=$?
    else
        code=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' --max-time 20 -X "$m" \
            "$@" "http://$A$p"); curl_rc=$?
    fi
}
# expect CODE [EXACT_BODY]
expect() {
    [ "$code" = "$1" ] || fail "$m $p: status $code, want $1; body: $(cat "$T/body")"
    if [ $# -gt 1 ]; then
        printf '%s' "$2" | cmp -s - "$T/body" || fail "$m $p: body '$(cat "$T/body")', want '$2'"
    fi
    ok
}
# hdr NAME: value of a response header (without CR)
hdr() { grep -i "^$1:" "$T/hdr" | head -n 1 | sed 's/^[^:]*: *//' | tr -d '\r'; }
# py EXPR: a Python assertion over d = the JSON body
py() {
    python3 -c "import json,sys
d=json.load(open('$T/body'))
assert $1, json.dumps(d)[:600]" || fail "$m $p: assertion failed: $1"
    ok
}
reg() { req PUT /v1/agent/service/register "$@"; }

start --no-stagger --min-interval 100 --reap-floor 300 --reap-every 100

# ---- routing ----
req GET /v1/nope; expect 404 "Invalid URL path: not a recognized HTTP API endpoint
"
[ "$(hdr X-Consul-Default-Acl-Policy)" = allow ] || fail "acl policy header"
[ "$(hdr Vary)" = Accept-Encoding ] || fail "vary header"
req GET /v1/health/service; expect 301
[ "$(hdr Location)" = /v1/health/service/ ] || fail "301 location $(hdr Location)"
req GET /v1/health/service/; expect 400 "Missing service name"
req GET '/v1//health/service/web'; expect 301
req GET /v1/agent/service/register; expect 405 "method GET not allowed"
[ "$(hdr Allow)" = "OPTIONS,PUT" ] || fail "Allow header: $(hdr Allow)"
req DELETE /v1/agent/service/deregister/x; expect 405 "method DELETE not allowed"
req OPTIONS /v1/agent/service/register; expect 200 ""
[ "$(hdr Allow)" = "OPTIONS,PUT" ] || fail "OPTIONS Allow"
req GET /v1/status/leader; expect 200 '"127.0.0.1:8300"'

# ---- request bodies ----
reg ""; expect 400 "Request decode failed: EOF"
reg '{"Name":"web","Foo":1}'; expect 400 'Request decode failed: json: unknown field "Foo"'
reg '{"Name":"web","Port":"8080"}'; expect 400
grep -q '^Request decode failed: json: cannot unmarshal string' "$T/body" || fail "type error text: $(cat "$T/body")"
reg '{"Port":1}'; expect 400 "Missing service name"
reg '{"Name":"web","Address":"0.0.0.0"}'; expect 400 "Invalid service address"
reg '{"Name":"web","Weights":{"Warning":1}}'; expect 400 "Invalid Weights: Passing must be greater than 0"
reg '{"Name":"web","Meta":{"a b":"x"}}'; expect 400 "Invalid Service Meta: Couldn't load metadata pair ('a b', 'x'): Key contains invalid characters"
reg '{"Name":"web","Meta":{"consul-x":"x"}}'; expect 400 "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'x'): Key prefix 'consul-' is reserved for internal use"
reg '{"Name":"web","Check":{"HTTP":"http://127.0.0.1:1/"}}'; expect 400 "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
reg '{"Name":"web","Check":{"Name":"x"}}'; expect 400 "Invalid check: TTL must be > 0 for TTL checks"
reg '{"Name":"web","Check":{"TTL":"5s","Interval":"5s"}}'; expect 400 "Invalid check: Interval and TTL cannot both be specified"
reg '{"Name":"web","Check":{"TTL":"5s","Status":"ok"}}'; expect 400 "Status for checks must 'passing', 'warning', 'critical'"
reg '{"Name":"web","Check":{"ID":"x","TTL":"5s"}}'; expect 400 'Request decode failed: json: unknown field "ID"'
reg '{"Name":"web","Check":{"TTL":"5"}}'; expect 400 'Request decode failed: time: missing unit in duration "5"'
reg '{"Name":"web","Check":{"TTL":"5s","success_before_passing":1}}'; expect 400 'Request decode failed: json: unknown field "success_before_passing"'
req GET /v1/agent/services; expect 200 "{}"

# case-insensitive keys, snake_case aliases, nanosecond durations
reg '{"name":"web","id":"web-1","ADDRESS":"10.0.0.1","port":8080,"tags":["Primary","v1"],"enable_tag_override":true,"check":{"ttl":30000000000,"deregister_critical_service_after":"90m"}}'
expect 200 ""
req GET /v1/agent/services; expect 200
py 'd["web-1"]["Service"]=="web" and d["web-1"]["Port"]==8080 and d["web-1"]["EnableTagOverride"] is True and d["web-1"]["Meta"]=={}'
req GET /v1/agent/checks; expect 200
py 'd["service:web-1"]["Status"]=="critical" and d["service:web-1"]["Type"]=="ttl" and d["service:web-1"]["Name"]=="Service '"'"'web'"'"' check"'

# ---- the health answer ----
req GET /v1/health/service/web; expect 200
[ "$(hdr Content-Type)" = application/json ] || fail "content type"
idx=$(hdr X-Consul-Index)
[ "$(hdr X-Consul-Knownleader)" = true ] && [ "$(hdr X-Consul-Lastcontact)" = 0 ] || fail "leader headers"
[ "$(hdr X-Consul-Effective-Consistency)" = leader ] || fail "consistency header"
py 'len(d)==1 and d[0]["Node"]["Node"]=="consul-double" and d[0]["Node"]["Address"]=="127.0.0.1" and d[0]["Node"]["Datacenter"]=="dc1"'
py 'd[0]["Node"]["TaggedAddresses"]["lan_ipv4"]=="127.0.0.1" and d[0]["Node"]["Meta"]=={"consul-network-segment":""}'
py 'd[0]["Service"]["ID"]=="web-1" and d[0]["Service"]["Tags"]==["Primary","v1"] and d[0]["Service"]["Meta"] is None'
py 'd[0]["Service"]["TaggedAddresses"]=={"lan_ipv4":{"Address":"10.0.0.1","Port":8080},"wan_ipv4":{"Address":"10.0.0.1","Port":8080}}'
py 'd[0]["Service"]["Weights"]=={"Passing":1,"Warning":1} and d[0]["Service"]["Proxy"]=={"Mode":"","MeshGateway":{},"Expose":{}}'
py '[c["CheckID"] for c in d[0]["Checks"]]==["serfHealth","service:web-1"] and d[0]["Checks"][0]["Output"]=="Agent alive and reachable"'
py 'd[0]["Checks"][1]["ServiceTags"]==["Primary","v1"] and d[0]["Checks"][0]["ServiceTags"]==[]'
reg '{"Name":"web","ID":"web-2","Meta":{},"Check":{"TTL":"30s","Status":"passing"}}'; expect 200
req GET /v1/health/service/web; expect 200
py 'len(d)==2 and [e for e in d if e["Service"]["ID"]=="web-2"][0]["Service"]["Meta"]=={}'
py '"Port" not in [e for e in d if e["Service"]["ID"]=="web-2"][0]["Service"] and "TaggedAddresses" not in [e for e in d if e["Service"]["ID"]=="web-2"][0]["Service"]'
req GET '/v1/health/service/web?passing'; expect 200
py '[e["Service"]["ID"] for e in d]==["web-2"]'
req GET '/v1/health/service/web?passing=false'; expect 200
py 'len(d)==2'
req GET '/v1/health/service/web?passing=maybe'; expect 400 "Invalid value for ?passing"
req GET '/v1/health/service/web?tag=primary&tag=V1'; expect 200
py '[e["Service"]["ID"] for e in d]==["web-1"]'
req GET '/v1/health/service/web?tag=primary&tag=v2'; expect 200 "[]"
req GET '/v1/health/service/nosuch'; expect 200 "[]"
req GET '/v1/health/service/web?stale&consistent'; expect 400 "Cannot specify ?stale with ?consistent, conflicting semantics."
req GET '/v1/health/service/web?stale'; expect 200
[ "$(hdr X-Consul-Effective-Consistency)" = stale ] || fail "stale header"
req GET '/v1/health/service/web?wait=10'; expect 400 "Invalid wait time"
req GET '/v1/health/service/web?index=-1'; expect 400 "Invalid index"
req GET '/v1/health/service/web?index=0x10'; expect 400 "Invalid index"
req GET '/v1/health/service/web?ns=default'; expect 400
req GET /v1/catalog/services; expect 200
py 'd=={"consul":[],"web":["Primary","v1"]}'
req GET /v1/catalog/service/web; expect 200
py 'len(d)==2 and all("ServicePort" in e and e["ServiceMeta"]=={} or e["ServiceID"]=="web-1" for e in d)'

# ---- blocking queries ----
req GET /v1/health/service/web; idx=$(hdr X-Consul-Index)
t0=$(date +%s%N)
req GET "/v1/health/service/web?index=$idx&wait=400ms"; expect 200
t1=$(date +%s%N); el=$(( (t1 - t0) / 1000000 ))
[ "$(hdr X-Consul-Index)" = "$idx" ] || fail "timed-out wait changed the index"
[ $el -ge 390 ] && [ $el -lt 1500 ] || fail "wait=400ms took ${el}ms"
ok
( curl -s -o "$T/bq" -D "$T/bqh" -w '%{time_total}' "http://$A/v1/health/service/web?index=$idx&wait=10s" > "$T/bqt" ) &
bq=$!
sleep 0.3
req PUT /v1/agent/check/pass/service:web-1?note=fine; expect 200 ""
wait $bq
nidx=$(grep -i '^X-Consul-Index:' "$T/bqh" | tr -d '\r' | sed 's/.*: //')
[ "$nidx" -gt "$idx" ] || fail "blocked query index $nidx not above $idx"
python3 -c "import sys; t=float(open('$T/bqt').read()); sys.exit(0 if 0.25 < t < 2 else 1)" || fail "blocked query did not wake: $(cat "$T/bqt")"
ok
# unknown service: blocks on the index of the last deregistration, wakes when it appears
req GET /v1/health/service/later; expect 200 "[]"; uidx=$(hdr X-Consul-Index)
( curl -s -o "$T/bq2" -D "$T/bq2h" "http://$A/v1/health/service/later?index=$uidx&wait=10s" ) &
bq=$!
sleep 0.2
reg '{"Name":"later","Check":{"TTL":"30s"}}'; expect 200
wait $bq
python3 -c "import json; d=json.load(open('$T/bq2')); assert len(d)==1" || fail "unknown-service query did not see the new service"
ok

# ---- TTL updates and expiry ----
req PUT /v1/agent/check/pass/nosuch; expect 404 'Unknown check ID "nosuch". Ensure that the check ID is passed, not the check name.'
req PUT /v1/agent/check/update/service:web-1 '{"status":"warning","output":"hmm"}'; expect 200 ""
req PUT /v1/agent/check/update/service:web-1 '{"Status":"bad"}'; expect 400 "Invalid check status: 'bad'"
req PUT /v1/agent/check/update/service:web-1 '{"Status":"passing","Bogus":1}'; expect 400 'Request decode failed: json: unknown field "Bogus"'
req GET /v1/agent/health/service/id/web-1; expect 429
py 'd["AggregatedStatus"]=="warning"'
req GET '/v1/agent/health/service/id/web-1?format=text'; expect 429 "warning"
req GET /v1/agent/health/service/id/nosuch; expect 404
py 'd=={"AggregatedStatus":"critical","Service":None,"Checks":None}'
reg '{"Name":"short","Check":{"CheckID":"short-ttl","TTL":"300ms"}}'; expect 200
req PUT '/v1/agent/check/pass/short-ttl?note=last%20words'; expect 200
req GET /v1/agent/checks; py 'd["short-ttl"]["Status"]=="passing"'
sleep 0.6
req GET /v1/agent/checks
py 'd["short-ttl"]["Status"]=="critical" and d["short-ttl"]["Output"]=="TTL expired (last output before timeout follows): last words"'
reg '{"Name":"short2","Check":{"CheckID":"short2-ttl","TTL":"200ms","Status":"passing"}}'; expect 200
sleep 0.5
req GET /v1/agent/checks; py 'd["short2-ttl"]["Status"]=="critical" and d["short2-ttl"]["Output"]=="TTL expired"'

# ---- check IDs, re-registration ----
reg '{"Name":"multi","Check":{"TTL":"30s"},"Checks":[{"TTL":"30s"}]}'; expect 200
req GET /v1/agent/checks; py '"service:multi:1" in d and "service:multi:2" in d'
reg '{"Name":"one","Checks":[{"TTL":"30s"}]}'; expect 200
req GET /v1/agent/checks; py '"service:one" in d and "service:one:1" not in d'
reg '{"Name":"keep","Checks":[{"CheckID":"k1","TTL":"30s"},{"CheckID":"k2","TTL":"30s"}]}'; expect 200
req PUT /v1/agent/check/pass/k1?note=alive; expect 200
reg '{"Name":"keep","Tags":["new"],"Checks":[{"CheckID":"k1","TTL":"30s","Status":"critical"}]}'; expect 200
req GET /v1/agent/checks; py 'd["k1"]["Status"]=="passing" and d["k1"]["Output"]=="alive" and "k2" in d'
req PUT '/v1/agent/service/register?replace-existing-checks' '{"Name":"keep","Checks":[{"CheckID":"k1","TTL":"30s"}]}'; expect 200
req GET /v1/agent/checks; py '"k2" not in d and d["k1"]["Status"]=="passing"'
req PUT /v1/agent/service/deregister/nosuch; expect 404 'Unknown service ID "nosuch". Ensure that the service ID is passed, not the service name.'
req PUT /v1/agent/service/deregister/keep; expect 200 ""
req GET /v1/agent/checks; py '"k1" not in d'

# ---- maintenance ----
req PUT /v1/agent/service/maintenance/web-2; expect 400 "Missing value for enable"
req PUT '/v1/agent/service/maintenance/nosuch?enable=true'; expect 404 'No service registered with ID "nosuch"'
req PUT '/v1/agent/service/maintenance/web-2?enable=true&reason=upgrade'; expect 200 ""
req GET '/v1/health/service/web?passing'; expect 200 "[]"
req GET /v1/agent/checks; py 'd["_service_maintenance:web-2"]["Notes"]=="upgrade" and d["_service_maintenance:web-2"]["Status"]=="critical"'
req PUT '/v1/agent/service/maintenance/web-2?enable=false'; expect 200
req GET '/v1/health/service/web?passing'; py 'len(d)==1'

# ---- HTTP and TCP checks against a tiny server ----
cat > "$T/srv.py" <<'EOF'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = {"/health": 200, "/warn": 429, "/bad": 500}.get(self.path, 404)
        body = ("ua=" + self.headers.get("User-Agent", "") + " x=" + self.headers.get("X-Test", "")).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = socketserver.TCPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$T/srv.py" > "$T/srvport" &
SP=$!; PIDS="$PIDS $SP"
i=0; while [ ! -s "$T/srvport" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$T/srvport")
reg '{"Name":"h","Checks":[{"CheckID":"h-ok","HTTP":"http://127.0.0.1:'"$port"'/health","Interval":"100ms","Header":{"X-Test":["yes"]}},{"CheckID":"h-warn","HTTP":"http://127.0.0.1:'"$port"'/warn","Interval":"100ms"},{"CheckID":"h-bad","HTTP":"http://127.0.0.1:'"$port"'/bad","Interval":"100ms","Status":"passing"},{"CheckID":"t-ok","TCP":"127.0.0.1:'"$port"'","Interval":"100ms"},{"CheckID":"t-bad","TCP":"127.0.0.1:1","Interval":"100ms","Status":"passing"}]}'
expect 200
sleep 0.6
req GET /v1/agent/checks
py 'd["h-ok"]["Status"]=="passing" and d["h-ok"]["Output"]=="HTTP GET http://127.0.0.1:'"$port"'/health: 200 OK Output: ua=Consul Health Check x=yes"'
py 'd["h-ok"]["Interval"]=="100ms" and d["h-ok"]["Type"]=="http"'
py 'd["h-warn"]["Status"]=="warning" and d["h-bad"]["Status"]=="critical"'
py 'd["h-bad"]["Output"].startswith("HTTP GET http://127.0.0.1:'"$port"'/bad: 500 Internal Server Error Output: ")'
py 'd["t-ok"]["Status"]=="passing" and d["t-ok"]["Output"]=="TCP connect 127.0.0.1:'"$port"': Success"'
py 'd["t-bad"]["Status"]=="critical" and d["t-bad"]["Output"]=="dial tcp 127.0.0.1:1: connect: connection refused"'

# ---- DeregisterCriticalServiceAfter (floor shrunk to 300 ms for the test) ----
reg '{"Name":"doomed","Check":{"TTL":"30s","DeregisterCriticalServiceAfter":"1ms"}}'; expect 200
sleep 1
req GET /v1/agent/services; py '"doomed" not in d'

# ---- gzip ----
reg '{"Name":"big","Meta":{"pad":"'"$(printf '%0500d' 0)"'","pad2":"'"$(printf '%0500d' 0)"'"},"Check":{"TTL":"30s"}}'; expect 200
req GET /v1/health/service/big "" -H 'Accept-Encoding: gzip'; expect 200
[ "$(hdr Content-Encoding)" = gzip ] || fail "no gzip for a big body"
gunzip -c < "$T/body" > "$T/plain" && mv "$T/plain" "$T/body"; py 'd[0]["Service"]["Service"]=="big"'
req GET /v1/status/leader "" -H 'Accept-Encoding: gzip'; expect 200 '"127.0.0.1:8300"'
[ -z "$(hdr Content-Encoding)" ] || fail "small body gzipped"
req GET /v1/health/service/big; expect 200
[ -z "$(hdr Content-Encoding)" ] || fail "gzip without Accept-Encoding"

# ---- faults ----
req PUT '/_double/fault?mode=500'; expect 200
req GET /v1/health/service/web; expect 500 "No cluster leader"
req GET /v1/agent/services; expect 200
req PUT '/_double/fault?mode=429'; req GET /v1/health/service/web; expect 429 ""
req PUT '/_double/fault?mode=503'; req GET /v1/catalog/services; expect 503
req PUT '/_double/fault?mode=garbage'; req GET /v1/health/service/web; expect 200
python3 -c "import json; json.load(open('$T/body'))" 2>/dev/null && fail "garbage was JSON"
[ -n "$(hdr X-Consul-Index)" ] || fail "garbage without X-Consul-Index"
req PUT '/_double/fault?mode=truncated'; req GET /v1/health/service/web
[ "$curl_rc" = 18 ] || fail "truncated: curl exit $curl_rc, want 18"; ok
req GET /v1/health/service/web; fidx=$(hdr X-Consul-Index)
t0=$(date +%s%N); req GET "/v1/health/service/web?index=$fidx&wait=5s"; t1=$(date +%s%N)
[ "$curl_rc" = 18 ] && [ $(( (t1 - t0) / 1000000 )) -lt 2000 ] || fail "truncated long poll not cut at once"; ok
req PUT '/_double/fault?mode=down'; req GET /v1/health/service/web
[ "$curl_rc" = 52 ] || [ "$curl_rc" = 56 ] || fail "down: curl exit $curl_rc, want 52 or 56"; ok
req PUT /v1/agent/service/register '{"Name":"x"}'
[ "$curl_rc" = 52 ] || [ "$curl_rc" = 56 ] || fail "down (agent path): curl exit $curl_rc"; ok
req PUT /_double/fault/clear; expect 200
req PUT '/_double/fault/slow?value=300ms'; expect 200
py 'd["mode"]=="slow" and d["ms"]==300'
req PUT /_double/fault/500; req GET /v1/catalog/service/web; expect 500 "No cluster leader"
req PUT /_double/fault/clear; req GET /v1/catalog/service/web; expect 200
req PUT '/_double/fault?mode=stall'; req GET /v1/health/service/web "" --max-time 1
[ "$curl_rc" = 28 ] && [ -s "$T/body" ] || fail "stall: curl exit $curl_rc, want 28 with a partial body"; ok
req PUT '/_double/fault?mode=oversized&bytes=3000000'; req GET /v1/health/service/web; expect 200
py 'len(d) > 1000'
[ "$(wc -c < "$T/body")" -ge 3000000 ] || fail "oversized too small"
req PUT '/_double/fault?mode=slow&ms=400'
t0=$(date +%s%N); req GET /v1/health/service/web; t1=$(date +%s%N); expect 200
[ $(( (t1 - t0) / 1000000 )) -ge 390 ] || fail "slow answered too fast"
req PUT '/_double/fault?mode=500&count=1&paths=/v1/agent/'
req GET /v1/agent/services; expect 500 "No cluster leader"
req GET /v1/agent/services; expect 200
req GET /v1/health/service/web; expect 200
req PUT '/_double/fault?mode=none'; expect 200
py 'd["mode"]=="none"'
req GET /_double/stats; expect 200
py 'd["requests"]["GET /v1/health/service/"] > 10 and d["paths"]["/v1/health/service/"] == d["requests"]["GET /v1/health/service/"] and d["total"] > 50'
req PUT '/_double/stats/reset'; req GET /_double/stats; py 'd["total"]==0'

# index reset (snapshot restore): the index goes backwards, data stays
req GET /v1/health/service/web; before=$(hdr X-Consul-Index)
req PUT '/_double/fault?mode=index-reset'; expect 200
req GET /v1/health/service/web; expect 200; after=$(hdr X-Consul-Index)
[ "$after" -lt "$before" ] || fail "index-reset: $after not below $before"
py 'len(d)==2'

# a real outage: refused, then back on the same port
req PUT '/_double/down?ms=600'; expect 200
sleep 0.2
req GET /v1/status/leader
[ "$curl_rc" = 7 ] || fail "down: curl exit $curl_rc, want 7 (refused)"; ok
sleep 0.8
req GET /v1/status/leader; expect 200

# restarts
req PUT /v1/agent/check/pass/service:web-1; expect 200
req GET /v1/health/service/web; before=$(hdr X-Consul-Index)
req PUT '/_double/reset?kind=normal'; expect 200
req GET /v1/health/service/web; expect 200; after=$(hdr X-Consul-Index)
[ "$after" -gt "$before" ] || fail "normal restart: index $after not above $before"
py 'len(d)==2'
req GET /v1/agent/checks; py 'd["service:web-1"]["Status"]=="passing" and "h-ok" in d'
req PUT '/_double/reset?kind=dev'; expect 200
req GET /v1/health/service/web; expect 200 "[]"
[ "$(hdr X-Consul-Index)" -le 2 ] || fail "dev restart index $(hdr X-Consul-Index)"
req GET /v1/agent/services; expect 200 "{}"
stop

# ---- ACLs ----
start --acl-token secret --acl-token other
req PUT /v1/agent/service/register '{"Name":"web"}'; expect 403
grep -q '^Permission denied' "$T/body" || fail "anonymous write: $(cat "$T/body")"
[ "$(hdr X-Consul-Default-Acl-Policy)" = deny ] || fail "deny header"
req PUT /v1/agent/service/register '{"Name":"web"}' -H 'X-Consul-Token: nope'; expect 403 "ACL not found"
req PUT '/v1/agent/service/register?token=secret' '{"Name":"web"}' -H 'X-Consul-Token: nope'; expect 200
req PUT '/v1/agent/service/register?token=nope' '{"Name":"web"}' -H 'X-Consul-Token: secret'; expect 403 "ACL not found"
req PUT /v1/agent/service/register '{"Name":"web2"}' -H 'Authorization: bearer other'; expect 200
req GET /v1/health/service/web "" -H 'X-Consul-Token: secret'; expect 200; py 'len(d)==1'
req GET /v1/health/service/web "" -H 'X-Consul-Token: nope'; expect 403 "ACL not found"
req GET /v1/health/service/web; expect 200 "[]"
req GET /_double/stats; py 'd["last_token"]=="nope"'
stop

# ---- per-client connection limit: connections, not requests; the 429 is
# Consul's bytes, written before the request is read
start --max-conns-per-client 3
req GET /v1/health/service/web; expect 200
idx=$(hdr X-Consul-Index)
block() {
    curl -s -o /dev/null "http://$A/v1/health/service/web?index=$idx&wait=3s" &
    PIDS="$PIDS $!"
}
block; block  # two blocking queries hold two connections; stats takes the third
i=0
while [ "$(curl -s "http://$A/_double/stats" | sed -n 's/.*"blocking": *\([0-9]*\).*/\1/p')" != 2 ]; do
    [ $i -lt 100 ] || fail "the blocking queries did not start"
    sleep 0.02; i=$((i + 1))
done
block; sleep 0.3  # the third: the client is at its limit
curl -s -D "$T/hdr" -o "$T/body" "http://$A/v1/agent/services"
grep -q '^HTTP/1.1 429 Too Many Requests' "$T/hdr" || fail "no 429: $(cat "$T/hdr")"
[ "$(cat "$T/body")" = "Your IP is issuing too many concurrent connections, please rate limit your calls" ] \
    || fail "429 body: $(cat "$T/body")"
[ "$(wc -c < "$T/body")" = 81 ] || fail "429 body is not 81 bytes"
grep -qi '^Connection: close' "$T/hdr" || fail "no Connection: close"
ok
wait_free() {
    i=0
    while ! curl -sf -o /dev/null "http://$A/v1/status/leader"; do
        [ $i -lt 250 ] || fail "the limit did not free up"
        sleep 0.02; i=$((i + 1))
    done
}
wait_free  # once the blocking queries end, connections are accepted again
req GET /_double/stats; py 'd["max_connections"] == 3'
stop
start --max-conns-per-client 0   # 0: no limit
for k in 1 2 3 4 5; do
    curl -s -o /dev/null "http://$A/v1/health/service/web?index=1000&wait=1s" &
    PIDS="$PIDS $!"
done
sleep 0.2
req GET /v1/agent/services; expect 200
stop

# ---- health/state/any written straight as text: the bytes jansson's
# compact dump would give (escapes, key order, numbers), and ?pretty
# holds the same data ----
start --no-stagger
reg '{"Name":"odd","ID":"odd-1","Tags":["q\"t","b\\s","\u0001c","é","</x>"],"Address":"10.0.0.1","Port":80,"Check":{"TTL":"30s","Notes":"n\tq\u001f","Status":"passing"}}'
expect 200
reg '{"Name":"odd2","Address":"::1","Port":81,"Check":{"HTTP":"http://127.0.0.1:1/","Interval":"1m30s","Timeout":"2500ms"}}'
expect 200
req PUT "/v1/agent/check/fail/service:odd-1?note=a%0A%22b%22%5C%01%E2%80%A8"; expect 200
req GET /v1/health/state/any; expect 200
cp "$T/body" "$T/compact"
req GET "/v1/health/state/any?pretty"; expect 200
python3 -c "import json,re,sys
raw=open('$T/compact',encoding='utf-8').read()
d=json.loads(raw)
want=re.sub(r'\\\\u00([0-9a-f]{2})',lambda m:'\\\\u00'+m.group(1).upper(),
            json.dumps(d,separators=(',',':'),ensure_ascii=False))
assert raw==want,(raw[:300],want[:300])
assert d==json.load(open('$T/body',encoding='utf-8'))
odd=[c for c in d if c['ServiceID']=='odd-1'][0]
assert odd['ServiceTags']==['q\"t','b\\\\s','\x01c','é','</x>'],odd
assert odd['Notes']=='n\tq\x1f' and odd['Output']=='a\n\"b\"\\\\\x01\u2028',odd
assert [c['Interval'] for c in d if c['ServiceID']=='odd2-1' or c['ServiceName']=='odd2']==['1m30s']
" || fail "health/state/any text: $(head -c 400 "$T/compact")"
ok
stop

echo "consul double: $n checks passed"
