#!/usr/bin/env bash
# `medscreen report` against `medscreen validate`, in one run on the same generated data.
#
#   benches/report.sh [RECORDS] [REPETITIONS]      (default 1000000 records, 3 repetitions)
#
# Generates RECORDS profiles (1% invalid), screens them once to NDJSON results (with --summary), then
# times `validate` on the profiles and `report` on the results REPETITIONS times each and prints the
# median wall time, MB/s of what each command reads, and the median peak RSS (GNU time). The issue's
# target: report reads its input at least as fast in MB/s as validate reads its own, under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
reps=${2:-3}
cargo build --release --quiet --bin medscreen
bin=target/release/medscreen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate --count "$records" --seed 1 --invalid-rate 0.01 > "$work/profiles.ndjson"
"$bin" screen -q --threads 2 --summary "$work/run.json" -o "$work/results.ndjson" "$work/profiles.ndjson" || true
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time) for peak RSS" >&2; exit 2; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
measure() { # name input-file command...
    local name=$1 input=$2; shift 2
    : > "$work/s"; : > "$work/m"
    for _ in $(seq "$reps"); do
        /usr/bin/time -f "%e %M" -o "$work/t" "$@" > /dev/null 2> "$work/err" || true
        read -r s m < <(tail -n 1 "$work/t")
        echo "$s" >> "$work/s"; echo "$m" >> "$work/m"
    done
    local secs rss bytes
    secs=$(median < "$work/s"); rss=$(median < "$work/m"); bytes=$(stat -c %s "$input")
    printf '| %s | %.1f MB | %.2f s | %.1f MB/s | %.1f MiB |\n' "$name" "$(echo "$bytes / 1000000" | bc -l)" \
        "$secs" "$(echo "$bytes / 1000000 / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}
echo "$records records, $reps repetitions, medians ($(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD))"
echo
echo "| command | reads | wall | MB/s read | peak RSS |"
echo "|---|---|---|---|---|"
measure "medscreen validate --threads 2 (profiles)" "$work/profiles.ndjson" "$bin" validate -q --threads 2 -o /dev/null "$work/profiles.ndjson"
measure "medscreen validate --threads 1 (profiles)" "$work/profiles.ndjson" "$bin" validate -q --threads 1 -o /dev/null "$work/profiles.ndjson"
measure "medscreen report --threads 2 (results)" "$work/results.ndjson" "$bin" report --threads 2 "$work/results.ndjson" --summary "$work/run.json" -o "$work/report.html"
measure "medscreen report --threads 1 (results)" "$work/results.ndjson" "$bin" report --threads 1 "$work/results.ndjson" --summary "$work/run.json" -o "$work/report1.html"
# The page must not depend on the number of threads.
cmp -s "$work/report.html" "$work/report1.html" || { echo "report differs between 1 and 2 threads" >&2; exit 1; }
