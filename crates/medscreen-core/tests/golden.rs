//! Golden tests: for every tier of every rule, a profile that fires it and a boundary neighbour that
//! does not. Expectations are written by hand in `rules/baclofen/tests/cases.json`; the full screenings are
//! checked in as `fixtures/golden/expected.ndjson` (regenerate with `MEDSCREEN_UPDATE_GOLDEN=1 cargo test`
//! and review the diff like code).

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};

use medscreen_core::Engine;
use serde_json::{Map, Value};

const CASES: &str = include_str!("../../../rules/baclofen/tests/cases.json");
const EXPECTED_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/golden/expected.ndjson"
);

struct Case {
    name: String,
    profile: Value,
    expect: BTreeMap<String, String>,
}

fn cases() -> Vec<Case> {
    let doc: Value = serde_json::from_str(CASES).expect("cases.json parses");
    let bases = doc["bases"].as_object().expect("bases");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let name = c["case"].as_str().expect("case name").to_owned();
            let mut profile: Map<String, Value> = bases[c["base"].as_str().expect("base")]
                .as_object()
                .expect("base object")
                .clone();
            for (k, v) in c["set"].as_object().expect("set") {
                if v.is_null() {
                    profile.remove(k);
                } else {
                    profile.insert(k.clone(), v.clone());
                }
            }
            profile.insert("id".into(), Value::String(name.clone()));
            let expect = c["expect"]
                .as_object()
                .expect("expect")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("expect value").to_owned()))
                .collect();
            Case {
                name,
                profile: Value::Object(profile),
                expect,
            }
        })
        .collect()
}

/// How each rule came out for one screening: severity, "indeterminate" or "silent".
fn outcomes(engine: &Engine, s: &medscreen_core::Screening<'_>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = engine
        .rules()
        .iter()
        .map(|r| (r.id.clone(), "silent".to_owned()))
        .collect();
    for c in &s.cautions {
        out.insert(c.rule.to_owned(), c.severity.as_str().to_owned());
    }
    for i in &s.indeterminate {
        out.insert(i.rule.to_owned(), "indeterminate".to_owned());
    }
    out
}

#[test]
fn every_case_gives_the_expected_outcome() {
    let engine = Engine::embedded().expect("embedded pack");
    let mut failures = Vec::new();
    for case in cases() {
        let profile = match engine.validate_value(&case.profile) {
            Ok(p) => p,
            Err(r) => {
                failures.push(format!("{}: invalid profile: {:?}", case.name, r.problems));
                continue;
            }
        };
        let got = outcomes(&engine, &engine.screen(&profile));
        for (rule, want) in &case.expect {
            match got.get(rule) {
                None => failures.push(format!("{}: no rule `{rule}` in the pack", case.name)),
                Some(g) if g != want => {
                    failures.push(format!("{}: `{rule}` expected {want}, got {g}", case.name))
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_tier_has_a_firing_case_and_a_non_firing_neighbour() {
    let engine = Engine::embedded().expect("embedded pack");
    let cases = cases();
    let mut missing = Vec::new();
    for rule in engine.rules() {
        let seen: Vec<&str> = cases
            .iter()
            .filter_map(|c| c.expect.get(&rule.id))
            .map(String::as_str)
            .collect();
        // Tiers may share a severity (BAC-CNS-BURDEN has two critical tiers); each such tier has its
        // own case, told apart by its message in expected.ndjson.
        let severities: BTreeSet<&str> = rule.tiers.iter().map(|t| t.severity.as_str()).collect();
        for sev in severities {
            if !seen.contains(&sev) {
                missing.push(format!("{}: no case fires the {sev} tier", rule.id));
            }
        }
        if !seen.contains(&"silent") {
            missing.push(format!("{}: no case where it stays silent", rule.id));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn full_screenings_match_the_checked_in_golden_file() {
    let engine = Engine::embedded().expect("embedded pack");
    let mut lines = String::new();
    for case in cases() {
        let profile = engine.validate_value(&case.profile).expect("valid");
        lines.push_str(&serde_json::to_string(&engine.screen(&profile)).expect("serialises"));
        lines.push('\n');
    }
    if std::env::var_os("MEDSCREEN_UPDATE_GOLDEN").is_some() {
        std::fs::write(EXPECTED_PATH, &lines).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(EXPECTED_PATH).expect("golden file exists");
    for (k, (got, want)) in lines.lines().zip(expected.lines()).enumerate() {
        assert_eq!(
            got,
            want,
            "golden line {} differs (regenerate with MEDSCREEN_UPDATE_GOLDEN=1 and review)",
            k + 1
        );
    }
    assert_eq!(
        lines.lines().count(),
        expected.lines().count(),
        "golden file has a different number of cases"
    );
}

#[test]
fn a_profile_with_only_id_and_age_is_indeterminate_not_passed() {
    let engine = Engine::embedded().expect("embedded pack");
    let s = engine
        .screen_json(br#"{"id": "bare", "age": 40}"#)
        .expect("valid");
    assert!(s.cautions.is_empty());
    let got: Vec<(&str, Vec<&str>)> = s
        .indeterminate
        .iter()
        .map(|i| (i.rule, i.missing.to_vec()))
        .collect();
    let meds = vec!["comedications"];
    let want: Vec<(&str, Vec<&str>)> = vec![
        ("BAC-PREGNANCY", vec!["pregnant"]),
        ("BAC-PREGNANCY-UNKNOWN", vec!["sex"]),
        ("BAC-BREASTFEEDING", vec!["breastfeeding"]),
        ("BAC-SEIZURE", vec!["seizure_history"]),
        (
            "BAC-RENAL",
            vec!["dialysis", "egfr", "ckd_stage", "kidney_disease"],
        ),
        (
            "BAC-RENAL-DOSE",
            vec!["egfr", "baclofen_daily_dose_mg", "ckd_stage"],
        ),
        ("BAC-STROKE", vec!["stroke_history"]),
        ("BAC-SPASTICITY-RELIANCE", vec!["relies_on_spasticity"]),
        ("BAC-DUPLICATE", meds.clone()),
        ("BAC-DDI-OPIOID", meds.clone()),
        ("BAC-DDI-OXYBATE", meds.clone()),
        (
            "BAC-DDI-GABAPENTINOID",
            vec!["comedications", "egfr", "respiratory_impairment"],
        ),
        ("BAC-DDI-BENZODIAZEPINE", meds.clone()),
        ("BAC-DDI-ANXIOLYTIC", meds.clone()),
        ("BAC-DDI-ANTICONVULSANT", meds.clone()),
        ("BAC-DDI-ANTIDEPRESSANT", meds.clone()),
        ("BAC-DDI-ANTIPSYCHOTIC", meds.clone()),
        ("BAC-DDI-ANTIHISTAMINE", meds.clone()),
        ("BAC-DDI-MUSCLE-RELAXANT", meds.clone()),
        ("BAC-DDI-HYPNOTIC", meds.clone()),
        ("BAC-DDI-OTHER-CNS-DEPRESSANT", meds.clone()),
        ("BAC-DDI-LEVODOPA", meds.clone()),
        ("BAC-DDI-LITHIUM", meds.clone()),
        ("BAC-DDI-ANTIHYPERTENSIVE", meds.clone()),
        ("BAC-DDI-ANTIDIABETIC", meds.clone()),
        ("BAC-CNS-BURDEN", meds.clone()),
        ("BAC-ALCOHOL", vec!["alcohol_use"]),
        ("BAC-INDICATION-NOT-EFFECTIVE", vec!["indication"]),
        ("BAC-INDICATION-OFF-LABEL", vec!["indication"]),
        ("BAC-PSYCHIATRIC", vec!["psychiatric_disorder"]),
        ("BAC-AUTONOMIC-DYSREFLEXIA", vec!["autonomic_dysreflexia"]),
        ("BAC-RESPIRATORY", vec!["respiratory_impairment"]),
        ("BAC-LIVER", vec!["liver_disease"]),
        ("BAC-DIABETES", vec!["diabetes"]),
        ("BAC-HEART", vec!["heart_disease"]),
        ("BAC-DOSE-MAX", vec!["baclofen_daily_dose_mg"]),
        ("BAC-ABRUPT-STOP", vec!["discontinuation"]),
        ("BAC-OVARIAN-CYSTS", vec!["sex"]),
        ("BAC-MACHINERY", vec!["operates_machinery"]),
        ("BAC-UNRECOGNIZED-MEDICATION", meds),
    ];
    assert_eq!(got, want);
    // Age is known: the age rules are decided (silent at 40), and so is the renal rule for older adults.
    for decided in [
        "BAC-AGE-PEDIATRIC",
        "BAC-AGE-OLDER",
        "BAC-RENAL-BEERS",
        "BAC-RENAL-UNKNOWN",
    ] {
        assert!(
            s.indeterminate.iter().all(|i| i.rule != decided),
            "{decided} should be decided"
        );
    }
}
