//! Writing results: NDJSON (default), one JSON array, CSV (one row per caution) or a terminal table.
//!
//! Each function appends one record's result to a byte buffer, so workers can format in parallel and
//! the writer only copies bytes in input order.
//!
//! The NDJSON result line, compact by default (`--detail full` adds `title`, `message`, `action` and
//! `sources` to each caution):
//!
//! ```json
//! {"line":12,"id":"p-12","status":"flagged","max_severity":"critical",
//!  "cautions":[{"rule":"BAC-DDI-OPIOID","severity":"critical","evidence":[{"pointer":"/comedications/0",
//!   "value":"oxycodone 5 mg","ingredient":"oxycodone","class":"opioid"}]}],
//!  "indeterminate":[{"rule":"BAC-SEIZURE","missing":["seizure_history"]}],
//!  "ruleset":"baclofen@1.0.0#0123456789ab"}
//! ```
//!
//! An invalid record: `{"line":13,"id":"p-13","status":"invalid","errors":[{"pointer":"/age",
//! "code":"out_of_range","message":"must be at most 130"}]}` (`id` is `null` when none could be read).
//! With several inputs, each result also has `"input"`, the file it came from, after `line`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compile::Severity;
use crate::report::{Evidence, Indeterminate, Screening, Status};
use crate::schema::Problem;
use crate::vocab::Source;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of the same objects.
    Json,
    /// One row per caution: `line,id,rule,severity,title`.
    Csv,
    /// A readable block per flagged or invalid record.
    Table,
}

/// How much of each caution to write in JSON formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `rule`, `severity`, `evidence`.
    Compact,
    /// Also `title`, `message`, `action`, `sources`.
    Full,
}

/// Options shared by every record's output.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    /// Format.
    pub format: Format,
    /// Caution detail for JSON formats.
    pub detail: Detail,
    /// Cautions below this are left out (and do not count towards `status`).
    pub min_severity: Severity,
    /// Write the input's name with each result (several inputs).
    pub show_input: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            format: Format::Ndjson,
            detail: Detail::Compact,
            min_severity: Severity::Info,
            show_input: false,
        }
    }
}

#[derive(Serialize)]
struct ScreenedLine<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    id: &'a str,
    status: Status,
    max_severity: Option<Severity>,
    cautions: Vec<CautionOut<'a>>,
    indeterminate: &'a [Indeterminate<'a>],
    ruleset: &'a str,
}

#[derive(Serialize)]
struct CautionOut<'a> {
    rule: &'a str,
    severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    evidence: &'a [Evidence<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [Source]>,
}

#[derive(Serialize)]
struct InvalidLine<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    id: Option<&'a str>,
    status: &'static str,
    errors: &'a [Problem],
}

#[derive(Serialize)]
struct ValidLine<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    id: &'a str,
    status: &'static str,
}

/// What goes before the first result.
pub fn header(opts: &OutputOptions) -> &'static [u8] {
    match opts.format {
        Format::Json => b"[\n",
        Format::Csv if opts.show_input => b"input,line,id,rule,severity,title\n",
        Format::Csv => b"line,id,rule,severity,title\n",
        Format::Ndjson | Format::Table => b"",
    }
}

/// What goes after the last result.
pub fn footer(format: Format) -> &'static [u8] {
    match format {
        Format::Json => b"\n]\n",
        _ => b"",
    }
}

/// Every JSON-array element is written with a leading `,\n`; the writer drops it from the first one.
pub const JSON_SEPARATOR: &[u8] = b",\n";

fn json_line<T: Serialize>(opts: &OutputOptions, buf: &mut Vec<u8>, value: &T) {
    if opts.format == Format::Json {
        buf.extend_from_slice(JSON_SEPARATOR);
    }
    // Serialising these types cannot fail: every key is a string and every number finite.
    if serde_json::to_writer(&mut *buf, value).is_ok() && opts.format == Format::Ndjson {
        buf.push(b'\n');
    }
}

/// Append a screened record's result.
pub fn screened(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    input: Option<&str>,
    s: &Screening<'_>,
) {
    let kept: Vec<CautionOut<'_>> = s
        .cautions
        .iter()
        .filter(|c| c.severity >= opts.min_severity)
        .map(|c| {
            let full = opts.detail == Detail::Full;
            CautionOut {
                rule: c.rule,
                severity: c.severity,
                title: full.then_some(c.title),
                message: full.then_some(c.message),
                action: full.then_some(c.action),
                evidence: &c.evidence,
                sources: full.then_some(c.sources),
            }
        })
        .collect();
    let status = if kept.is_empty() {
        Status::Clear
    } else {
        Status::Flagged
    };
    let max_severity = kept.first().map(|c| c.severity);
    let input = if opts.show_input { input } else { None };
    match opts.format {
        Format::Ndjson | Format::Json => {
            let row = ScreenedLine {
                line,
                input,
                id: &s.id,
                status,
                max_severity,
                cautions: kept,
                indeterminate: &s.indeterminate,
                ruleset: s.ruleset,
            };
            json_line(opts, buf, &row);
        }
        Format::Csv => {
            for c in s
                .cautions
                .iter()
                .filter(|c| c.severity >= opts.min_severity)
            {
                csv_row(
                    buf,
                    line,
                    input,
                    &s.id,
                    c.rule,
                    c.severity.as_str(),
                    c.title,
                );
            }
        }
        Format::Table => {
            if status == Status::Clear {
                return;
            }
            let mut t = String::new();
            let sev = max_severity.map_or("", Severity::as_str).to_uppercase();
            let _ = writeln!(t, "{}  {}  FLAGGED ({sev})", location(line, input), s.id);
            for c in s
                .cautions
                .iter()
                .filter(|c| c.severity >= opts.min_severity)
            {
                let _ = writeln!(
                    t,
                    "  {:<8}  {}  {}",
                    c.severity.as_str().to_uppercase(),
                    c.rule,
                    c.title
                );
                let _ = writeln!(t, "            {}", c.message);
                let _ = writeln!(t, "            action: {}", c.action);
                for e in &c.evidence {
                    let _ = writeln!(t, "            evidence: {}", evidence_text(e));
                }
                for src in c.sources {
                    let _ = writeln!(t, "            source: {}", source_text(src));
                }
            }
            if !s.indeterminate.is_empty() {
                let list: Vec<String> = s
                    .indeterminate
                    .iter()
                    .map(|i| format!("{} ({})", i.rule, i.missing.join(", ")))
                    .collect();
                let _ = writeln!(t, "  could not evaluate: {}", list.join("; "));
            }
            t.push('\n');
            buf.extend_from_slice(t.as_bytes());
        }
    }
}

/// Append an invalid record's result.
pub fn invalid(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    input: Option<&str>,
    id: Option<&str>,
    errors: &[Problem],
) {
    let input = if opts.show_input { input } else { None };
    match opts.format {
        Format::Ndjson | Format::Json => {
            json_line(
                opts,
                buf,
                &InvalidLine {
                    line,
                    input,
                    id,
                    status: "invalid",
                    errors,
                },
            );
        }
        Format::Csv => {
            let what: Vec<String> = errors.iter().map(problem_text).collect();
            csv_row(
                buf,
                line,
                input,
                id.unwrap_or(""),
                "",
                "invalid",
                &what.join("; "),
            );
        }
        Format::Table => {
            let mut t = format!(
                "{}  {}  INVALID\n",
                location(line, input),
                id.unwrap_or("(no id)")
            );
            for p in errors {
                let _ = writeln!(t, "  {}", problem_text(p));
            }
            t.push('\n');
            buf.extend_from_slice(t.as_bytes());
        }
    }
}

/// Append a valid record's result (`validate` only).
pub fn valid(opts: &OutputOptions, buf: &mut Vec<u8>, line: u64, input: Option<&str>, id: &str) {
    let input = if opts.show_input { input } else { None };
    match opts.format {
        Format::Ndjson | Format::Json => json_line(
            opts,
            buf,
            &ValidLine {
                line,
                input,
                id,
                status: "valid",
            },
        ),
        Format::Csv => csv_row(buf, line, input, id, "", "valid", ""),
        Format::Table => {}
    }
}

fn location(line: u64, input: Option<&str>) -> String {
    match input {
        Some(i) => format!("{i}:{line}"),
        None => format!("line {line}"),
    }
}

fn problem_text(p: &Problem) -> String {
    let at = if p.pointer.is_empty() {
        "(record)"
    } else {
        &p.pointer
    };
    match &p.help {
        Some(h) => format!("{at}: {} [{}] ({h})", p.message, p.code),
        None => format!("{at}: {} [{}]", p.message, p.code),
    }
}

/// Evidence in one line: `/egfr = 45`, `/comedications/0 = "Xanax 0.5mg" (alprazolam, benzodiazepine)`.
pub fn evidence_text(e: &Evidence<'_>) -> String {
    let mut s = format!("{} = {}", e.pointer, e.value);
    let extra: Vec<&str> = [e.ingredient, e.class].into_iter().flatten().collect();
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join(", "));
    }
    if let Some(m) = e.matched {
        let _ = write!(s, " (matched \"{m}\")");
    }
    s
}

/// A source in one line.
pub fn source_text(s: &Source) -> String {
    let mut t = s.label.clone();
    if let Some(c) = &s.citation {
        let _ = write!(t, ". {c}");
    }
    if let Some(u) = &s.url {
        let _ = write!(t, " <{u}>");
    }
    t
}

fn csv_row(
    buf: &mut Vec<u8>,
    line: u64,
    input: Option<&str>,
    id: &str,
    rule: &str,
    severity: &str,
    title: &str,
) {
    let mut row = String::new();
    if let Some(i) = input {
        row.push_str(&csv_field(i));
        row.push(',');
    }
    let _ = write!(
        row,
        "{line},{},{},{},{}",
        csv_field(id),
        csv_field(rule),
        severity,
        csv_field(title)
    );
    row.push('\n');
    buf.extend_from_slice(row.as_bytes());
}

/// Quote a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
