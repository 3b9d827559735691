//! The gateway over real gRPC and TLS, on an in-memory store: authentication, the
//! Kubernetes semantics of every call, and the status codes of bad requests; and the
//! client library against three masters over one store.

mod client;
mod grpc;
mod masters;
mod support;
