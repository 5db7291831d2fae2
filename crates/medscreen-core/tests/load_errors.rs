//! Broken rule packs and vocabularies: every load error names file, rule and JSON Pointer, with help
//! where it fits, and all of them are reported at once.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use medscreen_core::engine::{EMBEDDED_PACK, EMBEDDED_VOCABULARY};
use medscreen_core::{Engine, LoadError, LoadErrorCode};
use serde_json::{Value, json};

fn pack() -> Value {
    serde_json::from_str(EMBEDDED_PACK).expect("pack")
}

fn rule_index(pack: &Value, id: &str) -> usize {
    pack["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .position(|r| r["id"] == id)
        .expect("rule exists")
}

fn load(pack: &Value) -> Vec<LoadError> {
    let text = serde_json::to_string_pretty(pack).expect("json");
    Engine::from_sources(
        "rules/pack.json",
        &text,
        "rules/vocabulary.json",
        EMBEDDED_VOCABULARY,
    )
    .expect_err("should not load")
    .0
}

fn only(errors: Vec<LoadError>) -> LoadError {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().expect("one")
}

#[test]
fn misspelt_fact_in_a_rule() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-RENAL");
    p["rules"][i]["tiers"][0]["when"]["any"][1]["fact"] = json!("egfrr");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::UnknownFact);
    assert_eq!(
        e.to_string(),
        format!(
            "rule `BAC-RENAL` in rules/pack.json at /rules/{i}/tiers/0/when/any/1/fact: unknown fact `egfrr`\n  help: did you mean `egfr`?"
        )
    );
}

#[test]
fn operator_that_does_not_fit_the_type() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-SEIZURE");
    p["rules"][i]["tiers"][0]["when"]["op"] = json!("lt");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::OperatorTypeMismatch);
    assert_eq!(e.rule.as_deref(), Some("BAC-SEIZURE"));
    assert_eq!(e.pointer, format!("/rules/{i}/tiers/0/when/op"));
    assert_eq!(
        e.message,
        "operator `lt` does not apply to boolean fact `seizure_history`"
    );
}

#[test]
fn value_of_the_wrong_type_and_outside_the_enum() {
    let mut p = pack();
    let a = rule_index(&p, "BAC-ABRUPT-STOP");
    p["rules"][a]["tiers"][0]["when"]["value"] = json!("abrupto");
    let d = rule_index(&p, "BAC-DOSE-MAX");
    p["rules"][d]["tiers"][0]["when"]["value"] = json!("eighty");
    let errors = load(&p);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let e = errors
        .iter()
        .find(|e| e.code == LoadErrorCode::ValueNotInEnum)
        .expect("enum error");
    assert_eq!(e.pointer, format!("/rules/{a}/tiers/0/when/value"));
    assert_eq!(e.help.as_deref(), Some("did you mean `abrupt`?"));
    let e = errors
        .iter()
        .find(|e| e.code == LoadErrorCode::ValueTypeMismatch)
        .expect("type error");
    assert_eq!(e.rule.as_deref(), Some("BAC-DOSE-MAX"));
    assert_eq!(e.pointer, format!("/rules/{d}/tiers/0/when/value"));
}

#[test]
fn unknown_medication_class() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-DDI-OPIOID");
    p["rules"][i]["tiers"][0]["when"]["medication"]["class"] = json!("opiod");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::UnknownClass);
    assert_eq!(
        e.pointer,
        format!("/rules/{i}/tiers/0/when/medication/class")
    );
    assert_eq!(e.message, "unknown medication class `opiod`");
    assert_eq!(e.help.as_deref(), Some("did you mean `opioid`?"));
}

#[test]
fn duplicate_rule_id_and_empty_tiers_are_reported_together() {
    let mut p = pack();
    let s = rule_index(&p, "BAC-STROKE");
    let h = rule_index(&p, "BAC-HEART");
    p["rules"][h]["id"] = json!("BAC-STROKE");
    let m = rule_index(&p, "BAC-MACHINERY");
    p["rules"][m]["tiers"] = json!([]);
    let errors = load(&p);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].code, LoadErrorCode::Duplicate);
    assert_eq!(errors[0].pointer, format!("/rules/{h}/id"));
    assert_eq!(
        errors[0].message,
        format!("duplicate rule id `BAC-STROKE` (first defined at /rules/{s})")
    );
    assert_eq!(errors[1].code, LoadErrorCode::EmptyTiers);
    assert_eq!(errors[1].rule.as_deref(), Some("BAC-MACHINERY"));
    assert_eq!(errors[1].pointer, format!("/rules/{m}/tiers"));
}

#[test]
fn unknown_operator_with_did_you_mean() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-DOSE-MAX");
    p["rules"][i]["tiers"][0]["when"]["op"] = json!("gte");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::UnknownOperator);
    assert_eq!(e.help.as_deref(), Some("did you mean `ge`?"));
}

#[test]
fn misspelt_key_is_a_schema_error_in_the_rule() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-LIVER");
    let title = p["rules"][i]["title"].take();
    p["rules"][i].as_object_mut().expect("rule").remove("title");
    p["rules"][i]["titel"] = title;
    let errors = load(&p);
    let unknown = errors
        .iter()
        .find(|e| e.pointer == format!("/rules/{i}/titel"))
        .expect("unknown key");
    assert_eq!(unknown.code, LoadErrorCode::Schema);
    assert_eq!(unknown.rule.as_deref(), Some("BAC-LIVER"));
    assert_eq!(unknown.message, "unknown field `titel`");
    assert_eq!(unknown.help.as_deref(), Some("did you mean `title`?"));
    let missing = errors
        .iter()
        .find(|e| e.pointer == format!("/rules/{i}/title"))
        .expect("missing title");
    assert_eq!(missing.message, "missing required field `title`");
}

#[test]
fn bad_severity_and_misspelt_condition_key() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-LIVER");
    p["rules"][i]["tiers"][0]["severity"] = json!("severe");
    let j = rule_index(&p, "BAC-DIABETES");
    p["rules"][j]["tiers"][0]["when"] = json!({"fcat": "diabetes", "op": "eq", "value": true});
    let errors = load(&p);
    let sev = errors
        .iter()
        .find(|e| e.rule.as_deref() == Some("BAC-LIVER"))
        .expect("severity");
    assert_eq!(sev.pointer, format!("/rules/{i}/tiers/0/severity"));
    assert!(
        sev.message.contains("`critical`, `warning` or `info`"),
        "{}",
        sev.message
    );
    let key = errors
        .iter()
        .find(|e| e.rule.as_deref() == Some("BAC-DIABETES"))
        .expect("condition key");
    assert_eq!(key.pointer, format!("/rules/{j}/tiers/0/when/fcat"));
    assert_eq!(key.help.as_deref(), Some("did you mean `fact`?"));
}

#[test]
fn condition_with_two_forms_and_unknown_source() {
    let mut p = pack();
    let i = rule_index(&p, "BAC-ALCOHOL");
    p["rules"][i]["tiers"][0]["when"]["not"] = json!({"fact": "age", "op": "lt", "value": 18});
    p["rules"][i]["sources"] = json!(["S99"]);
    let errors = load(&p);
    let codes: Vec<LoadErrorCode> = errors.iter().map(|e| e.code).collect();
    assert!(
        codes.contains(&LoadErrorCode::InvalidCondition),
        "{errors:#?}"
    );
    assert!(codes.contains(&LoadErrorCode::UnknownSource), "{errors:#?}");
    let src = errors
        .iter()
        .find(|e| e.code == LoadErrorCode::UnknownSource)
        .expect("source");
    assert_eq!(src.pointer, format!("/rules/{i}/sources/0"));
}

#[test]
fn not_json_and_unreadable_directory() {
    let e = only(
        Engine::from_sources(
            "rules/pack.json",
            "{ nope",
            "rules/vocabulary.json",
            EMBEDDED_VOCABULARY,
        )
        .expect_err("bad")
        .0,
    );
    assert_eq!(e.code, LoadErrorCode::InvalidJson);
    let dir = tempfile::tempdir().expect("dir");
    let errors = Engine::from_dir(dir.path()).expect_err("empty dir").0;
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.code == LoadErrorCode::Io));
}

#[test]
fn vocabulary_errors_name_the_vocabulary_file() {
    let mut v: Value = serde_json::from_str(EMBEDDED_VOCABULARY).expect("vocab");
    v["ingredients"][0]["classes"] = json!(["opiod"]);
    let pack_text = EMBEDDED_PACK;
    let errors = Engine::from_sources(
        "rules/pack.json",
        pack_text,
        "rules/vocabulary.json",
        &v.to_string(),
    )
    .expect_err("bad vocab")
    .0;
    let e = only(errors);
    assert_eq!(e.code, LoadErrorCode::UnknownClass);
    assert_eq!(e.file, "rules/vocabulary.json");
    assert_eq!(e.pointer, "/ingredients/0/classes/0");
    assert_eq!(e.help.as_deref(), Some("did you mean `opioid`?"));
}

#[test]
fn unknown_subject_ingredient() {
    let mut p = pack();
    p["subject"]["ingredient"] = json!("baclofem");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::UnknownIngredient);
    assert_eq!(e.help.as_deref(), Some("did you mean `baclofen`?"));
}

#[test]
fn group_naming_a_rule_the_pack_does_not_define() {
    let mut p = pack();
    p["groups"][0]["rules"][1] = json!("BAC-DDI-OXYBAT");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::UnknownRule);
    assert_eq!(
        e.to_string(),
        "rules/pack.json at /groups/0/rules/1: group `BAC-DDI` names rule `BAC-DDI-OXYBAT`, which the pack does not define\n  help: did you mean `BAC-DDI-OXYBATE`?"
    );
}

#[test]
fn rule_in_two_groups_and_a_group_declared_twice() {
    let mut p = pack();
    let second = json!({"id": "BAC-DDI-2", "title": "again", "rules": ["BAC-DDI-LITHIUM"]});
    p["groups"].as_array_mut().expect("groups").push(second);
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::Duplicate);
    assert_eq!(e.pointer, "/groups/1/rules/0");
    assert_eq!(
        e.message,
        "rule `BAC-DDI-LITHIUM` is in group `BAC-DDI` and in group `BAC-DDI-2`; a rule belongs to one group at most"
    );

    let mut p = pack();
    let twin = json!({"id": "BAC-DDI", "title": "twin", "rules": ["BAC-ALCOHOL-X"]});
    p["groups"].as_array_mut().expect("groups").push(twin);
    let errors = load(&p);
    assert!(
        errors
            .iter()
            .any(|e| e.code == LoadErrorCode::Duplicate && e.pointer == "/groups/1/id"),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.code == LoadErrorCode::UnknownRule),
        "{errors:#?}"
    );
}

#[test]
fn group_member_that_cannot_cite_an_ingredient() {
    let mut p = pack();
    // A count of CNS-active drugs is about several ingredients at once; a plain fact about none.
    let rules = p["groups"][0]["rules"].as_array_mut().expect("rules");
    rules.push(json!("BAC-CNS-BURDEN"));
    rules.push(json!("BAC-ALCOHOL"));
    let errors = load(&p);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors.iter().all(|e| e.code == LoadErrorCode::InvalidGroup));
    let cns: Vec<&LoadError> = errors
        .iter()
        .filter(|e| e.rule.as_deref() == Some("BAC-CNS-BURDEN"))
        .collect();
    // Tier 0 (opioid and benzodiazepine or gabapentinoid) is per ingredient; tiers 1 and 2 count.
    assert_eq!(cns.len(), 2, "{errors:#?}");
    let g = p["groups"][0]["rules"].as_array().expect("rules").len() - 2;
    assert_eq!(
        cns[0].to_string(),
        format!(
            "rule `BAC-CNS-BURDEN` in rules/pack.json at /groups/0/rules/{g}: rule `BAC-CNS-BURDEN` cannot be in group `BAC-DDI`: its tier 1 does not require the ingredient to be in a medication class, or reads comedications otherwise (counts, the subject, unrecognised entries), so it cannot cite the ingredients it is about"
        )
    );
}

#[test]
fn subject_test_needs_a_subject_and_terms_go_with_it() {
    let mut p = pack();
    p.as_object_mut().expect("object").remove("subject");
    let i = rule_index(&p, "BAC-DUPLICATE");
    let errors = load(&p);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.code == LoadErrorCode::InvalidCondition
                && e.message == "the pack declares no `subject`, so no comedication can be it")
    );
    assert_eq!(
        errors[0].pointer,
        format!("/rules/{i}/tiers/0/when/medication/subject")
    );

    let mut p = pack();
    let o = rule_index(&p, "BAC-DDI-OPIOID");
    p["rules"][o]["tiers"][0]["when"]["medication"]["terms"] = json!(["intrathecal"]);
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::InvalidCondition);
    assert_eq!(
        e.pointer,
        format!("/rules/{o}/tiers/0/when/medication/terms")
    );
    assert_eq!(e.message, "`terms` goes with `subject`");

    let mut p = pack();
    p["rules"][o]["tiers"][0]["when"]["medication"]["subject"] = json!(true);
    let e = only(load(&p));
    assert_eq!(
        e.message,
        "`medication` takes exactly one of `class`, `unrecognized` or `subject`"
    );
}

#[test]
fn duplicate_key_in_a_pack_is_an_error_naming_the_key() {
    // Two "rules" arrays: serde_json would silently keep the second.
    let text = EMBEDDED_PACK.replacen("\n  \"rules\": [", "\n  \"rules\": [],\n  \"rules\": [", 1);
    let errors = Engine::from_sources(
        "rules/pack.json",
        &text,
        "rules/vocabulary.json",
        EMBEDDED_VOCABULARY,
    )
    .expect_err("should not load")
    .0;
    let e = only(errors);
    assert_eq!(e.code, LoadErrorCode::Duplicate);
    assert_eq!(
        e.to_string(),
        "rules/pack.json at /rules: duplicate key `rules`: JSON would keep only one of them"
    );
    // Inside a rule, the rule is named.
    let text = EMBEDDED_PACK.replacen(
        "\"id\": \"BAC-SEIZURE\",",
        "\"id\": \"BAC-SEIZURE\",\n      \"title\": \"twice\",",
        1,
    );
    let e = only(
        Engine::from_sources("p.json", &text, "v.json", EMBEDDED_VOCABULARY)
            .expect_err("should not load")
            .0,
    );
    assert_eq!(e.rule.as_deref(), Some("BAC-SEIZURE"));
    assert!(
        e.message.starts_with("duplicate key `title`"),
        "{}",
        e.message
    );
}

#[test]
fn byte_order_mark_in_a_pack_is_accepted() {
    let text = format!("\u{feff}{EMBEDDED_PACK}");
    let vocab = format!("\u{feff}{EMBEDDED_VOCABULARY}");
    let engine = Engine::from_sources("rules/pack.json", &text, "rules/vocabulary.json", &vocab)
        .expect("a BOM is not part of the JSON");
    assert_eq!(
        engine.rules().len(),
        pack()["rules"].as_array().expect("rules").len()
    );
}

#[test]
fn empty_pack_is_an_error() {
    let mut p = pack();
    p["rules"] = json!([]);
    p.as_object_mut().expect("object").remove("groups");
    let e = only(load(&p));
    assert_eq!(e.code, LoadErrorCode::EmptyPack);
    assert_eq!(
        e.to_string(),
        "rules/pack.json at /rules: the pack has no rules, so it would report every patient clear"
    );
}

fn load_vocab(v: &Value) -> Vec<LoadError> {
    Engine::from_sources(
        "rules/pack.json",
        EMBEDDED_PACK,
        "rules/vocabulary.json",
        &v.to_string(),
    )
    .expect_err("bad vocab")
    .0
}

#[test]
fn misspelt_tag_on_an_ingredient() {
    let mut v: Value = serde_json::from_str(EMBEDDED_VOCABULARY).expect("vocab");
    v["ingredients"][0]["tags"] = json!(["beers_cns_activ"]);
    let e = only(load_vocab(&v));
    assert_eq!(e.code, LoadErrorCode::UnknownClass);
    assert_eq!(
        e.to_string(),
        "rules/vocabulary.json at /ingredients/0/tags/0: unknown tag `beers_cns_activ` for ingredient `abacavir`\n  help: did you mean `beers_cns_active`?"
    );
}

#[test]
fn a_class_is_not_a_tag_and_a_tag_is_not_a_class() {
    let mut v: Value = serde_json::from_str(EMBEDDED_VOCABULARY).expect("vocab");
    // A class named where a tag belongs, and a tag named where a class belongs: each is unknown there.
    v["ingredients"][0]["tags"] = json!(["opioid"]);
    v["ingredients"][1]["classes"] = json!(["beers_cns_active"]);
    let errors = load_vocab(&v);
    let got: Vec<(&str, LoadErrorCode)> = errors
        .iter()
        .map(|e| (e.pointer.as_str(), e.code))
        .collect();
    assert_eq!(
        got,
        [
            ("/ingredients/0/tags/0", LoadErrorCode::UnknownClass),
            ("/ingredients/1/classes/0", LoadErrorCode::UnknownClass),
        ]
    );
}

#[test]
fn a_tag_may_not_reuse_a_class_id() {
    let mut v: Value = serde_json::from_str(EMBEDDED_VOCABULARY).expect("vocab");
    v["tags"]
        .as_array_mut()
        .expect("tags")
        .push(json!({"id": "opioid", "title": "clash"}));
    let e = only(load_vocab(&v));
    assert_eq!(e.code, LoadErrorCode::Duplicate);
    assert_eq!(e.pointer, "/tags/1/id");
    assert_eq!(
        e.message,
        "tag `opioid` is defined twice, or is also a class"
    );
}

#[test]
fn classes_and_tags_share_the_64_bits_of_a_mask() {
    let mut v: Value = serde_json::from_str(EMBEDDED_VOCABULARY).expect("vocab");
    let classes = v["classes"].as_array().expect("classes").len();
    let tags = v["tags"].as_array_mut().expect("tags");
    // Exactly 64 between them loads; one more does not.
    while classes + tags.len() < 64 {
        let n = tags.len();
        tags.push(json!({"id": format!("spare_{n}"), "title": "spare"}));
    }
    Engine::from_sources(
        "rules/pack.json",
        EMBEDDED_PACK,
        "rules/vocabulary.json",
        &v.to_string(),
    )
    .expect("64 classes and tags fit");
    v["tags"]
        .as_array_mut()
        .expect("tags")
        .push(json!({"id": "one_too_many", "title": "spare"}));
    let e = only(load_vocab(&v));
    assert_eq!(e.pointer, "/tags");
    assert!(e.message.contains("at most 64"), "{}", e.message);
}

#[test]
fn the_beers_flag_is_data_a_renamed_tag_screens_the_same() {
    // Rename the tag everywhere it is written (vocabulary and pack): no Rust code knows its name, so the
    // screenings are the same, caution for caution.
    let vocab = EMBEDDED_VOCABULARY.replace("\"beers_cns_active\"", "\"cns_active_renamed\"");
    let pack = EMBEDDED_PACK.replace("\"beers_cns_active\"", "\"cns_active_renamed\"");
    assert_ne!(vocab, EMBEDDED_VOCABULARY);
    assert_ne!(pack, EMBEDDED_PACK);
    let renamed = Engine::from_sources("rules/pack.json", &pack, "rules/vocabulary.json", &vocab)
        .expect("renamed tag loads");
    let embedded = Engine::embedded().expect("embedded");
    let profile = br#"{"id": "t", "age": 70, "comedications": ["oxycodone 5 mg", "sertraline 50 mg", "zolpidem 5 mg"]}"#;
    let a = embedded.screen_json(profile).expect("valid");
    let b = renamed.screen_json(profile).expect("valid");
    let rules = |s: &medscreen_core::Screening<'_>| -> Vec<(String, String, usize)> {
        s.cautions
            .iter()
            .map(|c| (c.rule.to_owned(), c.message.to_owned(), c.evidence.len()))
            .collect()
    };
    assert!(
        rules(&a)
            .iter()
            .any(|(r, m, _)| r == "BAC-CNS-BURDEN" && m.contains("three or more")),
        "the Beers tier fires: {:?}",
        rules(&a)
    );
    assert_eq!(rules(&a), rules(&b));
}

#[test]
fn a_cds_text_may_hold_only_its_placeholders() {
    let mut p = pack();
    p["cds"] = json!({"cancel_label": "Cancel the {drug} order for {hook}", "service_title": "{drgu} check"});
    let errors = load(&p);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        texts.contains(
            &"rules/pack.json at /cds/cancel_label: `cancel_label` may hold only `{drug}`, not `{hook}`"
                .to_owned()
        ),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"rules/pack.json at /cds/service_title: `service_title` may hold only `{drug}`, `{hook}`, `{ruleset}`, not `{drgu}`\n  help: did you mean `drug`?".to_owned()),
        "{texts:#?}"
    );
    // A placeholder left open, and braces in the drug's name (which every text fills in).
    let mut p = pack();
    p["cds"] = json!({"cancel_label": "Cancel the {drug"});
    assert_eq!(
        only(load(&p)).to_string(),
        "rules/pack.json at /cds/cancel_label: `cancel_label` opens a placeholder with `{` and does not close it"
    );
    let mut p = pack();
    p["cds"] = json!({"drug": "bac {ruleset}"});
    assert_eq!(only(load(&p)).code, LoadErrorCode::Schema);
    // An unknown key is the schema's to refuse.
    let mut p = pack();
    p["cds"] = json!({"title": "x"});
    assert_eq!(only(load(&p)).code, LoadErrorCode::Schema);
}
