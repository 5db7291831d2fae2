//! Replays every fuzz corpus and every input a fuzzer found (`fuzz/corpus/TARGET`,
//! `fuzz/regressions/TARGET`) through the fuzz targets' invariants (`medscreen::fuzzing`), so that CI
//! checks them on stable Rust without fuzzing. `fuzz/run.sh TARGET SECONDS` fuzzes for real.

use std::path::Path;

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

fn replay(target: &str, check: fn(&[u8])) {
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let path = Path::new(FUZZ).join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&path) else {
            assert_eq!(dir, "regressions", "missing {}", path.display());
            continue;
        };
        for entry in entries {
            let file = entry.expect("entry").path();
            if file.file_name().is_some_and(|n| n == ".gitkeep") {
                continue;
            }
            let data = std::fs::read(&file).expect("read input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} breaks the invariant", file.display());
            count += 1;
        }
    }
    // A corpus that went missing would make this test pass without checking anything.
    assert!(count >= 3, "only {count} inputs for `{target}`");
}

#[test]
fn profile_corpus() {
    replay("profile", medscreen::fuzzing::profile);
}

#[test]
fn pack_corpus() {
    replay("pack", medscreen::fuzzing::pack);
}

#[test]
fn bundle_corpus() {
    replay("bundle", medscreen::fuzzing::bundle);
}

#[test]
fn cds_request_corpus() {
    replay("cds_request", medscreen::fuzzing::cds_request);
}

#[test]
fn reader_corpus() {
    replay("reader", medscreen::fuzzing::reader);
}
