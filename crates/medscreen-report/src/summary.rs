//! The run's summary (`medscreen screen --summary FILE`): what results do not carry (ruleset, inputs,
//! evaluation date, run time, input size), and its counts to check the results against.
//!
//! Only fields of the summary's documented shape are read; anything else is ignored, so a summary from a
//! newer medscreen still reads. Counts are never shown from the summary (the page shows the results'
//! counts, protected); the page only says whether the summary agrees with them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The parts of a run's summary the page uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RunSummary {
    pub(crate) ruleset: Option<String>,
    pub(crate) inputs: Vec<String>,
    pub(crate) as_of: Option<String>,
    pub(crate) elapsed_seconds: Option<f64>,
    pub(crate) bytes: Option<u64>,
    // Native runs count `read` records; FHIR runs count `patients` and `file_errors` (a file that could
    // not be read is one invalid result line).
    pub(crate) read: Option<u64>,
    pub(crate) patients: Option<u64>,
    pub(crate) file_errors: Option<u64>,
    pub(crate) clear: Option<u64>,
    pub(crate) flagged: Option<u64>,
    pub(crate) invalid: Option<u64>,
    pub(crate) skipped: Option<u64>,
    pub(crate) cautions_by_severity: BTreeMap<String, u64>,
    pub(crate) cautions_by_rule: BTreeMap<String, u64>,
    pub(crate) indeterminate_by_rule: BTreeMap<String, u64>,
    pub(crate) invalid_by_code: BTreeMap<String, u64>,
}

impl RunSummary {
    /// Result lines the run wrote, as the summary counts them.
    pub(crate) fn result_lines(&self) -> Option<u64> {
        self.read
            .or_else(|| Some(self.patients? + self.file_errors.unwrap_or(0)))
    }

    /// Invalid result lines, as the summary counts them.
    pub(crate) fn invalid_lines(&self) -> Option<u64> {
        Some(self.invalid? + self.file_errors.unwrap_or(0))
    }
}
