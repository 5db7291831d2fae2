//! FHIR input: golden patients worked out by hand from the Synthea bundles and their manifest, the
//! evaluation-date and lookback boundaries, the open/closed world, baclofen orders, and the HL7 examples.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

#[path = "../../../tests/util/data.rs"]
mod data;

use std::path::{Path, PathBuf};

use medscreen_core::Engine;
use medscreen_fhir::bulk;
use medscreen_fhir::bundle::read_bundle;
use medscreen_fhir::date::Date;
use medscreen_fhir::{Absent, Binding, Mapper, Options, Outcome, PatientFacts, ValueSets};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    data::root().join("fixtures/fhir")
}

fn opts(as_of: &str) -> Options {
    Options {
        as_of: Date::parse(as_of).unwrap(),
        lookback_days: 365,
        absent: Absent::False,
    }
}

/// The embedded engine and value sets, bound.
fn embedded() -> Binding {
    Binding::new(Engine::embedded().unwrap(), ValueSets::embedded().unwrap()).unwrap()
}

fn bundle_facts(mapper: &Mapper<'_>, path: &Path) -> Vec<PatientFacts> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let b = read_bundle(mapper, &v, &path.display().to_string(), 1);
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    b.patients
}

fn bulk_facts(mapper: &Mapper<'_>, dir: &Path) -> Vec<PatientFacts> {
    let ex = bulk::scan(dir).unwrap();
    let b = bulk::read_export(mapper, &ex).unwrap();
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    b.patients
}

/// Status, profile and caution rules of one patient.
fn screen(
    engine: &Engine,
    mapper: &Mapper<'_>,
    f: &PatientFacts,
) -> (String, Value, Value, Vec<String>) {
    match mapper.profile(f) {
        Outcome::Skipped(_) => ("skipped".into(), Value::Null, Value::Null, vec![]),
        Outcome::Invalid(p) => (format!("invalid {p:?}"), Value::Null, Value::Null, vec![]),
        Outcome::Profile {
            profile,
            provenance,
        } => {
            let p = engine
                .validate_value(&profile)
                .expect("mapped profiles are valid");
            let s = engine.screen(&p);
            let rules = s.cautions.iter().map(|c| c.rule.to_owned()).collect();
            let status = if s.cautions.is_empty() {
                "clear"
            } else {
                "flagged"
            };
            (
                status.into(),
                profile,
                serde_json::to_value(&provenance).unwrap(),
                rules,
            )
        }
    }
}

#[test]
fn golden_patients() {
    let b = embedded();
    let engine = b.engine();
    let cases: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixtures().join("golden.json")).unwrap()).unwrap();
    assert!(cases.len() >= 10);
    for case in &cases {
        let mapper = b.mapper(opts(case["as_of"].as_str().unwrap()));
        let file = case["file"].as_str().unwrap();
        let path = fixtures().join(file);
        let facts = if file == "bulk" {
            bulk_facts(&mapper, &path)
        } else {
            bundle_facts(&mapper, &path)
        };
        let id = case["id"].as_str().unwrap();
        let f = facts
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("{id} in {file}"));
        let (status, profile, prov, rules) = screen(engine, &mapper, f);
        let ctx = format!("{file} {id} ({})", case["why"]);
        assert_eq!(status, case["status"].as_str().unwrap(), "{ctx}");
        for (k, want) in case["facts"].as_object().unwrap() {
            assert_eq!(
                profile.get(k).unwrap_or(&Value::Null),
                want,
                "{ctx}: fact {k}"
            );
        }
        for (pointer, prefix) in case["fhir"].as_object().unwrap() {
            let first = prov[pointer][0]["resource"].as_str().unwrap_or("");
            assert!(
                first.starts_with(prefix.as_str().unwrap()),
                "{ctx}: {pointer} from {first}"
            );
        }
        if let Some(want) = case.get("cautions").and_then(Value::as_array) {
            let mut want: Vec<&str> = want.iter().map(|v| v.as_str().unwrap()).collect();
            let mut got: Vec<&str> = rules.iter().map(String::as_str).collect();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "{ctx}");
        }
        for r in case
            .get("cautions_include")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            assert!(
                rules.iter().any(|x| x == r.as_str().unwrap()),
                "{ctx}: {r} in {rules:?}"
            );
        }
    }
}

fn one(b: &Binding, o: Options, file: &str) -> (String, Value, Vec<String>) {
    let mapper = b.mapper(o);
    let facts = bundle_facts(&mapper, &fixtures().join(file));
    let (s, p, _, r) = screen(b.engine(), &mapper, &facts[0]);
    (s, p, r)
}

const CLARINE: &str = "synthea/Clarine_OKeefe_e8c2a98e-6524-46cc-8d3b-48bc91f7cd2d.json";

#[test]
fn lookback_window_boundary() {
    let b = embedded();
    // Clarine's latest eGFR is dated 2021-03-28, 65 days before 2021-06-01.
    let mut o = opts("2021-06-01");
    o.lookback_days = 65;
    assert_eq!(one(&b, o, CLARINE).1["egfr"], json!(40.89));
    o.lookback_days = 64;
    let (_, p, _) = one(&b, o, CLARINE);
    assert_ne!(
        p.get("egfr"),
        Some(&json!(40.89)),
        "the 2021-03-28 value is outside a 64-day window"
    );
}

#[test]
fn evaluation_date_hides_later_records() {
    let b = embedded();
    // Clarine's stroke was recorded on 2019-05-26.
    let (_, p, r) = one(&b, opts("2019-05-25"), CLARINE);
    assert_eq!(p["stroke_history"], json!(false));
    assert!(!r.iter().any(|x| x == "BAC-STROKE"));
    let (_, p, r) = one(&b, opts("2019-05-26"), CLARINE);
    assert_eq!(p["stroke_history"], json!(true));
    assert!(r.iter().any(|x| x == "BAC-STROKE"));
}

#[test]
fn age_in_completed_years_boundary() {
    let b = embedded();
    let erin = "synthea/Erin_Rempel_25b2d9e2-7275-4508-bc0a-690946500cb0.json"; // born 2003-06-16
    assert_eq!(one(&b, opts("2021-06-15"), erin).1["age"], json!(17));
    let (_, p, r) = one(&b, opts("2021-06-16"), erin);
    assert_eq!(p["age"], json!(18));
    assert!(!r.iter().any(|x| x == "BAC-AGE-PEDIATRIC"));
}

#[test]
fn deceased_boundary() {
    let b = embedded();
    let barrett = "synthea/Barrett_Douglas_d21c38f7-9fc7-4729-b414-3e0fe5ce3d8b.json"; // died 2010-01-17
    assert_eq!(one(&b, opts("2010-01-16"), barrett).0, "flagged");
    assert_eq!(one(&b, opts("2010-01-17"), barrett).0, "skipped");
}

#[test]
fn absent_unknown_opens_the_world() {
    let b = embedded();
    let adan = "synthea/Adan_Portillo_22bbe238-220e-495c-8abc-0ce3aa28a605.json";
    let mut o = opts("2021-06-01");
    o.absent = Absent::Unknown;
    let (_, p, r) = one(&b, o, adan);
    assert_eq!(p.get("kidney_disease"), None);
    assert_eq!(
        p["stroke_history"],
        json!(true),
        "what is recorded stays known"
    );
    assert!(r.iter().any(|x| x == "BAC-RENAL-UNKNOWN"), "{r:?}");
    let (_, p, r) = one(&b, opts("2021-06-01"), adan);
    assert_eq!(p["kidney_disease"], json!(false));
    assert!(!r.iter().any(|x| x == "BAC-RENAL-UNKNOWN"));
    // Pregnancy is never assumed from absence, whatever the setting.
    let liz = "synthea/Liz_Conn_27c911c6-f045-4ffa-af5d-6eba57ac94b2.json";
    assert_eq!(one(&b, opts("2021-06-01"), liz).1.get("pregnant"), None);
}

fn synthetic(entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

fn run_bundle(b: &Value, as_of: &str) -> (Outcome, Vec<String>) {
    let binding = embedded();
    let engine = binding.engine();
    let mapper = binding.mapper(opts(as_of));
    let facts = read_bundle(&mapper, b, "test", 1);
    let out = mapper.profile(&facts.patients[0]);
    let rules = match &out {
        Outcome::Profile { profile, .. } => engine
            .screen(&engine.validate_value(profile).unwrap())
            .cautions
            .iter()
            .map(|c| c.rule.to_owned())
            .collect(),
        _ => vec![],
    };
    (out, rules)
}

fn patient() -> Value {
    json!({"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-05-01"}})
}

#[test]
fn baclofen_order_gives_dose_and_indication_and_is_not_a_comedication() {
    // Synthetic: no baclofen order exists in the Synthea sample.
    let b = synthetic(json!([
        patient(),
        {"resource": {"resourceType": "MedicationRequest", "id": "bac", "status": "active", "intent": "order",
          "subject": {"reference": "urn:uuid:p1"}, "authoredOn": "2021-05-01",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197391", "display": "baclofen 10 MG Oral Tablet"}]},
          "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G80.9", "display": "Cerebral palsy, unspecified"}]}],
          "dosageInstruction": [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "TAB"}}]}]}},
        {"resource": {"resourceType": "MedicationRequest", "id": "oxy", "status": "active", "intent": "order",
          "subject": {"reference": "Patient/p1"}, "authoredOn": "2021-05-01",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049621", "display": "oxycodone hydrochloride 5 MG Oral Tablet"}]}}},
        {"resource": {"resourceType": "Observation", "id": "gfr", "status": "final", "subject": {"reference": "urn:uuid:p1"},
          "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8"}]}, "effectiveDateTime": "2021-04-01",
          "valueString": "< 15"}}
    ]));
    let (out, rules) = run_bundle(&b, "2021-06-01");
    let Outcome::Profile {
        profile,
        provenance,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(profile["baclofen_daily_dose_mg"], json!(30.0));
    assert_eq!(profile["indication"], json!("cerebral palsy"));
    assert_eq!(
        profile["comedications"].as_array().unwrap().len(),
        1,
        "{profile}"
    );
    assert_eq!(profile["egfr"], json!(15.0));
    assert_eq!(
        provenance["/indication"][0].resource,
        "MedicationRequest/bac"
    );
    for r in [
        "BAC-INDICATION-NOT-EFFECTIVE",
        "BAC-DDI-OPIOID",
        "BAC-RENAL",
        "BAC-RENAL-DOSE",
    ] {
        assert!(rules.iter().any(|x| x == r), "{r} in {rules:?}");
    }
}

#[test]
fn creatinine_clearance_is_a_proxy_only_without_egfr_and_units_are_checked() {
    let obs = |id: &str, code: &str, value: f64, unit: &str, date: &str| {
        json!({"resource": {
        "resourceType": "Observation", "id": id, "status": "final", "subject": {"reference": "urn:uuid:p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "effectiveDateTime": date,
        "valueQuantity": {"value": value, "unit": unit}}})
    };
    let b = synthetic(json!([
        patient(),
        obs("c", "35591-7", 25.0, "mL/min", "2021-05-20")
    ]));
    let Outcome::Profile {
        profile,
        provenance,
    } = run_bundle(&b, "2021-06-01").0
    else {
        panic!()
    };
    assert_eq!(profile["egfr"], json!(25.0));
    assert!(
        provenance["/egfr"][0]
            .note
            .as_deref()
            .unwrap()
            .contains("proxy")
    );
    let b = synthetic(json!([
        patient(),
        obs("c", "35591-7", 25.0, "mL/min", "2021-05-20"),
        obs("e", "62238-1", 55.0, "mL/min/{1.73_m2}", "2021-01-01"),
        obs("x", "62238-1", 5.0, "mg/dL", "2021-05-30")
    ]));
    let Outcome::Profile { profile, .. } = run_bundle(&b, "2021-06-01").0 else {
        panic!()
    };
    assert_eq!(
        profile["egfr"],
        json!(55.0),
        "eGFR beats a newer CrCl; a value in mg/dL is not an eGFR"
    );
    // Preliminary results and results after the evaluation date do not count.
    let mut late = obs("l", "62238-1", 20.0, "mL/min/{1.73_m2}", "2021-06-02");
    late["resource"]["status"] = json!("final");
    let mut pre = obs("p", "62238-1", 21.0, "mL/min/{1.73_m2}", "2021-05-31");
    pre["resource"]["status"] = json!("preliminary");
    let b = synthetic(json!([patient(), late, pre]));
    let Outcome::Profile { profile, .. } = run_bundle(&b, "2021-06-01").0 else {
        panic!()
    };
    assert_eq!(profile.get("egfr"), None);
}

#[test]
fn pregnancy_status_observation_outranks_an_older_condition() {
    let cond = json!({"resource": {"resourceType": "Condition", "id": "preg", "subject": {"reference": "urn:uuid:p1"},
        "clinicalStatus": {"coding": [{"code": "active"}]}, "recordedDate": "2021-01-01",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z33.1"}]}}});
    let obs = |date: &str, answer: &str| {
        json!({"resource": {"resourceType": "Observation", "id": "ps", "status": "final",
        "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": date,
        "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
        "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": answer}]}}})
    };
    let get = |b: &Value| match run_bundle(b, "2021-06-01").0 {
        Outcome::Profile { profile, .. } => profile.get("pregnant").cloned(),
        o => panic!("{o:?}"),
    };
    assert_eq!(
        get(&synthetic(json!([patient(), cond.clone()]))),
        Some(json!(true))
    );
    assert_eq!(
        get(&synthetic(json!([
            patient(),
            cond.clone(),
            obs("2021-03-01", "LA26683-5")
        ]))),
        Some(json!(false))
    );
    assert_eq!(
        get(&synthetic(json!([
            patient(),
            cond.clone(),
            obs("2020-12-01", "LA26683-5")
        ]))),
        Some(json!(true))
    );
    assert_eq!(
        get(&synthetic(json!([
            patient(),
            obs("2021-03-01", "LA15173-0")
        ]))),
        Some(json!(true))
    );
    assert_eq!(
        get(&synthetic(json!([
            patient(),
            obs("2021-03-01", "LA4489-6")
        ]))),
        None,
        "unknown stays unknown"
    );
    // Refuted and entered-in-error conditions do not count.
    let mut refuted = cond.clone();
    refuted["resource"]["verificationStatus"] = json!({"coding": [{"code": "refuted"}]});
    assert_eq!(get(&synthetic(json!([patient(), refuted]))), None);
}

fn external() -> Option<PathBuf> {
    data::external()
}

#[test]
fn hl7_r4_and_us_core_examples() {
    let b = embedded();
    let engine = b.engine();
    let ex = fixtures().join("examples");
    // eGFR in components (R4 Observation-f205: `> 60` and `60`, MDRD, dated only by `issued`).
    let mapper = b.mapper(opts("2013-05-01"));
    let f = bundle_facts(&mapper, &ex.join("r4-f201.json"));
    let Outcome::Profile {
        profile,
        provenance,
    } = mapper.profile(&f[0])
    else {
        panic!()
    };
    assert_eq!(profile["egfr"], json!(60.0));
    assert_eq!(provenance["/egfr"][0].resource, "Observation/f205");
    // Pregnancy status (US Core, SNOMED answer), a patient without gender, contained and referenced Medications.
    let mapper = b.mapper(opts("2023-01-01"));
    let f = bundle_facts(&mapper, &ex.join("uscore-amy.json"));
    let (status, profile, prov, rules) = screen(engine, &mapper, &f[0]);
    assert_eq!(status, "flagged");
    assert_eq!(profile["pregnant"], json!(true));
    assert_eq!(
        profile.get("sex"),
        None,
        "US Core 8 examples carry no gender"
    );
    assert_eq!(
        prov["/pregnant"][0]["resource"],
        json!("Observation/pregnancy-status")
    );
    let meds = profile["comedications"].as_array().unwrap();
    assert_eq!(
        meds.iter()
            .filter(|m| m["rxnorm"] == json!("582620"))
            .count(),
        2,
        "{meds:?}"
    );
    assert!(rules.iter().any(|r| r == "BAC-PREGNANCY"));
    assert!(
        rules.iter().any(|r| r == "BAC-DDI-ANTIHISTAMINE"),
        "Tylenol PM: diphenhydramine"
    );
    // Stroke from R4 Condition-stroke; family history and text-only conditions change nothing.
    let f = bundle_facts(&mapper, &ex.join("r4-example.json"));
    let (_, profile, _, _) = screen(engine, &mapper, &f[0]);
    assert_eq!(profile["stroke_history"], json!(true));
    assert_eq!(profile["seizure_history"], json!(false));
    // No birthDate: a clear error, not a crash; deceased: skipped.
    let f = bundle_facts(&mapper, &ex.join("r4-pat1.json"));
    let Outcome::Invalid(p) = mapper.profile(&f[0]) else {
        panic!()
    };
    assert_eq!(
        (p[0].code, p[0].pointer.as_str()),
        ("missing_field", "/birthDate")
    );
    let f = bundle_facts(&mapper, &ex.join("uscore-deceased.json"));
    assert!(matches!(mapper.profile(&f[0]), Outcome::Skipped(r) if r.contains("2022-07-22")));
}

#[test]
fn every_external_hl7_example_parses() {
    let Some(ext) = external() else { return };
    let b = embedded();
    let engine = b.engine();
    let mapper = b.mapper(opts("2025-01-01"));
    for dir in ["fhir-r4-core-examples", "us-core-8.0.1-examples"] {
        let mut entries = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(ext.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for p in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
        {
            let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            if v["resourceType"] == "Bundle" {
                // Searchset and batch-response Bundles without a Patient: one clear file-level problem.
                let b = read_bundle(&mapper, &v, &p.display().to_string(), 1);
                assert!(
                    !b.patients.is_empty() || b.problems.iter().any(|x| x.code == "no_patient"),
                    "{p:?}: {:?}",
                    b.problems
                );
                for f in &b.patients {
                    if let Outcome::Profile { profile, .. } = mapper.profile(f) {
                        engine.validate_value(&profile).unwrap();
                    }
                }
            } else {
                let url = format!(
                    "http://example.org/fhir/{}/{}",
                    v["resourceType"].as_str().unwrap(),
                    v["id"].as_str().unwrap()
                );
                entries.push(json!({"fullUrl": url, "resource": v}));
            }
        }
        // Everything in one Bundle: each Patient gets a result, and nothing panics.
        let b = read_bundle(&mapper, &synthetic(Value::Array(entries)), dir, 1);
        assert!(b.patients.len() >= 4, "{dir}");
        for f in &b.patients {
            match mapper.profile(f) {
                Outcome::Profile { profile, .. } => {
                    engine.validate_value(&profile).unwrap();
                }
                Outcome::Skipped(_) => {}
                Outcome::Invalid(p) => {
                    for x in &p {
                        assert!(
                            matches!(x.code, "broken_reference" | "missing_field"),
                            "{dir}: {x:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn value_sets_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ValueSets>();
    check::<Binding>();
    check::<Mapper<'static>>();
}

#[test]
fn per_patient_memory_stays_small() {
    // The README states the Bulk cost per patient; this keeps the fixed part honest.
    let size = std::mem::size_of::<PatientFacts>();
    println!("PatientFacts: {size} bytes");
    assert!(size <= 2048, "{size}");
}

#[test]
fn an_unresolved_medication_reference_counts_by_its_display_and_without_one_is_an_error() {
    let order = |reference: Value| {
        json!({"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
          "intent": "order", "subject": {"reference": "urn:uuid:p1"}, "authoredOn": "2021-05-01",
          "medicationReference": reference}})
    };
    let named = synthetic(json!([
        patient(),
        order(json!({"reference": "Medication/elsewhere", "display": "oxycodone 5 mg tablet"}))
    ]));
    let (_, rules) = run_bundle(&named, "2021-06-01");
    assert!(rules.iter().any(|r| r == "BAC-DDI-OPIOID"), "{rules:?}");
    let unnamed = synthetic(json!([
        patient(),
        order(json!({"reference": "Medication/elsewhere"}))
    ]));
    let (out, _) = run_bundle(&unnamed, "2021-06-01");
    let Outcome::Invalid(problems) = out else {
        panic!("{out:?}")
    };
    assert_eq!(problems[0].code, "broken_reference");
}

// ---- Pack 2.0: hand-written bundles in fixtures/fhir/pack2 (see fixtures/fhir/README.md). ----

/// The mapped profile and provenance of the one patient of a pack-2.0 bundle, read through the
/// engine's vocabulary as `medscreen` does.
fn pack2(b: &Binding, file: &str, as_of: &str) -> (Value, Value) {
    let mapper = b.mapper(opts(as_of));
    let facts = bundle_facts(&mapper, &fixtures().join("pack2").join(file));
    assert_eq!(facts.len(), 1, "{file}");
    let (_, profile, prov, _) = screen(b.engine(), &mapper, &facts[0]);
    assert!(profile.is_object(), "{file} maps to a profile");
    (profile, prov)
}

#[test]
fn ckd_n18_5_without_egfr_at_70_gives_stage_5() {
    let b = embedded();
    let (p, prov) = pack2(&b, "ckd-n18-5-no-egfr.json", "2024-06-01");
    assert_eq!(p["age"], json!(70));
    assert_eq!(p["ckd_stage"], json!("5"));
    assert_eq!(p["kidney_disease"], json!(true));
    assert_eq!(p.get("egfr"), None, "no eGFR is ever made up from a stage");
    assert_eq!(
        p["dialysis"],
        json!(false),
        "N18.5 is not end-stage disease"
    );
    assert_eq!(prov["/ckd_stage"][0]["resource"], json!("Condition/c-n185"));
    assert_eq!(prov["/ckd_stage"][0]["code"], json!("N18.5"));
    assert_eq!(p["baclofen_daily_dose_mg"], json!(30.0));
}

#[test]
fn unspecified_stage_3_reads_as_3a_and_says_so() {
    let b = embedded();
    let (p, prov) = pack2(&b, "ckd-stage-readings.json", "2024-06-01");
    assert_eq!(p["ckd_stage"], json!("3a"));
    let note = prov["/ckd_stage"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("3a") && note.contains("least severe"),
        "{note}"
    );
}

#[test]
fn of_several_active_ckd_stages_the_most_severe_wins() {
    let b = embedded();
    let (p, prov) = pack2(&b, "ckd-most-severe.json", "2024-06-01");
    assert_eq!(p["ckd_stage"], json!("4"));
    let from: Vec<&str> = prov["/ckd_stage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["resource"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["Condition/c-ckd4"]);
    // All three still make kidney_disease true.
    assert_eq!(prov["/kidney_disease"].as_array().unwrap().len(), 3);
}

#[test]
fn regression_a_lactation_disorder_is_not_pregnancy() {
    // O92.70 matched the whole-chapter prefix O and made a breastfeeding mother pregnant.
    let b = embedded();
    let (p, prov) = pack2(&b, "o92-lactation-breastfeeding.json", "2024-06-01");
    assert_eq!(p["breastfeeding"], json!(true));
    assert_ne!(p.get("pregnant"), Some(&json!(true)));
    assert_eq!(
        p.get("pregnant"),
        None,
        "pregnancy is never assumed from absence"
    );
    assert_eq!(
        prov["/breastfeeding"][0]["display"],
        json!("LA29252-6 Currently breastfeeding")
    );
}

#[test]
fn breastfeeding_status_answers_from_the_63895_7_answer_list() {
    let b = embedded();
    let mapper = b.mapper(opts("2024-06-01"));
    let bundle = |answer: &str| {
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1990-01-01"}},
            {"resource": {"resourceType": "Observation", "id": "o", "status": "final", "subject": {"reference": "urn:uuid:p"},
              "code": {"coding": [{"system": "http://loinc.org", "code": "63895-7"}]}, "effectiveDateTime": "2024-05-01",
              "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": answer}]}}}]})
    };
    for (answer, want) in [
        ("LA29252-6", Some(json!(true))),
        ("LA29253-4", Some(json!(false))),
        ("LA4489-6", None),
        // The generic yes/no answers are not in this question's answer list any more.
        ("LA33-6", None),
    ] {
        let facts = read_bundle(&mapper, &bundle(answer), "t", 1);
        let Outcome::Profile { profile, .. } = mapper.profile(&facts.patients[0]) else {
            panic!("{answer}")
        };
        assert_eq!(profile.get("breastfeeding").cloned(), want, "{answer}");
    }
}

#[test]
fn intrathecal_baclofen_is_a_comedication_that_names_its_route_and_gives_no_dose() {
    let b = embedded();
    let (p, prov) = pack2(&b, "intrathecal-and-oral.json", "2024-06-01");
    assert_eq!(
        p["comedications"],
        json!([{"name": "baclofen 2000 MCG/ML Injectable Solution (intrathecal)"}])
    );
    assert_eq!(
        p["baclofen_daily_dose_mg"],
        json!(30.0),
        "from the oral order only"
    );
    assert_eq!(
        prov["/baclofen_daily_dose_mg"][0]["resource"],
        json!("MedicationRequest/rx-oral")
    );
    assert_eq!(
        prov["/comedications/0"][0]["resource"],
        json!("MedicationRequest/rx-it")
    );
    // The intrathecal order is the later one: before, it would have been the order screened.
    assert!(
        prov["/comedications/0"][0]["note"]
            .as_str()
            .unwrap()
            .contains("intrathecal route")
    );
}

#[test]
fn an_intrathecal_product_named_only_in_text_is_recognised() {
    let b = embedded();
    let (p, _) = pack2(&b, "intrathecal-by-name-only.json", "2024-06-01");
    assert_eq!(
        p["comedications"],
        json!([{"name": "Lioresal Intrathecal 0.5 MG/ML (baclofen)"}])
    );
    assert_eq!(p.get("baclofen_daily_dose_mg"), None);
}

#[test]
fn sodium_oxybate_is_listed_as_a_comedication() {
    let b = embedded();
    let (p, _) = pack2(&b, "sodium-oxybate.json", "2024-06-01");
    assert_eq!(
        p["comedications"],
        json!([{"name": "sodium oxybate 500 MG/ML Oral Solution"}])
    );
    assert_eq!(p["baclofen_daily_dose_mg"], json!(30.0));
}

#[test]
fn autonomic_dysreflexia_and_respiratory_impairment_from_their_value_sets() {
    let b = embedded();
    let (p, prov) = pack2(&b, "g904-j449.json", "2024-06-01");
    assert_eq!(p["autonomic_dysreflexia"], json!(true));
    assert_eq!(p["respiratory_impairment"], json!(true));
    assert_eq!(
        prov["/autonomic_dysreflexia"][0]["resource"],
        json!("Condition/c-g904")
    );
    assert_eq!(
        prov["/respiratory_impairment"][0]["valueset"],
        json!("respiratory-impairment")
    );
    // Closed world: not on the problem list means no.
    let (q, _) = pack2(&b, "ckd-n18-5-no-egfr.json", "2024-06-01");
    assert_eq!(q["autonomic_dysreflexia"], json!(false));
    assert_eq!(q["respiratory_impairment"], json!(false));
}

#[test]
fn every_rxnorm_and_atc_coding_reaches_the_vocabulary() {
    let b = embedded();
    let (p, _) = pack2(&b, "atc-codings.json", "2024-06-01");
    // ATC M03BX01 alone is baclofen, the order screened; the first RxNorm code the vocabulary knows is
    // taken; ATC codes are kept, also on a Medication's coded ingredients.
    assert_eq!(
        p["comedications"],
        json!([
            {"atc": "N02AA05"},
            {"name": "oxycodone", "rxnorm": "7804"},
            {"name": "oxycodone", "atc": "N02AA05"}
        ])
    );
}

/// Rules that fire, with their severity, for a pack-2.0 bundle.
fn pack2_cautions(file: &str) -> Vec<(String, String)> {
    let b = embedded();
    let engine = b.engine();
    let (profile, _) = pack2(&b, file, "2024-06-01");
    let p = engine.validate_value(&profile).unwrap();
    engine
        .screen(&p)
        .cautions
        .iter()
        .map(|c| (c.rule.to_owned(), c.severity.as_str().to_owned()))
        .collect()
}

#[test]
fn screening_n18_5_without_egfr_at_70_is_critical_renal_and_beers() {
    let got = pack2_cautions("ckd-n18-5-no-egfr.json");
    for rule in ["BAC-RENAL", "BAC-RENAL-BEERS"] {
        assert!(
            got.contains(&(rule.to_owned(), "critical".to_owned())),
            "{rule} critical in {got:?}"
        );
    }
}

#[test]
fn screening_intrathecal_plus_oral_is_a_critical_duplicate() {
    let got = pack2_cautions("intrathecal-and-oral.json");
    assert!(
        got.contains(&("BAC-DUPLICATE".to_owned(), "critical".to_owned())),
        "{got:?}"
    );
    // The oral order alone (a renewal of itself) is no duplicate.
    let got = pack2_cautions("ckd-n18-5-no-egfr.json");
    assert!(!got.iter().any(|(r, _)| r == "BAC-DUPLICATE"), "{got:?}");
}

/// The embedded value sets for baclofen with `edit` applied to the text of one file.
fn value_sets_with(file: &str, edit: impl Fn(&mut Value)) -> Result<ValueSets, String> {
    let own = medscreen_fhir::valueset::EMBEDDED_PACKS
        .iter()
        .filter(|(pack, _)| *pack == "baclofen")
        .flat_map(|(_, files)| files.iter());
    let files: Vec<(String, String)> = medscreen_fhir::valueset::EMBEDDED
        .iter()
        .chain(own)
        .map(|(name, text)| {
            let mut text = (*text).to_owned();
            if *name == file {
                let mut v: Value = serde_json::from_str(&text).unwrap();
                edit(&mut v);
                text = v.to_string();
            }
            (format!("valuesets/{name}"), text)
        })
        .collect();
    ValueSets::from_sources(&files).map_err(|e| e.to_string())
}

/// The embedded engine, its baclofen pack declaring one more fact.
fn engine_with_fact(name: &str, declaration: Value) -> Engine {
    let (file, text) = medscreen_core::engine::EMBEDDED_PACKS[0];
    let mut pack: Value = serde_json::from_str(text).unwrap();
    pack["facts"][name] = declaration;
    Engine::from_packs(
        &[(file, pack.to_string().as_str())],
        "rules/vocabulary.json",
        medscreen_core::engine::EMBEDDED_VOCABULARY,
    )
    .unwrap()
}

#[test]
fn the_fact_an_order_dose_fills_is_declared_by_the_subject_value_set() {
    let b = synthetic(json!([
        patient(),
        {"resource": {"resourceType": "MedicationRequest", "id": "bac", "status": "active", "intent": "order",
          "subject": {"reference": "urn:uuid:p1"}, "authoredOn": "2021-05-01",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197391", "display": "baclofen 10 MG Oral Tablet"}]},
          "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "TAB"}}]}]}}
    ]));
    let profile_with = |engine: Engine, vs: ValueSets| {
        let binding = Binding::new(engine, vs).unwrap();
        let mapper = binding.mapper(opts("2021-06-01"));
        let facts = read_bundle(&mapper, &b, "test", 1);
        match mapper.profile(&facts.patients[0]) {
            Outcome::Profile {
                profile,
                provenance,
            } => (profile, provenance),
            other => panic!("{other:?}"),
        }
    };
    let (p, prov) = profile_with(Engine::embedded().unwrap(), ValueSets::embedded().unwrap());
    assert_eq!(p["baclofen_daily_dose_mg"], json!(20.0));
    assert_eq!(
        prov["/baclofen_daily_dose_mg"][0].note.as_deref(),
        Some("dose x frequency of the latest active baclofen order")
    );
    // Another fact name in the data, declared by the pack: the dose goes there, nothing is written
    // in Rust.
    let rename = |v: &mut Value| v["fills"]["daily_dose_fact"] = json!("oral_dose_mg");
    let declared = engine_with_fact(
        "oral_dose_mg",
        json!({"type": ["number", "null"], "minimum": 0, "maximum": 1000}),
    );
    let (p, prov) = profile_with(declared, value_sets_with("baclofen.json", rename).unwrap());
    assert_eq!(p["oral_dose_mg"], json!(20.0));
    assert!(p.get("baclofen_daily_dose_mg").is_none());
    assert!(prov.contains_key("/oral_dose_mg"));
    // A fact the engine does not declare cannot be bound.
    let e = Binding::new(
        Engine::embedded().unwrap(),
        value_sets_with("baclofen.json", rename).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("baclofen.json at /fills/daily_dose_fact: unknown fact `oral_dose_mg`"),
        "{e}"
    );
    // Without one, the order is still the order screened (not a comedication) but its dose is not read.
    let without = value_sets_with("baclofen.json", |v| {
        v["fills"]
            .as_object_mut()
            .unwrap()
            .remove("daily_dose_fact");
    })
    .unwrap();
    let (p, _) = profile_with(Engine::embedded().unwrap(), without);
    assert!(p.get("baclofen_daily_dose_mg").is_none(), "{p}");
    assert!(
        p.get("comedications").is_none_or(|c| c == &json!([])),
        "{p}"
    );
    // Only the subject set may name one.
    let e = value_sets_with("egfr.json", |v| {
        v["fills"]["daily_dose_fact"] = json!("egfr");
    })
    .unwrap_err();
    assert!(
        e.contains(
            "egfr.json at /fills/daily_dose_fact: `observation` sets do not read `daily_dose_fact`"
        ),
        "{e}"
    );
}

#[test]
fn an_active_hypotension_condition_sets_the_shared_fact_and_a_resolved_one_does_not() {
    let condition = |id: &str, status: &str| {
        json!({"resource": {"resourceType": "Condition", "id": id, "subject": {"reference": "urn:uuid:p1"},
          "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
          "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I95.1", "display": "Orthostatic hypotension"}]},
          "onsetDateTime": "2020-01-01"}})
    };
    let profile_of = |b: &Value| match run_bundle(b, "2021-06-01").0 {
        Outcome::Profile { profile, .. } => profile,
        other => panic!("{other:?}"),
    };
    let active = profile_of(&synthetic(json!([patient(), condition("c1", "active")])));
    assert_eq!(active["hypotension"], json!(true), "{active}");
    let resolved = profile_of(&synthetic(json!([patient(), condition("c2", "resolved")])));
    assert_eq!(resolved["hypotension"], json!(false), "{resolved}");
}

// ---- alt_uln_ratio: ALT over its own reference range's upper limit (tizanidine's `alt.json`). ----

/// An ALT Observation (LOINC 1742-6) of `value` in `unit`, dated `date`, with `ranges` as its
/// referenceRange (left out when empty).
fn alt(id: &str, date: &str, value: f64, unit: &str, ranges: Value) -> Value {
    let mut r = json!({"resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": date,
        "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}});
    if ranges.as_array().is_some_and(|a| !a.is_empty()) {
        r["referenceRange"] = ranges;
    }
    json!({"resource": r})
}

fn high(value: f64, unit: &str) -> Value {
    json!([{"low": {"value": 7, "unit": unit}, "high": {"value": value, "unit": unit,
        "system": "http://unitsofmeasure.org", "code": unit}}])
}

/// The profile, provenance and TZN-LIVER outcome (`critical`, `info`... or `indeterminate`) of the
/// tizanidine pack for `observations`, evaluated on 2024-06-01 with a `lookback`-day window.
fn tizanidine_liver(observations: &[Value], lookback: u32) -> (Value, Value, String) {
    let binding = Binding::new(
        Engine::embedded_pack("tizanidine").unwrap(),
        ValueSets::embedded_for("tizanidine").unwrap(),
    )
    .unwrap();
    let mut o = opts("2024-06-01");
    o.lookback_days = lookback;
    let mapper = binding.mapper(o);
    let mut entries = vec![patient()];
    entries.extend(observations.iter().cloned());
    let facts = read_bundle(&mapper, &synthetic(Value::Array(entries)), "test", 1);
    let Outcome::Profile {
        profile,
        provenance,
    } = mapper.profile(&facts.patients[0])
    else {
        panic!("no profile")
    };
    let engine = binding.engine();
    let s = engine.screen(&engine.validate_value(&profile).unwrap());
    let liver = s
        .cautions
        .iter()
        .find(|c| c.rule == "TZN-LIVER")
        .map(|c| c.severity.as_str().to_owned())
        .or_else(|| {
            s.indeterminate
                .iter()
                .any(|i| i.rule == "TZN-LIVER")
                .then(|| "indeterminate".to_owned())
        })
        .unwrap_or_else(|| "silent".to_owned());
    (profile, serde_json::to_value(&provenance).unwrap(), liver)
}

#[test]
fn alt_at_three_times_its_upper_limit_is_critical_and_just_below_is_not() {
    let (p, prov, liver) = tizanidine_liver(
        &[alt("a1", "2024-05-01", 120.0, "U/L", high(40.0, "U/L"))],
        365,
    );
    assert_eq!(p["alt_uln_ratio"], json!(3.0));
    assert_eq!(liver, "critical");
    assert_eq!(prov["/alt_uln_ratio"][0]["resource"], "Observation/a1");
    assert_eq!(prov["/alt_uln_ratio"][0]["valueset"], "alt");
    assert_eq!(
        prov["/alt_uln_ratio"][0]["note"],
        "divided by the upper limit of its reference range, 40 U/L"
    );
    let (p, _, liver) = tizanidine_liver(
        &[alt("a1", "2024-05-01", 119.0, "U/L", high(40.0, "U/L"))],
        365,
    );
    assert_eq!(p["alt_uln_ratio"], json!(2.98));
    // Tier 2 (liver disease) is false on a closed-world problem list, so the rule does not fire.
    assert_eq!(liver, "silent");
}

#[test]
fn alt_without_a_reference_range_leaves_the_ratio_unknown() {
    let (p, _, liver) = tizanidine_liver(&[alt("a1", "2024-05-01", 300.0, "U/L", json!([]))], 365);
    assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
    assert_eq!(liver, "indeterminate");
    // The latest result decides: an older one with a range does not stand in for it.
    let (p, _, _) = tizanidine_liver(
        &[
            alt("old", "2024-01-01", 20.0, "U/L", high(40.0, "U/L")),
            alt("new", "2024-05-01", 300.0, "U/L", json!([])),
        ],
        365,
    );
    assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
    // A range that only names a low limit, or is of another meaning, gives no upper limit either.
    let low_only = json!([{"low": {"value": 7, "unit": "U/L"}}]);
    let treatment = json!([{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/referencerange-meaning", "code": "treatment"}]},
        "high": {"value": 40, "unit": "U/L"}}]);
    for ranges in [low_only, treatment] {
        let (p, _, _) = tizanidine_liver(&[alt("a1", "2024-05-01", 300.0, "U/L", ranges)], 365);
        assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
    }
    // Of several normal ranges, one upper limit is needed; two that differ leave it unknown.
    let normal = |v: f64| json!({"type": {"coding": [{"code": "normal"}]}, "high": {"value": v, "unit": "U/L"}});
    for (second, want) in [(40.0, Some(json!(3.0))), (56.0, None)] {
        let ranges = json!([normal(40.0), normal(second)]);
        let (p, _, _) = tizanidine_liver(&[alt("a1", "2024-05-01", 120.0, "U/L", ranges)], 365);
        assert_eq!(p.get("alt_uln_ratio").cloned(), want, "{p}");
    }
}

#[test]
fn alt_and_an_upper_limit_in_different_units_give_no_ratio() {
    // 120 U/L over 0.67 ukat/L would be read as 179: the units must be the same.
    let (p, _, liver) = tizanidine_liver(
        &[alt("a1", "2024-05-01", 120.0, "U/L", high(0.67, "ukat/L"))],
        365,
    );
    assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
    assert_eq!(liver, "indeterminate");
    // A value in a unit the set does not list is not read at all.
    let (p, _, _) = tizanidine_liver(
        &[alt("a1", "2024-05-01", 2.0, "ukat/L", high(0.67, "ukat/L"))],
        365,
    );
    assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
}

#[test]
fn alt_older_than_the_lookback_window_is_not_used() {
    // 2023-05-01 is 397 days before 2024-06-01.
    let old = [alt("a1", "2023-05-01", 200.0, "U/L", high(40.0, "U/L"))];
    let (p, _, liver) = tizanidine_liver(&old, 396);
    assert_eq!(p.get("alt_uln_ratio"), None, "{p}");
    assert_eq!(liver, "indeterminate");
    let (p, _, liver) = tizanidine_liver(&old, 397);
    assert_eq!(p["alt_uln_ratio"], json!(5.0));
    assert_eq!(liver, "critical");
}
