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

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::mapping::{FhirProblem, PatientFacts, Prov};
use medscreen_core::Severity;
use medscreen_core::output::{self, Detail, Format, OutputOptions};
use medscreen_core::report::{Evidence, Indeterminate, Screening, Status};
use medscreen_core::vocab::Source;

/// A screened patient's result, with FHIR provenance on each piece of evidence.
pub fn screened(
    opts: &OutputOptions,
    f: &PatientFacts,
    s: &Screening<'_>,
    provenance: &BTreeMap<String, Vec<Prov>>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    match opts.format {
        Format::Csv | Format::Table => {
            let o = OutputOptions {
                show_input: true,
                ..opts.clone()
            };
            output::screened(&o, &mut buf, f.line, Some(&f.input), s);
            if opts.format == Format::Table && !buf.is_empty() {
                // Name the resources under each piece of evidence.
                let mut text = String::from_utf8_lossy(&buf).into_owned();
                let mut extra = String::new();
                for c in &s.cautions {
                    for e in &c.evidence {
                        for p in provenance.get(e.pointer.as_ref()).into_iter().flatten() {
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
                    text.insert_str(
                        text.len().saturating_sub(1),
                        &format!("  from FHIR:\n{extra}"),
                    );
                }
                buf = text.into_bytes();
            }
            buf
        }
        Format::Ndjson | Format::Json => {
            let full = opts.detail == Detail::Full;
            let cautions: Vec<CautionOut<'_>> = s
                .cautions
                .iter()
                .filter(|c| c.severity >= opts.min_severity)
                .map(|c| CautionOut {
                    rule: c.rule,
                    severity: c.severity,
                    title: full.then_some(c.title),
                    message: full.then_some(c.message),
                    action: full.then_some(c.action),
                    evidence: c
                        .evidence
                        .iter()
                        .map(|e| EvidenceOut {
                            evidence: e,
                            fhir: provenance.get(e.pointer.as_ref()).map(Vec::as_slice),
                        })
                        .collect(),
                    sources: full.then_some(c.sources),
                })
                .collect();
            let line = ScreenedLine {
                line: f.line,
                input: &f.input,
                id: &s.id,
                status: if cautions.is_empty() {
                    Status::Clear
                } else {
                    Status::Flagged
                },
                max_severity: cautions.first().map(|c| c.severity),
                cautions,
                indeterminate: &s.indeterminate,
                ruleset: s.ruleset,
                provenance: full.then_some(provenance),
            };
            json_line(&line)
        }
    }
}

/// Mirrors the native result line (`medscreen_core::output`), field for field and in the same order, adding
/// `fhir` to evidence and, with `--detail full`, `provenance`.
#[derive(Serialize)]
struct ScreenedLine<'a> {
    line: u64,
    input: &'a str,
    id: &'a str,
    status: Status,
    max_severity: Option<Severity>,
    cautions: Vec<CautionOut<'a>>,
    indeterminate: &'a [Indeterminate<'a>],
    ruleset: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a BTreeMap<String, Vec<Prov>>>,
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
    evidence: Vec<EvidenceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [Source]>,
}

#[derive(Serialize)]
struct EvidenceOut<'a> {
    #[serde(flatten)]
    evidence: &'a Evidence<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fhir: Option<&'a [Prov]>,
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

#[derive(Serialize)]
struct SkippedLine<'a> {
    line: u64,
    input: &'a str,
    id: &'a str,
    status: &'static str,
    reason: &'a str,
}

#[derive(Serialize)]
struct InvalidLine<'a> {
    line: u64,
    input: &'a str,
    id: Option<&'a str>,
    status: &'static str,
    errors: &'a [FhirProblem],
}

/// A patient not screened.
pub fn skipped(opts: &OutputOptions, input: &str, line: u64, id: &str, reason: &str) -> Vec<u8> {
    match opts.format {
        Format::Ndjson | Format::Json => json_line(&SkippedLine {
            line,
            input,
            id,
            status: "skipped",
            reason,
        }),
        Format::Csv => {
            let mut buf = Vec::new();
            let at = output::CsvRecord {
                input,
                line,
                index: None,
                id,
            };
            at.row(&mut buf, "skipped", "", "", reason);
            buf
        }
        Format::Table => format!(
            "{}:{line}  {}  SKIPPED\n  {reason}\n\n",
            output::printable(input),
            output::printable(id)
        )
        .into_bytes(),
    }
}

/// A malformed record (`id` `None` when the problem belongs to no patient).
pub fn invalid(
    opts: &OutputOptions,
    input: &str,
    line: u64,
    id: Option<&str>,
    errors: &[FhirProblem],
) -> Vec<u8> {
    match opts.format {
        Format::Ndjson | Format::Json => json_line(&InvalidLine {
            line,
            input,
            id,
            status: "invalid",
            errors,
        }),
        Format::Csv => {
            let what: Vec<String> = errors.iter().map(problem_text).collect();
            let mut buf = Vec::new();
            let at = output::CsvRecord {
                input,
                line,
                index: None,
                id: id.unwrap_or(""),
            };
            at.row(&mut buf, "invalid", "", "", &what.join("; "));
            buf
        }
        Format::Table => {
            let mut t = format!(
                "{}:{line}  {}  INVALID\n",
                output::printable(input),
                output::printable(id.unwrap_or("(no patient)"))
            );
            for p in errors {
                let _ = writeln!(t, "  {}", output::printable(&problem_text(p)));
            }
            t.push('\n');
            t.into_bytes()
        }
    }
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

fn json_line<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}
