//! The cheap validity path (the typed reader compiled from the fact declarations) and the explaining
//! path (strict parse + JSON Schema validator) must agree on every record: same verdict, and the same
//! profile when valid. The engine here knows the embedded packs and a test pack whose facts no real pack
//! declares (an integer with a range, a number with only a lower bound, strings with and without length
//! bounds, an enumeration, a boolean), so the reader is checked on every kind of declaration.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use medscreen_core::Engine;
use medscreen_core::engine::{EMBEDDED_PACKS, EMBEDDED_VOCABULARY};
use serde_json::{Value, json};

/// A pack that declares one fact of each kind the declarations allow, none of them shared or
/// baclofen's.
const TEST_PACK: &str = r#"{
  "name": "testpack",
  "version": "1.0.0",
  "facts": {
    "test_count": {"type": ["integer", "null"], "minimum": 1, "maximum": 12},
    "test_score": {"type": ["null", "number"], "minimum": -5.5},
    "test_note": {"type": ["string", "null"], "minLength": 2, "maxLength": 5},
    "test_free": {"type": ["string", "null"]},
    "test_grade": {"enum": ["low", "high", null]},
    "test_flag": {"type": ["boolean", "null"]}
  },
  "sources": {"S": {"label": "test"}},
  "rules": [
    {"id": "T-COUNT", "title": "count", "sources": ["S"], "tiers": [
      {"when": {"fact": "test_count", "op": "ge", "value": 3}, "severity": "info", "message": "m", "action": "a"}
    ]}
  ]
}"#;

/// The embedded packs (the default screens) and the test pack, which adds its facts.
fn engine() -> Engine {
    let mut packs: Vec<(&str, &str)> = EMBEDDED_PACKS.to_vec();
    packs.push(("testpack/pack.json", TEST_PACK));
    Engine::from_packs(&packs, "rules/vocabulary.json", EMBEDDED_VOCABULARY)
        .expect("the embedded pack and the test pack load together")
}

fn agree(engine: &Engine, bytes: &[u8]) -> bool {
    let fast = engine.parse_fast(bytes);
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
    let engine = engine();
    let mut data = Vec::new();
    medscreen_core::generate::write_profiles(&mut data, engine.facts(), 20_000, 99, 0.3)
        .expect("generate");
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

/// Every declared fact set to values on both sides of each constraint, and to values of the wrong type.
#[test]
fn mutations_of_every_field() {
    let engine = engine();
    let base = json!({
        "id": "m-1", "age": 40, "sex": "female", "pregnant": false, "breastfeeding": null,
        "seizure_history": false, "kidney_disease": false, "dialysis": false, "egfr": 90.5,
        "stroke_history": false, "relies_on_spasticity": false, "liver_disease": false,
        "heart_disease": false, "diabetes": false, "psychiatric_disorder": false, "alcohol_use": false,
        "operates_machinery": false, "indication": "MS", "baclofen_daily_dose_mg": 30,
        "ckd_stage": "3a", "autonomic_dysreflexia": false, "respiratory_impairment": null,
        "hypotension": true, "alt_uln_ratio": 2.5,
        "discontinuation": "taper", "comedications": ["oxycodone", {"rxnorm": "7804"}],
        "test_count": 3, "test_score": -1, "test_note": "abc", "test_free": "",
        "test_grade": "low", "test_flag": true,
        "tizanidine_daily_dose_mg": 12, "tizanidine_discontinuation": "taper"
    });
    assert!(
        agree(&engine, base.to_string().as_bytes()),
        "the base profile is valid"
    );
    // The base sets every fact the engine knows, so each is mutated below.
    let declared: Vec<&str> = engine.facts().names().collect();
    let set: Vec<&str> = base
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(set, declared, "every declared fact is in the base profile");
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
        json!(100),
        json!(100.01),
        json!(2.5),
        json!(1),
        json!(12),
        json!(12.0),
        json!(12.5),
        json!(13),
        json!(-5.5),
        json!(-5.6),
        json!(-5),
        json!("é"),
        json!("ab"),
        json!("abcde"),
        json!("abcdef"),
        json!("éé"),
        json!("ééééé"),
        json!("éééééé"),
        json!("low"),
        json!("LOW"),
        json!("high"),
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
        // Enumerations in serde's map form, which only a derive would accept.
        json!({"female": null}),
        json!({"taper": null}),
        json!({"3a": null}),
        json!(["female"]),
        json!("3a"),
        json!("3A"),
        json!("3"),
        json!(3),
        json!("5"),
        // Nulls inside a coded medication: the schema wants strings.
        json!([{"name": null, "rxnorm": "1"}]),
        json!([{"rxnorm": null, "name": "x"}]),
        json!([{"atc": null, "name": "x"}]),
        json!([{"name": "x", "rxnorm": "7804", "atc": "N02AA05"}]),
        json!(["p1", 70]),
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
    assert!(checked > 2000);
}

#[test]
fn raw_edge_cases() {
    let engine = engine();
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
        br#"["p1", 70]"#,
        br#"  ["p1", 70]"#,
        br#"[{"id":"a","age":40}]"#,
        br#"{"id":"a","age":40,"comedications":[{"name":null,"rxnorm":"1"}]}"#,
        br#"{"id":"a","age":40,"sex":{"female":null}}"#,
        br#"{"id":"a","age":40,"discontinuation":{"abrupt":null}}"#,
        br#"{"id":"a","age":40,"ckd_stage":{"4":null}}"#,
        br#"{"id":"a","age":40,"test_grade":{"low":null}}"#,
        br#"{"id":"a","age":40,"test_count":3,"test_count":3}"#,
        br#"{"id":"a","age":40,"test_count":null,"test_count":3}"#,
        br#"{"id":"a","age":40,"egfr":null,"egfr":null}"#,
        br#"{"id":"a","age":40,"comedications":null,"comedications":null}"#,
        br#"{"id":"a","age":40,"test_note":"a\u00e9"}"#,
        br#"{"id":"a","age":40,"test_note":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}"#,
        br#"{"id":"a","age":40,"test_count":3e0}"#,
        br#"{"id":"a","age":40,"test_count":1.5e1}"#,
        br#"{"id":"a","age":40,"comedications":[["oxycodone"]]}"#,
        br#"{"id":["a"],"age":40}"#,
        br#"{"id":"a","age":[40]}"#,
        br#""a""#,
        br#"40"#,
        br#"null"#,
        br#"{}"#,
        br#""#,
    ];
    for c in cases {
        agree(&engine, c);
    }
}

/// Random documents shaped like profiles (known and unknown keys, values of every JSON type, edge
/// numbers and strings, nested objects and arrays): the fast path and the schema path agree on each.
#[test]
fn property_random_documents_agree_with_the_schema() {
    let engine = engine();
    let mut keys: Vec<String> = engine.facts().names().map(str::to_owned).collect();
    assert!(
        keys.iter().any(|k| k == "test_grade"),
        "the test pack's facts are drawn"
    );
    keys.extend(["pregnent", "name", "rxnorm", "0"].map(str::to_owned));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..30_000 {
        let doc = if rng.below(20) == 0 {
            value(&mut rng, 2)
        } else {
            let mut o = serde_json::Map::new();
            o.insert("id".into(), json!("r"));
            o.insert("age".into(), json!(40));
            for _ in 0..rng.below(6) {
                let k = keys[rng.below(keys.len() as u64) as usize].clone();
                o.insert(k, value(&mut rng, 2));
            }
            if rng.below(10) == 0 {
                o.remove(if rng.below(2) == 0 { "id" } else { "age" });
            }
            Value::Object(o)
        };
        if agree(&engine, doc.to_string().as_bytes()) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 1_000 && invalid > 10_000,
        "{valid} valid, {invalid} invalid"
    );
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn value(rng: &mut XorShift, depth: u32) -> Value {
    const STRINGS: &[&str] = &[
        "",
        "x",
        "female",
        "male",
        "other",
        "unknown",
        "abrupt",
        "taper",
        "1",
        "2",
        "3",
        "3a",
        "3b",
        "4",
        "5",
        "oxycodone",
        "Xanax 0.5mg",
        "7804",
        "N02AA05",
        "n02aa05",
        "N02A",
        "true",
        "null",
        "low",
        "high",
        "ab",
        "abcdef",
    ];
    const NUMBERS: &[f64] = &[
        0.0, -0.0, -1.0, 0.5, 12.0, 40.0, 65.0, 130.0, 131.0, 199.9, 200.0, 200.5, 1000.0, 1000.5,
        1e300, 100.0, 100.5, 3.0, 12.5, 13.0, -5.5, -5.6,
    ];
    let top = if depth == 0 { 4 } else { 7 };
    match rng.below(top) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(NUMBERS[rng.below(NUMBERS.len() as u64) as usize]),
        3 => json!(STRINGS[rng.below(STRINGS.len() as u64) as usize]),
        4 => json!(rng.below(300)),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let keys = ["name", "rxnorm", "atc", "female", "dose", "4"];
            let mut o = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                let k = keys[rng.below(keys.len() as u64) as usize];
                o.insert(k.into(), value(rng, depth - 1));
            }
            Value::Object(o)
        }
    }
}
