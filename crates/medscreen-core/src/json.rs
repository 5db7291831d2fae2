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
        let (code, what) = match serde_fault(&e).kind {
            JsonFault::TooDeep => (ProblemCode::TooDeep, "nested too deeply"),
            JsonFault::NumberOutOfRange => (ProblemCode::NumberOutOfRange, "number out of range"),
            JsonFault::TrailingCharacters => (
                ProblemCode::InvalidJson,
                "unexpected data after the JSON value",
            ),
            JsonFault::Eof => (ProblemCode::InvalidJson, "unexpected end of input"),
            JsonFault::Syntax | JsonFault::Data | JsonFault::Io => {
                (ProblemCode::InvalidJson, "malformed JSON")
            }
        };
        Problem::new("", code, format!("{what} at column {}", e.column()))
    })
}

/// What went wrong in a serde_json error, in our terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonFault {
    /// Not JSON ([`serde_json::error::Category::Syntax`], none of the cases below).
    Syntax,
    /// The input ended inside a value.
    Eof,
    /// JSON of the wrong shape for the type read.
    Data,
    /// The reader failed.
    Io,
    /// Nested deeper than serde_json's recursion limit.
    TooDeep,
    /// A number too large to represent.
    NumberOutOfRange,
    /// More than whitespace after the value.
    TrailingCharacters,
}

/// A serde_json error, classified, with serde_json's description of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerdeFault {
    /// What kind of failure it is.
    pub kind: JsonFault,
    /// serde_json's description without its `at line L column C` suffix (the caller locates the
    /// error itself). For syntax errors it names what was expected, never the input; a `Data` error's
    /// text can quote the value (`invalid type: string "..."`), so it is not shown for patient records.
    pub reason: String,
}

/// Classify a serde_json error. [`serde_json::Error::classify`] decides, except where it puts cases we
/// report with distinct codes in one category (`Syntax` holds the recursion limit, a number out of range
/// and trailing characters): those are told apart by serde_json's message, here and nowhere else, and
/// each message is pinned by a test so that a serde_json upgrade that rewords one fails loudly.
pub fn serde_fault(e: &serde_json::Error) -> SerdeFault {
    use serde_json::error::Category;

    let text = e.to_string();
    // serde_json writes `{message} at line {line} column {column}` when it knows the position.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = match text.strip_suffix(&suffix) {
        Some(reason) if e.line() != 0 => reason.to_owned(),
        _ => text,
    };
    let kind = match e.classify() {
        Category::Io => JsonFault::Io,
        Category::Eof => JsonFault::Eof,
        Category::Data => JsonFault::Data,
        Category::Syntax => match reason.as_str() {
            "recursion limit exceeded" => JsonFault::TooDeep,
            "number out of range" => JsonFault::NumberOutOfRange,
            "trailing characters" => JsonFault::TrailingCharacters,
            _ => JsonFault::Syntax,
        },
    };
    SerdeFault { kind, reason }
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

    fn fault(input: &[u8]) -> SerdeFault {
        match serde_json::from_slice::<Value>(input) {
            Ok(v) => panic!("{input:?} parsed as {v}"),
            Err(e) => serde_fault(&e),
        }
    }

    #[test]
    fn serde_recursion_limit_message_is_too_deep() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(fault(deep.as_bytes()).kind, JsonFault::TooDeep);
    }

    #[test]
    fn serde_number_out_of_range_message_is_number_out_of_range() {
        assert_eq!(fault(b"[1e400]").kind, JsonFault::NumberOutOfRange);
    }

    #[test]
    fn serde_trailing_characters_message_is_trailing_characters() {
        assert_eq!(fault(b"{} x").kind, JsonFault::TrailingCharacters);
    }

    #[test]
    fn serde_categories_decide_the_other_faults() {
        assert_eq!(
            fault(b"{\"a\": ").kind,
            JsonFault::Eof,
            "the input ends inside a value"
        );
        assert_eq!(fault(b"{\"a\" 1}").kind, JsonFault::Syntax);
        let e = serde_json::from_slice::<u8>(b"\"x\"").unwrap_err();
        assert_eq!(serde_fault(&e).kind, JsonFault::Data);
        let e = serde_json::from_reader::<_, Value>(FailingReader).unwrap_err();
        assert_eq!(serde_fault(&e).kind, JsonFault::Io);
    }

    struct FailingReader;

    impl std::io::Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk gone"))
        }
    }

    #[test]
    fn serde_reason_drops_only_the_position() {
        assert_eq!(fault(b"{\"a\" 1}").reason, "expected `:`");
        assert_eq!(fault(b"nope").reason, "expected ident");
        let e = serde_json::from_reader::<_, Value>(FailingReader).unwrap_err();
        assert_eq!(serde_fault(&e).reason, "disk gone");
    }

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
