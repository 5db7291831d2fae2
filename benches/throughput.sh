#!/usr/bin/env bash
# End-to-end throughput, measured in one run against baselines from the same run.
#
#   benches/throughput.sh [RECORDS] [REPETITIONS]      (default 1000000 records, 5 repetitions)
#
# Generates RECORDS synthetic profiles (1% invalid), then times each command REPETITIONS times and reports
# the median wall time, records/s, MB/s of input, the median peak RSS, and the ratio to the Value-parse
# floor. Needs only the Rust toolchain and bash 5 (GNU time, if present, adds peak RSS). Binaries are built into
# $CARGO_TARGET_DIR when it is set, else target/.
#
# Issue 14's baseline runs in the same run on the same data: `examples/jsonlogic_pipeline.rs`, the
# pipeline a user could assemble from jsonschema + a JSONLogic engine (datalogic-rs) + Aho-Corasick with
# the full catalog; the last lines give its time over medscreen's (targets: 2.5x default, 5x minimal).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
reps=${2:-5}
cargo build --release --quiet --bin medscreen --example floor
cargo build --release --quiet --example jsonlogic_pipeline --example interaction_pack
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/medscreen
floor=$target/release/examples/floor
pipeline=$target/release/examples/jsonlogic_pipeline
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/profiles.ndjson"
"$bin" generate --count "$records" --seed 1 --invalid-rate 0.01 > "$data"
# Issue 14's realistic 3,000-rule pack (synthetic interaction rules gated by classes, patient rules
# scoped to populations), in a rule directory beside the embedded packs.
"$target/release/examples/interaction_pack" "$work/rules" 3000 1
bytes=$(stat -c %s "$data")
have_time=0
[ -x /usr/bin/time ] && have_time=1

# One timed run: prints "seconds kilobytes". A command that fails (an exit status over 1: 1 only says
# that some generated records are invalid) stops the script rather than being timed.
run_once() {
    local status=0 s
    if [ $have_time = 1 ]; then
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2> "$work/err" || status=$?
    else
        s=$EPOCHREALTIME
        "$@" > /dev/null 2> "$work/err" || status=$?
        awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f 0\n", e - s }' > "$work/t"
    fi
    if [ "$status" -gt 1 ]; then
        echo "failed (exit $status): $*" >&2
        cat "$work/err" >&2
        exit 1
    fi
    tail -n 1 "$work/t"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A secs rss
order=()
measure() {
    local name=$1; shift
    order+=("$name")
    : > "$work/s"; : > "$work/m"
    for _ in $(seq "$reps"); do
        read -r s m < <(run_once "$@")
        echo "$s" >> "$work/s"; echo "$m" >> "$work/m"
    done
    secs[$name]=$(median < "$work/s")
    rss[$name]=$(median < "$work/m")
}

# Interleave nothing: each command's repetitions run back to back, all in this one run.
measure "cat" cat "$data"
measure "floor: parse to serde_json::Value (2 threads)" "$floor" value "$data" 2
measure "floor: parse to typed Profile (2 threads)" "$floor" typed "$data" 2
measure "medscreen validate (2 threads)" "$bin" validate -q --threads 2 -o "$work/out" "$data"
measure "medscreen screen (1 thread)" "$bin" screen -q --threads 1 -o "$work/out" "$data"
measure "medscreen screen (2 threads)" "$bin" screen -q --threads 2 -o "$work/out" "$data"
out_bytes=$(stat -c %s "$work/out")
measure "screen --detail minimal (2 threads)" "$bin" screen -q --threads 2 --detail minimal -o "$work/out" "$data"
minimal_bytes=$(stat -c %s "$work/out")
measure "screen --pack tizanidine (2 threads)" "$bin" screen -q --threads 2 --pack tizanidine -o "$work/out" "$data"
measure "screen both packs in one pass (2 threads)" "$bin" screen -q --threads 2 --pack baclofen --pack tizanidine -o "$work/out" "$data"
measure "screen 3,000 interaction rules (2 threads)" "$bin" screen -q --threads 2 --rules "$work/rules" --pack synthetic-interactions -o "$work/out" "$data"
interactions_bytes=$(stat -c %s "$work/out")
measure "the same, --detail minimal (2 threads)" "$bin" screen -q --threads 2 --rules "$work/rules" --pack synthetic-interactions --detail minimal -o "$work/out" "$data"
measure "JSONLogic pipeline (2 threads)" "$pipeline" --threads 2 -o "$work/out" "$data"
pipeline_bytes=$(stat -c %s "$work/out")
measure "JSONLogic pipeline --detail minimal (2 threads)" "$pipeline" --threads 2 --detail minimal -o "$work/out" "$data"
pipeline_minimal_bytes=$(stat -c %s "$work/out")

base=${secs["floor: parse to serde_json::Value (2 threads)"]}
echo "records: $records ($((bytes / records)) bytes each, $((bytes / 1000000)) MB), repetitions: $reps, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
printf '| %-47s | %9s | %11s | %8s | %13s | %14s |\n' "command" "median s" "records/s" "MB/s" "peak RSS MiB" "vs Value floor"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..49})" "-----------" "-------------" "----------" "---------------" "----------------"
for name in "${order[@]}"; do
    s=${secs[$name]}
    # GNU time gives hundredths: a command faster than that is shown at 0.005 s.
    awk -v n="$name" -v s="$s" -v r="$records" -v b="$bytes" -v m="${rss[$name]}" -v f="$base" 'BEGIN {
        if (s <= 0) s = 0.005; if (f <= 0) f = 0.005
        printf "| %-47s | %9.2f | %11.0f | %8.1f | %13.1f | %13.2fx |\n", n, s, r / s, b / s / 1e6, m / 1024, f / s }'
done

# What the second pack costs: both packs in one pass against the default pack (baclofen) alone and
# against the two packs run one after the other.
awk -v b="${secs["medscreen screen (2 threads)"]}" -v t="${secs["screen --pack tizanidine (2 threads)"]}" \
    -v both="${secs["screen both packs in one pass (2 threads)"]}" 'BEGIN {
    printf "second pack in one pass: +%.2f s over baclofen alone (%.2f s), %.2fx the first pack'"'"'s cost; both in one pass %.2fx the two runs one after the other\n", both - b, b, (both - b) / b, both / (b + t) }'

# What the results weigh: bytes written per record, default (compact) against minimal.
echo "output per record: compact $((out_bytes / records)) bytes, minimal $((minimal_bytes / records)) bytes"

# Issue 14: the JSONLogic pipeline's time over medscreen's, same run, same data (>= 2.5x and >= 5x asked).
echo "JSONLogic pipeline output per record: compact $((pipeline_bytes / records)) bytes, minimal $((pipeline_minimal_bytes / records)) bytes"
awk -v m="${secs["medscreen screen (2 threads)"]}" -v p="${secs["JSONLogic pipeline (2 threads)"]}" 'BEGIN {
    printf "issue 14, default output: JSONLogic pipeline %.2f s / medscreen screen %.2f s = %.2fx (target >= 2.5x)\n", p, m, p / m }'
awk -v m="${secs["screen --detail minimal (2 threads)"]}" -v p="${secs["JSONLogic pipeline --detail minimal (2 threads)"]}" 'BEGIN {
    printf "issue 14, --detail minimal: JSONLogic pipeline %.2f s / medscreen screen %.2f s = %.2fx (target >= 5x)\n", p, m, p / m }'

# Issue 14: the 3,000-rule interaction pack against the baclofen pack (>= 25% of its records/s asked).
echo "interaction pack output per record: $((interactions_bytes / records)) bytes"
awk -v b="${secs["medscreen screen (2 threads)"]}" -v i="${secs["screen 3,000 interaction rules (2 threads)"]}" \
    -v bm="${secs["screen --detail minimal (2 threads)"]}" -v im="${secs["the same, --detail minimal (2 threads)"]}" 'BEGIN {
    printf "issue 14, 3,000 interaction rules: %.2f s against baclofen %.2f s = %.1f%% of its records/s (target >= 25%%); minimal %.1f%%\n", i, b, 100 * b / i, 100 * bm / im }'
