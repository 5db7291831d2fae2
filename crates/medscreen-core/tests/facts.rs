//! Facts are data: a pack declares its own facts, the accepted profile is the union of the shared facts
//! and every known pack's, and declarations that cannot be compiled to a typed slot, or that clash,
//! do not load.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use medscreen_core::engine::{EMBEDDED_PACK, EMBEDDED_VOCABULARY};
use medscreen_core::facts::{FactKind, Field};
use medscreen_core::schema::ProblemCode;
use medscreen_core::{Engine, LoadError, LoadErrorCode};
use serde_json::{Value, json};

/// A small pack of its own, with `facts` as given.
fn pack(name: &str, facts: Value) -> String {
    json!({
        "name": name,
        "version": "1.0.0",
        "facts": facts,
        "sources": {"S": {"label": "test"}},
        "rules": [{
            "id": "T-SCORE", "title": "score", "sources": ["S"],
            "tiers": [{"when": {"fact": "pain_score", "op": "ge", "value": 7}, "severity": "warning",
                       "message": "high pain score", "action": "review"}]
        }]
    })
    .to_string()
}

fn score() -> Value {
    json!({"pain_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 10, "title": "pain score"}})
}

fn load(packs: &[(&str, &str)]) -> Result<Engine, Vec<LoadError>> {
    Engine::from_packs(packs, "rules/vocabulary.json", EMBEDDED_VOCABULARY).map_err(|e| e.0)
}

fn only(errors: Vec<LoadError>) -> LoadError {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().expect("one")
}

#[test]
fn a_fact_only_a_pack_declares_is_read_typed_and_screened() {
    let text = pack("pain", score());
    let engine = load(&[("pain/pack.json", &text)]).expect("loads");
    let field = engine.facts().resolve("pain_score").expect("declared");
    let Field::Slot(k) = field else {
        panic!("a declared fact has a slot")
    };
    assert_eq!(
        engine.facts().decl(k).map(|d| d.kind.clone()),
        Some(FactKind::Number {
            min: Some(0.0),
            max: Some(10.0),
            integer: true
        })
    );
    assert_eq!(engine.facts().title("pain_score"), Some("pain score"));
    let s = engine
        .screen_json(br#"{"id": "p", "age": 50, "pain_score": 8}"#)
        .expect("valid");
    assert_eq!(
        s.cautions.iter().map(|c| c.rule).collect::<Vec<_>>(),
        ["T-SCORE"]
    );
    assert_eq!(s.cautions[0].evidence[0].pointer, "/pain_score");
    let s = engine
        .screen_json(br#"{"id": "p", "age": 50, "pain_score": 6}"#)
        .expect("valid");
    assert!(s.cautions.is_empty());
    let s = engine
        .screen_json(br#"{"id": "p", "age": 50}"#)
        .expect("valid");
    assert_eq!(s.indeterminate[0].missing.as_slice(), ["pain_score"]);
    // Out of its declared range, or not integral: invalid, explained from the declaration.
    for (bad, message) in [
        (
            r#"{"id": "p", "age": 50, "pain_score": 11}"#,
            "must be at most 10",
        ),
        (
            r#"{"id": "p", "age": 50, "pain_score": 7.5}"#,
            "expected integer or null",
        ),
    ] {
        let r = engine.screen_json(bad.as_bytes()).expect_err("invalid");
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert_eq!(
            (
                r.problems[0].pointer.as_str(),
                r.problems[0].message.as_str()
            ),
            ("/pain_score", message)
        );
    }
}

#[test]
fn the_accepted_profile_is_the_union_of_every_known_packs_facts() {
    let text = pack("pain", score());
    let both = load(&[
        ("rules/baclofen/pack.json", EMBEDDED_PACK),
        ("pain/pack.json", &text),
    ])
    .expect("loads");
    // The first pack screens; a record may carry the other pack's facts and the shared ones.
    let s = both
        .screen_json(
            br#"{"id": "p", "age": 50, "pain_score": 9, "baclofen_daily_dose_mg": 90, "hypotension": true, "alt_uln_ratio": 3.5}"#,
        )
        .expect("valid against the union");
    assert!(s.cautions.iter().any(|c| c.rule == "BAC-DOSE-MAX"));
    assert!(s.cautions.iter().all(|c| c.rule != "T-SCORE"));
    // The embedded engine alone does not know `pain_score`: unknown, with the usual did-you-mean.
    let embedded = Engine::embedded().expect("embedded");
    let r = embedded
        .screen_json(br#"{"id": "p", "age": 50, "pain_score": 9}"#)
        .expect_err("unknown field");
    assert_eq!(r.problems[0].code, ProblemCode::UnknownField);
    let r = embedded
        .screen_json(br#"{"id": "p", "age": 50, "baclofen_daily_dose": 9}"#)
        .expect_err("unknown field");
    assert_eq!(
        r.problems[0].help.as_deref(),
        Some("did you mean `baclofen_daily_dose_mg`?")
    );
    // A pack that does not declare baclofen's facts does not accept them.
    let alone = load(&[("pain/pack.json", &text)]).expect("loads");
    assert!(
        alone
            .screen_json(br#"{"id": "p", "age": 50, "discontinuation": "taper"}"#)
            .is_err()
    );
}

#[test]
fn identical_declarations_in_two_packs_load_and_different_ones_do_not() {
    let a = pack("pain", score());
    let b = pack("pain2", score());
    let engine = load(&[("pain/pack.json", &a), ("pain2/pack.json", &b)]).expect("same fact");
    assert_eq!(engine.packs().count(), 2);
    let wider = pack(
        "pain2",
        json!({"pain_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100}}),
    );
    let e = only(load(&[("pain/pack.json", &a), ("pain2/pack.json", &wider)]).expect_err("clash"));
    assert_eq!(e.code, LoadErrorCode::FactConflict);
    assert_eq!(
        e.to_string(),
        "pain2/pack.json at /facts/pain_score: fact `pain_score` is declared differently in pain/pack.json\n  help: packs that share a fact must declare the same type, range and values"
    );
}

#[test]
fn a_pack_cannot_declare_a_shared_fact_again() {
    let mut facts = score();
    facts["egfr"] = json!({"type": ["number", "null"], "minimum": 0, "maximum": 200});
    let e = only(load(&[("pain/pack.json", &pack("pain", facts))]).expect_err("clash"));
    assert_eq!(e.code, LoadErrorCode::FactConflict);
    assert_eq!(
        e.to_string(),
        "pain/pack.json at /facts/egfr: fact `egfr` is a shared patient fact; a pack cannot declare it again\n  help: rules read `egfr` without declaring it; give a fact of the pack's own a name of its own"
    );
}

#[test]
fn declarations_outside_the_typed_subset_do_not_load() {
    let cases = [
        (
            json!({"type": "boolean"}),
            "/facts/x/type",
            "fact `x` must accept `null`: an absent or null fact is unknown",
        ),
        (
            json!({"type": ["array", "null"]}),
            "/facts/x/type",
            "fact `x` must be one of `boolean`, `number`, `integer` or `string` (with `null`), or an `enum`",
        ),
        (
            json!({"enum": ["a", "b"]}),
            "/facts/x/enum",
            "the `enum` of fact `x` must list strings and `null` once",
        ),
        (
            json!({"type": ["boolean", "null"], "maximum": 3}),
            "/facts/x/maximum",
            "`maximum` of fact `x` needs a number fact and a valid bound",
        ),
        (
            // Beyond 2^53 a bound cannot be compared exactly with values read as f64.
            json!({"type": ["integer", "null"], "minimum": 0, "maximum": 9_007_199_254_740_993u64}),
            "/facts/x/maximum",
            "`maximum` of fact `x` needs a number fact and a valid bound",
        ),
        (
            json!({"type": ["number", "null"], "minimum": -1e300}),
            "/facts/x/minimum",
            "`minimum` of fact `x` needs a number fact and a valid bound",
        ),
        (
            json!({"type": ["number", "null"], "maximum": 3, "generate": {"chance": 0.5, "values": [4]}}),
            "/facts/x/generate",
            "`generate` of fact `x` needs a chance from 0 to 1 and values of the fact",
        ),
    ];
    for (decl, pointer, message) in cases {
        let mut facts = score();
        facts["x"] = decl.clone();
        let e = only(load(&[("p/pack.json", &pack("p", facts))]).expect_err("invalid"));
        assert_eq!(
            (e.code, e.pointer.as_str(), e.message.as_str()),
            (LoadErrorCode::InvalidFact, pointer, message),
            "{decl}"
        );
    }
    // A keyword the subset does not have is refused by the pack schema, once.
    let mut facts = score();
    facts["x"] = json!({"type": ["string", "null"], "pattern": "^a"});
    let e = only(load(&[("p/pack.json", &pack("p", facts))]).expect_err("invalid"));
    assert_eq!(
        (e.code, e.pointer.as_str(), e.message.as_str()),
        (
            LoadErrorCode::Schema,
            "/facts/x/pattern",
            "unknown field `pattern`"
        )
    );
}

#[test]
fn generation_hints_of_a_pack_fill_its_facts() {
    let mut facts = score();
    facts["pain_score"]["generate"] =
        json!({"weighted": [{"weight": 1}, {"weight": 3, "value": 4}]});
    let text = pack("pain", facts);
    let engine = load(&[("pain/pack.json", &text)]).expect("loads");
    let mut data = Vec::new();
    medscreen_core::generate::write_profiles(&mut data, engine.facts(), 400, 3, 0.0)
        .expect("generate");
    let text = String::from_utf8(data).expect("utf-8");
    let with = text
        .lines()
        .filter(|l| l.contains(r#""pain_score":4"#))
        .count();
    assert!((200..=380).contains(&with), "{with} of 400 carry the fact");
    assert!(
        text.lines()
            .all(|l| engine.screen_json(l.as_bytes()).is_ok())
    );
}

#[test]
fn a_rule_directory_of_pack_folders_knows_every_packs_facts() {
    let dir = tempfile::tempdir().expect("dir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("vocabulary.json", EMBEDDED_VOCABULARY);
    write("baclofen/pack.json", EMBEDDED_PACK);
    write("pain/pack.json", &pack("pain", score()));
    // A folder without a pack (value sets) is not a pack.
    write("valuesets/x.json", "{}");
    let engine = Engine::from_dir(dir.path()).expect("loads");
    assert_eq!(
        engine.ruleset().name,
        "baclofen",
        "the first folder screens"
    );
    assert_eq!(engine.packs().count(), 2);
    let s = engine
        .screen_json(br#"{"id": "p", "age": 50, "pain_score": 9, "discontinuation": "abrupt"}"#)
        .expect("both packs' facts are accepted");
    assert!(s.cautions.iter().any(|c| c.rule == "BAC-ABRUPT-STOP"));
    // The single-pack layout is read as before, and gives the embedded engine's ruleset.
    let single = tempfile::tempdir().expect("dir");
    std::fs::write(single.path().join("pack.json"), EMBEDDED_PACK).expect("write");
    std::fs::write(single.path().join("vocabulary.json"), EMBEDDED_VOCABULARY).expect("write");
    let engine = Engine::from_dir(single.path()).expect("loads");
    let embedded = Engine::embedded().expect("embedded");
    assert_eq!(engine.ruleset().label, embedded.ruleset().label);
    // A folder pack that does not load names its file.
    write(
        "pain/pack.json",
        &pack("pain", json!({"pain_score": {"type": "integer"}})),
    );
    let errors = Engine::from_dir(dir.path()).expect_err("invalid fact").0;
    let e = only(errors);
    assert_eq!(e.code, LoadErrorCode::InvalidFact);
    assert!(e.file.ends_with("pain/pack.json"), "{}", e.file);
}

#[test]
fn a_profile_read_by_one_pack_s_engine_screens_alike_with_another_pack_s() {
    // Both engines know both packs; the fact layout must not depend on which one screens, or a
    // profile read with one would be screened on the other's slots.
    let baclofen = Engine::embedded().unwrap();
    let tizanidine = Engine::embedded_pack("tizanidine").unwrap();
    let bytes = br#"{"id":"x","age":40,"baclofen_daily_dose_mg":80,"discontinuation":"abrupt","comedications":[]}"#;
    let read_by_baclofen = baclofen.parse_profile(bytes).unwrap();
    let read_by_tizanidine = tizanidine.parse_profile(bytes).unwrap();
    let rules = |s: medscreen_core::Screening<'_>| -> Vec<String> {
        s.cautions.iter().map(|c| c.rule.to_owned()).collect()
    };
    let a = rules(tizanidine.screen(&read_by_baclofen));
    let b = rules(tizanidine.screen(&read_by_tizanidine));
    assert_eq!(a, b);
    assert!(
        !a.iter()
            .any(|r| r == "TZN-DOSE-MAX" || r == "TZN-ABRUPT-STOP"),
        "baclofen's dose read as tizanidine's: {a:?}"
    );
}

#[test]
fn a_text_fact_s_length_counts_characters_not_bytes() {
    let facts = json!({"nick": {"type": ["string", "null"], "minLength": 2, "maxLength": 3}});
    let p = pack("nicks", facts);
    let p = p.replace(
        r#""fact":"pain_score","op":"ge","value":7"#,
        r#""fact":"nick","op":"eq","value":"ab""#,
    );
    let engine = load(&[("rules/nicks/pack.json", &p)]).unwrap();
    for (nick, ok) in [
        ("é", false),
        ("ab", true),
        ("éé", true),
        ("ééé", true),
        ("éééé", false),
        ("abcd", false),
    ] {
        let bytes = json!({"id": "x", "age": 40, "nick": nick}).to_string();
        assert_eq!(
            Engine::parse_fast(&engine, bytes.as_bytes()).is_some(),
            ok,
            "fast path, {nick:?}"
        );
        assert_eq!(
            engine
                .validate_value(&serde_json::from_str(&bytes).unwrap())
                .is_ok(),
            ok,
            "schema path, {nick:?}"
        );
    }
}

#[test]
fn generation_weights_that_overflow_are_a_load_error_not_a_panic() {
    let facts = json!({"pain_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 10,
        "generate": {"weighted": [{"weight": u64::MAX, "value": 1}, {"weight": 1}]}}});
    let e = only(load(&[("rules/t/pack.json", &pack("t", facts))]).unwrap_err());
    assert!(e.message.contains("weight"), "{e}");
}

#[test]
fn a_pack_reads_shared_facts_and_its_own_not_another_pack_s() {
    // Tizanidine's dose read by a baclofen-like pack would load only when tizanidine is loaded too.
    let reader = pack(
        "reader",
        json!({"pain_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 10}}),
    )
    .replace(r#""fact":"pain_score""#, r#""fact":"other_dose""#);
    let owner = pack(
        "owner",
        json!({"other_dose": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
               "pain_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 10}}),
    );
    let e = only(
        load(&[
            ("rules/reader/pack.json", &reader),
            ("rules/owner/pack.json", &owner),
        ])
        .unwrap_err(),
    );
    assert_eq!(e.code, LoadErrorCode::UnknownFact);
    assert!(
        e.message
            .contains("declared by pack `owner`, not by this pack"),
        "{e}"
    );
    // An identical declaration of its own makes it the pack's fact too.
    let sharing = pack(
        "reader",
        json!({"other_dose": {"type": ["number", "null"], "minimum": 0, "maximum": 100}}),
    )
    .replace(r#""fact":"pain_score""#, r#""fact":"other_dose""#);
    load(&[
        ("rules/reader/pack.json", &sharing),
        ("rules/owner/pack.json", &owner),
    ])
    .unwrap();
    // Shared facts are everyone's.
    let shared = pack("reader", json!({})).replace(r#""fact":"pain_score""#, r#""fact":"egfr""#);
    load(&[
        ("rules/reader/pack.json", &shared),
        ("rules/owner/pack.json", &owner),
    ])
    .unwrap();
}

#[test]
fn a_profile_writes_integer_facts_as_integers() {
    let engine = load(&[("rules/t/pack.json", &pack("t", score()))]).unwrap();
    let p = engine
        .parse_profile(br#"{"id":"x","age":40,"pain_score":3,"egfr":61.5}"#)
        .unwrap();
    let written = serde_json::to_value(&p).unwrap();
    assert_eq!(written["pain_score"], json!(3));
    assert!(written["pain_score"].is_u64(), "{written}");
    assert_eq!(written["egfr"], json!(61.5));
}
