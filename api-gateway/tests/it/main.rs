//! The gateway over real gRPC and TLS, on an in-memory store: authentication, the
//! Kubernetes semantics of every call, and the status codes of bad requests.

mod grpc;
mod support;
