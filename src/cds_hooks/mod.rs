//! CDS Hooks 2.0 service.

pub mod auth;
