//! The cheap validity path (typed deserialisation + constraints) and the explaining path (strict parse +
//! JSON Schema validator) must agree on every record: same verdict, and the same profile when valid.

use medscreen::{Engine, Profile};
use serde_json::{Value, json};

fn agree(engine: &Engine, bytes: &[u8]) -> bool {
    let fast = Profile::parse_fast(bytes);
    let full = engine.parse_profile_explained(bytes);
    match (&fast, &full) {
        (Some(a), Ok(b)) => {
            assert_eq!(
                a,
                b,
                "profiles differ for {}",
                String::from_utf8_lossy(bytes)
            );
            true
        }
        (None, Err(_)) => false,
        _ => panic!(
            "fast path says {}, schema says {} for {}",
            if fast.is_some() { "valid" } else { "invalid" },
            if full.is_ok() { "valid" } else { "invalid" },
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn generated_profiles_valid_and_invalid() {
    let engine = Engine::embedded().expect("embedded");
    let mut data = Vec::new();
    medscreen::generate::write_profiles(&mut data, 20_000, 99, 0.3).expect("generate");
    let (mut valid, mut invalid) = (0, 0);
    for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if agree(&engine, line) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 10_000 && invalid > 3_000,
        "{valid} valid, {invalid} invalid"
    );
}

/// Every field set to values on both sides of each constraint, and to values of the wrong type.
#[test]
fn mutations_of_every_field() {
    let engine = Engine::embedded().expect("embedded");
    let base = json!({
        "id": "m-1", "age": 40, "sex": "female", "pregnant": false, "breastfeeding": null,
        "seizure_history": false, "kidney_disease": false, "dialysis": false, "egfr": 90.5,
        "stroke_history": false, "relies_on_spasticity": false, "liver_disease": false,
        "heart_disease": false, "diabetes": false, "psychiatric_disorder": false, "alcohol_use": false,
        "operates_machinery": false, "indication": "MS", "baclofen_daily_dose_mg": 30,
        "discontinuation": "taper", "comedications": ["oxycodone", {"rxnorm": "7804"}]
    });
    let long = |n: usize, c: &str| c.repeat(n);
    let meds = |n: usize| Value::Array(vec![json!("aspirin"); n]);
    let values: Vec<Value> = vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-0.0),
        json!(-1),
        json!(12.5),
        json!(65.0),
        json!(130),
        json!(131),
        json!(200),
        json!(200.0001),
        json!(1000),
        json!(1000.5),
        json!(1e300),
        json!(""),
        json!("x"),
        json!("female"),
        json!("FEMALE"),
        json!("abrupt"),
        json!(long(128, "a")),
        json!(long(129, "a")),
        json!(long(128, "é")),
        json!(long(129, "é")),
        json!(long(1000, "ü")),
        json!(long(1001, "u")),
        json!([]),
        json!(["oxycodone", ""]),
        json!([long(500, "x")]),
        json!([long(501, "x")]),
        meds(200),
        meds(201),
        json!([{}]),
        json!([{"rxnorm": ""}]),
        json!([{"rxnorm": "12345678901"}]),
        json!([{"rxnorm": "1234567890"}]),
        json!([{"rxnorm": 7804}]),
        json!([{"atc": "N"}]),
        json!([{"atc": "N0"}]),
        json!([{"atc": "N02"}]),
        json!([{"atc": "N02A"}]),
        json!([{"atc": "N02AA"}]),
        json!([{"atc": "N02AA0"}]),
        json!([{"atc": "N02AA05"}]),
        json!([{"atc": "n02aa05"}]),
        json!([{"name": ""}]),
        json!([{"name": "x", "dose": 5}]),
        json!([{"name": null}]),
        json!([[1]]),
        json!([null]),
        json!({"a": 1}),
    ];
    let mut checked = 0;
    for field in base.as_object().expect("object").keys() {
        for v in &values {
            let mut p = base.clone();
            p[field] = v.clone();
            agree(&engine, p.to_string().as_bytes());
            checked += 1;
        }
        let mut p = base.clone();
        p.as_object_mut().expect("object").remove(field);
        agree(&engine, p.to_string().as_bytes());
    }
    let mut p = base.clone();
    p["unexpected"] = json!(1);
    assert!(!agree(&engine, p.to_string().as_bytes()));
    assert!(checked > 1000);
}

#[test]
fn raw_edge_cases() {
    let engine = Engine::embedded().expect("embedded");
    let cases: &[&[u8]] = &[
        br#"{"id":"a","age":40,"age":41}"#,
        br#"{"id":"a","age":40,"comedications":[{"name":"x","name":"y"}]}"#,
        br#"{"id":"a","age":40} "#,
        br#"{"id":"a","age":40} x"#,
        br#" {"id":"a","age":40}"#,
        br#"{"id":"a","age":4e1}"#,
        br#"{"id":"a","age":1e400}"#,
        br#"{"id":"\u00e9t\u00e9","age":40}"#,
        br#"{"id":"a\"b","age":40,"indication":"line\nbreak"}"#,
        b"{\"id\":\"\xff\",\"age\":40}",
        br#"[]"#,
        br#"null"#,
        br#"{}"#,
        br#""#,
    ];
    for c in cases {
        agree(&engine, c);
    }
}
