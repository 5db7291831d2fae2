//! Invalid profiles: each gives the expected JSON Pointer and stable code, and no message echoes the value.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use medscreen_core::{Engine, ProblemCode};

fn problems(json: &str) -> Vec<(String, ProblemCode, String, Option<String>)> {
    let engine = Engine::embedded().expect("embedded pack");
    let rejection = engine
        .parse_profile(json.as_bytes())
        .expect_err("should be invalid");
    rejection
        .problems
        .into_iter()
        .map(|p| (p.pointer, p.code, p.message, p.help))
        .collect()
}

fn assert_one(json: &str, pointer: &str, code: ProblemCode) -> (String, Option<String>) {
    let got = problems(json);
    assert_eq!(got.len(), 1, "{json}: {got:?}");
    assert_eq!((got[0].0.as_str(), got[0].1), (pointer, code), "{json}");
    (got[0].2.clone(), got[0].3.clone())
}

#[test]
fn wrong_types() {
    assert_one(
        r#"{"id": "x", "age": "forty"}"#,
        "/age",
        ProblemCode::TypeMismatch,
    );
    assert_one(
        r#"{"id": "x", "age": 40.5}"#,
        "/age",
        ProblemCode::TypeMismatch,
    );
    let (msg, _) = assert_one(
        r#"{"id": "x", "age": 40, "pregnant": "yes"}"#,
        "/pregnant",
        ProblemCode::TypeMismatch,
    );
    assert_eq!(msg, "expected boolean or null");
    assert_one(r#"{"id": 7, "age": 40}"#, "/id", ProblemCode::TypeMismatch);
    assert_one(
        r#"{"id": "x", "age": 40, "comedications": "oxycodone"}"#,
        "/comedications",
        ProblemCode::TypeMismatch,
    );
    assert_one(
        r#"{"id": "x", "age": 40, "comedications": [5]}"#,
        "/comedications/0",
        ProblemCode::TypeMismatch,
    );
    assert_one(
        r#"{"id": "x", "age": 40, "comedications": [{"rxnorm": 7804}]}"#,
        "/comedications/0/rxnorm",
        ProblemCode::TypeMismatch,
    );
}

#[test]
fn out_of_range_without_echoing_the_value() {
    let (msg, _) = assert_one(
        r#"{"id": "x", "age": 131}"#,
        "/age",
        ProblemCode::OutOfRange,
    );
    assert_eq!(msg, "must be at most 130");
    assert_one(r#"{"id": "x", "age": -1}"#, "/age", ProblemCode::OutOfRange);
    let (msg, _) = assert_one(
        r#"{"id": "x", "age": 40, "egfr": 250.5}"#,
        "/egfr",
        ProblemCode::OutOfRange,
    );
    assert!(!msg.contains("250"), "{msg}");
    assert_one(
        r#"{"id": "x", "age": 40, "baclofen_daily_dose_mg": -5}"#,
        "/baclofen_daily_dose_mg",
        ProblemCode::OutOfRange,
    );
}

#[test]
fn unknown_field_with_did_you_mean() {
    let (msg, help) = assert_one(
        r#"{"id": "x", "age": 40, "pregnent": true}"#,
        "/pregnent",
        ProblemCode::UnknownField,
    );
    assert_eq!(msg, "unknown field `pregnent`");
    assert_eq!(help.as_deref(), Some("did you mean `pregnant`?"));
    let (_, help) = assert_one(
        r#"{"id": "x", "age": 40, "comedications": [{"rxnrom": "7804"}]}"#,
        "/comedications/0/rxnrom",
        ProblemCode::UnknownField,
    );
    assert_eq!(help.as_deref(), Some("did you mean `rxnorm`?"));
    let (_, help) = assert_one(
        r#"{"id": "x", "age": 40, "weight_kg": 70}"#,
        "/weight_kg",
        ProblemCode::UnknownField,
    );
    assert!(
        help.expect("lists allowed fields")
            .starts_with("allowed fields: ")
    );
}

#[test]
fn bad_enum() {
    let (msg, _) = assert_one(
        r#"{"id": "x", "age": 40, "sex": "F"}"#,
        "/sex",
        ProblemCode::InvalidEnum,
    );
    assert_eq!(
        msg,
        "must be one of `female`, `male`, `other`, `unknown` or null"
    );
    assert_one(
        r#"{"id": "x", "age": 40, "discontinuation": "sudden"}"#,
        "/discontinuation",
        ProblemCode::InvalidEnum,
    );
}

#[test]
fn empty_comedication_object() {
    let (msg, _) = assert_one(
        r#"{"id": "x", "age": 40, "comedications": [{}]}"#,
        "/comedications/0",
        ProblemCode::EmptyObject,
    );
    assert_eq!(msg, "must have at least one of `atc`, `name`, `rxnorm`");
    assert_one(
        r#"{"id": "x", "age": 40, "comedications": [""]}"#,
        "/comedications/0",
        ProblemCode::InvalidLength,
    );
    assert_one(
        r#"{"id": "x", "age": 40, "comedications": [{"atc": "n02aa05"}]}"#,
        "/comedications/0/atc",
        ProblemCode::InvalidFormat,
    );
}

#[test]
fn missing_id_or_age() {
    let (msg, _) = assert_one(r#"{"age": 40}"#, "/id", ProblemCode::MissingField);
    assert_eq!(msg, "missing required field `id`");
    assert_one(r#"{"id": "x"}"#, "/age", ProblemCode::MissingField);
    assert_one(
        r#"{"id": "", "age": 40}"#,
        "/id",
        ProblemCode::InvalidLength,
    );
    let long = "x".repeat(129);
    assert_one(
        &format!(r#"{{"id": "{long}", "age": 40}}"#),
        "/id",
        ProblemCode::InvalidLength,
    );
}

#[test]
fn too_many_comedications() {
    let meds = vec!["\"atorvastatin\""; 201].join(",");
    assert_one(
        &format!(r#"{{"id": "x", "age": 40, "comedications": [{meds}]}}"#),
        "/comedications",
        ProblemCode::TooManyItems,
    );
}

#[test]
fn not_an_object_and_not_json() {
    assert_one("[1, 2]", "", ProblemCode::NotAnObject);
    assert_one("\"p-1\"", "", ProblemCode::NotAnObject);
    assert_one("{\"id\": ", "", ProblemCode::InvalidJson);
    assert_one(
        "{\"id\": \"x\", \"age\": 40} trailing",
        "",
        ProblemCode::InvalidJson,
    );
    let engine = Engine::embedded().expect("embedded pack");
    let r = engine
        .parse_profile(b"{\"id\": \"\xff\", \"age\": 1}")
        .expect_err("invalid utf-8");
    assert_eq!(r.problems[0].code, ProblemCode::InvalidUtf8);
}

#[test]
fn several_problems_are_all_reported_with_the_record_id() {
    let engine = Engine::embedded().expect("embedded pack");
    let r = engine
        .parse_profile(br#"{"id": "p-9", "age": 200, "sex": "f", "pregnent": true, "egfr": "low"}"#)
        .expect_err("invalid");
    assert_eq!(r.id.as_deref(), Some("p-9"));
    let pointers: Vec<&str> = r.problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(pointers, ["/age", "/egfr", "/pregnent", "/sex"]);
}

#[test]
fn no_message_echoes_a_patient_value() {
    let secret = "Jane-Doe-1961";
    let engine = Engine::embedded().expect("embedded pack");
    let cases = [
        format!(r#"{{"id": "x", "age": "{secret}"}}"#),
        format!(r#"{{"id": "x", "age": 40, "sex": "{secret}"}}"#),
        format!(r#"{{"id": "x", "age": 40, "comedications": [{{"rxnorm": "{secret}"}}]}}"#),
        format!(r#"{{"id": "x", "age": 40, "indication": ["{secret}"]}}"#),
    ];
    for json in cases {
        let r = engine.parse_profile(json.as_bytes()).expect_err("invalid");
        for p in r.problems {
            let text = format!("{} {:?}", p.message, p.help);
            assert!(!text.contains(secret), "{json} -> {text}");
        }
    }
}
