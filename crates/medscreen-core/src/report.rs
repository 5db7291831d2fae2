//! What a screening returns, and how it is written.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use smallvec::SmallVec;

use crate::severity::Severity;
use crate::vocab::Source;

/// `clear` when no rule fired, `flagged` when some did. Indeterminate rules do not change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No caution.
    Clear,
    /// At least one caution.
    Flagged,
}

impl Status {
    /// `flagged` when there is a highest severity (some caution), `clear` otherwise.
    pub fn of_max(max_severity: Option<Severity>) -> Status {
        if max_severity.is_some() {
            Status::Flagged
        } else {
            Status::Clear
        }
    }
}

/// The result of screening one profile.
///
/// Written as JSON like this (a rule's text is borrowed from the engine, so building one copies only the
/// evidence):
///
/// ```json
/// {"id": "p-12", "status": "flagged", "max_severity": "critical",
///  "cautions": [{"rule": "BAC-DDI-OPIOID", "severity": "critical", "title": "...", "message": "...",
///                "action": "...", "evidence": [{"pointer": "/comedications/0", "value": "oxycodone 5 mg",
///                "ingredient": "oxycodone", "class": "opioid"}], "sources": [{"label": "...", "url": "..."}]}],
///  "indeterminate": [{"rule": "BAC-SEIZURE", "missing": ["seizure_history"]}],
///  "ruleset": "baclofen@1.0.0#0123456789ab"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Screening<'e> {
    /// The profile's `id`.
    pub id: String,
    /// `clear` or `flagged`.
    pub status: Status,
    /// The highest severity among the cautions, `null` when clear.
    pub max_severity: Option<Severity>,
    /// Cautions, most severe first, then in pack order.
    pub cautions: Vec<Caution<'e>>,
    /// Rules that could not be decided because facts are missing, in pack order.
    pub indeterminate: Vec<Indeterminate<'e>>,
    /// `name@version#hash` of the rule pack.
    pub ruleset: &'e str,
    /// The pack's name (written by the several-pack result shape, not by this one).
    #[serde(skip)]
    pub pack: &'e str,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Caution<'e> {
    /// Rule id.
    pub rule: &'e str,
    /// Position of the rule in the pack.
    #[serde(skip)]
    pub index: usize,
    /// Severity of the tier that fired.
    pub severity: Severity,
    /// Rule title.
    pub title: &'e str,
    /// The tier's message.
    pub message: &'e str,
    /// The tier's recommended action.
    pub action: &'e str,
    /// The facts that made the tier true (usually one or two: kept inline).
    pub evidence: SmallVec<[Evidence<'e>; 2]>,
    /// The rule's cited sources.
    pub sources: &'e [Source],
}

/// A fact behind a caution: where it is in the profile and what it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence<'e> {
    /// JSON Pointer into the profile (`/egfr`, `/comedications/2`).
    pub pointer: Cow<'e, str>,
    /// The value there (`null` for a fact that is unknown, when being unknown is what fired).
    pub value: Value,
    /// For a medication: the ingredient it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingredient: Option<&'e str>,
    /// For a medication: the class the rule asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'e str>,
    /// For free text: the term that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<&'e str>,
}

/// A rule that could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Indeterminate<'e> {
    /// Rule id.
    pub rule: &'e str,
    /// Position of the rule in the pack.
    #[serde(skip)]
    pub index: usize,
    /// The facts whose absence left it undecided (kept inline up to four).
    pub missing: SmallVec<[&'e str; 4]>,
}
