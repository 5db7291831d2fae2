//! medscreen's population report: one self-contained HTML page of a screening run, made from the
//! NDJSON results that `medscreen screen` writes.
//!
//! ```
//! use medscreen_report::{Report, ReportOptions};
//!
//! let results = br#"{"line":1,"id":"p-1","status":"flagged","max_severity":"warning","cautions":[{"rule":"R-1","severity":"warning","evidence":[]}],"indeterminate":[],"ruleset":"demo@1.0.0#000000000000"}
//! {"line":2,"id":"p-2","status":"invalid","errors":[{"pointer":"/age","code":"out_of_range","message":"must be at most 130"}]}
//! "#;
//! let mut report = Report::new(ReportOptions::default());
//! report.add_results(&results[..], "results.ndjson")?;
//! let mut page = Vec::new();
//! report.write_html(&mut page)?;
//! let page = String::from_utf8(page)?;
//! assert!(page.starts_with("<!DOCTYPE html>"));
//! assert!(!page.contains("p-1")); // aggregates only: no record id
//! assert!(page.contains("&lt;11")); // one flagged record is a small count
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The work is split as the pipeline is: `tally` reads result lines one at a time into counts
//! (bounded memory, nothing of a record kept), `suppress` decides which counts may be shown (small
//! cells and their complements), and `html` writes the page from what may be shown. The page never
//! sees a count that suppression hid.

#![forbid(unsafe_code)]
#![warn(missing_docs, unnameable_types)]

mod check;
mod collect;
mod error;
mod html;
mod summary;
mod suppress;
mod tally;

use std::io::{BufRead, Read as _, Write};

pub use collect::Collector;
pub use error::{ErrorCode, ReportError};
pub use tally::Demographics;

use summary::RunSummary;
use tally::{NotAResult, Scratch, Tally};

/// Longest result line read; a longer line is refused rather than held in memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// How the report is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Counts from 1 to `min_cell - 1` are shown as `<min_cell` (default 11, as public-health reporting
    /// does); 0 or 1 shows every count.
    pub min_cell: u64,
    /// The page's title.
    pub title: String,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            min_cell: 11,
            title: "medscreen population report".to_owned(),
        }
    }
}

/// A report being built: add results (and optionally the run's summary), then write the page.
#[derive(Debug)]
pub struct Report {
    opts: ReportOptions,
    tally: Tally,
    scratch: Scratch,
    summary: Option<RunSummary>,
    /// Results added one at a time with [`Report::add_result`], for error messages.
    added: u64,
}

impl Report {
    /// An empty report.
    pub fn new(opts: ReportOptions) -> Report {
        Report {
            opts,
            tally: Tally::default(),
            scratch: Scratch::default(),
            summary: None,
            added: 0,
        }
    }

    /// Reads a file of NDJSON results, one line at a time; `name` names it in errors and on the page.
    ///
    /// A line that is not a medscreen result stops the reading with an error naming the file and the
    /// line, never the line's content. Counts of the lines before it are kept.
    pub fn add_results<R: BufRead>(
        &mut self,
        mut reader: R,
        name: &str,
    ) -> Result<(), ReportError> {
        let mut buf = Vec::new();
        let (mut n, mut bytes) = (0u64, 0u64);
        loop {
            buf.clear();
            let got = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|e| ReportError::io(format!("`{name}` line {}: cannot read", n + 1), e))?;
            if got == 0 {
                break;
            }
            n += 1;
            bytes += got as u64;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if line.len() > MAX_LINE_BYTES {
                return Err(ReportError::new(
                    ErrorCode::LineTooLong,
                    format!("`{name}` line {n}: longer than {MAX_LINE_BYTES} bytes"),
                    "medscreen's result lines are far shorter; is this a results file?",
                ));
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.tally
                .add(line, None, &mut self.scratch)
                .map_err(|why| not_a_result(&format!("`{name}` line {n}"), why))?;
        }
        if self.tally.inputs.len() < tally::MAX_INPUTS {
            self.tally.inputs.push((name.to_owned(), n, bytes));
        } else {
            self.tally.inputs_dropped += 1;
        }
        Ok(())
    }

    /// Adds one result (one NDJSON line, without its newline), with the demographics of the profile it
    /// is about when the caller has them (`screen --report`): they fill the severity-by-age-and-sex
    /// section, which the page leaves out when no result came with them.
    pub fn add_result(
        &mut self,
        json: &[u8],
        demographics: Option<Demographics>,
    ) -> Result<(), ReportError> {
        self.added += 1;
        self.tally
            .add(json, demographics, &mut self.scratch)
            .map_err(|why| not_a_result(&format!("result {}", self.added), why))
    }

    /// Adds the run's summary (the JSON of `medscreen screen --summary FILE`) for the provenance section.
    pub fn add_summary(&mut self, json: &[u8]) -> Result<(), ReportError> {
        let s: RunSummary = serde_json::from_slice(json).map_err(|_| {
            ReportError::new(
                ErrorCode::InvalidSummary,
                "the summary is not the JSON object `medscreen screen --summary` writes".to_owned(),
                "pass the file written by `--summary FILE` of the same run",
            )
        })?;
        self.summary = Some(s);
        Ok(())
    }

    /// Writes the page.
    pub fn write_html<W: Write>(&self, mut out: W) -> Result<(), ReportError> {
        let page = self.html();
        out.write_all(page.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ReportError::io("cannot write the report".to_owned(), e))
    }

    /// The page as a string (under 2 MB whatever was added).
    pub fn html(&self) -> String {
        html::render(
            &self.tally,
            self.summary.as_ref(),
            self.opts.min_cell,
            &self.opts.title,
        )
    }
}

fn not_a_result(subject: &str, why: NotAResult) -> ReportError {
    let what = match why {
        NotAResult::Shape => "not a JSON object with a numeric `line` and a `status`",
        NotAResult::Status => "`status` is not `clear`, `flagged`, `invalid` or `skipped`",
        NotAResult::Screened => {
            "a screened result without `ruleset`, or whose `cautions` do not match its `status`"
        }
        NotAResult::Invalid => "an invalid result without `errors`",
        NotAResult::Severity => "a severity that is not `info`, `warning` or `critical`",
    };
    ReportError::new(
        ErrorCode::NotAResult,
        format!("{subject}: not a medscreen result: {what}"),
        "`medscreen report` reads the NDJSON results of `medscreen screen` (the default format)",
    )
}
