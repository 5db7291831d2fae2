#!/usr/bin/env bash
# Memory of `medscreen serve` (CDS Hooks) under a burst of large concurrent hook calls, on loopback.
#
#   benches/cds_memory.sh                     (defaults: N=16 SIZE=4500000 SETTLE=3 REPEATS=3)
#   N=32 benches/cds_memory.sh
#
# Builds a request of about SIZE bytes from fixtures/cds_hooks/load/baclofen-prefetch.json (the
# baclofen draft and its Synthea prefetch, with the `conditions` searchset repeated under fresh ids
# until the body is SIZE bytes: every Condition is mapped and screened), starts
# `medscreen serve --insecure-no-auth` (default limits: --body-limit 5 MiB, --max-concurrent 64), and
# sends N copies of it at once with curl. From /proc/PID/status it reads:
#   base   VmRSS after start-up and one small warm-up call
#   peak   VmHWM (the kernel's high-water mark of resident memory) once every answer is in
#   after  VmRSS SETTLE seconds after the last answer
# and counts the answers by status (200 screened, 503 refused by the memory budget with Retry-After).
# Each repeat starts a fresh server, so VmHWM is that burst's peak. Prints one line per repeat and the
# medians. Needs: the Rust toolchain, python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${N:-16}
size=${SIZE:-4500000}
settle=${SETTLE:-3}
repeats=${REPEATS:-3}
extra_args=${SERVE_ARGS:-}
. benches/cds_common.sh

python3 - "$size" fixtures/cds_hooks/load/baclofen-prefetch.json "$work/big.json" << 'PY'
import copy, json, sys
size, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
req = json.load(open(src))
conds = req["prefetch"]["conditions"]["entry"]
out, i = [], 0
base = len(json.dumps(req))
per = len(json.dumps(conds)) / len(conds)
need = int((size - base) / per) + len(conds)
while len(out) < need:
    e = copy.deepcopy(conds[i % len(conds)])
    e["resource"]["id"] = f"{e['resource']['id']}-{i}"
    if "fullUrl" in e:
        e["fullUrl"] = f"{e['fullUrl']}-{i}"
    out.append(e)
    i += 1
req["prefetch"]["conditions"]["entry"] = out
text = json.dumps(req)
while len(text) > size and out:
    out.pop()
    text = json.dumps(req)
open(dst, "w").write(text)
PY
body_bytes=$(stat -c %s "$work/big.json")
small=fixtures/cds_hooks/load/baclofen-prefetch.json

kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$server_pid/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

echo "request body: $body_bytes bytes; $n concurrent; settle ${settle}s; $(nproc) CPUs"
peaks=() afters=()
for r in $(seq 1 "$repeats"); do
    # shellcheck disable=SC2086
    "$bin" serve --addr 127.0.0.1:0 --insecure-no-auth --feedback-log /dev/null $extra_args \
        2> "$work/server.err" &
    server_pid=$!
    port=
    for _ in $(seq 1 100); do
        port=$(sed -nE 's#.*listening on http://127\.0\.0\.1:([0-9]+).*#\1#p' "$work/server.err")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$work/server.err"; exit 1; }
    url=http://127.0.0.1:$port/cds-services/baclofen-order-sign
    curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary @"$small" "$url"
    base=$(kb VmRSS)
    start=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
            --data-binary @"$work/big.json" "$url" > "$work/status.$i" &
    done
    wait $(jobs -p | grep -v "^$server_pid$") 2> /dev/null || true
    done_at=$(date +%s.%N)
    peak=$(kb VmHWM)
    sleep "$settle"
    after=$(kb VmRSS)
    codes=$(cat "$work"/status.* | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')
    printf 'repeat %d: base %d MB, peak %d MB, after %ss %d MB, burst %.2fs, answers: %s\n' \
        "$r" $((base / 1024)) $((peak / 1024)) "$settle" $((after / 1024)) \
        "$(echo "$done_at - $start" | bc)" "$codes"
    peaks+=("$peak") afters+=("$after")
    kill "$server_pid"; wait "$server_pid" 2> /dev/null || true; server_pid=
    rm -f "$work"/status.*
done
printf 'median: peak %d MB, after %ss %d MB\n' \
    $(($(printf '%s\n' "${peaks[@]}" | median) / 1024)) "$settle" \
    $(($(printf '%s\n' "${afters[@]}" | median) / 1024))
