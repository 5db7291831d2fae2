//! Several packs in one pass (`--pack A --pack B`): each record's result holds one screening per pack,
//! and each of them is exactly what that pack alone reports for the record.

mod util;

use std::path::Path;

use serde_json::Value;
use util::{code, results, run, run_stdin, stderr};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Profiles to compare on: the fixtures, and generated ones (with invalid records among them).
fn profiles(dir: &Path) -> String {
    let generated = dir.join("generated.ndjson");
    let out = run(&[
        "generate",
        "--count",
        "3000",
        "--seed",
        "11",
        "--invalid-rate",
        "0.02",
        "-o",
        generated.to_str().expect("utf-8"),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut text =
        std::fs::read_to_string(util::root().join("fixtures/patients.ndjson")).expect("fixture");
    text.push_str(&std::fs::read_to_string(&generated).expect("generated"));
    text
}

/// A one-pack result without what says where the record was: what a pack says about it.
fn screening_of(mut result: Value) -> Value {
    if let Some(o) = result.as_object_mut() {
        for key in ["line", "id", "input", "index"] {
            o.remove(key);
        }
    }
    result
}

#[test]
fn each_packs_screening_is_what_that_pack_alone_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = profiles(dir.path());
    for detail in ["compact", "full"] {
        for min in ["info", "warning"] {
            let args = |packs: &[&str]| {
                let mut a = vec!["screen", "-q", "--detail", detail, "--min-severity", min];
                for p in packs {
                    a.extend(["--pack", p]);
                }
                a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()
            };
            let run_with = |packs: &[&str]| {
                let a = args(packs);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                run_stdin(&a, text.as_bytes())
            };
            let both = run_with(&["tizanidine", "baclofen"]);
            let baclofen = run_with(&["baclofen"]);
            let tizanidine = run_with(&["tizanidine"]);
            assert_eq!(code(&both), code(&baclofen), "{}", stderr(&both));
            let (both, alone) = (results(&both), [results(&tizanidine), results(&baclofen)]);
            assert_eq!(both.len(), alone[0].len());
            let mut screened = 0;
            for (k, r) in both.iter().enumerate() {
                let single: Vec<&Value> = alone.iter().map(|a| &a[k]).collect();
                assert_eq!(r["line"], single[0]["line"]);
                assert_eq!(r["id"], single[0]["id"]);
                if r["status"] == "invalid" {
                    // An invalid record is invalid for every pack, reported once, as today.
                    assert_eq!(r, single[0]);
                    assert_eq!(r, single[1]);
                    continue;
                }
                screened += 1;
                assert_eq!(r["shape"], "screenings/1", "{r}");
                let packs = r["screenings"].as_array().expect("screenings");
                assert_eq!(packs.len(), 2);
                for ((p, name), one) in packs.iter().zip(["tizanidine", "baclofen"]).zip(&single) {
                    assert_eq!(p["pack"], name);
                    let mut p = p.clone();
                    p.as_object_mut().expect("object").remove("pack");
                    assert_eq!(p, screening_of((*one).clone()), "record {k}, {name}");
                }
                // The record is flagged when any pack flags it, at the highest severity of any.
                let flagged = single.iter().any(|s| s["status"] == "flagged");
                assert_eq!(r["status"], if flagged { "flagged" } else { "clear" });
                let rank = |s: &Value| match s.as_str() {
                    Some("info") => 1,
                    Some("warning") => 2,
                    Some("critical") => 3,
                    _ => 0,
                };
                let max = single.iter().map(|s| rank(&s["max_severity"])).max();
                assert_eq!(Some(rank(&r["max_severity"])), max, "{r}");
            }
            assert!(screened > 2500, "{screened}");
        }
    }
}

#[test]
fn the_summary_counts_records_once_and_each_pack_as_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = profiles(dir.path());
    let summary = |packs: &[&str]| {
        let file = dir.path().join(format!("summary-{}.json", packs.join("-")));
        let mut a = vec!["screen", "-q", "-o", "/dev/null", "--summary"];
        a.push(file.to_str().expect("utf-8"));
        for p in packs {
            a.extend(["--pack", p]);
        }
        let out = run_stdin(&a, text.as_bytes());
        assert_eq!(code(&out), 1, "invalid records: {}", stderr(&out));
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("summary")).expect("json");
        s
    };
    let both = summary(&["baclofen", "tizanidine"]);
    let alone = [summary(&["baclofen"]), summary(&["tizanidine"])];
    let packs = both["packs"].as_array().expect("packs");
    assert_eq!(packs.len(), 2);
    for (p, one) in packs.iter().zip(&alone) {
        for key in [
            "clear",
            "flagged",
            "cautions_by_severity",
            "cautions_by_rule",
            "indeterminate_by_rule",
            "ruleset",
        ] {
            assert_eq!(p[key], one[key], "{key}");
        }
    }
    assert!(alone[0].get("packs").is_none(), "one pack, today's shape");
    assert_eq!(
        both["ruleset"],
        format!(
            "{},{}",
            alone[0]["ruleset"].as_str().expect("ruleset"),
            alone[1]["ruleset"].as_str().expect("ruleset")
        )
    );
    // Records: flagged when any pack flagged them.
    let n = |v: &Value, k: &str| v[k].as_u64().expect("count");
    assert_eq!(n(&both, "invalid"), n(&alone[0], "invalid"));
    util::assert_screened_once_and_cautions_per_pack(&both, &alone);
}

#[test]
fn table_csv_and_explain_put_the_packs_side_by_side() {
    let profile = br#"{"id": "p-1", "age": 72, "egfr": 20, "hypotension": true, "comedications": ["fluvoxamine 50 mg", "oxycodone 5 mg"]}"#;
    let both = ["--pack", "baclofen", "--pack", "tizanidine"];

    let table = run_stdin(
        &[&["screen", "-q", "--format", "table"][..], &both[..]].concat(),
        profile,
    );
    let text = stdout(&table);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("line 1  p-1  FLAGGED (CRITICAL)"),
        "{text}"
    );
    let comparison = lines.next().expect("comparison line");
    assert!(
        comparison.starts_with("  baclofen: ") && comparison.contains("; tizanidine: "),
        "{comparison}"
    );
    assert!(comparison.contains("critical"), "{comparison}");
    let b = text.find("  [baclofen]\n").expect("baclofen block");
    let t = text.find("  [tizanidine]\n").expect("tizanidine block");
    assert!(b < t);
    assert!(text[b..t].contains("BAC-DDI-OPIOID"));
    assert!(text[t..].contains("TZN-CYP1A2-STRONG"));
    assert!(!text[t..].contains("BAC-"));

    let csv = run_stdin(
        &[&["screen", "-q", "--format", "csv"][..], &both[..]].concat(),
        profile,
    );
    let text = stdout(&csv);
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("input,line,index,id,pack,status,rule,severity,title")
    );
    for row in rows {
        let cols: Vec<&str> = row.split(',').collect();
        let rule = cols[6];
        let pack = cols[4];
        assert_eq!(rule.starts_with("BAC-"), pack == "baclofen", "{row}");
        assert_eq!(rule.starts_with("TZN-"), pack == "tizanidine", "{row}");
    }

    let explain = run_stdin(&[&["explain"][..], &both[..]].concat(), profile);
    let text = stdout(&explain);
    assert_eq!(code(&explain), 0, "{}", stderr(&explain));
    assert!(text.starts_with("profile p-1: baclofen: "), "{text}");
    let b = text.find("\n== baclofen ==\n").expect("baclofen section");
    let t = text
        .find("\n== tizanidine ==\n")
        .expect("tizanidine section");
    assert!(b < t);
    assert!(text[t..].contains("[CRITICAL] TZN-CYP1A2-STRONG"));
}

#[test]
fn fail_on_is_judged_over_every_pack() {
    // Tizanidine alone finds a critical here (a strong CYP1A2 inhibitor); baclofen alone does not.
    let profile = br#"{"id": "p-1", "age": 40, "comedications": ["fluvoxamine 50 mg"]}"#;
    let one = run_stdin(&["screen", "-q", "--fail-on", "critical"], profile);
    assert_eq!(code(&one), 0, "{}", stderr(&one));
    let both = run_stdin(
        &[
            "screen",
            "-q",
            "--fail-on",
            "critical",
            "--pack",
            "baclofen",
            "--pack",
            "tizanidine",
        ],
        profile,
    );
    assert_eq!(code(&both), 4, "{}", stderr(&both));
}

#[test]
fn a_pack_asked_for_twice_or_unknown_is_a_load_error() {
    let twice = run_stdin(&["screen", "--pack", "baclofen", "--pack", "baclofen"], b"");
    assert_eq!(code(&twice), 3);
    assert!(
        stderr(&twice).contains("pack `baclofen` is asked for twice"),
        "{}",
        stderr(&twice)
    );
    let unknown = run_stdin(
        &["screen", "--pack", "baclofen", "--pack", "tizanidin"],
        b"",
    );
    assert_eq!(code(&unknown), 3);
    let e = stderr(&unknown);
    assert!(e.contains("no pack `tizanidin`"), "{e}");
    assert!(e.contains("did you mean `tizanidine`?"), "{e}");
}

#[test]
fn the_population_report_reads_several_pack_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = profiles(dir.path());
    let results = dir.path().join("results.ndjson");
    let page = dir.path().join("report.html");
    let out = run_stdin(
        &[
            "screen",
            "-q",
            "--pack",
            "baclofen",
            "--pack",
            "tizanidine",
            "-o",
            results.to_str().expect("utf-8"),
        ],
        text.as_bytes(),
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = run(&[
        "report",
        results.to_str().expect("utf-8"),
        "-o",
        page.to_str().expect("utf-8"),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("Packs side by side"), "both packs are shown");
    assert!(html.contains("<code>baclofen@"));
    assert!(html.contains("<code>tizanidine@"));
    assert!(html.contains("packs' record counts overlap"));
}

#[test]
fn with_nothing_screened_the_summary_still_lists_every_pack_and_validate_keeps_its_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.json");
    let invalid = b"{\"id\": \"a\", \"age\": 200}\n{\"id\": \"b\", \"pregnent\": true}\n";
    let out = run_stdin(
        &[
            "screen",
            "-q",
            "-o",
            "/dev/null",
            "--pack",
            "baclofen",
            "--pack",
            "tizanidine",
            "--summary",
            summary.to_str().expect("utf-8"),
        ],
        invalid,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let packs: Vec<&Value> = s["packs"].as_array().expect("packs").iter().collect();
    assert_eq!(packs.len(), 2, "{s}");
    assert_eq!(packs[0]["pack"], "baclofen");
    assert_eq!(packs[1]["pack"], "tizanidine");
    assert_eq!(packs[1]["clear"], 0);

    // `validate` screens nothing: no `pack` column.
    let out = run_stdin(
        &[
            "validate",
            "-q",
            "--format",
            "csv",
            "--pack",
            "baclofen",
            "--pack",
            "tizanidine",
        ],
        invalid,
    );
    assert!(
        stdout(&out).starts_with("input,line,index,id,status,rule,severity,title\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn fhir_input_refuses_a_pack_asked_for_twice() {
    let synthea = util::root().join("fixtures/fhir/synthea");
    let out = run(&[
        "screen",
        "--from",
        "fhir",
        "--pack",
        "baclofen",
        "--pack",
        "baclofen",
        synthea.to_str().expect("utf-8"),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("pack `baclofen` is asked for twice"));
    assert!(out.stdout.is_empty());
}
