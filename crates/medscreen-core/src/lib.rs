//! medscreen-core: safety screening of patient profiles against declarative rules.
//!
//! A profile (one JSON object per patient, see `schemas/profile.schema.json`) is validated, then
//! evaluated against a rule pack kept as data (`rules/`), giving cautions with severity, evidence and a
//! cited source, and a list of rules that could not be decided because a fact is missing.
//!
//! ```
//! use medscreen_core::{Engine, Status};
//!
//! let engine = Engine::embedded()?;
//! let profile = engine
//!     .parse_profile(br#"{"id": "p-7", "age": 45, "sex": "male", "seizure_history": true}"#)
//!     .expect("valid");
//! let screening = engine.screen(&profile);
//! assert_eq!(screening.status, Status::Flagged);
//! assert!(screening.cautions.iter().any(|c| c.rule == "BAC-SEIZURE"));
//! // Kidney function was not given: that rule is undecided, not passed.
//! assert!(screening.indeterminate.iter().any(|i| i.rule == "BAC-RENAL" && i.missing.contains(&"egfr")));
//! # Ok::<(), medscreen_core::LoadErrors>(())
//! ```
//!
//! This crate has no async runtime, HTTP client or server, and no cryptography: FHIR input lives in
//! `medscreen-fhir`, the CDS Hooks service in `medscreen-cds`, and the `medscreen` crate is the command
//! line and a facade over all three.
//!
//! The pipeline runs one way: [`facts`] (declared facts -> profile layout), [`profile`] (typed
//! facts) and [`schema`] (validation) -> [`vocab`]
//! (medication names and codes to classes) -> [`compile`] (rules to a checked program) -> `eval`
//! (program x profile -> [`Screening`]) -> [`report`] (output types).

#![forbid(unsafe_code)]
#![warn(missing_docs, unnameable_types)]

pub mod batch;
pub mod compile;
pub mod diagnostic;
pub mod driver;
pub mod engine;
pub mod error;
mod eval;
pub mod facts;
pub mod generate;
pub mod input;
mod json;
pub mod output;
pub mod pack_tests;
pub mod profile;
pub mod report;
pub mod schema;
pub mod severity;
pub mod suggest;
pub mod tally;
pub mod vocab;

pub use diagnostic::{Diagnostic, Location};
pub use engine::{Engine, Rejection, RulesetInfo};
pub use error::{LoadError, LoadErrorCode, LoadErrors};
pub use profile::{CodedMedication, Medication, Profile};
pub use report::{Caution, Evidence, Indeterminate, Screening, Status};
pub use schema::{Problem, ProblemCode};
pub use severity::Severity;
