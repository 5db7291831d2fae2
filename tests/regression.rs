//! Regression tests for bugs found by adversarial testing, each named after what it broke.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_medscreen");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
