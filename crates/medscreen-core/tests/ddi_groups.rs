//! One card per ingredient across the interaction rules (pack group `BAC-DDI`): each comedication
//! ingredient is cited by the one rule of the group where it is most severe for the patient, the
//! earlier rule on a tie, and a rule left with no ingredient does not fire.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::collections::BTreeMap;

use medscreen_core::{Engine, Screening};
use serde_json::json;

fn engine() -> Engine {
    Engine::embedded().expect("embedded pack")
}

/// The group's cautions: rule id -> the ingredients it cites.
fn ddi(engine: &Engine, s: &Screening<'_>) -> BTreeMap<String, Vec<String>> {
    let group = &engine.groups()[0];
    assert_eq!(group.id, "BAC-DDI");
    let members: Vec<&str> = group
        .members
        .iter()
        .map(|&r| engine.rules()[r].id.as_str())
        .collect();
    s.cautions
        .iter()
        .filter(|c| members.contains(&c.rule))
        .map(|c| {
            let cited = c
                .evidence
                .iter()
                .filter_map(|e| e.ingredient.map(str::to_owned))
                .collect();
            (c.rule.to_owned(), cited)
        })
        .collect()
}

fn screen(engine: &Engine, profile: serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let text = serde_json::to_vec(&profile).expect("json");
    let s = engine.screen_json(&text).expect("valid profile");
    ddi(engine, &s)
}

/// Drugs in two or more interaction classes, and the single rule each must cite at 40 years with
/// normal kidney and lung function.
const DUAL_CLASS: &[(&str, &str)] = &[
    ("gabapentin 300 mg", "BAC-DDI-GABAPENTINOID"),
    ("pregabalin 75 mg", "BAC-DDI-GABAPENTINOID"),
    ("diazepam 5 mg", "BAC-DDI-BENZODIAZEPINE"),
    ("clonazepam 0.5 mg", "BAC-DDI-BENZODIAZEPINE"),
    ("clobazam 10 mg", "BAC-DDI-BENZODIAZEPINE"),
    ("lorazepam 1 mg", "BAC-DDI-BENZODIAZEPINE"),
    ("midazolam 2 mg", "BAC-DDI-BENZODIAZEPINE"),
    ("amitriptyline 25 mg", "BAC-DDI-ANTIDEPRESSANT"),
    ("doxepin 10 mg", "BAC-DDI-ANTIDEPRESSANT"),
    ("quetiapine 25 mg", "BAC-DDI-ANTIPSYCHOTIC"),
    ("trazodone 50 mg", "BAC-DDI-HYPNOTIC"),
    ("hydroxyzine 25 mg", "BAC-DDI-ANXIOLYTIC"),
    ("diphenhydramine 25 mg", "BAC-DDI-ANTIHISTAMINE"),
    ("doxylamine 25 mg", "BAC-DDI-ANTIHISTAMINE"),
    ("methadone 10 mg", "BAC-DDI-OPIOID"),
    ("buprenorphine 8 mg", "BAC-DDI-OPIOID"),
    ("esketamine 56 mg nasal", "BAC-DDI-OTHER-CNS-DEPRESSANT"),
];

#[test]
fn each_dual_class_drug_raises_one_card_from_its_rule() {
    let engine = engine();
    let mut wrong = Vec::new();
    for (drug, rule) in DUAL_CLASS {
        let got = screen(
            &engine,
            json!({"id": "p", "age": 40, "egfr": 95, "respiratory_impairment": false, "comedications": [drug]}),
        );
        let want: Vec<&str> = vec![rule];
        if got.keys().map(String::as_str).collect::<Vec<_>>() != want {
            wrong.push(format!("{drug}: want {rule}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn each_ingredient_goes_to_its_own_best_rule_whatever_else_is_taken() {
    let engine = engine();
    // Trazodone's best is HYPNOTIC (warning beats the antidepressant info tier), even next to
    // amitriptyline, which takes ANTIDEPRESSANT at warning.
    let got = screen(
        &engine,
        json!({"id": "p", "age": 40, "comedications": ["amitriptyline 10 mg", "trazodone 50 mg"]}),
    );
    let want: BTreeMap<String, Vec<String>> = [
        ("BAC-DDI-ANTIDEPRESSANT", vec!["amitriptyline"]),
        ("BAC-DDI-HYPNOTIC", vec!["trazodone"]),
    ]
    .into_iter()
    .map(|(r, i)| (r.to_owned(), i.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(got, want);

    // Sertraline alone is an info antidepressant; with amitriptyline both sit in one card, at the
    // tier the pair reaches (warning), each cited once.
    let got = screen(
        &engine,
        json!({"id": "p", "age": 40, "comedications": ["sertraline 50 mg", "amitriptyline 10 mg"]}),
    );
    assert_eq!(
        got.get("BAC-DDI-ANTIDEPRESSANT").map(Vec::len),
        Some(2),
        "{got:?}"
    );
    let s = engine
        .screen_json(br#"{"id": "p", "age": 40, "comedications": ["sertraline 50 mg", "amitriptyline 10 mg"]}"#)
        .expect("valid");
    let card = s
        .cautions
        .iter()
        .find(|c| c.rule == "BAC-DDI-ANTIDEPRESSANT")
        .expect("card");
    assert_eq!(card.severity.as_str(), "warning");
}

#[test]
fn the_gabapentinoid_tier_follows_the_patient() {
    let engine = engine();
    let severity = |profile: serde_json::Value| {
        let s = engine
            .screen_json(&serde_json::to_vec(&profile).expect("json"))
            .expect("valid");
        s.cautions
            .iter()
            .filter(|c| c.rule.starts_with("BAC-DDI-"))
            .map(|c| (c.rule.to_owned(), c.severity.as_str().to_owned()))
            .collect::<Vec<_>>()
    };
    let one = |r: &str, s: &str| vec![(r.to_owned(), s.to_owned())];
    assert_eq!(
        severity(json!({"id": "p", "age": 70, "egfr": 90, "comedications": ["gabapentin"]})),
        one("BAC-DDI-GABAPENTINOID", "critical")
    );
    assert_eq!(
        severity(
            json!({"id": "p", "age": 40, "egfr": 90, "respiratory_impairment": false, "comedications": ["gabapentin"]})
        ),
        one("BAC-DDI-GABAPENTINOID", "warning")
    );
}

#[test]
fn no_ingredient_of_the_vocabulary_is_cited_twice_by_the_group() {
    let engine = engine();
    let vocab = engine.vocabulary();
    let subject = engine.subject();
    let mut twice = Vec::new();
    let mut all = Vec::new();
    for (i, ing) in vocab.ingredients().iter().enumerate() {
        if Some(i as u32) == subject {
            continue;
        }
        all.push(ing.name.clone());
        for age in [40, 70] {
            let got = screen(
                &engine,
                json!({"id": "p", "age": age, "egfr": 45, "respiratory_impairment": true, "comedications": [ing.name]}),
            );
            let citing: Vec<&String> = got
                .iter()
                .filter(|(_, cited)| cited.contains(&ing.name))
                .map(|(r, _)| r)
                .collect();
            if got.len() > 1 || citing.len() != got.len() {
                twice.push(format!("{} at {age}: {got:?}", ing.name));
            }
        }
    }
    assert!(twice.is_empty(), "{}", twice.join("\n"));

    // Every ingredient at once: still each cited by one rule of the group at most.
    let got = screen(
        &engine,
        json!({"id": "p", "age": 70, "comedications": all.iter().take(200).collect::<Vec<_>>()}),
    );
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (rule, cited) in &got {
        for ing in cited {
            if let Some(other) = seen.insert(ing, rule) {
                panic!("{ing} cited by {other} and {rule}");
            }
        }
    }
}

#[test]
fn unknown_comedications_leave_the_group_undecided_and_none_leaves_it_silent() {
    let engine = engine();
    let s = engine
        .screen_json(br#"{"id": "p", "age": 40}"#)
        .expect("valid");
    for &r in &engine.groups()[0].members {
        let id = &engine.rules()[r].id;
        assert!(
            s.indeterminate.iter().any(|i| i.rule == id),
            "{id} should be undecided"
        );
    }
    let s = engine
        .screen_json(br#"{"id": "p", "age": 40, "comedications": []}"#)
        .expect("valid");
    assert!(s.cautions.iter().all(|c| !c.rule.starts_with("BAC-DDI-")));
    assert!(
        s.indeterminate
            .iter()
            .all(|i| !i.rule.starts_with("BAC-DDI-"))
    );
}
