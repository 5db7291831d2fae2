//! JSON Schema validation that explains itself without echoing patient data.
//!
//! The schemas in `schemas/` are the contract: `jsonschema` decides validity, and this module turns its
//! errors into [`Problem`]s with a JSON Pointer, a stable [`ProblemCode`] and a message written from the
//! *schema* (the expected type, the allowed range), never from the instance's value. Unknown fields get a
//! did-you-mean from the names the schema allows at that place.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;

use crate::diagnostic::{self, Diagnostic, Location};
use crate::suggest::did_you_mean;

/// What is wrong with one place in a document: a stable code, a JSON Pointer and a message.
///
/// Serialised as `{"pointer": "/age", "code": "out_of_range", "message": "must be at most 130"}`, with
/// `"help"` added when there is a suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON Pointer to the offending place (`""` is the whole document).
    pub pointer: String,
    /// Stable machine-readable code.
    pub code: ProblemCode,
    /// What is wrong, without the offending value.
    pub message: String,
    /// One line of help, e.g. a did-you-mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Problem {
    /// A problem with no help line.
    pub fn new(pointer: impl Into<String>, code: ProblemCode, message: impl Into<String>) -> Self {
        Problem {
            pointer: pointer.into(),
            code,
            message: message.into(),
            help: None,
        }
    }

    /// A record longer than `limit` bytes, which is not read.
    pub fn too_large(limit: usize) -> Self {
        Problem::new(
            "",
            ProblemCode::TooLarge,
            format!("the record is longer than {limit} bytes"),
        )
    }
}

impl Diagnostic for Problem {
    diagnostic::field_accessors!();

    fn location(&self) -> Location<'_> {
        Location::Pointer(&self.pointer)
    }
}

impl fmt::Display for Problem {
    /// `/age: must be at most 130`, or `(document): ...` for the whole document, then the help line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for Problem {}

/// Stable codes for validation problems. Set where the problem is created, never derived from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// The bytes are not one JSON value.
    InvalidJson,
    /// The input is not encoded as UTF-8.
    InvalidUtf8,
    /// An object holds the same key twice.
    DuplicateKey,
    /// The document is not a JSON object.
    NotAnObject,
    /// The value has the wrong JSON type.
    TypeMismatch,
    /// A number is outside the allowed range.
    OutOfRange,
    /// A value is not one of the allowed options.
    InvalidEnum,
    /// A required field is absent.
    MissingField,
    /// A field the schema does not define.
    UnknownField,
    /// A string is too short or too long.
    InvalidLength,
    /// An array has too many items.
    TooManyItems,
    /// An array has too few items.
    TooFewItems,
    /// An object that must have members has none.
    EmptyObject,
    /// A string does not have the required form.
    InvalidFormat,
    /// A record is larger than the configured limit.
    TooLarge,
    /// JSON nested deeper than the parser allows.
    TooDeep,
    /// A number too large to represent.
    NumberOutOfRange,
    /// The input ended too early (a truncated gzip file); records before this point were read.
    TruncatedInput,
    /// The input could not be read to its end.
    IoError,
    /// Any other schema violation.
    Invalid,
}

impl ProblemCode {
    /// The code as written in output.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::InvalidJson => "invalid_json",
            ProblemCode::InvalidUtf8 => "invalid_utf8",
            ProblemCode::DuplicateKey => "duplicate_key",
            ProblemCode::NotAnObject => "not_an_object",
            ProblemCode::TypeMismatch => "type_mismatch",
            ProblemCode::OutOfRange => "out_of_range",
            ProblemCode::InvalidEnum => "invalid_enum",
            ProblemCode::MissingField => "missing_field",
            ProblemCode::UnknownField => "unknown_field",
            ProblemCode::InvalidLength => "invalid_length",
            ProblemCode::TooManyItems => "too_many_items",
            ProblemCode::TooFewItems => "too_few_items",
            ProblemCode::EmptyObject => "empty_object",
            ProblemCode::InvalidFormat => "invalid_format",
            ProblemCode::TooLarge => "too_large",
            ProblemCode::TooDeep => "too_deep",
            ProblemCode::NumberOutOfRange => "number_out_of_range",
            ProblemCode::TruncatedInput => "truncated_input",
            ProblemCode::IoError => "io_error",
            ProblemCode::Invalid => "invalid",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled schema together with its source, which messages and suggestions are written from.
pub struct SchemaChecker {
    schema: Value,
    validator: Validator,
}

impl fmt::Debug for SchemaChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaChecker").finish_non_exhaustive()
    }
}

impl SchemaChecker {
    /// Compile `schema`; the error names what is wrong with the schema itself.
    pub fn new(schema: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(SchemaChecker { schema, validator })
    }

    /// The schema document.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Whether `instance` is valid (the cheap path: builds no errors).
    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Every problem with `instance`, sorted by pointer; empty when it is valid.
    pub fn problems(&self, instance: &Value) -> Vec<Problem> {
        let mut out = Vec::new();
        for err in self.validator.iter_errors(instance) {
            self.explain(&err, &mut out);
        }
        out.sort_by(|a, b| {
            a.pointer
                .cmp(&b.pointer)
                .then(a.code.as_str().cmp(b.code.as_str()))
        });
        out.dedup();
        out
    }

    /// The schema object that holds the keyword `err` failed on.
    fn parent_schema(&self, err: &ValidationError<'_>) -> Option<&Value> {
        let location = err
            .absolute_keyword_location()
            .and_then(|uri| uri.fragment().map(|f| f.as_str().to_owned()))
            .unwrap_or_else(|| err.schema_path().as_str().to_owned());
        let parent = location.rsplit_once('/').map_or("", |(p, _)| p);
        self.schema.pointer(parent)
    }

    fn explain(&self, err: &ValidationError<'_>, out: &mut Vec<Problem>) {
        let pointer = err.instance_path().as_str().to_owned();
        let parent = self.parent_schema(err);
        let (code, message) = match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let allowed: Vec<&str> = parent
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                for name in unexpected {
                    let shown = truncate(name, 64);
                    let mut p = Problem::new(
                        format!("{pointer}/{}", escape_pointer(name)),
                        ProblemCode::UnknownField,
                        format!("unknown field `{shown}`"),
                    );
                    p.help = match did_you_mean(name, allowed.iter().copied()) {
                        Some(s) => Some(format!("did you mean `{s}`?")),
                        None if !allowed.is_empty() => {
                            Some(format!("allowed fields: {}", backticked(&allowed)))
                        }
                        None => None,
                    };
                    out.push(p);
                }
                return;
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or("?");
                out.push(Problem::new(
                    format!("{pointer}/{}", escape_pointer(name)),
                    ProblemCode::MissingField,
                    format!("missing required field `{name}`"),
                ));
                return;
            }
            ValidationErrorKind::Type { .. } => {
                let expected = parent.and_then(|s| s.get("type")).map_or_else(
                    || "another type".to_owned(),
                    |t| match t {
                        Value::Array(types) => join_or(types.iter().filter_map(Value::as_str)),
                        Value::String(s) => article(s),
                        _ => "another type".to_owned(),
                    },
                );
                let code = if pointer.is_empty() {
                    ProblemCode::NotAnObject
                } else {
                    ProblemCode::TypeMismatch
                };
                (code, format!("expected {expected}"))
            }
            ValidationErrorKind::Enum { options } => {
                let names: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| match v {
                                Value::String(s) => format!("`{s}`"),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut p = Problem::new(
                    pointer,
                    ProblemCode::InvalidEnum,
                    format!(
                        "must be one of {}",
                        join_or(names.iter().map(String::as_str))
                    ),
                );
                p.help = err
                    .instance()
                    .as_str()
                    .and_then(|given| enum_help(given, options));
                out.push(p);
                return;
            }
            ValidationErrorKind::Minimum { limit } => {
                (ProblemCode::OutOfRange, format!("must be at least {limit}"))
            }
            ValidationErrorKind::Maximum { limit } => {
                (ProblemCode::OutOfRange, format!("must be at most {limit}"))
            }
            ValidationErrorKind::ExclusiveMinimum { limit } => (
                ProblemCode::OutOfRange,
                format!("must be greater than {limit}"),
            ),
            ValidationErrorKind::ExclusiveMaximum { limit } => (
                ProblemCode::OutOfRange,
                format!("must be less than {limit}"),
            ),
            ValidationErrorKind::MinLength { limit } => (
                ProblemCode::InvalidLength,
                format!("must be at least {limit} character{} long", plural(*limit)),
            ),
            ValidationErrorKind::MaxLength { limit } => (
                ProblemCode::InvalidLength,
                format!("must be at most {limit} character{} long", plural(*limit)),
            ),
            ValidationErrorKind::MaxItems { limit } => (
                ProblemCode::TooManyItems,
                format!("must have at most {limit} item{}", plural(*limit)),
            ),
            ValidationErrorKind::MinItems { limit } => (
                ProblemCode::TooFewItems,
                format!("must have at least {limit} item{}", plural(*limit)),
            ),
            ValidationErrorKind::MinProperties { .. } => {
                let names: Vec<&str> = parent
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let msg = if names.is_empty() {
                    "must not be empty".to_owned()
                } else {
                    format!("must have at least one of {}", backticked(&names))
                };
                (ProblemCode::EmptyObject, msg)
            }
            ValidationErrorKind::Pattern { pattern } => (
                ProblemCode::InvalidFormat,
                format!("does not match the pattern `{pattern}`"),
            ),
            other => (
                ProblemCode::Invalid,
                format!("does not satisfy the schema keyword `{}`", other.keyword()),
            ),
        };
        out.push(Problem::new(pointer, code, message));
    }
}

/// A did-you-mean for a string outside an enumeration: the options it is a case-insensitive prefix of
/// (`"F"` -> `female`; `"3"` -> `3a` or `3b`), else a close typo (for values of three characters or
/// more, where edit distance means something).
fn enum_help(given: &str, options: &Value) -> Option<String> {
    let allowed: Vec<&str> = options
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let lower = given.trim().to_lowercase();
    if lower.is_empty() {
        return None;
    }
    let prefixed: Vec<&str> = allowed
        .iter()
        .copied()
        .filter(|o| o.to_lowercase().starts_with(&lower))
        .collect();
    let shown: Vec<String> = match prefixed.as_slice() {
        [] if given.chars().count() >= 3 => did_you_mean(given, allowed.iter().copied())
            .map(|s| vec![format!("`{s}`")])
            .unwrap_or_default(),
        [] => Vec::new(),
        many => many.iter().map(|s| format!("`{s}`")).collect(),
    };
    (!shown.is_empty()).then(|| {
        format!(
            "did you mean {}?",
            join_or(shown.iter().map(String::as_str))
        )
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn article(t: &str) -> String {
    match t {
        "integer" | "object" | "array" => format!("an {t}"),
        "null" => "null".to_owned(),
        _ => format!("a {t}"),
    }
}

fn join_or<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}...")
    }
}

/// Escape one JSON Pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_is_a_diagnostic_with_help_on_its_own_line() {
        let p = Problem {
            help: Some("did you mean `pregnant`?".to_owned()),
            ..Problem::new(
                "/pregnent",
                ProblemCode::UnknownField,
                "unknown field `pregnent`",
            )
        };
        assert_eq!(
            (p.code(), p.message().as_ref(), p.help(), p.location()),
            (
                "unknown_field",
                "unknown field `pregnent`",
                Some("did you mean `pregnant`?"),
                Location::Pointer("/pregnent"),
            )
        );
        assert_eq!(
            p.to_string(),
            "/pregnent: unknown field `pregnent`\n  help: did you mean `pregnant`?"
        );
        let whole = Problem::new("", ProblemCode::NotAnObject, "the record is not an object");
        assert_eq!(whole.to_string(), "(document): the record is not an object");
        let _: &dyn std::error::Error = &whole;
    }
}
