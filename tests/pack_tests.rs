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
fn a_third_pack_with_its_own_fact_class_group_and_value_set_is_screened_and_tested_without_rust() {
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
    // FHIR input: the pack's own value set (`demo/valuesets/`) fills its new fact from an
    // Observation, with the set's own look-back window; the shared sets are read from `valuesets/`.
    // Still no Rust: `fills` names the fact and the kind of reading, checked against the pack.
    let shared = dir.path().join("valuesets");
    std::fs::create_dir_all(&shared).expect("valuesets dir");
    for (name, text) in medscreen::fhir::valueset::EMBEDDED {
        std::fs::write(shared.join(name), text).expect("shared set");
    }
    std::fs::create_dir_all(demo.join("valuesets")).expect("demo valuesets dir");
    let falls = json!({
        "id": "demo-falls",
        "fills": {"kind": "observation", "fact": "demo_falls_last_year", "lookback_days": 365},
        "title": "Falls counted in the last year",
        "sources": {"D1": {"label": "Test source", "citation": "Written for this test."}},
        "observation": {
            "codes": [{"system": "loinc", "code": "99999-9", "display": "Falls in the last year (a test code)",
                       "evidence": "M", "source": "D1"}],
            "units": ["{#}"]
        }
    });
    std::fs::write(demo.join("valuesets/falls.json"), falls.to_string()).expect("falls set");
    let observation = |patient: &str, id: &str, date: &str, value: f64| {
        json!({"resource": {"resourceType": "Observation", "id": id, "status": "final",
            "subject": {"reference": format!("urn:uuid:{patient}")}, "effectiveDateTime": date,
            "code": {"coding": [{"system": "http://loinc.org", "code": "99999-9"}]},
            "valueQuantity": {"value": value, "unit": "{#}"}}})
    };
    let patient = |id: &str| {
        json!({"fullUrl": format!("urn:uuid:{id}"), "resource": {"resourceType": "Patient", "id": id,
            "gender": "female", "birthDate": "1950-01-01"}})
    };
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        // Two falls 200 days before the evaluation date (an older count of 0 is not the latest).
        patient("recent"),
        observation("recent", "f1", "2023-11-14", 2.0),
        observation("recent", "f0", "2023-08-01", 0.0),
        // One count, 400 days before: outside the set's 365-day window.
        patient("old"),
        observation("old", "f2", "2023-04-28", 3.0),
        // Not a count: an integer fact takes integral values only.
        patient("half"),
        observation("half", "f3", "2024-05-01", 1.5)
    ]});
    let bundle_path = dir.path().join("falls-bundle.json");
    std::fs::write(&bundle_path, bundle.to_string()).expect("bundle");
    let fhir = |extra: &[&str]| {
        let mut args = vec![
            "screen",
            "-q",
            "--rules",
            rules,
            "--valuesets",
            rules,
            "--pack",
            "demo",
            "--from",
            "fhir",
            "--as-of",
            "2024-06-01",
        ];
        args.extend_from_slice(extra);
        args.push(bundle_path.to_str().expect("utf-8"));
        run(&args, b"")
    };
    // `--lookback-days 30` is the run's window; the set's own 365 days applies to it.
    let out = fhir(&["--lookback-days", "30"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let results: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("result"))
        .collect();
    let falls_rule = |r: &Value| -> (String, Value) {
        if let Some(c) = r["cautions"]
            .as_array()
            .expect("cautions")
            .iter()
            .find(|c| c["rule"] == "DEMO-FALLS")
        {
            return (
                c["severity"].as_str().expect("sev").to_owned(),
                c["evidence"][0].clone(),
            );
        }
        let undecided = r["indeterminate"]
            .as_array()
            .expect("indeterminate")
            .iter()
            .any(|i| i["rule"] == "DEMO-FALLS");
        (
            if undecided { "indeterminate" } else { "silent" }.to_owned(),
            Value::Null,
        )
    };
    let (severity, evidence) = falls_rule(&results[0]);
    assert_eq!(
        (results[0]["id"].as_str(), severity.as_str()),
        (Some("recent"), "warning")
    );
    assert_eq!(evidence["pointer"], "/demo_falls_last_year");
    assert_eq!(evidence["value"], json!(2), "written as the integer it is");
    assert_eq!(evidence["fhir"][0]["resource"], "Observation/f1");
    assert_eq!(evidence["fhir"][0]["valueset"], "demo-falls");
    assert_eq!(falls_rule(&results[1]).0, "indeterminate", "{}", results[1]);
    assert_eq!(falls_rule(&results[2]).0, "indeterminate", "{}", results[2]);
    // A set that fills a fact the pack does not declare is refused at start, with file and pointer.
    let mut misspelt = falls.clone();
    misspelt["fills"]["fact"] = json!("demo_falls_last_yr");
    std::fs::write(demo.join("valuesets/falls.json"), misspelt.to_string()).expect("falls set");
    let out = fhir(&[]);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains(
            "falls.json at /fills/fact: unknown fact `demo_falls_last_yr`\n  help: did you mean `demo_falls_last_year`?"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
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
