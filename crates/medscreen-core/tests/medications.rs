//! Medication matching against an independent table of real-world strings and coded entries
//! (`fixtures/medications/match_table.ndjson`, written apart from the vocabulary as a check on it).

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::collections::BTreeSet;

use medscreen_core::vocab::Vocabulary;
use medscreen_core::{Engine, Medication};
use serde_json::Value;

const TABLE: &str = include_str!("../../../fixtures/medications/match_table.ndjson");

/// Sorted ingredient names and top-level class ids of one entry.
fn classify(vocab: &Vocabulary, med: &Medication) -> (Vec<String>, Vec<String>) {
    let m = vocab.match_medication(med);
    let ingredients: BTreeSet<String> = m
        .ingredients
        .iter()
        .map(|&i| vocab.ingredient(i).name.clone())
        .collect();
    let mut mask = m.atc_group.as_ref().map_or(0, |(_, bits)| *bits);
    for &i in &m.ingredients {
        mask |= vocab.ingredient(i).mask;
    }
    let classes: BTreeSet<String> = vocab
        .classes()
        .iter()
        .filter(|c| c.mask.count_ones() == 1 && c.mask & mask != 0)
        .map(|c| c.id.clone())
        .collect();
    (
        ingredients.into_iter().collect(),
        classes.into_iter().collect(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn every_table_entry_matches_the_expected_ingredients_and_classes() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let mut failures = Vec::new();
    let mut n = 0;
    for (k, line) in TABLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Value = serde_json::from_str(line).expect("table line parses");
        let med: Medication =
            serde_json::from_value(row["input"].clone()).expect("input is a medication");
        let (ingredients, classes) = classify(vocab, &med);
        let (want_ingredients, want_classes) =
            (strings(&row["ingredients"]), strings(&row["classes"]));
        if ingredients != want_ingredients || classes != want_classes {
            failures.push(format!(
                "line {}: {}\n    want {want_ingredients:?} {want_classes:?}\n    got  {ingredients:?} {classes:?}",
                k + 1,
                row["input"]
            ));
        }
        n += 1;
    }
    assert!(n >= 150, "the table needs at least 150 entries, has {n}");
    assert!(
        failures.is_empty(),
        "{} of {n} entries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn whole_words_only() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    for text in ["Morphinecalm", "oxycodonex", "preoxycodone", "xanaxian"] {
        let m = vocab.match_medication(&Medication::Text(text.to_owned()));
        assert!(!m.recognized(), "{text} should not match anything");
    }
}

#[test]
fn every_ingredient_is_found_by_its_own_name() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    for (id, ing) in vocab.ingredients().iter().enumerate() {
        let m = vocab.match_medication(&Medication::Text(format!(
            "{} 10 mg tablet",
            ing.name.to_uppercase()
        )));
        assert!(
            m.ingredients.contains(&(id as u32)),
            "`{}` is not found by its own name",
            ing.name
        );
    }
}

/// The class mask (ancestors and the Beers flag included) of everything one entry matched.
fn mask_of(vocab: &Vocabulary, input: Value) -> u64 {
    let med: Medication = serde_json::from_value(input).expect("input is a medication");
    let m = vocab.match_medication(&med);
    let mut mask = m.atc_group.as_ref().map_or(0, |(_, bits)| *bits);
    for &i in &m.ingredients {
        mask |= vocab.ingredient(i).mask;
    }
    mask
}

fn bit(vocab: &Vocabulary, class: &str) -> u64 {
    vocab.class_bit(class).expect("class exists")
}

#[test]
fn a_brand_shared_by_two_ingredients_matches_both_unless_a_longer_brand_names_one() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let names = |text: &str| {
        let m = vocab.match_medication(&Medication::Text(text.to_owned()));
        let mut v: Vec<String> = m
            .ingredients
            .iter()
            .map(|&i| vocab.ingredient(i).name.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("Unisom"), ["diphenhydramine", "doxylamine"]);
    assert_eq!(names("UNISOM 1 tab qhs"), ["diphenhydramine", "doxylamine"]);
    assert_eq!(names("Unisom SleepTabs 25 mg"), ["doxylamine"]);
    assert_eq!(names("Unisom SleepGels"), ["diphenhydramine"]);
}

#[test]
fn gabapentinoids_are_a_subclass_of_anticonvulsants() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let (gaba, anti) = (bit(vocab, "gabapentinoid"), bit(vocab, "anticonvulsant"));
    for input in [
        Value::from("gabapentin 300 mg"),
        Value::from("Horizant 600 mg"),
        Value::from("Lyrica 75 mg"),
        Value::from("mirogabalin 15 mg"),
        serde_json::json!({"atc": "N02BF"}),
        serde_json::json!({"atc": "N02BF03"}),
        serde_json::json!({"atc": "N03AX16"}),
    ] {
        let mask = mask_of(vocab, input.clone());
        assert!(mask & gaba != 0, "{input} should be a gabapentinoid");
        assert!(mask & anti != 0, "{input} should be an anticonvulsant");
    }
    for input in [
        Value::from("lamotrigine 100 mg"),
        serde_json::json!({"atc": "N03AX09"}),
    ] {
        let mask = mask_of(vocab, input.clone());
        assert!(mask & gaba == 0, "{input} is not a gabapentinoid");
        assert!(mask & anti != 0, "{input} should be an anticonvulsant");
    }
}

#[test]
fn mao_b_inhibitors_for_parkinsons_are_not_antidepressants_but_selegiline_is() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let (ad, maoi) = (
        bit(vocab, "antidepressant"),
        bit(vocab, "antidepressant_maoi"),
    );
    for text in ["Azilect 1 mg", "rasagiline", "safinamide 50 mg", "Xadago"] {
        let mask = mask_of(vocab, Value::from(text));
        assert!(mask & (ad | maoi) == 0, "{text} is not an antidepressant");
    }
    let mask = mask_of(vocab, Value::from("Emsam 6 mg/24 hr"));
    assert!(
        mask & maoi != 0 && mask & ad != 0,
        "selegiline stays an MAOI"
    );
}

#[test]
fn lithium_is_never_an_antipsychotic() {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let (li, ap) = (bit(vocab, "lithium"), bit(vocab, "antipsychotic"));
    for input in [
        serde_json::json!({"atc": "N05AN01"}),
        serde_json::json!({"atc": "N05AN"}),
        Value::from("lithium carbonate 300 mg"),
        Value::from("Lithobid 300 mg"),
    ] {
        let mask = mask_of(vocab, input.clone());
        assert!(mask & li != 0, "{input} should be lithium");
        assert!(mask & ap == 0, "{input} must not be an antipsychotic");
    }
}

#[test]
fn buprenorphine_is_a_beers_cns_active_opioid_and_the_r05da_antitussives_that_are_not_opioids_stay_out()
 {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let (opioid, beers) = (bit(vocab, "opioid"), bit(vocab, "beers_cns_active"));
    for input in [
        serde_json::json!({"atc": "N07BC51"}),
        serde_json::json!({"atc": "N07BC01"}),
        Value::from("Suboxone 8 mg/2 mg film"),
    ] {
        let mask = mask_of(vocab, input.clone());
        assert!(mask & opioid != 0, "{input} should be an opioid");
        assert!(
            mask & beers != 0,
            "{input} should count as Beers CNS-active"
        );
    }
    for code in ["R05DA07", "R05DA09", "R05DA11", "R05DA"] {
        let mask = mask_of(vocab, serde_json::json!({ "atc": code }));
        assert!(mask & opioid == 0, "{code} must not be an opioid");
    }
}
