//! The audit log: one JSON line per request stage in Kubernetes' `audit.k8s.io/v1` Event
//! shape, filtered by a `Policy`, written to a size-rotated file.
//!
//! ```text
//!  request ─► Policy::level(attributes) ─► None: nothing
//!                                      └─► Metadata | Request ─► Event ─► AuditLog::record
//!                                                                (JSON line, fsync, rotate)
//! ```
//!
//! Owns the event shape, the policy (levels None, Metadata, Request; the first matching
//! rule wins) and the file. Secret and ConfigMap bodies, and the bodies of TokenReviews,
//! are never logged whatever the policy says (level capped at Metadata), as Kubernetes'
//! recommended policy keeps them out.
//!
//! Wiring (`request`): the gateway's [`Auditor`] (`serve_with`'s `ServeOptions::audit`)
//! gives every call of the `Resources` and `Cluster` services one [`Audit`]: begun when
//! the call arrives (source IP, gRPC method as `requestURI`, time), filled in by
//! authentication and authorization (user and groups, verb, API group, resource,
//! subresource, namespace, name, and the request object when the level is Request), and
//! finished with the handler's result (the response code, 200/201 or the HTTP code of the
//! gRPC error, see [`response_code`]). The record is synced before the answer is
//! returned, so an acknowledged write is always in the log (or the policy leaves it out).
//!
//! One event per call: stage ResponseComplete for unary calls; ResponseStarted for the
//! streams (watch, pods/log, snapshot), recorded when the stream is handed back (its end
//! is not recorded). RequestReceived is never written (as if every policy omitted it).
//! Calls that fail authentication are recorded as user `system:anonymous` in group
//! `system:unauthenticated` with code 401; calls refused by authorization with 403; calls
//! refused before their request was decoded (before authentication) have no `objectRef`
//! and an empty user, as Kubernetes' `"user":{}`.
//!
//! Without an auditor a call's [`Audit`] is inert (`None`): nothing is built or written.
//! It does no authorization and reads no store.

#[cfg(test)]
mod audit_test;
mod event;
mod log;
mod policy;
mod request;

pub use event::{Event, ObjectRef, ResponseStatus, Stage, UserRef};
pub use log::AuditLog;
pub use policy::{Level, Policy, Request};
pub use request::{response_code, Auditor, ANONYMOUS_USER, UNAUTHENTICATED_GROUP};
pub(crate) use request::{Audit, CallPath};

/// Why an audit policy was refused or a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The policy file is not an `audit.k8s.io/v1` Policy.
    #[error("audit policy: {0}")]
    Policy(String),
    /// The log file could not be written or rotated.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
