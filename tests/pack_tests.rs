//! `medscreen rules test`: a pack's table-driven cases, their failures, tier coverage and JUnit XML.

mod util;

use std::path::Path;

use util::{code, run_stdin as run, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_embedded_pack_passes_its_cases_at_full_tier_coverage_with_junit_xml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let out = run(
        &[
            "rules",
            "test",
            "--pack",
            "baclofen",
            "--min-coverage",
            "100",
            "--junit",
            junit.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(" 0 failed"), "{text}");
    assert!(text.contains("tier coverage: 100.0%"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("failures=\"0\""));
    // One test case per case and per tier.
    let cases = xml.matches("<testcase ").count();
    assert!(cases > 200, "{cases}");
    assert_eq!(
        xml.matches("<testsuite ").count(),
        xml.matches("</testsuite>").count()
    );
}

/// A pack directory with the embedded pack and vocabulary and the given test file.
fn pack_dir(cases: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pack.json"),
        medscreen::engine::EMBEDDED_PACK,
    )
    .expect("pack");
    std::fs::write(
        dir.path().join("vocabulary.json"),
        medscreen::engine::EMBEDDED_VOCABULARY,
    )
    .expect("vocabulary");
    std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
    std::fs::write(dir.path().join("tests/cases.json"), cases).expect("cases");
    dir
}

fn test_dir(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["rules", "test", dir.to_str().expect("utf-8")];
    args.extend(extra);
    run(&args, b"")
}

#[test]
fn a_failing_case_shows_expected_against_got_with_the_evidence_and_fails_the_run() {
    let cases = r#"{
      "bases": {"adult": {"id": "x", "age": 40, "sex": "male", "egfr": 95}},
      "cases": [
        {"case": "old", "base": "adult", "set": {"age": 80}, "expect": {"BAC-AGE-OLDER": "info"}},
        {"case": "unknown-egfr", "base": "adult", "set": {"egfr": null}, "expect": {"BAC-RENAL": "silent"}},
        {"case": "typo", "base": "adult", "expect": {"BAC-AGE-OLDR": "silent"}},
        {"case": "passes", "base": "adult", "expect": {"BAC-AGE-PEDIATRIC": "silent"}}
      ]
    }"#;
    let dir = pack_dir(cases);
    let junit = dir.path().join("junit.xml");
    let out = test_dir(dir.path(), &["--junit", junit.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("FAIL old ("), "{text}");
    assert!(
        text.contains("BAC-AGE-OLDER: expected info, got warning"),
        "{text}"
    );
    assert!(
        text.contains("/age = 80"),
        "the evidence that fired: {text}"
    );
    assert!(
        text.contains("BAC-RENAL: expected silent, got indeterminate"),
        "{text}"
    );
    assert!(text.contains("missing: "), "{text}");
    assert!(
        text.contains("BAC-AGE-OLDR: no such rule in the pack"),
        "{text}"
    );
    assert!(text.contains("did you mean `BAC-AGE-OLDER`?"), "{text}");
    assert!(!text.contains("FAIL passes"), "{text}");
    assert!(text.contains("4 cases, 1 passed, 3 failed"), "{text}");
    // Four cases cannot reach every tier both ways.
    assert!(text.contains("no case makes it true"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.matches("<failure ").count() >= 3);
    assert!(xml.contains("name=\"old\""));
}

#[test]
fn coverage_below_the_threshold_fails_even_when_every_case_passes() {
    let cases = r#"{"bases": {"a": {"id": "x", "age": 40}},
      "cases": [{"case": "one", "base": "a", "expect": {"BAC-AGE-PEDIATRIC": "silent"}}]}"#;
    let dir = pack_dir(cases);
    assert_eq!(code(&test_dir(dir.path(), &[])), 0);
    let out = test_dir(dir.path(), &["--min-coverage", "90"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("below --min-coverage 90%"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_test_file_is_a_load_error_naming_the_file_and_place() {
    let dir = pack_dir(
        r#"{"bases": {"adult": {"id": "x"}}, "cases": [{"case": "c", "base": "adlt", "expect": {}}]}"#,
    );
    let out = test_dir(dir.path(), &[]);
    assert_eq!(code(&out), 3);
    let err = stderr(&out);
    assert!(
        err.contains("cases.json") && err.contains("/cases/0/base"),
        "{err}"
    );
    assert!(err.contains("did you mean `adult`?"), "{err}");
    let dir = pack_dir(r#"{"bases": {}, "cases": []}"#);
    let out = test_dir(dir.path(), &[]);
    assert_eq!(code(&out), 2, "no case is not a pass");
    let out = run(&["rules", "test", "--pack", "baclofn"], b"");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("did you mean `baclofen`?"));
}
