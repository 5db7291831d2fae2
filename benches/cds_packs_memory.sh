#!/usr/bin/env bash
# Memory of `medscreen serve` (CDS Hooks) by the packs it offers: one pack against every pack.
#
#   benches/cds_packs_memory.sh               (defaults: REPEATS=3)
#
# For `--pack baclofen`, `--pack tizanidine` and no `--pack` (every embedded pack), starts
# `medscreen serve --insecure-no-auth`, sends one order-sign call to each service it offers (the
# baclofen load fixture, and the same request with its draft made tizanidine 4 mg three times a day),
# and reads VmRSS from /proc/PID/status half a second later. Each repeat starts a fresh server. Prints
# one line per run and the median per configuration: the difference is what an extra pack costs (its
# own engine, value sets, prefetch templates and discovery entries). Needs: the Rust toolchain,
# python3, curl, Linux /proc.
set -euo pipefail
cd "$(dirname "$0")/.."

repeats=${REPEATS:-3}
. benches/cds_common.sh

python3 - fixtures/cds_hooks/load/baclofen-prefetch.json "$work/tizanidine.json" << 'PY'
import json, sys
req = json.load(open(sys.argv[1]))
draft = req["context"]["draftOrders"]["entry"][0]["resource"]
draft["medicationCodeableConcept"] = {
    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "57258", "display": "tizanidine"}],
    "text": "tizanidine 4 MG Oral Tablet",
}
draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 4
req["prefetch"]["alt"] = None
json.dump(req, open(sys.argv[2], "w"))
PY

call() {
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "@$2" "$1"
}

for config in "--pack baclofen" "--pack tizanidine" ""; do
    rss=()
    for _ in $(seq "$repeats"); do
        "$bin" serve --addr 127.0.0.1:0 --insecure-no-auth $config 2> "$work/err" > /dev/null &
        server_pid=$!
        url=
        for _ in $(seq 100); do
            url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/err" | head -1 || true)
            [ -n "$url" ] && break
            sleep 0.05
        done
        [ -n "$url" ] || { cat "$work/err" >&2; exit 1; }
        case "$config" in
            *tizanidine*) call "$url/cds-services/tizanidine-order-sign" "$work/tizanidine.json" > /dev/null ;;
            *baclofen*) call "$url/cds-services/baclofen-order-sign" fixtures/cds_hooks/load/baclofen-prefetch.json > /dev/null ;;
            *)
                call "$url/cds-services/baclofen-order-sign" fixtures/cds_hooks/load/baclofen-prefetch.json > /dev/null
                call "$url/cds-services/tizanidine-order-sign" "$work/tizanidine.json" > /dev/null
                ;;
        esac
        sleep 0.5
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status")
        rss+=("$kb")
        echo "serve ${config:-(every pack)}: VmRSS $kb kB"
        kill "$server_pid"
        wait "$server_pid" 2> /dev/null || true
        server_pid=
    done
    median=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "median ${config:-(every pack)}: $median kB"
done
