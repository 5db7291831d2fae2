//! The CDS Hooks service without the HTTP: discovery, and a hook request turned into cards.
//!
//! A request is handled in two steps so that the HTTP layer can fetch between them without this
//! module knowing about networks: [`Cds::prepare`] parses and checks the request, decides whether a
//! order of the pack's drug is being placed (no: no cards, and nothing else is read), gathers the prefetched
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

use super::cards::{self, Card, Trigger, Unreadable};
use super::servers::FhirServers;
use medscreen_core::Engine;
use medscreen_core::Severity;
use medscreen_core::diagnostic::{self, Diagnostic, Location};
use medscreen_core::schema::escape_pointer;
use medscreen_fhir::bundle::{Found, Gap, reference_key, subject_reference, walk};
use medscreen_fhir::date::Date;
use medscreen_fhir::mapping::{Loc, MedInfo, PatientFacts, med_info, resource_name};
use medscreen_fhir::resource_types::is_patient_record;
use medscreen_fhir::valueset::{Kind as SetKind, System};
use medscreen_fhir::{Absent, BindError, Binding, Mapper, Options, Outcome, ValueSets};

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
    const ALL: [Kind; 5] = [
        Kind::Patient,
        Kind::Condition,
        Kind::MedicationRequest,
        Kind::MedicationStatement,
        Kind::Observation,
    ];

    /// The kind of a resource type, if it is one a template asks for.
    fn of(resource_type: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.resource_type() == resource_type)
    }

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
    pub facts: Vec<String>,
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
        if self.missing.is_empty() {
            json!({"error": self.code, "message": self.message})
        } else {
            json!({"error": self.code, "message": self.message, "missing": self.missing})
        }
    }
}

/// The message alone, as the body's `message` carries it (the code and status are fields).
impl Diagnostic for CdsError {
    fn code(&self) -> &'static str {
        self.code
    }

    fn message(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.message)
    }

    /// The request as a whole: the message names the member (`context.draftOrders`, a prefetch key).
    fn location(&self) -> Location<'_> {
        Location::Nowhere
    }
}

/// The message alone: it names the member it is about.
impl std::fmt::Display for CdsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for CdsError {}

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

/// The engine, the value sets bound to it and the discovery document, compiled once. `Send + Sync`.
#[derive(Debug)]
pub struct Cds {
    binding: Binding,
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
    /// No order of the pack's drug: answer `{"cards": []}`.
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
    /// Kinds of data the client sent whole.
    provided: Vec<Kind>,
    /// Kinds it sent in part (a page, a list with an error): what is there counts, absence is unknown.
    partial: Vec<Kind>,
    trigger: Trigger,
}

/// One missing template's answer from the FHIR server.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The prefetch key.
    pub key: String,
    /// The resource or searchset.
    pub value: Value,
    /// False when only part of the list could be read (page limit, a `next` link elsewhere).
    pub complete: bool,
}

/// Where and how to fetch.
#[derive(Clone)]
pub struct FhirAccess {
    /// Base URL, without a trailing slash.
    pub server: String,
    /// The bearer token.
    pub token: String,
}

/// The token is a credential: debug output shows the server only.
impl std::fmt::Debug for FhirAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirAccess")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Cds {
    /// The service over `engine` and `vs`, once they are checked against each other
    /// ([`Binding::new`]: the facts the sets fill, and the drug the subject set is).
    pub fn new(engine: Engine, vs: ValueSets, opts: CdsOptions) -> Result<Cds, BindError> {
        let binding = Binding::new(engine, vs)?;
        let engine = binding.engine();
        let templates = templates(engine, binding.value_sets());
        let info = engine.ruleset();
        let text = engine.cds_text();
        let services = HOOKS
            .iter()
            .map(|&hook| ServiceDef {
                id: format!("{}-{hook}", info.name),
                hook,
                title: text.fill(&text.service_title, hook, &info.label),
                description: text.fill(&text.service_description, hook, &info.label),
            })
            .collect();
        Ok(Cds {
            binding,
            services,
            templates,
            opts,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.binding.engine()
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
        json!({ "services": self.discovery_services() })
    }

    /// The discovery document's entries for this pack's services.
    pub(crate) fn discovery_services(&self) -> Vec<Value> {
        let prefetch: serde_json::Map<String, Value> = self
            .templates
            .iter()
            .map(|t| (t.key.clone(), json!(t.query)))
            .collect();
        self.services
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
            .collect()
    }

    /// Check a request and find what screening it needs, whatever its `hook`, with the default
    /// `fhirServer` policy (public addresses only). The server uses [`Cds::prepare_for`].
    pub fn prepare(&self, body: &[u8]) -> Result<Prepared, CdsError> {
        self.prepare_request(body, None, &FhirServers::default())
    }

    /// Check a request sent to `service`: its `hook` must be the service's (400 `hook_mismatch`
    /// naming both), and `fhirServer` is used only where `servers` allows.
    pub fn prepare_for(
        &self,
        service: &ServiceDef,
        servers: &FhirServers,
        body: &[u8],
    ) -> Result<Prepared, CdsError> {
        self.prepare_request(body, Some(service.hook), servers)
    }

    fn prepare_request(
        &self,
        body: &[u8],
        expected_hook: Option<&str>,
        servers: &FhirServers,
    ) -> Result<Prepared, CdsError> {
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
        // The context a hook carries, and what its cards mean, differ by hook: an order-sign request
        // sent to the order-select service (or a patient-view one to either) is the client's mistake.
        if let Some(expected) = expected_hook
            && hook != expected
        {
            return Err(CdsError {
                status: 400,
                code: "hook_mismatch",
                message: format!(
                    "the request is for hook {} but this service is for `{expected}`; call the \
                     service listed for that hook at `GET /cds-services`",
                    cards::code(&hook)
                ),
                missing: Vec::new(),
            });
        }
        let hook_instance = required_str(obj, "hookInstance")?.to_owned();
        let context = match obj.get("context") {
            Some(Value::Object(c)) => c,
            Some(_) => return Err(CdsError::invalid("`context` is not an object".into())),
            None => return Err(CdsError::invalid("the request has no `context`".into())),
        };
        // What cannot be read is not used to decide whether to screen (it is reported by the
        // screening, and its list is fetched or counted as not whole below).
        let drafts = draft_orders(context, &mut Vec::new())?;
        let prefetch = obj.get("prefetch").and_then(Value::as_object);
        let mut unreadable = Vec::new();
        let mut pool = gather(prefetch, &[], &mut unreadable);
        pool.extend(drafts.medications);
        let trigger = match self.trigger(context, &drafts.orders, &pool)? {
            Some(t) => t,
            None => {
                return Ok(Prepared {
                    hook,
                    hook_instance,
                    step: Step::NoCards,
                });
            }
        };
        if obj
            .get("prefetch")
            .is_some_and(|p| !p.is_object() && !p.is_null())
        {
            return Err(CdsError::invalid("`prefetch` is not an object".into()));
        }
        let patient_id = match context.get("patientId") {
            Some(Value::String(s)) if !bare_patient_id(s).is_empty() => {
                let id = bare_patient_id(s);
                if !is_fhir_id(&id) {
                    return Err(CdsError::invalid(
                        "`context.patientId` is not a FHIR id (1 to 64 letters, digits, `-` and \
                         `.`, not `.` or `..`), optionally as `Patient/{id}`"
                            .into(),
                    ));
                }
                id
            }
            Some(Value::String(_)) | None => {
                return Err(CdsError::invalid(
                    "`context.patientId` is missing or empty; an order cannot be screened without \
                     the patient"
                        .into(),
                ));
            }
            Some(_) => {
                return Err(CdsError::invalid(
                    "`context.patientId` is not a string".into(),
                ));
            }
        };
        let (fhir, fhir_problem) = fhir_access(obj, servers);
        let ours = prefetch.is_some_and(|p| self.templates.iter().any(|t| p.contains_key(&t.key)));
        let mut provided = Vec::new();
        let mut partial = Vec::new();
        let mut missing = Vec::new();
        // An unreadable entry under a key that is not ours could have been of any type.
        let foreign_unreadable = unreadable.iter().any(|u| {
            !self
                .templates
                .iter()
                .any(|t| under(&u.pointer, &key_pointer("prefetch", &t.key)))
        });
        for t in &self.templates {
            let value = prefetch.and_then(|p| p.get(&t.key));
            let given = match value {
                // Nothing can be screened without the patient's age: `null` is missing too.
                _ if t.kind == Kind::Patient => {
                    pool.iter().any(|e| is_patient(e.resource, &patient_id))
                }
                Some(v) => readable(v, t.kind),
                None => !ours && pool.iter().any(|e| e.kind == t.kind.resource_type()),
            };
            let unreadable_here = t.kind != Kind::Patient
                && unreadable
                    .iter()
                    .any(|u| under(&u.pointer, &key_pointer("prefetch", &t.key)));
            // A page of a longer list, a list with an error in it, or one with entries that could
            // not be read, is not the whole list.
            let whole = match value {
                Some(v) => !incomplete(v) && !unreadable_here,
                None => {
                    (t.kind == Kind::Patient || !foreign_unreadable)
                        && !prefetch
                            .into_iter()
                            .flatten()
                            .any(|(_, v)| incomplete(v) && holds_kind(v, t.kind.resource_type()))
                }
            };
            if given && whole {
                provided.push(t.kind);
            } else if fhir.is_some() || t.kind == Kind::Patient || (ours && !given) {
                missing.push(t.clone());
            } else if given {
                partial.push(t.kind);
            }
        }
        if !missing.is_empty() && fhir.is_none() {
            let keys: Vec<String> = missing.iter().map(|t| t.key.clone()).collect();
            let one = keys.len() == 1;
            return Err(CdsError {
                status: 412,
                code: "missing_prefetch",
                message: format!(
                    "prefetch {} missing and {}; send {} as the discovery document's templates \
                     describe (null when there is no data), or give FHIR access",
                    keys.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    fhir_problem.unwrap_or_else(|| format!(
                        "the request has no `fhirServer` with `fhirAuthorization` to fetch {} from",
                        if one { "it" } else { "them" }
                    )),
                    if one { "it" } else { "them" },
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
                partial,
                trigger,
            })),
        })
    }

    /// Which order of the pack's drug triggers screening, if any. `order-select` with `selections`
    /// screens when a selected order is of the drug (when no selection names a draft, every draft counts);
    /// otherwise any draft order does.
    fn trigger(
        &self,
        context: &serde_json::Map<String, Value>,
        orders: &[Order<'_>],
        pool: &[Entry<'_>],
    ) -> Result<Option<Trigger>, CdsError> {
        let mapper = self.mapper();
        let meds = medications(pool);
        let resolve = |r: &str| meds.get(&reference_key(r)).cloned();
        let selections: Vec<&str> = match context.get("selections") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(CdsError::invalid(
                    "`context.selections` is not an array".into(),
                ));
            }
        };
        let selected = |o: &Order<'_>| {
            selections
                .iter()
                .any(|s| reference_key(s) == o.key || Some(*s) == o.id || Some(*s) == o.full_url)
        };
        let narrow = orders.iter().any(selected);
        // An order of the drug by another route (the pack's subject value set says which, as intrathecal
        // for baclofen) is never the order screened:
        // the pack is about the drug by mouth. Placed with an oral order it is a comedication of it;
        // placed alone it triggers nothing.
        for o in orders {
            if narrow && !selected(o) {
                continue;
            }
            if self.by_other_route(&mapper, o.resource, &resolve) {
                continue;
            }
            if let Some(display) = self.subject_order(&mapper, o.resource, &resolve) {
                return Ok(Some(Trigger {
                    order: o.id.map(|id| format!("{}/{id}", o.kind)),
                    pointer: o.pointer.clone(),
                    display,
                }));
            }
        }
        Ok(None)
    }

    /// `Some(display)` when the order is for the drug screened: by the value set (RxNorm codes of
    /// the drug and its products, its names) or by the vocabulary (brand names, ingredient codes),
    /// looking at every coding, the text, the reference's display and a resolved Medication.
    fn subject_order(
        &self,
        mapper: &Mapper<'_>,
        r: &Value,
        resolve: &dyn Fn(&str) -> Option<MedInfo>,
    ) -> Option<Option<String>> {
        let med = mapper.order_medication(r, resolve);
        // The mapper reads every RxNorm and ATC coding and the names, through the value set and the
        // engine's vocabulary; the other names an order carries are tried one by one.
        let mut names: Vec<&str> = Vec::new();
        let mut concepts: Vec<&Value> = r.get("medicationCodeableConcept").into_iter().collect();
        if let Some(d) = r
            .pointer("/medicationReference/display")
            .and_then(Value::as_str)
        {
            names.push(d);
        }
        if let Some(m) = &med {
            names.extend(m.product.name.as_deref());
            names.extend(m.ingredients.iter().filter_map(|i| i.name.as_deref()));
        }
        if let Some(id) = r
            .pointer("/medicationReference/reference")
            .and_then(Value::as_str)
            .and_then(|x| x.strip_prefix('#'))
        {
            let contained_med = r.get("contained").and_then(Value::as_array).and_then(|c| {
                c.iter()
                    .find(|m| m.get("id").and_then(Value::as_str) == Some(id))
            });
            concepts.extend(contained_med.and_then(|m| m.get("code")));
        }
        for cc in concepts {
            names.extend(cc.get("text").and_then(Value::as_str));
            for c in cc
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                names.extend(c.get("display").and_then(Value::as_str));
            }
        }
        let by_code = med.as_ref().is_some_and(|m| mapper.is_subject(m));
        let by_name = names.iter().any(|n| {
            mapper.is_subject(&MedInfo {
                product: medscreen_fhir::mapping::MedEntry {
                    name: Some((*n).to_owned()),
                    ..Default::default()
                },
                ..MedInfo::default()
            })
        });
        let shown = names.first().map(|n| (*n).to_owned());
        (by_code || by_name).then(|| med.as_ref().and_then(|m| m.product.name.clone()).or(shown))
    }

    /// Whether an order is of the drug screened by another route (intrathecal, for baclofen).
    fn by_other_route(
        &self,
        mapper: &Mapper<'_>,
        r: &Value,
        resolve: &dyn Fn(&str) -> Option<MedInfo>,
    ) -> bool {
        let med = mapper.order_medication(r, resolve).unwrap_or_default();
        mapper.other_route(r, &med).is_some()
    }

    /// The mapper: evaluated today; absence on a list the client sent means no (closed world), and
    /// a list it did not send stays unknown (`conditions_known` / `medications_known`).
    fn mapper(&self) -> Mapper<'_> {
        self.binding.mapper(Options {
            as_of: Date::today(),
            lookback_days: self.opts.lookback_days,
            absent: Absent::False,
        })
    }

    /// Screen a prepared request, with `fetched` holding each missing template's answer.
    pub fn cards(&self, pending: &Pending, fetched: &[Fetched]) -> Vec<Card> {
        let request = &pending.request;
        let prefetch = request.get("prefetch").and_then(Value::as_object);
        // A key fetched again is read from the answer only: what the client sent under it was a
        // page, an error or unreadable.
        let refetched: Vec<&str> = fetched.iter().map(|f| f.key.as_str()).collect();
        let mut unreadable = Vec::new();
        let mut pool = gather(prefetch, &refetched, &mut unreadable);
        for f in fetched {
            collect(
                &f.value,
                &key_pointer("fetched", &f.key),
                &mut pool,
                &mut unreadable,
            );
        }
        let mut provided = pending.provided.clone();
        let mut partial = pending.partial.clone();
        for t in &pending.missing {
            match fetched.iter().find(|f| f.key == t.key) {
                Some(f) if f.complete => provided.push(t.kind),
                Some(_) => partial.push(t.kind),
                None => {}
            }
        }
        let context = request.get("context").and_then(Value::as_object);
        let drafts = context
            .and_then(|c| draft_orders(c, &mut unreadable).ok())
            .unwrap_or_default();
        self.unreadable_lists(&mut unreadable, &provided, &mut partial);
        let orders = drafts.orders;
        pool.extend(drafts.medications);
        let meds = medications(&pool);
        // A reference to a Medication nobody sent still names a drug: it is reported as a
        // medication that could not be recognised rather than dropped or failing the screening.
        let resolve = |r: &str| {
            Some(
                meds.get(&reference_key(r))
                    .cloned()
                    .unwrap_or_else(|| MedInfo {
                        resource: reference_key(r),
                        product: medscreen_fhir::mapping::MedEntry {
                            name: Some(format!("medication {} (not sent)", reference_key(r))),
                            ..Default::default()
                        },
                        ingredients: Vec::new(),
                    }),
            )
        };
        let mapper = self.mapper();
        let pid = &pending.patient_id;
        let mut facts = PatientFacts::new(pid, "prefetch", 1);
        // The drafts first: the order screened, then the other orders (comedications that must not be
        // crowded out by a long medication list).
        let mut ordered: Vec<&Order<'_>> = orders.iter().collect();
        ordered.sort_by_key(|o| o.pointer != pending.trigger.pointer);
        for o in &ordered {
            let at = Loc {
                input: "draftOrders",
                line: 1,
                base: o.pointer.clone(),
            };
            // Another order of the drug being placed is the same order screened (its doses add up),
            // unless it is by another route: then it is a comedication that names the route.
            let subject = o.pointer == pending.trigger.pointer
                || (self.subject_order(&mapper, o.resource, &resolve).is_some()
                    && !self.by_other_route(&mapper, o.resource, &resolve));
            mapper.draft_order(o.resource, o.kind, &at, &mut facts, &resolve, subject);
        }
        // A recorded copy of an order being placed is read once, as the draft. Same id with another
        // drug is not a copy (real exports reuse ids), so both are read.
        let by_key: HashMap<&str, &Order<'_>> =
            orders.iter().map(|o| (o.key.as_str(), o)).collect();
        let is_draft_copy = |r: &Value| {
            by_key.get(resource_name(r).as_str()).is_some_and(|o| {
                o.resource.get("medicationCodeableConcept") == r.get("medicationCodeableConcept")
                    && o.resource.get("medicationReference") == r.get("medicationReference")
            })
        };
        // The patient, as every reference may name it.
        let mut ours = vec![format!("Patient/{pid}")];
        ours.extend(
            pool.iter()
                .filter(|e| is_patient(e.resource, pid))
                .filter_map(|e| e.full_url.map(reference_key)),
        );
        let mut ignored = 0usize;
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
                kind if is_patient_record(kind) => {
                    if is_draft_copy(e.resource) {
                        continue;
                    }
                    match subject_reference(e.resource) {
                        Ok(Some(r)) if ours.contains(&reference_key(r)) => {
                            mapper.resource(e.resource, e.kind, &at, &mut facts, &resolve);
                        }
                        // Another patient's, or a reference we cannot place: not read, and the
                        // list it belongs to is no longer known to be whole.
                        Ok(Some(_)) | Err(_) => {
                            ignored += 1;
                            partial.extend(Kind::of(e.kind));
                        }
                        // A patient-scoped search needs no subject to say whose it is.
                        Ok(None) => mapper.resource(e.resource, e.kind, &at, &mut facts, &resolve),
                    }
                }
                _ => {}
            }
        }
        facts.conditions_known = whole(&provided, &partial, Kind::Condition);
        facts.medications_known = whole(&provided, &partial, Kind::MedicationRequest);
        let ctx = cards::Context {
            engine: self.binding.engine(),
            trigger: &pending.trigger,
            min: self.opts.min_card_severity,
            ignored_other_patients: ignored,
            not_sent: self.not_sent(&provided, &partial),
        };
        let mut cards = match mapper.profile(&facts) {
            Outcome::Invalid(problems) => vec![cards::not_screened(&ctx, &problems)],
            Outcome::Skipped(reason) => vec![cards::skipped(&ctx, &reason)],
            Outcome::Profile {
                profile,
                provenance,
            } => match self.binding.engine().validate_value(&profile) {
                Err(rejection) => vec![cards::invalid_profile(&ctx, &rejection)],
                Ok(p) => {
                    let screening = self.binding.engine().screen(&p);
                    cards::from_screening(&ctx, &screening, &profile, &provenance)
                }
            },
        };
        if !unreadable.is_empty() {
            // After the critical cards, before the rest: most severe first.
            let at = cards
                .iter()
                .position(|c| c.indicator != "critical")
                .unwrap_or(cards.len());
            cards.insert(at, cards::not_fully_screened(&ctx, &unreadable));
        }
        cards
    }

    /// Mark the lists that unreadable entries belong to as not whole, and drop the entries that no
    /// longer matter: under a key of ours, that template's list; in a draft, the medications; under
    /// a client's own key, any list (its type is what could not be read), unless every list was
    /// fetched whole.
    fn unreadable_lists(
        &self,
        unreadable: &mut Vec<Unreadable>,
        provided: &[Kind],
        partial: &mut Vec<Kind>,
    ) {
        let lists = [
            Kind::Condition,
            Kind::MedicationRequest,
            Kind::MedicationStatement,
            Kind::Observation,
        ];
        let fetched_whole = |k: Kind| provided.contains(&k) && !partial.contains(&k);
        let all_fetched_whole = self
            .templates
            .iter()
            .filter(|t| t.kind != Kind::Patient)
            .all(|t| fetched_whole(t.kind));
        let mut kinds = Vec::new();
        unreadable.retain(|u| {
            let template = self.templates.iter().find(|t| {
                under(&u.pointer, &key_pointer("prefetch", &t.key))
                    || under(&u.pointer, &key_pointer("fetched", &t.key))
            });
            match template {
                // A Patient found is read whatever else the key holds; one not found was fetched or
                // refused before screening.
                Some(t) if t.kind == Kind::Patient => {}
                Some(t) => kinds.push(t.kind),
                None if u.pointer.starts_with("/context/") => {
                    kinds.push(Kind::MedicationRequest);
                }
                None if all_fetched_whole => return false,
                None => kinds.extend(lists),
            }
            true
        });
        for k in kinds {
            if !partial.contains(&k) {
                partial.push(k);
            }
        }
    }

    /// Facts whose data did not arrive whole: not sent (a client's own prefetch keys), a page of a
    /// longer list, a list with an error, or resources that could not be placed.
    fn not_sent(&self, provided: &[Kind], partial: &[Kind]) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in &self.templates {
            if !whole(provided, partial, t.kind) {
                for f in &t.facts {
                    if !out.contains(&f.as_str()) {
                        out.push(f);
                    }
                }
            }
        }
        out
    }
}

/// The prefetch templates for the facts the rule pack reads: the Patient always (age is required),
/// all Conditions when a rule reads a condition (history value sets count resolved ones, so the query
/// is not limited to active ones), active medication orders and statements when a rule reads
/// comedications, and one Observation query per value set with observation codes.
fn templates(engine: &Engine, vs: &ValueSets) -> Vec<Template> {
    let mut fields: Vec<&str> = Vec::new();
    for r in engine.rules() {
        for f in r.fields() {
            let name = engine.facts().name(f);
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
    let pid = "{{context.patientId}}";
    let mut out = vec![Template {
        key: "patient".into(),
        query: format!("Patient/{pid}"),
        kind: Kind::Patient,
        facts: vec!["age".to_owned(), "sex".to_owned()],
    }];
    let mut condition_facts = Vec::new();
    let mut observations = Vec::new();
    for set in vs.sets() {
        // The problem list and observations; the order's indication and dose come with the order.
        if matches!(set.fills.kind, SetKind::Indication | SetKind::Subject) {
            continue;
        }
        let Some(field) = set.fills.fact.as_deref() else {
            continue;
        };
        // A set with staged codes also gives its stage fact (`ckd_stage`).
        let mut filled = vec![field];
        filled.extend(set.fills.stage_fact.as_deref());
        let read: Vec<&str> = filled.into_iter().filter(|f| fields.contains(f)).collect();
        if read.is_empty() {
            continue;
        }
        for f in &read {
            if !set.conditions.is_empty() && !condition_facts.contains(f) {
                condition_facts.push(*f);
            }
        }
        if !fields.contains(&field) {
            continue;
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
                facts: vec![field.to_owned()],
            });
        }
    }
    if !condition_facts.is_empty() {
        out.push(Template {
            key: "conditions".into(),
            query: format!("Condition?patient={pid}"),
            kind: Kind::Condition,
            facts: condition_facts.into_iter().map(str::to_owned).collect(),
        });
    }
    if fields.contains(&"comedications") {
        out.push(Template {
            key: "medicationRequests".into(),
            query: format!(
                "MedicationRequest?patient={pid}&status=active&_include=MedicationRequest:medication"
            ),
            kind: Kind::MedicationRequest,
            facts: vec!["comedications".to_owned()],
        });
        out.push(Template {
            key: "medicationStatements".into(),
            query: format!(
                "MedicationStatement?patient={pid}&status=active&_include=MedicationStatement:medication"
            ),
            kind: Kind::MedicationStatement,
            facts: vec!["comedications".to_owned()],
        });
    }
    out.extend(observations);
    out
}

/// One resource found in the request.
type Entry<'a> = Found<'a>;

/// A draft order.
#[derive(Debug)]
struct Order<'a> {
    /// `MedicationRequest/id` (the type alone when it has no id).
    key: String,
    id: Option<&'a str>,
    full_url: Option<&'a str>,
    kind: &'a str,
    pointer: String,
    resource: &'a Value,
}

/// What the orders member holds: the orders, and Medication resources they may refer to.
#[derive(Debug, Default)]
struct Drafts<'a> {
    orders: Vec<Order<'a>>,
    medications: Vec<Entry<'a>>,
}

/// Every resource in the prefetch, searchsets and wrappings opened, leaving out the keys in `skip`
/// (those fetched again); what could not be read goes to `bad`.
fn gather<'a>(
    prefetch: Option<&'a serde_json::Map<String, Value>>,
    skip: &[&str],
    bad: &mut Vec<Unreadable>,
) -> Vec<Entry<'a>> {
    let mut out = Vec::new();
    for (key, value) in prefetch.into_iter().flatten() {
        if skip.contains(&key.as_str()) {
            continue;
        }
        collect(value, &key_pointer("prefetch", key), &mut out, bad);
    }
    out
}

/// `/{root}/{key}`, the key escaped.
fn key_pointer(root: &str, key: &str) -> String {
    format!("/{root}/{}", escape_pointer(key))
}

/// Whether `pointer` is `prefix` or inside it.
fn under(pointer: &str, prefix: &str) -> bool {
    pointer
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The resources of `value` at `pointer`, by the FHIR crate's walk; every gap is unreadable but a
/// `fullUrl` that is not a string (the resource is read without it).
fn collect<'a>(
    value: &'a Value,
    pointer: &str,
    out: &mut Vec<Entry<'a>>,
    bad: &mut Vec<Unreadable>,
) {
    let mut gaps = Vec::new();
    walk(value, pointer, out, &mut gaps);
    for (at, gap) in gaps {
        let (at, message) = match gap {
            Gap::TooDeep => (at, "nested too deeply to be read"),
            Gap::EntryNotArray => (
                format!("{at}/entry"),
                "the Bundle's `entry` is not an array",
            ),
            Gap::EntryNotObject => (at, "the Bundle entry is not an object"),
            Gap::NoResource => (at, "the Bundle entry has no `resource`"),
            Gap::ResourceNotObject => (at, "the entry's `resource` is not an object"),
            Gap::UnknownResourceType { in_entry: true } => {
                (at, "the entry's `resourceType` is not a FHIR resource type")
            }
            Gap::ResourceTypeNotString { in_entry: true } => {
                (at, "the entry's `resourceType` is not a string")
            }
            Gap::NoResourceType { in_entry: true } => {
                (at, "the entry's resource has no `resourceType`")
            }
            Gap::UnknownResourceType { in_entry: false } => {
                (at, "`resourceType` is not a FHIR resource type")
            }
            Gap::ResourceTypeNotString { in_entry: false } => {
                (at, "`resourceType` is not a string")
            }
            Gap::NoResourceType { in_entry: false } => (
                at,
                "an object with no `resourceType`, so not a FHIR resource",
            ),
            Gap::NotAnObject => (at, "not a FHIR resource (not an object)"),
            // The resource is read without it, as before the walk was shared.
            Gap::FullUrlNotString => continue,
            _ => (at, "could not be read"),
        };
        unreadable(bad, at, message);
    }
}

fn unreadable(bad: &mut Vec<Unreadable>, pointer: String, message: &'static str) {
    bad.push(Unreadable { pointer, message });
}

/// Whether a prefetch value for a template of `kind` is a list we can read (or says there is none):
/// `null`, a Bundle whose `entry` is absent or an array of objects, one resource of the kind, or the
/// old wrapping of one of these. An `OperationOutcome`, a bare array (`[]` is not "no data", it is
/// not a FHIR answer at all), a Bundle whose `entry` is not a list of objects or another resource
/// type is not: the prefetch is then treated as missing (fetched, or 412), never as an empty list.
fn readable(v: &Value, kind: Kind) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => match o.get("resourceType").and_then(Value::as_str) {
            Some("OperationOutcome") => false,
            Some("Bundle") => match o.get("entry") {
                None => true,
                Some(Value::Array(entries)) => entries.iter().all(Value::is_object),
                Some(_) => false,
            },
            Some(t) => t == kind.resource_type(),
            None if o.contains_key("resourceType") => false,
            None => o.get("resource").is_some_and(|r| readable(r, kind)),
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
fn draft_orders<'a>(
    context: &'a serde_json::Map<String, Value>,
    bad: &mut Vec<Unreadable>,
) -> Result<Drafts<'a>, CdsError> {
    let (name, value) = match (context.get("draftOrders"), context.get("medications")) {
        (Some(v), _) => ("draftOrders", v),
        (None, Some(v)) => ("medications", v),
        (None, None) => return Ok(Drafts::default()),
    };
    if !(value.is_object() || value.is_array() || value.is_null()) {
        return Err(CdsError::invalid(format!(
            "`context.{name}` is not a Bundle"
        )));
    }
    let mut entries = Vec::new();
    collect(value, &format!("/context/{name}"), &mut entries, bad);
    if entries.len() > MAX_DRAFTS {
        return Err(CdsError::invalid(format!(
            "`context.{name}` holds {} resources; at most {MAX_DRAFTS} are read",
            entries.len()
        )));
    }
    let mut out = Drafts::default();
    for e in entries {
        match e.kind {
            "MedicationRequest" | "MedicationOrder" => out.orders.push(Order {
                key: resource_name(e.resource),
                id: e.resource.get("id").and_then(Value::as_str),
                full_url: e.full_url,
                kind: e.kind,
                pointer: e.pointer,
                resource: e.resource,
            }),
            "Medication" => out.medications.push(e),
            _ => {}
        }
    }
    Ok(out)
}

/// Orders being placed at once, at most (a real order set is tens).
const MAX_DRAFTS: usize = 1000;

/// Whether the data of a kind arrived whole. Medication orders and statements make one list (the
/// comedications): whole when either came whole and neither in part.
fn whole(provided: &[Kind], partial: &[Kind], kind: Kind) -> bool {
    let one = |k: Kind| provided.contains(&k) && !partial.contains(&k);
    match kind {
        Kind::MedicationRequest | Kind::MedicationStatement => {
            (one(Kind::MedicationRequest) || one(Kind::MedicationStatement))
                && !partial.contains(&Kind::MedicationRequest)
                && !partial.contains(&Kind::MedicationStatement)
        }
        k => one(k),
    }
}

/// Whether a prefetch value is only part of what its query returns: a searchset with a `next` page,
/// or one carrying an error.
pub(crate) fn incomplete(v: &Value) -> bool {
    let v = match v.get("resource") {
        Some(r) if v.get("resourceType").is_none() => r,
        _ => v,
    };
    if v.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return false;
    }
    let next = v
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|l| l.get("relation").and_then(Value::as_str) == Some("next"));
    next || v
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .any(is_error_outcome)
}

/// An OperationOutcome with an `error` or `fatal` issue (a `warning` or `information` one, which
/// servers add to good searches, is not).
fn is_error_outcome(r: &Value) -> bool {
    r.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome")
        && r.get("issue")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|i| {
                matches!(
                    i.get("severity").and_then(Value::as_str),
                    Some("error" | "fatal")
                )
            })
}

/// Whether a prefetch value holds a resource of this type.
fn holds_kind(v: &Value, kind: &str) -> bool {
    let mut found = Vec::new();
    collect(v, "", &mut found, &mut Vec::new());
    found.iter().any(|e| e.kind == kind)
}

/// FHIR access the request gives, or why what it gives cannot be used. The token goes only over
/// TLS, or over plain HTTP to this machine (a FHIR server on loopback).
fn fhir_access(
    obj: &serde_json::Map<String, Value>,
    servers: &FhirServers,
) -> (Option<FhirAccess>, Option<String>) {
    let Some(Value::String(server)) = obj.get("fhirServer") else {
        return (None, None);
    };
    let token = match obj.get("fhirAuthorization") {
        Some(Value::Object(a)) => match a.get("access_token") {
            Some(Value::String(t)) if !t.is_empty() => t,
            _ => {
                return (
                    None,
                    Some("`fhirAuthorization` has no `access_token` to fetch with".into()),
                );
            }
        },
        _ => return (None, None),
    };
    let Ok(url) = reqwest::Url::parse(server) else {
        return (None, Some("`fhirServer` is not a valid URL".into()));
    };
    if let Err(why) = servers.check(&url) {
        return (None, Some(why));
    }
    (
        Some(FhirAccess {
            server: server.trim_end_matches('/').to_owned(),
            token: token.clone(),
        }),
        None,
    )
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

/// `Patient/123`, `https://ehr/fhir/Patient/123/_history/2` or `123` -> `123`; `Patient/` -> ``.
pub fn bare_patient_id(s: &str) -> String {
    let key = reference_key(s.trim().trim_end_matches('/'));
    match key.strip_prefix("Patient/") {
        Some(id) => id.to_owned(),
        None if key == "Patient" => String::new(),
        None => key,
    }
}

/// A FHIR id (`[A-Za-z0-9\-\.]{1,64}`), and not `.` or `..`, which a URL would read as a path
/// step (`Patient/..` is the server's base, `Patient/.` a search).
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s != "."
        && s != ".."
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

    fn embedded_cds() -> Cds {
        Cds::new(
            Engine::embedded().unwrap(),
            ValueSets::embedded().unwrap(),
            CdsOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn cds_error_is_a_std_error_displaying_its_message_only() {
        let cds = embedded_cds();
        let err = cds.prepare(b"[]").unwrap_err();
        assert_eq!(err.code, "invalid_request");
        let message = err.message.clone();
        let diagnostic: &dyn Diagnostic = &err;
        assert_eq!(diagnostic.code(), "invalid_request");
        assert_eq!(diagnostic.location(), Location::Nowhere);
        let err: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn a_pack_declares_how_its_services_and_cards_speak() {
        use medscreen_core::engine::{EMBEDDED_PACKS, EMBEDDED_VOCABULARY};
        let (file, text) = EMBEDDED_PACKS
            .iter()
            .find(|(f, _)| f.contains("baclofen"))
            .unwrap();
        let mut pack: Value = serde_json::from_str(text).unwrap();
        pack["cds"] = serde_json::json!({
            "drug": "baclofen tablets",
            "service_title": "{drug}: safety check at {hook}",
            "service_description": "Pack {ruleset}, for {drug}.",
            "cancel_label": "Withdraw the {drug} order"
        });
        let pack = pack.to_string();
        let others: Vec<(&str, &str)> = EMBEDDED_PACKS
            .iter()
            .filter(|(f, _)| f != file)
            .copied()
            .collect();
        let packs: Vec<(&str, &str)> = [(*file, pack.as_str())].into_iter().chain(others).collect();
        let engine =
            Engine::from_packs(&packs, "rules/vocabulary.json", EMBEDDED_VOCABULARY).unwrap();
        let label = engine.ruleset().label.clone();
        let cds = Cds::new(
            engine,
            ValueSets::embedded().unwrap(),
            CdsOptions::default(),
        )
        .unwrap();
        let sign = cds.service("baclofen-order-sign").unwrap();
        assert_eq!(sign.title, "baclofen tablets: safety check at order-sign");
        assert_eq!(
            sign.description,
            format!("Pack {label}, for baclofen tablets.")
        );
        let text = cds.engine().cds_text();
        assert_eq!(
            text.fill(&text.cancel_label, "", ""),
            "Withdraw the baclofen tablets order"
        );
        // Without `cds`, the texts are the defaults.
        let default = embedded_cds();
        assert_eq!(
            default.service("baclofen-order-sign").unwrap().title,
            "medscreen baclofen screening (order-sign)"
        );
    }

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
        let cds = embedded_cds();
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
