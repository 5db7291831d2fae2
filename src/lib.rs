//! medscreen: safety screening of patient profiles against declarative rules, as a command line and
//! one facade over its crates.
//!
//! - [`medscreen_core`] (re-exported here at the top level): profiles, schema, vocabulary, rule compiler,
//!   evaluator, batch driver and printers. It has no async runtime, HTTP or cryptography in its
//!   dependency tree: embed it alone when you only screen profiles.
//! - [`fhir`] (`medscreen-fhir`): FHIR R4 Bundles and Bulk Data exports as input.
//! - [`cds_hooks`] (`medscreen-cds`): the CDS Hooks 2.0 service.
//!
//! ```
//! use medscreen::{Engine, Status};
//!
//! let engine = Engine::embedded()?;
//! let screening = engine.screen_json(br#"{"id": "p-7", "age": 45, "seizure_history": true}"#);
//! assert_eq!(screening.map(|s| s.status).ok(), Some(Status::Flagged));
//! # Ok::<(), medscreen::LoadErrors>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use medscreen_cds as cds_hooks;
pub use medscreen_core::*;
pub use medscreen_fhir as fhir;

#[doc(hidden)]
pub mod fuzzing;
