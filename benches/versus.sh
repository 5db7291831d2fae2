#!/usr/bin/env bash
# Issue 14's ratios against the JSONLogic pipeline, and 2 threads against 1, in alternating rounds.
#
#   benches/versus.sh [RECORDS] [ROUNDS]      (default 200000 records, 7 rounds)
#
# benches/throughput.sh runs each command's repetitions back to back, so a change in the machine's load
# between two commands moves their ratio (on the shared 2-core machine the pipeline ratio read 1.84x in
# one run and 2.60x in the next). Here every round runs each command once, in turn, on the same
# generated file, and each ratio is the median over rounds of that round's ratio: a noisy spell hits
# both sides of a ratio alike. Commands: `medscreen screen --threads 2` (default output and
# `--detail minimal`), the JSONLogic pipeline (`examples/jsonlogic_pipeline.rs`, both outputs), and
# `medscreen screen --threads 1`; output to a file; wall time. Needs the Rust toolchain and bash 5. The
# commands run in the same order each round, starting with a different one each round.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-200000}
rounds=${2:-7}
cargo build --release --quiet --bin medscreen --example jsonlogic_pipeline
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/medscreen
pipeline=$target/release/examples/jsonlogic_pipeline
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/profiles.ndjson"
"$bin" generate --count "$records" --seed 1 --invalid-rate 0.01 > "$data"

names=("screen" "screen --detail minimal" "pipeline" "pipeline --detail minimal" "screen --threads 1")
run() {
    case $1 in
        0) "$bin" screen -q --threads 2 -o "$work/out" "$data" ;;
        1) "$bin" screen -q --threads 2 --detail minimal -o "$work/out" "$data" ;;
        2) "$pipeline" --threads 2 -o "$work/out" "$data" ;;
        3) "$pipeline" --threads 2 --detail minimal -o "$work/out" "$data" ;;
        4) "$bin" screen -q --threads 1 -o "$work/out" "$data" ;;
    esac
}
# One line per round: the seconds of each command, in the order of `names`.
for round in $(seq "$rounds"); do
    times=(0 0 0 0 0)
    for step in 0 1 2 3 4; do
        k=$(((step + round) % 5))
        start=$EPOCHREALTIME status=0
        run $k > /dev/null 2> "$work/err" || status=$?
        # 1 says that some generated records are invalid; anything more is a failure, not a time.
        if [ "$status" -gt 1 ]; then
            echo "failed (exit $status): ${names[$k]}" >&2
            cat "$work/err" >&2
            exit 1
        fi
        times[k]=$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f", e - s }')
    done
    echo "${times[*]}" >> "$work/rounds"
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "records: $records ($(($(stat -c %s "$data") / records)) bytes each), rounds: $rounds, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
for k in 0 1 2 3 4; do
    s=$(awk -v k=$((k + 1)) '{ print $k }' "$work/rounds" | median)
    awk -v n="${names[$k]}" -v s="$s" -v r="$records" 'BEGIN { printf "%-28s median %6.2f s  %9.0f records/s\n", n, s, r / s }'
done
ratio() { awk -v a="$1" -v b="$2" '{ print $a / $b }' "$work/rounds" | median; }
printf 'pipeline / screen, default output:   %.2fx (target >= 2.5x)\n' "$(ratio 3 1)"
printf 'pipeline / screen, --detail minimal: %.2fx (target >= 5x)\n' "$(ratio 4 2)"
printf 'screen, 2 threads over 1:            %.2fx (target >= 1.8x)\n' "$(ratio 5 1)"
