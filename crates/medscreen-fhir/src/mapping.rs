//! From FHIR resources to the facts of one patient, and from those facts to a native profile.
//!
//! Reading is split in two so that a Bulk Data export can be streamed: [`Mapper::patient`] and
//! [`Mapper::resource`] look at one resource and keep only what the value sets select (a matched
//! condition, the latest eGFR so far, an active medication) in a small [`PatientFacts`]; the resource
//! itself is dropped. [`Mapper::profile`] then decides each field once every resource has been seen,
//! applying the evaluation date, the lookback window and the open- or closed-world reading of absence.
//! Every fact keeps where it came from ([`Prov`]) so that evidence can name the resource.
//!
//! Which fact a resource fills, and how, is the value sets' `fills` ([`crate::valueset::Fills`]): this
//! module knows the kinds of reading (a condition, a status, the latest observation, a ratio to the
//! reference range's upper limit, the order's indication and dose), never a fact by name. A mapper is
//! made only from a [`Binding`], so the facts it writes were checked against the engine that screens.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::binding::Binding;
use super::date::Date;
use super::valueset::{Kind, List, System, ValueSets};
use medscreen_core::diagnostic::{self, Diagnostic, Location};
use medscreen_core::engine::Engine;
use medscreen_core::facts::FactKind;
use medscreen_core::profile::{CkdStage, CodedMedication, Medication};
use medscreen_core::vocab::{IngredientId, Vocabulary};

/// `Coding.system` of the WHO ATC classification.
pub const ATC_URI: &str = "http://www.whocc.no/atc";

/// How an absent condition is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Closed world: not on the record means no (the usual reading of a problem list).
    False,
    /// Open world: not on the record means unknown.
    Unknown,
}

/// What FHIR mapping needs besides the resources.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The evaluation date: nothing recorded, started or measured after it is known.
    pub as_of: Date,
    /// An observation value older than this many days before `as_of` is not used, unless its value
    /// set declares its own window (`fills.lookback_days`).
    pub lookback_days: u32,
    /// How an absent condition is read.
    pub absent: Absent,
}

/// Something wrong with the FHIR input, located by input, line, JSON Pointer and resource.
///
/// Written as `{"code": "broken_reference", "message": "...", "input": "Condition.ndjson", "line": 7,
/// "pointer": "/subject/reference", "resource": "Condition/abc"}`. Messages never echo patient data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FhirProblem {
    /// Stable code: `invalid_json`, `not_a_bundle`, `missing_resource_type`, `type_mismatch`,
    /// `broken_reference`, `missing_field`, `invalid_date`, `out_of_range`, `invalid_profile`, `io`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// The file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Line in the file (NDJSON), 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// JSON Pointer inside the line or file.
    pub pointer: String,
    /// `Type/id` of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Diagnostic for FhirProblem {
    fn code(&self) -> &'static str {
        self.code
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.message)
    }

    fn location(&self) -> Location<'_> {
        Location::Record {
            input: self.input.as_deref(),
            line: self.line,
            index: None,
            resource: self.resource.as_deref(),
            pointer: &self.pointer,
        }
    }
}

impl std::fmt::Display for FhirProblem {
    /// `` `Condition/abc` in Condition.ndjson line 7 at /subject/reference: ... ``
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for FhirProblem {}

/// Where a resource is: its input, line and the pointer of the resource inside that line.
#[derive(Debug, Clone)]
pub struct Loc<'a> {
    /// The file.
    pub input: &'a str,
    /// 1-based line (1 for a whole-file Bundle).
    pub line: u64,
    /// JSON Pointer of the resource (`/entry/3/resource`, or `` for a Bulk line).
    pub base: String,
}

impl Loc<'_> {
    /// A problem at `rel` inside this resource.
    pub fn problem(
        &self,
        code: &'static str,
        rel: &str,
        resource: Option<String>,
        message: String,
    ) -> FhirProblem {
        FhirProblem {
            code,
            message,
            input: Some(self.input.to_owned()),
            line: Some(self.line),
            pointer: format!("{}{rel}", self.base),
            resource,
        }
    }
}

/// Where a fact came from.
///
/// Written as `{"resource": "Condition/abc", "system": "snomed", "code": "84757009", "display":
/// "Epilepsy", "date": "2007-06-04", "valueset": "seizure"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prov {
    /// `Type/id` of the resource.
    pub resource: String,
    /// Code system of the matched code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<&'static str>,
    /// The matched code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Its display in the resource, or the value set's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The resource's date (recorded, onset, effective, authored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The value set that selected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valueset: Option<String>,
    /// Anything else worth knowing (CKD stage, a comparator, a proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Prov {
    fn of(resource: &str) -> Prov {
        Prov {
            resource: resource.to_owned(),
            system: None,
            code: None,
            display: None,
            date: None,
            valueset: None,
            note: None,
        }
    }
}

#[derive(Debug, Clone)]
struct CondHit {
    set: usize,
    /// Active on the evaluation date.
    active: bool,
    /// The CKD stage its code gives, if any.
    stage: Option<CkdStage>,
    prov: Prov,
}

#[derive(Debug, Clone)]
struct Dated<T> {
    date: Date,
    /// The full date-time string, to order results taken the same day.
    stamp: String,
    value: T,
    prov: Prov,
}

impl<T> Dated<T> {
    fn newer_than(&self, other: &Option<Dated<T>>) -> bool {
        other
            .as_ref()
            .is_none_or(|o| (self.date, &self.stamp) > (o.date, &o.stamp))
    }
}

/// A medication as FHIR codes it: every RxNorm and ATC coding, in order, and its best name. The
/// profile takes one of each (see [`Mapper::pick_rxnorm`], [`Mapper::pick_atc`]); deciding whether it is
/// the drug screened looks at all of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MedEntry {
    /// RxNorm CUIs of its codings.
    pub rxnorm: Vec<String>,
    /// WHO ATC codes of its codings, upper-cased.
    pub atc: Vec<String>,
    /// Display or text.
    pub name: Option<String>,
}

/// A `Medication` resource, reduced to what matters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MedInfo {
    /// `Medication/id`.
    pub resource: String,
    /// The product's own code and name.
    pub product: MedEntry,
    /// Its coded ingredients, if it lists them.
    pub ingredients: Vec<MedEntry>,
}

/// What an observation said: a number, a status answer (`None`: the answer "unknown"), or a result
/// that gives no value of the fact (a ratio without an upper limit), which still hides older ones.
#[derive(Debug, Clone, Copy)]
enum ObsValue {
    Number(f64),
    Answer(Option<bool>),
    Unusable,
}

/// The latest observation kept for one value set (and, for an `observation` set with measures, one
/// measure: `rank` is its place in `fills.measures`).
#[derive(Debug, Clone)]
struct ObsHit {
    set: usize,
    rank: usize,
    dated: Dated<ObsValue>,
}

#[derive(Debug, Clone)]
struct SubjectOrder {
    dose_mg: Option<f64>,
    indication: Option<(String, Prov)>,
}

/// What one patient's resources said, kept small: only facts the value sets select.
#[derive(Debug, Clone)]
pub struct PatientFacts {
    /// `Patient.id`.
    pub id: String,
    /// The input holding the Patient resource.
    pub input: String,
    /// Its line.
    pub line: u64,
    /// A Patient resource was seen.
    pub has_patient: bool,
    /// Whether the input could hold conditions / medications at all (a Bulk export may lack a file).
    pub conditions_known: bool,
    /// See `conditions_known`.
    pub medications_known: bool,
    birth: Option<(Date, String)>,
    gender: Option<String>,
    deceased: Option<String>,
    conds: Vec<CondHit>,
    obs: Vec<ObsHit>,
    meds: Vec<(MedEntry, Prov)>,
    subject_order: Option<Dated<SubjectOrder>>,
    /// `subject_order` is an order being placed, which no recorded order replaces.
    subject_draft: bool,
    /// Resources that referred to this patient.
    pub resources: u64,
    /// Problems that make this patient's result an error.
    pub problems: Vec<FhirProblem>,
    /// With several packs, what each pack after the first read of the same resources (its own value
    /// sets and its own drug's order), in the packs' order; see [`Mapper::with_packs`].
    packs: Vec<PatientFacts>,
}

impl PatientFacts {
    /// Empty facts for patient `id`, first seen at `input`:`line`.
    pub fn new(id: &str, input: &str, line: u64) -> PatientFacts {
        PatientFacts {
            id: id.to_owned(),
            input: input.to_owned(),
            line,
            has_patient: false,
            conditions_known: true,
            medications_known: true,
            birth: None,
            gender: None,
            deceased: None,
            conds: Vec::new(),
            obs: Vec::new(),
            meds: Vec::new(),
            subject_order: None,
            subject_draft: false,
            resources: 0,
            problems: Vec::new(),
            packs: Vec::new(),
        }
    }

    /// The facts pack `k` after the first read, `n` packs after the first in all (made on first use).
    #[expect(
        clippy::indexing_slicing,
        reason = "`packs` was just made at least `n` long, and `k < n`"
    )]
    fn pack_mut(&mut self, k: usize, n: usize) -> &mut PatientFacts {
        if self.packs.len() < n {
            let fresh = PatientFacts::new(&self.id, &self.input, self.line);
            self.packs.resize(n, fresh);
        }
        &mut self.packs[k]
    }

    /// What pack `k` after the first read, with what is the patient's and not a pack's (where it was
    /// read, whether it has a Patient, what the input could hold, the problems) from these facts.
    fn pack_view(&self, k: usize) -> PatientFacts {
        let mut view = self
            .packs
            .get(k)
            .cloned()
            .unwrap_or_else(|| PatientFacts::new(&self.id, &self.input, self.line));
        view.id.clone_from(&self.id);
        view.input.clone_from(&self.input);
        view.line = self.line;
        view.has_patient = self.has_patient;
        view.conditions_known = self.conditions_known;
        view.medications_known = self.medications_known;
        view.resources = self.resources;
        view.problems.clone_from(&self.problems);
        view
    }

    /// Every problem any pack's reading found, each once, the first pack's first.
    fn all_problems(&self) -> Vec<FhirProblem> {
        let mut all = self.problems.clone();
        for p in self.packs.iter().flat_map(|f| &f.problems) {
            if !all.contains(p) {
                all.push(p.clone());
            }
        }
        all
    }
}

/// The outcome for one patient.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A profile to screen (schema-valid JSON), with the provenance of each field by JSON Pointer.
    Profile {
        /// The native profile.
        profile: Value,
        /// Field pointer -> where it came from.
        provenance: BTreeMap<String, Vec<Prov>>,
    },
    /// Not screened, and why (deceased by the evaluation date).
    Skipped(String),
    /// The FHIR record is malformed.
    Invalid(Vec<FhirProblem>),
}

/// The mapping, compiled: value sets bound to the engine that screens, plus options. Made by
/// [`Binding::mapper`]. Immutable; share across threads.
#[derive(Debug, Clone, Copy)]
pub struct Mapper<'v> {
    binding: &'v Binding,
    vs: &'v ValueSets,
    vocab: &'v Vocabulary,
    /// The drug screened, as an ingredient of `vocab`.
    subject_ingredient: Option<IngredientId>,
    opts: Options,
    indication: Option<usize>,
    subject: Option<usize>,
    /// The mappers of the packs that screen after this one's, which read every resource too.
    also: &'v [Mapper<'v>],
}

const MAX_COMEDICATIONS: usize = 200;
const MAX_NAME: usize = 500;

impl<'v> Mapper<'v> {
    /// A mapper over `binding`'s value sets with `opts`, reading medications through its engine's
    /// vocabulary as well: a medication is the drug screened when any of its RxNorm or ATC codes or its
    /// name names the pack's subject there (brands, ingredient codes, ATC M03BX01), and of several
    /// codings the profile takes those the vocabulary recognises.
    pub(crate) fn bound(binding: &'v Binding, opts: Options) -> Mapper<'v> {
        let vs = binding.value_sets();
        let engine = binding.engine();
        Mapper {
            binding,
            vs,
            vocab: engine.vocabulary(),
            subject_ingredient: engine.subject(),
            opts,
            indication: vs.find_kind(Kind::Indication),
            subject: vs.find_kind(Kind::Subject),
            also: &[],
        }
    }

    /// This mapper, with the mappers of more packs that screen after its own (each from its own
    /// [`Binding`]: its pack's engine and value sets).
    ///
    /// Several drugs screened in one pass differ in which order is screened (each pack's subject set
    /// finds its own drug's order, whose dose and reason fill that pack's facts; another drug's order
    /// is a comedication there) and in the sets a pack brings, so each pack reads the patient's
    /// resources into its own facts: [`Mapper::patient`] and [`Mapper::resource`] hand every resource to
    /// every pack as it is read, so an input is read and parsed once, and [`Mapper::profiles`] makes one
    /// profile per pack. Orders being placed ([`Mapper::draft_order`]) are read by this mapper only.
    pub fn with_packs(self, also: &'v [Mapper<'v>]) -> Mapper<'v> {
        Mapper { also, ..self }
    }

    /// The mappers of the packs that screen, in order: this one, then those of [`Mapper::with_packs`].
    pub fn packs(&self) -> impl Iterator<Item = &Mapper<'v>> {
        std::iter::once(self).chain(self.also)
    }

    /// Whether more than one pack screens through this mapper.
    pub fn several(&self) -> bool {
        !self.also.is_empty()
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The engine the value sets are bound to: it screens the profiles this mapper makes.
    pub fn engine(&self) -> &'v Engine {
        self.binding.engine()
    }

    /// The drug screened, as the subject value set names it (its `id`: `baclofen`), for provenance
    /// notes; `the drug` without a subject set.
    fn drug(&self) -> &str {
        self.subject.map_or("drug", |s| self.vs.set(s).id.as_str())
    }

    /// The profile fact the daily dose of the order screened fills, as the subject value set says.
    fn daily_dose_fact(&self) -> Option<&str> {
        self.subject
            .and_then(|s| self.vs.set(s).fills.daily_dose_fact.as_deref())
    }

    /// Run `read` with this mapper on `facts`, then with each pack's after it on that pack's facts.
    fn each_pack(&self, facts: &mut PatientFacts, read: impl Fn(&Mapper<'v>, &mut PatientFacts)) {
        read(self, facts);
        for (k, m) in self.also.iter().enumerate() {
            read(m, facts.pack_mut(k, self.also.len()));
        }
    }

    /// Read a `Patient` resource into `facts` (and, with several packs, into each pack's).
    pub fn patient(&self, r: &Value, at: &Loc<'_>, facts: &mut PatientFacts) {
        self.each_pack(facts, |m, f| m.patient_one(r, at, f));
    }

    fn patient_one(&self, r: &Value, at: &Loc<'_>, facts: &mut PatientFacts) {
        let mut g = Getter::new(r, at, &mut facts.problems);
        facts.has_patient = true;
        facts.input = at.input.to_owned();
        facts.line = at.line;
        if let Some(gender) = g.str(r, "gender", "/gender") {
            if matches!(gender, "male" | "female" | "other" | "unknown") {
                facts.gender = Some(gender.to_owned());
            } else {
                g.problem(
                    "invalid_enum",
                    "/gender",
                    "`gender` is not one of `male`, `female`, `other`, `unknown`".into(),
                );
            }
        }
        if let Some(b) = g.str(r, "birthDate", "/birthDate") {
            match Date::parse(b) {
                Some(d) => facts.birth = Some((d, b.to_owned())),
                None => g.problem(
                    "invalid_date",
                    "/birthDate",
                    "`birthDate` is not a FHIR date".into(),
                ),
            }
        }
        if let Some(true) = g.bool(r, "deceasedBoolean", "/deceasedBoolean") {
            facts.deceased = Some("deceased (`deceasedBoolean` is true)".into());
        }
        if let Some(s) = g.str(r, "deceasedDateTime", "/deceasedDateTime") {
            match Date::parse(s) {
                Some(d) if d <= self.opts.as_of => {
                    facts.deceased = Some(format!(
                        "deceased on {d}, on or before the evaluation date {}",
                        self.opts.as_of
                    ));
                }
                Some(_) => {}
                None => g.problem(
                    "invalid_date",
                    "/deceasedDateTime",
                    "`deceasedDateTime` is not a FHIR dateTime".into(),
                ),
            }
        }
    }

    /// Read a Condition, Observation, MedicationRequest or MedicationStatement that refers to this
    /// patient. `medication` resolves a `medicationReference` that is not contained.
    pub fn resource(
        &self,
        r: &Value,
        kind: &str,
        at: &Loc<'_>,
        facts: &mut PatientFacts,
        medication: &dyn Fn(&str) -> Option<MedInfo>,
    ) {
        self.each_pack(facts, |m, facts| {
            facts.resources += 1;
            match kind {
                "Condition" => m.condition(r, at, facts),
                "Observation" => m.observation(r, at, facts),
                "MedicationRequest" | "MedicationStatement" => {
                    m.medication_use(r, kind, at, facts, medication, None);
                }
                _ => {}
            }
        });
    }

    /// Read an order being placed (a CDS Hooks draft order: a MedicationRequest, or a DSTU2
    /// MedicationOrder), whatever its status and date. An order of the drug screened (the subject value
    /// set) becomes the order being screened (its dose and reason feed the profile), ahead of any
    /// recorded order of it and of a later draft; any other drug becomes a comedication, since it will
    /// be taken with the drug. `subject` is the caller's decision that this order is of the drug (it
    /// may know brand names the value sets do not). Several drafts of the drug add up their daily doses
    /// (unknown if one is).
    pub fn draft_order(
        &self,
        r: &Value,
        kind: &str,
        at: &Loc<'_>,
        facts: &mut PatientFacts,
        medication: &dyn Fn(&str) -> Option<MedInfo>,
        subject: bool,
    ) {
        facts.resources += 1;
        self.medication_use(r, kind, at, facts, medication, Some(subject));
    }

    /// The medication an order or statement names (its codeable concept, a contained Medication, or
    /// one `medication` resolves), or `None` when it names none that can be read.
    pub fn order_medication(
        &self,
        r: &Value,
        medication: &dyn Fn(&str) -> Option<MedInfo>,
    ) -> Option<MedInfo> {
        let resource = resource_name(r);
        if let Some(cc) = r.get("medicationCodeableConcept") {
            return cc.is_object().then(|| MedInfo {
                resource,
                product: med_entry(cc),
                ingredients: Vec::new(),
            });
        }
        let reference = r.get("medicationReference")?.get("reference")?.as_str()?;
        match reference.strip_prefix('#') {
            Some(id) => contained(r, id).map(|m| med_info(m, &format!("{resource}#{id}"))),
            None => medication(reference),
        }
    }

    fn condition(&self, r: &Value, at: &Loc<'_>, facts: &mut PatientFacts) {
        let mut g = Getter::new(r, at, &mut facts.problems);
        let ver = g.concept_codes(r, "verificationStatus");
        if ver
            .iter()
            .any(|c| c == "refuted" || c == "entered-in-error")
        {
            return;
        }
        let recorded = g.date(r, "recordedDate");
        let onset = g
            .date(r, "onsetDateTime")
            .or_else(|| g.period_start(r, "onsetPeriod"));
        let as_of = self.opts.as_of;
        if recorded.as_ref().is_some_and(|d| d.0 > as_of)
            || onset.as_ref().is_some_and(|d| d.0 > as_of)
        {
            return;
        }
        let abatement = g
            .date(r, "abatementDateTime")
            .or_else(|| g.period_end(r, "abatementPeriod"));
        let status = g.concept_codes(r, "clinicalStatus");
        let active_status = if status.is_empty() {
            // R4 con-4: a condition with an abatement is not active.
            abatement.is_none()
        } else {
            status
                .iter()
                .any(|c| matches!(c.as_str(), "active" | "recurrence" | "relapse"))
        };
        // Resolved after the evaluation date: it was still active then.
        let active = match &abatement {
            Some((d, _)) if *d > as_of => true,
            Some(_) if !status.is_empty() && active_status => true,
            Some(_) => false,
            None => active_status,
        };
        let date = onset.or(recorded).map(|d| d.1);
        let Some(code) = g.obj(r, "code", "/code") else {
            return;
        };
        let resource = g.resource_name();
        let mut hits = Vec::new();
        for (system, c, display) in g.codings(code, "/code") {
            hits.clear();
            self.vs.lookup(List::Condition, system, &c, &mut hits);
            for h in &hits {
                let set = self.vs.set(h.set);
                // Only problem-list kinds read Conditions (an indication set's codes are reasons).
                if !matches!(set.fills.kind, Kind::Condition | Kind::Status) {
                    continue;
                }
                let entry = self.vs.code(List::Condition, *h);
                if facts
                    .conds
                    .iter()
                    .any(|x| x.set == h.set && x.prov.resource == resource)
                {
                    continue;
                }
                let stage = entry.stage.map(|s| match &entry.note {
                    Some(n) => format!("CKD stage {}; {n}", s.as_str()),
                    None => format!("CKD stage {}", s.as_str()),
                });
                facts.conds.push(CondHit {
                    set: h.set,
                    active,
                    stage: entry.stage,
                    prov: Prov {
                        resource: resource.clone(),
                        system: Some(system.name()),
                        code: Some(c.clone()),
                        display: display.clone().or_else(|| Some(entry.display.clone())),
                        date: date.clone(),
                        valueset: Some(set.id.clone()),
                        note: match (stage, active) {
                            (Some(s), true) => Some(s),
                            (Some(s), false) => Some(format!("{s}; not active")),
                            (None, false) => Some("not active; counts as history".into()),
                            (None, true) => None,
                        },
                    },
                });
            }
        }
    }

    fn observation(&self, r: &Value, at: &Loc<'_>, facts: &mut PatientFacts) {
        let mut g = Getter::new(r, at, &mut facts.problems);
        let status = g.str(r, "status", "/status").unwrap_or("");
        if !matches!(status, "final" | "amended" | "corrected") {
            return;
        }
        let Some(code) = g.obj(r, "code", "/code") else {
            return;
        };
        let codes = g.codings(code, "/code");
        let mut hits = Vec::new();
        for (system, c, _) in &codes {
            self.vs.lookup(List::Observation, *system, c, &mut hits);
        }
        let has_components = r.get("component").is_some();
        if hits.is_empty() && !has_components {
            return;
        }
        let date = g
            .date(r, "effectiveDateTime")
            .or_else(|| g.date(r, "effectiveInstant"))
            .or_else(|| g.period_end(r, "effectivePeriod"))
            .or_else(|| g.period_start(r, "effectivePeriod"))
            .or_else(|| g.date(r, "issued"));
        let Some((date, stamp)) = date else {
            return;
        };
        if date > self.opts.as_of {
            return;
        }
        let resource = g.resource_name();
        let prov = |set: usize, code: &str, display: String, note: Option<String>| Prov {
            resource: resource.clone(),
            system: Some("loinc"),
            code: Some(code.to_owned()),
            display: Some(display),
            date: Some(stamp.clone()),
            valueset: Some(self.vs.set(set).id.clone()),
            note,
        };
        for h in hits.iter().copied() {
            let set = self.vs.set(h.set);
            let entry = self.vs.code(List::Observation, h);
            match set.fills.kind {
                Kind::Observation => {
                    let Some(reading) = g.quantity(r, "", &set.units) else {
                        continue;
                    };
                    let Some(value) = self.admit(h.set, reading.value) else {
                        continue;
                    };
                    let rank = set.fills.measure_rank(entry.measure.as_deref());
                    let p = prov(h.set, &entry.code, entry.display.clone(), reading.note);
                    let value = ObsValue::Number(value);
                    self.keep_number(&mut facts.obs, (h.set, rank), (date, &stamp), value, p);
                }
                Kind::RatioToUpperLimit => {
                    // The latest result decides: one that gives no ratio (no upper limit in its
                    // unit) leaves the fact unknown rather than let an older, lower one stand.
                    let ratio = ratio_to_upper_limit(&mut g, r, &set.units)
                        .and_then(|(ratio, note)| Some((self.admit(h.set, ratio)?, note)));
                    let (value, note) = match ratio {
                        Some((v, note)) => (ObsValue::Number(v), Some(note)),
                        None => (ObsValue::Unusable, None),
                    };
                    let p = prov(h.set, &entry.code, entry.display.clone(), note);
                    self.keep_number(&mut facts.obs, (h.set, 0), (date, &stamp), value, p);
                }
                Kind::Status => {
                    let Some((answer, shown)) = self.answer(&mut g, r, h.set) else {
                        continue;
                    };
                    // A status is the latest answer, whatever its age: no look-back window.
                    let d = Dated {
                        date,
                        stamp: stamp.clone(),
                        value: ObsValue::Answer(answer),
                        prov: prov(h.set, &entry.code, shown, None),
                    };
                    keep_latest(&mut facts.obs, (h.set, 0), d);
                }
                Kind::Condition | Kind::Indication | Kind::Subject => {}
            }
        }
        // Values reported in components (a panel, or several values under one code), for the sets
        // that read them: of one Observation's components, the lowest is kept.
        if !self.vs.sets().iter().any(|s| s.fills.lowest_component) {
            return;
        }
        let Some(components) = g.arr(r, "component", "/component") else {
            return;
        };
        let mut best: Vec<(usize, f64, Prov, usize)> = Vec::new();
        for (i, comp) in components.iter().enumerate() {
            let base = format!("/component/{i}");
            let Some(ccode) = g.obj(comp, "code", &format!("{base}/code")) else {
                continue;
            };
            for (system, c, _) in g.codings(ccode, &format!("{base}/code")) {
                let mut ch = Vec::new();
                self.vs.lookup(List::Observation, system, &c, &mut ch);
                let Some(h) = ch
                    .into_iter()
                    .find(|h| self.vs.set(h.set).fills.lowest_component)
                else {
                    continue;
                };
                let set = self.vs.set(h.set);
                let entry = self.vs.code(List::Observation, h);
                let Some(reading) = g.quantity(comp, &base, &set.units) else {
                    continue;
                };
                let Some(value) = self.admit(h.set, reading.value) else {
                    continue;
                };
                let at = best.iter().position(|b| b.0 == h.set);
                if at.is_some_and(|k| best.get(k).is_some_and(|b| value >= b.1)) {
                    continue;
                }
                let note = Some(match reading.note {
                    Some(n) => format!("{n}; from a component, lowest of several kept"),
                    None => format!(
                        "from a component; the lowest {} component is kept",
                        set.fills.label
                    ),
                });
                let rank = set.fills.measure_rank(entry.measure.as_deref());
                let kept = (
                    h.set,
                    value,
                    prov(h.set, &entry.code, entry.display.clone(), note),
                    rank,
                );
                match at.and_then(|k| best.get_mut(k)) {
                    Some(b) => *b = kept,
                    None => best.push(kept),
                }
            }
        }
        for (set, value, p, rank) in best {
            let value = ObsValue::Number(value);
            self.keep_number(&mut facts.obs, (set, rank), (date, &stamp), value, p);
        }
    }

    /// `value` as a value of set `set`'s number fact: not below 0 or the fact's minimum, and integral
    /// for an integer fact (a value above the maximum is capped when the profile is written, and says
    /// so).
    fn admit(&self, set: usize, value: f64) -> Option<f64> {
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        match self.binding.fact(set) {
            Some(FactKind::Number { min, integer, .. }) => (min.is_none_or(|m| value >= m)
                && (!integer || value.fract() == 0.0))
                .then_some(value),
            _ => Some(value),
        }
    }

    /// Keep `value` for `(set, rank)` if it is inside the set's look-back window and newer than what is
    /// kept.
    fn keep_number(
        &self,
        obs: &mut Vec<ObsHit>,
        (set, rank): (usize, usize),
        (date, stamp): (Date, &str),
        value: ObsValue,
        prov: Prov,
    ) {
        let days = self
            .vs
            .set(set)
            .fills
            .lookback_days
            .unwrap_or(self.opts.lookback_days);
        let earliest = self.opts.as_of.days() - i64::from(days);
        if date.days() < earliest {
            return;
        }
        let d = Dated {
            date,
            stamp: stamp.to_owned(),
            value,
            prov,
        };
        keep_latest(obs, (set, rank), d);
    }

    /// The answer of a status observation: `Some((value, display))`, `value` `None` for "unknown".
    fn answer(
        &self,
        g: &mut Getter<'_, '_>,
        r: &Value,
        set: usize,
    ) -> Option<(Option<bool>, String)> {
        if let Some(b) = g.bool(r, "valueBoolean", "/valueBoolean") {
            return Some((Some(b), format!("valueBoolean {b}")));
        }
        let concept = g.obj(r, "valueCodeableConcept", "/valueCodeableConcept")?;
        let mut hits = Vec::new();
        for (system, c, display) in g.codings(concept, "/valueCodeableConcept") {
            hits.clear();
            self.vs.lookup(List::Answer, system, &c, &mut hits);
            if let Some(h) = hits.iter().find(|h| h.set == set) {
                let entry = self.vs.code(List::Answer, *h);
                let shown = display.unwrap_or_else(|| entry.display.clone());
                return Some((entry.value.flatten(), format!("{c} {shown}")));
            }
        }
        None
    }

    fn medication_use(
        &self,
        r: &Value,
        kind: &str,
        at: &Loc<'_>,
        facts: &mut PatientFacts,
        resolve: &dyn Fn(&str) -> Option<MedInfo>,
        draft_subject: Option<bool>,
    ) {
        let draft = draft_subject.is_some();
        let mut g = Getter::new(r, at, &mut facts.problems);
        let status = g.str(r, "status", "/status").unwrap_or("");
        if status != "active" && !draft {
            return;
        }
        let as_of = self.opts.as_of;
        let date = match kind {
            "MedicationRequest" => g.date(r, "authoredOn"),
            "MedicationOrder" => g.date(r, "dateWritten"),
            _ => g
                .date(r, "effectiveDateTime")
                .or_else(|| g.period_start(r, "effectivePeriod"))
                .or_else(|| g.date(r, "dateAsserted")),
        };
        if date.as_ref().is_some_and(|d| d.0 > as_of) && !draft {
            return;
        }
        if kind == "MedicationStatement"
            && g.period_end(r, "effectivePeriod")
                .is_some_and(|d| d.0 < as_of)
        {
            return;
        }
        let resource = g.resource_name();
        // What a reference's `display` says, for a reference that resolves nowhere or has none.
        let named = r
            .pointer("/medicationReference/display")
            .and_then(Value::as_str)
            .filter(|d| !d.trim().is_empty())
            .map(|d| MedInfo {
                resource: resource.clone(),
                product: MedEntry {
                    name: Some(d.to_owned()),
                    ..MedEntry::default()
                },
                ingredients: Vec::new(),
            });
        let info = if let Some(cc) = r.get("medicationCodeableConcept") {
            if !cc.is_object() {
                g.problem(
                    "type_mismatch",
                    "/medicationCodeableConcept",
                    "`medicationCodeableConcept` is not an object".into(),
                );
                return;
            }
            MedInfo {
                resource: resource.clone(),
                product: med_entry(cc),
                ingredients: Vec::new(),
            }
        } else if let Some(reference) = g.reference(r, "medicationReference") {
            let found = if let Some(id) = reference.strip_prefix('#') {
                contained(r, id).map(|m| med_info(m, &format!("{resource}#{id}")))
            } else {
                resolve(&reference)
            };
            match (found, named) {
                (Some(m), _) => m,
                // Not resolved, but the reference names the drug: that name is what is known.
                (None, Some(m)) => m,
                (None, None) => {
                    g.problem(
                        "broken_reference",
                        "/medicationReference/reference",
                        format!("`medicationReference` `{reference}` does not resolve to a Medication in this input"),
                    );
                    return;
                }
            }
        } else if let Some(m) = named {
            // A reference that only names the drug.
            m
        } else {
            g.problem(
                "missing_field",
                "",
                format!(
                    "the {kind} has neither `medicationCodeableConcept` nor `medicationReference`"
                ),
            );
            return;
        };
        let date_text = date.as_ref().map(|d| d.1.clone());
        // The drug screened by another route (intrathecal, for baclofen) is not the order screened: it is
        // listed as a comedication whose name says the route, so the rules can tell it from a duplicate
        // oral order. A draft is the order screened when the caller says so, whatever its route.
        let is_drug = self.is_subject(&info);
        let route = if is_drug {
            self.other_route(r, &info)
        } else {
            None
        };
        if draft_subject.unwrap_or(is_drug && route.is_none()) {
            let order = SubjectOrder {
                dose_mg: self.daily_dose_mg(r, &info),
                indication: self.indication(r, &resource, date_text.as_deref()),
            };
            let (d, stamp) = date.unwrap_or((
                Date {
                    year: -9999,
                    month: 1,
                    day: 1,
                },
                String::new(),
            ));
            let dated = Dated {
                date: d,
                stamp: stamp.clone(),
                value: order,
                prov: Prov {
                    resource: resource.clone(),
                    system: info.product.rxnorm.first().map(|_| "rxnorm"),
                    code: info.product.rxnorm.first().cloned(),
                    display: info.product.name.clone(),
                    date: date_text,
                    valueset: self.subject.map(|s| self.vs.set(s).id.clone()),
                    note: None,
                },
            };
            if draft {
                match &mut facts.subject_order {
                    Some(first) if facts.subject_draft => {
                        first.value.dose_mg = match (first.value.dose_mg, dated.value.dose_mg) {
                            (Some(a), Some(b)) => Some(round2(a + b)),
                            _ => None,
                        };
                    }
                    _ => {
                        facts.subject_order = Some(dated);
                        facts.subject_draft = true;
                    }
                }
            } else if !facts.subject_draft && dated.newer_than(&facts.subject_order) {
                // Of several active orders of the drug by mouth (or with no route), the latest is the
                // order screened; the others are read as earlier orders it renews, not as duplicates.
                facts.subject_order = Some(dated);
            }
            return;
        }
        let entries = if info.ingredients.is_empty() {
            vec![info.product.clone()]
        } else {
            info.ingredients.clone()
        };
        for mut e in entries {
            let mut note = (info.resource != resource).then(|| format!("via {}", info.resource));
            if let Some(label) = route {
                e.name = Some(self.route_name(e.name.as_deref(), label));
                note = Some(join_notes(
                    note.as_deref(),
                    &format!("{label} route: not the order screened"),
                ));
            }
            let prov = Prov {
                resource: resource.clone(),
                system: None,
                code: None,
                display: e.name.clone(),
                date: date_text.clone(),
                valueset: None,
                note,
            };
            facts.meds.push((e, prov));
        }
    }

    /// The label of the subject set's other route (`intrathecal`) when the order names it: a route
    /// coding in the set, or one of its terms as whole words in the route, the dosage text or the
    /// medication (text, displays, a resolved Medication).
    pub fn other_route(&self, r: &Value, m: &MedInfo) -> Option<&'v str> {
        let s = self.subject?;
        let set = self.vs.set(s);
        let route = set.other_route.as_ref()?;
        let mut texts: Vec<&str> = Vec::new();
        let mut hits = Vec::new();
        for d in r
            .get("dosageInstruction")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            texts.extend(d.get("text").and_then(Value::as_str));
            let Some(rt) = d.get("route") else { continue };
            texts.extend(rt.get("text").and_then(Value::as_str));
            for c in rt
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                texts.extend(c.get("display").and_then(Value::as_str));
                let system = c
                    .get("system")
                    .and_then(Value::as_str)
                    .and_then(System::from_uri);
                if let (Some(system), Some(code)) = (system, c.get("code").and_then(Value::as_str))
                {
                    hits.clear();
                    self.vs.lookup(List::Route, system, code, &mut hits);
                    if hits.iter().any(|h| h.set == s) {
                        return Some(route.label.as_str());
                    }
                }
            }
        }
        if let Some(cc) = r.get("medicationCodeableConcept") {
            texts.extend(cc.get("text").and_then(Value::as_str));
            for c in cc
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                texts.extend(c.get("display").and_then(Value::as_str));
            }
        }
        texts.extend(
            r.pointer("/medicationReference/display")
                .and_then(Value::as_str),
        );
        texts.extend(m.product.name.as_deref());
        texts.extend(m.ingredients.iter().filter_map(|i| i.name.as_deref()));
        let found = texts.iter().any(|t| {
            let t = words(t);
            route.terms.iter().any(|term| t.contains(&words(term)))
        });
        found.then_some(route.label.as_str())
    }

    /// `name` made to say the drug and the route as whole words (`Gablofen 50 MCG/ML (baclofen,
    /// intrathecal)`), so that the rule for a second route can read both from the text.
    fn route_name(&self, name: Option<&str>, label: &str) -> String {
        let drug = self
            .subject
            .and_then(|s| self.vs.set(s).medication_names.first())
            .map_or("", String::as_str);
        let base = name.filter(|n| !n.trim().is_empty()).unwrap_or(drug);
        let have = words(base);
        let missing: Vec<&str> = [drug, label]
            .into_iter()
            .filter(|w| !w.is_empty() && !have.contains(&words(w)))
            .collect();
        let base = truncate(base, MAX_NAME - 40);
        if missing.is_empty() {
            base
        } else if base.is_empty() {
            missing.join(" ")
        } else {
            format!("{base} ({})", missing.join(", "))
        }
    }

    /// The RxNorm code the profile takes: the first the vocabulary recognises, else the first.
    pub fn pick_rxnorm<'e>(&self, e: &'e MedEntry) -> Option<&'e str> {
        e.rxnorm
            .iter()
            .find(|c| {
                self.recognised(CodedMedication {
                    rxnorm: Some((*c).clone()),
                    ..CodedMedication::default()
                })
            })
            .or(e.rxnorm.first())
            .map(String::as_str)
    }

    /// The ATC code the profile takes: the first the vocabulary recognises (by code or class group),
    /// else the first.
    pub fn pick_atc<'e>(&self, e: &'e MedEntry) -> Option<&'e str> {
        e.atc
            .iter()
            .find(|c| {
                self.recognised(CodedMedication {
                    atc: Some((*c).clone()),
                    ..CodedMedication::default()
                })
            })
            .or(e.atc.first())
            .map(String::as_str)
    }

    fn recognised(&self, c: CodedMedication) -> bool {
        self.vocab
            .match_medication(&Medication::Coded(c))
            .recognized()
    }

    /// Whether the vocabulary reads this coded medication as the drug screened.
    fn vocab_subject(&self, c: CodedMedication) -> bool {
        self.subject_ingredient.is_some_and(|s| {
            self.vocab
                .match_medication(&Medication::Coded(c))
                .ingredients
                .contains(&s)
        })
    }

    /// Whether a medication is the drug being screened: the `subject` value set (its RxNorm codes,
    /// products containing it, its name in the text) or, with the engine's vocabulary, any RxNorm or
    /// ATC code or the name that the vocabulary reads as the pack's subject. Every coding counts, not
    /// only the first.
    pub fn is_subject(&self, m: &MedInfo) -> bool {
        let Some(s) = self.subject else { return false };
        let set = self.vs.set(s);
        std::iter::once(&m.product).chain(&m.ingredients).any(|e| {
            e.rxnorm.iter().any(|code| {
                let mut h = Vec::new();
                self.vs
                    .lookup(List::Medication, System::Rxnorm, code, &mut h);
                h.iter().any(|h| h.set == s)
                    || self.vocab_subject(CodedMedication {
                        rxnorm: Some(code.clone()),
                        ..CodedMedication::default()
                    })
            }) || e.atc.iter().any(|code| {
                self.vocab_subject(CodedMedication {
                    atc: Some(code.clone()),
                    ..CodedMedication::default()
                })
            }) || e.name.as_deref().is_some_and(|n| {
                let lower = n.to_lowercase();
                set.medication_names
                    .iter()
                    .any(|t| lower.contains(t.as_str()))
                    || self.vocab_subject(CodedMedication {
                        name: Some(n.to_owned()),
                        ..CodedMedication::default()
                    })
            })
        })
    }

    /// mg per day from the first concurrent dosage instructions, when dose, unit and timing allow.
    fn daily_dose_mg(&self, r: &Value, m: &MedInfo) -> Option<f64> {
        let strength = m.product.rxnorm.iter().find_map(|code| {
            let s = self.subject?;
            let mut h = Vec::new();
            self.vs
                .lookup(List::Medication, System::Rxnorm, code, &mut h);
            h.into_iter()
                .filter(|h| h.set == s)
                .find_map(|h| self.vs.code(List::Medication, h).strength_mg)
        });
        let strength = strength.or_else(|| m.product.name.as_deref().and_then(tablet_strength_mg));
        let dosages = r.get("dosageInstruction")?.as_array()?;
        let first_seq = dosages.first()?.get("sequence").and_then(Value::as_i64);
        let mut total = 0.0;
        for d in dosages {
            if d.get("sequence").and_then(Value::as_i64) != first_seq {
                continue;
            }
            // R4 nests the dose in `doseAndRate`; STU3 and DSTU2 put it on the dosage itself.
            let rate = d
                .get("doseAndRate")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .unwrap_or(d);
            let q = rate
                .get("doseQuantity")
                .or_else(|| rate.get("doseRange").and_then(|x| x.get("high")))?;
            let value = q.get("value")?.as_f64()?;
            let unit = q
                .get("code")
                .or_else(|| q.get("unit"))
                .and_then(Value::as_str)
                .map(|u| u.trim().to_ascii_lowercase());
            let mg = match unit.as_deref() {
                Some("mg") => value,
                Some("g") => value * 1000.0,
                None | Some("tab" | "tablet" | "tablets" | "{tbl}" | "{tablet}" | "1") => {
                    value * strength?
                }
                Some(_) => return None,
            };
            let rep = d.get("timing")?.get("repeat")?;
            let freq = rep.get("frequency").and_then(Value::as_f64).unwrap_or(1.0);
            let period = rep.get("period").and_then(Value::as_f64)?;
            if period.is_nan() || period <= 0.0 {
                return None;
            }
            let unit = rep.get("periodUnit").or_else(|| rep.get("periodUnits")); // DSTU2
            let per_day = match unit.and_then(Value::as_str)? {
                "min" => 1440.0 / period,
                "h" => 24.0 / period,
                "d" => 1.0 / period,
                "wk" => 1.0 / (7.0 * period),
                "mo" => 1.0 / (30.0 * period),
                "a" => 1.0 / (365.0 * period),
                _ => return None,
            };
            total += mg * freq * per_day;
        }
        (total.is_finite() && total > 0.0 && total <= 1000.0)
            .then_some((total * 100.0).round() / 100.0)
    }

    /// The indication the order's reasonCode gives, when a value set fills one: a code of the set
    /// gives its label, else the first reason's text passes through (cut to the fact's length).
    fn indication(&self, r: &Value, resource: &str, date: Option<&str>) -> Option<(String, Prov)> {
        let set = self.indication?;
        let reasons = r.get("reasonCode")?.as_array()?;
        let mut hits = Vec::new();
        let mut first_text = None;
        for reason in reasons {
            for coding in reason
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(system), Some(code)) = (
                    coding
                        .get("system")
                        .and_then(Value::as_str)
                        .and_then(System::from_uri),
                    coding.get("code").and_then(Value::as_str),
                ) else {
                    continue;
                };
                hits.clear();
                self.vs.lookup(List::Condition, system, code, &mut hits);
                if let Some(h) = hits.iter().find(|h| h.set == set) {
                    let entry = self.vs.code(List::Condition, *h);
                    let label = entry.label.clone().unwrap_or_else(|| entry.display.clone());
                    let mut prov = Prov::of(resource);
                    prov.system = Some(system.name());
                    prov.code = Some(code.to_owned());
                    prov.display = coding
                        .get("display")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    prov.date = date.map(str::to_owned);
                    prov.valueset = Some(self.vs.set(h.set).id.clone());
                    prov.note = Some(format!("reasonCode of the {} order", self.drug()));
                    return Some((label, prov));
                }
            }
            if first_text.is_none() {
                first_text = reason
                    .get("text")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        reason
                            .get("coding")
                            .and_then(Value::as_array)
                            .and_then(|c| c.iter().find_map(|c| c.get("display")?.as_str()))
                    })
                    .map(str::to_owned);
            }
        }
        let max_len = match self.binding.fact(set) {
            Some(FactKind::Text {
                max_len: Some(m), ..
            }) => usize::try_from(*m).unwrap_or(usize::MAX),
            _ => 1000,
        };
        first_text.filter(|t| !t.trim().is_empty()).map(|t| {
            let mut prov = Prov::of(resource);
            prov.date = date.map(str::to_owned);
            prov.note = Some(format!(
                "reasonCode text of the {} order (not coded in a value set)",
                self.drug()
            ));
            (truncate(&t, max_len), prov)
        })
    }

    /// One outcome per pack that screens ([`Mapper::packs`]), in order; or, when the patient is not
    /// screened (a problem any pack's reading found, no Patient, deceased...), that one outcome for
    /// them all, so it is reported once. With one pack, `[self.profile(facts)]`.
    pub fn profiles(&self, facts: &PatientFacts) -> Vec<Outcome> {
        if self.also.is_empty() {
            return vec![self.profile(facts)];
        }
        let problems = facts.all_problems();
        if !problems.is_empty() {
            return vec![Outcome::Invalid(problems)];
        }
        let first = self.profile(facts);
        if !matches!(first, Outcome::Profile { .. }) {
            return vec![first];
        }
        let mut out = vec![first];
        for (k, m) in self.also.iter().enumerate() {
            match m.profile(&facts.pack_view(k)) {
                o @ Outcome::Profile { .. } => out.push(o),
                // What is not screened is the patient's, not a pack's; should a pack disagree, its
                // reason is the patient's.
                other => return vec![other],
            }
        }
        out
    }

    /// Decide every field; the profile is checked against the schema by the caller.
    pub fn profile(&self, facts: &PatientFacts) -> Outcome {
        if !facts.problems.is_empty() {
            return Outcome::Invalid(facts.problems.clone());
        }
        let patient_ref = format!("Patient/{}", facts.id);
        let problem = |code, pointer: &str, message: String| FhirProblem {
            code,
            message,
            input: Some(facts.input.clone()),
            line: Some(facts.line),
            pointer: pointer.to_owned(),
            resource: Some(patient_ref.clone()),
        };
        if !facts.has_patient {
            return Outcome::Invalid(vec![problem(
                "broken_reference",
                "",
                format!(
                    "{} resource{} refer to `{patient_ref}`, which is not in the input",
                    facts.resources,
                    if facts.resources == 1 { "" } else { "s" }
                ),
            )]);
        }
        if let Some(reason) = &facts.deceased {
            return Outcome::Skipped(reason.clone());
        }
        let mut p = Map::new();
        let mut prov: BTreeMap<String, Vec<Prov>> = BTreeMap::new();
        p.insert("id".into(), json!(truncate(&facts.id, 128)));
        let Some((birth, birth_text)) = &facts.birth else {
            return Outcome::Invalid(vec![problem(
                "missing_field",
                "/birthDate",
                "the Patient has no `birthDate`, so no age can be computed".into(),
            )]);
        };
        let age = birth.years_until(self.opts.as_of);
        if !(0..=130).contains(&age) {
            return Outcome::Invalid(vec![problem(
                "out_of_range",
                "/birthDate",
                format!(
                    "age on the evaluation date {} would be {age}, outside 0 to 130",
                    self.opts.as_of
                ),
            )]);
        }
        p.insert("age".into(), json!(age));
        let mut pp = Prov::of(&patient_ref);
        pp.date = Some(birth_text.clone());
        pp.note = Some(format!("birthDate; age on {}", self.opts.as_of));
        prov.insert("/age".into(), vec![pp]);
        if let Some(gender) = &facts.gender {
            p.insert("sex".into(), json!(gender));
            let mut pp = Prov::of(&patient_ref);
            pp.note = Some("gender".into());
            prov.insert("/sex".into(), vec![pp]);
        }
        // Each value set fills its fact by its kind; the order's dose and indication come below.
        for (si, set) in self.vs.sets().iter().enumerate() {
            let fills = &set.fills;
            let Some(fact) = fills.fact.as_deref() else {
                continue;
            };
            let pointer = format!("/{fact}");
            let counted: Vec<Prov> = facts
                .conds
                .iter()
                .filter(|c| c.set == si && (c.active || fills.history))
                .map(|c| c.prov.clone())
                .collect();
            match fills.kind {
                Kind::Status => {
                    // The later of the latest answer and the latest counted condition decides; an
                    // answer "unknown" leaves it to the conditions. Never assumed from absence.
                    let obs =
                        facts
                            .obs
                            .iter()
                            .find(|o| o.set == si)
                            .and_then(|o| match o.dated.value {
                                ObsValue::Answer(Some(v)) => Some((v, &o.dated)),
                                _ => None,
                            });
                    let cond_date = counted
                        .iter()
                        .filter_map(|c| c.date.as_deref().and_then(Date::parse))
                        .max();
                    let decided = match obs {
                        Some((v, o)) if cond_date.is_none_or(|c| o.date >= c) => {
                            Some((v, vec![o.prov.clone()]))
                        }
                        _ if !counted.is_empty() => Some((true, counted)),
                        _ => None,
                    };
                    if let Some((v, from)) = decided {
                        p.insert(fact.into(), json!(v));
                        prov.insert(pointer, from);
                    }
                }
                Kind::Condition => {
                    if !counted.is_empty() {
                        p.insert(fact.into(), json!(true));
                        prov.insert(pointer, counted);
                    } else if self.opts.absent == Absent::False && facts.conditions_known {
                        p.insert(fact.into(), json!(false));
                    }
                    if let Some(stage_fact) = fills.stage_fact.as_deref() {
                        self.stage(facts, si, fills.history, stage_fact, &mut p, &mut prov);
                    }
                }
                Kind::Observation | Kind::RatioToUpperLimit => {
                    // The most preferred measure with a value in the window.
                    let kept = facts
                        .obs
                        .iter()
                        .filter(|o| o.set == si)
                        .min_by_key(|o| o.rank);
                    let Some((o, ObsValue::Number(mut value))) = kept.map(|o| (o, o.dated.value))
                    else {
                        continue;
                    };
                    let mut pv = o.dated.prov.clone();
                    let (max, integer) = match self.binding.fact(si) {
                        Some(FactKind::Number { max, integer, .. }) => (*max, *integer),
                        _ => (None, false),
                    };
                    if let Some(max) = max
                        && value > max
                    {
                        value = max;
                        pv.note = Some(join_notes(
                            pv.note.as_deref(),
                            &format!("above {max}, taken as {max}"),
                        ));
                    }
                    if o.rank > 0
                        && let Some(m) = fills.measures.get(o.rank)
                    {
                        pv.note = Some(join_notes(
                            pv.note.as_deref(),
                            &format!("{} used as a proxy for {}", m.label, fills.label),
                        ));
                    }
                    let written = if integer && value.fract() == 0.0 {
                        // Checked integral when read; a cap may not be.
                        json!(value as i64)
                    } else {
                        json!(round2(value))
                    };
                    p.insert(fact.into(), written);
                    prov.insert(pointer, vec![pv]);
                }
                Kind::Indication | Kind::Subject => {}
            }
        }
        // Medications.
        if let Some(b) = &facts.subject_order {
            // The fact the subject value set names for the dose (the pack declares it).
            if let (Some(dose), Some(fact)) = (b.value.dose_mg, self.daily_dose_fact()) {
                p.insert(fact.to_owned(), json!(dose));
                let mut pv = b.prov.clone();
                pv.note = Some(if facts.subject_draft {
                    format!(
                        "dose x frequency of the {} order(s) being placed",
                        self.drug()
                    )
                } else {
                    format!(
                        "dose x frequency of the latest active {} order",
                        self.drug()
                    )
                });
                prov.insert(format!("/{fact}"), vec![pv]);
            }
            let indication = self
                .indication
                .and_then(|s| self.vs.set(s).fills.fact.as_deref());
            if let (Some((text, pv)), Some(fact)) = (&b.value.indication, indication) {
                p.insert(fact.to_owned(), json!(text));
                prov.insert(format!("/{fact}"), vec![pv.clone()]);
            }
        }
        // A medication seen is listed even when the record's medication list as a whole was not
        // available (CDS Hooks: the other orders being placed, with no prefetch of active orders), so
        // that its interactions fire; the caller says the list is partial.
        let meds_known = !facts.meds.is_empty()
            || (facts.medications_known && self.opts.absent == Absent::False);
        if meds_known {
            let mut list = Vec::new();
            // Past the cap, the same drug from several resources (an order and a statement) is kept
            // once, so that repeats do not push other drugs out.
            let crowded = facts.meds.len() > MAX_COMEDICATIONS;
            let mut seen = std::collections::HashSet::new();
            let unique = facts.meds.iter().filter(|(m, _)| {
                !crowded
                    || seen.insert((
                        m.rxnorm.first().map(String::as_str),
                        m.name.as_deref().map(str::to_lowercase),
                    ))
            });
            for (i, (m, pv)) in unique.take(MAX_COMEDICATIONS).enumerate() {
                let mut o = Map::new();
                let mut pv = pv.clone();
                if let Some(name) = m.name.as_deref().filter(|n| !n.trim().is_empty()) {
                    o.insert("name".into(), json!(truncate(name, MAX_NAME)));
                }
                let rxnorm = self.pick_rxnorm(m);
                let atc = self.pick_atc(m);
                if let Some(code) = rxnorm {
                    o.insert("rxnorm".into(), json!(code));
                }
                if let Some(code) = atc {
                    o.insert("atc".into(), json!(code));
                }
                if let Some((system, code)) =
                    rxnorm.map(|c| ("rxnorm", c)).or(atc.map(|c| ("atc", c)))
                {
                    pv.system = Some(system);
                    pv.code = Some(code.to_owned());
                }
                if o.is_empty() {
                    o.insert("name".into(), json!("uncoded medication without text"));
                }
                list.push(Value::Object(o));
                prov.insert(format!("/comedications/{i}"), vec![pv]);
            }
            p.insert("comedications".into(), Value::Array(list));
        }
        Outcome::Profile {
            profile: Value::Object(p),
            provenance: prov,
        }
    }

    /// A staged CKD code also gives `stage_fact`: of several counted ones, the most severe, with the
    /// provenance of the conditions that give it.
    fn stage(
        &self,
        facts: &PatientFacts,
        si: usize,
        history: bool,
        stage_fact: &str,
        p: &mut Map<String, Value>,
        prov: &mut BTreeMap<String, Vec<Prov>>,
    ) {
        let staged = facts
            .conds
            .iter()
            .filter(|c| c.set == si && (c.active || history))
            .filter_map(|c| c.stage.map(|s| (stage_rank(s), s, c)));
        let Some(worst) = staged.clone().map(|x| x.0).max() else {
            return;
        };
        let from: Vec<&CondHit> = staged.filter(|x| x.0 == worst).map(|x| x.2).collect();
        let Some(stage) = from.first().and_then(|c| c.stage) else {
            return;
        };
        let others = staged_count(facts, si, history) - from.len();
        let provs = from
            .iter()
            .map(|c| {
                let mut pv = c.prov.clone();
                if others > 0 {
                    pv.note = Some(join_notes(
                        pv.note.as_deref(),
                        "the most severe of the active CKD stages recorded",
                    ));
                }
                pv
            })
            .collect();
        p.insert(stage_fact.to_owned(), json!(stage.as_str()));
        prov.insert(format!("/{stage_fact}"), provs);
    }
}

/// CKD stages from least to most severe.
fn stage_rank(s: CkdStage) -> u8 {
    match s {
        CkdStage::G1 => 1,
        CkdStage::G2 => 2,
        CkdStage::G3a => 3,
        CkdStage::G3b => 4,
        CkdStage::G4 => 5,
        CkdStage::G5 => 6,
    }
}

fn staged_count(facts: &PatientFacts, set: usize, history: bool) -> usize {
    facts
        .conds
        .iter()
        .filter(|c| c.set == set && (c.active || history) && c.stage.is_some())
        .count()
}

/// ` word word `: lower case, runs of letters or digits, one space between, padded, so that
/// `contains(&words(term))` matches whole words only.
fn words(text: &str) -> String {
    let mut out = String::from(" ");
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&w.to_lowercase());
        out.push(' ');
    }
    out
}

fn join_notes(a: Option<&str>, b: &str) -> String {
    match a {
        Some(a) => format!("{a}; {b}"),
        None => b.to_owned(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `baclofen 10 MG Oral Tablet` -> 10: one `N MG` amount of a solid single-ingredient product.
fn tablet_strength_mg(name: &str) -> Option<f64> {
    let lower = name.to_lowercase();
    if !lower.contains("tablet") || lower.contains('/') {
        return None;
    }
    let words: Vec<&str> = lower.split_whitespace().collect();
    let amounts: Vec<f64> = words
        .windows(2)
        .filter_map(|w| match w {
            [amount, "mg"] => amount.parse().ok(),
            _ => None,
        })
        .collect();
    match amounts.as_slice() {
        [one] if *one > 0.0 => Some(*one),
        _ => None,
    }
}

/// Every RxNorm and ATC code and the best name of a CodeableConcept.
pub fn med_entry(cc: &Value) -> MedEntry {
    let codings: &[Value] = cc
        .get("coding")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let code_of = |c: &Value, uri: &str| -> Option<String> {
        let system = c.get("system").and_then(Value::as_str)?;
        let ok = match uri {
            ATC_URI => system == ATC_URI,
            _ => System::from_uri(system) == Some(System::Rxnorm),
        };
        ok.then(|| c.get("code").and_then(Value::as_str))
            .flatten()
            .map(str::trim)
            .map(str::to_owned)
    };
    let rxnorm: Vec<String> = codings
        .iter()
        .filter_map(|c| code_of(c, "rxnorm"))
        .filter(|s| (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let atc: Vec<String> = codings
        .iter()
        .filter_map(|c| code_of(c, ATC_URI))
        .map(|s| s.to_ascii_uppercase())
        .filter(|s| medscreen_core::profile::is_atc(s))
        .collect();
    let rx_display = codings
        .iter()
        .find(|c| code_of(c, "rxnorm").is_some())
        .and_then(|c| c.get("display")?.as_str());
    let name = cc
        .get("text")
        .and_then(Value::as_str)
        .or(rx_display)
        .or_else(|| codings.iter().find_map(|c| c.get("display")?.as_str()))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned);
    MedEntry { rxnorm, atc, name }
}

/// A `Medication` resource reduced to its product code and coded ingredients.
pub fn med_info(m: &Value, resource: &str) -> MedInfo {
    let product = m.get("code").map(med_entry).unwrap_or_default();
    let ingredients = m
        .get("ingredient")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("itemCodeableConcept"))
        .map(med_entry)
        .filter(|e| !e.rxnorm.is_empty() || !e.atc.is_empty() || e.name.is_some())
        .collect();
    MedInfo {
        resource: resource.to_owned(),
        product,
        ingredients,
    }
}

fn contained<'a>(r: &'a Value, id: &str) -> Option<&'a Value> {
    r.get("contained")?.as_array()?.iter().find(|c| {
        c.get("id").and_then(Value::as_str) == Some(id)
            && c.get("resourceType").and_then(Value::as_str) == Some("Medication")
    })
}

/// Reads fields of one resource, recording a `type_mismatch` for a field of the wrong JSON type.
struct Getter<'a, 'p> {
    at: &'a Loc<'a>,
    resource: String,
    problems: &'p mut Vec<FhirProblem>,
}

impl<'a, 'p> Getter<'a, 'p> {
    fn new(r: &Value, at: &'a Loc<'a>, problems: &'p mut Vec<FhirProblem>) -> Getter<'a, 'p> {
        Getter {
            at,
            resource: resource_name(r),
            problems,
        }
    }

    fn resource_name(&self) -> String {
        self.resource.clone()
    }

    fn problem(&mut self, code: &'static str, rel: &str, message: String) {
        let p = self
            .at
            .problem(code, rel, Some(self.resource.clone()), message);
        self.problems.push(p);
    }

    fn mismatch(&mut self, rel: &str, key: &str, want: &str) {
        self.problem("type_mismatch", rel, format!("`{key}` is not {want}"));
    }

    fn str<'v>(&mut self, r: &'v Value, key: &str, rel: &str) -> Option<&'v str> {
        match r.get(key)? {
            Value::String(s) => Some(s),
            _ => {
                self.mismatch(rel, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, r: &Value, key: &str, rel: &str) -> Option<bool> {
        match r.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.mismatch(rel, key, "a boolean");
                None
            }
        }
    }

    fn obj<'v>(&mut self, r: &'v Value, key: &str, rel: &str) -> Option<&'v Value> {
        match r.get(key)? {
            v @ Value::Object(_) => Some(v),
            _ => {
                self.mismatch(rel, key, "an object");
                None
            }
        }
    }

    fn arr<'v>(&mut self, r: &'v Value, key: &str, rel: &str) -> Option<&'v Vec<Value>> {
        match r.get(key)? {
            Value::Array(a) => Some(a),
            _ => {
                self.mismatch(rel, key, "an array");
                None
            }
        }
    }

    fn date(&mut self, r: &Value, key: &str) -> Option<(Date, String)> {
        let rel = format!("/{key}");
        let s = self.str(r, key, &rel)?;
        match Date::parse(s) {
            Some(d) => Some((d, s.to_owned())),
            None => {
                self.problem("invalid_date", &rel, format!("`{key}` is not a FHIR date"));
                None
            }
        }
    }

    fn period_start(&mut self, r: &Value, key: &str) -> Option<(Date, String)> {
        let p = self.obj(r, key, &format!("/{key}"))?;
        self.date(p, "start")
    }

    fn period_end(&mut self, r: &Value, key: &str) -> Option<(Date, String)> {
        let p = self.obj(r, key, &format!("/{key}"))?;
        self.date(p, "end")
    }

    /// The codes of a status CodeableConcept (`clinicalStatus`, `verificationStatus`), any system.
    fn concept_codes(&mut self, r: &Value, key: &str) -> Vec<String> {
        let rel = format!("/{key}");
        let Some(cc) = self.obj(r, key, &rel) else {
            return Vec::new();
        };
        let Some(list) = cc.get("coding") else {
            return Vec::new();
        };
        let Some(list) = list.as_array() else {
            self.mismatch(&format!("{rel}/coding"), "coding", "an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            if let Some(code) = self.str(c, "code", &format!("{rel}/coding/{i}/code")) {
                out.push(code.to_owned());
            }
        }
        out
    }

    /// `(system, code, display)` of each coding in a system we match.
    fn codings(&mut self, cc: &Value, rel: &str) -> Vec<(System, String, Option<String>)> {
        let Some(list) = cc.get("coding") else {
            return Vec::new();
        };
        let Some(list) = list.as_array() else {
            self.mismatch(&format!("{rel}/coding"), "coding", "an array");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let at = format!("{rel}/coding/{i}");
            if !c.is_object() {
                self.mismatch(&at, "coding", "an object");
                continue;
            }
            let system = self.str(c, "system", &format!("{at}/system"));
            let code = self.str(c, "code", &format!("{at}/code"));
            let display = self.str(c, "display", &format!("{at}/display"));
            if let (Some(system), Some(code)) = (system.and_then(System::from_uri), code) {
                out.push((system, code.to_owned(), display.map(str::to_owned)));
            }
        }
        out
    }

    fn reference(&mut self, r: &Value, key: &str) -> Option<String> {
        let rel = format!("/{key}");
        let o = self.obj(r, key, &rel)?;
        self.str(o, "reference", &format!("{rel}/reference"))
            .map(str::to_owned)
    }

    /// A value from `valueQuantity` (in one of `units`, or with none) or `valueString` (a number,
    /// perhaps after a comparator) of `r`, a resource or a component at `base`.
    fn quantity(&mut self, r: &Value, base: &str, units: &[String]) -> Option<Reading> {
        if let Some(q) = r.get("valueQuantity") {
            let rel = format!("{base}/valueQuantity");
            if !q.is_object() {
                self.mismatch(&rel, "valueQuantity", "an object");
                return None;
            }
            let value = match q.get("value")? {
                Value::Number(n) => n.as_f64()?,
                _ => {
                    self.mismatch(&format!("{rel}/value"), "value", "a number");
                    return None;
                }
            };
            let named = unit_names(q);
            let unit_ok = named
                .iter()
                .any(|u| units.iter().any(|a| a.eq_ignore_ascii_case(u)));
            let no_unit = q.get("code").is_none() && q.get("unit").is_none();
            if !unit_ok && !no_unit {
                return None;
            }
            let comparator = q.get("comparator").and_then(Value::as_str);
            if value < 0.0 {
                return None;
            }
            let note = comparator.map(|c| format!("reported as `{c} {value}`; taken at its bound"));
            return Some(Reading {
                value,
                units: named,
                note,
            });
        }
        if let Some(s) = r.get("valueString") {
            let Some(s) = s.as_str() else {
                self.mismatch(&format!("{base}/valueString"), "valueString", "a string");
                return None;
            };
            let t = s.trim();
            let (comparator, rest) = [">=", "<=", ">", "<"]
                .iter()
                .find_map(|c| t.strip_prefix(c).map(|rest| (Some(*c), rest)))
                .unwrap_or((None, t));
            let number = rest.split_whitespace().next()?;
            let value: f64 = number
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
            let note = Some(match comparator {
                Some(c) => format!("reported as text `{c} {number}`; taken at its bound"),
                None => "reported as text".to_owned(),
            });
            return Some(Reading {
                value,
                units: Vec::new(),
                note,
            });
        }
        None
    }
}

/// A value read from an Observation or a component: the number, the units its quantity names
/// (`code` and `unit`, trimmed; none for text), and a note on how it was read.
struct Reading {
    value: f64,
    units: Vec<String>,
    note: Option<String>,
}

/// The `code` and `unit` a Quantity names, trimmed.
fn unit_names(q: &Value) -> Vec<String> {
    [q.get("code"), q.get("unit")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|u| u.trim().to_owned())
        .collect()
}

/// The value of an Observation over the upper limit of its own reference range, and a note saying so:
/// the `high` of each `referenceRange` whose `type` is `normal` (or not given), in the value's unit
/// (both name one in common, or neither names any). None without such a limit, or with several that
/// differ: no limit is ever assumed, since it differs between laboratories and populations.
fn ratio_to_upper_limit(
    g: &mut Getter<'_, '_>,
    r: &Value,
    units: &[String],
) -> Option<(f64, String)> {
    let reading = g.quantity(r, "", units)?;
    let ranges = g.arr(r, "referenceRange", "/referenceRange")?;
    let mut limit: Option<(f64, Vec<String>)> = None;
    for (i, range) in ranges.iter().enumerate() {
        let base = format!("/referenceRange/{i}");
        let meanings: Vec<&str> = range
            .pointer("/type/coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("code").and_then(Value::as_str))
            .collect();
        if range.get("type").is_some() && !meanings.contains(&"normal") {
            continue;
        }
        let Some(high) = g.obj(range, "high", &format!("{base}/high")) else {
            continue;
        };
        let value = match high.get("value") {
            Some(Value::Number(n)) => n.as_f64().filter(|v| *v > 0.0),
            Some(_) => {
                g.mismatch(&format!("{base}/high/value"), "value", "a number");
                None
            }
            None => None,
        };
        let Some(value) = value else { continue };
        let named = unit_names(high);
        let same = if named.is_empty() || reading.units.is_empty() {
            named.is_empty() && reading.units.is_empty()
        } else {
            named
                .iter()
                .any(|u| reading.units.iter().any(|v| v.eq_ignore_ascii_case(u)))
        };
        if !same {
            continue;
        }
        match &limit {
            Some((v, _)) if *v != value => return None,
            Some(_) => {}
            None => limit = Some((value, named)),
        }
    }
    let (high, named) = limit?;
    let unit = named.first().map(|u| format!(" {u}")).unwrap_or_default();
    let note = format!("divided by the upper limit of its reference range, {high}{unit}");
    let note = match reading.note {
        Some(n) => format!("{n}; {note}"),
        None => note,
    };
    Some((reading.value / high, note))
}

/// Keep `d` for `(set, rank)` when nothing is kept for it yet or it is newer (a later date, or the
/// same day at a later time).
fn keep_latest(obs: &mut Vec<ObsHit>, (set, rank): (usize, usize), d: Dated<ObsValue>) {
    match obs.iter_mut().find(|o| o.set == set && o.rank == rank) {
        Some(o) => {
            if (d.date, &d.stamp) > (o.dated.date, &o.dated.stamp) {
                o.dated = d;
            }
        }
        None => obs.push(ObsHit {
            set,
            rank,
            dated: d,
        }),
    }
}

/// `Type/id` of a resource, or its type alone when it has no id.
pub fn resource_name(r: &Value) -> String {
    let t = r
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource");
    match r.get("id").and_then(Value::as_str) {
        Some(id) => format!("{t}/{id}"),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Diagnostic, Loc, Location, tablet_strength_mg};

    #[test]
    fn fhir_problem_is_a_diagnostic_naming_resource_input_line_and_pointer() {
        let loc = Loc {
            input: "Condition.ndjson",
            line: 7,
            base: String::new(),
        };
        let p = loc.problem(
            "broken_reference",
            "/subject/reference",
            Some("Condition/abc".to_owned()),
            "`subject` refers to a patient the export does not define".to_owned(),
        );
        assert_eq!(
            (p.code(), p.message().as_ref(), p.help(), p.location()),
            (
                "broken_reference",
                "`subject` refers to a patient the export does not define",
                None,
                Location::Record {
                    input: Some("Condition.ndjson"),
                    line: Some(7),
                    index: None,
                    resource: Some("Condition/abc"),
                    pointer: "/subject/reference",
                },
            )
        );
        assert_eq!(
            p.to_string(),
            "`Condition/abc` in Condition.ndjson line 7 at /subject/reference: `subject` refers to a patient the export does not define"
        );
        let _: &dyn std::error::Error = &p;
    }

    #[test]
    fn strengths() {
        assert_eq!(tablet_strength_mg("baclofen 10 MG Oral Tablet"), Some(10.0));
        assert_eq!(tablet_strength_mg("Baclofen 20 mg oral tablet"), Some(20.0));
        assert_eq!(tablet_strength_mg("baclofen 5 MG/ML Oral Solution"), None);
        assert_eq!(tablet_strength_mg("baclofen oral tablet"), None);
    }
}
