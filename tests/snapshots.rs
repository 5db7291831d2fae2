//! Snapshots of the real CLI output of every format, recorded before the workspace split of issue 12:
//! native and FHIR input, ndjson/json/csv/table, explain, `rules`, the summary file, and a generated
//! file (by hash). The refactor must leave these bytes unchanged; a deliberate change re-records them
//! with `MEDSCREEN_BLESS=1 cargo test --test snapshots` and says why in its commit.

mod util;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use util::{code, run};

const GEN_COUNT: &str = "3000";
const GEN_SEED: &str = "11";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// The summary without what differs from run to run (timings).
fn stable_summary(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("summary written");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    let obj = v.as_object_mut().expect("summary is an object");
    for k in [
        "elapsed_seconds",
        "records_per_second",
        "patients_per_second",
        "mb_per_second",
    ] {
        obj.remove(k);
    }
    serde_json::to_string_pretty(&v).expect("serializes") + "\n"
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check(bless: bool, path: &Path, actual: &[u8], failures: &mut Vec<String>) {
    if bless {
        std::fs::write(path, actual).expect("write snapshot");
        return;
    }
    match std::fs::read(path) {
        Ok(expected) if expected == actual => {}
        Ok(_) => failures.push(format!("{} differs", path.display())),
        Err(e) => failures.push(format!("{}: {e}", path.display())),
    }
}

#[test]
fn cli_output_of_every_format_is_unchanged() {
    let bless = std::env::var_os("MEDSCREEN_BLESS").is_some();
    let tmp = tempfile::tempdir().expect("tempdir");
    let gen_path = tmp.path().join("generated.ndjson");
    let out = run(&[
        "generate",
        "--count",
        GEN_COUNT,
        "--seed",
        GEN_SEED,
        "-o",
        gen_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(code(&out), 0, "generate: {}", util::stderr(&out));
    let one = tmp.path().join("one.json");
    let first = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/patients.ndjson"),
    )
    .expect("fixtures");
    std::fs::write(&one, first.lines().next().expect("a record")).expect("write");

    let tmp_name = tmp.path().display().to_string();
    let cases = std::fs::read_to_string(dir().join("cases.txt")).expect("cases.txt");
    let mut failures = Vec::new();
    let mut n = 0;
    for line in cases
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (name, args) = line.split_once('|').expect("NAME | ARGS");
        let name = name.trim();
        let summary = tmp.path().join(format!("{name}.summary.json"));
        let args: Vec<String> = args
            .split_whitespace()
            .map(|a| match a {
                "GEN" => gen_path.display().to_string(),
                "ONE" => one.display().to_string(),
                "SUMMARY" => summary.display().to_string(),
                a => a.to_string(),
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut out = run(&args);
        // The generated file lives in a temporary directory: its path is not part of the snapshot.
        out.stdout = replace(&out.stdout, tmp_name.as_bytes(), b"TMP");
        n += 1;
        if name.starts_with("generated") {
            let hash = format!(
                "{}  {} bytes\n",
                hex(&Sha256::digest(&out.stdout)),
                out.stdout.len()
            );
            check(
                bless,
                &dir().join(format!("{name}.sha256")),
                hash.as_bytes(),
                &mut failures,
            );
        } else {
            check(
                bless,
                &dir().join(format!("{name}.out")),
                &out.stdout,
                &mut failures,
            );
        }
        check(
            bless,
            &dir().join(format!("{name}.code")),
            format!("{}\n", code(&out)).as_bytes(),
            &mut failures,
        );
        if args.contains(&summary.to_str().expect("utf-8")) {
            let s = stable_summary(&summary).replace(&tmp_name, "TMP");
            check(
                bless,
                &dir().join(format!("{name}.summary.json")),
                s.as_bytes(),
                &mut failures,
            );
        }
    }
    assert!(n >= 20, "only {n} cases read from cases.txt");
    assert!(
        failures.is_empty(),
        "snapshots differ (re-record with MEDSCREEN_BLESS=1 only for a deliberate change):\n{}",
        failures.join("\n")
    );
}
