//! Errors of the key space.
//!
//! Owns [`KvError`]. Logical errors are deterministic answers that every member computes the
//! same way; only [`KvError::Storage`] reports a failure of the backend itself.

use serde::Deserialize;
use serde::Serialize;

/// Why a key-space operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvError {
    /// The requested revision is below the compaction point; history there is gone.
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The current compaction point.
        compacted: u64,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// A value is larger than the configured limit; nothing was written.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the rejected value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A request is larger than the configured limit; nothing was written.
    #[error("request of {size} bytes exceeds the limit of {limit} bytes")]
    RequestTooLarge {
        /// Size of the rejected request.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease {0} not found")]
    LeaseNotFound(u64),
    /// A lease with this id already exists.
    #[error("lease {0} already exists")]
    LeaseExists(u64),
    /// The write was decided in an older leadership term than the one it was logged in.
    #[error("write fenced: decided in term {decided_in}, logged in term {entry_term}")]
    Fenced {
        /// The term the write was decided in.
        decided_in: u64,
        /// The term of the log entry.
        entry_term: u64,
    },
    /// The request is malformed (empty key, zero TTL ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The storage backend failed; the state machine cannot go on.
    #[error("storage backend failed: {0}")]
    Storage(String),
    /// The leader's data disk has less free space than its reserve: the write was refused
    /// before it was proposed, and nothing was written. Taken again once space is freed.
    #[error(
        "member {member}'s data disk has {free} bytes free, below its reserve of {reserve} \
         bytes: writes are refused until space is freed"
    )]
    NoSpace {
        /// The member that refused.
        member: u64,
        /// Its free bytes at the last reading.
        free: u64,
        /// Its reserve.
        reserve: u64,
    },
}

impl KvError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, KvError::FutureRevision { .. } | KvError::Storage(_))
    }
}
