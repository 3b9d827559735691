//! The request, response and record types of the key space.
//!
//! Owns the shapes that travel in log entries and come back to callers. It must not do any
//! I/O or hold behaviour beyond small constructors: applying lives in `state.rs`.

use serde::Deserialize;
use serde::Serialize;

use crate::kv::error::KvError;

/// One key as stored at a revision: its value and etcd-style bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    /// The key bytes.
    #[serde(with = "crate::kv::serde_bytes::bytes")]
    pub key: Vec<u8>,
    /// The value bytes (empty in keys-only reads).
    #[serde(with = "crate::kv::serde_bytes::bytes")]
    pub value: Vec<u8>,
    /// Revision of the put that created this generation of the key.
    pub create_revision: u64,
    /// Revision of the last change of the key.
    pub mod_revision: u64,
    /// Number of puts since the key was (re)created; 1 after creation.
    pub version: u64,
    /// Lease the key is attached to; 0 means none.
    pub lease: u64,
}

/// A set of keys: one key, or the half-open range `[start, end)` (`end = None` is unbounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRange {
    /// Exactly one key.
    Key(#[serde(with = "crate::kv::serde_bytes::bytes")] Vec<u8>),
    /// Every key `k` with `start <= k < end`; `end = None` means no upper bound.
    Range {
        /// Inclusive lower bound.
        #[serde(with = "crate::kv::serde_bytes::bytes")]
        start: Vec<u8>,
        /// Exclusive upper bound, or unbounded.
        #[serde(with = "crate::kv::serde_bytes::opt_bytes")]
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    /// The single key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        KeyRange::Key(key.into())
    }

    /// Every key starting with `prefix` (all keys when `prefix` is empty).
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        KeyRange::Range { start, end }
    }

    /// Every key in `[start, end)`.
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange::Range {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// Whether `key` lies in this set.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Key(k) => k.as_slice() == key,
            KeyRange::Range { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }

    /// `[start, end)` bounds of this set; `None` end is unbounded.
    pub(crate) fn bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeyRange::Key(k) => {
                let mut end = k.clone();
                end.push(0);
                (k.clone(), Some(end))
            }
            KeyRange::Range { start, end } => (start.clone(), end.clone()),
        }
    }

    pub(crate) fn byte_len(&self) -> usize {
        match self {
            KeyRange::Key(k) => k.len(),
            KeyRange::Range { start, end } => start.len() + end.as_ref().map_or(0, Vec::len),
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Read keys, now or at a past revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// Which keys.
    pub range: KeyRange,
    /// Read the key space as it was at this revision; 0 reads the current revision.
    pub revision: u64,
    /// At most this many keys are returned; 0 means no limit.
    pub limit: u64,
    /// Return keys and metadata without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
}

impl RangeRequest {
    /// A read of `range` at the current revision with no limit.
    pub fn new(range: KeyRange) -> Self {
        RangeRequest {
            range,
            revision: 0,
            limit: 0,
            keys_only: false,
            count_only: false,
        }
    }
}

/// The result of a range read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeResponse {
    /// Matching keys in key order (empty for count-only reads).
    pub kvs: Vec<KeyValue>,
    /// Number of matching keys, regardless of the limit.
    pub count: u64,
    /// Whether more keys matched than were returned.
    pub more: bool,
    /// The revision the read observed (the store's revision for reads at the current revision).
    pub revision: u64,
}

/// Write a value at a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key.
    #[serde(with = "crate::kv::serde_bytes::bytes")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "crate::kv::serde_bytes::bytes")]
    pub value: Vec<u8>,
    /// Attach the key to this lease; 0 for none.
    pub lease: u64,
    /// Return the previous key-value.
    pub prev_kv: bool,
}

impl PutRequest {
    /// A put of `value` at `key` with no lease.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        PutRequest {
            key: key.into(),
            value: value.into(),
            lease: 0,
            prev_kv: false,
        }
    }
}

/// The result of a put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutResponse {
    /// Revision of the store after the put.
    pub revision: u64,
    /// The previous key-value, when requested and present.
    pub prev_kv: Option<KeyValue>,
}

/// Delete a key or a range of keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    /// Which keys.
    pub range: KeyRange,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteRequest {
    /// Delete `range` without returning previous values.
    pub fn new(range: KeyRange) -> Self {
        DeleteRequest {
            range,
            prev_kv: false,
        }
    }
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteResponse {
    /// Revision of the store after the delete (unchanged when nothing was deleted).
    pub revision: u64,
    /// Number of keys deleted.
    pub deleted: u64,
    /// Deleted key-values, when requested.
    pub prev_kvs: Vec<KeyValue>,
}

/// Which attribute of a key a [`Compare`] looks at, and the value to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value bytes; a missing key never matches.
    Value(#[serde(with = "crate::kv::serde_bytes::bytes")] Vec<u8>),
    /// The version (0 for a missing key).
    Version(u64),
    /// The mod revision (0 for a missing key).
    ModRevision(u64),
    /// The create revision (0 for a missing key).
    CreateRevision(u64),
    /// The lease id (0 for none or a missing key).
    Lease(u64),
}

/// How a [`Compare`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    #[serde(with = "crate::kv::serde_bytes::bytes")]
    pub key: Vec<u8>,
    /// The comparison.
    pub op: CompareOp,
    /// The attribute and the value to compare with.
    pub target: CompareTarget,
}

impl Compare {
    /// A condition `key.<target> <op> value`.
    pub fn new(key: impl Into<Vec<u8>>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            op,
            target,
        }
    }
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A read at the transaction's own revision.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    Delete(DeleteRequest),
}

/// The result of one [`TxnOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpResponse {
    /// Result of a range.
    Range(RangeResponse),
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    Delete(DeleteResponse),
}

/// Compare-and-swap: if every compare holds, run `success`, else `failure`, atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnRequest {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations run when all conditions hold.
    pub success: Vec<TxnOp>,
    /// Operations run otherwise.
    pub failure: Vec<TxnOp>,
}

/// The result of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
    /// Revision of the store after the transaction.
    pub revision: u64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Lease id.
    pub id: u64,
    /// Time to live granted, in milliseconds.
    pub ttl_ms: u64,
    /// Leader time (ms since the Unix epoch) at which the lease expires.
    pub expires_at_ms: u64,
    /// Keys attached to the lease.
    pub keys: Vec<Vec<u8>>,
}

/// Whether an event is a put or a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change of one key, as watches deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// An operation that goes through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Put one key.
    Put(PutRequest),
    /// Delete keys.
    Delete(DeleteRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Drop history below `revision`.
    Compact {
        /// The new compaction point.
        revision: u64,
    },
    /// Grant a lease; `id = 0` lets the store pick the next free id.
    LeaseGrant {
        /// Requested id, or 0.
        id: u64,
        /// Time to live in milliseconds.
        ttl_ms: u64,
    },
    /// Revoke a lease and delete its keys.
    LeaseRevoke {
        /// The lease.
        id: u64,
    },
    /// Renew a lease for its full TTL from the entry's time.
    LeaseKeepAlive {
        /// The lease.
        id: u64,
    },
    /// Revoke every lease that expired at the entry's time (proposed by the leader).
    LeaseExpire,
    /// Give every lease its full TTL again from the entry's time (proposed by a new leader).
    LeaseExtendAll,
    /// Does nothing; used to probe the log.
    Noop,
    /// Several clients' commands carried by one log entry, so that they share one append,
    /// one fsync and one replication round. Each applies on its own, in order, at its own
    /// revision and under its own fence; one failing leaves the others alone. Batches do not
    /// nest (an inner batch fails with `Invalid`).
    Batch(Vec<Command>),
}

/// A log entry's payload: the operation and the leader's clock when it proposed it.
///
/// `apply` reads time only from `now_ms`, so every member applies identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Leader wall-clock time in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// Apply only if the entry is in this Raft term: a write decided by a leader (e.g. a
    /// controller) is refused if leadership moved on before it was logged. `None`: unfenced.
    pub fence_term: Option<u64>,
    /// What to do.
    pub op: Op,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.op {
            Op::Put(_) => "put",
            Op::Delete(_) => "delete",
            Op::Txn(_) => "txn",
            Op::Compact { .. } => "compact",
            Op::LeaseGrant { .. } => "lease-grant",
            Op::LeaseRevoke { .. } => "lease-revoke",
            Op::LeaseKeepAlive { .. } => "lease-keepalive",
            Op::LeaseExpire => "lease-expire",
            Op::LeaseExtendAll => "lease-extend-all",
            Op::Noop => "noop",
            Op::Batch(cmds) => return write!(f, "batch({})@{}", cmds.len(), self.now_ms),
        };
        write!(f, "{name}@{}", self.now_ms)
    }
}

/// What applying a [`Command`] answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// Answer to [`Op::Put`].
    Put(PutResponse),
    /// Answer to [`Op::Delete`].
    Delete(DeleteResponse),
    /// Answer to [`Op::Txn`].
    Txn(TxnResponse),
    /// Answer to [`Op::Compact`].
    Compact {
        /// The store revision.
        revision: u64,
    },
    /// Answer to [`Op::LeaseGrant`].
    LeaseGrant {
        /// The lease id granted.
        id: u64,
        /// Its TTL in milliseconds.
        ttl_ms: u64,
    },
    /// Answer to [`Op::LeaseRevoke`].
    LeaseRevoke {
        /// The store revision after deleting the lease's keys.
        revision: u64,
    },
    /// Answer to [`Op::LeaseKeepAlive`].
    LeaseKeepAlive {
        /// The lease id.
        id: u64,
        /// Its TTL in milliseconds.
        ttl_ms: u64,
    },
    /// Answer to [`Op::LeaseExpire`].
    LeaseExpire {
        /// Leases revoked.
        expired: Vec<u64>,
        /// The store revision after deleting their keys.
        revision: u64,
    },
    /// Answer to entries that return nothing (noop, blank, membership, lease extension).
    Empty,
    /// Answer to [`Op::Batch`]: each command's own answer, in order.
    Batch(Vec<Result<KvResponse, KvError>>),
}

/// Limits on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest value accepted in a put.
    pub max_value_bytes: usize,
    /// Largest total of keys and values in one request.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 1536 * 1024,
            max_request_bytes: 1536 * 1024 + 64 * 1024,
        }
    }
}
