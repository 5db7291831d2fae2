#!/usr/bin/env bash
# Latency and throughput of `medscreen serve` (CDS Hooks) on loopback, with wrk as the load generator.
#
#   benches/cds_load.sh                      (defaults: REPEATS=3 DURATION=10 WARMUP=2 CONNS="1 16 64")
#   REPEATS=5 DURATION=20 benches/cds_load.sh
#
# Three targets, each at 1, 16 and 64 connections:
#   discovery           GET  /cds-services                        the HTTP stack floor (no screening)
#   no-baclofen         POST /cds-services/baclofen-order-sign    fixtures/cds_hooks/load/no-baclofen.json
#                                                                  (parsed, no baclofen order: no cards)
#   baclofen-prefetch   POST /cds-services/baclofen-order-sign    fixtures/cds_hooks/load/baclofen-prefetch.json
#                                                                  (parsed, mapped, screened: 7 cards)
# Each (target, connections) runs REPEATS times for DURATION seconds; repeats are interleaved across the
# targets (round robin) so that a noisy neighbour hurts all targets alike. Reported: median req/s (with
# min and max over the repeats), median p50 and p99 latency, req/s as a ratio to discovery, and the
# server's own CPU time per request and cores used (from /proc/PID/stat), which do not depend on how much
# of the machine wrk takes.
#
# The server runs with --insecure-no-auth: JWT verification (one ES384/RS384 signature check per
# request) is NOT in these numbers, unless AUTH=es384: then it runs with --trust (the spec's example
# issuer) and every POST carries its own ES384 token, signed before each run by
# `cargo run --example sign_tokens` (tokens are single-use, so a run that used up its supply would fail
# with 401s, not pass quietly). It also runs with --feedback-log /dev/null and without
# --access-log. wrk and the server share the same machine's cores; on a 2-core machine wrk's own
# threads take a large part of the CPU, so these numbers are a lower bound on what the service does with
# the machine to itself. Any non-2xx response or socket error fails the run.
#
# Needs: the Rust toolchain, curl, and wrk (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

repeats=${REPEATS:-3}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
conns_list=${CONNS:-1 16 64}
fixtures=fixtures/cds_hooks/load

if ! command -v wrk > /dev/null; then
    echo "wrk not found: installing it with apt-get" >&2
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get install -y wrk > /dev/null 2>&1 ||
        { "${sudo[@]}" apt-get update > /dev/null && "${sudo[@]}" apt-get install -y wrk > /dev/null; }
    command -v wrk > /dev/null || { echo "could not install wrk (try: apt-get install wrk)" >&2; exit 1; }
fi
command -v curl > /dev/null || { echo "curl is needed" >&2; exit 1; }

. benches/cds_common.sh
auth=${AUTH:-}
case "$auth" in
    "") ;;
    es384) cargo build --release --quiet --example sign_tokens ;;
    *) echo "AUTH must be empty or es384" >&2; exit 2 ;;
esac
public=http://cds.test

# The eGFR in the baclofen fixture must lie inside the service's 365-day lookback: date it today.
today=$(date -u +%Y-%m-%dT00:00:00+00:00)
cp "$fixtures/no-baclofen.json" "$work/no-baclofen.json"
sed -E "s/\"(effectiveDateTime|issued)\": \"[^\"]*\"/\"\1\": \"$today\"/" \
    "$fixtures/baclofen-prefetch.json" > "$work/baclofen-prefetch.json"

if [ -n "$auth" ]; then
    auth_args=(--trust fixtures/cds_hooks/trust-example.json --public-url "$public")
else
    auth_args=(--insecure-no-auth)
fi
"$bin" serve --addr 127.0.0.1:0 "${auth_args[@]}" --feedback-log /dev/null 2> "$work/server.err" &
server_pid=$!
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's|^medscreen serve: listening on http://\([^ ]*\) .*|\1|p' "$work/server.err")
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2> /dev/null || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the server did not report its address" >&2; cat "$work/server.err" >&2; exit 1; }
base="http://$addr"
hook="$base/cds-services/baclofen-order-sign"

# Check each target answers 200 with the expected number of cards before measuring.
check() {
    local name=$1 want=$2 url=$3 body=${4:-}
    local code
    if [ -n "$body" ]; then
        local authz=()
        if [ -n "$auth" ]; then
            authz=(-H "Authorization: Bearer $("$target_dir"/release/examples/sign_tokens 1 \
                "$public/cds-services/baclofen-order-sign")")
        fi
        code=$(curl -sS -o "$work/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
            "${authz[@]}" --data-binary "@$body" "$url")
    else
        code=$(curl -sS -o "$work/resp" -w '%{http_code}' "$url")
    fi
    [ "$code" = 200 ] || { echo "$name: HTTP $code" >&2; cat "$work/resp" >&2; exit 1; }
    if [ "$want" != - ]; then
        local got
        got=$({ grep -o '"summary":"[^"]*"' "$work/resp" || true; } | wc -l)
        echo "$name: HTTP 200, $got cards ($(wc -c < "$work/resp") bytes)"
        { grep -o '"summary":"[^"]*"' "$work/resp" || true; } | sed 's/^"summary":"\(.*\)"$/    \1/'
        [ "$got" = "$want" ] || { echo "$name: expected $want cards, got $got" >&2; exit 1; }
    else
        echo "$name: HTTP 200 ($(wc -c < "$work/resp") bytes)"
    fi
}
check discovery - "$base/cds-services"
check no-baclofen 0 "$hook" "$work/no-baclofen.json"
check baclofen-prefetch 7 "$hook" "$work/baclofen-prefetch.json"

# wrk script: POST the file named by $BODY_FILE (GET when unset), and print one machine-readable line.
cat > "$work/req.lua" << 'EOF'
local path = os.getenv("BODY_FILE")
if path and path ~= "" then
    local f = assert(io.open(path, "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    wrk.headers["Content-Type"] = "application/json"
    f:close()
end
-- With TOKENS set, each request carries the next unused token; wrk thread k of n takes every n-th.
local tokens_path = os.getenv("TOKENS")
if tokens_path and tokens_path ~= "" then
    local next_id = 0
    function setup(thread)
        thread:set("id", next_id)
        next_id = next_id + 1
    end
    function init(args)
        tokens = {}
        for line in io.lines(tokens_path) do tokens[#tokens + 1] = line end
        step = tonumber(os.getenv("THREADS"))
        at = id + 1
    end
    function request()
        local t = tokens[at] or "used-up"
        at = at + step
        wrk.headers["Authorization"] = "Bearer " .. t
        return wrk.format()
    end
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.status, e.connect, e.read, e.write, e.timeout))
end
EOF

targets=(discovery no-baclofen baclofen-prefetch)
declare -A url body
url[discovery]="$base/cds-services"; body[discovery]=
url[no-baclofen]=$hook; body[no-baclofen]="$work/no-baclofen.json"
url[baclofen-prefetch]=$hook; body[baclofen-prefetch]="$work/baclofen-prefetch.json"

# The server's CPU time so far (user + system), in clock ticks.
clk_tck=$(getconf CLK_TCK)
server_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$server_pid/stat"; }

# One wrk run; appends "req/s p50_us p99_us server_cpu_us_per_request server_cores" to
# $work/<target>.<conns>. Fails on errors.
run() {
    local target=$1 conns=$2 secs=$3 record=$4
    local threads=$((conns < 2 ? conns : 2))
    local cpu0 cpu1
    local tokens=
    if [ -n "$auth" ] && [ -n "${body[$target]}" ]; then
        # More than the run can use: a screened request with ES384 verification is well under
        # 3,500 per second on this machine.
        "$target_dir"/release/examples/sign_tokens $((secs * 3500 + 1000)) \
            "$public/cds-services/baclofen-order-sign" > "$work/tokens"
        tokens=$work/tokens
    fi
    cpu0=$(server_ticks)
    TOKENS=$tokens THREADS=$threads BODY_FILE=${body[$target]} wrk -t "$threads" -c "$conns" \
        -d "${secs}s" --latency -s "$work/req.lua" "${url[$target]}" > "$work/out" 2>&1 ||
        { cat "$work/out" >&2; exit 1; }
    cpu1=$(server_ticks)
    cat "$work/out" >> "$work/wrk.log"
    local line
    line=$(grep '^RESULT ' "$work/out") || { cat "$work/out" >&2; exit 1; }
    read -r _ n us p50 p99 status connect readerr writeerr timeout <<< "$line"
    if grep -q 'Non-2xx or 3xx responses' "$work/out" || [ "$status" != 0 ]; then
        echo "$target, $conns connections: non-2xx responses" >&2; cat "$work/out" >&2; exit 1
    fi
    if [ $((connect + readerr + writeerr + timeout)) != 0 ]; then
        echo "$target, $conns connections: socket errors" >&2; cat "$work/out" >&2; exit 1
    fi
    if [ "$record" = 1 ]; then
        awk -v n="$n" -v us="$us" -v a="$p50" -v b="$p99" -v t=$((cpu1 - cpu0)) -v hz="$clk_tck" \
            'BEGIN { printf "%.1f %d %d %.1f %.2f\n", n / (us / 1e6), a, b, t / hz * 1e6 / n, t / hz / (us / 1e6) }' \
            >> "$work/$target.$conns"
    fi
}

echo
echo "machine: $(nproc) CPUs ($(uname -m)), shared and noisy; wrk ($(wrk -v 2>&1 | head -n 1 | awk '{print $2}')) runs on the same"
echo "cores as the server and takes a large share of them, so req/s is a lower bound and ratios matter more;"
echo "server CPU/req (user + system time of the server process / requests) does not depend on wrk's share."
if [ -n "$auth" ]; then
    echo "JWT verification is on: every POST carries a fresh ES384 token (spec example key, --trust)."
else
    echo "JWT verification is off (--insecure-no-auth): its cost is not in these numbers."
fi
echo "repeats: $repeats x ${duration}s per (target, connections), interleaved; warm-up ${warmup}s per target;" \
    "wrk threads = min(connections, 2); $(date -u +%Y-%m-%dT%H:%MZ)"

for t in "${targets[@]}"; do run "$t" 16 "$warmup" 0; done
for c in $conns_list; do
    for r in $(seq "$repeats"); do
        for t in "${targets[@]}"; do
            run "$t" "$c" "$duration" 1
            echo "  $t c=$c run $r: $(tail -n 1 "$work/$t.$c" |
                awk '{ printf "%.0f req/s, p50 %d us, p99 %d us, server CPU %.0f us/req (%.2f cores)", $1, $2, $3, $4, $5 }')" >&2
        done
    done
done

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v k="$2" '{ print $k }' "$1"; }
fmt_us() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%d us", u }'; }

echo
printf '| %-17s | %5s | %10s | %19s | %10s | %10s | %12s | %14s | %12s |\n' \
    target conns "req/s" "req/s min-max" "p50" "p99" "vs discovery" "server CPU/req" "server cores"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------------- ------- ------------ --------------------- \
    ------------ ------------ -------------- ---------------- --------------
for c in $conns_list; do
    floor=$(col "$work/discovery.$c" 1 | median)
    for t in "${targets[@]}"; do
        f="$work/$t.$c"
        rps=$(col "$f" 1 | median)
        lo=$(col "$f" 1 | sort -g | head -n 1)
        hi=$(col "$f" 1 | sort -g | tail -n 1)
        p50=$(col "$f" 2 | median)
        p99=$(col "$f" 3 | median)
        cpu=$(col "$f" 4 | median)
        cores=$(col "$f" 5 | median)
        printf '| %-17s | %5s | %10.0f | %19s | %10s | %10s | %11.2fx | %11.0f us | %12.2f |\n' "$t" "$c" "$rps" \
            "$(printf '%.0f-%.0f' "$lo" "$hi")" "$(fmt_us "$p50")" "$(fmt_us "$p99")" \
            "$(awk -v a="$rps" -v b="$floor" 'BEGIN { print a / b }')" "$cpu" "$cores"
    done
done
echo
echo "server peak RSS: $(awk '/^VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$server_pid/status")" \
    "(it keeps up to 100,000 issued cards for feedback, and with AUTH the replay cache)"
