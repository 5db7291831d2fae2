//! CDS Hooks 2.0 service: screening an order of a pack's drug inside the EHR's ordering workflow.
//!
//! [`service`] is the protocol without HTTP (discovery, prefetch, request -> cards), `cards` writes
//! screenings as cards, `fetch` gets missing prefetch from the EHR's FHIR server, `servers` says
//! which FHIR servers may get a client's token, [`auth`] verifies the EHR's signed JWT and [`server`]
//! puts them behind axum: limits, timeouts, CORS, feedback log. Dependencies run one way: `server`
//! -> `fetch` -> `service` -> `cards`, with `auth` and `servers` beside them. A server offers one
//! [`Cds`] per pack; [`catalog`] lists their services together and routes a service id to its pack.

#![forbid(unsafe_code)]
#![warn(missing_docs, unnameable_types)]

pub mod auth;
mod cards;
pub mod catalog;
mod fetch;
pub mod server;
mod servers;
pub mod service;

pub use cards::{Action, Card, CardSource, Coding, Link, Suggestion};
pub use catalog::{Catalog, CatalogError};
pub use servers::{FhirServers, Origin};
pub use service::{Cds, CdsError, CdsOptions};
