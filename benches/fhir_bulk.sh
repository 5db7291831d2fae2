#!/usr/bin/env bash
# FHIR Bulk NDJSON throughput (issue 14), measured in one run against a baseline from the same run.
#
#   benches/fhir_bulk.sh [COPIES] [REPETITIONS] [COPIES_PER_FILE]
#       (default 200 copies, about 510 MB; 5 repetitions; 50 copies a file)
#
# Target: `medscreen screen --from fhir` on a FHIR Bulk export directory reads it at >= 0.5x the MB/s of
# a plain `serde_json::Value` parse of the same files on the same number of threads (2), the floor
# (`examples/floor.rs value DIR 2`). It is a ratio measured in one run because the machine is shared.
#
# Data: the Synthea Bulk export in ../shared/external/synthea-bulk-ndjson-10-patients (13 Patients with
# their Conditions and MedicationRequests, 2.5 MB; FHIR_BULK_SRC overrides the path), copied COPIES times
# into one export directory in a temporary directory. Copy 0 is the original; copy k > 0 has `-k` added
# to every resource `id` and to the id of every reference (`Patient/ID`, `Encounter/ID`, `urn:uuid:ID`),
# so each copy is 13 more patients with their own resources. Each type goes into numbered files of
# COPIES_PER_FILE copies (Patient.000.ndjson, Patient.001.ndjson, ...), read in order by medscreen.
# `log.ndjson` (the export's log, not resources; medscreen skips it) is left out, so every byte counted
# is a byte medscreen and the floor read. A run on the data checks the copies before timing: one result
# per Patient line, none invalid, every file read.
#
# Each command runs REPETITIONS times, the commands taking turns (so a noisy spell hits all of them), and
# the table shows the median wall time, the median CPU time (user + system), Patients/s, MB/s of input
# (file bytes / median wall s, MB = 10^6 bytes), the median peak RSS (CPU and RSS from GNU time, when
# /usr/bin/time exists) and MB/s as a multiple of the floor's. Besides the target's three commands
# (the floor, `screen`, `screen --detail minimal`), rows that tell where the time goes: `cat`; the
# floor parsing in the Bulk reader's shape (`floor chunked`: lines read one by one, 2,048 parsed at a
# time and held, then dropped); `fhir-profile` (read and map, no screening); one thread each.
# Needs the Rust toolchain and python3 (its standard library makes the data). CARGO_TARGET_DIR is
# honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-200}
reps=${2:-5}
per_file=${3:-50}
src=${FHIR_BULK_SRC:-../shared/external/synthea-bulk-ndjson-10-patients}
as_of=2024-08-06 # the export's transactionTime: results do not depend on the day of the run
for n in "$copies" "$reps" "$per_file"; do
    case $n in '' | *[!0-9]* | 0*) echo "usage: $0 [COPIES] [REPETITIONS] [COPIES_PER_FILE] (positive integers)" >&2; exit 2 ;; esac
done
cargo build --release --quiet --bin medscreen --example floor
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/medscreen
floor=$target/release/examples/floor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export_dir=$work/export
mkdir "$export_dir"

# Make the export: cut each source file once at the end of every id (resource or reference), then
# write copy k as the pieces joined by `-k`. Ids followed by anything but the closing quote
# (`Practitioner?identifier=...`, `Patient/1/_history/2`) are not ids of a resource in the export.
python3 - "$src" "$export_dir" "$copies" "$per_file" <<'PY'
import os, re, sys

src, dst, copies, per_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = re.compile(rb'"id":"[^"]+(?=")|"reference":"(?:urn:uuid:|[A-Za-z]+/)[^"/?]+(?=")')
kinds = 0
for name in sorted(os.listdir(src)):
    kind = name.split(".")[0]
    # A Bulk file is named for its resource type (`Patient.000.ndjson`); `log.ndjson` is not one.
    if not (name.endswith(".ndjson") and kind[:1].isupper()):
        continue
    kinds += 1
    with open(os.path.join(src, name), "rb") as f:
        data = f.read()
    if not data.endswith(b"\n"):
        data += b"\n"
    cuts = [m.end() for m in ids.finditer(data)]
    pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    for first in range(0, copies, per_file):
        with open(os.path.join(dst, "%s.%03d.ndjson" % (kind, first // per_file)), "wb") as out:
            for k in range(first, min(copies, first + per_file)):
                out.write((b"-%d" % k if k else b"").join(pieces))
if kinds == 0:
    sys.exit("no Bulk NDJSON file (Type.ndjson, Type.000.ndjson) in " + src)
PY
files=("$export_dir"/*.ndjson)
bytes=$(cat "${files[@]}" | wc -c)
patients=$(cat "$export_dir"/Patient.*.ndjson | wc -l)
resources=$(cat "${files[@]}" | wc -l)

# Check the copies before timing anything: distinct patients, every resource attributed, nothing lost.
set +e
"$bin" screen --from fhir --as-of "$as_of" -q --threads 2 --summary "$work/summary.json" -o "$work/out" "$export_dir"
rc=$?
set -e
python3 - "$work/summary.json" "$work/out" "$patients" "$bytes" "${#files[@]}" "$rc" <<'PY'
import json, sys

summary, out, patients, nbytes, nfiles, rc = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
with open(summary) as f:
    s = json.load(f)
with open(out, "rb") as f:
    results = sum(1 for _ in f)
problems = [
    what
    for what, bad in [
        ("exit status %d" % rc, rc != 0),
        ("%d patients in the summary, %d Patient lines" % (s["patients"], patients), s["patients"] != patients),
        ("%d results, %d Patient lines" % (results, patients), results != patients),
        ("%d invalid" % s["invalid"], s["invalid"] != 0),
        ("%d file errors" % s["file_errors"], s["file_errors"] != 0),
        ("%d files read of %d" % (s["files_read"], nfiles), s["files_read"] != nfiles),
        ("%d bytes read of %d" % (s["bytes"], nbytes), s["bytes"] != nbytes),
    ]
    if bad
]
if problems:
    sys.exit("the scaled export does not screen as it should: " + "; ".join(problems))
PY

have_time=0
[ -x /usr/bin/time ] && have_time=1

# One timed run of command number $1, which may exit with at most its allowed status: appends its
# wall seconds, peak RSS in kilobytes and CPU seconds (user + system) to $work/{s,m,c}.$1 (RSS and
# CPU 0 without GNU time).
run_once() {
    local -n cmd="cmd_$1"
    local status=0 s e
    if [ $have_time = 1 ]; then
        /usr/bin/time -f "%e %M %U %S" -o "$work/t" "${cmd[@]}" > /dev/null 2> "$work/err" || status=$?
    else
        s=$(date +%s.%N)
        "${cmd[@]}" > /dev/null 2> "$work/err" || status=$?
        e=$(date +%s.%N)
        awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f 0 0 0\n", e - s }' > "$work/t"
    fi
    if [ "$status" -gt "${max_status[$1]}" ]; then
        echo "${names[$1]} failed with status $status:" >&2
        cat "$work/err" >&2
        exit 1
    fi
    # GNU time puts "Command exited with non-zero status 1" first: the figures are the last line.
    tail -n 1 "$work/t" | awk -v d="$work" -v i="$1" '{
        print $1 >> (d "/s." i); print $2 >> (d "/m." i); print $3 + $4 >> (d "/c." i) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

names=()
max_status=()
# add NAME MAX_STATUS COMMAND...: the command's number is then in $last. medscreen exits 1 when some
# patient is invalid, which the check above rules out for this data but is not a failure of the command.
add() {
    last=${#names[@]}
    names+=("$1")
    max_status+=("$2")
    shift 2
    declare -g -a "cmd_$last"
    local -n cmd="cmd_$last"
    cmd=("$@")
}

fhir=(screen --from fhir --as-of "$as_of" -q)
add "cat" 0 cat "${files[@]}"
add "floor: parse to serde_json::Value (2 threads)" 0 "$floor" value "$export_dir" 2
floor2=$last
add "medscreen screen --from fhir (2 threads)" 1 "$bin" "${fhir[@]}" --threads 2 -o "$work/out.compact" "$export_dir"
screen2=$last
add "screen --from fhir --detail minimal (2 threads)" 1 "$bin" "${fhir[@]}" --threads 2 --detail minimal -o "$work/out.minimal" "$export_dir"
minimal2=$last
# Where the time goes: the reader's shape without mapping (`chunked`), mapping without screening, one thread.
add "floor: Value, in the Bulk reader's chunks (2 threads)" 0 "$floor" chunked "$export_dir" 2
add "medscreen fhir-profile (2 threads, no screening)" 1 "$bin" fhir-profile --as-of "$as_of" -q --threads 2 -o "$work/out.profiles" "$export_dir"
add "floor: parse to serde_json::Value (1 thread)" 0 "$floor" value "$export_dir" 1
floor1=$last
add "medscreen screen --from fhir (1 thread)" 1 "$bin" "${fhir[@]}" --threads 1 -o "$work/out.one" "$export_dir"
screen1=$last

# The commands take turns, so that a noisy spell on the shared machine falls on all of them.
for _ in $(seq "$reps"); do
    for i in "${!names[@]}"; do
        run_once "$i"
    done
done
declare -a secs rss cpu
for i in "${!names[@]}"; do
    secs[i]=$(median < "$work/s.$i")
    rss[i]=$(median < "$work/m.$i")
    cpu[i]=$(median < "$work/c.$i")
done

base=${secs[floor2]}
echo "FHIR Bulk export: $copies copies of $src ($patients patients, $resources resources, ${#files[@]} files, $((bytes / 1000000)) MB), repetitions: $reps, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (uncommitted changes)')"
echo
printf '| %-53s | %8s | %7s | %10s | %7s | %12s | %14s |\n' "command" "median s" "CPU s" "patients/s" "MB/s" "peak RSS MiB" "vs Value floor"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..55})" "----------" "---------" "------------" "---------" "--------------" "----------------"
for i in "${!names[@]}"; do
    awk -v n="${names[i]}" -v s="${secs[i]}" -v c="${cpu[i]}" -v p="$patients" -v b="$bytes" -v m="${rss[i]}" -v f="$base" 'BEGIN {
        if (s <= 0) s = 0.005  # below the resolution of the clock: say so in the figures rather than divide by 0
        printf "| %-53s | %8.2f | %7.2f | %10.0f | %7.1f | %12.1f | %13.2fx |\n", n, s, c, p / s, b / s / 1e6, m / 1024, f / s }'
done
echo

# The target: screening MB/s over the floor's, both on 2 threads (the same bytes, so a ratio of times).
for i in "$screen2" "$minimal2"; do
    awk -v n="${names[i]}" -v s="${secs[i]}" -v f="$base" 'BEGIN {
        r = (s > 0) ? f / s : 0
        printf "target (MB/s >= 0.50x the Value floor'"'"'s, 2 threads): %s: %.2fx, %s\n", n, r, (r >= 0.5) ? "met" : "not met" }'
done
awk -v one="${secs[screen1]}" -v two="${secs[screen2]}" -v f1="${secs[floor1]}" -v f2="$base" 'BEGIN {
    printf "2 threads over 1 (wall): screen %.2fx, Value floor %.2fx\n", one / two, f1 / f2 }'
echo "output per patient: compact $(($(wc -c < "$work/out.compact") / patients)) bytes, minimal $(($(wc -c < "$work/out.minimal") / patients)) bytes; input $((bytes / patients)) bytes"
