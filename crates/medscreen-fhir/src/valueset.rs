//! Coded value sets: which FHIR codes fill which profile field, kept as data in `rules/valuesets/`.
//!
//! Like the rule pack, the sets are loaded and checked once, up front: each file against
//! `schemas/valueset.schema.json`, then each code against the pattern of its system, each cited source
//! against the file's `sources`, and no code twice in one list. Every problem is reported with its file
//! and JSON Pointer and the run refuses to start. The checked sets are compiled into hash indexes, so
//! matching a coding is one lookup (ICD-10-CM: one lookup per prefix length of the code).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use medscreen_core::error::{LoadError, LoadErrorCode, LoadErrors};
use medscreen_core::profile::CkdStage;

/// The value-set schema (`schemas/valueset.schema.json`).
pub const VALUESET_SCHEMA: &str = include_str!("../../../schemas/valueset.schema.json");

// `EMBEDDED`: every `rules/valuesets/*.json`, written by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/valuesets.rs"));

/// A code system we match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    /// ICD-10-CM, matched by prefix, dots ignored.
    Icd10Cm,
    /// SNOMED CT, exact.
    Snomed,
    /// LOINC (including answer codes `LA...`), exact.
    Loinc,
    /// RxNorm, exact.
    Rxnorm,
}

impl System {
    /// The system of a FHIR `Coding.system` URI, if it is one we match.
    pub fn from_uri(uri: &str) -> Option<System> {
        match uri {
            "http://hl7.org/fhir/sid/icd-10-cm" | "http://hl7.org/fhir/sid/icd-10-cm/" => {
                Some(System::Icd10Cm)
            }
            "http://snomed.info/sct" => Some(System::Snomed),
            "http://loinc.org" => Some(System::Loinc),
            "http://www.nlm.nih.gov/research/umls/rxnorm" => Some(System::Rxnorm),
            _ => None,
        }
    }

    /// The canonical FHIR `Coding.system` URI.
    pub fn uri(self) -> &'static str {
        match self {
            System::Icd10Cm => "http://hl7.org/fhir/sid/icd-10-cm",
            System::Snomed => "http://snomed.info/sct",
            System::Loinc => "http://loinc.org",
            System::Rxnorm => "http://www.nlm.nih.gov/research/umls/rxnorm",
        }
    }

    /// The system of a short name as value-set files write it (`loinc`).
    pub fn from_name(name: &str) -> Option<System> {
        match name {
            "icd10cm" => Some(System::Icd10Cm),
            "snomed" => Some(System::Snomed),
            "loinc" => Some(System::Loinc),
            "rxnorm" => Some(System::Rxnorm),
            _ => None,
        }
    }

    /// A short name for provenance (`snomed`, `icd10cm`...).
    pub fn name(self) -> &'static str {
        match self {
            System::Icd10Cm => "icd10cm",
            System::Snomed => "snomed",
            System::Loinc => "loinc",
            System::Rxnorm => "rxnorm",
        }
    }

    fn valid_code(self, code: &str) -> bool {
        let b = code.as_bytes();
        match self {
            System::Icd10Cm => {
                let core: Vec<u8> = b.iter().copied().filter(|&c| c != b'.').collect();
                core.len() <= 7
                    && core.first().is_some_and(u8::is_ascii_uppercase)
                    && core
                        .iter()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    && b.iter().filter(|&&c| c == b'.').count() <= 1
            }
            System::Snomed => (6..=18).contains(&b.len()) && b.iter().all(u8::is_ascii_digit),
            System::Rxnorm => (1..=10).contains(&b.len()) && b.iter().all(u8::is_ascii_digit),
            System::Loinc => {
                let body = code.strip_prefix("LA").unwrap_or(code);
                let mut parts = body.split('-');
                matches!(
                    (parts.next(), parts.next(), parts.next()),
                    (Some(n), Some(c), None)
                        if (1..=7).contains(&n.len())
                            && n.bytes().all(|x| x.is_ascii_digit())
                            && c.len() == 1
                            && c.bytes().all(|x| x.is_ascii_digit())
                )
            }
        }
    }
}

/// Normalise a code for lookup: ICD-10-CM upper-cased without dots, others trimmed.
pub fn normalize(system: System, code: &str) -> String {
    match system {
        System::Icd10Cm => code
            .trim()
            .chars()
            .filter(|&c| c != '.')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        _ => code.trim().to_owned(),
    }
}

/// The shared patient facts FHIR input fills from value sets, by name. Which facts a FHIR record
/// gives, and how, is the mapping's knowledge (conditions, observations, the order's reason); a fact
/// outside this list is left unknown.
pub const FILLABLE: [&str; 16] = [
    "pregnant",
    "breastfeeding",
    "seizure_history",
    "kidney_disease",
    "dialysis",
    "egfr",
    "stroke_history",
    "liver_disease",
    "heart_disease",
    "diabetes",
    "psychiatric_disorder",
    "alcohol_use",
    "autonomic_dysreflexia",
    "respiratory_impairment",
    "hypotension",
    "indication",
];

/// What a value set fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// A profile fact, one of [`FILLABLE`].
    Field(&'static str),
    /// The drug being screened (orders of the pack's drug).
    Subject,
}

/// Whether an observation is an eGFR or a creatinine clearance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Estimated GFR.
    Egfr,
    /// Creatinine clearance, used as a proxy.
    Crcl,
}

/// One code of a set.
#[derive(Debug, Clone, Deserialize)]
pub struct Code {
    /// `icd10cm`, `snomed`, `loinc` or `rxnorm`.
    pub system: String,
    /// The code as written in the file.
    pub code: String,
    /// Its display.
    pub display: String,
    /// `V`, `V2`, `M` or `D` (see the schema).
    pub evidence: String,
    /// Source id in the file's `sources`.
    pub source: String,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// CKD stage (`1`, `2`, `3a`, `3b`, `4`, `5`), checked by the schema.
    #[serde(default)]
    pub stage: Option<CkdStage>,
    /// Indication text.
    #[serde(default)]
    pub label: Option<String>,
    /// eGFR or creatinine clearance.
    #[serde(default)]
    pub measure: Option<String>,
    /// For answer codes: what the answer means (`null`: unknown). Absent for other codes.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Option<bool>>,
    /// Strength in mg per dose unit.
    #[serde(default)]
    pub strength_mg: Option<f64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize)]
struct ObservationPart {
    codes: Vec<Code>,
    #[serde(default)]
    answers: Vec<Code>,
    #[serde(default)]
    units: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct MedicationName {
    name: String,
    source: String,
}

#[derive(Debug, Clone, Deserialize)]
struct MedicationPart {
    codes: Vec<Code>,
    #[serde(default)]
    names: Vec<MedicationName>,
    #[serde(default)]
    daily_dose_fact: Option<String>,
    #[serde(default)]
    other_route: Option<OtherRoutePart>,
}

#[derive(Debug, Clone, Deserialize)]
struct OtherRoutePart {
    label: String,
    codes: Vec<Code>,
    terms: Vec<MedicationName>,
}

/// A route that makes an order of the screened drug not the order screened (intrathecal, for
/// baclofen).
#[derive(Debug, Clone)]
pub struct OtherRoute {
    /// The whole word a comedication's name carries (`intrathecal`).
    pub label: String,
    /// Lower-cased whole-word terms (`intrathecal`, `gablofen`, `lioresal intrathecal`).
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
struct ValueSetFile {
    id: String,
    field: String,
    title: String,
    #[serde(default)]
    history: bool,
    sources: serde_json::Map<String, Value>,
    #[serde(default)]
    conditions: Vec<Code>,
    #[serde(default)]
    observation: Option<ObservationPart>,
    #[serde(default)]
    medication: Option<MedicationPart>,
}

/// One loaded value set.
#[derive(Debug, Clone)]
pub struct ValueSet {
    /// Its id (`seizure`).
    pub id: String,
    /// The file it came from.
    pub file: String,
    /// What it fills.
    pub target: Target,
    /// Title.
    pub title: String,
    /// Inactive conditions count too.
    pub history: bool,
    /// Condition codes.
    pub conditions: Vec<Code>,
    /// Observation codes.
    pub observation_codes: Vec<Code>,
    /// Answer codes.
    pub answers: Vec<Code>,
    /// Accepted units, lower-cased.
    pub units: Vec<String>,
    /// Medication codes.
    pub medication_codes: Vec<Code>,
    /// Lower-cased names found in medication text.
    pub medication_names: Vec<String>,
    /// A route by which an order of the drug is not the one screened.
    pub other_route: Option<OtherRoute>,
    /// Its route codes (`medication.other_route.codes`).
    pub route_codes: Vec<Code>,
    /// For the subject set: the profile fact the daily dose of the order screened fills.
    pub daily_dose_fact: Option<String>,
}

/// Which list of a set a code is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    /// `conditions`.
    Condition,
    /// `observation.codes`.
    Observation,
    /// `observation.answers`.
    Answer,
    /// `medication.codes`.
    Medication,
    /// `medication.other_route.codes`.
    Route,
}

/// A code found in a set: the set and the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index of the set.
    pub set: usize,
    /// Index of the code in its list.
    pub entry: usize,
}

/// Every value set, compiled. Immutable and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct ValueSets {
    sets: Vec<ValueSet>,
    index: HashMap<(List, System, String), Vec<Hit>>,
    longest_icd: usize,
}

impl ValueSets {
    /// The sets compiled into this binary.
    pub fn embedded() -> Result<ValueSets, LoadErrors> {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (format!("rules/valuesets/{n}"), (*t).to_owned()))
            .collect();
        ValueSets::from_sources(&files)
    }

    /// Every `*.json` file of `dir`.
    pub fn from_dir(dir: &Path) -> Result<ValueSets, LoadErrors> {
        let shown = dir.display().to_string();
        let io = |e: std::io::Error| {
            LoadErrors(vec![LoadError::new(
                LoadErrorCode::Io,
                &shown,
                "",
                format!("cannot read the value-set directory: {e}"),
            )])
        };
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for p in names {
            let name = p.display().to_string();
            match std::fs::read_to_string(&p) {
                Ok(t) => files.push((name, t)),
                Err(e) => errors.push(LoadError::new(
                    LoadErrorCode::Io,
                    &name,
                    "",
                    format!("cannot read the file: {e}"),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        ValueSets::from_sources(&files)
    }

    /// Load `(file name, text)` pairs; the names are used in errors.
    pub fn from_sources(files: &[(String, String)]) -> Result<ValueSets, LoadErrors> {
        let schema =
            medscreen_core::engine::load_schema(VALUESET_SCHEMA, "schemas/valueset.schema.json")?;
        let mut errors = Vec::new();
        let mut sets = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for (name, text) in files {
            let value =
                match medscreen_core::engine::parse_checked(text, name, &schema, &mut errors) {
                    Some((value, true)) => value,
                    _ => continue,
                };
            let file: ValueSetFile = match serde_json::from_value(value) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(LoadError::new(
                        LoadErrorCode::Schema,
                        name,
                        "",
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if let Some(first) = ids.insert(file.id.clone(), name.clone()) {
                errors.push(LoadError::new(
                    LoadErrorCode::Duplicate,
                    name,
                    "/id",
                    format!("value set `{}` is also defined in {first}", file.id),
                ));
            }
            if let Some(set) = check_file(file, name, &mut errors) {
                sets.push(set);
            }
        }
        let targets: BTreeSet<&str> = sets
            .iter()
            .map(|s| match s.target {
                Target::Field(f) => f,
                Target::Subject => "subject",
            })
            .collect();
        for required in ["egfr", "pregnant", "subject"] {
            if !errors.is_empty() {
                break;
            }
            if !targets.contains(required) {
                errors.push(LoadError::new(
                    LoadErrorCode::Schema,
                    "rules/valuesets",
                    "",
                    format!("no value set fills `{required}`"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut index: HashMap<(List, System, String), Vec<Hit>> = HashMap::new();
        let mut longest_icd = 0;
        for (si, set) in sets.iter().enumerate() {
            let lists = [
                (List::Condition, &set.conditions),
                (List::Observation, &set.observation_codes),
                (List::Answer, &set.answers),
                (List::Medication, &set.medication_codes),
                (List::Route, &set.route_codes),
            ];
            for (list, codes) in lists {
                for (ei, c) in codes.iter().enumerate() {
                    // Checked in `check_file`.
                    let Some(system) = System::from_name(&c.system) else {
                        continue;
                    };
                    let key = normalize(system, &c.code);
                    if system == System::Icd10Cm {
                        longest_icd = longest_icd.max(key.len());
                    }
                    index
                        .entry((list, system, key))
                        .or_default()
                        .push(Hit { set: si, entry: ei });
                }
            }
        }
        Ok(ValueSets {
            sets,
            index,
            longest_icd,
        })
    }

    /// The sets, in load order.
    pub fn sets(&self) -> &[ValueSet] {
        &self.sets
    }

    /// One set.
    #[expect(
        clippy::indexing_slicing,
        reason = "set numbers come from this collection's hits and provenance, as indices into it"
    )]
    pub fn set(&self, i: usize) -> &ValueSet {
        &self.sets[i]
    }

    /// The code entry of a hit in `list`.
    #[expect(
        clippy::indexing_slicing,
        reason = "a hit is made by matching against this collection: its set and entry index into it"
    )]
    pub fn code(&self, list: List, hit: Hit) -> &Code {
        let s = &self.sets[hit.set];
        match list {
            List::Condition => &s.conditions[hit.entry],
            List::Observation => &s.observation_codes[hit.entry],
            List::Answer => &s.answers[hit.entry],
            List::Medication => &s.medication_codes[hit.entry],
            List::Route => &s.route_codes[hit.entry],
        }
    }

    /// Every entry of `list` that `(system, code)` matches; ICD-10-CM by prefix.
    pub fn lookup(&self, list: List, system: System, code: &str, out: &mut Vec<Hit>) {
        let key = normalize(system, code);
        if system == System::Icd10Cm {
            // Longest prefix first, so that the most specific code (N18.32 before N18.3) comes first.
            let n = key.chars().count().min(self.longest_icd);
            for len in (1..=n).rev() {
                let prefix: String = key.chars().take(len).collect();
                if let Some(hits) = self.index.get(&(list, system, prefix)) {
                    out.extend(hits);
                }
            }
        } else if let Some(hits) = self.index.get(&(list, system, key)) {
            out.extend(hits);
        }
    }

    /// The index of the set that fills `target`, if any.
    pub fn find(&self, target: Target) -> Option<usize> {
        self.sets.iter().position(|s| s.target == target)
    }
}

fn check_file(file: ValueSetFile, name: &str, errors: &mut Vec<LoadError>) -> Option<ValueSet> {
    let before = errors.len();
    let target = if file.field == "subject" {
        Target::Subject
    } else {
        match FILLABLE.iter().find(|f| **f == file.field) {
            Some(f) => Target::Field(f),
            None => {
                let shared = serde_json::from_str::<Value>(medscreen_core::engine::PROFILE_SCHEMA)
                    .ok()
                    .and_then(|s| s.pointer(&format!("/properties/{}", file.field)).cloned())
                    .is_some();
                errors.push(LoadError::new(
                    LoadErrorCode::UnknownFact,
                    name,
                    "/field",
                    if shared {
                        format!("FHIR input cannot fill `{}`", file.field)
                    } else {
                        format!("unknown profile field `{}`", file.field)
                    },
                ));
                return None;
            }
        }
    };
    let mut check = |codes: &[Code], base: &str| {
        let mut seen = BTreeSet::new();
        for (i, c) in codes.iter().enumerate() {
            let at = format!("{base}/{i}");
            match System::from_name(&c.system) {
                Some(system) if !system.valid_code(&c.code) => errors.push(LoadError::new(
                    LoadErrorCode::Schema,
                    name,
                    format!("{at}/code"),
                    format!("`{}` is not a well-formed {} code", c.code, c.system),
                )),
                Some(system) if !seen.insert((c.system.clone(), normalize(system, &c.code))) => {
                    errors.push(LoadError::new(
                        LoadErrorCode::Duplicate,
                        name,
                        format!("{at}/code"),
                        format!("code `{}` is listed twice", c.code),
                    ));
                }
                Some(_) => {}
                None => {}
            }
            if !file.sources.contains_key(&c.source) {
                let known = file.sources.keys().map(String::as_str);
                errors.push(
                    LoadError::new(
                        LoadErrorCode::UnknownSource,
                        name,
                        format!("{at}/source"),
                        format!("unknown source `{}`", c.source),
                    )
                    .with_help(
                        medscreen_core::suggest::did_you_mean(&c.source, known)
                            .map(|s| format!("did you mean `{s}`?")),
                    ),
                );
            }
        }
    };
    check(&file.conditions, "/conditions");
    let (mut obs_codes, mut answers, mut units) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(o) = file.observation {
        check(&o.codes, "/observation/codes");
        check(&o.answers, "/observation/answers");
        obs_codes = o.codes;
        answers = o.answers;
        units = o
            .units
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .collect();
    }
    let (mut med_codes, mut med_names, mut other_route) = (Vec::new(), Vec::new(), None);
    let mut daily_dose_fact = None;
    let mut route_codes = Vec::new();
    if let Some(m) = file.medication {
        check(&m.codes, "/medication/codes");
        if let Some(r) = &m.other_route {
            check(&r.codes, "/medication/other_route/codes");
        }
        let routes = m.other_route.iter().flat_map(|r| {
            r.terms
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("/medication/other_route/terms/{i}"), n))
        });
        let names = m
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("/medication/names/{i}"), n));
        for (at, n) in names.chain(routes) {
            if !file.sources.contains_key(&n.source) {
                errors.push(LoadError::new(
                    LoadErrorCode::UnknownSource,
                    name,
                    format!("{at}/source"),
                    format!("unknown source `{}`", n.source),
                ));
            }
        }
        med_codes = m.codes;
        med_names = m.names.iter().map(|n| n.name.to_lowercase()).collect();
        daily_dose_fact = m.daily_dose_fact;
        other_route = m.other_route.map(|r| {
            route_codes = r.codes;
            OtherRoute {
                label: r.label,
                terms: r.terms.iter().map(|t| t.name.to_lowercase()).collect(),
            }
        });
    }
    // What each field needs to be usable.
    let need = |ok: bool, pointer: &str, what: &str, errors: &mut Vec<LoadError>| {
        if !ok {
            errors.push(LoadError::new(
                LoadErrorCode::Schema,
                name,
                pointer,
                format!("a value set for `{}` needs {what}", file.field),
            ));
        }
    };
    if target != Target::Field("kidney_disease") {
        for (i, c) in file.conditions.iter().enumerate() {
            need(
                c.stage.is_none(),
                &format!("/conditions/{i}/stage"),
                "no `stage` (only a `kidney_disease` set gives `ckd_stage`)",
                errors,
            );
        }
    }
    if target != Target::Subject && other_route.is_some() {
        need(
            false,
            "/medication/other_route",
            "no `other_route` (only the `subject` set has one)",
            errors,
        );
    }
    if target != Target::Subject && daily_dose_fact.is_some() {
        need(
            false,
            "/medication/daily_dose_fact",
            "no `daily_dose_fact` (only the `subject` set has one)",
            errors,
        );
    }
    match target {
        Target::Subject => need(!med_codes.is_empty(), "", "`medication`", errors),
        Target::Field("egfr") => {
            need(!obs_codes.is_empty(), "", "`observation`", errors);
            need(!units.is_empty(), "/observation", "`units`", errors);
            for (i, c) in obs_codes.iter().enumerate() {
                need(
                    c.measure.is_some(),
                    &format!("/observation/codes/{i}"),
                    "a `measure` on each code",
                    errors,
                );
            }
        }
        Target::Field("indication") => {
            for (i, c) in file.conditions.iter().enumerate() {
                need(
                    c.label.is_some(),
                    &format!("/conditions/{i}"),
                    "a `label` on each code",
                    errors,
                );
            }
        }
        Target::Field(_) => {
            // Every other fillable fact is a yes/no condition.
            need(
                !file.conditions.is_empty() || !obs_codes.is_empty(),
                "",
                "`conditions` or `observation`",
                errors,
            );
            for (i, a) in answers.iter().enumerate() {
                need(
                    a.value.is_some(),
                    &format!("/observation/answers/{i}"),
                    "a `value` on each answer",
                    errors,
                );
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(ValueSet {
        id: file.id,
        file: name.to_owned(),
        target,
        title: file.title,
        history: file.history,
        conditions: file.conditions,
        observation_codes: obs_codes,
        answers,
        units,
        medication_codes: med_codes,
        medication_names: med_names,
        other_route,
        route_codes,
        daily_dose_fact,
    })
}

impl Code {
    /// `egfr` or `crcl`.
    pub fn measure(&self) -> Option<Measure> {
        match self.measure.as_deref() {
            Some("egfr") => Some(Measure::Egfr),
            Some("crcl") => Some(Measure::Crcl),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sets_load_and_match() {
        let vs = ValueSets::embedded().unwrap();
        let mut hits = Vec::new();
        vs.lookup(List::Condition, System::Icd10Cm, "N18.32", &mut hits);
        let sets: Vec<&str> = hits.iter().map(|h| vs.set(h.set).id.as_str()).collect();
        // N18.32 and the older N18.3 both match; the more specific comes first.
        assert_eq!(sets, ["kidney-disease", "kidney-disease"]);
        assert_eq!(vs.code(List::Condition, hits[0]).stage, Some(CkdStage::G3b));
        hits.clear();
        vs.lookup(List::Condition, System::Icd10Cm, "n186", &mut hits);
        let mut sets: Vec<&str> = hits.iter().map(|h| vs.set(h.set).id.as_str()).collect();
        sets.sort_unstable();
        assert_eq!(sets, ["dialysis", "kidney-disease"]);
        hits.clear();
        // SNOMED is exact: a code that only starts like a listed one does not match.
        vs.lookup(List::Condition, System::Snomed, "8475700", &mut hits);
        assert!(hits.is_empty());
        vs.lookup(List::Condition, System::Icd10Cm, "N19", &mut hits);
        assert!(hits.is_empty());
    }

    #[test]
    fn loinc_patterns() {
        assert!(System::Loinc.valid_code("98979-8"));
        assert!(System::Loinc.valid_code("LA15173-0"));
        assert!(!System::Loinc.valid_code("98979"));
        assert!(!System::Loinc.valid_code("LA-1"));
        assert!(System::Icd10Cm.valid_code("O"));
        assert!(System::Icd10Cm.valid_code("Z99.2"));
        assert!(!System::Icd10Cm.valid_code("z99.2"));
    }
}
