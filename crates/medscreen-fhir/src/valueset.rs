//! Coded value sets: which FHIR codes fill which profile fact, and how, kept as data.
//!
//! Shared sets live in `rules/valuesets/`, a pack's own in `rules/NAME/valuesets/`; FHIR input for a
//! pack reads both ([`ValueSets::embedded_for`], [`ValueSets::from_dir_for`]). Each file says what it
//! fills in its `fills` object: the fact, and the kind of reading that fills it ([`Fills`]: a condition,
//! a status, the latest observation, a ratio to the reference range's upper limit, the order's
//! indication, or the drug screened). The mapping code knows these kinds, never a fact by name.
//!
//! Like the rule pack, the sets are loaded and checked once, up front: each file against
//! `schemas/valueset.schema.json`, then what the schema cannot say: each option and list against what
//! its kind reads, each code against the pattern of its system, each cited source against the file's
//! `sources`, no code twice in one list and no fact filled twice. Every problem is reported with its
//! file and JSON Pointer and the run refuses to start. Whether the facts exist, with the type each kind
//! gives, depends on the engine that screens: that is checked when the sets are bound to it
//! ([`crate::Binding`]). The checked sets are compiled into hash indexes, so matching a coding is one
//! lookup (ICD-10-CM: one lookup per prefix length of the code).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use medscreen_core::error::{LoadError, LoadErrorCode, LoadErrors};
use medscreen_core::profile::CkdStage;

/// The value-set schema (`schemas/valueset.schema.json`).
pub const VALUESET_SCHEMA: &str = include_str!("../../../schemas/valueset.schema.json");

// `EMBEDDED` (every `rules/valuesets/*.json`) and `EMBEDDED_PACKS` (each listed pack's
// `rules/NAME/valuesets/*.json`), written by `build.rs` from `rules/packs.json`.
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

/// The kind of reading that fills a set's fact (`fills.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A boolean fact from the problem list (`condition`).
    Condition,
    /// A boolean fact from a status observation's answer and conditions (`status`).
    Status,
    /// A number fact, the latest observation value in the look-back window (`observation`).
    Observation,
    /// A number fact, the latest observation value over its reference range's upper limit
    /// (`ratio_to_upper_limit`).
    RatioToUpperLimit,
    /// A string fact, the reasonCode of the order screened (`indication`).
    Indication,
    /// The drug screened: its orders are the order screened (`subject`).
    Subject,
}

impl Kind {
    /// The kind as files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Condition => "condition",
            Kind::Status => "status",
            Kind::Observation => "observation",
            Kind::RatioToUpperLimit => "ratio_to_upper_limit",
            Kind::Indication => "indication",
            Kind::Subject => "subject",
        }
    }

    /// The options of `fills` this kind reads, besides `kind`.
    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Condition => &["fact", "history", "stage_fact"],
            Kind::Status => &["fact", "history"],
            Kind::Observation => &["fact", "label", "measures", "components", "lookback_days"],
            Kind::RatioToUpperLimit => &["fact", "lookback_days"],
            Kind::Indication => &["fact"],
            Kind::Subject => &["daily_dose_fact"],
        }
    }

    /// The lists of the file this kind reads.
    fn lists(self) -> &'static [&'static str] {
        match self {
            Kind::Condition | Kind::Indication => &["conditions"],
            Kind::Status => &["conditions", "observation"],
            Kind::Observation | Kind::RatioToUpperLimit => &["observation"],
            Kind::Subject => &["medication"],
        }
    }
}

/// One kind of measurement of an `observation` set, in order of preference (`fills.measures`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureDef {
    /// What codes name it by (`egfr`).
    pub id: String,
    /// Its name in provenance notes (`creatinine clearance`).
    pub label: String,
}

/// What a value set fills, and how: its `fills` object, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Fills {
    /// The kind of reading.
    pub kind: Kind,
    /// The fact filled (`None` only for the subject set).
    pub fact: Option<String>,
    /// `condition`, `status`: inactive conditions count too.
    pub history: bool,
    /// `condition`: the fact the codes' CKD stage fills.
    pub stage_fact: Option<String>,
    /// `observation`: the measurement's name in notes (default: the fact's name).
    pub label: String,
    /// `observation`: measures, most preferred first (empty: every code is alike).
    pub measures: Vec<MeasureDef>,
    /// `observation`: components are read too, the lowest of one Observation kept.
    pub lowest_component: bool,
    /// `observation`, `ratio_to_upper_limit`: the set's own look-back window, in days.
    pub lookback_days: Option<u32>,
    /// `subject`: the fact the daily dose of the order screened fills.
    pub daily_dose_fact: Option<String>,
}

impl Fills {
    /// Every fact the set fills, with the option of `fills` that names it (`fact`, `stage_fact`,
    /// `daily_dose_fact`).
    pub fn facts(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("fact", self.fact.as_deref()),
            ("stage_fact", self.stage_fact.as_deref()),
            ("daily_dose_fact", self.daily_dose_fact.as_deref()),
        ]
        .into_iter()
        .filter_map(|(option, f)| f.map(|f| (option, f)))
    }

    /// The rank of a code's `measure` among [`Fills::measures`] (0 when the set declares none).
    pub fn measure_rank(&self, measure: Option<&str>) -> usize {
        measure
            .and_then(|m| self.measures.iter().position(|d| d.id == m))
            .unwrap_or(0)
    }
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
    other_route: Option<OtherRoutePart>,
}

#[derive(Debug, Clone, Deserialize)]
struct OtherRoutePart {
    label: String,
    codes: Vec<Code>,
    terms: Vec<MedicationName>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawMeasure {
    id: String,
    #[serde(default)]
    label: Option<String>,
}

/// `fills` as written; [`lower_fills`] checks it against its kind.
#[derive(Debug, Clone, Deserialize)]
struct RawFills {
    kind: Kind,
    #[serde(default)]
    fact: Option<String>,
    #[serde(default)]
    history: Option<bool>,
    #[serde(default)]
    stage_fact: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    measures: Option<Vec<RawMeasure>>,
    #[serde(default)]
    components: Option<String>,
    #[serde(default)]
    lookback_days: Option<u32>,
    #[serde(default)]
    daily_dose_fact: Option<String>,
}

impl RawFills {
    /// The options given, by name.
    fn given(&self) -> Vec<&'static str> {
        [
            ("fact", self.fact.is_some()),
            ("history", self.history.is_some()),
            ("stage_fact", self.stage_fact.is_some()),
            ("label", self.label.is_some()),
            ("measures", self.measures.is_some()),
            ("components", self.components.is_some()),
            ("lookback_days", self.lookback_days.is_some()),
            ("daily_dose_fact", self.daily_dose_fact.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
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
    fills: RawFills,
    title: String,
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
    /// What it fills, and how.
    pub fills: Fills,
    /// Title.
    pub title: String,
    /// Condition codes (for `indication`: reasonCode codes).
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
    /// The sets compiled into this binary for the default pack: the shared ones and that pack's
    /// (`default` in `rules/packs.json`).
    pub fn embedded() -> Result<ValueSets, LoadErrors> {
        ValueSets::embedded_for(medscreen_core::engine::EMBEDDED_DEFAULT)
    }

    /// The sets compiled into this binary for pack `pack`: the shared ones (`rules/valuesets/`) and the
    /// pack's own (`rules/NAME/valuesets/`; none for a pack not built in).
    pub fn embedded_for(pack: &str) -> Result<ValueSets, LoadErrors> {
        let shared = EMBEDDED
            .iter()
            .map(|(n, t)| (format!("rules/valuesets/{n}"), (*t).to_owned()));
        let own = EMBEDDED_PACKS
            .iter()
            .filter(|(name, _)| *name == pack)
            .flat_map(|(name, files)| {
                files
                    .iter()
                    .map(move |(n, t)| (format!("rules/{name}/valuesets/{n}"), (*t).to_owned()))
            });
        let files: Vec<(String, String)> = shared.chain(own).collect();
        ValueSets::from_sources(&files)
    }

    /// Every `*.json` file of `dir`, a flat directory of sets.
    pub fn from_dir(dir: &Path) -> Result<ValueSets, LoadErrors> {
        let files = read_json_files(dir)?;
        ValueSets::from_sources(&files)
    }

    /// The sets of `dir` for pack `pack`, laid out as `rules/` is: the shared sets are `dir/valuesets/*.json`
    /// when `dir/valuesets/` exists (`dir` is a rule directory), else `dir/*.json`; the pack's own are
    /// `dir/PACK/valuesets/*.json`, if there are any. A flat directory of sets reads as
    /// [`ValueSets::from_dir`].
    pub fn from_dir_for(dir: &Path, pack: &str) -> Result<ValueSets, LoadErrors> {
        let nested = dir.join("valuesets");
        let shared = if nested.is_dir() {
            nested
        } else {
            dir.to_path_buf()
        };
        let mut files = read_json_files(&shared)?;
        let own = dir.join(pack).join("valuesets");
        if own.is_dir() {
            files.extend(read_json_files(&own)?);
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
            let value = match medscreen_core::engine::parse_checked(
                text,
                name,
                &schema,
                &mut errors,
            ) {
                Some((value, true)) => value,
                Some((value, false)) => {
                    // A file written before `fills`: say what replaced `field` and `history`.
                    if value.get("field").is_some() && value.get("fills").is_none() {
                        errors.push(
                                LoadError::new(
                                    LoadErrorCode::Schema,
                                    name,
                                    "/field",
                                    "`field` is no longer read: a value set says what it fills in `fills`",
                                )
                                .with_help(Some(
                                    "write `\"fills\": {\"kind\": ..., \"fact\": ...}` (see schemas/valueset.schema.json)"
                                        .to_owned(),
                                )),
                            );
                    }
                    continue;
                }
                None => continue,
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
        check_once(&sets, &mut errors);
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

    /// The index of the first set of kind `kind`, if any (there is at most one `subject` and one
    /// `indication` set).
    pub fn find_kind(&self, kind: Kind) -> Option<usize> {
        self.sets.iter().position(|s| s.fills.kind == kind)
    }
}

/// `(file name, text)` of every `*.json` file of `dir`, in name order.
fn read_json_files(dir: &Path) -> Result<Vec<(String, String)>, LoadErrors> {
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
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
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
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(LoadErrors(errors))
    }
}

/// What must hold across files: no fact filled by two sets (the second would overwrite the first),
/// and at most one `subject` and one `indication` set (the order screened, and its reason, are one).
fn check_once(sets: &[ValueSet], errors: &mut Vec<LoadError>) {
    let mut filled: HashMap<&str, &str> = HashMap::new();
    let mut single: HashMap<Kind, &str> = HashMap::new();
    for set in sets {
        for (option, fact) in set.fills.facts() {
            if let Some(first) = filled.insert(fact, &set.file) {
                errors.push(LoadError::new(
                    LoadErrorCode::Duplicate,
                    &set.file,
                    format!("/fills/{option}"),
                    format!("fact `{fact}` is also filled by {first}"),
                ));
            }
        }
        let kind = set.fills.kind;
        if matches!(kind, Kind::Subject | Kind::Indication)
            && let Some(first) = single.insert(kind, &set.file)
        {
            errors.push(LoadError::new(
                LoadErrorCode::Duplicate,
                &set.file,
                "/fills/kind",
                format!("a second `{}` set (the first is {first})", kind.as_str()),
            ));
        }
    }
}

/// `fills` checked against its kind (the schema has checked the kind, and that every kind but
/// `subject` names its `fact`): every option given is one it reads, and measures are named once.
fn lower_fills(raw: RawFills, name: &str, errors: &mut Vec<LoadError>) -> Option<Fills> {
    let kind = raw.kind;
    let before = errors.len();
    for option in raw.given() {
        if !kind.options().contains(&option) {
            errors.push(
                LoadError::new(
                    LoadErrorCode::Schema,
                    name,
                    format!("/fills/{option}"),
                    format!("`{}` sets do not read `{option}`", kind.as_str()),
                )
                .with_help(Some(format!(
                    "its options: {}",
                    kind.options()
                        .iter()
                        .map(|o| format!("`{o}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            );
        }
    }
    let mut measures: Vec<MeasureDef> = Vec::new();
    for (i, m) in raw.measures.into_iter().flatten().enumerate() {
        if measures.iter().any(|d| d.id == m.id) {
            errors.push(LoadError::new(
                LoadErrorCode::Duplicate,
                name,
                format!("/fills/measures/{i}/id"),
                format!("measure `{}` is listed twice", m.id),
            ));
        }
        let label = m.label.unwrap_or_else(|| m.id.clone());
        measures.push(MeasureDef { id: m.id, label });
    }
    if errors.len() > before {
        return None;
    }
    let label = raw.label.or_else(|| raw.fact.clone()).unwrap_or_default();
    Some(Fills {
        kind,
        fact: raw.fact,
        history: raw.history.unwrap_or(false),
        stage_fact: raw.stage_fact,
        label,
        measures,
        lowest_component: raw.components.as_deref() == Some("lowest"),
        lookback_days: raw.lookback_days,
        daily_dose_fact: raw.daily_dose_fact,
    })
}

/// A list of codes of a file: its pointer, its codes, and the one property its codes may carry, if
/// any, with whether each must.
type CodeList<'a> = (&'static str, &'a [Code], Option<(&'static str, bool)>);

fn check_file(file: ValueSetFile, name: &str, errors: &mut Vec<LoadError>) -> Option<ValueSet> {
    let before = errors.len();
    let fills = lower_fills(file.fills, name, errors);
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
    let has_observation = file.observation.is_some();
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
    let has_medication = file.medication.is_some();
    let (mut med_codes, mut med_names, mut other_route) = (Vec::new(), Vec::new(), None);
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
        other_route = m.other_route.map(|r| {
            route_codes = r.codes;
            OtherRoute {
                label: r.label,
                terms: r.terms.iter().map(|t| t.name.to_lowercase()).collect(),
            }
        });
    }
    let fills = fills?;
    let kind = fills.kind.as_str();
    // The lists its kind reads, and what it needs of them.
    let lists = [
        ("conditions", !file.conditions.is_empty()),
        ("observation", has_observation),
        ("medication", has_medication),
    ];
    for (list, given) in lists {
        if given && !fills.kind.lists().contains(&list) {
            errors.push(LoadError::new(
                LoadErrorCode::Schema,
                name,
                format!("/{list}"),
                format!("`{kind}` sets do not read `{list}`"),
            ));
        }
    }
    let need = |ok: bool, pointer: &str, what: &str, errors: &mut Vec<LoadError>| {
        if !ok {
            errors.push(LoadError::new(
                LoadErrorCode::Schema,
                name,
                pointer,
                format!("`{kind}` sets need {what}"),
            ));
        }
    };
    match fills.kind {
        Kind::Condition => need(!file.conditions.is_empty(), "", "`conditions`", errors),
        Kind::Status => need(!obs_codes.is_empty(), "", "`observation`", errors),
        Kind::Observation | Kind::RatioToUpperLimit => {
            need(!obs_codes.is_empty(), "", "`observation`", errors);
            if has_observation {
                need(!units.is_empty(), "/observation", "`units`", errors);
            }
            if !answers.is_empty() {
                errors.push(LoadError::new(
                    LoadErrorCode::Schema,
                    name,
                    "/observation/answers",
                    format!("`{kind}` sets do not read `answers`: they read a value"),
                ));
            }
        }
        Kind::Indication => need(!file.conditions.is_empty(), "", "`conditions`", errors),
        Kind::Subject => need(!med_codes.is_empty(), "", "`medication`", errors),
    }
    // What each code may carry: each list reads at most one property (and may need it on every code);
    // a property its list does not read is an error, not silently ignored.
    let reads = |p: &'static str, read: bool, needed: bool| read.then_some((p, needed));
    let lists: [CodeList<'_>; 5] = [
        (
            "/conditions",
            &file.conditions,
            reads(
                "stage",
                fills.kind == Kind::Condition && fills.stage_fact.is_some(),
                false,
            )
            .or(reads("label", fills.kind == Kind::Indication, true)),
        ),
        (
            "/observation/codes",
            &obs_codes,
            reads("measure", !fills.measures.is_empty(), true),
        ),
        // Answers outside a status set are refused above, whole.
        (
            "/observation/answers",
            &answers,
            reads("value", true, fills.kind == Kind::Status),
        ),
        (
            "/medication/codes",
            &med_codes,
            reads("strength_mg", true, false),
        ),
        ("/medication/other_route/codes", &route_codes, None),
    ];
    for (base, codes, read) in lists {
        for (i, c) in codes.iter().enumerate() {
            for (prop, given) in c.properties() {
                let at = format!("{base}/{i}");
                let (reads, needs) = match read {
                    Some((p, needed)) if p == prop => (true, needed),
                    _ => (false, false),
                };
                if given && !reads {
                    let help = (prop == "stage" && fills.kind == Kind::Condition)
                        .then(|| "name the fact the stage fills in `fills.stage_fact`".to_owned());
                    errors.push(
                        LoadError::new(
                            LoadErrorCode::Schema,
                            name,
                            format!("{at}/{prop}"),
                            format!("`{kind}` sets do not read `{prop}` here"),
                        )
                        .with_help(help),
                    );
                } else if !given && needs {
                    need(false, &at, &format!("a `{prop}` on each code"), errors);
                }
            }
            if let Some(m) = c.measure.as_deref()
                && matches!(read, Some(("measure", _)))
                && !fills.measures.iter().any(|d| d.id == m)
            {
                let known = fills.measures.iter().map(|d| d.id.as_str());
                errors.push(
                    LoadError::new(
                        LoadErrorCode::Schema,
                        name,
                        format!("{base}/{i}/measure"),
                        format!("unknown measure `{m}`: not in `fills.measures`"),
                    )
                    .with_help(
                        medscreen_core::suggest::did_you_mean(m, known)
                            .map(|s| format!("did you mean `{s}`?")),
                    ),
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
        fills,
        title: file.title,
        conditions: file.conditions,
        observation_codes: obs_codes,
        answers,
        units,
        medication_codes: med_codes,
        medication_names: med_names,
        other_route,
        route_codes,
    })
}

impl Code {
    /// Which of the optional properties the code carries, by name.
    fn properties(&self) -> [(&'static str, bool); 5] {
        [
            ("stage", self.stage.is_some()),
            ("label", self.label.is_some()),
            ("measure", self.measure.is_some()),
            ("value", self.value.is_some()),
            ("strength_mg", self.strength_mg.is_some()),
        ]
    }
}

/// Each error as `(file, pointer, message, help)`, for tests that assert all four together.
#[cfg(test)]
pub(crate) fn located(errors: &LoadErrors) -> Vec<(String, String, String, Option<String>)> {
    errors
        .errors()
        .iter()
        .map(|e| {
            (
                e.file.clone(),
                e.pointer.clone(),
                e.message.clone(),
                e.help.clone(),
            )
        })
        .collect()
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

    /// A small set of kind `kind` (a condition set unless changed), edited by `edit`.
    fn set_file(edit: impl Fn(&mut Value)) -> Value {
        let mut v = serde_json::json!({
            "id": "t", "title": "T", "fills": {"kind": "condition", "fact": "x"},
            "sources": {"S": {"label": "a source"}},
            "conditions": [{"system": "icd10cm", "code": "G40", "display": "Epilepsy",
                            "evidence": "M", "source": "S"}]
        });
        edit(&mut v);
        v
    }

    fn observation_set(fills: Value) -> impl Fn(&mut Value) {
        move |v: &mut Value| {
            v["fills"] = fills.clone();
            v.as_object_mut().unwrap().remove("conditions");
            v["observation"] = serde_json::json!({"units": ["U/L"], "codes": [
                {"system": "loinc", "code": "1742-6", "display": "ALT", "evidence": "M", "source": "S"}]});
        }
    }

    /// Every error of loading `files` as `(file, pointer, message, help)`.
    fn errors_of(files: &[(&str, Value)]) -> Vec<(String, String, String, Option<String>)> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_string()))
            .collect();
        ValueSets::from_sources(&files)
            .map(|_| Vec::new())
            .unwrap_or_else(|e| located(&e))
    }

    fn one_error(v: Value) -> (String, String, Option<String>) {
        let mut errors = errors_of(&[("t.json", v)]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (_, pointer, message, help) = errors.remove(0);
        (pointer, message, help)
    }

    fn err(pointer: &str, message: &str, help: Option<&str>) -> (String, String, Option<String>) {
        (
            pointer.to_owned(),
            message.to_owned(),
            help.map(str::to_owned),
        )
    }

    #[test]
    fn a_small_set_of_each_kind_loads() {
        assert_eq!(errors_of(&[("t.json", set_file(|_| {}))]), []);
        let ratio = set_file(observation_set(
            serde_json::json!({"kind": "ratio_to_upper_limit", "fact": "x", "lookback_days": 90}),
        ));
        let vs = ValueSets::from_sources(&[("t.json".to_owned(), ratio.to_string())]).unwrap();
        assert_eq!(vs.set(0).fills.kind, Kind::RatioToUpperLimit);
        assert_eq!(vs.set(0).fills.lookback_days, Some(90));
        assert_eq!(vs.set(0).units, ["u/l"]);
    }

    #[test]
    fn an_option_its_kind_does_not_read_is_a_load_error_naming_the_kinds_options() {
        let v = set_file(|v| v["fills"]["measures"] = serde_json::json!([{"id": "egfr"}]));
        assert_eq!(
            one_error(v),
            err(
                "/fills/measures",
                "`condition` sets do not read `measures`",
                Some("its options: `fact`, `history`, `stage_fact`")
            )
        );
        let v = set_file(|v| {
            v["fills"] = serde_json::json!({"kind": "subject", "fact": "x"});
            v["medication"] = v["conditions"].clone();
            v["medication"] = serde_json::json!({"codes": [{"system": "rxnorm", "code": "1292",
                "display": "baclofen", "evidence": "M", "source": "S"}]});
            v.as_object_mut().unwrap().remove("conditions");
        });
        assert_eq!(
            one_error(v),
            err(
                "/fills/fact",
                "`subject` sets do not read `fact`",
                Some("its options: `daily_dose_fact`")
            )
        );
    }

    #[test]
    fn a_list_its_kind_does_not_read_or_needs_is_a_load_error() {
        let v = set_file(observation_set(
            serde_json::json!({"kind": "observation", "fact": "x"}),
        ));
        let with_conditions = {
            let mut v = v.clone();
            v["conditions"] = set_file(|_| {})["conditions"].clone();
            v
        };
        assert_eq!(
            one_error(with_conditions),
            err(
                "/conditions",
                "`observation` sets do not read `conditions`",
                None
            )
        );
        let mut no_units = v.clone();
        no_units["observation"]
            .as_object_mut()
            .unwrap()
            .remove("units");
        assert_eq!(
            one_error(no_units),
            err("/observation", "`observation` sets need `units`", None)
        );
        let mut answers = v.clone();
        answers["observation"]["answers"] = answers["observation"]["codes"].clone();
        assert_eq!(
            one_error(answers),
            err(
                "/observation/answers",
                "`observation` sets do not read `answers`: they read a value",
                None
            )
        );
        // A condition set given an observation instead of conditions: both are said.
        let mut swapped = v;
        swapped["fills"] = serde_json::json!({"kind": "condition", "fact": "x"});
        assert_eq!(
            errors_of(&[("t.json", swapped)])
                .into_iter()
                .map(|e| (e.1, e.2))
                .collect::<Vec<_>>(),
            [
                (
                    "/observation".to_owned(),
                    "`condition` sets do not read `observation`".to_owned()
                ),
                (
                    "".to_owned(),
                    "`condition` sets need `conditions`".to_owned()
                )
            ]
        );
        let subject = set_file(|v| v["fills"] = serde_json::json!({"kind": "subject"}));
        assert_eq!(
            errors_of(&[("t.json", subject)])
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            [
                "`subject` sets do not read `conditions`",
                "`subject` sets need `medication`"
            ]
        );
    }

    #[test]
    fn a_code_property_its_set_does_not_read_or_needs_is_a_load_error() {
        let staged = set_file(|v| v["conditions"][0]["stage"] = serde_json::json!("3a"));
        assert_eq!(
            one_error(staged.clone()),
            err(
                "/conditions/0/stage",
                "`condition` sets do not read `stage` here",
                Some("name the fact the stage fills in `fills.stage_fact`")
            )
        );
        let mut with_stage_fact = staged;
        with_stage_fact["fills"]["stage_fact"] = serde_json::json!("ckd_stage");
        assert_eq!(errors_of(&[("t.json", with_stage_fact)]), []);
        let strength = set_file(|v| v["conditions"][0]["strength_mg"] = serde_json::json!(10));
        assert_eq!(
            one_error(strength),
            err(
                "/conditions/0/strength_mg",
                "`condition` sets do not read `strength_mg` here",
                None
            )
        );
        let indication =
            set_file(|v| v["fills"] = serde_json::json!({"kind": "indication", "fact": "x"}));
        assert_eq!(
            one_error(indication),
            err(
                "/conditions/0",
                "`indication` sets need a `label` on each code",
                None
            )
        );
        let status = set_file(|v| {
            v["fills"] = serde_json::json!({"kind": "status", "fact": "x"});
            v["observation"] = serde_json::json!({"codes": [{"system": "loinc", "code": "82810-3",
                "display": "Pregnancy status", "evidence": "M", "source": "S"}],
                "answers": [{"system": "loinc", "code": "LA15173-0", "display": "Pregnant",
                "evidence": "M", "source": "S"}]});
        });
        assert_eq!(
            one_error(status),
            err(
                "/observation/answers/0",
                "`status` sets need a `value` on each code",
                None
            )
        );
    }

    #[test]
    fn measures_are_declared_once_and_every_code_names_a_declared_one() {
        let fills = serde_json::json!({"kind": "observation", "fact": "x",
            "measures": [{"id": "egfr"}, {"id": "crcl", "label": "creatinine clearance"}]});
        let unnamed = set_file(observation_set(fills.clone()));
        assert_eq!(
            one_error(unnamed.clone()),
            err(
                "/observation/codes/0",
                "`observation` sets need a `measure` on each code",
                None
            )
        );
        let mut misspelt = unnamed.clone();
        misspelt["observation"]["codes"][0]["measure"] = serde_json::json!("egrf");
        assert_eq!(
            one_error(misspelt),
            err(
                "/observation/codes/0/measure",
                "unknown measure `egrf`: not in `fills.measures`",
                Some("did you mean `egfr`?")
            )
        );
        let mut twice = unnamed.clone();
        twice["observation"]["codes"][0]["measure"] = serde_json::json!("egfr");
        twice["fills"]["measures"][1]["id"] = serde_json::json!("egfr");
        assert_eq!(
            one_error(twice),
            err(
                "/fills/measures/1/id",
                "measure `egfr` is listed twice",
                None
            )
        );
        // Without `measures`, a code naming one is not read.
        let mut undeclared = set_file(observation_set(
            serde_json::json!({"kind": "observation", "fact": "x"}),
        ));
        undeclared["observation"]["codes"][0]["measure"] = serde_json::json!("egfr");
        assert_eq!(
            one_error(undeclared),
            err(
                "/observation/codes/0/measure",
                "`observation` sets do not read `measure` here",
                None
            )
        );
    }

    #[test]
    fn a_fact_filled_twice_or_a_second_subject_set_is_a_load_error() {
        let a = set_file(|_| {});
        let b = set_file(|v| v["id"] = serde_json::json!("u"));
        assert_eq!(
            errors_of(&[("a.json", a), ("b.json", b)]),
            [(
                "b.json".to_owned(),
                "/fills/fact".to_owned(),
                "fact `x` is also filled by a.json".to_owned(),
                None
            )]
        );
        let subject = |id: &str| {
            set_file(|v| {
                v["id"] = serde_json::json!(id);
                v["fills"] = serde_json::json!({"kind": "subject"});
                v["medication"] = serde_json::json!({"codes": [{"system": "rxnorm", "code": "1292",
                    "display": "baclofen", "evidence": "M", "source": "S"}]});
                v.as_object_mut().unwrap().remove("conditions");
            })
        };
        assert_eq!(
            errors_of(&[("a.json", subject("a")), ("b.json", subject("b"))]),
            [(
                "b.json".to_owned(),
                "/fills/kind".to_owned(),
                "a second `subject` set (the first is a.json)".to_owned(),
                None
            )]
        );
    }

    #[test]
    fn a_set_written_before_fills_is_told_what_replaced_field() {
        let old = set_file(|v| {
            v.as_object_mut().unwrap().remove("fills");
            v["field"] = serde_json::json!("seizure_history");
        });
        let errors = errors_of(&[("t.json", old)]);
        let last = errors.last().unwrap();
        assert_eq!(
            (last.1.as_str(), last.2.as_str(), last.3.as_deref()),
            (
                "/field",
                "`field` is no longer read: a value set says what it fills in `fills`",
                Some(
                    "write `\"fills\": {\"kind\": ..., \"fact\": ...}` (see schemas/valueset.schema.json)"
                )
            )
        );
        // The schema's own errors come first: `fills` is required, `field` unknown.
        assert!(errors.len() > 1, "{errors:?}");
    }

    #[test]
    fn every_kind_but_subject_names_its_fact() {
        let v = set_file(|v| {
            v["fills"].as_object_mut().unwrap().remove("fact");
        });
        assert_eq!(
            one_error(v),
            err("/fills/fact", "missing required field `fact`", None)
        );
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
