//! # Layout
//!
//! The controller runtime and the controllers (scheduler, replicaset, deployment rollout,
//! daemonset, node lifecycle, CSR signing, garbage collection) as actix actors fed by the
//! store's applied-entry stream. Nothing lives here yet: the controllers arrive with their
//! own issue, after the store and the gateway they build on.
