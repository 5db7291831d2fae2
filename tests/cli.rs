//! CLI integration tests: the real binary, temp files, stdin/stdout, exit codes.

mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use util::{BIN, code, results as lines, run_stdin as run, stderr};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

#[test]
fn screens_the_fixture_file_one_result_per_record_in_order() {
    let out = run(&["screen", &format!("{FIXTURES}/patients.ndjson")], b"");
    assert_eq!(
        code(&out),
        1,
        "some fixture records are invalid: {}",
        stderr(&out)
    );
    let results = lines(&out);
    let input = std::fs::read_to_string(format!("{FIXTURES}/patients.ndjson")).expect("fixture");
    assert_eq!(
        results.len(),
        input.lines().filter(|l| !l.trim().is_empty()).count()
    );
    for (k, r) in results.iter().enumerate() {
        assert_eq!(r["line"], k as u64 + 1);
    }
    let invalid: Vec<&Value> = results
        .iter()
        .filter(|r| r["status"] == "invalid")
        .collect();
    assert_eq!(invalid.len(), 8);
    assert!(
        invalid
            .iter()
            .all(|r| !r["errors"].as_array().expect("errors").is_empty())
    );
    let flagged = results
        .iter()
        .find(|r| r["id"] == "pt-0002")
        .expect("pt-0002");
    assert_eq!(flagged["status"], "flagged");
    assert_eq!(flagged["max_severity"], "critical");
    assert!(
        flagged["ruleset"]
            .as_str()
            .expect("ruleset")
            .starts_with("baclofen@2.0.0#")
    );
    // Compact by default: no rule text.
    assert!(flagged["cautions"][0].get("message").is_none());
    assert!(
        stderr(&out).contains("36 records: 1 clear, 27 flagged, 8 invalid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn detail_full_adds_rule_text() {
    let out = run(
        &["screen", "--detail", "full"],
        br#"{"id":"a","age":70,"comedications":["oxycodone"]}"#,
    );
    let r = &lines(&out)[0];
    let c = &r["cautions"][0];
    for key in ["title", "message", "action", "sources", "evidence"] {
        assert!(c.get(key).is_some(), "{key} missing");
    }
}

/// Screen `bad` between two good records with a small record limit: the bad one gives an invalid
/// result with `code` at line 2, and both good records are screened.
fn bad_line(bad: &[u8], code_wanted: &str) -> Value {
    let mut input = b"{\"id\":\"first\",\"age\":40}\n".to_vec();
    input.extend_from_slice(bad);
    input.extend_from_slice(b"\n{\"id\":\"last\",\"age\":40}\n");
    let out = run(&["screen", "--max-record-bytes", "2048", "-q"], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = lines(&out);
    assert_eq!(r.len(), 3, "one result per record");
    assert_eq!(
        (r[0]["id"].clone(), r[2]["id"].clone()),
        ("first".into(), "last".into())
    );
    assert_eq!(r[2]["status"], "clear");
    assert_eq!(r[1]["line"], 2);
    assert_eq!(r[1]["status"], "invalid");
    assert_eq!(r[1]["errors"][0]["code"], code_wanted);
    r[1].clone()
}

#[test]
fn bad_input_malformed_json() {
    bad_line(b"{\"id\": \"a\", \"age\": ", "invalid_json");
}

#[test]
fn bad_input_trailing_garbage() {
    let r = bad_line(b"{\"id\":\"b\",\"age\":4} trailing", "invalid_json");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .expect("msg")
            .starts_with("unexpected data after the JSON value")
    );
}

#[test]
fn bad_input_not_an_object() {
    bad_line(b"[1, 2, 3]", "not_an_object");
    bad_line(b"\"just a string\"", "not_an_object");
    bad_line(b"null", "not_an_object");
}

#[test]
fn bad_input_invalid_utf8() {
    bad_line(
        b"{\"id\":\"c\",\"indication\":\"\xff\xfe\",\"age\":1}",
        "invalid_utf8",
    );
}

#[test]
fn bad_input_line_over_the_size_limit() {
    let mut big = b"{\"id\":\"big\",\"age\":1,\"indication\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5000));
    big.extend_from_slice(b"\"}");
    let r = bad_line(&big, "too_large");
    assert_eq!(
        r["errors"][0]["message"],
        "the record is longer than 2048 bytes"
    );
}

#[test]
fn bad_input_nesting_too_deep() {
    let deep = format!(
        "{{\"id\":\"f\",\"age\":1,\"x\":{}{}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    bad_line(deep.as_bytes(), "too_deep");
}

#[test]
fn bad_input_number_overflow() {
    bad_line(b"{\"id\":\"d\",\"age\":1e400}", "number_out_of_range");
}

#[test]
fn bad_input_duplicate_keys_name_the_key() {
    let r = bad_line(b"{\"id\":\"e\",\"age\":4,\"age\":5}", "duplicate_key");
    assert_eq!(r["errors"][0]["message"], "duplicate key `age`");
    assert_eq!(r["errors"][0]["pointer"], "/age");
}

#[test]
fn missing_final_newline_loses_nothing() {
    let out = run(
        &["screen"],
        b"{\"id\":\"a\",\"age\":40}\n{\"id\":\"b\",\"age\":41}",
    );
    assert_eq!(code(&out), 0);
    let r = lines(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["id"], "b");
}

#[test]
fn bom_crlf_and_blank_lines_are_accepted() {
    let input = b"\xEF\xBB\xBF{\"id\":\"a\",\"age\":40}\r\n\r\n   \n{\"id\":\"b\",\"age\":41}\r\n";
    let dir = tempfile::tempdir().expect("dir");
    let summary = dir.path().join("summary.json");
    let out = run(
        &["screen", "--summary", summary.to_str().expect("path")],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let results = lines(&out);
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0]["line"].clone(), results[1]["line"].clone()),
        (1.into(), 4.into())
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary")).expect("json");
    assert_eq!(s["read"], 2);
    assert_eq!(s["blank_lines"], 2);
}

#[test]
fn empty_input_gives_no_results_and_exit_0() {
    let out = run(&["screen"], b"");
    assert_eq!(code(&out), 0);
    assert!(out.stdout.is_empty());
    let out = run(&["screen", "--format", "json"], b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[\n]\n");
}

#[test]
fn duplicate_ids_are_screened_and_warned_about() {
    let input =
        b"{\"id\":\"x\",\"age\":40}\n{\"id\":\"y\",\"age\":40}\n{\"id\":\"x\",\"age\":50}\n";
    let dir = tempfile::tempdir().expect("dir");
    let summary = dir.path().join("s.json");
    let out = run(
        &["screen", "--summary", summary.to_str().expect("path")],
        input,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(lines(&out).len(), 3);
    assert!(
        stderr(&out).contains("1 records repeat an earlier id, e.g. `x` (-:3)"),
        "{}",
        stderr(&out)
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary")).expect("json");
    assert_eq!(s["duplicate_ids"], 1);
    assert_eq!(s["duplicate_examples"][0]["line"], 3);
}

fn generated(count: &str, rate: &str) -> Vec<u8> {
    let out = run(
        &[
            "generate",
            "--count",
            count,
            "--seed",
            "42",
            "--invalid-rate",
            rate,
        ],
        b"",
    );
    assert_eq!(code(&out), 0);
    out.stdout
}

#[test]
fn output_is_byte_identical_at_any_thread_count() {
    let data = generated("30000", "0.02");
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, &data).expect("write");
    let input = input.to_str().expect("path");
    for format in ["ndjson", "csv", "json"] {
        let one = run(
            &["screen", input, "--threads", "1", "--format", format, "-q"],
            b"",
        );
        let four = run(
            &["screen", input, "--threads", "4", "--format", format, "-q"],
            b"",
        );
        assert_eq!(code(&one), 1);
        assert!(
            one.stdout == four.stdout,
            "{format}: --threads 1 and --threads 4 differ"
        );
    }
    let one = run(&["screen", input, "--threads", "1", "-q"], b"");
    assert_eq!(lines(&one).len(), 30000, "one result per record");
}

#[test]
fn summary_accounts_for_every_record() {
    let data = generated("5000", "0.05");
    let dir = tempfile::tempdir().expect("dir");
    let summary = dir.path().join("s.json");
    let out = run(
        &[
            "screen",
            "--threads",
            "2",
            "--summary",
            summary.to_str().expect("path"),
        ],
        &data,
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary")).expect("json");
    let n = |k: &str| s[k].as_u64().expect("count");
    assert_eq!(n("read"), 5000);
    assert_eq!(n("read"), n("clear") + n("flagged") + n("invalid"));
    assert!(n("invalid") > 0);
    let results = lines(&out);
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count() as u64;
    assert_eq!(
        (count("clear"), count("flagged"), count("invalid")),
        (n("clear"), n("flagged"), n("invalid"))
    );
    let by_rule: u64 = s["cautions_by_rule"]
        .as_object()
        .expect("map")
        .values()
        .map(|v| v.as_u64().expect("n"))
        .sum();
    let by_sev: u64 = s["cautions_by_severity"]
        .as_object()
        .expect("map")
        .values()
        .map(|v| v.as_u64().expect("n"))
        .sum();
    let in_output: u64 = results
        .iter()
        .map(|r| r["cautions"].as_array().map_or(0, |c| c.len() as u64))
        .sum();
    assert_eq!(by_rule, by_sev);
    assert_eq!(by_rule, in_output);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let data = generated("50000", "0");
    let mut child = Command::new(BIN)
        .args(["screen", "--threads", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("exits");
    let _ = feeder.join();
    assert_eq!(code(&out), 0);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn gzip_input_is_read_transparently() {
    let data = generated("2000", "0.05");
    let dir = tempfile::tempdir().expect("dir");
    let plain = dir.path().join("in.ndjson");
    let gz = dir.path().join("in.ndjson.gz");
    std::fs::write(&plain, &data).expect("write");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).expect("compress");
    enc.finish().expect("finish");
    let a = run(&["screen", plain.to_str().expect("p"), "-q"], b"");
    let b = run(&["screen", gz.to_str().expect("p"), "-q"], b"");
    assert_eq!(code(&a), code(&b));
    assert!(a.stdout == b.stdout);
    let c = run(
        &["screen", "-", "-q"],
        &std::fs::read(&gz).expect("read gz"),
    );
    assert!(a.stdout == c.stdout, "gzip on stdin");
}

#[test]
fn json_array_input_is_detected() {
    let out = run(
        &["screen"],
        b"[\n  {\"id\":\"a\",\"age\":40},\n  {\"id\":\"b\",\"age\":\"x\"}\n]\n",
    );
    assert_eq!(code(&out), 1);
    let r = lines(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0]["line"].clone(), r[1]["line"].clone()),
        (2.into(), 3.into())
    );
    assert_eq!(r[1]["errors"][0]["pointer"], "/age");
}

#[test]
fn several_inputs_are_one_stream_and_name_their_input() {
    let dir = tempfile::tempdir().expect("dir");
    let a = dir.path().join("a.ndjson");
    let b = dir.path().join("b.ndjson");
    std::fs::write(
        &a,
        "{\"id\":\"a1\",\"age\":40}\n{\"id\":\"a2\",\"age\":40}\n",
    )
    .expect("write");
    std::fs::write(&b, "{\"id\":\"b1\",\"age\":40}\n").expect("write");
    let out = run(
        &["screen", a.to_str().expect("p"), b.to_str().expect("p")],
        b"",
    );
    let r = lines(&out);
    let ids: Vec<&str> = r.iter().map(|x| x["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["a1", "a2", "b1"]);
    assert_eq!(r[2]["line"], 1);
    assert!(r[2]["input"].as_str().expect("input").ends_with("b.ndjson"));
}

#[test]
fn errors_file_diverts_invalid_records() {
    let dir = tempfile::tempdir().expect("dir");
    let errors = dir.path().join("errors.ndjson");
    let out = run(
        &["screen", "--errors", errors.to_str().expect("p")],
        b"{\"id\":\"a\",\"age\":40}\n{\"id\":\"b\",\"age\":400}\n",
    );
    assert_eq!(code(&out), 1);
    assert_eq!(lines(&out).len(), 1);
    let diverted = std::fs::read_to_string(errors).expect("errors file");
    let v: Value = serde_json::from_str(diverted.trim()).expect("json");
    assert_eq!(
        (v["line"].clone(), v["id"].clone(), v["status"].clone()),
        (2.into(), "b".into(), "invalid".into())
    );
}

#[test]
fn exit_codes() {
    let critical = br#"{"id":"a","age":40,"comedications":["oxycodone 5 mg"]}"#;
    assert_eq!(
        code(&run(&["screen", "--fail-on", "critical"], critical)),
        4
    );
    assert_eq!(
        code(&run(
            &["screen", "--fail-on", "critical"],
            br#"{"id":"a","age":40}"#
        )),
        0
    );
    let missing = run(&["screen", "/nonexistent/file.ndjson"], b"");
    assert_eq!(code(&missing), 2);
    assert!(stderr(&missing).contains("cannot read `/nonexistent/file.ndjson`"));
    assert!(missing.stdout.is_empty());
    assert_eq!(code(&run(&["screen", "--format", "xml"], b"")), 2);
    let dir = tempfile::tempdir().expect("dir");
    let broken = run(&["screen", "--rules", dir.path().to_str().expect("p")], b"");
    assert_eq!(code(&broken), 3);
    assert!(stderr(&broken).contains("the rule pack failed to load"));
}

#[test]
fn min_severity_filters_cautions_and_status() {
    let input = br#"{"id":"a","age":30,"sex":"female","pregnant":false,"operates_machinery":true}"#;
    let all = lines(&run(&["screen"], input));
    assert_eq!(all[0]["status"], "flagged");
    let warn = lines(&run(&["screen", "--min-severity", "warning"], input));
    assert_eq!(warn[0]["status"], "clear");
    assert_eq!(warn[0]["cautions"].as_array().expect("cautions").len(), 0);
}

#[test]
fn csv_and_table_formats() {
    let input = b"{\"id\":\"a,1\",\"age\":40,\"comedications\":[\"oxycodone\"]}\n{\"id\":\"b\",\"age\":-1}\n";
    let csv = String::from_utf8(run(&["screen", "--format", "csv"], input).stdout).expect("utf-8");
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("input,line,index,id,status,rule,severity,title")
    );
    assert_eq!(
        rows.next(),
        Some("-,1,,\"a,1\",flagged,BAC-DDI-OPIOID,critical,Opioid taken with baclofen")
    );
    assert!(
        csv.contains("-,2,,b,invalid,,,/age: must be at least 0 [out_of_range]\n"),
        "{csv}"
    );
    let table =
        String::from_utf8(run(&["screen", "--format", "table"], input).stdout).expect("utf-8");
    assert!(table.contains("line 1  a,1  FLAGGED (CRITICAL)"), "{table}");
    assert!(
        table.contains("evidence: /comedications/0 = \"oxycodone\" (oxycodone, opioid)"),
        "{table}"
    );
    assert!(table.contains("line 2  b  INVALID"), "{table}");
}

#[test]
fn validate_checks_the_schema_only() {
    let out = run(
        &["validate"],
        b"{\"id\":\"a\",\"age\":40,\"comedications\":[\"oxycodone\"]}\n{\"id\":\"b\"}\n",
    );
    assert_eq!(code(&out), 1);
    let r = lines(&out);
    assert_eq!(r[0]["status"], "valid");
    assert!(r[0].get("cautions").is_none());
    assert_eq!(r[1]["errors"][0]["code"], "missing_field");
    assert!(stderr(&out).contains("2 records: 1 valid, 1 invalid"));
}

#[test]
fn explain_says_why_and_what_is_missing() {
    let out = run(
        &["explain"],
        br#"{"id":"p-7","age":70,"egfr":45,"comedications":["Xanax 0.5mg"]}"#,
    );
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("profile p-7"), "{text}");
    assert!(text.contains("[CRITICAL] BAC-RENAL-BEERS"), "{text}");
    assert!(text.contains("/egfr = 45"), "{text}");
    assert!(
        text.contains("/comedications/0 = \"Xanax 0.5mg\" (alprazolam, benzodiazepine)"),
        "{text}"
    );
    assert!(
        text.contains("BAC-SEIZURE (Seizures or epilepsy): needs seizure_history"),
        "{text}"
    );
    let bad = run(&["explain"], br#"{"id":"p-8","age":40,"pregnent":true}"#);
    assert_eq!(code(&bad), 1);
    assert!(String::from_utf8_lossy(&bad.stdout).contains("help: did you mean `pregnant`?"));
}

#[test]
fn rules_list_show_and_check() {
    let list = String::from_utf8(run(&["rules", "list"], b"").stdout).expect("utf-8");
    assert_eq!(list.lines().count(), 44);
    assert!(
        list.lines()
            .any(|l| l.starts_with("BAC-RENAL ") && l.contains("critical;warning;info"))
    );
    let show = run(&["rules", "show", "BAC-RENAL-BEERS"], b"");
    assert!(String::from_utf8_lossy(&show.stdout).contains("https://doi.org/10.1111/jgs.18372"));
    let typo = run(&["rules", "show", "BAC-RENAL-BEER"], b"");
    assert_eq!(code(&typo), 2);
    assert!(stderr(&typo).contains("did you mean `BAC-RENAL-BEERS`?"));
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let ok = run(&["rules", "check", rules_dir], b"");
    assert_eq!(code(&ok), 0);
    let dir = tempfile::tempdir().expect("dir");
    let mut pack: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(rules_dir).join("baclofen/pack.json")).expect("pack"),
    )
    .expect("json");
    pack["rules"][0]["tiers"][0]["when"]["fact"] = "agee".into();
    pack["rules"][1]["tiers"][0]["severity"] = "severe".into();
    std::fs::write(dir.path().join("pack.json"), pack.to_string()).expect("write");
    std::fs::copy(
        Path::new(rules_dir).join("vocabulary.json"),
        dir.path().join("vocabulary.json"),
    )
    .expect("copy");
    let bad = run(&["rules", "check", dir.path().to_str().expect("p")], b"");
    assert_eq!(code(&bad), 3);
    let err = stderr(&bad);
    assert!(err.contains("(2 errors)"), "{err}");
    assert!(err.contains("/tiers/0/severity"), "{err}");
    assert!(err.contains("unknown fact `agee`"), "{err}");
}

#[test]
fn generate_is_deterministic() {
    let a = generated("300", "0.1");
    let b = generated("300", "0.1");
    assert_eq!(a, b);
    assert_eq!(a.iter().filter(|c| **c == b'\n').count(), 300);
}

#[test]
fn report_writes_one_page_from_results_and_refuses_what_is_not_a_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results.ndjson");
    let summary = dir.path().join("run.json");
    let page = dir.path().join("report.html");
    let out = run(
        &[
            "screen",
            "-q",
            "fixtures/patients.ndjson",
            "-o",
            results.to_str().expect("utf-8"),
            "--summary",
            summary.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(code(&out), 1, "the fixtures hold invalid records");
    let out = run(
        &[
            "report",
            results.to_str().expect("utf-8"),
            "--summary",
            summary.to_str().expect("utf-8"),
            "-o",
            page.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("page written");
    assert!(html.starts_with("<!DOCTYPE html>"), "an HTML page");
    assert!(
        html.contains("baclofen@2.0.0"),
        "provenance names the ruleset"
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "nothing loaded from anywhere"
    );
    // The page is the same whatever the number of threads that count.
    let one = dir.path().join("one-thread.html");
    let out = run(
        &[
            "report",
            "--threads",
            "1",
            results.to_str().expect("utf-8"),
            "--summary",
            summary.to_str().expect("utf-8"),
            "-o",
            one.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(&one).expect("page"), html.as_bytes());
    // The page cannot be written over a file it reads.
    let before = std::fs::read(&results).expect("results");
    for input in [&results, &summary] {
        let out = run(
            &[
                "report",
                results.to_str().expect("utf-8"),
                "--summary",
                summary.to_str().expect("utf-8"),
                "-o",
                input.to_str().expect("utf-8"),
            ],
            b"",
        );
        assert_eq!(code(&out), 2);
        assert!(stderr(&out).contains("is the input"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(&results).expect("results"), before);
    // A line that is not a result: named by input and line, never echoed.
    let out = run(&["report", "-"], b"{\"secret\":\"p-991\"}\n");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("`-` line 1"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("p-991"));
}

#[test]
fn screen_report_writes_the_page_report_makes_from_the_same_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();
    let out = run(
        &[
            "screen",
            "-q",
            "fixtures/patients.ndjson",
            "--errors",
            &path("invalid.ndjson"),
            "-o",
            &path("results.ndjson"),
            "--summary",
            &path("run.json"),
            "--report",
            &path("during.html"),
        ],
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = run(
        &[
            "report",
            &path("results.ndjson"),
            &path("invalid.ndjson"),
            "--summary",
            &path("run.json"),
            "-o",
            &path("after.html"),
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The same page, but for the files `report` names as what it read, and the age and sex that only
    // the run itself has (results do not carry them).
    let cut = |html: &str, from: &str, to: &str| {
        let start = html.find(from).expect(from);
        let end = start + html[start..].find(to).expect(to);
        (
            format!("{}{}", &html[..start], &html[end..]),
            html[start..end].to_owned(),
        )
    };
    let page = |name: &str| {
        let html = std::fs::read_to_string(dir.path().join(name)).expect("page");
        let (html, _) = cut(&html, "<dt>Results read</dt>", "</dd>");
        cut(&html, "<section id=\"demographics\">", "</section>")
    };
    let (during, demographics) = page("during.html");
    let (after, none) = page("after.html");
    assert_eq!(during, after);
    assert!(
        demographics.contains("data-key=\"demographics\""),
        "{demographics}"
    );
    assert!(none.contains("Not available"), "{none}");
    // `--min-cell` goes with `--report`, and changes what the page hides.
    let small_cells = |name: &str| {
        let html = std::fs::read_to_string(dir.path().join(name)).expect("page");
        html.matches("&lt;11").count()
    };
    assert!(
        small_cells("during.html") > 0,
        "the fixtures have small counts"
    );
    let out = run(
        &[
            "screen",
            "-q",
            "fixtures/patients.ndjson",
            "-o",
            &path("again.ndjson"),
            "--report",
            &path("every-count.html"),
            "--min-cell",
            "1",
        ],
        b"",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(small_cells("every-count.html"), 0);
    let out = run(
        &[
            "screen",
            "-q",
            "fixtures/patients.ndjson",
            "--min-cell",
            "5",
        ],
        b"",
    );
    assert_eq!(code(&out), 2, "--min-cell without --report is refused");
    // Only native NDJSON is counted as it is written.
    let out = run(
        &[
            "screen",
            "-q",
            "fixtures/patients.ndjson",
            "--format",
            "csv",
            "--report",
            &path("x.html"),
        ],
        b"",
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("`--report`"), "{}", stderr(&out));
}

/// `--detail minimal` says what `compact` says of every decision: the status, the highest severity,
/// each caution's rule and severity in order, and which rules are undecided (without their missing
/// facts or the cautions' evidence); invalid records are explained the same.
#[test]
fn detail_minimal_carries_the_decisions_of_compact() {
    let mut data = generated("3000", "0.03");
    data.extend_from_slice(&std::fs::read(format!("{FIXTURES}/patients.ndjson")).expect("fixture"));
    let decisions = |s: &Value| -> Value {
        let undecided: Vec<Value> = match s.get("undecided") {
            Some(ids) => ids.as_array().expect("undecided").clone(),
            None => s["indeterminate"]
                .as_array()
                .expect("indeterminate")
                .iter()
                .map(|i| i["rule"].clone())
                .collect(),
        };
        let cautions: Vec<Value> = s["cautions"]
            .as_array()
            .expect("cautions")
            .iter()
            .map(|c| serde_json::json!([c["rule"], c["severity"]]))
            .collect();
        serde_json::json!([
            s["status"],
            s["max_severity"],
            cautions,
            undecided,
            s["ruleset"]
        ])
    };
    let of = |r: &Value| -> Value {
        match (r["status"].as_str(), r.get("screenings")) {
            (Some("invalid"), _) => r.clone(),
            (_, Some(packs)) => Value::Array(
                packs
                    .as_array()
                    .expect("screenings")
                    .iter()
                    .map(decisions)
                    .collect(),
            ),
            _ => decisions(r),
        }
    };
    for packs in [
        &["--pack", "baclofen"][..],
        &["--pack", "baclofen", "--pack", "tizanidine"],
    ] {
        let compact = lines(&run(&[&["screen", "-q", "-"], packs].concat(), &data));
        let minimal_out = run(
            &[&["screen", "-q", "--detail", "minimal", "-"], packs].concat(),
            &data,
        );
        let minimal = lines(&minimal_out);
        assert_eq!(code(&minimal_out), 1, "{}", stderr(&minimal_out));
        assert_eq!(compact.len(), minimal.len());
        assert!(minimal.iter().filter(|r| r["status"] == "invalid").count() > 50);
        assert!(minimal.iter().any(|r| r["status"] == "flagged"));
        for (c, m) in compact.iter().zip(&minimal) {
            assert_eq!(of(c), of(m), "{packs:?}");
            assert_eq!(c["line"], m["line"]);
            assert_eq!(c["id"], m["id"]);
            assert!(m.get("indeterminate").is_none(), "{m}");
            for s in m
                .get("screenings")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![m.clone()])
            {
                for caution in s["cautions"].as_array().into_iter().flatten() {
                    assert!(caution.get("evidence").is_none(), "{caution}");
                }
            }
        }
    }
}

/// The population report counts each undecided rule's missing facts: results without them are
/// refused, whether read by `report` or counted by `screen --report`.
#[test]
fn the_report_refuses_minimal_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("minimal.ndjson");
    let results = results.to_str().expect("path");
    let page = dir.path().join("page.html");
    let fixtures = format!("{FIXTURES}/patients.ndjson");
    let minimal = |to: &[&str]| {
        run(
            &[&["screen", &fixtures, "-q", "--detail", "minimal"], to].concat(),
            b"",
        )
    };
    let out = minimal(&["-o", results]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // Refused with its reason, and no page written: by `report` (not results it can count) and by
    // `screen --report` (a usage error); both exit 2.
    for out in [
        run(
            &["report", results, "-o", page.to_str().expect("path")],
            b"",
        ),
        minimal(&["--report", page.to_str().expect("path")]),
    ] {
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("--detail minimal"),
            "{}",
            stderr(&out)
        );
        assert!(!page.exists());
    }
}
