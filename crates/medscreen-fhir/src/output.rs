//! Results for FHIR input: the native result of [`medscreen_core::output`], with each piece of evidence naming the
//! FHIR resources it came from.
//!
//! A screened patient (NDJSON; `input` is always written, `line` is the line of the Bundle or of the
//! Patient resource in a Bulk file):
//!
//! ```json
//! {"line":1,"input":"Alberto.json","id":"4e8ed886-...","status":"flagged","max_severity":"warning",
//!  "cautions":[{"rule":"BAC-SEIZURE","severity":"warning",
//!    "evidence":[{"pointer":"/seizure_history","value":true,
//!      "fhir":[{"resource":"Condition/abc","system":"snomed","code":"84757009","display":"Epilepsy",
//!               "date":"2007-06-04T09:12:00+00:00","valueset":"seizure"}]}]}],
//!  "indeterminate":[...],"ruleset":"baclofen@1.0.0#..."}
//! ```
//!
//! With `--detail full` the result also has `"provenance"`: every profile field set from FHIR, by JSON
//! Pointer, with its resources. A patient deceased by the evaluation date:
//! `{"line":1,"input":"...","id":"...","status":"skipped","reason":"deceased on 2010-01-17, ..."}`.
//! A malformed record: `{"line":1,"input":"...","id":"..." or null,"status":"invalid","errors":[
//! {"code":"broken_reference","message":"...","input":"...","line":1,"pointer":"/entry/4/resource/subject/reference",
//! "resource":"Condition/x"}]}`.
//!
//! With several packs (`--pack A --pack B`), a screened patient's result is the native `screenings/1`
//! shape ([`medscreen_core::output::screened_packs_at`]); each pack mapped its own profile (its own
//! drug's order), so each screening is annotated by its own [`Provenance`], and with `--detail full` its
//! `provenance` is inside that screening, after its `ruleset`.
//!
//! These are the native printers of [`medscreen_core::output`] with a [`Provenance`] hook, so the two
//! paths cannot drift apart: only what FHIR adds is written here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::mapping::{FhirProblem, PatientFacts, Prov};
use medscreen_core::output::{self, Annotate, Detail, OutputOptions, RecordProblem, Reported};
use medscreen_core::report::{Evidence, Screening};

/// The FHIR resources behind a patient's profile fields, added to the native result: under each piece
/// of evidence (`fhir` in JSON, a `from FHIR:` list in a table), and whole with `--detail full`
/// (`provenance`).
pub struct Provenance<'p>(pub &'p BTreeMap<String, Vec<Prov>>);

impl Annotate for Provenance<'_> {
    fn evidence_json(&self, evidence: &Evidence<'_>, buf: &mut Vec<u8>) {
        if let Some(p) = self.0.get(evidence.pointer.as_ref()) {
            buf.extend_from_slice(b",\"fhir\":");
            let _ = serde_json::to_writer(&mut *buf, p);
        }
    }

    fn result_json(&self, opts: &OutputOptions, buf: &mut Vec<u8>) {
        if opts.detail == Detail::Full {
            buf.extend_from_slice(b",\"provenance\":");
            let _ = serde_json::to_writer(&mut *buf, self.0);
        }
    }

    fn table_lines(&self, reported: &Reported<'_, '_>, text: &mut String) {
        // Name the resources under each piece of evidence of the cautions reported.
        let mut extra = String::new();
        for c in reported.cautions() {
            for e in &c.evidence {
                for p in self.0.get(e.pointer.as_ref()).into_iter().flatten() {
                    let _ = writeln!(
                        extra,
                        "  {} {}: {}",
                        c.rule,
                        e.pointer,
                        output::printable(&prov_text(p))
                    );
                }
            }
        }
        if !extra.is_empty() {
            text.push_str("  from FHIR:\n");
            text.push_str(&extra);
        }
    }
}

impl RecordProblem for FhirProblem {
    fn text(&self) -> String {
        problem_text(self)
    }
    const NO_ID: &'static str = "(no patient)";
}

/// FHIR results always name their input.
fn with_input(opts: &OutputOptions) -> OutputOptions {
    OutputOptions {
        show_input: true,
        ..opts.clone()
    }
}

/// Append a screened patient's result, with FHIR provenance on each piece of evidence.
pub fn screened(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    f: &PatientFacts,
    s: &Screening<'_>,
    provenance: &BTreeMap<String, Vec<Prov>>,
) {
    let opts = with_input(opts);
    let p = Provenance(provenance);
    output::screened_at(&opts, buf, f.line, None, Some(&f.input), s, &p);
}

/// Append a patient's result screened by several packs (the `screenings/1` shape), each pack's
/// evidence named by that pack's provenance (`hooks`, one per screening: each pack read its own order).
pub fn screened_packs(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    f: &PatientFacts,
    screenings: &[Screening<'_>],
    hooks: &[&dyn Annotate],
) {
    let opts = with_input(opts);
    output::screened_packs_at(&opts, buf, f.line, None, Some(&f.input), screenings, hooks);
}

fn prov_text(p: &Prov) -> String {
    let mut t = p.resource.clone();
    if let (Some(s), Some(c)) = (p.system, &p.code) {
        let _ = write!(t, " {s}|{c}");
    }
    if let Some(d) = &p.display {
        let _ = write!(t, " \"{d}\"");
    }
    if let Some(d) = &p.date {
        let _ = write!(t, " {d}");
    }
    if let Some(n) = &p.note {
        let _ = write!(t, " ({n})");
    }
    t
}

/// Append the result of a patient not screened.
pub fn skipped(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    input: &str,
    line: u64,
    id: &str,
    reason: &str,
) {
    output::skipped_at(&with_input(opts), buf, line, Some(input), id, reason);
}

/// Append a malformed record's result (`id` `None` when the problem belongs to no patient).
pub fn invalid(
    opts: &OutputOptions,
    buf: &mut Vec<u8>,
    input: &str,
    line: u64,
    id: Option<&str>,
    errors: &[FhirProblem],
) {
    output::invalid_at(&with_input(opts), buf, line, None, Some(input), id, errors);
}

/// One problem in one line: `Condition/x at /entry/3/resource/subject/reference: ... [broken_reference]`.
pub fn problem_text(p: &FhirProblem) -> String {
    let mut t = String::new();
    if let Some(r) = &p.resource {
        let _ = write!(t, "{r} ");
    }
    if let Some(l) = p.line.filter(|&l| l > 1) {
        let _ = write!(t, "line {l} ");
    }
    if !p.pointer.is_empty() {
        let _ = write!(t, "at {} ", p.pointer);
    }
    let _ = write!(
        t,
        "{}{} [{}]",
        if t.is_empty() { "" } else { ": " },
        p.message,
        p.code
    );
    t.trim_start().to_owned()
}
