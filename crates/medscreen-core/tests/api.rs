//! Library API: thread-safety, loading from a directory, ordering, evidence.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use medscreen_core::{Engine, Severity, Status};
use serde_json::{Value, json};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn engine_is_send_and_sync() {
    assert_send_sync::<Engine>();
}

#[test]
fn embedded_pack_loads_with_every_rule_cited() {
    let engine = Engine::embedded().expect("embedded pack compiles");
    assert_eq!(engine.ruleset().name, "baclofen");
    assert!(engine.ruleset().label.starts_with("baclofen@2.0.0#"));
    assert_eq!(engine.ruleset().hash.len(), 64);
    assert_eq!(engine.rules().len(), 44);
    for rule in engine.rules() {
        assert!(!rule.sources.is_empty(), "{} cites no source", rule.id);
        for s in &rule.sources {
            assert!(
                s.url.is_some() || s.citation.is_some(),
                "{}: source `{}` has neither URL nor citation",
                rule.id,
                s.label
            );
        }
    }
}

#[test]
fn a_rule_changed_in_json_changes_behaviour_with_no_rust_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut pack: Value =
        serde_json::from_str(medscreen_core::engine::EMBEDDED_PACK).expect("pack");
    // Lower the labelled maximum dose from 80 to 60 mg/day.
    let rules = pack["rules"].as_array_mut().expect("rules");
    let dose = rules
        .iter_mut()
        .find(|r| r["id"] == "BAC-DOSE-MAX")
        .expect("BAC-DOSE-MAX");
    dose["tiers"][0]["when"]["value"] = json!(60);
    std::fs::write(
        dir.path().join("pack.json"),
        serde_json::to_string(&pack).expect("json"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("vocabulary.json"),
        medscreen_core::engine::EMBEDDED_VOCABULARY,
    )
    .expect("write");

    let profile = br#"{"id": "p", "age": 40, "baclofen_daily_dose_mg": 70}"#;
    let fires = |e: &Engine| {
        e.screen_json(profile)
            .expect("valid")
            .cautions
            .iter()
            .any(|c| c.rule == "BAC-DOSE-MAX")
    };
    let embedded = Engine::embedded().expect("embedded");
    let modified = Engine::from_dir(dir.path()).expect("modified pack loads");
    assert!(!fires(&embedded));
    assert!(fires(&modified));
    assert_ne!(
        embedded.ruleset().hash,
        modified.ruleset().hash,
        "content hash follows the content"
    );
}

#[test]
fn the_rules_directory_in_the_repository_is_the_embedded_pack() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
    let from_dir = Engine::from_dir(std::path::Path::new(dir)).expect("rules/ loads");
    assert_eq!(
        from_dir.ruleset().hash,
        Engine::embedded().expect("embedded").ruleset().hash
    );
}

#[test]
fn cautions_are_ordered_by_severity_then_pack_order() {
    let engine = Engine::embedded().expect("embedded");
    let s = engine
        .screen_json(br#"{"id": "p", "age": 70, "sex": "male", "egfr": 25, "alcohol_use": true,
            "diabetes": true, "discontinuation": "abrupt", "comedications": ["oxycodone 5 mg", "Xanax 0.5 mg"]}"#)
        .expect("valid");
    assert_eq!(s.status, Status::Flagged);
    assert_eq!(s.max_severity, Some(Severity::Critical));
    let order: Vec<(&str, Severity)> = s.cautions.iter().map(|c| (c.rule, c.severity)).collect();
    let pack_index = |id: &str| {
        engine
            .rules()
            .iter()
            .position(|r| r.id == id)
            .expect("rule")
    };
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.1 > b.1 || (a.1 == b.1 && pack_index(a.0) < pack_index(b.0)),
            "{a:?} before {b:?}"
        );
    }
    assert_eq!(order[0], ("BAC-RENAL", Severity::Critical));
}

#[test]
fn evidence_names_the_facts_and_the_matched_medication() {
    let engine = Engine::embedded().expect("embedded");
    let s = engine
        .screen_json(br#"{"id": "p", "age": 66, "egfr": 45.5, "comedications": ["atorvastatin", {"name": "Percocet 5/325"}]}"#)
        .expect("valid");
    let beers = s
        .cautions
        .iter()
        .find(|c| c.rule == "BAC-RENAL-BEERS")
        .expect("fires");
    let ev: Vec<(String, Value)> = beers
        .evidence
        .iter()
        .map(|e| (e.pointer.to_string(), e.value.clone()))
        .collect();
    assert_eq!(
        ev,
        vec![
            ("/age".to_owned(), json!(66)),
            ("/egfr".to_owned(), json!(45.5))
        ]
    );
    let opioid = s
        .cautions
        .iter()
        .find(|c| c.rule == "BAC-DDI-OPIOID")
        .expect("fires");
    let e = &opioid.evidence[0];
    assert_eq!(e.pointer, "/comedications/1");
    assert_eq!(e.value, json!({"name": "Percocet 5/325"}));
    assert_eq!(e.ingredient, Some("oxycodone"));
    assert_eq!(e.class, Some("opioid"));
}

#[test]
fn status_reflects_cautions_only() {
    let engine = Engine::embedded().expect("embedded");
    let s = engine
        .screen_json(br#"{"id": "p", "age": 40}"#)
        .expect("valid");
    assert_eq!(s.status, Status::Clear);
    assert_eq!(s.max_severity, None);
    assert!(!s.indeterminate.is_empty());
}

#[test]
fn schema_and_typed_model_agree_on_every_fixture_profile() {
    let engine = Engine::embedded().expect("embedded");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/patients.ndjson"
    ))
    .expect("fixtures");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let schema_ok = engine.profile_schema().is_valid(&value);
        let typed = engine.facts().profile_from_value(&value);
        if schema_ok {
            let profile = typed.expect("schema-valid profile deserialises");
            // Round trip: the typed model keeps every fact the record gave.
            let back = serde_json::to_value(&profile).expect("serialises");
            for (k, v) in value.as_object().expect("object") {
                if !v.is_null() {
                    let b = &back[k];
                    let same = match (v.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => x == y,
                        _ => v == b,
                    };
                    assert!(same, "{k} differs after the typed round trip");
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "too few fixture profiles: {checked}");
}

#[test]
fn several_packs_screen_in_the_order_asked_each_as_it_would_alone() {
    let both = Engine::embedded_packs(&["tizanidine", "baclofen"]).expect("both packs");
    assert!(both.several());
    let order: Vec<&str> = both.screening_packs().map(|p| p.name()).collect();
    assert_eq!(order, ["tizanidine", "baclofen"]);
    assert_eq!(
        both.ruleset().name,
        "tizanidine",
        "the first asked is the first"
    );
    let one = Engine::embedded_packs(&[]).expect("the default");
    assert!(!one.several());
    assert_eq!(one.ruleset().name, "baclofen");
    assert_eq!(one.packs().count(), 2, "every embedded pack is known");
    let alone = [
        Engine::embedded_pack("tizanidine").expect("tizanidine"),
        Engine::embedded_pack("baclofen").expect("baclofen"),
    ];
    // The subject is never its own comedication, per pack: baclofen is a CNS depressant for
    // tizanidine and a duplicate for itself, and the other way round.
    let profile = both
        .parse_profile(
            br#"{"id": "p", "age": 70, "egfr": 40, "comedications": ["baclofen 10 mg", "tizanidine 4 mg", "oxycodone 5 mg", "Zzyzx"]}"#,
        )
        .expect("valid");
    let mut cache = medscreen_core::vocab::MatchCache::new();
    let screenings = both.screen_packs_with(&profile, &mut cache);
    assert_eq!(screenings.len(), 2);
    for (s, engine) in screenings.iter().zip(&alone) {
        let single = engine.screen(&profile);
        assert_eq!(s.pack, engine.ruleset().name);
        assert_eq!(s.ruleset, engine.ruleset().label);
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::to_value(&single).unwrap(),
            "{}",
            s.pack
        );
    }
    let rules = |k: usize| -> Vec<&str> { screenings[k].cautions.iter().map(|c| c.rule).collect() };
    assert!(rules(0).contains(&"TZN-DUPLICATE"));
    assert!(rules(0).contains(&"TZN-CNS-DEPRESSANT"));
    let e = Engine::embedded_packs(&["baclofen", "baclofen"]).expect_err("twice");
    assert_eq!(e.0[0].code.as_str(), "duplicate");
}
