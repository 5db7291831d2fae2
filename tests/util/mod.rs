//! Helpers shared by the integration tests: run the real binary, read its output, find the external data.
//! Each test crate uses a part of them.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test crate uses a part of these helpers"
)]

#[path = "data.rs"]
mod data;
pub use data::{external, root};

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_medscreen");

/// Run the binary with no standard input.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

/// Run the binary, writing `chunks` to its standard input one by one with `pause` between them.
pub fn run_chunks(args: &[&str], chunks: &[&[u8]], pause: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().expect("stdin");
    let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
    let feeder = std::thread::spawn(move || {
        for (k, c) in chunks.iter().enumerate() {
            if k > 0 {
                std::thread::sleep(pause);
            }
            if input.write_all(c).and_then(|()| input.flush()).is_err() {
                return;
            }
        }
    });
    let out = child.wait_with_output().expect("finishes");
    feeder.join().expect("feeder");
    out
}

/// Run the binary with `stdin` on its standard input.
pub fn run_stdin(args: &[&str], stdin: &[u8]) -> Output {
    run_chunks(args, &[stdin], Duration::ZERO)
}

/// Standard output as JSON lines, one result per line.
pub fn results(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

/// The exit code.
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON summary `both` of a run with two packs against `alone`, each pack's run by itself: the
/// records screened are counted once (as many as with one pack, flagged when any pack flagged them),
/// and the cautions by severity are every pack's added up.
pub fn assert_screened_once_and_cautions_per_pack(
    both: &serde_json::Value,
    alone: &[serde_json::Value; 2],
) {
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().expect("count");
    assert_eq!(
        n(both, "clear") + n(both, "flagged"),
        n(&alone[0], "clear") + n(&alone[0], "flagged")
    );
    assert!(n(both, "flagged") >= n(&alone[0], "flagged").max(n(&alone[1], "flagged")));
    for sev in ["critical", "warning", "info"] {
        let of = |v: &serde_json::Value| v["cautions_by_severity"][sev].as_u64().unwrap_or(0);
        assert_eq!(of(both), of(&alone[0]) + of(&alone[1]), "{sev}");
    }
}
