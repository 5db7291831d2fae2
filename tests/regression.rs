//! Regression tests for bugs found by adversarial testing, each named after what it broke.

mod util;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use util::{BIN, code, run, stderr};

/// [`util::run_stdin`] with text.
fn run_stdin(args: &[&str], stdin: &str) -> Output {
    util::run_stdin(args, stdin.as_bytes())
}

const TWO: &str = "{\"id\":\"a\",\"age\":40}\n{\"id\":\"b\",\"age\":70}\n";

fn input_file(dir: &Path) -> String {
    let p = dir.join("in.ndjson");
    std::fs::write(&p, TWO).expect("write input");
    p.display().to_string()
}

#[test]
fn output_that_is_the_input_does_not_truncate_it() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input_file(dir.path());
    for flag in ["-o", "--output", "--errors", "--summary"] {
        let out = run(&["screen", "-q", &input, flag, &input]);
        assert_eq!(code(&out), 2, "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("would destroy the input before it is read"),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(&input).expect("read"), TWO);
    }
    // The same for `validate`, which shares the batch driver.
    let out = run(&["validate", "-q", &input, "-o", &input]);
    assert_eq!(code(&out), 2);
    assert_eq!(std::fs::read_to_string(&input).expect("read"), TWO);
}

#[cfg(unix)]
#[test]
fn output_that_is_the_input_through_a_link_or_another_path_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input_file(dir.path());
    let sym = dir.path().join("sym.ndjson");
    std::os::unix::fs::symlink(&input, &sym).expect("symlink");
    let hard = dir.path().join("hard.ndjson");
    std::fs::hard_link(&input, &hard).expect("hard link");
    let dotted = format!("{}/./in.ndjson", dir.path().display());
    for out_path in [
        sym.display().to_string(),
        hard.display().to_string(),
        dotted,
    ] {
        let out = run(&["screen", "-q", &input, "-o", &out_path]);
        assert_eq!(code(&out), 2, "{out_path}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&input).expect("read"), TWO);
    }
}

#[test]
fn two_outputs_to_one_file_are_refused_and_distinct_outputs_work() {
    let dir = tempfile::tempdir().expect("dir");
    let input = input_file(dir.path());
    let res = dir.path().join("res.ndjson").display().to_string();
    std::fs::write(&res, "old").expect("write");
    let out = run(&["screen", "-q", &input, "-o", &res, "--errors", &res]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is the same file as `--output`"),
        "{}",
        stderr(&out)
    );
    // A new output file next to the input is fine.
    let fresh = dir.path().join("fresh.ndjson").display().to_string();
    let out = run(&["screen", "-q", &input, "-o", &fresh]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&fresh)
            .expect("read")
            .lines()
            .count(),
        2
    );
}

#[test]
fn fhir_output_that_is_the_input_does_not_truncate_it() {
    let dir = tempfile::tempdir().expect("dir");
    let bundle = dir.path().join("b.json");
    let text = r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#;
    std::fs::write(&bundle, text).expect("write");
    let b = bundle.display().to_string();
    let out = run(&["screen", "--from", "fhir", "-q", &b, "-o", &b]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&bundle).expect("read"), text);
}

#[test]
fn table_output_does_not_pass_terminal_escapes_from_ids() {
    // An OSC title change and a CSI colour in ids, a flagged and an invalid record.
    let input = "{\"id\":\"p\\u001b]0;pwned\\u0007\",\"age\":70,\"egfr\":20}\n{\"id\":\"q\\u009b31m\",\"age\":\"x\"}\n{\"id\":\"r\",\"age\":40,\"\\u001b[2J\":1}\n";
    let out = run_stdin(&["screen", "-q", "--format", "table"], input);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(text.contains("p\\u{1b}]0;pwned\\u{7}"), "{text}");
    assert!(text.contains("q\\u{9b}31m"), "{text}");
}

#[test]
fn csv_output_neutralises_formulas_in_ids() {
    let input = "{\"id\":\"=HYPERLINK(\\\"http://evil\\\",\\\"x\\\")\",\"age\":70,\"egfr\":20}\n{\"id\":\"+1\",\"age\":\"x\"}\n{\"id\":\"@SUM(A1)\",\"age\":40,\"comedications\":[]}\n";
    let out = run_stdin(&["screen", "-q", "--format", "csv"], input);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for line in text.lines().skip(1) {
        let id = line.split_once(',').expect("line,id").1;
        assert!(
            !id.starts_with(['=', '+', '-', '@']),
            "a cell starts with a formula character: {line}"
        );
    }
    assert!(text.contains("\"'=HYPERLINK("), "{text}");
    assert!(text.contains("\"'+1\""), "{text}");
}

#[test]
fn fhir_table_output_does_not_pass_terminal_escapes_from_ids() {
    let dir = tempfile::tempdir().expect("dir");
    let bundle = dir.path().join("b.json");
    // A deceased patient (skipped) and one without birthDate (invalid), both with escapes in their ids.
    let text = r#"{"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"a\u001b]0;x\u0007","birthDate":"1950-01-01","deceasedBoolean":true}},
      {"resource":{"resourceType":"Patient","id":"b\u001b[2J"}}]}"#;
    std::fs::write(&bundle, text).expect("write");
    let b = bundle.display().to_string();
    let out = run(&["screen", "--from", "fhir", "-q", "--format", "table", &b]);
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        table.contains("SKIPPED") && table.contains("INVALID"),
        "{table}"
    );
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table:?}"
    );
}

#[test]
fn fail_on_judges_only_the_cautions_min_severity_reports() {
    // A warning-only patient: with --min-severity critical nothing is reported, so --fail-on warning
    // must not fire (it printed "clear" and exited 4), and the summary must count nothing.
    let dir = tempfile::tempdir().expect("dir");
    let summary = dir.path().join("s.json");
    let s = summary.display().to_string();
    let input = "{\"id\":\"w\",\"age\":40,\"seizure_history\":true,\"comedications\":[]}\n";
    let out = run_stdin(
        &[
            "screen",
            "-q",
            "--min-severity",
            "critical",
            "--fail-on",
            "warning",
            "--summary",
            &s,
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(line["status"], "clear");
    let sum: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let text = sum.to_string();
    assert!(!text.contains("BAC-SEIZURE"), "{text}");
    // Reported, the warning does fail the run.
    let out = run_stdin(&["screen", "-q", "--fail-on", "warning"], input);
    assert_eq!(code(&out), 4);
}

#[test]
fn closed_standard_error_does_not_panic() {
    // `medscreen rules check DIR 2>&1 | head -1` ended with exit 101 (a panic in eprintln!).
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("pack.json"), "{\"rules\": [}").expect("write");
    std::fs::write(dir.path().join("vocabulary.json"), "{}").expect("write");
    let d = dir.path().display().to_string();
    let cases: [(&[&str], i32); 3] = [
        (&["rules", "check", &d], 3),
        (&["screen", "/nonexistent/input.ndjson"], 2),
        (&["validate", "-"], 0),
    ];
    for (args, want) in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(writer)
            .status()
            .expect("runs");
        assert_ne!(out.code(), Some(101), "{args:?} panicked");
        assert_eq!(out.code(), Some(want), "{args:?}");
    }
}

#[test]
fn rules_show_prints_each_tier_condition() {
    // The eGFR cut-offs were never shown.
    let out = run(&["rules", "show", "BAC-RENAL"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.contains(
            "tier 1 [critical] when dialysis = true or egfr < 30 or (egfr is unknown and ckd_stage in [\"4\", \"5\"])"
        ),
        "{text}"
    );
    let out = run(&["rules", "show", "BAC-PREGNANCY"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.contains("applies when sex != \"male\" is true or unknown"),
        "{text}"
    );
}

#[test]
fn rules_list_and_show_have_a_json_form() {
    let out = run(&["rules", "list", "--format", "json"]);
    assert_eq!(code(&out), 0);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 44);
    assert_eq!(list[0]["id"], "BAC-AGE-PEDIATRIC");
    let out = run(&["rules", "show", "BAC-DDI-GABAPENTINOID", "--format", "json"]);
    let rule: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rule["group"], "BAC-DDI");
    assert_eq!(
        rule["tiers"][0]["when"],
        "a comedication in class gabapentinoid and (age >= 65 or egfr < 60 or respiratory_impairment = true)"
    );
    assert!(rule["sources"][0]["url"].is_string());
}

#[test]
fn rules_check_without_a_directory_checks_the_embedded_pack() {
    let out = run(&["rules", "check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: baclofen@2.0.0#"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn enum_value_abbreviated_or_ambiguous_gets_a_did_you_mean() {
    // `"sex":"F"` got no did-you-mean (edit distance alone cannot see `female` in `F`).
    let engine = medscreen::Engine::embedded().expect("pack");
    let help = |json: &str| {
        let r = engine
            .parse_profile(json.as_bytes())
            .expect_err("invalid profile");
        r.problems
            .iter()
            .map(|p| (p.pointer.clone(), p.help.clone()))
            .collect::<Vec<_>>()
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        help(r#"{"id":"a","age":40,"sex":"F"}"#),
        vec![("/sex".to_owned(), some("did you mean `female`?"))]
    );
    assert_eq!(
        help(r#"{"id":"a","age":40,"ckd_stage":"3"}"#),
        vec![("/ckd_stage".to_owned(), some("did you mean `3a` or `3b`?"))]
    );
    assert_eq!(
        help(r#"{"id":"a","age":40,"discontinuation":"tapr"}"#),
        vec![("/discontinuation".to_owned(), some("did you mean `taper`?"))]
    );
    // No guess from one unrelated character.
    assert_eq!(
        help(r#"{"id":"a","age":40,"sex":"x"}"#),
        vec![("/sex".to_owned(), None)]
    );
}

#[test]
fn as_of_that_is_not_a_calendar_day_says_so() {
    // `--as-of 2025-02-30` said "not of the form YYYY-MM-DD", which it is.
    let out = run(&["screen", "--from", "fhir", "--as-of", "2025-02-30", "-"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("`2025-02-30` is not a day of the calendar"),
        "{}",
        stderr(&out)
    );
    let out = run(&["screen", "--from", "fhir", "--as-of", "30/02/2025", "-"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is not a date of the form YYYY-MM-DD"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fhir_only_flags_on_native_input_are_refused() {
    // They were silently ignored: the user believed the setting was in force.
    for args in [
        &["screen", "--as-of", "2025-01-01", "-"][..],
        &["screen", "--absent", "unknown", "-"],
        &["screen", "--lookback-days", "30", "-"],
    ] {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(
            stderr(&out).contains("applies to FHIR input only"),
            "{}",
            stderr(&out)
        );
    }
    // With --from fhir they are taken.
    let out = run(&[
        "screen",
        "--from",
        "fhir",
        "--as-of",
        "2025-01-01",
        "-q",
        "-",
    ]);
    assert_ne!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn csv_has_a_row_for_every_record_and_the_same_columns_for_every_input() {
    // A clear record had no row, an invalid one put `invalid` under `severity`, and the `input`
    // column came and went with the number of inputs.
    let input = "{\"id\":\"c\",\"age\":40,\"comedications\":[]}\n{\"id\":\"b\",\"age\":-1}\n[{\"id\":\"d\",\"age\":40,\"seizure_history\":true}]\n";
    let out = run_stdin(&["screen", "-q", "--format", "csv", "-"], input);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "input,line,index,id,status,rule,severity,title");
    assert!(rows.contains(&"-,1,,c,clear,,,"), "{text}");
    assert!(
        rows.iter().any(|r| r.starts_with("-,2,,b,invalid,,,/age:")),
        "{text}"
    );
    assert!(
        rows.contains(&"-,3,0,d,flagged,BAC-SEIZURE,warning,Seizures or epilepsy"),
        "{text}"
    );
    // Two inputs: the same header.
    let dir = tempfile::tempdir().expect("dir");
    let a = dir.path().join("a.ndjson");
    std::fs::write(&a, "{\"id\":\"x\",\"age\":40,\"comedications\":[]}\n").expect("write");
    let a = a.display().to_string();
    let out = run(&["screen", "-q", "--format", "csv", &a, &a]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        text.lines().next(),
        Some("input,line,index,id,status,rule,severity,title")
    );
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn explain_on_several_records_says_it_takes_one() {
    // It said only "unexpected data after the JSON value".
    let out = run_stdin(
        &["explain", "-"],
        "{\"id\":\"a\",\"age\":40}\n{\"id\":\"b\",\"age\":50}\n",
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains(
            "`explain` takes one profile, and `-` holds 2 records (the second at line 2)"
        ),
        "{}",
        stderr(&out)
    );
    // One pretty-printed profile is one record.
    let out = run_stdin(&["explain", "-"], "{\n  \"id\": \"a\",\n  \"age\": 40\n}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
