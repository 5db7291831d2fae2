//! Reading one JSON record strictly: duplicate keys are an error (serde_json would keep the last one
//! silently, and a profile with two `age`s must not be screened on a guess), and every failure is
//! described by position and kind only, never by content.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::schema::{Problem, ProblemCode, escape_pointer};

/// Parse one JSON document into a [`Value`], rejecting duplicate keys.
pub fn parse_record(bytes: &[u8]) -> Result<Value, Problem> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(Problem::new(
            "",
            ProblemCode::InvalidUtf8,
            "the record is not valid UTF-8",
        ));
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        pointer: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        if let Some((pointer, key)) = duplicate.into_inner() {
            return Problem::new(
                pointer,
                ProblemCode::DuplicateKey,
                format!("duplicate key `{key}`"),
            );
        }
        let text = e.to_string();
        let (code, what) = if text.starts_with("recursion limit exceeded") {
            (ProblemCode::TooDeep, "nested too deeply")
        } else if text.starts_with("number out of range") {
            (ProblemCode::NumberOutOfRange, "number out of range")
        } else if text.starts_with("trailing characters") {
            (
                ProblemCode::InvalidJson,
                "unexpected data after the JSON value",
            )
        } else if e.is_eof() {
            (ProblemCode::InvalidJson, "unexpected end of input")
        } else {
            (ProblemCode::InvalidJson, "malformed JSON")
        };
        Problem::new("", code, format!("{what} at column {}", e.column()))
    })
}

struct Strict<'a> {
    pointer: String,
    duplicate: &'a RefCell<Option<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let seed = Strict {
                pointer: format!("{}/{}", self.pointer, out.len()),
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let pointer = format!("{}/{}", self.pointer, escape_pointer(&key));
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                *self.duplicate.borrow_mut() = Some((pointer, shown));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Strict {
                pointer,
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_named_with_their_pointer() {
        let e = parse_record(br#"{"id": "a", "age": 3, "age": 4}"#).unwrap_err();
        assert_eq!(
            (e.pointer.as_str(), e.code),
            ("/age", ProblemCode::DuplicateKey)
        );
        assert_eq!(e.message, "duplicate key `age`");
        let e = parse_record(br#"{"comedications": [{"name": "a", "name": "b"}]}"#).unwrap_err();
        assert_eq!(e.pointer, "/comedications/0/name");
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            parse_record(b"{\"a\": 1e400}").unwrap_err().code,
            ProblemCode::NumberOutOfRange
        );
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(
            parse_record(deep.as_bytes()).unwrap_err().code,
            ProblemCode::TooDeep
        );
        let e = parse_record(b"{\"a\": 1} x").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ProblemCode::InvalidJson,
                "unexpected data after the JSON value at column 10"
            )
        );
        assert_eq!(
            parse_record(b"{\"a\": ").unwrap_err().message,
            "unexpected end of input at column 6"
        );
        assert_eq!(
            parse_record(b"\xff").unwrap_err().code,
            ProblemCode::InvalidUtf8
        );
    }

    #[test]
    fn values_round_trip() {
        let text = br#"{"a": [1, -2, 3.5, true, null, "x", {"b": {}}]}"#;
        let strict = parse_record(text).unwrap();
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
    }
}
