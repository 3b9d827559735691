//! The gateway over real gRPC and TLS, on an in-memory store: authentication, the
//! Kubernetes semantics of every call, and the status codes of bad requests; and the
//! client library against three masters over one store, with at-most-once writes.

// reason: test code, a panic is the failure report; clippy.toml lets #[test] functions
// unwrap, but not the fixtures and helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod authorization;
mod client;
mod flow_control;
mod grpc;
mod masters;
mod outcome;
mod service_accounts;
mod service_allocation;
mod support;
