//! Running FHIR input through the engine: find the inputs, read them in parallel, write one result per
//! patient in a deterministic order, and count.
//!
//! Work is cut into units whose results are written in input order: one Bundle file, one line of an
//! NDJSON file of Bundles, or the patients of a Bulk export (read by [`super::bulk`], then screened in
//! chunks). Units are processed a bounded batch at a time on the rayon pool, so memory is bounded by the
//! batch, and the output is the same at any thread count.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::bulk;
use super::bundle::{BundleFacts, read_document};
use super::discover::{self, What};
use super::mapping::{FhirProblem, Mapper, Outcome, PatientFacts};
use medscreen_core::Severity;
use medscreen_core::engine::Engine;
use medscreen_core::output::{self, Format, OutputOptions};

/// What to produce for each patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Screen, and write results.
    Screen,
    /// Write the native profile (`fhir-profile`).
    Profile,
}

/// Run settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Screen or print profiles.
    pub mode: Mode,
    /// Output format and detail (`Screen`).
    pub output: OutputOptions,
    /// Exit-code threshold.
    pub fail_on: Option<Severity>,
    /// Worker threads.
    pub threads: usize,
}

/// A file we did not read, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// Counts for one run, written to standard error and, as JSON, to `--summary FILE`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FhirSummary {
    /// Inputs as given.
    pub inputs: Vec<String>,
    /// The evaluation date.
    pub as_of: String,
    /// Patients with a result (screened, skipped or invalid).
    pub patients: u64,
    /// Screened with no caution.
    pub clear: u64,
    /// Screened with a caution.
    pub flagged: u64,
    /// Not screened (deceased by the evaluation date).
    pub skipped: u64,
    /// Patients whose record is malformed.
    pub invalid: u64,
    /// Results for problems that belong to no patient (a file that is not a Bundle, a bad line).
    pub file_errors: u64,
    /// Files read.
    pub files_read: u64,
    /// Files in a directory that were not read, with the reason.
    pub skipped_files: Vec<SkippedFile>,
    /// Cautions by severity.
    pub cautions_by_severity: BTreeMap<&'static str, u64>,
    /// Cautions by rule.
    pub cautions_by_rule: BTreeMap<String, u64>,
    /// Some caution reached `--fail-on`.
    pub fail_on_reached: bool,
    /// Bytes of input read.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// Patients per second.
    pub patients_per_second: f64,
    /// Input megabytes (10^6 bytes) per second.
    pub mb_per_second: f64,
}

impl FhirSummary {
    fn add(&mut self, t: Tally) {
        self.patients += t.patients;
        self.clear += t.clear;
        self.flagged += t.flagged;
        self.skipped += t.skipped;
        self.invalid += t.invalid;
        self.file_errors += t.file_errors;
        self.bytes += t.bytes;
        self.fail_on_reached |= t.fail_on_reached;
        for (k, v) in t.by_severity {
            *self.cautions_by_severity.entry(k).or_default() += v;
        }
        for (k, v) in t.by_rule {
            *self.cautions_by_rule.entry(k).or_default() += v;
        }
    }

    /// The summary in a few lines, for standard error.
    pub fn text(&self, mode: Mode) -> String {
        let mut t = format!(
            "medscreen: {} patients from {} files: {} clear, {} flagged, {} skipped (deceased), {} invalid; {} file errors in {:.2}s ({:.0} patients/s, {:.1} MB/s)\n",
            self.patients,
            self.files_read,
            self.clear,
            self.flagged,
            self.skipped,
            self.invalid,
            self.file_errors,
            self.elapsed_seconds,
            self.patients_per_second,
            self.mb_per_second
        );
        if mode == Mode::Profile {
            t = t.replace(" 0 clear, 0 flagged,", "");
        }
        if !self.cautions_by_severity.is_empty() {
            let parts: Vec<String> = ["critical", "warning", "info"]
                .iter()
                .filter_map(|k| self.cautions_by_severity.get(k).map(|n| format!("{n} {k}")))
                .collect();
            t.push_str(&format!("  cautions: {}\n", parts.join(", ")));
        }
        if !self.skipped_files.is_empty() {
            t.push_str(&format!("  skipped {} files:\n", self.skipped_files.len()));
            for s in &self.skipped_files {
                t.push_str(&format!("    {}: {}\n", s.file, s.reason));
            }
        }
        t
    }
}

#[derive(Debug, Default)]
struct Tally {
    patients: u64,
    clear: u64,
    flagged: u64,
    skipped: u64,
    invalid: u64,
    file_errors: u64,
    bytes: u64,
    fail_on_reached: bool,
    by_severity: BTreeMap<&'static str, u64>,
    by_rule: BTreeMap<String, u64>,
}

/// Why a run stopped.
#[derive(Debug)]
pub enum RunError {
    /// An input could not be read.
    Input(String, io::Error),
    /// The output could not be written.
    Output(io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Input(i, e) => write!(f, "cannot read `{i}`: {e}"),
            RunError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

/// A unit of work whose results are written together, in order.
enum Unit {
    /// A whole file holding one Bundle (or something that should be one).
    File(PathBuf),
    /// One line of an NDJSON file of Bundles.
    Line(String, u64, Vec<u8>),
    /// Standard input, read whole.
    Stdin(Vec<u8>),
    /// The single resources of a directory, read as one group.
    Group(String, Vec<PathBuf>),
    /// A file of a directory that is not FHIR input, and why.
    NotFhir(PathBuf, String),
}

/// One result: bytes for the output, or (for `fhir-profile`) a line for standard error.
enum Rec {
    Out(Vec<u8>),
    Err(String),
}

struct Writer<'w> {
    out: &'w mut (dyn Write + Send),
    format: Format,
    first: bool,
}

impl Writer<'_> {
    fn record(&mut self, rec: &Rec) -> io::Result<()> {
        let bytes = match rec {
            Rec::Out(b) => b,
            Rec::Err(e) => {
                let _ = write!(io::stderr(), "{e}");
                return Ok(());
            }
        };
        if self.format == Format::Json {
            let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            if !self.first {
                self.out.write_all(b",\n")?;
            }
            self.out.write_all(body)?;
        } else {
            self.out.write_all(bytes)?;
        }
        self.first = false;
        Ok(())
    }
}

/// Screen (or map) every input. Results go to `out`; the summary is returned.
pub fn run(
    engine: &Engine,
    mapper: &Mapper<'_>,
    inputs: &[String],
    cfg: &RunConfig,
    out: &mut (dyn Write + Send),
) -> Result<FhirSummary, RunError> {
    let start = Instant::now();
    // Medications are read through the engine's vocabulary too (every RxNorm and ATC coding).
    let with_vocabulary = mapper.with_engine(engine);
    let mapper = &with_vocabulary;
    let mut summary = FhirSummary {
        inputs: inputs.to_vec(),
        as_of: mapper.options().as_of.to_string(),
        ..FhirSummary::default()
    };
    let format = if cfg.mode == Mode::Profile {
        Format::Ndjson
    } else {
        cfg.output.format
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads.max(1))
        .build()
        .map_err(|e| RunError::Output(io::Error::other(e.to_string())))?;
    let header: &[u8] = if cfg.mode == Mode::Profile {
        b""
    } else {
        output::header(&cfg.output)
    };
    out.write_all(header).map_err(RunError::Output)?;
    let mut w = Writer {
        out,
        format,
        first: true,
    };
    let batch = cfg.threads.max(1) * 4;
    let mut pending: Vec<Unit> = Vec::new();
    let flush = |pending: &mut Vec<Unit>, w: &mut Writer<'_>, summary: &mut FhirSummary| {
        let units = std::mem::take(pending);
        let results: Vec<(Vec<Rec>, Tally)> = pool.install(|| {
            units
                .into_par_iter()
                .map(|u| unit(engine, mapper, cfg, u))
                .collect()
        });
        for (records, tally) in results {
            for r in &records {
                w.record(r).map_err(RunError::Output)?;
            }
            summary.add(tally);
        }
        Ok::<(), RunError>(())
    };
    for input in inputs {
        if input == "-" {
            let bytes = discover::read_stdin().map_err(|e| RunError::Input("-".into(), e))?;
            summary.files_read += 1;
            pending.push(Unit::Stdin(bytes));
            continue;
        }
        let path = Path::new(input);
        if path.is_dir() {
            if bulk::is_export(path) {
                flush(&mut pending, &mut w, &mut summary)?;
                let ex = bulk::scan(path).map_err(|e| RunError::Input(input.clone(), e))?;
                summary.files_read += ex.files.len() as u64;
                summary
                    .skipped_files
                    .extend(ex.skipped.iter().map(|(p, r)| SkippedFile {
                        file: p.display().to_string(),
                        reason: r.clone(),
                    }));
                let facts = bulk::read_export(mapper, &ex)
                    .map_err(|e| RunError::Input(input.clone(), e))?;
                let mut tally = Tally {
                    bytes: facts.bytes,
                    ..Tally::default()
                };
                let mut records = Vec::new();
                for p in &facts.problems {
                    records.push(error_record(
                        cfg,
                        p.input.as_deref().unwrap_or(input),
                        p.line.unwrap_or(0),
                        None,
                        std::slice::from_ref(p),
                    ));
                    tally.file_errors += 1;
                }
                for r in &records {
                    w.record(r).map_err(RunError::Output)?;
                }
                summary.add(tally);
                for chunk in facts.patients.chunks(batch * 16) {
                    let results: Vec<(Rec, Tally)> = pool.install(|| {
                        chunk
                            .par_iter()
                            .map(|f| {
                                let mut t = Tally::default();
                                let r = patient_record(engine, mapper, cfg, f, &mut t);
                                (r, t)
                            })
                            .collect()
                    });
                    for (r, t) in results {
                        w.record(&r).map_err(RunError::Output)?;
                        summary.add(t);
                    }
                }
                continue;
            }
            let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| RunError::Input(input.clone(), e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .collect();
            paths.sort();
            let mut group = Vec::new();
            for p in paths {
                let name = p.display().to_string();
                if p.is_dir() {
                    summary.skipped_files.push(SkippedFile {
                        file: name,
                        reason: "a directory".into(),
                    });
                    continue;
                }
                match discover::classify(&p) {
                    What::NdjsonOfBundles => {
                        summary.files_read += 1;
                        ndjson_units(&p, &mut pending, batch, &mut |pending| {
                            flush(pending, &mut w, &mut summary)
                        })?;
                    }
                    What::Bundle => {
                        summary.files_read += 1;
                        pending.push(Unit::File(p));
                    }
                    What::Resource(_) => {
                        summary.files_read += 1;
                        group.push(p);
                    }
                    What::Unreadable(reason) => pending.push(Unit::NotFhir(p, reason)),
                    What::NotJson => summary.skipped_files.push(SkippedFile {
                        file: name,
                        reason: "not a .json or .ndjson file".into(),
                    }),
                }
                if pending.len() >= batch {
                    flush(&mut pending, &mut w, &mut summary)?;
                }
            }
            // After the directory's Bundles, in one unit: references may point anywhere in it.
            if !group.is_empty() {
                pending.push(Unit::Group(input.clone(), group));
            }
            continue;
        }
        // A file named on the command line is always read; what is wrong with it is reported.
        if !path.is_file() {
            return Err(RunError::Input(
                input.clone(),
                io::Error::new(io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        summary.files_read += 1;
        if discover::is_ndjson_name(path) {
            ndjson_units(path, &mut pending, batch, &mut |pending| {
                flush(pending, &mut w, &mut summary)
            })?;
        } else {
            pending.push(Unit::File(path.to_path_buf()));
        }
        if pending.len() >= batch {
            flush(&mut pending, &mut w, &mut summary)?;
        }
    }
    flush(&mut pending, &mut w, &mut summary)?;
    if cfg.mode == Mode::Screen {
        w.out
            .write_all(output::footer(format))
            .map_err(RunError::Output)?;
    }
    w.out.flush().map_err(RunError::Output)?;
    let secs = start.elapsed().as_secs_f64();
    summary.elapsed_seconds = secs;
    if secs > 0.0 {
        summary.patients_per_second = summary.patients as f64 / secs;
        summary.mb_per_second = summary.bytes as f64 / 1e6 / secs;
    }
    Ok(summary)
}

fn ndjson_units(
    path: &Path,
    pending: &mut Vec<Unit>,
    batch: usize,
    flush: &mut dyn FnMut(&mut Vec<Unit>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let name = path.display().to_string();
    let mut reader = discover::open(path).map_err(|e| RunError::Input(name.clone(), e))?;
    let mut n = 0u64;
    loop {
        let mut buf = Vec::new();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| RunError::Input(name.clone(), e))?;
        if read == 0 {
            break;
        }
        n += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        pending.push(Unit::Line(name.clone(), n, buf));
        if pending.len() >= batch {
            flush(pending)?;
        }
    }
    Ok(())
}

fn unit(engine: &Engine, mapper: &Mapper<'_>, cfg: &RunConfig, u: Unit) -> (Vec<Rec>, Tally) {
    let mut tally = Tally::default();
    let (input, line, bytes) = match u {
        Unit::Group(dir, paths) => {
            let (facts, bytes) = discover::read_group(mapper, &dir, &paths);
            tally.bytes = bytes;
            return records(engine, mapper, cfg, &dir, 1, &facts, tally);
        }
        Unit::NotFhir(p, reason) => {
            tally.file_errors += 1;
            let message = format!("not FHIR input: {reason}");
            return (vec![file_error(cfg, &p, "not_fhir_input", message)], tally);
        }
        Unit::File(p) => {
            let name = p.display().to_string();
            match discover::read(&p) {
                Ok(b) => (name, 1, b),
                Err(e) => {
                    tally.file_errors += 1;
                    let message = format!("cannot read the file: {e}");
                    return (vec![file_error(cfg, &p, "io", message)], tally);
                }
            }
        }
        Unit::Line(name, n, b) => (name, n, b),
        Unit::Stdin(b) => ("-".to_owned(), 1, b),
    };
    tally.bytes = bytes.len() as u64;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            tally.file_errors += 1;
            let prob = FhirProblem {
                code: "invalid_json",
                message: format!(
                    "not JSON: {}",
                    medscreen_core::diagnostic::serde_fault(&e).reason
                ),
                input: Some(input.clone()),
                line: Some(line),
                pointer: String::new(),
                resource: None,
            };
            return (vec![error_record(cfg, &input, line, None, &[prob])], tally);
        }
    };
    let facts = read_document(mapper, &value, &input, line);
    drop(value);
    records(engine, mapper, cfg, &input, line, &facts, tally)
}

/// The result for a whole file that could not be read as FHIR.
fn file_error(cfg: &RunConfig, path: &Path, code: &'static str, message: String) -> Rec {
    let name = path.display().to_string();
    let prob = FhirProblem {
        code,
        message,
        input: Some(name.clone()),
        line: None,
        pointer: String::new(),
        resource: None,
    };
    error_record(cfg, &name, 1, None, &[prob])
}

/// The results of a Bundle (or a group of resources): its own problems, then one per patient.
fn records(
    engine: &Engine,
    mapper: &Mapper<'_>,
    cfg: &RunConfig,
    input: &str,
    line: u64,
    facts: &BundleFacts,
    mut tally: Tally,
) -> (Vec<Rec>, Tally) {
    let mut records = Vec::new();
    if !facts.problems.is_empty() {
        tally.file_errors += 1;
        records.push(error_record(cfg, input, line, None, &facts.problems));
    }
    for f in &facts.patients {
        records.push(patient_record(engine, mapper, cfg, f, &mut tally));
    }
    (records, tally)
}

fn patient_record(
    engine: &Engine,
    mapper: &Mapper<'_>,
    cfg: &RunConfig,
    f: &PatientFacts,
    tally: &mut Tally,
) -> Rec {
    tally.patients += 1;
    let outcome = mapper.profile(f);
    match outcome {
        Outcome::Invalid(problems) => {
            tally.invalid += 1;
            error_record(cfg, &f.input, f.line, Some(&f.id), &problems)
        }
        Outcome::Skipped(reason) => {
            tally.skipped += 1;
            skipped_record(cfg, &f.input, f.line, &f.id, &reason)
        }
        Outcome::Profile {
            profile,
            provenance,
        } => match engine.validate_value(&profile) {
            Err(rejection) => {
                tally.invalid += 1;
                let problems: Vec<FhirProblem> = rejection
                    .problems
                    .iter()
                    .map(|p| FhirProblem {
                        code: "invalid_profile",
                        message: format!(
                            "the profile mapped from FHIR is invalid at `{}`: {} (please report this)",
                            p.pointer, p.message
                        ),
                        input: Some(f.input.clone()),
                        line: Some(f.line),
                        pointer: p.pointer.clone(),
                        resource: Some(format!("Patient/{}", f.id)),
                    })
                    .collect();
                error_record(cfg, &f.input, f.line, Some(&f.id), &problems)
            }
            Ok(_) if cfg.mode == Mode::Profile => {
                let mut b = serde_json::to_vec(&profile).unwrap_or_default();
                b.push(b'\n');
                Rec::Out(b)
            }
            Ok(p) => {
                let s = engine.screen(&p);
                let kept: Vec<_> = s
                    .cautions
                    .iter()
                    .filter(|c| c.severity >= cfg.output.min_severity)
                    .collect();
                if kept.is_empty() {
                    tally.clear += 1;
                } else {
                    tally.flagged += 1;
                }
                for c in &kept {
                    *tally.by_severity.entry(c.severity.as_str()).or_default() += 1;
                    *tally.by_rule.entry(c.rule.to_owned()).or_default() += 1;
                    if cfg.fail_on.is_some_and(|t| c.severity >= t) {
                        tally.fail_on_reached = true;
                    }
                }
                Rec::Out(super::output::screened(&cfg.output, f, &s, &provenance))
            }
        },
    }
}

fn error_record(
    cfg: &RunConfig,
    input: &str,
    line: u64,
    id: Option<&str>,
    problems: &[FhirProblem],
) -> Rec {
    if cfg.mode == Mode::Profile {
        // Profiles go to the output; what could not be mapped goes to standard error, in order.
        let mut e = String::new();
        for p in problems {
            let _ = writeln!(
                e,
                "{input}:{line}: {}{} [{}]{}",
                id.map(|i| format!("patient `{i}`: ")).unwrap_or_default(),
                p.message,
                p.code,
                if p.pointer.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", p.pointer)
                }
            );
        }
        return Rec::Err(e);
    }
    Rec::Out(super::output::invalid(
        &cfg.output,
        input,
        line,
        id,
        problems,
    ))
}

fn skipped_record(cfg: &RunConfig, input: &str, line: u64, id: &str, reason: &str) -> Rec {
    if cfg.mode == Mode::Profile {
        return Rec::Err(format!(
            "{input}:{line}: patient `{id}` skipped: {reason}\n"
        ));
    }
    Rec::Out(super::output::skipped(&cfg.output, input, line, id, reason))
}
