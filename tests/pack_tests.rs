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

/// Every embedded pack in its folder of `dir` (`NAME/pack.json`), as `rules/` keeps them.
fn embedded_packs_in(dir: &Path) {
    for (name, text) in medscreen::engine::EMBEDDED_PACKS {
        let folder = Path::new(name)
            .parent()
            .and_then(Path::file_name)
            .expect("folder");
        std::fs::create_dir_all(dir.join(folder)).expect("dir");
        std::fs::write(dir.join(folder).join("pack.json"), text).expect("pack");
    }
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

#[test]
fn every_embedded_pack_is_listed_and_passes_its_cases_at_full_coverage() {
    let out = run(&["rules", "packs"], b"");
    assert_eq!(code(&out), 0);
    let packs: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(packs, ["baclofen", "tizanidine"], "the default first");
    for pack in &packs {
        let out = run(
            &["rules", "test", "--pack", pack, "--min-coverage", "100"],
            b"",
        );
        assert_eq!(code(&out), 0, "{pack}: {}", stdout(&out));
        assert!(
            stdout(&out).starts_with(&format!("{pack}@")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn pack_chooses_the_drug_screened_and_the_default_stays_baclofen() {
    let profile =
        br#"{"id":"p","age":70,"hypotension":true,"tizanidine_daily_dose_mg":40,"comedications":["ciprofloxacin 500 mg"]}
"#;
    let rules_of = |o: &std::process::Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one result");
        assert!(v["ruleset"].is_string());
        v["cautions"]
            .as_array()
            .expect("cautions")
            .iter()
            .map(|c| c["rule"].as_str().expect("rule").to_owned())
            .collect()
    };
    let tizanidine = run(&["screen", "-q", "--pack", "tizanidine", "-"], profile);
    assert_eq!(code(&tizanidine), 0, "{}", stderr(&tizanidine));
    let got = rules_of(&tizanidine);
    assert_eq!(got.first().map(String::as_str), Some("TZN-CYP1A2-STRONG"));
    assert!(got.iter().all(|r| r.starts_with("TZN-")), "{got:?}");
    assert!(stdout(&tizanidine).contains("\"ruleset\":\"tizanidine@1.0.0#"));
    // The same file, whose facts include tizanidine's, is valid for the default pack.
    let default = run(&["screen", "-q", "-"], profile);
    assert_eq!(code(&default), 0, "{}", stderr(&default));
    assert!(rules_of(&default).iter().all(|r| r.starts_with("BAC-")));
    let typo = run(&["screen", "-q", "--pack", "tizanidne", "-"], profile);
    assert_eq!(code(&typo), 3);
    assert!(
        stderr(&typo).contains("did you mean `tizanidine`?"),
        "{}",
        stderr(&typo)
    );
    // FHIR input finds the order with the value sets' subject set, each pack's own when embedded;
    // value sets whose subject set is another drug's are refused, not misread.
    let dir = tempfile::tempdir().expect("tempdir");
    let baclofen = medscreen::fhir::valueset::EMBEDDED_PACKS
        .iter()
        .filter(|(pack, _)| *pack == "baclofen")
        .flat_map(|(_, files)| files.iter());
    for (name, text) in medscreen::fhir::valueset::EMBEDDED.iter().chain(baclofen) {
        std::fs::write(dir.path().join(name), text).expect("value set");
    }
    let sets = dir.path().to_str().expect("utf-8");
    let fhir = run(
        &[
            "screen",
            "--from",
            "fhir",
            "--pack",
            "tizanidine",
            "--valuesets",
            sets,
            "-",
        ],
        b"{}",
    );
    assert_eq!(code(&fhir), 2);
    assert!(
        stderr(&fhir).contains(
            "error: the value sets map orders of `baclofen`, but the pack that screens is `tizanidine`: FHIR input would read one drug's order as the other's\n  help: give `--valuesets` a directory whose subject set is the `tizanidine` drug, or screen with the `baclofen` pack\n"
        ),
        "{}",
        stderr(&fhir)
    );
}

#[test]
fn a_third_pack_with_its_own_fact_class_and_group_is_screened_and_tested_without_rust() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vocabulary: Value =
        serde_json::from_str(medscreen::engine::EMBEDDED_VOCABULARY).expect("vocabulary");
    // A new class: anilides, with acetaminophen (paracetamol) in it and the ATC group for codes.
    vocabulary["classes"]
        .as_array_mut()
        .expect("classes")
        .push(json!({"id": "anilide", "title": "Anilides", "parent": null,
                     "atc_prefixes": ["N02BE"], "sources": ["S13"]}));
    for ingredient in vocabulary["ingredients"]
        .as_array_mut()
        .expect("ingredients")
    {
        if ingredient["name"] == "acetaminophen" {
            ingredient["classes"]
                .as_array_mut()
                .expect("classes")
                .push("anilide".into());
        }
    }
    std::fs::write(dir.path().join("vocabulary.json"), vocabulary.to_string()).expect("write");
    embedded_packs_in(dir.path());
    let demo = dir.path().join("demo");
    std::fs::create_dir_all(demo.join("tests")).expect("demo dir");
    let pack = json!({
        "name": "demo", "version": "0.1.0",
        "description": "A pack the engine was not built with.",
        "facts": {"demo_falls_last_year": {"title": "falls in the last year",
                  "type": ["integer", "null"], "minimum": 0, "maximum": 100}},
        "sources": {"D1": {"label": "Test source", "citation": "Written for this test."}},
        "groups": [{"id": "DEMO-DDI", "title": "Interactions", "rules": ["DEMO-ANILIDE", "DEMO-OPIOID"]}],
        "rules": [
            {"id": "DEMO-FALLS", "title": "Falls", "sources": ["D1"], "tiers": [
                {"when": {"fact": "demo_falls_last_year", "op": "ge", "value": 2},
                 "severity": "warning", "message": "Two or more falls.", "action": "Assess."},
                {"when": {"fact": "demo_falls_last_year", "op": "ge", "value": 1},
                 "severity": "info", "message": "One fall.", "action": "Ask."}]},
            {"id": "DEMO-ANILIDE", "title": "Anilide", "sources": ["D1"], "tiers": [
                {"when": {"medication": {"class": "anilide"}},
                 "severity": "info", "message": "An anilide.", "action": "Note it."}]},
            {"id": "DEMO-OPIOID", "title": "Opioid", "sources": ["D1"], "tiers": [
                {"when": {"medication": {"class": "opioid"}},
                 "severity": "warning", "message": "An opioid.", "action": "Review."}]}
        ]
    });
    std::fs::write(demo.join("pack.json"), pack.to_string()).expect("demo pack");
    let cases = json!({
        "bases": {"a": {"id": "a", "age": 50, "demo_falls_last_year": 0, "comedications": []}},
        "cases": [
            {"case": "falls-2", "base": "a", "set": {"demo_falls_last_year": 2}, "expect": {"DEMO-FALLS": "warning"}},
            {"case": "falls-1", "base": "a", "set": {"demo_falls_last_year": 1}, "expect": {"DEMO-FALLS": "info"}},
            {"case": "falls-0", "base": "a", "expect": {"DEMO-FALLS": "silent", "DEMO-ANILIDE": "silent"}},
            {"case": "falls-unknown", "base": "a", "set": {"demo_falls_last_year": null}, "expect": {"DEMO-FALLS": "indeterminate"}},
            {"case": "paracetamol", "base": "a", "set": {"comedications": ["paracetamol 1 g"]}, "expect": {"DEMO-ANILIDE": "info", "DEMO-OPIOID": "silent"}},
            {"case": "codeine", "base": "a", "set": {"comedications": ["codeine 30 mg"]}, "expect": {"DEMO-OPIOID": "warning", "DEMO-ANILIDE": "silent"}}
        ]
    });
    std::fs::write(demo.join("tests/cases.json"), cases.to_string()).expect("cases");
    let rules = dir.path().to_str().expect("utf-8");
    let out = run(&["rules", "packs", "--rules", rules], b"");
    assert_eq!(
        stdout(&out),
        "baclofen\ndemo\ntizanidine\n",
        "{}",
        stderr(&out)
    );
    let out = run(
        &[
            "rules",
            "test",
            rules,
            "--pack",
            "demo",
            "--min-coverage",
            "100",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // A combination product: one card per ingredient, each under its own group member.
    let profile =
        br#"{"id":"q","age":50,"demo_falls_last_year":3,"comedications":["Tylenol with Codeine"]}"#;
    let out = run(
        &["screen", "-q", "--rules", rules, "--pack", "demo", "-"],
        profile,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("result");
    let fired: Vec<(&str, &str)> = v["cautions"]
        .as_array()
        .expect("cautions")
        .iter()
        .map(|c| {
            (
                c["rule"].as_str().expect("rule"),
                c["severity"].as_str().expect("sev"),
            )
        })
        .collect();
    assert_eq!(
        fired,
        [
            ("DEMO-FALLS", "warning"),
            ("DEMO-OPIOID", "warning"),
            ("DEMO-ANILIDE", "info")
        ]
    );
    assert!(
        v["ruleset"]
            .as_str()
            .expect("ruleset")
            .starts_with("demo@0.1.0#")
    );
    // The fact is typed from its declaration: a string or an out-of-range count is invalid.
    let out = run(
        &["screen", "-q", "--rules", rules, "--pack", "demo", "-"],
        br#"{"id":"r","age":50,"demo_falls_last_year":101}"#,
    );
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("/demo_falls_last_year"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_directory_of_packs_loads_what_its_packs_json_lists_and_knows_each_by_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("vocabulary.json"),
        medscreen::engine::EMBEDDED_VOCABULARY,
    )
    .expect("vocabulary");
    embedded_packs_in(dir.path());
    // A folder packs.json does not list is not loaded (this one would not even load).
    std::fs::create_dir_all(dir.path().join("draft")).expect("draft");
    std::fs::write(dir.path().join("draft/pack.json"), "{ not json").expect("draft pack");
    std::fs::write(
        dir.path().join("packs.json"),
        r#"{"packs": ["tizanidine", "baclofen"], "default": "tizanidine"}"#,
    )
    .expect("manifest");
    let rules = dir.path().to_str().expect("utf-8");
    let out = run(&["rules", "packs", "--rules", rules], b"");
    assert_eq!(stdout(&out), "tizanidine\nbaclofen\n", "{}", stderr(&out));
    // A pack whose name is not its folder's is refused.
    std::fs::rename(dir.path().join("baclofen"), dir.path().join("bac")).expect("rename");
    std::fs::write(
        dir.path().join("packs.json"),
        r#"{"packs": ["tizanidine", "bac"], "default": "tizanidine"}"#,
    )
    .expect("manifest");
    let out = run(&["rules", "packs", "--rules", rules], b"");
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("must be its folder's, `bac`"),
        "{}",
        stderr(&out)
    );
}
