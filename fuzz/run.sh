#!/usr/bin/env bash
# Fuzz one target for a while on the stable toolchain, then minimise its corpus.
#
#   fuzz/run.sh TARGET [SECONDS]      TARGET: profile | pack | bundle | cds_request
#
# cargo-fuzz (`cargo fuzz run TARGET`) works too where a nightly toolchain exists; this script passes
# the same SanitizerCoverage flags, which are stable, and no sanitizer (ASan needs nightly; the code is
# `forbid(unsafe_code)`, so the fuzzers look for panics, disagreements and hangs). A crash is written
# to fuzz/artifacts/TARGET/; copy it into fuzz/regressions/TARGET/ with a name that says what it broke,
# and `cargo test --test fuzz_corpus` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-60}
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-../target}
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$triple" --bin "$target"
bin="$CARGO_TARGET_DIR/$triple/release/$target"
mkdir -p "corpus/$target" "artifacts/$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# New inputs go to a scratch directory; the checked-in corpus is then re-minimised from both.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len="${MAX_LEN:-16384}" \
  -artifact_prefix="artifacts/$target/" "$work" "corpus/$target" 2>&1 | tail -n 20
min=$(mktemp -d)
"$bin" -merge=1 -max_len="${MAX_LEN:-16384}" "$min" "corpus/$target" "$work" 2>&1 | tail -n 2
rm -rf "corpus/$target" && mv "$min" "corpus/$target"
echo "corpus/$target: $(ls "corpus/$target" | wc -l) inputs"
