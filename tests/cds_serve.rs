//! `medscreen serve`, the binary: it refuses to start without `--trust` or `--insecure-no-auth` (exit 2),
//! starts on an ephemeral port and answers discovery, offers every pack's services unless `--pack`
//! names some, and refuses an unknown pack (exit 3). The service itself is tested without the binary
//! in `crates/medscreen-cds/tests/`.

#[test]
fn serve_needs_trust_or_insecure_and_starts_on_port_zero() {
    use std::process::Command;
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
    let (body, line) = discovery(&[]);
    assert!(body.is_some_and(|b| b["services"].is_array()), "{line}");
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Start `medscreen serve --insecure-no-auth` on an ephemeral port with `args`, get its discovery
/// document, and stop it: the document (none if it did not start) and the first line it printed.
fn discovery(args: &[&str]) -> (Option<serde_json::Value>, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_medscreen"))
        .args(["serve", "--addr", "127.0.0.1:0", "--insecure-no-auth"])
        .args(args)
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
        .find(|w| w.starts_with("http://127.0.0.1:"));
    let body = url.map(|url| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let resp = client()
                .get(format!("{url}/cds-services"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            serde_json::from_str::<serde_json::Value>(&resp.text().await.unwrap()).unwrap()
        })
    });
    child.kill().unwrap();
    child.wait().unwrap();
    (body, line)
}

/// The ids of the services `serve` with `args` lists.
fn discovered_ids(args: &[&str]) -> Vec<String> {
    let (body, line) = discovery(args);
    let body = body.unwrap_or_else(|| panic!("serve did not start: {line}"));
    body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

const TIZANIDINE: [&str; 3] = [
    "tizanidine-order-select",
    "tizanidine-order-sign",
    "tizanidine-medication-prescribe",
];

#[test]
fn serve_offers_every_pack_and_pack_restricts() {
    let all = discovered_ids(&[]);
    assert_eq!(
        all,
        [
            "baclofen-order-select",
            "baclofen-order-sign",
            "baclofen-medication-prescribe",
        ]
        .into_iter()
        .chain(TIZANIDINE)
        .collect::<Vec<_>>()
    );
    assert_eq!(discovered_ids(&["--pack", "tizanidine"]), TIZANIDINE);
    // Named twice, offered once; in the order named.
    let ids = discovered_ids(&[
        "--pack",
        "tizanidine",
        "--pack",
        "baclofen",
        "--pack",
        "tizanidine",
    ]);
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(ids[..3], TIZANIDINE);
    // A directory of packs offers its packs, each with the value sets laid out beside them.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    assert_eq!(
        discovered_ids(&["--rules", rules, "--valuesets", rules]),
        all
    );
}

#[test]
fn serve_refuses_an_unknown_pack_as_a_load_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medscreen"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--pack",
            "tizanidine",
            "--pack",
            "tizanidin",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no pack `tizanidin`") && err.contains("tizanidine"),
        "{err}"
    );
}
