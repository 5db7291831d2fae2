//! Regression tests for input framing (issue "Hardening", items 3, 8 and 9): the real binary, each test
//! named after what it broke. The framing rule itself is in `src/input.rs` and the README.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use util::{BIN, code, results, run_chunks, stderr};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    util::run_stdin(args, stdin)
}

fn ids(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("-").to_owned())
        .collect()
}

fn profile(id: &str) -> String {
    format!(r#"{{"id":"{id}","age":40}}"#)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("finish")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn truncated_gzip_does_not_stop_later_inputs() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write(
        dir.path(),
        "good.ndjson",
        format!("{}\n{}\n", profile("g1"), profile("g2")).as_bytes(),
    );
    let full =
        gzip(format!("{}\n{}\n{}\n", profile("t1"), profile("t2"), profile("t3")).as_bytes());
    // Cut into the compressed data, as an interrupted copy would: some records can still be read.
    let trunc = write(dir.path(), "trunc.gz", &full[..full.len() - 12]);
    let out = run(&["screen", s(&good), s(&trunc), s(&good), "-q"], b"");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let r = results(&out);
    let inputs: Vec<&str> = r
        .iter()
        .map(|x| x["input"].as_str().expect("input named"))
        .collect();
    assert!(inputs[0].ends_with("good.ndjson") && inputs[r.len() - 1].ends_with("good.ndjson"));
    let bad: Vec<&Value> = r.iter().filter(|x| x["status"] == "invalid").collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert!(
        bad[0]["input"]
            .as_str()
            .expect("input")
            .ends_with("trunc.gz")
    );
    assert_eq!(bad[0]["errors"][0]["code"], "truncated_input");
    assert!(
        bad[0]["errors"][0]["message"]
            .as_str()
            .expect("message")
            .starts_with("the input ends too early: "),
        "{}",
        bad[0]
    );
    // Both copies of the good input are screened, after the broken one too.
    assert_eq!(ids(&r)[r.len() - 2..], ["g1", "g2"]);
    assert_eq!(ids(&r)[..2], ["g1", "g2"]);
}

#[test]
fn corrupt_gzip_gives_an_io_error_and_the_next_input_is_read() {
    let dir = tempfile::tempdir().expect("dir");
    let mut bytes = gzip(format!("{}\n", profile("c1")).as_bytes());
    let n = bytes.len();
    bytes[n - 8] ^= 0xff; // the CRC does not match
    let bad = write(dir.path(), "bad.gz", &bytes);
    let good = write(dir.path(), "good.ndjson", profile("g1").as_bytes());
    let out = run(&["screen", s(&bad), s(&good), "-q"], b"");
    assert_eq!(code(&out), 1);
    let r = results(&out);
    let last = r.last().expect("a result");
    assert_eq!(last["id"], "g1");
    assert!(
        r.iter()
            .any(|x| x["status"] == "invalid" && x["errors"][0]["code"] == "io_error"),
        "{r:?}"
    );
}

#[test]
fn array_followed_by_records_reads_them_all() {
    let input = format!(
        "[{},{}]\n{}\n{}\n{}\n",
        profile("a"),
        profile("b"),
        profile("c"),
        profile("d"),
        profile("e")
    );
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = results(&out);
    assert_eq!(ids(&r), ["a", "b", "c", "d", "e"]);
    assert_eq!(
        r.iter().map(|x| x["line"].clone()).collect::<Vec<_>>(),
        [1, 1, 2, 3, 4]
    );
}

#[test]
fn data_after_an_array_on_its_line_is_invalid() {
    let input = format!("[{}] {}\n{}\n", profile("a"), profile("b"), profile("c"));
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(ids(&r), ["a", "-", "c"]);
    assert_eq!(r[1]["line"], 1);
    assert_eq!(r[1]["errors"][0]["code"], "invalid_json");
    assert_eq!(
        r[1]["errors"][0]["message"],
        "unexpected data after the JSON array on its last line"
    );
}

#[test]
fn oversized_first_line_array_does_not_swallow_following_lines() {
    let numbers = format!("[{}1]", "1,".repeat(2000));
    let input = format!("{numbers}\n{}\n{}\n", profile("a"), profile("b"));
    let out = run(
        &["screen", "--max-record-bytes", "1000", "-q"],
        input.as_bytes(),
    );
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(ids(&r), ["-", "a", "b"]);
    assert_eq!(r[0]["errors"][0]["code"], "too_large");
    assert_eq!(r[0]["line"], 1);
    // A large first-line batch is split into its elements, and the lines after it are read.
    let batch = format!(
        "[{}]",
        (0..40)
            .map(|k| profile(&format!("e{k}")))
            .collect::<Vec<_>>()
            .join(",")
    );
    let input = format!("{batch}\n{}\n", profile("after"));
    let out = run(
        &["screen", "--max-record-bytes", "100", "-q"],
        input.as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = results(&out);
    assert_eq!(r.len(), 41);
    assert_eq!(r[40]["id"], "after");
    assert_eq!(r[39]["index"], 39);
}

#[test]
fn max_record_bytes_at_u64_max_is_a_usage_error() {
    let out = run_with_timeout(&["screen", "--max-record-bytes", "18446744073709551615"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("`18446744073709551615` is not a byte count from 1 to 1073741824 (1 GiB)"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    for bad in ["0", "1073741825", "-1", "lots"] {
        assert_eq!(
            code(&run_with_timeout(&["screen", "--max-record-bytes", bad])),
            2,
            "{bad}"
        );
    }
    // The bound itself is accepted.
    let out = run(
        &["screen", "--max-record-bytes", "1073741824", "-q"],
        profile("a").as_bytes(),
    );
    assert_eq!(code(&out), 0);
}

/// The old binary busy-looped on this input: fail the test instead of hanging it.
fn run_with_timeout(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().expect("stdin");
    // An array: the old detector read its first line with `limit + 1` bytes of room.
    let _ = input.write_all(format!("[{}]\n", profile("a")).as_bytes());
    drop(input);
    for _ in 0..200 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("`medscreen {}` did not finish in 10 s", args.join(" "));
}

#[test]
fn array_after_many_blank_lines_is_detected() {
    let input = format!(
        "{}[{},{}]\n",
        "\n".repeat(70_000),
        profile("a"),
        profile("b")
    );
    let dir = tempfile::tempdir().expect("dir");
    let summary = dir.path().join("s.json");
    let out = run(
        &["screen", "--summary", s(&summary), "-q"],
        input.as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = results(&out);
    assert_eq!(ids(&r), ["a", "b"]);
    assert_eq!(
        (r[0]["line"].clone(), r[1]["index"].clone()),
        (70_001.into(), 1.into())
    );
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(summary).expect("summary")).expect("json");
    assert_eq!(s["blank_lines"], 70_000);
}

#[test]
fn slow_pipe_gives_same_results() {
    let array = format!("[{},{}]\n", profile("a"), profile("b"));
    let slow = run_chunks(
        &["screen", "-q"],
        &[b"\n", array.as_bytes()],
        Duration::from_millis(500),
    );
    let whole = run(&["screen", "-q"], format!("\n{array}").as_bytes());
    assert_eq!(code(&slow), 0, "{}", stderr(&slow));
    assert_eq!(ids(&results(&slow)), ["a", "b"]);
    assert!(slow.stdout == whole.stdout);
    // Byte by byte, with a record spread over lines.
    let input = format!("{{\n\"id\": \"p\",\n\"age\": 40\n}}\n{array}");
    let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
    let trickle = run_chunks(&["screen", "-q"], &bytes, Duration::from_millis(1));
    let at_once = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(ids(&results(&trickle)), ["p", "a", "b"]);
    assert!(trickle.stdout == at_once.stdout);
}

#[test]
fn bom_split_across_reads_is_stripped() {
    // U+FEFF is EF BB BF: send EF, then BB, then BF with the record, in three reads.
    let record = format!("{}\n", profile("a"));
    let mut last = b"\xBF".to_vec();
    last.extend_from_slice(record.as_bytes());
    let out = run_chunks(
        &["screen", "-q"],
        &[b"\xEF", b"\xBB", &last],
        Duration::from_millis(200),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = results(&out);
    assert_eq!(ids(&r), ["a"]);
    assert_eq!(r[0]["line"], 1);
}

#[test]
fn pretty_printed_profile_is_one_record() {
    // As `jq .` prints it, followed by an NDJSON line.
    let pretty = "{\n  \"id\": \"p-1\",\n  \"age\": 70,\n  \"comedications\": [\n    \"oxycodone 5 mg\",\n    {\n      \"name\": \"Xanax 0.5mg\"\n    }\n  ]\n}\n";
    let input = format!("{pretty}{}\n", profile("p-2"));
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let r = results(&out);
    assert_eq!(ids(&r), ["p-1", "p-2"]);
    assert_eq!(
        (r[0]["line"].clone(), r[1]["line"].clone()),
        (1.into(), 11.into())
    );
    assert_eq!(r[0]["status"], "flagged");
}

#[test]
fn broken_record_does_not_swallow_next_line() {
    // Cut short where an array element could follow, so only the next line being a whole record ends it.
    let input = format!(
        "{{\"id\":\"x\",\"comedications\":[\n{}\n{}\n",
        profile("a"),
        profile("b")
    );
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(ids(&r), ["-", "a", "b"]);
    assert_eq!(r[0]["line"], 1);
    assert_eq!(r[0]["errors"][0]["code"], "invalid_json");
    assert_eq!(
        r[0]["errors"][0]["message"],
        "the JSON value is not complete at the end of line 1, and line 2 is a record by itself"
    );
}

#[test]
fn truncated_ndjson_lines_keep_one_result_each() {
    // The generator's truncated record, twice in a row: each line is its own invalid result.
    let cut = r#"{"id":"t","age":47,"#;
    let input = format!("{cut}\n{cut}\n{}\n", profile("a"));
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(ids(&r), ["-", "-", "a"]);
    assert_eq!(
        r[0]["errors"][0]["message"],
        "the JSON value is not complete at the end of line 1, where the next line starts a new record"
    );
    assert_eq!(r[1]["line"], 2);
    assert_eq!(
        r[1]["errors"][0]["message"],
        "the JSON value is not complete at the end of line 2, where the next line starts a new record"
    );
    // At the end of the input.
    let out = run(
        &["screen", "-q"],
        format!("{}\n{cut}\n", profile("a")).as_bytes(),
    );
    let r = results(&out);
    assert_eq!(ids(&r), ["a", "-"]);
    assert_eq!(
        r[1]["errors"][0]["message"],
        "the JSON value is not complete at the end of the input"
    );
    assert_eq!(r[1]["errors"][0]["code"], "invalid_json");
}

#[test]
fn top_level_values_that_are_not_objects_are_one_invalid_record_each() {
    let input = "[\"p1\", 70]\n\"p1\"\n70\nnull\n[\n  1,\n  2\n]\n";
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(r.len(), 5);
    for (x, line) in r.iter().zip([1, 2, 3, 4, 5]) {
        assert_eq!(x["line"], line);
        assert_eq!(x["errors"][0]["code"], "not_an_object", "{x}");
        assert!(x.get("index").is_none());
    }
}

#[test]
fn bundle_without_from_fhir_gets_a_hint() {
    let bundle = "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": [\n    {\n      \"resource\": {\n        \"resourceType\": \"Patient\"\n      }\n    }\n  ]\n}\n";
    let input = format!("{bundle}{bundle}");
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(r.len(), 2, "a pretty-printed Bundle is one record");
    let first = &r[0]["errors"][0];
    assert_eq!(first["pointer"], "/resourceType");
    assert_eq!(first["code"], "unknown_field");
    assert_eq!(
        first["help"],
        "this is a FHIR `Bundle`, not a patient profile: screen FHIR input with `--from fhir`"
    );
    // Once per input is enough: the second Bundle gets its result without the hint.
    assert_eq!(r[1]["line"], 12);
    assert!(
        r[1]["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .all(|e| e["help"] != first["help"])
    );
    // Over the size limit, the hint is still given.
    let out = run(
        &["screen", "--max-record-bytes", "64", "-q"],
        bundle.as_bytes(),
    );
    let r = results(&out);
    assert_eq!(r[0]["errors"][0]["code"], "too_large");
    assert_eq!(r[0]["errors"][0]["help"], first["help"]);
}

#[test]
fn csv_gets_a_hint() {
    let out = run(&["screen", "-q"], b"id,age,sex\np1,70,male\np2,80,female\n");
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(r.len(), 3, "every line still gets its result");
    assert_eq!(r[0]["errors"][0]["code"], "invalid_json");
    assert_eq!(
        r[0]["errors"][0]["help"],
        "this looks like CSV: medscreen reads JSON, one profile per line (NDJSON) or a JSON array of profiles"
    );
    assert!(r[1]["errors"][0].get("help").is_none());
    // A comma inside an NDJSON record is no reason for the hint.
    let out = run(&["screen", "-q"], br#"{"id":"a,b","age":"x"}"#);
    assert!(results(&out)[0]["errors"][0].get("help").is_none());
}

#[test]
fn array_elements_carry_their_index() {
    let input = format!(
        "[{},{},{{\"id\":\"bad\",\"age\":-1}},{}]\n",
        profile("a"),
        profile("b"),
        profile("d")
    );
    let out = run(&["screen", "-q"], input.as_bytes());
    assert_eq!(code(&out), 1);
    let r = results(&out);
    assert_eq!(
        r.iter().map(|x| x["index"].clone()).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert!(r.iter().all(|x| x["line"] == 1));
    assert_eq!(
        (r[2]["id"].clone(), r[2]["status"].clone()),
        ("bad".into(), "invalid".into())
    );
    // `index` follows `line` (and `input`) in every result format that has fields.
    let line = String::from_utf8(out.stdout.clone()).expect("utf-8");
    assert!(
        line.starts_with("{\"line\":1,\"index\":0,\"id\":\"a\""),
        "{line}"
    );
    let v = run(&["validate", "-q"], input.as_bytes());
    assert_eq!(results(&v)[3]["index"], 3);
    let table = run(&["screen", "--format", "table", "-q"], input.as_bytes());
    let table = String::from_utf8(table.stdout).expect("utf-8");
    assert!(table.contains("line 1 [2]  bad  INVALID"), "{table}");
    // NDJSON records have no index.
    let out = run(&["screen", "-q"], profile("n").as_bytes());
    assert!(results(&out)[0].get("index").is_none());
}

#[test]
fn framed_input_is_byte_identical_at_any_thread_count() {
    // Batches, pretty-printed records, broken ones and blank lines, past several chunks.
    let mut input = String::new();
    for k in 0..3000 {
        match k % 6 {
            0 => input.push_str(&format!("{}\n", profile(&format!("n{k}")))),
            1 => input.push_str(&format!(
                "[{},{}]\n",
                profile(&format!("a{k}")),
                profile(&format!("b{k}"))
            )),
            2 => input.push_str(&format!("{{\n  \"id\": \"p{k}\",\n  \"age\": 80\n}}\n")),
            3 => input.push_str("{\"id\":\"cut\",\"age\":\n"),
            4 => input.push_str("\n\n"),
            _ => input.push_str(&format!(
                "[\n  {},\n  {}\n]\n",
                profile(&format!("c{k}")),
                profile(&format!("d{k}"))
            )),
        }
    }
    let one = run(&["screen", "--threads", "1", "-q"], input.as_bytes());
    let four = run(&["screen", "--threads", "4", "-q"], input.as_bytes());
    assert_eq!(code(&one), 1);
    assert!(
        one.stdout == four.stdout,
        "--threads 1 and --threads 4 differ"
    );
    assert_eq!(results(&one).len(), 3000 / 6 * 7);
}
