//! CDS Hooks 2.0 service: baclofen screening inside the EHR's ordering workflow.
//!
//! [`service`] is the protocol without HTTP (discovery, prefetch, request -> cards), [`cards`] writes
//! screenings as cards, [`fetch`] gets missing prefetch from the EHR's FHIR server, [`auth`] verifies
//! the EHR's signed JWT and [`server`] puts them behind axum: limits, timeouts, CORS, feedback log.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod cards;
pub mod fetch;
pub mod server;
pub mod service;

pub use service::{Cds, CdsError, CdsOptions};
