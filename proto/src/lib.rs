//! # Layout
//!
//! Rafter's API schema and everything that turns text into typed objects:
//!
//! | module | owns |
//! |---|---|
//! | [`v1`] | the generated resource kinds (`Pod`, `Deployment` ...) with serde in the Kubernetes JSON shape |
//! | [`raft`] | the generated internal `Raft` service masters use between themselves |
//! | `int_or_string` | [`IntOrString`] (`targetPort: 8080` or `http`, `maxSurge: 25%`) |
//! | `serde_support` | serde glue named from `build.rs` |
//!
//! This crate does no I/O and holds no state: it parses, validates and serialises.

mod int_or_string;
mod serde_support;

pub use int_or_string::{IntOrString, IntOrStringError};

/// The public API kinds (package `rafter.v1`).
#[allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("rafter.v1");
}

/// The internal Raft transport between masters (package `rafter.raft.v1`).
pub mod raft {
    tonic::include_proto!("rafter.raft.v1");
}
