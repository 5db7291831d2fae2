//! The CDS Hooks service without the HTTP: discovery, and a hook request turned into cards.
//!
//! A request is handled in two steps so that the HTTP layer can fetch between them without this
//! module knowing about networks: [`Cds::prepare`] parses and checks the request, decides whether a
//! baclofen order is being placed (no: no cards, and nothing else is read), gathers the prefetched
//! resources and names the prefetch that is missing; [`Cds::cards`] takes what the caller fetched, maps
//! the resources to a profile with the FHIR mapping of `medscreen fhir-profile`, screens it and writes
//! the cards.
//!
//! Prefetch is read liberally: a value may be `null` (the client has no data), a resource, a searchset
//! Bundle, an `OperationOutcome` (the client's prefetch failed: counted as missing) or the older
//! `{"response": ..., "resource": ...}` wrapping. A client that uses our template keys gets them checked:
//! a key it left out is fetched from `fhirServer` when it gave one with an access token, and otherwise
//! the request is refused with 412. A client that sends its own keys (none of ours) has built its
//! prefetch from its own templates: every resource in it is read, only the Patient is required, and what
//! it did not send is unknown: rules that need it are reported as undecided, never passed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::cards::{self, Card, Trigger};
use crate::Engine;
use crate::compile::Severity;
use crate::fhir::bundle::{reference_key, subject_reference};
use crate::fhir::date::Date;
use crate::fhir::mapping::{Loc, MedInfo, PatientFacts, med_info, resource_name};
use crate::fhir::valueset::{System, Target};
use crate::fhir::{Absent, Mapper, Options, Outcome, ValueSets};
use crate::profile::Field;

/// The hooks a service is offered for.
pub const HOOKS: [&str; 3] = ["order-select", "order-sign", "medication-prescribe"];

/// The resource type a prefetch template asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The patient (age, sex).
    Patient,
    /// Conditions (problem list, diagnoses).
    Condition,
    /// Medication orders.
    MedicationRequest,
    /// Medication statements.
    MedicationStatement,
    /// Observations (eGFR, pregnancy status...).
    Observation,
}

impl Kind {
    fn resource_type(self) -> &'static str {
        match self {
            Kind::Patient => "Patient",
            Kind::Condition => "Condition",
            Kind::MedicationRequest => "MedicationRequest",
            Kind::MedicationStatement => "MedicationStatement",
            Kind::Observation => "Observation",
        }
    }
}

/// One prefetch template, derived from a fact the rule pack reads.
#[derive(Debug, Clone)]
pub struct Template {
    /// The prefetch key.
    pub key: String,
    /// The FHIR query, with `{{context.patientId}}`.
    pub query: String,
    /// What it returns.
    pub kind: Kind,
    /// The profile facts it feeds.
    pub facts: Vec<&'static str>,
}

impl Template {
    /// The query with the patient id put in (percent-encoded).
    pub fn fill(&self, patient_id: &str) -> String {
        self.query
            .replace("{{context.patientId}}", &percent_encode(patient_id))
    }
}

/// One service of the discovery document.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    /// Service id: `{pack}-{hook}`.
    pub id: String,
    /// The hook.
    pub hook: &'static str,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
}

/// An error answered to the client: an HTTP status, a stable code and a message naming the member,
/// never a patient's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdsError {
    /// HTTP status.
    pub status: u16,
    /// Stable code (`invalid_json`, `invalid_request`, `missing_prefetch`, `unknown_service`...).
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// For `missing_prefetch`: the prefetch keys missing.
    pub missing: Vec<String>,
}

impl CdsError {
    /// A 400 `invalid_request` about `member`.
    pub fn invalid(message: String) -> CdsError {
        CdsError {
            status: 400,
            code: "invalid_request",
            message,
            missing: Vec::new(),
        }
    }

    /// The JSON body: `{"error": code, "message": ..., "missing": [...]}`.
    pub fn body(&self) -> Value {
        let mut b = json!({"error": self.code, "message": self.message});
        if !self.missing.is_empty() {
            b["missing"] = json!(self.missing);
        }
        b
    }
}

/// The service's configuration.
#[derive(Debug, Clone, Copy)]
pub struct CdsOptions {
    /// Cautions below this severity get no card (the missing-facts card is shown whatever it is).
    pub min_card_severity: Severity,
    /// eGFR older than this many days is not used.
    pub lookback_days: u32,
}

impl Default for CdsOptions {
    fn default() -> CdsOptions {
        CdsOptions {
            min_card_severity: Severity::Warning,
            lookback_days: 365,
        }
    }
}

/// The engine, the value sets and the discovery document, compiled once. `Send + Sync`.
#[derive(Debug)]
pub struct Cds {
    engine: Engine,
    vs: ValueSets,
    services: Vec<ServiceDef>,
    templates: Vec<Template>,
    opts: CdsOptions,
}

/// A request checked and read up to the point where missing prefetch would be fetched.
#[derive(Debug)]
pub struct Prepared {
    /// The service's hook.
    pub hook: String,
    /// `hookInstance`.
    pub hook_instance: String,
    /// What to do next.
    pub step: Step,
}

/// After [`Cds::prepare`].
#[derive(Debug)]
pub enum Step {
    /// No baclofen order: answer `{"cards": []}`.
    NoCards,
    /// Screen, after fetching `missing` (empty when the prefetch was complete).
    Screen(Box<Pending>),
}

/// A request that will be screened.
#[derive(Debug)]
pub struct Pending {
    /// The bare patient id.
    pub patient_id: String,
    /// Templates whose data is missing and must be fetched.
    pub missing: Vec<Template>,
    /// `fhirServer`, when the client gave one with an access token.
    pub fhir: Option<FhirAccess>,
    request: Value,
    /// Kinds of data the client sent.
    provided: Vec<Kind>,
    foreign: bool,
    trigger: Trigger,
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FhirAccess {
    /// Base URL, without a trailing slash.
    pub server: String,
    /// The bearer token.
    pub token: String,
}

impl Cds {
    /// The service over `engine` and `vs`.
    pub fn new(engine: Engine, vs: ValueSets, opts: CdsOptions) -> Cds {
        let templates = templates(&engine, &vs);
        let info = engine.ruleset();
        let subject = info.name.clone();
        let services = HOOKS
            .iter()
            .map(|&hook| ServiceDef {
                id: format!("{subject}-{hook}"),
                hook,
                title: format!("medscreen {subject} screening ({hook})"),
                description: format!(
                    "Screens a {subject} order being placed against the {} rule pack: patient factors, \
                     comorbidities, interacting comedications and dose. Cards cite their sources; facts \
                     that could not be checked are listed in one info card. Answers no cards for orders \
                     without {subject}.",
                    info.label
                ),
            })
            .collect();
        Cds {
            engine,
            vs,
            services,
            templates,
            opts,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The services.
    pub fn services(&self) -> &[ServiceDef] {
        &self.services
    }

    /// The service with this id.
    pub fn service(&self, id: &str) -> Option<&ServiceDef> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The prefetch templates (the same for every service).
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The discovery document (`GET /cds-services`).
    pub fn discovery(&self) -> Value {
        let prefetch: serde_json::Map<String, Value> = self
            .templates
            .iter()
            .map(|t| (t.key.clone(), json!(t.query)))
            .collect();
        let services: Vec<Value> = self
            .services
            .iter()
            .map(|s| {
                json!({
                    "hook": s.hook,
                    "id": s.id,
                    "title": s.title,
                    "description": s.description,
                    "prefetch": prefetch,
                    "usageRequirements": "Prefetch as listed, or pass fhirServer with fhirAuthorization so \
                                          the service can fetch what is missing; without either it answers 412.",
                })
            })
            .collect();
        json!({ "services": services })
    }

    /// Check a request for service `service` and find what screening it needs.
    pub fn prepare(&self, body: &[u8]) -> Result<Prepared, CdsError> {
        let request: Value = serde_json::from_slice(body).map_err(|e| CdsError {
            status: 400,
            code: "invalid_json",
            message: format!(
                "the request body is not JSON: {} at line {}, column {}",
                json_error_kind(&e),
                e.line(),
                e.column()
            ),
            missing: Vec::new(),
        })?;
        let Some(obj) = request.as_object() else {
            return Err(CdsError::invalid(
                "the request body is not a JSON object".into(),
            ));
        };
        let hook = required_str(obj, "hook")?.to_owned();
        let hook_instance = required_str(obj, "hookInstance")?.to_owned();
        let context = match obj.get("context") {
            Some(Value::Object(c)) => c,
            Some(_) => return Err(CdsError::invalid("`context` is not an object".into())),
            None => return Err(CdsError::invalid("the request has no `context`".into())),
        };
        if let Some(p) = obj.get("prefetch")
            && !p.is_object()
            && !p.is_null()
        {
            return Err(CdsError::invalid("`prefetch` is not an object".into()));
        }
        let orders = draft_orders(context)?;
        let prefetch = obj.get("prefetch").and_then(Value::as_object);
        let pool = gather(prefetch);
        let trigger = match self.trigger(context, &orders, &pool)? {
            Some(t) => t,
            None => {
                return Ok(Prepared {
                    hook,
                    hook_instance,
                    step: Step::NoCards,
                });
            }
        };
        let patient_id = match context.get("patientId") {
            Some(Value::String(s)) if !s.trim().is_empty() => bare_patient_id(s).to_owned(),
            Some(Value::String(_)) | None => {
                return Err(CdsError::invalid(
                    "`context.patientId` is missing or empty; a baclofen order cannot be screened \
                     without the patient"
                        .into(),
                ));
            }
            Some(_) => {
                return Err(CdsError::invalid(
                    "`context.patientId` is not a string".into(),
                ));
            }
        };
        let fhir = fhir_access(obj)?;
        let ours = prefetch.is_some_and(|p| self.templates.iter().any(|t| p.contains_key(&t.key)));
        let mut provided = Vec::new();
        let mut missing = Vec::new();
        for t in &self.templates {
            let given = match prefetch.and_then(|p| p.get(&t.key)) {
                // Nothing can be screened without the patient's age: `null` is missing too.
                _ if t.kind == Kind::Patient => {
                    pool.iter().any(|e| is_patient(e.resource, &patient_id))
                }
                Some(v) => readable(v),
                None => !ours && pool.iter().any(|e| e.kind == t.kind.resource_type()),
            };
            if given {
                provided.push(t.kind);
            } else if t.kind == Kind::Patient || ours || fhir.is_some() {
                missing.push(t.clone());
            }
        }
        if !missing.is_empty() && fhir.is_none() {
            let keys: Vec<String> = missing.iter().map(|t| t.key.clone()).collect();
            return Err(CdsError {
                status: 412,
                code: "missing_prefetch",
                message: format!(
                    "prefetch {} missing and the request has no `fhirServer` with `fhirAuthorization` to \
                     fetch {} from; send {} as the discovery document's templates describe (null when \
                     there is no data), or give FHIR access",
                    keys.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if keys.len() == 1 { "it" } else { "them" },
                    if keys.len() == 1 { "it" } else { "them" },
                ),
                missing: keys,
            });
        }
        Ok(Prepared {
            hook,
            hook_instance,
            step: Step::Screen(Box::new(Pending {
                patient_id,
                missing,
                fhir,
                request,
                provided,
                foreign: !ours,
                trigger,
            })),
        })
    }

    /// Which baclofen order triggers screening, if any. `order-select` with `selections` screens only
    /// when a selected order is baclofen; otherwise any draft order does.
    fn trigger(
        &self,
        context: &serde_json::Map<String, Value>,
        orders: &[Order<'_>],
        pool: &[Entry<'_>],
    ) -> Result<Option<Trigger>, CdsError> {
        let vs_mapper = self.mapper();
        let meds = medications(pool);
        let resolve = |r: &str| meds.get(&reference_key(r)).cloned();
        let selections: Option<Vec<String>> = match context.get("selections") {
            Some(Value::Array(list)) => Some(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(reference_key)
                    .collect(),
            ),
            Some(Value::Null) | None => None,
            Some(_) => {
                return Err(CdsError::invalid(
                    "`context.selections` is not an array".into(),
                ));
            }
        };
        for o in orders {
            if let Some(sel) = &selections
                && !sel.is_empty()
                && !sel.contains(&o.key)
            {
                continue;
            }
            if let Some(m) = vs_mapper.order_medication(o.resource, &resolve)
                && vs_mapper.is_subject(&m)
            {
                return Ok(Some(Trigger {
                    order: o.key.clone(),
                    pointer: o.pointer.clone(),
                    display: m
                        .product
                        .name
                        .clone()
                        .or_else(|| m.ingredients.iter().find_map(|i| i.name.clone())),
                }));
            }
        }
        Ok(None)
    }

    /// The mapper: evaluated today; absence on a list the client sent means no (closed world), and
    /// a list it did not send stays unknown (`conditions_known` / `medications_known`).
    fn mapper(&self) -> Mapper<'_> {
        Mapper::new(
            &self.vs,
            Options {
                as_of: Date::today(),
                lookback_days: self.opts.lookback_days,
                absent: Absent::False,
            },
        )
    }

    /// Screen a prepared request, with `fetched` holding (key, JSON) for each missing template.
    pub fn cards(&self, pending: &Pending, fetched: &[(String, Value)]) -> Vec<Card> {
        let request = &pending.request;
        let prefetch = request.get("prefetch").and_then(Value::as_object);
        let mut pool = gather(prefetch);
        for (key, value) in fetched {
            collect(
                value,
                &format!("/fetched/{}", escape_pointer(key)),
                &mut pool,
                0,
            );
        }
        let mut provided = pending.provided.clone();
        provided.extend(
            pending
                .missing
                .iter()
                .filter(|t| fetched.iter().any(|(k, _)| *k == t.key))
                .map(|t| t.kind),
        );
        let context = request.get("context").and_then(Value::as_object);
        let orders = context
            .map(|c| draft_orders(c).unwrap_or_default())
            .unwrap_or_default();
        let meds = medications(&pool);
        let resolve = |r: &str| meds.get(&reference_key(r)).cloned();
        let mapper = self.mapper();
        let pid = &pending.patient_id;
        let mut facts = PatientFacts::new(pid, "prefetch", 1);
        facts.conditions_known = provided.contains(&Kind::Condition);
        facts.medications_known = provided.contains(&Kind::MedicationRequest)
            || provided.contains(&Kind::MedicationStatement)
            || !pending.foreign;
        // A recorded copy of an order being placed is read once, as the draft. Same id with another
        // drug is not a copy (real exports reuse ids), so both are read.
        let is_draft_copy = |r: &Value| {
            let key = resource_name(r);
            orders.iter().any(|o| {
                o.key == key
                    && o.resource.get("medicationCodeableConcept")
                        == r.get("medicationCodeableConcept")
                    && o.resource.get("medicationReference") == r.get("medicationReference")
            })
        };
        let mut other_patients = 0usize;
        for e in &pool {
            let at = Loc {
                input: "prefetch",
                line: 1,
                base: e.pointer.clone(),
            };
            match e.kind {
                "Patient" if is_patient(e.resource, pid) && !facts.has_patient => {
                    mapper.patient(e.resource, &at, &mut facts);
                }
                "Condition" | "Observation" | "MedicationRequest" | "MedicationStatement" => {
                    if is_draft_copy(e.resource) {
                        continue;
                    }
                    match subject_reference(e.resource) {
                        Ok(Some(r)) if reference_key(r) == format!("Patient/{pid}") => {
                            mapper.resource(e.resource, e.kind, &at, &mut facts, &resolve);
                        }
                        Ok(Some(_)) => other_patients += 1,
                        // A patient-scoped search needs no subject to say whose it is.
                        Ok(None) | Err(_) => {
                            mapper.resource(e.resource, e.kind, &at, &mut facts, &resolve);
                        }
                    }
                }
                _ => {}
            }
        }
        // The triggering order first, so that it is the one screened; the others are comedications.
        let mut ordered: Vec<&Order<'_>> = orders.iter().collect();
        ordered.sort_by_key(|o| o.key != pending.trigger.order);
        for o in ordered {
            let at = Loc {
                input: "draftOrders",
                line: 1,
                base: o.pointer.clone(),
            };
            mapper.draft_order(o.resource, o.kind, &at, &mut facts, &resolve);
        }
        let ctx = cards::Context {
            cds: self,
            trigger: &pending.trigger,
            min: self.opts.min_card_severity,
            ignored_other_patients: other_patients,
            not_sent: self.not_sent(&provided),
        };
        match mapper.profile(&facts) {
            Outcome::Invalid(problems) => vec![cards::not_screened(&ctx, &problems)],
            Outcome::Skipped(reason) => vec![cards::skipped(&ctx, &reason)],
            Outcome::Profile {
                profile,
                provenance,
            } => match self.engine.validate_value(&profile) {
                Err(rejection) => vec![cards::invalid_profile(&ctx, &rejection)],
                Ok(p) => {
                    let screening = self.engine.screen(&p);
                    cards::from_screening(&ctx, &screening, &profile, &provenance)
                }
            },
        }
    }

    /// Facts whose data the client did not send (only possible with a client's own prefetch keys).
    fn not_sent(&self, provided: &[Kind]) -> Vec<&'static str> {
        let mut out = Vec::new();
        for t in &self.templates {
            let got = provided.contains(&t.kind)
                || (matches!(t.kind, Kind::MedicationRequest | Kind::MedicationStatement)
                    && (provided.contains(&Kind::MedicationRequest)
                        || provided.contains(&Kind::MedicationStatement)));
            if !got {
                for f in &t.facts {
                    if !out.contains(f) {
                        out.push(*f);
                    }
                }
            }
        }
        out
    }

    pub(crate) fn rule(&self, id: &str) -> Option<&crate::compile::Rule> {
        self.engine.rules().iter().find(|r| r.id == id)
    }
}

/// The prefetch templates for the facts the rule pack reads: the Patient always (age is required),
/// all Conditions when a rule reads a condition (history value sets count resolved ones, so the query
/// is not limited to active ones), active medication orders and statements when a rule reads
/// comedications, and one Observation query per value set with observation codes.
fn templates(engine: &Engine, vs: &ValueSets) -> Vec<Template> {
    let mut fields: Vec<Field> = Vec::new();
    for r in engine.rules() {
        for f in r.fields() {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    let pid = "{{context.patientId}}";
    let mut out = vec![Template {
        key: "patient".into(),
        query: format!("Patient/{pid}"),
        kind: Kind::Patient,
        facts: vec!["age", "sex"],
    }];
    let mut condition_facts = Vec::new();
    let mut observations = Vec::new();
    for set in vs.sets() {
        let Target::Field(field) = set.target else {
            continue;
        };
        if !fields.contains(&field) || field == Field::Indication {
            continue;
        }
        if !set.conditions.is_empty() && !condition_facts.contains(&field.name()) {
            condition_facts.push(field.name());
        }
        if !set.observation_codes.is_empty() {
            let codes: Vec<String> = set
                .observation_codes
                .iter()
                .filter_map(|c| {
                    System::from_name(&c.system).map(|s| format!("{}|{}", s.uri(), c.code))
                })
                .collect();
            observations.push(Template {
                key: set.id.clone(),
                query: format!(
                    "Observation?patient={pid}&code={}&_sort=-date&_count=50",
                    codes.join(",")
                ),
                kind: Kind::Observation,
                facts: vec![field.name()],
            });
        }
    }
    if !condition_facts.is_empty() {
        out.push(Template {
            key: "conditions".into(),
            query: format!("Condition?patient={pid}"),
            kind: Kind::Condition,
            facts: condition_facts,
        });
    }
    if fields.contains(&Field::Comedications) {
        out.push(Template {
            key: "medicationRequests".into(),
            query: format!(
                "MedicationRequest?patient={pid}&status=active&_include=MedicationRequest:medication"
            ),
            kind: Kind::MedicationRequest,
            facts: vec!["comedications"],
        });
        out.push(Template {
            key: "medicationStatements".into(),
            query: format!(
                "MedicationStatement?patient={pid}&status=active&_include=MedicationStatement:medication"
            ),
            kind: Kind::MedicationStatement,
            facts: vec!["comedications"],
        });
    }
    out.extend(observations);
    out
}

/// One resource found in the request.
#[derive(Debug)]
struct Entry<'a> {
    kind: &'a str,
    pointer: String,
    full_url: Option<&'a str>,
    resource: &'a Value,
}

/// A draft order.
#[derive(Debug)]
struct Order<'a> {
    /// `MedicationRequest/id`.
    key: String,
    kind: &'a str,
    pointer: String,
    resource: &'a Value,
}

const MAX_NESTING: usize = 4;

/// Every resource in the prefetch, searchsets and wrappings opened.
fn gather(prefetch: Option<&serde_json::Map<String, Value>>) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (key, value) in prefetch.into_iter().flatten() {
        collect(
            value,
            &format!("/prefetch/{}", escape_pointer(key)),
            &mut out,
            0,
        );
    }
    out
}

fn collect<'a>(value: &'a Value, pointer: &str, out: &mut Vec<Entry<'a>>, depth: usize) {
    if depth > MAX_NESTING {
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{pointer}/{i}"), out, depth + 1);
            }
        }
        Value::Object(o) => match o.get("resourceType").and_then(Value::as_str) {
            Some("Bundle") => {
                for (i, e) in o
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let Some(r) = e.get("resource") else { continue };
                    let at = format!("{pointer}/entry/{i}/resource");
                    if r.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                        collect(r, &at, out, depth + 1);
                    } else if let Some(kind) = r.get("resourceType").and_then(Value::as_str) {
                        out.push(Entry {
                            kind,
                            pointer: at,
                            full_url: e.get("fullUrl").and_then(Value::as_str),
                            resource: r,
                        });
                    }
                }
            }
            Some(kind) => out.push(Entry {
                kind,
                pointer: pointer.to_owned(),
                full_url: None,
                resource: value,
            }),
            // `{"response": {...}, "resource": {...}}`, as CDS Hooks 1.0 drafts sent prefetch.
            None => {
                if let Some(r) = o.get("resource") {
                    collect(r, &format!("{pointer}/resource"), out, depth + 1);
                }
            }
        },
        _ => {}
    }
}

/// Whether a prefetch value holds data (or says there is none): not an `OperationOutcome`, not
/// something unreadable.
fn readable(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(_) => true,
        Value::Object(o) => match o.get("resourceType").and_then(Value::as_str) {
            Some("OperationOutcome") => false,
            Some(_) => true,
            None => o.get("resource").is_some_and(readable),
        },
        _ => false,
    }
}

fn is_patient(r: &Value, id: &str) -> bool {
    r.get("resourceType").and_then(Value::as_str) == Some("Patient")
        && r.get("id").and_then(Value::as_str) == Some(id)
}

/// Medication resources by every key a reference may use.
fn medications(pool: &[Entry<'_>]) -> HashMap<String, MedInfo> {
    let mut out = HashMap::new();
    for e in pool.iter().filter(|e| e.kind == "Medication") {
        let Some(id) = e.resource.get("id").and_then(Value::as_str) else {
            continue;
        };
        let info = med_info(e.resource, &format!("Medication/{id}"));
        out.insert(format!("Medication/{id}"), info.clone());
        if let Some(u) = e.full_url {
            out.insert(reference_key(u), info);
        }
    }
    out
}

/// The medication orders being placed: `draftOrders` (a Bundle, CDS Hooks 1.0+) or `medications`
/// (`medication-prescribe`: a Bundle or an array).
fn draft_orders(context: &serde_json::Map<String, Value>) -> Result<Vec<Order<'_>>, CdsError> {
    let (name, value) = match (context.get("draftOrders"), context.get("medications")) {
        (Some(v), _) => ("draftOrders", v),
        (None, Some(v)) => ("medications", v),
        (None, None) => return Ok(Vec::new()),
    };
    if !(value.is_object() || value.is_array() || value.is_null()) {
        return Err(CdsError::invalid(format!(
            "`context.{name}` is not a Bundle"
        )));
    }
    let mut entries = Vec::new();
    collect(value, &format!("/context/{name}"), &mut entries, 0);
    Ok(entries
        .into_iter()
        .filter(|e| matches!(e.kind, "MedicationRequest" | "MedicationOrder"))
        .map(|e| Order {
            key: resource_name(e.resource),
            kind: e.kind,
            pointer: e.pointer,
            resource: e.resource,
        })
        .collect())
}

fn fhir_access(obj: &serde_json::Map<String, Value>) -> Result<Option<FhirAccess>, CdsError> {
    let server = match obj.get("fhirServer") {
        Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => s,
        Some(Value::String(_)) | Some(Value::Null) | None => return Ok(None),
        Some(_) => return Err(CdsError::invalid("`fhirServer` is not a string".into())),
    };
    let token = match obj.get("fhirAuthorization") {
        Some(Value::Object(a)) => match a.get("access_token") {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => {
                return Err(CdsError::invalid(
                    "`fhirAuthorization.access_token` is missing or not a string".into(),
                ));
            }
        },
        Some(Value::Null) | None => return Ok(None),
        Some(_) => {
            return Err(CdsError::invalid(
                "`fhirAuthorization` is not an object".into(),
            ));
        }
    };
    Ok(Some(FhirAccess {
        server: server.trim_end_matches('/').to_owned(),
        token: token.clone(),
    }))
}

fn required_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Result<&'a str, CdsError> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(CdsError::invalid(format!("`{name}` is empty"))),
        Some(_) => Err(CdsError::invalid(format!("`{name}` is not a string"))),
        None => Err(CdsError::invalid(format!("the request has no `{name}`"))),
    }
}

/// `Patient/123`, `https://ehr/fhir/Patient/123` or `123` -> `123`.
pub fn bare_patient_id(s: &str) -> &str {
    let s = s.trim();
    match s.rfind("Patient/") {
        Some(i) => s[i + "Patient/".len()..].trim_end_matches('/'),
        None => s,
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// What went wrong in the JSON, without the text around it (which could hold patient data).
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

/// Percent-encode a URL query value (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_id_forms() {
        assert_eq!(bare_patient_id("123"), "123");
        assert_eq!(bare_patient_id("Patient/123"), "123");
        assert_eq!(
            bare_patient_id("https://ehr.example/fhir/Patient/a-b"),
            "a-b"
        );
    }

    #[test]
    fn templates_follow_the_pack() {
        let cds = Cds::new(
            Engine::embedded().unwrap(),
            ValueSets::embedded().unwrap(),
            CdsOptions::default(),
        );
        let keys: Vec<&str> = cds.templates().iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "patient",
                "conditions",
                "medicationRequests",
                "medicationStatements",
                "breastfeeding",
                "egfr",
                "pregnancy"
            ]
        );
        let egfr = cds.templates().iter().find(|t| t.key == "egfr").unwrap();
        assert!(egfr.query.contains("http://loinc.org|98979-8"));
        assert_eq!(
            egfr.fill("a b/c"),
            egfr.query.replace("{{context.patientId}}", "a%20b%2Fc")
        );
    }
}
