//! Running FHIR input through the engine: find the inputs, read them in parallel, write one result per
//! patient in a deterministic order, and count.
//!
//! This is only the FHIR-specific part: the inputs are cut into units (one Bundle file, one line of an
//! NDJSON file of Bundles, or a slice of the patients of a Bulk export read by [`super::bulk`]) and each
//! patient is mapped to a profile. The units run on the core's ordered parallel driver
//! ([`medscreen_core::driver`]), so memory is bounded and the output is the same at any thread count;
//! results are written by the core printers (through the `output` module) and screened patients counted
//! by the core's [`ScreenTally`]. With several packs ([`Mapper::with_packs`]) a patient's resources are
//! read once, into each pack's facts, and each pack's profile is screened by that pack's engine; the
//! patient gets one result with a screening per pack, and the summary counts each pack (`packs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::bulk;
use super::bundle::{BundleFacts, read_document};
use super::discover::{self, What};
use super::mapping::{FhirProblem, Mapper, Outcome, PatientFacts};
use super::output::Provenance;
use medscreen_core::Severity;
use medscreen_core::batch::Observer;
use medscreen_core::batch::{PackSummary, add_counts};
use medscreen_core::driver::{self, Feed};
use medscreen_core::engine::Engine;
use medscreen_core::engine::Rejection;
use medscreen_core::output::{
    Annotate, Format, OutputOptions, Reported, ReportedPacks, Stream, summary,
};
use medscreen_core::tally::ScreenTally;

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
    /// Given every result as a worker formats it (not in input order), with the profile screened when
    /// there is one (`screen --report`).
    pub observer: Option<Arc<dyn Observer>>,
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
    /// Cautions by rule (with several packs, every pack's added up).
    pub cautions_by_rule: BTreeMap<String, u64>,
    /// With several packs, each pack's counts, in the packs' order, as the native summary has them
    /// (absent with one pack; `clear` and `flagged` above are then of patients, flagged when any pack
    /// flagged them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<PackSummary>,
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
    fn add(&mut self, t: &Tally) {
        self.patients += t.patients;
        self.skipped += t.skipped;
        self.invalid += t.invalid;
        self.file_errors += t.file_errors;
        self.bytes += t.bytes;
    }

    /// Take the counts of screened patients from `screened`, screened through `mapper`'s packs.
    fn screened(&mut self, screened: &ScreenTally, mapper: &Mapper<'_>) {
        self.clear = screened.clear;
        self.flagged = screened.flagged;
        self.fail_on_reached = screened.fail_on_reached;
        self.cautions_by_severity = screened.cautions_by_severity();
        if mapper.several() {
            // Each pack screens with its own engine, whose first screening pack is that pack.
            let packs = mapper
                .packs()
                .filter_map(|m| m.engine().screening_packs().next());
            self.packs = screened.pack_summaries_of(packs);
            for p in &self.packs {
                add_counts(&mut self.cautions_by_rule, &p.cautions_by_rule);
            }
        } else {
            self.cautions_by_rule = screened.cautions_by_rule(mapper.engine().rules());
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
        if !self.packs.is_empty() {
            t.push_str(&summary::packs_lines(&self.packs));
        } else if let Some(line) = summary::cautions_line(&self.cautions_by_severity) {
            t.push_str(&line);
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

/// What a unit adds to the summary; screened patients are counted by the core's [`ScreenTally`].
#[derive(Debug, Default)]
struct Tally {
    patients: u64,
    skipped: u64,
    invalid: u64,
    file_errors: u64,
    bytes: u64,
    screened: ScreenTally,
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
    /// What a Bulk export could not attribute to a patient (each problem is one result), and the bytes
    /// the export holds.
    ExportProblems(String, Vec<FhirProblem>, u64),
    /// Patients of a Bulk export.
    Patients(Vec<PatientFacts>),
}

/// Patients of a Bulk export per unit: enough to amortise a unit, few enough to spread over the workers.
const PATIENTS_PER_UNIT: usize = 64;

/// One result: bytes for the output, or (for `fhir-profile`) a line for standard error.
enum Rec {
    Out(Vec<u8>),
    Err(String),
}

/// The results of one unit, in order, and what they add to the summary.
struct Done {
    records: Vec<Rec>,
    tally: Tally,
}

/// The writer's side: results in order to the output (and, for `fhir-profile`, standard error).
struct Writer<'w> {
    out: Option<Stream<'w>>,
    error: Option<io::Error>,
    stop: &'w AtomicBool,
    tally: Tally,
}

impl Writer<'_> {
    fn done(&mut self, d: Done) {
        for r in &d.records {
            let Some(out) = self.out.as_mut().filter(|_| self.error.is_none()) else {
                break;
            };
            let written = match r {
                Rec::Out(bytes) => out.write(bytes),
                Rec::Err(e) => {
                    let _ = write!(io::stderr(), "{e}");
                    Ok(())
                }
            };
            if let Err(e) = written {
                self.stop.store(true, Ordering::Relaxed);
                self.error = Some(e);
            }
        }
        let t = &mut self.tally;
        t.patients += d.tally.patients;
        t.skipped += d.tally.skipped;
        t.invalid += d.tally.invalid;
        t.file_errors += d.tally.file_errors;
        t.bytes += d.tally.bytes;
        t.screened.merge(&d.tally.screened);
    }
}

/// Screen (or map) every input with the engine `mapper` is bound to ([`crate::Binding::mapper`]).
/// Results go to `out`; the summary is returned.
pub fn run(
    mapper: &Mapper<'_>,
    inputs: &[String],
    cfg: &RunConfig,
    out: &mut (dyn Write + Send),
) -> Result<FhirSummary, RunError> {
    let start = Instant::now();
    let engine = mapper.engine();
    // The result shape follows the packs the mapper screens with, as the native batch's follows its
    // engine's.
    let cfg = &RunConfig {
        output: OutputOptions {
            several_packs: mapper.several(),
            ..cfg.output.clone()
        },
        ..cfg.clone()
    };
    let mut summary = FhirSummary {
        inputs: inputs.to_vec(),
        as_of: mapper.options().as_of.to_string(),
        ..FhirSummary::default()
    };
    // `fhir-profile` writes one profile per line, whatever the output options.
    let format = if cfg.mode == Mode::Profile {
        Format::Ndjson
    } else {
        cfg.output.format
    };
    let stop = AtomicBool::new(false);
    let mut writer = Writer {
        out: Some(
            Stream::begin(
                out,
                &OutputOptions {
                    format,
                    ..cfg.output.clone()
                },
            )
            .map_err(RunError::Output)?,
        ),
        error: None,
        stop: &stop,
        tally: Tally::default(),
    };
    let mut input_error = None;
    driver::run(
        cfg.threads,
        |feed| {
            if let Err(e) = produce(mapper, inputs, cfg, &stop, &mut summary, feed) {
                input_error = Some(e);
            }
        },
        |u| unit(engine, mapper, cfg, u),
        |d| writer.done(d),
    );
    let Writer {
        out, error, tally, ..
    } = writer;
    if let Some(e) = error {
        return Err(RunError::Output(e));
    }
    if let Some(e) = input_error {
        return Err(e);
    }
    summary.add(&tally);
    summary.screened(&tally.screened, mapper);
    if let Some(mut out) = out {
        out.finish().map_err(RunError::Output)?;
    }
    let secs = start.elapsed().as_secs_f64();
    summary.elapsed_seconds = secs;
    if secs > 0.0 {
        summary.patients_per_second = summary.patients as f64 / secs;
        summary.mb_per_second = summary.bytes as f64 / 1e6 / secs;
    }
    Ok(summary)
}

/// Find the inputs and cut them into units, in order, counting the files read and skipped. Stops at an
/// input that cannot be read, or when the output is gone.
fn produce(
    mapper: &Mapper<'_>,
    inputs: &[String],
    cfg: &RunConfig,
    stop: &AtomicBool,
    summary: &mut FhirSummary,
    feed: &mut Feed<'_, (), Unit>,
) -> Result<(), RunError> {
    let batch = cfg.threads.max(1) * 4;
    let mut pending: Vec<Unit> = Vec::new();
    // Hand what is pending to the workers.
    let mut flush = |pending: &mut Vec<Unit>| {
        for u in pending.drain(..) {
            feed.push(u);
        }
        if stop.load(Ordering::Relaxed) {
            // The output is gone; the writer reports why.
            return Err(RunError::Output(io::Error::other("the output was closed")));
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
                flush(&mut pending)?;
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
                pending.push(Unit::ExportProblems(
                    input.clone(),
                    facts.problems,
                    facts.bytes,
                ));
                let mut patients = facts.patients.into_iter();
                loop {
                    let unit: Vec<PatientFacts> =
                        patients.by_ref().take(PATIENTS_PER_UNIT).collect();
                    if unit.is_empty() {
                        break;
                    }
                    pending.push(Unit::Patients(unit));
                    if pending.len() >= batch {
                        flush(&mut pending)?;
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
                        ndjson_units(&p, &mut pending, batch, &mut flush)?;
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
                    flush(&mut pending)?;
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
            ndjson_units(path, &mut pending, batch, &mut flush)?;
        } else {
            pending.push(Unit::File(path.to_path_buf()));
        }
        if pending.len() >= batch {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)
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

fn unit(engine: &Engine, mapper: &Mapper<'_>, cfg: &RunConfig, u: Unit) -> Done {
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
            let records = vec![file_error(cfg, &p, "not_fhir_input", message)];
            return Done { records, tally };
        }
        Unit::File(p) => {
            let name = p.display().to_string();
            match discover::read(&p) {
                Ok(b) => (name, 1, b),
                Err(e) => {
                    tally.file_errors += 1;
                    let message = format!("cannot read the file: {e}");
                    let records = vec![file_error(cfg, &p, "io", message)];
                    return Done { records, tally };
                }
            }
        }
        Unit::Line(name, n, b) => (name, n, b),
        Unit::Stdin(b) => ("-".to_owned(), 1, b),
        Unit::ExportProblems(input, problems, bytes) => {
            tally.bytes = bytes;
            tally.file_errors = problems.len() as u64;
            let records = problems
                .iter()
                .map(|p| {
                    error_record(
                        cfg,
                        p.input.as_deref().unwrap_or(&input),
                        p.line.unwrap_or(0),
                        None,
                        std::slice::from_ref(p),
                    )
                })
                .collect();
            return Done { records, tally };
        }
        Unit::Patients(patients) => {
            let records = patients
                .iter()
                .map(|f| patient_record(engine, mapper, cfg, f, &mut tally))
                .collect();
            return Done { records, tally };
        }
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
            let records = vec![error_record(cfg, &input, line, None, &[prob])];
            return Done { records, tally };
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
) -> Done {
    let mut records = Vec::new();
    if !facts.problems.is_empty() {
        tally.file_errors += 1;
        records.push(error_record(cfg, input, line, None, &facts.problems));
    }
    for f in &facts.patients {
        records.push(patient_record(engine, mapper, cfg, f, &mut tally));
    }
    Done { records, tally }
}

fn patient_record(
    engine: &Engine,
    mapper: &Mapper<'_>,
    cfg: &RunConfig,
    f: &PatientFacts,
    tally: &mut Tally,
) -> Rec {
    tally.patients += 1;
    let mut outcomes = mapper.profiles(f);
    if outcomes.len() > 1 {
        return packs_record(mapper, cfg, f, &outcomes, tally);
    }
    let Some(outcome) = outcomes.pop() else {
        return Rec::Out(Vec::new());
    };
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
                let problems = rejected(f, &rejection);
                error_record(cfg, &f.input, f.line, Some(&f.id), &problems)
            }
            Ok(_) if cfg.mode == Mode::Profile => {
                let mut b = serde_json::to_vec(&profile).unwrap_or_default();
                b.push(b'\n');
                Rec::Out(b)
            }
            Ok(p) => {
                let s = engine.screen(&p);
                let reported = Reported::new(&s, cfg.output.min_severity);
                tally.screened.add(&reported, cfg.fail_on);
                let mut buf = Vec::new();
                super::output::screened(&cfg.output, &mut buf, f, &s, &provenance);
                observe(cfg, &buf, Some(&p));
                Rec::Out(buf)
            }
        },
    }
}

/// A profile mapped from FHIR that the engine rejects: our bug, named as such.
fn rejected(f: &PatientFacts, rejection: &Rejection) -> Vec<FhirProblem> {
    rejection
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
        .collect()
}

/// The result of a patient screened by several packs: one profile per pack (`outcomes`, each a
/// [`Outcome::Profile`]), each screened by its pack's engine, written as one result with one screening
/// per pack, each with its own provenance. A profile an engine rejects makes the patient invalid, once.
/// (`fhir-profile` maps with one pack, so it never comes here.)
fn packs_record(
    mapper: &Mapper<'_>,
    cfg: &RunConfig,
    f: &PatientFacts,
    outcomes: &[Outcome],
    tally: &mut Tally,
) -> Rec {
    let mut profiles = Vec::with_capacity(outcomes.len());
    let mut provenances = Vec::with_capacity(outcomes.len());
    for (m, o) in mapper.packs().zip(outcomes) {
        let Outcome::Profile {
            profile,
            provenance,
        } = o
        else {
            continue;
        };
        match m.engine().validate_value(profile) {
            Ok(p) => profiles.push((m.engine(), p)),
            Err(rejection) => {
                tally.invalid += 1;
                let problems = rejected(f, &rejection);
                return error_record(cfg, &f.input, f.line, Some(&f.id), &problems);
            }
        }
        provenances.push(Provenance(provenance));
    }
    let screenings: Vec<_> = profiles.iter().map(|(e, p)| e.screen(p)).collect();
    tally.screened.add_packs(
        &ReportedPacks::new(&screenings, cfg.output.min_severity),
        cfg.fail_on,
    );
    let hooks: Vec<&dyn Annotate> = provenances.iter().map(|p| p as &dyn Annotate).collect();
    let mut buf = Vec::new();
    super::output::screened_packs(&cfg.output, &mut buf, f, &screenings, &hooks);
    // The report reads the patient's demographics, which every pack's profile has alike.
    observe(cfg, &buf, profiles.first().map(|(_, p)| p));
    Rec::Out(buf)
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
    let mut buf = Vec::new();
    super::output::invalid(&cfg.output, &mut buf, input, line, id, problems);
    observe(cfg, &buf, None);
    Rec::Out(buf)
}

fn skipped_record(cfg: &RunConfig, input: &str, line: u64, id: &str, reason: &str) -> Rec {
    if cfg.mode == Mode::Profile {
        return Rec::Err(format!(
            "{input}:{line}: patient `{id}` skipped: {reason}\n"
        ));
    }
    let mut buf = Vec::new();
    super::output::skipped(&cfg.output, &mut buf, input, line, id, reason);
    observe(cfg, &buf, None);
    Rec::Out(buf)
}

/// Hands a result to [`RunConfig::observer`], if any.
fn observe(cfg: &RunConfig, written: &[u8], profile: Option<&medscreen_core::Profile>) {
    if let Some(o) = &cfg.observer {
        o.result(written, profile);
    }
}
