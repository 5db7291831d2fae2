//! Writing results: NDJSON (default), one JSON array, CSV (one row per record at least) or a terminal
//! table; and, in submodules, the other things the command line prints: [`explain`], the run
//! [`summary`], and the rule pack ([`rules`]).
//!
//! This is the one printer layer every input path writes through. Each function appends one record's
//! result to a byte buffer, so workers can format in parallel and the writer only copies bytes in input
//! order; [`Stream`] writes those buffers with the format's header, separators and footer (JSON array
//! framing is done there and by [`begin_result`], nowhere else). What is reported after
//! `--min-severity` (the cautions kept, the status, the highest severity) is decided by [`Reported`]
//! alone. An input path that has more to say about a result (FHIR names the resources behind each piece
//! of evidence) does not copy these writers: it passes an [`Annotate`] hook, and a record that has no
//! native counterpart (a FHIR patient not screened) is written by [`skipped_at`].
//!
//! The wire format of each format is documented on its [`Format`] variant.

pub mod explain;
pub mod rules;
pub mod summary;

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

#[cfg(test)]
use crate::report::Indeterminate;
use crate::report::{Caution, Evidence, Screening, Status};
use crate::schema::Problem;
use crate::severity::Severity;
use crate::vocab::Source;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`\n`-terminated), compact by default (`--detail full` adds `title`,
    /// `message`, `action` and `sources` to each caution):
    ///
    /// ```json
    /// {"line":12,"id":"p-12","status":"flagged","max_severity":"critical",
    ///  "cautions":[{"rule":"BAC-DDI-OPIOID","severity":"critical","evidence":[{"pointer":"/comedications/0",
    ///   "value":"oxycodone 5 mg","ingredient":"oxycodone","class":"opioid"}]}],
    ///  "indeterminate":[{"rule":"BAC-SEIZURE","missing":["seizure_history"]}],
    ///  "ruleset":"baclofen@1.0.0#0123456789ab"}
    /// ```
    ///
    /// An invalid record: `{"line":13,"id":"p-13","status":"invalid","errors":[{"pointer":"/age",
    /// "code":"out_of_range","message":"must be at most 130"}]}` (`id` is `null` when none could be read).
    /// With several inputs, each result also has `"input"`, the file it came from, after `line`. A record
    /// that is an element of a JSON array also has `"index"`, its position in the array (from 0), after
    /// `line` and `input`: `{"line":1,"index":3,"id":"p-4",...}`.
    Ndjson,
    /// One JSON array of the same objects: `[\n`, the objects separated by `,\n`, then `\n]\n`; no
    /// result at all is `[\n]\n`.
    Json,
    /// A header, then one row per record at least, see [`CSV_HEADER`]:
    /// `p.ndjson,3,,p-3,flagged,BAC-RENAL,critical,Baclofen and kidney function`.
    Csv,
    /// A readable block per flagged, invalid or skipped record, each ended by a blank line; clear and
    /// valid records print nothing:
    ///
    /// ```text
    /// line 3  p-3  FLAGGED (CRITICAL)
    ///   CRITICAL  BAC-RENAL  Baclofen and kidney function
    ///             <message>
    ///             action: <action>
    ///             evidence: /egfr = 25
    ///             source: <label>. <citation> <url>
    ///   could not evaluate: BAC-SEIZURE (seizure_history)
    /// ```
    Table,
}

/// How much of each caution to write in JSON formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `rule` and `severity` of each caution, and the undecided rules' ids under `undecided` instead
    /// of `indeterminate` (without the facts each misses): for throughput, where the reader wants the
    /// decisions and not their evidence. Invalid records are explained in full, as always.
    ///
    /// ```json
    /// {"line":12,"id":"p-12","status":"flagged","max_severity":"critical",
    ///  "cautions":[{"rule":"BAC-DDI-OPIOID","severity":"critical"}],
    ///  "undecided":["BAC-SEIZURE"],"ruleset":"baclofen@2.0.0#0123456789ab"}
    /// ```
    Minimal,
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
    /// Several packs screen: each result holds one screening per pack ([`screened_packs_at`]), and CSV
    /// has a `pack` column ([`CSV_HEADER_PACKS`]).
    pub several_packs: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            format: Format::Ndjson,
            detail: Detail::Compact,
            min_severity: Severity::Info,
            show_input: false,
            several_packs: false,
        }
    }
}

/// What is reported of a screening after `--min-severity`: the cautions kept, and the status and highest
/// severity they give. The one place this is decided, for the output, the summary and `--fail-on`.
#[derive(Clone, Copy)]
pub struct Reported<'s, 'e> {
    screening: &'s Screening<'e>,
    min_severity: Severity,
    /// The highest kept severity; `None` when nothing is kept.
    pub max_severity: Option<Severity>,
}

impl<'s, 'e> Reported<'s, 'e> {
    /// What `min_severity` leaves of `screening`.
    pub fn new(screening: &'s Screening<'e>, min_severity: Severity) -> Self {
        // Cautions are sorted most severe first, so the first kept one is the highest.
        let max_severity = screening
            .cautions
            .iter()
            .map(|c| c.severity)
            .find(|sev| *sev >= min_severity);
        Reported {
            screening,
            min_severity,
            max_severity,
        }
    }

    /// `flagged` when a caution is kept, `clear` otherwise.
    pub fn status(&self) -> Status {
        Status::of_max(self.max_severity)
    }

    /// The screening this reports.
    pub fn screening(&self) -> &'s Screening<'e> {
        self.screening
    }

    /// The cautions kept, most severe first.
    pub fn cautions(&self) -> impl Iterator<Item = &'s Caution<'e>> + use<'s, 'e> {
        let min = self.min_severity;
        self.screening
            .cautions
            .iter()
            .filter(move |c| c.severity >= min)
    }
}

/// What `--min-severity` leaves of one record's screenings by several packs: each pack's [`Reported`],
/// in the packs' order, and the record's status and highest severity over them (flagged when any pack
/// is).
pub struct ReportedPacks<'s, 'e> {
    /// Each pack's, in order.
    pub packs: Vec<Reported<'s, 'e>>,
    /// The highest kept severity of any pack; `None` when no pack kept a caution.
    pub max_severity: Option<Severity>,
}

impl<'s, 'e> ReportedPacks<'s, 'e> {
    /// What `min_severity` leaves of `screenings` (one per pack).
    pub fn new(screenings: &'s [Screening<'e>], min_severity: Severity) -> Self {
        let packs: Vec<Reported<'s, 'e>> = screenings
            .iter()
            .map(|s| Reported::new(s, min_severity))
            .collect();
        let max_severity = packs.iter().filter_map(|r| r.max_severity).max();
        ReportedPacks {
            packs,
            max_severity,
        }
    }

    /// `flagged` when any pack kept a caution, `clear` otherwise.
    pub fn status(&self) -> Status {
        Status::of_max(self.max_severity)
    }

    /// The packs side by side in one line: `baclofen: 2 critical, 1 warning, 3 undecided; tizanidine:
    /// clear, 5 undecided`.
    pub fn comparison(&self) -> String {
        let parts: Vec<String> = self
            .packs
            .iter()
            .map(|r| format!("{}: {}", r.screening().pack, r.counts()))
            .collect();
        parts.join("; ")
    }
}

impl Reported<'_, '_> {
    /// The kept cautions by severity and the undecided rules, in a few words: `2 critical, 1 warning,
    /// 3 undecided`, `clear`, `clear, 5 undecided`.
    pub fn counts(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
            let n = self.cautions().filter(|c| c.severity == sev).count();
            if n > 0 {
                parts.push(format!("{n} {}", sev.as_str()));
            }
        }
        if parts.is_empty() {
            parts.push("clear".to_owned());
        }
        let undecided = self.screening.indeterminate.len();
        if undecided > 0 {
            parts.push(format!("{undecided} undecided"));
        }
        parts.join(", ")
    }
}

/// What an input path adds to the native result, written by the native printer at fixed places. Every
/// method has an empty default, so the native path is [`NoAnnotation`].
pub trait Annotate {
    /// More members of one piece of evidence in JSON, each written as `,"key":value` (FHIR: `fhir`, the
    /// resources the fact came from).
    fn evidence_json(&self, _evidence: &Evidence<'_>, _buf: &mut Vec<u8>) {}
    /// More members of the result in JSON, after `ruleset`, written as `,"key":value` (with several
    /// packs, [`screened_packs_at`] writes them inside each pack's screening, from that pack's hook).
    fn result_json(&self, _opts: &OutputOptions, _buf: &mut Vec<u8>) {}
    /// More lines at the end of a flagged record's table block, before its blank line; about the
    /// cautions reported (what `--min-severity` keeps), never the ones left out.
    fn table_lines(&self, _reported: &Reported<'_, '_>, _text: &mut String) {}
}

/// The native result, with nothing added.
pub struct NoAnnotation;

impl Annotate for NoAnnotation {}

/// A problem with a record, as the printers write it: JSON through `Serialize`, one line of text for
/// CSV and tables.
pub trait RecordProblem: Serialize {
    /// The problem in one line, without the record's values.
    fn text(&self) -> String;
    /// How a table names a result that has no record id.
    const NO_ID: &'static str = "(no id)";
}

impl RecordProblem for Problem {
    fn text(&self) -> String {
        problem_text(self)
    }
}

/// Start a result in `buf`: in a JSON array, a result that follows another in the same buffer is
/// separated from it by `,\n` ([`Stream`] separates buffers).
pub fn begin_result(opts: &OutputOptions, buf: &mut Vec<u8>) {
    if opts.format == Format::Json && !buf.is_empty() {
        buf.extend_from_slice(JSON_SEPARATOR);
    }
}

/// One output stream: the format's header, then buffers of results in order, then its footer. The one
/// writer of JSON array framing between buffers (inside a buffer, [`begin_result`] does it).
pub struct Stream<'a> {
    out: &'a mut (dyn Write + Send),
    format: Format,
    empty: bool,
}

impl<'a> Stream<'a> {
    /// Write the header of the format of `opts` to `out`.
    pub fn begin(out: &'a mut (dyn Write + Send), opts: &OutputOptions) -> io::Result<Stream<'a>> {
        out.write_all(header(opts))?;
        Ok(Stream {
            out,
            format: opts.format,
            empty: true,
        })
    }

    /// Write a buffer of results made by this module's functions (it may be empty).
    pub fn write(&mut self, results: &[u8]) -> io::Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        if self.format == Format::Json && !self.empty {
            self.out.write_all(JSON_SEPARATOR)?;
        }
        self.empty = false;
        self.out.write_all(results)
    }

    /// Write the footer and flush. An empty JSON array still closes properly: `[` then `]`.
    pub fn finish(&mut self) -> io::Result<()> {
        let footer = footer(self.format);
        let footer = match footer.strip_prefix(b"\n") {
            Some(rest) if self.empty => rest,
            _ => footer,
        };
        self.out.write_all(footer)?;
        self.out.flush()
    }
}

#[cfg(test)]
#[derive(Serialize)]
struct ScreenedLine<'a, 'e> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    id: &'a str,
    status: Status,
    max_severity: Option<Severity>,
    cautions: Vec<CautionOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    indeterminate: Option<&'a [Indeterminate<'e>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    undecided: Option<Vec<&'a str>>,
    ruleset: &'a str,
}

#[cfg(test)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a [Evidence<'a>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [Source]>,
}

#[derive(Serialize)]
struct InvalidLine<'a, P> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    id: Option<&'a str>,
    status: &'static str,
    errors: &'a [P],
}

/// A valid record's result, or a skipped one's with its reason.
#[derive(Serialize)]
struct StatusLine<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// What goes before the first result.
pub fn header(opts: &OutputOptions) -> &'static [u8] {
    match opts.format {
        Format::Json => b"[\n",
        Format::Csv if opts.several_packs => CSV_HEADER_PACKS,
        Format::Csv => CSV_HEADER,
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

/// Between two results of a JSON array.
const JSON_SEPARATOR: &[u8] = b",\n";

fn json_line<T: Serialize>(opts: &OutputOptions, buf: &mut Vec<u8>, value: &T) {
    begin_result(opts, buf);
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
    screened_at(opts, buf, line, None, input, s, &NoAnnotation);
}

/// Append a screened record's result, with what `annotate` adds to it ([`NoAnnotation`] for the native
/// result); `index` is the record's position in its JSON array, if any.
pub fn screened_at<A: Annotate + ?Sized>(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    s: &Screening<'_>,
    annotate: &A,
) {
    let reported = Reported::new(s, opts.min_severity);
    let (csv, input) = place(opts, line, index, input, &s.id);
    match opts.format {
        Format::Ndjson | Format::Json => {
            begin_result(opts, buf);
            write_screened_json(buf, opts, line, index, input, &reported, annotate);
            if opts.format == Format::Ndjson {
                buf.push(b'\n');
            }
        }
        Format::Csv => csv_rows(&csv, buf, &reported),
        Format::Table => {
            let Some(max) = reported.max_severity else {
                return;
            };
            let mut t = flagged_heading(location(line, index, input), &s.id, max);
            table_cautions(&mut t, &reported);
            annotate.table_lines(&reported, &mut t);
            t.push('\n');
            buf.extend_from_slice(t.as_bytes());
        }
    }
}

/// The version of the result shape with one screening per pack, written as its `shape` member.
pub const PACKS_SHAPE: &str = "screenings/1";

/// Append a record's result screened by several packs (`screenings`, one per pack, in the packs'
/// order; [`Engine::screen_packs_with`](crate::Engine::screen_packs_with)), with what `annotate[k]`
/// adds to pack `k`'s screening (a pack without one gets [`NoAnnotation`]): each pack's evidence may
/// come from its own sources (FHIR: each pack reads its own order), so each is annotated by its own hook,
/// and what the hook adds to a result goes inside that pack's screening, after its `ruleset`.
/// With one screening this is exactly [`screened_at`]. Otherwise, in JSON (see [`Format::Ndjson`]):
///
/// ```json
/// {"line":3,"id":"p-3","status":"flagged","max_severity":"critical","screenings":[
///   {"pack":"baclofen","status":"flagged","max_severity":"critical","cautions":[...],
///    "indeterminate":[...],"ruleset":"baclofen@2.0.0#0123456789ab"},
///   {"pack":"tizanidine","status":"clear","max_severity":null,"cautions":[],
///    "indeterminate":[...],"ruleset":"tizanidine@1.0.0#0123456789ab"}],"shape":"screenings/1"}
/// ```
///
/// The record's `status` is `flagged` when any pack's is, and `max_severity` is the highest over the
/// packs. A CSV row names its pack ([`CSV_HEADER_PACKS`]); a table block puts the packs side by side in
/// one line, then each pack's cautions.
pub fn screened_packs_at(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    screenings: &[Screening<'_>],
    annotate: &[&dyn Annotate],
) {
    let of_pack = |k: usize| -> &dyn Annotate { annotate.get(k).copied().unwrap_or(&NoAnnotation) };
    let (Some(first), false) = (
        screenings.first(),
        screenings.len() == 1 && !opts.several_packs,
    ) else {
        if let Some(one) = screenings.first() {
            screened_at(opts, buf, line, index, input, one, of_pack(0));
        }
        return;
    };
    let reported = ReportedPacks::new(screenings, opts.min_severity);
    let (csv, input) = place(opts, line, index, input, &first.id);
    match opts.format {
        Format::Ndjson | Format::Json => {
            begin_result(opts, buf);
            write_result_head(buf, line, input, index, &first.id);
            write_status_json(buf, reported.status(), reported.max_severity);
            buf.extend_from_slice(b",\"screenings\":[");
            for (k, r) in reported.packs.iter().enumerate() {
                if k > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(b"{\"pack\":");
                write_str(buf, r.screening.pack);
                buf.push(b',');
                write_screening_json(buf, opts, r, of_pack(k));
                of_pack(k).result_json(opts, buf);
                buf.push(b'}');
            }
            buf.extend_from_slice(b"],\"shape\":");
            write_str(buf, PACKS_SHAPE);
            buf.push(b'}');
            if opts.format == Format::Ndjson {
                buf.push(b'\n');
            }
        }
        Format::Csv => {
            for r in &reported.packs {
                csv_rows(&csv, buf, r);
            }
        }
        Format::Table => {
            let Some(max) = reported.max_severity else {
                return;
            };
            let mut t = flagged_heading(location(line, index, input), &first.id, max);
            let _ = writeln!(t, "  {}", reported.comparison());
            for (k, r) in reported.packs.iter().enumerate() {
                let _ = writeln!(t, "  [{}]", r.screening.pack);
                table_cautions(&mut t, r);
                of_pack(k).table_lines(r, &mut t);
            }
            t.push('\n');
            buf.extend_from_slice(t.as_bytes());
        }
    }
}

/// A screening's CSV rows: one per kept caution, or one `clear` row (each naming the pack when rows
/// have a `pack` column).
fn csv_rows(csv: &CsvRecord<'_>, buf: &mut Vec<u8>, reported: &Reported<'_, '_>) {
    let pack = reported.screening.pack;
    let mut kept = reported.cautions().peekable();
    if kept.peek().is_none() {
        csv.pack_row(buf, pack, "clear", "", "", "");
    }
    for c in kept {
        csv.pack_row(buf, pack, "flagged", c.rule, c.severity.as_str(), c.title);
    }
}

/// A flagged record's table heading: `line 3  p-3  FLAGGED (CRITICAL)`.
fn flagged_heading(at: String, id: &str, max: Severity) -> String {
    format!(
        "{at}  {}  FLAGGED ({})\n",
        printable(id),
        max.as_str().to_uppercase()
    )
}

/// A table block's cautions and undecided rules, as [`Format::Table`] shows them.
fn table_cautions(t: &mut String, reported: &Reported<'_, '_>) {
    for c in reported.cautions() {
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
    let s = reported.screening;
    if !s.indeterminate.is_empty() {
        let list: Vec<String> = s
            .indeterminate
            .iter()
            .map(|i| format!("{} ({})", i.rule, i.missing.join(", ")))
            .collect();
        let _ = writeln!(t, "  could not evaluate: {}", list.join("; "));
    }
}

/// The screened result as one JSON object, written directly: this runs once per record, and a generic
/// serialiser spent a fifth of all instructions escaping strings that need no escaping. A unit test holds
/// it byte-identical to the `Serialize` reference.
fn write_screened_json<A: Annotate + ?Sized>(
    buf: &mut Vec<u8>,
    opts: &OutputOptions,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    reported: &Reported<'_, '_>,
    annotate: &A,
) {
    write_result_head(buf, line, input, index, &reported.screening.id);
    write_screening_json(buf, opts, reported, annotate);
    annotate.result_json(opts, buf);
    buf.push(b'}');
}

/// A screened result's opening, up to the comma after its `id`:
/// `{"line":3,"input":"a.ndjson","index":2,"id":"p-3",`.
fn write_result_head(
    buf: &mut Vec<u8>,
    line: u64,
    input: Option<&str>,
    index: Option<u64>,
    id: &str,
) {
    buf.extend_from_slice(b"{\"line\":");
    write_u64(buf, line);
    if let Some(i) = input {
        buf.extend_from_slice(b",\"input\":");
        write_str(buf, i);
    }
    if let Some(i) = index {
        buf.extend_from_slice(b",\"index\":");
        write_u64(buf, i);
    }
    buf.extend_from_slice(b",\"id\":");
    write_str(buf, id);
    buf.push(b',');
}

/// `"status":..,"max_severity":..` of a result, or of one pack's screening in it.
fn write_status_json(buf: &mut Vec<u8>, status: Status, max: Option<Severity>) {
    buf.extend_from_slice(match status {
        Status::Clear => b"\"status\":\"clear\",\"max_severity\":",
        Status::Flagged => b"\"status\":\"flagged\",\"max_severity\":",
    });
    match max {
        Some(sev) => write_str(buf, sev.as_str()),
        None => buf.extend_from_slice(b"null"),
    }
}

/// The members of one screening after `--min-severity`, from `status` to `ruleset`, without braces.
fn write_screening_json<A: Annotate + ?Sized>(
    buf: &mut Vec<u8>,
    opts: &OutputOptions,
    reported: &Reported<'_, '_>,
    annotate: &A,
) {
    let s = reported.screening;
    write_status_json(buf, reported.status(), reported.max_severity);
    buf.extend_from_slice(b",\"cautions\":[");
    let full = opts.detail == Detail::Full;
    let minimal = opts.detail == Detail::Minimal;
    let mut first = true;
    for c in reported.cautions() {
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.extend_from_slice(b"{\"rule\":");
        write_str(buf, c.rule);
        buf.extend_from_slice(b",\"severity\":");
        write_str(buf, c.severity.as_str());
        if full {
            for (key, text) in [
                (&b",\"title\":"[..], c.title),
                (b",\"message\":", c.message),
                (b",\"action\":", c.action),
            ] {
                buf.extend_from_slice(key);
                write_str(buf, text);
            }
        }
        if !minimal {
            buf.extend_from_slice(b",\"evidence\":");
            write_evidence_array(buf, &c.evidence, annotate);
        }
        if full {
            buf.extend_from_slice(b",\"sources\":");
            let _ = serde_json::to_writer(&mut *buf, c.sources);
        }
        buf.push(b'}');
    }
    if minimal {
        buf.extend_from_slice(b"],\"undecided\":[");
        for (k, i) in s.indeterminate.iter().enumerate() {
            if k > 0 {
                buf.push(b',');
            }
            write_str(buf, i.rule);
        }
        buf.extend_from_slice(b"],\"ruleset\":");
        write_str(buf, s.ruleset);
        return;
    }
    buf.extend_from_slice(b"],\"indeterminate\":[");
    for (k, i) in s.indeterminate.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"rule\":");
        write_str(buf, i.rule);
        buf.extend_from_slice(b",\"missing\":[");
        for (m, name) in i.missing.iter().enumerate() {
            if m > 0 {
                buf.push(b',');
            }
            write_str(buf, name);
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"],\"ruleset\":");
    write_str(buf, s.ruleset);
}

/// A caution's evidence as the JSON array a native result carries under `evidence`
/// (`[{"pointer":"/egfr","value":25}]`), for callers that hold results in other shapes (the Python
/// package's Arrow tables keep it as this text).
pub fn evidence_json(buf: &mut Vec<u8>, evidence: &[Evidence<'_>]) {
    write_evidence_array(buf, evidence, &NoAnnotation);
}

fn write_evidence_array<A: Annotate + ?Sized>(
    buf: &mut Vec<u8>,
    evidence: &[Evidence<'_>],
    annotate: &A,
) {
    buf.push(b'[');
    for (k, e) in evidence.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        write_evidence(buf, e, annotate);
    }
    buf.push(b']');
}

/// One piece of evidence in JSON, as `Evidence` serialises, then what `annotate` adds.
fn write_evidence<A: Annotate + ?Sized>(buf: &mut Vec<u8>, e: &Evidence<'_>, annotate: &A) {
    buf.extend_from_slice(b"{\"pointer\":");
    write_str(buf, &e.pointer);
    buf.extend_from_slice(b",\"value\":");
    match &e.value {
        serde_json::Value::String(v) => write_str(buf, v),
        other => {
            let _ = serde_json::to_writer(&mut *buf, other);
        }
    }
    for (key, v) in [
        (&b",\"ingredient\":"[..], e.ingredient),
        (b",\"class\":", e.class),
        (b",\"matched\":", e.matched),
    ] {
        if let Some(v) = v {
            buf.extend_from_slice(key);
            write_str(buf, v);
        }
    }
    annotate.evidence_json(e, buf);
    buf.push(b'}');
}

/// A JSON string, escaped exactly as serde_json escapes it (quote, backslash, control characters).
fn write_str(buf: &mut Vec<u8>, s: &str) {
    // No early exit, so that the check is a vector loop: most strings need no escape.
    let escape = s
        .bytes()
        .fold(false, |e, b| e | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if escape {
        let _ = serde_json::to_writer(&mut *buf, s);
    } else {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "a u64 has at most 20 decimal digits, and i stops at the first"
)]
fn write_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
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
    invalid_at(opts, buf, line, None, input, id, errors);
}

/// Append an invalid record's result; `index` is the record's position in its JSON array, if any.
pub fn invalid_at<P: RecordProblem>(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    id: Option<&str>,
    errors: &[P],
) {
    let (csv, input) = place(opts, line, index, input, id.unwrap_or(""));
    match opts.format {
        Format::Ndjson | Format::Json => {
            json_line(
                opts,
                buf,
                &InvalidLine {
                    line,
                    input,
                    index,
                    id,
                    status: "invalid",
                    errors,
                },
            );
        }
        Format::Csv => {
            let what: Vec<String> = errors.iter().map(RecordProblem::text).collect();
            csv.row(buf, "invalid", "", "", &what.join("; "));
        }
        Format::Table => {
            let mut t = format!(
                "{}  {}  INVALID\n",
                location(line, index, input),
                printable(id.unwrap_or(P::NO_ID))
            );
            for p in errors {
                let _ = writeln!(t, "  {}", printable(&p.text()));
            }
            t.push('\n');
            buf.extend_from_slice(t.as_bytes());
        }
    }
}

/// Append the result of a record that was read but not screened, and why (FHIR: a patient deceased by
/// the evaluation date). JSON: `{"line":1,"input":"a.json","id":"p1","status":"skipped","reason":"..."}`;
/// CSV: a `skipped` row with the reason under `title`; table: a `SKIPPED` block with the reason.
pub fn skipped_at(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    input: Option<&str>,
    id: &str,
    reason: &str,
) {
    status_result(opts, buf, line, None, input, id, "skipped", Some(reason));
}

/// Append a valid record's result (`validate` only).
pub fn valid(opts: &OutputOptions, buf: &mut Vec<u8>, line: u64, input: Option<&str>, id: &str) {
    valid_at(opts, buf, line, None, input, id);
}

/// Append a valid record's result; `index` is the record's position in its JSON array, if any.
pub fn valid_at(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    id: &str,
) {
    status_result(opts, buf, line, index, input, id, "valid", None);
}

/// A result that is a status and, for a record not screened, the reason; a table shows only the latter.
#[allow(
    clippy::too_many_arguments,
    reason = "two call sites, each argument one field"
)]
fn status_result(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    line: u64,
    index: Option<u64>,
    input: Option<&str>,
    id: &str,
    status: &'static str,
    reason: Option<&str>,
) {
    let (csv, input) = place(opts, line, index, input, id);
    match opts.format {
        Format::Ndjson | Format::Json => json_line(
            opts,
            buf,
            &StatusLine {
                line,
                input,
                index,
                id,
                status,
                reason,
            },
        ),
        Format::Csv => csv.row(buf, status, "", "", reason.unwrap_or("")),
        Format::Table => {
            if let Some(reason) = reason {
                let t = format!(
                    "{}  {}  {}\n  {reason}\n\n",
                    location(line, index, input),
                    printable(id),
                    status.to_uppercase()
                );
                buf.extend_from_slice(t.as_bytes());
            }
        }
    }
}

/// A record's CSV location (always with its input), and the input to name in JSON and tables (only
/// with `show_input`).
fn place<'a>(
    opts: &OutputOptions,
    line: u64,
    index: Option<u64>,
    input: Option<&'a str>,
    id: &'a str,
) -> (CsvRecord<'a>, Option<&'a str>) {
    let csv = CsvRecord {
        input: input.unwrap_or("-"),
        line,
        index,
        id,
        pack_column: opts.several_packs,
    };
    (csv, if opts.show_input { input } else { None })
}

fn location(line: u64, index: Option<u64>, input: Option<&str>) -> String {
    let at = match input {
        Some(i) => format!("{}:{line}", printable(i)),
        None => format!("line {line}"),
    };
    match index {
        Some(k) => format!("{at} [{k}]"),
        None => at,
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

/// The CSV header: one row per record at least (a clear, invalid or valid record has one row, a flagged
/// one a row per reported caution), with the same columns whatever the input:
/// `input,line,index,id,status,rule,severity,title`. `input` is `-` for standard input, `index` the
/// record's position in a JSON array (empty otherwise); `title` holds the problems of an invalid record
/// and the reason a FHIR patient was skipped.
pub const CSV_HEADER: &[u8] = b"input,line,index,id,status,rule,severity,title\n";

/// The CSV header when several packs screen: `pack` after `id`, and a screened record has rows for every
/// pack (a clear row for a pack that reported nothing). An invalid record's row has an empty `pack`.
pub const CSV_HEADER_PACKS: &[u8] = b"input,line,index,id,pack,status,rule,severity,title\n";

/// Where a CSV row's record is: the leading columns of every row.
pub struct CsvRecord<'a> {
    /// The input's name (`-` for standard input).
    pub input: &'a str,
    /// The line the record starts on.
    pub line: u64,
    /// Its position in a JSON array, if it is an element of one.
    pub index: Option<u64>,
    /// Its id (empty when it has none).
    pub id: &'a str,
    /// Rows have a `pack` column after `id` ([`CSV_HEADER_PACKS`]).
    pub pack_column: bool,
}

impl CsvRecord<'_> {
    /// Append one row (about the record, not one pack: its `pack` column, if any, is empty).
    pub fn row(&self, buf: &mut Vec<u8>, status: &str, rule: &str, severity: &str, title: &str) {
        self.pack_row(buf, "", status, rule, severity, title);
    }

    /// Append one row about `pack` (written only when rows have a `pack` column).
    pub fn pack_row(
        &self,
        buf: &mut Vec<u8>,
        pack: &str,
        status: &str,
        rule: &str,
        severity: &str,
        title: &str,
    ) {
        let mut row = String::new();
        let _ = write!(row, "{},{},", csv_field(self.input), self.line);
        if let Some(i) = self.index {
            let _ = write!(row, "{i}");
        }
        let _ = write!(row, ",{}", csv_field(self.id));
        if self.pack_column {
            let _ = write!(row, ",{}", csv_field(pack));
        }
        let _ = writeln!(
            row,
            ",{status},{},{severity},{}",
            csv_field(rule),
            csv_field(title)
        );
        buf.extend_from_slice(row.as_bytes());
    }
}

/// Quote a CSV field when it needs it (RFC 4180). A field that a spreadsheet would read as a formula
/// (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` and quotes, as
/// OWASP's CSV-injection guidance recommends, so `=HYPERLINK(...)` in a record id stays text.
pub fn csv_field(s: &str) -> String {
    // A lone `-` (standard input's name) is no formula.
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s != "-" {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Text from a record, made safe for a terminal: control characters (which could move the cursor,
/// recolour or retitle the terminal) are written as `\u{..}` escapes.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if ch.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(ch));
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain id-42",
            "a \"quoted\" word",
            "back\\slash",
            "tab\there\nnew line\r\u{1}\u{1f}",
            "\u{7f} and caf\u{e9}, \u{1f600}",
            "a long plain string that is longer than one vector of bytes, and then some more text",
            "a long string whose escape comes only at the very end, after every plain byte\"",
        ] {
            let mut buf = Vec::new();
            write_str(&mut buf, s);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    /// The reference: the same line through `Serialize`.
    fn reference(
        opts: &OutputOptions,
        line: u64,
        index: Option<u64>,
        input: Option<&str>,
        s: &Screening<'_>,
    ) -> Vec<u8> {
        let full = opts.detail == Detail::Full;
        let minimal = opts.detail == Detail::Minimal;
        let kept: Vec<CautionOut<'_>> = s
            .cautions
            .iter()
            .filter(|c| c.severity >= opts.min_severity)
            .map(|c| CautionOut {
                rule: c.rule,
                severity: c.severity,
                title: full.then_some(c.title),
                message: full.then_some(c.message),
                action: full.then_some(c.action),
                evidence: (!minimal).then_some(&c.evidence[..]),
                sources: full.then_some(c.sources),
            })
            .collect();
        let row = ScreenedLine {
            line,
            input,
            index,
            id: &s.id,
            status: if kept.is_empty() {
                Status::Clear
            } else {
                Status::Flagged
            },
            max_severity: kept.first().map(|c| c.severity),
            cautions: kept,
            indeterminate: (!minimal).then_some(&s.indeterminate[..]),
            undecided: minimal.then(|| s.indeterminate.iter().map(|i| i.rule).collect()),
            ruleset: s.ruleset,
        };
        let mut out = serde_json::to_vec(&row).unwrap();
        out.push(b'\n');
        out
    }

    #[test]
    fn hand_written_json_is_byte_identical_to_serde() {
        let engine = Engine::embedded().unwrap();
        let mut data = Vec::new();
        crate::generate::write_profiles(&mut data, engine.facts(), 3000, 11, 0.0).unwrap();
        data.extend_from_slice(br#"{"id":"q\"uote\\ \u0001","age":70,"indication":"stroke \"x\"","comedications":["a\tb oxycodone",{"name":"x\ny"}]}"#);
        let mut n = 0;
        for (k, rec) in data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let profile = engine.parse_profile(rec).unwrap();
            let s = engine.screen(&profile);
            for detail in [Detail::Minimal, Detail::Compact, Detail::Full] {
                for min_severity in [Severity::Info, Severity::Critical] {
                    for input in [None, Some("in \"1\".ndjson")] {
                        let opts = OutputOptions {
                            format: Format::Ndjson,
                            detail,
                            min_severity,
                            show_input: input.is_some(),
                            several_packs: false,
                        };
                        let index = (k % 3 == 0).then_some(k as u64 * 7);
                        let mut got = Vec::new();
                        screened_at(
                            &opts,
                            &mut got,
                            k as u64 + 1,
                            index,
                            input,
                            &s,
                            &NoAnnotation,
                        );
                        assert_eq!(
                            String::from_utf8(got).unwrap(),
                            String::from_utf8(reference(&opts, k as u64 + 1, index, input, &s))
                                .unwrap()
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 10_000);
    }

    #[test]
    fn table_text_escapes_control_characters() {
        assert_eq!(printable("p-1"), "p-1");
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}b"),
            "a\\u{1b}]0;pwned\\u{7}b"
        );
        assert_eq!(printable("x\u{9b}31m"), "x\\u{9b}31m");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        for lead in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(csv_field(lead).starts_with("\"'"), "{lead:?}");
        }
        assert_eq!(csv_field("a-b"), "a-b");
        assert_eq!(csv_field("-"), "-");
    }
}
