#!/usr/bin/env bash
# What a second pack costs, and what this build costs against an older binary, in one run.
#
#   benches/packs.sh [BEFORE_BINARY] [RECORDS] [ROUNDS]   (default: no older binary, 1000000 records, 5 rounds)
#
# Generates RECORDS profiles (seed 1, 1% invalid), then runs ROUNDS rounds; each round runs in turn the
# older binary (if given) and this build with the default pack, tizanidine alone, and both packs in one pass
# (`screen -q --threads 2 -o FILE`). Prints the median wall time of each and the ratios: this build against
# the older one, the second pack's cost against the first's, and one pass against two runs.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-}
records=${2:-1000000}
rounds=${3:-5}
cargo build --release --quiet --bin medscreen
bin=target/release/medscreen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/profiles.ndjson"
"$bin" generate --count "$records" --seed 1 --invalid-rate 0.01 > "$data"

# Wall seconds of one run (its exit code is 1: the generated file has invalid records).
wall() {
    local s e
    s=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s.%N)
    echo "$e - $s" | bc
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

names=(baclofen tizanidine both)
[ -n "$before" ] && names=(before "${names[@]}")
for _ in $(seq "$rounds"); do
    for n in "${names[@]}"; do
        case $n in
            before) cmd=("$before" screen -q --threads 2 -o "$work/out" "$data") ;;
            baclofen) cmd=("$bin" screen -q --threads 2 -o "$work/out" "$data") ;;
            tizanidine) cmd=("$bin" screen -q --threads 2 --pack tizanidine -o "$work/out" "$data") ;;
            both) cmd=("$bin" screen -q --threads 2 --pack baclofen --pack tizanidine -o "$work/out" "$data") ;;
        esac
        echo "$(wall "${cmd[@]}")" >> "$work/$n"
    done
done
declare -A m
echo "records: $records, rounds: $rounds, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
for n in "${names[@]}"; do
    m[$n]=$(median < "$work/$n")
    printf '%-11s median %6.2f s   rounds: %s\n' "$n" "${m[$n]}" "$(paste -sd' ' "$work/$n" | awk '{ for (i = 1; i <= NF; i++) printf "%.2f ", $i }')"
done
awk -v b="${m[baclofen]}" -v t="${m[tizanidine]}" -v both="${m[both]}" -v old="${m[before]:-0}" 'BEGIN {
    if (old > 0) printf "this build / older binary (default pack): %.3f\n", b / old
    printf "second pack: +%.2f s, %.2fx the first pack (%.2f s)\n", both - b, (both - b) / b, b
    printf "both in one pass / the two runs one after the other: %.2f\n", both / (b + t) }'
