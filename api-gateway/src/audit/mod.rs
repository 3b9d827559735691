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
//! Not wired into the services yet: that waits for the authorization work in `service.rs`
//! (the audit record of a write must be written before its acknowledgement returns, with
//! the authorizer's decision). It does no authorization and reads no store.

#[cfg(test)]
mod audit_test;
mod event;
mod log;
mod policy;

pub use event::{Event, ObjectRef, ResponseStatus, Stage, UserRef};
pub use log::AuditLog;
pub use policy::{Level, Policy, Request};

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
