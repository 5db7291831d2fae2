//! Load errors: everything wrong with a rule pack or vocabulary, collected and reported at once.

use std::fmt;

use serde::Serialize;

use crate::diagnostic::{self, Diagnostic, Location};
use crate::schema::{Problem, ProblemCode};

/// One thing wrong with a rule pack or vocabulary file, located by file, rule and JSON Pointer.
///
/// Displayed as
/// ``rule `BAC-RENAL` in rules/baclofen/pack.json at /rules/7/tiers/0/when/fact: unknown fact `egfrr` ``
/// followed by `  help: did you mean `egfr`?` when there is help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadError {
    /// Stable machine-readable code.
    pub code: LoadErrorCode,
    /// The file, as named to the loader (e.g. `rules/baclofen/pack.json`).
    pub file: String,
    /// The rule the error is in, if it is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// JSON Pointer inside the file.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// One line of help, e.g. a did-you-mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// Stable codes for load errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoadErrorCode {
    /// The file could not be read.
    Io,
    /// The file is not JSON.
    InvalidJson,
    /// The file breaks its JSON Schema; the detail is in the message.
    Schema,
    /// A condition names a fact the profile schema does not define.
    UnknownFact,
    /// An operator the language does not have.
    UnknownOperator,
    /// An operator that does not fit the fact's type (`lt` on a boolean).
    OperatorTypeMismatch,
    /// A comparison value of the wrong type for the fact.
    ValueTypeMismatch,
    /// A comparison value outside the fact's enumeration.
    ValueNotInEnum,
    /// A medication class the vocabulary does not define.
    UnknownClass,
    /// Two rules (or classes, or ingredients) with the same id.
    Duplicate,
    /// A rule with no tiers.
    EmptyTiers,
    /// A rule or entry cites a source the file does not define.
    UnknownSource,
    /// A condition that is not exactly one of the language's forms.
    InvalidCondition,
    /// The rule pack's subject ingredient is not in the vocabulary.
    UnknownIngredient,
    /// A name, synonym or brand with no letters or digits, so it could never match.
    EmptyTerm,
    /// A group names a rule the pack does not define.
    UnknownRule,
    /// A rule that cannot be a member of a group (it cites no ingredient).
    InvalidGroup,
    /// A pack with no rules: it would screen nothing and report every patient clear.
    EmptyPack,
    /// A fact declaration outside what a typed slot can hold (not nullable, an unsupported keyword).
    InvalidFact,
    /// A pack declares a shared fact again, or a fact another pack declares differently.
    FactConflict,
    /// `--pack` names a pack the rule directory (or the binary) does not have.
    UnknownPack,
}

impl LoadErrorCode {
    /// The code as written in output.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadErrorCode::Io => "io",
            LoadErrorCode::InvalidJson => "invalid_json",
            LoadErrorCode::Schema => "schema",
            LoadErrorCode::UnknownFact => "unknown_fact",
            LoadErrorCode::UnknownOperator => "unknown_operator",
            LoadErrorCode::OperatorTypeMismatch => "operator_type_mismatch",
            LoadErrorCode::ValueTypeMismatch => "value_type_mismatch",
            LoadErrorCode::ValueNotInEnum => "value_not_in_enum",
            LoadErrorCode::UnknownClass => "unknown_class",
            LoadErrorCode::Duplicate => "duplicate",
            LoadErrorCode::EmptyTiers => "empty_tiers",
            LoadErrorCode::UnknownSource => "unknown_source",
            LoadErrorCode::InvalidCondition => "invalid_condition",
            LoadErrorCode::UnknownIngredient => "unknown_ingredient",
            LoadErrorCode::EmptyTerm => "empty_term",
            LoadErrorCode::UnknownRule => "unknown_rule",
            LoadErrorCode::InvalidGroup => "invalid_group",
            LoadErrorCode::EmptyPack => "empty_pack",
            LoadErrorCode::InvalidFact => "invalid_fact",
            LoadErrorCode::FactConflict => "fact_conflict",
            LoadErrorCode::UnknownPack => "unknown_pack",
        }
    }
}

impl LoadError {
    /// An error at `pointer` in `file`.
    pub fn new(
        code: LoadErrorCode,
        file: &str,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        LoadError {
            code,
            file: file.to_owned(),
            rule: None,
            pointer: pointer.into(),
            message: message.into(),
            help: None,
        }
    }

    /// Attach one line of help.
    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Attach the rule the error is in.
    pub fn in_rule(mut self, rule: Option<&str>) -> Self {
        self.rule = rule.map(str::to_owned);
        self
    }

    /// A schema problem in `file`, keeping its pointer, message and help.
    pub fn from_problem(file: &str, problem: Problem) -> Self {
        let message = match problem.code {
            ProblemCode::UnknownField | ProblemCode::MissingField => problem.message,
            code => format!("{} ({code})", problem.message),
        };
        LoadError {
            code: LoadErrorCode::Schema,
            file: file.to_owned(),
            rule: None,
            pointer: problem.pointer,
            message,
            help: problem.help,
        }
    }
}

impl Diagnostic for LoadError {
    diagnostic::field_accessors!();

    fn location(&self) -> Location<'_> {
        Location::File {
            file: &self.file,
            rule: self.rule.as_deref(),
            pointer: &self.pointer,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for LoadError {}

/// Every error found while loading; the engine refuses to start on any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// The errors, in the order found.
    pub fn errors(&self) -> &[LoadError] {
        &self.0
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the rule pack failed to load ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_error_is_a_diagnostic_displayed_subject_first_then_help() {
        let e = LoadError::new(
            LoadErrorCode::UnknownFact,
            "rules/baclofen/pack.json",
            "/rules/7/tiers/0/when/fact",
            "unknown fact `egfrr`",
        )
        .in_rule(Some("BAC-RENAL"))
        .with_help(Some("did you mean `egfr`?".to_owned()));
        assert_eq!(
            (e.code(), e.message().as_ref(), e.help(), e.location()),
            (
                "unknown_fact",
                "unknown fact `egfrr`",
                Some("did you mean `egfr`?"),
                Location::File {
                    file: "rules/baclofen/pack.json",
                    rule: Some("BAC-RENAL"),
                    pointer: "/rules/7/tiers/0/when/fact",
                },
            )
        );
        assert_eq!(
            e.to_string(),
            "rule `BAC-RENAL` in rules/baclofen/pack.json at /rules/7/tiers/0/when/fact: unknown fact `egfrr`\n  help: did you mean `egfr`?"
        );
        let whole_file = LoadError::new(LoadErrorCode::Io, "vocab.json", "", "cannot read it");
        assert_eq!(whole_file.to_string(), "vocab.json: cannot read it");
        let boxed: Box<dyn std::error::Error> = Box::new(whole_file);
        assert!(boxed.source().is_none());
    }
}
