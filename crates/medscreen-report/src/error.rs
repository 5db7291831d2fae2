//! The report's errors: a stable code set where the error is made, a message that names the file and
//! line (never a line's content: results hold patient data), and one line of help.

use std::fmt;

/// What went wrong, as a stable machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A results file or the output could not be read or written.
    Io,
    /// A line is not a medscreen result.
    NotAResult,
    /// A line is longer than the report reads (a sign of a file that is not medscreen's results).
    LineTooLong,
    /// The summary is not the JSON object that `medscreen screen --summary` writes.
    InvalidSummary,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Io => "io_error",
            ErrorCode::NotAResult => "not_a_result",
            ErrorCode::LineTooLong => "too_large",
            ErrorCode::InvalidSummary => "invalid_summary",
        }
    }
}

/// An error of the report: the code, the message, one line of help and the I/O cause if any.
#[derive(Debug)]
pub struct ReportError {
    code: ErrorCode,
    message: String,
    help: &'static str,
    source: Option<std::io::Error>,
}

impl ReportError {
    pub(crate) fn new(code: ErrorCode, message: String, help: &'static str) -> Self {
        ReportError {
            code,
            message,
            help,
            source: None,
        }
    }

    pub(crate) fn io(message: String, source: std::io::Error) -> Self {
        ReportError {
            code: ErrorCode::Io,
            message,
            help: "check that the file exists and can be read",
            source: Some(source),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message: the subject (file and line) first, no patient value.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// One line of help.
    pub fn help(&self) -> &str {
        self.help
    }
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(e) = &self.source {
            write!(f, ": {e}")?;
        }
        write!(f, "\nhelp: {}", self.help)
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}
