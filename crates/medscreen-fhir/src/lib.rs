//! FHIR R4 input: Bundles and Bulk Data exports turned into native profiles through coded value sets.
//!
//! The FHIR side is one more step in front of the native pipeline, and hands it nothing but a profile:
//! [`valueset`] (codes kept as data in `rules/valuesets/` and `rules/NAME/valuesets/`, each set saying
//! which fact it fills and how; checked at load) -> [`binding`] (the sets checked against the engine
//! that screens: its facts, their types, its drug) -> [`bundle`] / [`bulk`] (resources to per-patient
//! facts, attributed by reference) -> [`mapping`] (facts to a profile, with the evaluation date,
//! look-back window and open/closed-world choice applied, and a provenance map) -> the engine ->
//! `output` (the native result with each piece of evidence naming its FHIR resources). [`run`] drives it
//! over files, directories and exports, in parallel, in a deterministic order.
//!
//! ```
//! use medscreen_core::Engine;
//! use medscreen_fhir::{Absent, Binding, Options, Outcome, ValueSets, date::Date, bundle::read_bundle};
//!
//! let binding = Binding::new(Engine::embedded()?, ValueSets::embedded()?)?;
//! let opts = Options { as_of: Date::parse("2021-06-01").unwrap(), lookback_days: 365, absent: Absent::False };
//! let mapper = binding.mapper(opts);
//! let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
//!   {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-01-01"}},
//!   {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"},
//!     "clinicalStatus": {"coding": [{"code": "active"}]},
//!     "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}}}]});
//! let facts = read_bundle(&mapper, &bundle, "example.json", 1);
//! let Outcome::Profile { profile, provenance } = mapper.profile(&facts.patients[0]) else { panic!() };
//! assert_eq!(profile["age"], 71);
//! assert_eq!(profile["seizure_history"], true);
//! assert_eq!(provenance["/seizure_history"][0].resource, "Condition/c1");
//! let engine = binding.engine();
//! let screening = engine.screen(&engine.validate_value(&profile).unwrap());
//! assert!(screening.cautions.iter().any(|c| c.rule == "BAC-SEIZURE"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unnameable_types)]

pub mod binding;
pub mod bulk;
pub mod bundle;
pub mod date;
mod discover;
pub mod mapping;
mod output;
pub mod resource_types;
pub mod run;
pub mod valueset;

pub use binding::{BindError, Binding, DrugMismatch};
pub use mapping::{Absent, FhirProblem, Mapper, Options, Outcome, PatientFacts, Prov};
pub use valueset::ValueSets;
