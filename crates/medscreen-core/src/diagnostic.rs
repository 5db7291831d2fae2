//! One shape for every error a user sees: a stable code, a message, an optional line of help and a
//! location.
//!
//! Each domain keeps its own error type, because each is located differently (a profile problem by a
//! JSON Pointer in the record, a pack error by `{file, rule, pointer}`, a FHIR problem by input, line
//! and resource) and is written on the wire with its own fields. What they share is this trait: a
//! printer, a log line or a test can ask any of them the same four questions, and every one of them is
//! displayed as text by the same function, [`render`], in the house style (subject first, then the
//! message, then `help:` on a line of its own). Codes are chosen where the error is created, as a
//! variant of the domain's code enum, and never derived from a message; the one exception, serde_json's
//! errors, goes through [`crate::json::serde_fault`], which alone reads their text.

use std::borrow::Cow;
use std::fmt;

pub use crate::json::{JsonFault, SerdeFault, serde_fault};

/// An error a user sees: a stable machine code, a message, an optional line of help and a location.
///
/// Implementing it takes the four methods below, and `Display` written with [`render`] so that the
/// text form is the same for every error type:
///
/// ```
/// use std::borrow::Cow;
/// use std::fmt;
/// use medscreen_core::diagnostic::{self, Diagnostic, Location};
///
/// #[derive(Debug)]
/// struct TokenProblem {
///     code: &'static str,
///     message: String,
/// }
///
/// impl Diagnostic for TokenProblem {
///     fn code(&self) -> &'static str {
///         self.code
///     }
///     fn message(&self) -> Cow<'_, str> {
///         Cow::Borrowed(&self.message)
///     }
///     fn location(&self) -> Location<'_> {
///         Location::Pointer("/context/token")
///     }
/// }
///
/// impl fmt::Display for TokenProblem {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         diagnostic::render(self, f)
///     }
/// }
///
/// impl std::error::Error for TokenProblem {}
///
/// let p = TokenProblem { code: "expired_token", message: "the token has expired".into() };
/// assert_eq!(p.to_string(), "/context/token: the token has expired");
/// assert_eq!(p.help(), None);
/// ```
pub trait Diagnostic: std::error::Error {
    /// The stable machine code, as written on the wire (`unknown_field`, `broken_reference`).
    fn code(&self) -> &'static str;

    /// What is wrong, without the location and without patient values.
    fn message(&self) -> Cow<'_, str>;

    /// One line of help (a did-you-mean, what to do next), if there is one.
    fn help(&self) -> Option<&str> {
        None
    }

    /// Where the problem is.
    fn location(&self) -> Location<'_>;
}

/// The `code`, `message` and `help` methods of a [`Diagnostic`] for a type that keeps them as fields:
/// `code` (a code enum with `as_str()`), `message: String` and `help: Option<String>`.
macro_rules! field_accessors {
    () => {
        fn code(&self) -> &'static str {
            self.code.as_str()
        }

        fn message(&self) -> ::std::borrow::Cow<'_, str> {
            ::std::borrow::Cow::Borrowed(&self.message)
        }

        fn help(&self) -> Option<&str> {
            self.help.as_deref()
        }
    };
}

pub(crate) use field_accessors;

/// Where a diagnostic points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location<'a> {
    /// Not a place in any input: the output could not be written, say.
    Nowhere,
    /// A JSON Pointer inside the document being read (`""` is the whole document).
    Pointer(&'a str),
    /// A place in a rule pack, vocabulary or value-set file: `{file, rule, pointer}`.
    File {
        /// The file, as named to the loader (`rules/baclofen/pack.json`).
        file: &'a str,
        /// The rule the place is in, if it is inside one.
        rule: Option<&'a str>,
        /// JSON Pointer inside the file (`""` is the whole file).
        pointer: &'a str,
    },
    /// A place in one record of an input: the input, the 1-based line the record starts at, its index
    /// in a top-level array, the resource (`Condition/abc`) and a JSON Pointer inside the record.
    Record {
        /// The input (a path, or `-`).
        input: Option<&'a str>,
        /// The 1-based line the record starts at.
        line: Option<u64>,
        /// The record's index in a top-level JSON array.
        index: Option<u64>,
        /// `Type/id` of the resource the place is in.
        resource: Option<&'a str>,
        /// JSON Pointer inside the record (`""` is the whole record).
        pointer: &'a str,
    },
}

impl fmt::Display for Location<'_> {
    /// The subject of a message: `/age`, ``rule `BAC-RENAL` in rules/baclofen/pack.json at /rules/7``,
    /// `` `Condition/abc` in Condition.ndjson line 7 at /subject/reference ``. Identifiers only, never
    /// a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Location::Nowhere => Ok(()),
            Location::Pointer("") => f.write_str("(document)"),
            Location::Pointer(pointer) => f.write_str(pointer),
            Location::File {
                file,
                rule,
                pointer,
            } => {
                if let Some(rule) = rule {
                    write!(f, "rule `{rule}` in ")?;
                }
                f.write_str(file)?;
                if !pointer.is_empty() {
                    write!(f, " at {pointer}")?;
                }
                Ok(())
            }
            Location::Record {
                input,
                line,
                index,
                resource,
                pointer,
            } => {
                let mut parts: Vec<String> = Vec::new();
                if let Some(r) = resource {
                    parts.push(format!("`{r}`"));
                }
                if let Some(i) = input {
                    parts.push(format!("in {i}"));
                }
                if let Some(l) = line {
                    parts.push(format!("line {l}"));
                }
                if let Some(i) = index {
                    parts.push(format!("[{i}]"));
                }
                if !pointer.is_empty() {
                    parts.push(format!("at {pointer}"));
                }
                if parts.is_empty() {
                    f.write_str("(document)")
                } else {
                    f.write_str(&parts.join(" "))
                }
            }
        }
    }
}

/// The one text form of a diagnostic: `LOCATION: MESSAGE`, then `\n  help: HELP` when there is help
/// (the location and its colon are left out when it is [`Location::Nowhere`]). Every diagnostic type's
/// `Display` is this function.
pub fn render<D: Diagnostic + ?Sized>(d: &D, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let location = d.location();
    if location != Location::Nowhere {
        write!(f, "{location}: ")?;
    }
    f.write_str(&d.message())?;
    if let Some(help) = d.help() {
        write!(f, "\n  help: {help}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_the_place_and_never_a_value() {
        assert_eq!(Location::Pointer("").to_string(), "(document)");
        assert_eq!(Location::Pointer("/age").to_string(), "/age");
        assert_eq!(
            Location::File {
                file: "rules/baclofen/pack.json",
                rule: Some("BAC-RENAL"),
                pointer: "/rules/7"
            }
            .to_string(),
            "rule `BAC-RENAL` in rules/baclofen/pack.json at /rules/7"
        );
        assert_eq!(
            Location::File {
                file: "vocab.json",
                rule: None,
                pointer: ""
            }
            .to_string(),
            "vocab.json"
        );
        assert_eq!(
            Location::Record {
                input: Some("-"),
                line: Some(3),
                index: Some(2),
                resource: None,
                pointer: "/age",
            }
            .to_string(),
            "in - line 3 [2] at /age"
        );
        assert_eq!(
            Location::Record {
                input: None,
                line: None,
                index: Some(3),
                resource: None,
                pointer: "",
            }
            .to_string(),
            "[3]"
        );
        assert_eq!(Location::Nowhere.to_string(), "");
    }

    #[test]
    fn batch_error_is_a_diagnostic_with_no_location() {
        let e = crate::batch::BatchError::Output(std::io::Error::other("disk full"));
        assert_eq!(e.code(), "output_error");
        // No location, so the text is the message alone, with no subject and no colon before it.
        assert_eq!(e.location(), Location::Nowhere);
        assert!(e.help().is_none());
        assert_eq!(e.to_string(), "cannot write the output: disk full");
    }
}
