//! `medscreen serve`, the binary: it refuses to start without `--trust` or `--insecure-no-auth` (exit 2),
//! and starts on an ephemeral port and answers discovery. The service itself is tested without the
//! binary in `crates/medscreen-cds/tests/`.

#[test]
fn serve_needs_trust_or_insecure_and_starts_on_port_zero() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_medscreen");
    let out = Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trust") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    let bad = Command::new(exe)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--trust",
            "/nonexistent/trust.json",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let mut child = Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0", "--insecure-no-auth"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        client()
            .get(format!("{url}/cds-services"))
            .send()
            .await
            .unwrap()
            .status()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{line}");
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}
