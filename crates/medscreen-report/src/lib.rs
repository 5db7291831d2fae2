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
use tally::{Merge as _, NotAResult, Scratch, Tally};

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
    /// Threads that count results files (0: one per CPU). The page is the same whatever the number.
    pub threads: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            min_cell: 11,
            title: "medscreen population report".to_owned(),
            threads: 0,
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

    /// Reads a file of NDJSON results; `name` names it in errors and on the page.
    ///
    /// The file is cut into chunks of whole lines that worker threads ([`ReportOptions::threads`])
    /// count while the next chunks are read; the chunks' counts are merged in file order, so the page
    /// does not depend on the number of threads. A line that is not a medscreen result stops the
    /// reading with an error naming the file and the line, never the line's content; counts of the
    /// lines before it are kept.
    pub fn add_results<R: BufRead + Send>(
        &mut self,
        mut reader: R,
        name: &str,
    ) -> Result<(), ReportError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.threads)
            .thread_name(|i| format!("medscreen-report-{i}"))
            .build()
            .map_err(|e| {
                ReportError::new(
                    ErrorCode::Io,
                    format!("cannot start the report's worker threads: {e}"),
                    "pass a smaller `--threads`",
                )
            })?;
        // Enough chunks in flight to keep every worker busy while the next ones are read.
        let per_batch = 2 * pool.current_num_threads();
        let mut reading = Reading {
            name,
            lines: 0,
            bytes: 0,
        };
        let mut batch = reading.batch(&mut reader, per_batch);
        let outcome = pool.install(|| {
            loop {
                let (chunks, end) = batch;
                let (next, counted) = rayon::join(
                    || match end {
                        End::More => reading.batch(&mut reader, per_batch),
                        End::Eof | End::Failed(_) => (Vec::new(), End::Eof),
                    },
                    || {
                        use rayon::prelude::*;
                        chunks.par_iter().map(Chunk::count).collect::<Vec<_>>()
                    },
                );
                for (tally, failed) in counted {
                    self.tally.merge(tally);
                    if let Some((line, why)) = failed {
                        return Err(not_a_result(&format!("`{name}` line {line}"), why));
                    }
                }
                match end {
                    End::More => batch = next,
                    End::Eof => return Ok(()),
                    End::Failed(e) => return Err(e),
                }
            }
        });
        outcome?;
        if self.tally.inputs.len() < tally::MAX_INPUTS {
            self.tally
                .inputs
                .push((name.to_owned(), reading.lines, reading.bytes));
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
        NotAResult::Packs => {
            "a result of several packs whose `screenings` are empty, name a pack twice, are not \
             `clear` or `flagged`, or do not match the record's `status` and `max_severity`"
        }
        NotAResult::Severity => "a severity that is not `info`, `warning` or `critical`",
        NotAResult::Minimal => {
            "a result written with `--detail minimal`, whose undecided rules carry no missing facts \
             to count (write the results with `--detail compact`, the default, or `full`)"
        }
    };
    ReportError::new(
        ErrorCode::NotAResult,
        format!("{subject}: not a medscreen result: {what}"),
        "`medscreen report` reads the NDJSON results of `medscreen screen` (the default format)",
    )
}

/// Bytes of results a worker counts at a time (whole lines, so a chunk can be a little longer).
const CHUNK_BYTES: usize = 1 << 20;

/// Where the reading of one results file stopped.
enum End {
    /// Lines remain.
    More,
    /// The file is read.
    Eof,
    /// The file cannot be read past this point (the chunks before it are counted first).
    Failed(ReportError),
}

/// Whole result lines, each ending with `\n` except perhaps the file's last.
struct Chunk {
    /// Line number (from 1) of the first line.
    first_line: u64,
    data: Vec<u8>,
}

/// The reading of one results file: lines and bytes so far.
struct Reading<'n> {
    name: &'n str,
    lines: u64,
    bytes: u64,
}

impl Reading<'_> {
    /// Up to `n` chunks, and why the reading stopped there.
    fn batch<R: BufRead>(&mut self, reader: &mut R, n: usize) -> (Vec<Chunk>, End) {
        let mut chunks = Vec::with_capacity(n);
        while chunks.len() < n {
            let (chunk, end) = self.chunk(reader);
            if !chunk.data.is_empty() {
                chunks.push(chunk);
            }
            if !matches!(end, End::More) {
                return (chunks, end);
            }
        }
        (chunks, End::More)
    }

    fn chunk<R: BufRead>(&mut self, reader: &mut R) -> (Chunk, End) {
        let mut chunk = Chunk {
            first_line: self.lines + 1,
            data: Vec::with_capacity(CHUNK_BYTES + (CHUNK_BYTES >> 2)),
        };
        while chunk.data.len() < CHUNK_BYTES {
            let start = chunk.data.len();
            let got = match reader
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut chunk.data)
            {
                Ok(got) => got,
                Err(e) => {
                    chunk.data.truncate(start);
                    let what = format!("`{}` line {}: cannot read", self.name, self.lines + 1);
                    return (chunk, End::Failed(ReportError::io(what, e)));
                }
            };
            if got == 0 {
                return (chunk, End::Eof);
            }
            self.lines += 1;
            self.bytes += got as u64;
            let line = chunk.data.get(start..).unwrap_or_default();
            if line.strip_suffix(b"\n").unwrap_or(line).len() > MAX_LINE_BYTES {
                chunk.data.truncate(start);
                let e = ReportError::new(
                    ErrorCode::LineTooLong,
                    format!(
                        "`{}` line {}: longer than {MAX_LINE_BYTES} bytes",
                        self.name, self.lines
                    ),
                    "medscreen's result lines are far shorter; is this a results file?",
                );
                return (chunk, End::Failed(e));
            }
        }
        (chunk, End::More)
    }
}

impl Chunk {
    /// The counts of the chunk's lines, and the first line that is not a result (counts stop there).
    fn count(&self) -> (Tally, Option<(u64, NotAResult)>) {
        let mut tally = Tally::default();
        let mut scratch = Scratch::default();
        let mut rest = self.data.as_slice();
        let mut line_no = self.first_line;
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (
                    rest.get(..i).unwrap_or_default(),
                    rest.get(i + 1..).unwrap_or_default(),
                ),
                None => (rest, &[][..]),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Err(why) = tally.add(line, None, &mut scratch) {
                return (tally, Some((line_no, why)));
            }
            rest = next;
            line_no += 1;
        }
        (tally, None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::restriction, reason = "a test fails by panicking")]

    use super::*;

    /// The NDJSON results of `n` generated profiles (1% invalid), screened with the embedded pack.
    fn results(n: u64) -> Vec<u8> {
        results_of(n, &[])
    }

    /// The same, screened with the embedded packs `packs` (the default one when empty).
    fn results_of(n: u64, packs: &[&str]) -> Vec<u8> {
        use medscreen_core::batch::{self, BatchConfig, Sinks};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.ndjson");
        let engine = medscreen_core::Engine::embedded_packs(packs).unwrap();
        let mut profiles = Vec::new();
        medscreen_core::generate::write_profiles(&mut profiles, engine.facts(), n, 11, 0.01)
            .unwrap();
        std::fs::write(&path, profiles).unwrap();
        let mut out = Vec::new();
        let source = medscreen_core::input::Source::parse(path.to_str().unwrap());
        let sinks = Sinks {
            main: &mut out,
            errors: None,
        };
        let (_, error) = batch::run(&engine, &[source], &BatchConfig::default(), sinks);
        assert!(error.is_none());
        out
    }

    fn page(tally: &Tally) -> String {
        html::render(tally, None, 1, "t")
    }

    #[test]
    fn counting_in_chunks_on_any_number_of_threads_gives_the_page_of_one_line_at_a_time() {
        let results = results(20_000);
        assert!(
            results.len() > 8 * CHUNK_BYTES,
            "the file must span many chunks"
        );
        let mut one_at_a_time = Tally::default();
        let mut scratch = Scratch::default();
        let lines: Vec<&[u8]> = results
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for line in &lines {
            one_at_a_time.add(line, None, &mut scratch).unwrap();
        }
        one_at_a_time.inputs.push((
            "r.ndjson".to_owned(),
            lines.len() as u64,
            results.len() as u64,
        ));
        let expected = page(&one_at_a_time);
        assert!(
            expected.contains("BAC-CNS-BURDEN"),
            "the page has rules, facts and pairs"
        );
        for threads in [1, 2, 3] {
            let mut r = Report::new(ReportOptions {
                threads,
                ..ReportOptions::default()
            });
            r.add_results(&results[..], "r.ndjson").unwrap();
            assert_eq!(page(&r.tally), expected, "{threads} threads");
        }
    }

    fn tally_of(results: &[u8]) -> Tally {
        let mut t = Tally::default();
        let mut scratch = Scratch::default();
        for line in results.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            t.add(line, None, &mut scratch).unwrap();
        }
        t
    }

    #[test]
    fn results_of_several_packs_count_each_pack_as_its_own_results_do() {
        let both = tally_of(&results_of(3_000, &["baclofen", "tizanidine"]));
        assert!(both.overlapping);
        let mut screened_by_any = 0;
        for name in ["baclofen", "tizanidine"] {
            let alone = tally_of(&results_of(3_000, &[name]));
            assert!(!alone.overlapping);
            assert_eq!(alone.packs.map.len(), 1);
            let (ruleset, a) = alone.packs.map.iter().next().unwrap();
            let b = both.packs.map.get(ruleset).unwrap();
            assert_eq!(
                (b.clear, b.flagged, b.max_severity, b.cautions),
                (a.clear, a.flagged, a.max_severity, a.cautions),
                "{name}"
            );
            assert_eq!(b.rules.map.len(), a.rules.map.len(), "{name}");
            for (rule, r) in &a.rules.map {
                let m = b.rules.map.get(rule).unwrap();
                assert_eq!(
                    (m.fired, m.indeterminate, m.id),
                    (r.fired, r.indeterminate, r.id),
                    "{rule}"
                );
            }
            for (fact, f) in &a.facts.map {
                let m = b.facts.map.get(fact).unwrap();
                assert_eq!((m.records, m.undecided), (f.records, f.undecided), "{fact}");
            }
            assert_eq!(b.pairs, a.pairs, "{name}");
            assert_eq!(both.invalid, alone.invalid);
            screened_by_any = alone.clear + alone.flagged;
            assert!(both.flagged >= alone.flagged);
        }
        // Each record is counted once on the page.
        assert_eq!(both.clear + both.flagged, screened_by_any);
        let html = page(&both);
        assert!(html.contains("record counts overlap"));
    }

    #[test]
    fn a_several_pack_line_that_contradicts_itself_is_refused_not_counted() {
        let results = results_of(200, &["baclofen", "tizanidine"]);
        let line: serde_json::Value = results
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .find(|v| v["status"] == "flagged" && v["screenings"][1]["status"] == "flagged")
            .unwrap();
        let mut scratch = Scratch::default();
        let mut count = |v: &serde_json::Value| {
            Tally::default().add(v.to_string().as_bytes(), None, &mut scratch)
        };
        assert!(count(&line).is_ok());
        let mut twice = line.clone();
        twice["screenings"][1] = line["screenings"][0].clone();
        let mut lower = line.clone();
        lower["max_severity"] = "info".into();
        if line["max_severity"] == "info" {
            lower["max_severity"] = "critical".into();
        }
        let mut record_level = line.clone();
        record_level["ruleset"] = line["screenings"][0]["ruleset"].clone();
        let mut invalid_pack = line.clone();
        invalid_pack["screenings"][1]["status"] = "invalid".into();
        for bad in [twice, lower, record_level, invalid_pack] {
            assert_eq!(count(&bad).unwrap_err(), NotAResult::Packs, "{bad}");
        }
    }

    #[test]
    fn a_bad_line_in_a_later_chunk_is_named_and_the_lines_before_it_are_counted() {
        let results = results(5_000);
        let good: Vec<&[u8]> = results
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert!(results.len() > 3 * CHUNK_BYTES);
        let bad_at = good.len() - 10;
        let mut input = Vec::new();
        for (i, line) in good.iter().enumerate() {
            input.extend_from_slice(if i + 1 == bad_at {
                b"{\"secret\":1}"
            } else {
                line
            });
            input.push(b'\n');
        }
        for threads in [1, 2] {
            let mut r = Report::new(ReportOptions {
                threads,
                ..ReportOptions::default()
            });
            let e = r.add_results(&input[..], "r.ndjson").unwrap_err();
            assert_eq!(e.code(), ErrorCode::NotAResult);
            assert!(
                e.message()
                    .starts_with(&format!("`r.ndjson` line {bad_at}: ")),
                "{e}"
            );
            assert_eq!(
                r.tally.read,
                bad_at as u64 - 1,
                "the lines before it are counted"
            );
        }
    }
}
