//! Medication matching against an independent table of real-world strings and coded entries
//! (`fixtures/medications/match_table.ndjson`, written apart from the vocabulary as a check on it).

use std::collections::BTreeSet;

use medscreen::vocab::Vocabulary;
use medscreen::{Engine, Medication};
use serde_json::Value;

const TABLE: &str = include_str!("../fixtures/medications/match_table.ndjson");

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
