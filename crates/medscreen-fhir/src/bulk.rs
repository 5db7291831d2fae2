//! A FHIR Bulk Data export: one NDJSON file (or several, `Patient.000.ndjson`...) per resource type,
//! joined by patient reference.
//!
//! Memory stays proportional to the facts kept per patient, not to the resources: every file is read
//! line by line, each line is parsed (in parallel, a bounded chunk at a time), reduced by the
//! [`Mapper`] to the few facts the value sets select, and dropped. What stays is one [`PatientFacts`]
//! per patient id (a few hundred bytes, plus one small record per matched condition or active
//! medication) and one small record per `Medication` resource, so that `medicationReference` can be
//! resolved. `Medication` files are read first, then `Patient`, then the rest, so references never
//! need a second pass.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Value;

use super::bundle::{reference_key, subject_reference};
use super::discover;
use super::mapping::{FhirProblem, Loc, Mapper, MedInfo, PatientFacts, med_info, resource_name};
use super::resource_types::{is_patient_record, is_read};

/// A directory's files, sorted into what we read and what we skip.
#[derive(Debug, Default)]
pub struct Export {
    /// `(resource type, file)` for each NDJSON file of a type we read, in reading order.
    pub files: Vec<(String, PathBuf)>,
    /// Files we do not read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files of the export we should read but cannot open: a dangling symbolic link, a symbolic link
    /// loop, no permission, a directory or another non-file where an NDJSON file is expected, with
    /// their resource type (none for an entry the directory could not list) and the reason. Each
    /// becomes an error result naming the file; the rest of the export is read.
    pub unreadable: Vec<(Option<String>, PathBuf, String)>,
}

/// The resource type a Bulk file name stands for (`Patient.ndjson`, `Patient.000.ndjson`, gzipped
/// `Patient.000.ndjson.gz`), if any.
pub fn resource_type_of(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let stem = stem.strip_suffix(".ndjson")?;
    let kind = stem.split('.').next()?;
    (kind.len() > 1
        && kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric()))
    .then_some(kind)
}

/// Whether `dir` looks like a Bulk export: it has an NDJSON file named for a resource type we read.
pub fn is_export(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .any(|e| resource_type_of(&e.path()).is_some_and(is_read))
    })
}

/// Sort the files of an export directory. Only a directory that cannot be listed at all is an
/// error; a file in it that cannot be read is put in [`Export::unreadable`].
pub fn scan(dir: &Path) -> std::io::Result<Export> {
    let mut ex = Export::default();
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => ex.unreadable.push((
                None,
                dir.to_path_buf(),
                format!("an entry of the export directory could not be listed: {e}"),
            )),
        }
    }
    paths.sort();
    for p in paths {
        let read_type = resource_type_of(&p)
            .filter(|t| is_read(t))
            .map(str::to_owned);
        // `metadata` follows symbolic links: what matters is what a read would open.
        match (std::fs::metadata(&p), read_type) {
            (Ok(m), Some(t)) if m.is_file() => ex.files.push((t, p)),
            (Ok(m), Some(t)) => {
                let what = if m.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                };
                let reason = format!("{what} where a `{t}` NDJSON file is expected");
                ex.unreadable.push((Some(t), p, reason));
            }
            (Err(e), Some(t)) => {
                let reason = unreadable_reason(&p, &e);
                ex.unreadable.push((Some(t), p, reason));
            }
            (Ok(m), None) if m.is_dir() => ex.skipped.push((p, "a directory".into())),
            (_, None) => match resource_type_of(&p) {
                Some(t) => {
                    let reason = format!("`{t}` resources are not read");
                    ex.skipped.push((p, reason));
                }
                None => ex
                    .skipped
                    .push((p, "not an NDJSON file named for a resource type".into())),
            },
        }
    }
    let rank = |t: &str| match t {
        "Medication" => 0,
        "Patient" => 1,
        _ => 2,
    };
    ex.files.sort_by_key(|(t, p)| (rank(t), p.clone()));
    Ok(ex)
}

/// Patients of an export, in order: those with a Patient resource in file order, then ids that other
/// resources referred to without a Patient (each an error), sorted.
#[derive(Debug, Default)]
pub struct BulkFacts {
    /// The patients.
    pub patients: Vec<PatientFacts>,
    /// Problems that belong to no patient (a line that is not JSON, a resource without a subject).
    pub problems: Vec<FhirProblem>,
    /// Bytes read.
    pub bytes: u64,
}

const CHUNK_LINES: usize = 2048;

/// Why a file cannot be opened, naming a dangling symbolic link as one (the system error alone says
/// "No such file or directory" of a file that is listed).
fn unreadable_reason(path: &Path, e: &std::io::Error) -> String {
    let dangling = e.kind() == std::io::ErrorKind::NotFound
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if dangling {
        "cannot be read: a symbolic link to a file that does not exist".into()
    } else {
        format!("cannot be read: {e}")
    }
}

fn io_problem(input: &str, line: u64, message: String) -> FhirProblem {
    FhirProblem {
        code: "io",
        message,
        input: Some(input.to_owned()),
        line: Some(line),
        pointer: String::new(),
        resource: None,
    }
}

/// Read an export. A file that cannot be opened or read to the end is a problem naming it (code
/// `io`) and the rest is read; what it would have said is then unknown, not absent: a lost
/// `Condition` file makes every patient's conditions unknown, a lost `MedicationRequest`,
/// `MedicationStatement` or `Medication` file their medications. Never fails (the `Result` is kept
/// for callers).
pub fn read_export(mapper: &Mapper<'_>, ex: &Export) -> std::io::Result<BulkFacts> {
    let mut out = BulkFacts::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut meds: HashMap<String, MedInfo> = HashMap::new();
    let conditions_known = ex.files.iter().any(|(t, _)| t == "Condition");
    let medications_known = ex
        .files
        .iter()
        .any(|(t, _)| t == "MedicationRequest" || t == "MedicationStatement");
    let mut lost: Vec<&str> = Vec::new();
    for (t, path, reason) in &ex.unreadable {
        out.problems
            .push(io_problem(&path.display().to_string(), 1, reason.clone()));
        lost.extend(t.as_deref());
    }
    for (kind, path) in &ex.files {
        let input = path.display().to_string();
        let mut reader = match discover::open(path) {
            Ok(f) => f,
            Err(e) => {
                out.problems
                    .push(io_problem(&input, 1, unreadable_reason(path, &e)));
                lost.push(kind);
                continue;
            }
        };
        let mut line_no = 0u64;
        let mut cut_off = false;
        loop {
            let mut lines: Vec<(u64, Vec<u8>)> = Vec::with_capacity(CHUNK_LINES);
            while lines.len() < CHUNK_LINES && !cut_off {
                let mut buf = Vec::new();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        out.problems.push(io_problem(
                            &input,
                            line_no + 1,
                            format!("the file could not be read to the end: {e}"),
                        ));
                        lost.push(kind);
                        cut_off = true;
                        break;
                    }
                }
                line_no += 1;
                out.bytes += buf.len() as u64;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                lines.push((line_no, buf));
            }
            if lines.is_empty() {
                break;
            }
            let parsed: Vec<(u64, Result<Value, String>)> = lines
                .into_par_iter()
                .map(|(n, b)| {
                    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&b);
                    (
                        n,
                        serde_json::from_slice(b)
                            .map_err(|e| medscreen_core::diagnostic::serde_fault(&e).reason),
                    )
                })
                .collect();
            for (n, value) in parsed {
                let loc = Loc {
                    input: &input,
                    line: n,
                    base: String::new(),
                };
                let r = match value {
                    Ok(v) => v,
                    Err(e) => {
                        out.problems.push(loc.problem(
                            "invalid_json",
                            "",
                            None,
                            format!("the line is not JSON: {e}"),
                        ));
                        continue;
                    }
                };
                apply(
                    mapper,
                    &r,
                    &loc,
                    &mut out,
                    &mut index,
                    &mut meds,
                    (conditions_known, medications_known),
                );
            }
        }
    }
    let conditions_lost = lost.contains(&"Condition");
    let medications_lost = lost.iter().any(|t| {
        matches!(
            *t,
            "MedicationRequest" | "MedicationStatement" | "Medication"
        )
    });
    for p in &mut out.patients {
        p.conditions_known &= !conditions_lost;
        p.medications_known &= !medications_lost;
    }
    // Referred to but never defined: sorted after the others, each an error.
    out.patients[..].sort_by_key(|p| !p.has_patient);
    let first_orphan = out
        .patients
        .iter()
        .position(|p| !p.has_patient)
        .unwrap_or(out.patients.len());
    if let Some(orphans) = out.patients.get_mut(first_orphan..) {
        orphans.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(out)
}

#[expect(
    clippy::indexing_slicing,
    reason = "`facts_for` returns the index of the patient it found or just pushed"
)]
fn apply(
    mapper: &Mapper<'_>,
    r: &Value,
    loc: &Loc<'_>,
    out: &mut BulkFacts,
    index: &mut HashMap<String, usize>,
    meds: &mut HashMap<String, MedInfo>,
    known: (bool, bool),
) {
    let kind = match r.get("resourceType") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            out.problems.push(loc.problem(
                "type_mismatch",
                "/resourceType",
                None,
                "`resourceType` is not a string".into(),
            ));
            return;
        }
        None => {
            out.problems.push(loc.problem(
                "missing_resource_type",
                "/resourceType",
                None,
                "the line has no `resourceType`".into(),
            ));
            return;
        }
    };
    let name = resource_name(r);
    let mut facts_for = |id: &str, out: &mut BulkFacts| -> usize {
        *index.entry(id.to_owned()).or_insert_with(|| {
            let mut f = PatientFacts::new(id, loc.input, loc.line);
            f.conditions_known = known.0;
            f.medications_known = known.1;
            out.patients.push(f);
            out.patients.len() - 1
        })
    };
    match kind {
        "Medication" => {
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                meds.insert(format!("Medication/{id}"), med_info(r, &name));
            }
        }
        "Patient" => {
            let Some(id) = r
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                out.problems.push(loc.problem(
                    "missing_field",
                    "/id",
                    Some(name),
                    "a Patient has no `id`, so its result could not be named".into(),
                ));
                return;
            };
            let i = facts_for(id, out);
            if out.patients[i].has_patient {
                out.problems.push(loc.problem(
                    "duplicate_patient",
                    "/id",
                    Some(name),
                    "this Patient id was already read; the later resource is ignored".into(),
                ));
                return;
            }
            mapper.patient(r, loc, &mut out.patients[i]);
        }
        kind if is_patient_record(kind) => {
            let target = match subject_reference(r) {
                Err((rel, message)) => {
                    out.problems
                        .push(loc.problem("type_mismatch", rel, Some(name), message));
                    return;
                }
                Ok(None) => {
                    out.problems.push(loc.problem(
                        "missing_field",
                        "/subject",
                        Some(name),
                        format!("the {kind} has no `subject`"),
                    ));
                    return;
                }
                Ok(Some(t)) => t,
            };
            let key = reference_key(target);
            let id = key
                .strip_prefix("Patient/")
                .or_else(|| key.strip_prefix("urn:uuid:"));
            let Some(id) = id.filter(|s| !s.is_empty()) else {
                return; // A Group or another subject: not a patient's record.
            };
            let i = facts_for(id, out);
            let resolve = |reference: &str| meds.get(&reference_key(reference)).cloned();
            mapper.resource(r, kind, loc, &mut out.patients[i], &resolve);
        }
        _ => {}
    }
}
