//! Results written and counted at once: `medscreen screen --report` passes its NDJSON output through a
//! [`Tee`] on its way to the output file, so the page needs no second reading of the results.

use std::io::{self, Write};
use std::sync::Mutex;

use crate::{Report, ReportError};

/// A writer that passes every byte through to `inner` and adds each complete line to a report.
///
/// Several tees may feed one report (results and diverted invalid records); the report sits behind a
/// mutex. A line that is not a result does not stop the writing (the output is the user's data): the
/// first such error is kept, and [`Tee::finish`] returns it.
pub struct Tee<'r, W: Write> {
    inner: W,
    report: &'r Mutex<Report>,
    partial: Vec<u8>,
    error: Option<ReportError>,
}

impl<'r, W: Write> Tee<'r, W> {
    /// Pass output through to `inner`, counting it into `report`.
    pub fn new(inner: W, report: &'r Mutex<Report>) -> Self {
        Tee {
            inner,
            report,
            partial: Vec::new(),
            error: None,
        }
    }

    fn count(&mut self, line: &[u8]) {
        if self.error.is_some() || line.is_empty() {
            return;
        }
        let added = match self.report.lock() {
            Ok(mut report) => report.add_result(line, None),
            Err(poisoned) => poisoned.into_inner().add_result(line, None),
        };
        if let Err(e) = added {
            self.error = Some(e);
        }
    }

    /// Counts a last line without its newline, flushes, and returns the first line that was not a
    /// result, if any.
    pub fn finish(mut self) -> io::Result<Option<ReportError>> {
        let rest = std::mem::take(&mut self.partial);
        self.count(&rest);
        self.inner.flush()?;
        Ok(self.error)
    }
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(at);
            if self.partial.is_empty() {
                self.count(line);
            } else {
                self.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut self.partial);
                self.count(&whole);
            }
            rest = after.get(1..).unwrap_or_default();
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportOptions;

    #[test]
    fn lines_split_across_writes_are_counted_once_and_passed_through_whole() {
        let report = Mutex::new(Report::new(ReportOptions::default()));
        let results = b"{\"line\":1,\"id\":\"a\",\"status\":\"clear\",\"ruleset\":\"p@1#x\",\"cautions\":[]}\n{\"line\":2,\"status\":\"invalid\",\"errors\":[{\"code\":\"invalid_json\"}]}\n";
        let mut out = Vec::new();
        let mut tee = Tee::new(&mut out, &report);
        for chunk in results.chunks(7) {
            tee.write_all(chunk).unwrap();
        }
        assert!(tee.finish().unwrap().is_none());
        assert_eq!(out, results);
        let html = report.into_inner().unwrap().html();
        let mut whole = Report::new(ReportOptions::default());
        whole
            .add_result(
                &results[..results.iter().position(|&b| b == b'\n').unwrap()],
                None,
            )
            .unwrap();
        let second =
            &results[results.iter().position(|&b| b == b'\n').unwrap() + 1..results.len() - 1];
        whole.add_result(second, None).unwrap();
        assert_eq!(html, whole.html());
    }

    #[test]
    fn a_line_that_is_not_a_result_is_kept_as_the_error_and_the_bytes_still_pass() {
        let report = Mutex::new(Report::new(ReportOptions::default()));
        let mut out = Vec::new();
        let mut tee = Tee::new(&mut out, &report);
        tee.write_all(b"id,status\n").unwrap();
        let err = tee.finish().unwrap().expect("an error");
        assert!(err.to_string().contains("result 1"), "{err}");
        assert_eq!(out, b"id,status\n");
    }
}
