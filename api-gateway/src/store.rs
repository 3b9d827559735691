//! The gateway's view of the replicated store: range reads, writes (puts, deletes,
//! transactions) and watches from a revision, behind the [`KvStore`] trait.
//!
//! Owns the seam between Kubernetes semantics (the `registry`) and the key-value store.
//! The real implementation is the local raft-store member (writes go to the Raft leader,
//! `rafter-master`'s `RaftKv`); `testing::MemKv` is an in-memory, unreplicated key space on
//! the same pure `apply` function, for tests of the layers above. This module knows nothing
//! about objects or kinds.

use std::pin::Pin;

use futures::Stream;
use raft_store::kv::{
    KeyRange, KvError, KvResponse, Op, RangeRequest, RangeResponse, RevisionEvents,
};
use rafter_proto::ReadConsistency;

/// A stream of the store's changes, one revision at a time, in revision order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RevisionEvents, StoreError>> + Send>>;

/// Why the store did not serve a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The key space answered with a logical error (compacted, too large, invalid ...).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// No leader can be reached or quorum is lost: the call may succeed later or elsewhere.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than its deadline; a write's outcome is unknown.
    #[error("the store did not answer in time: {0}")]
    Timeout(String),
    /// A write was proposed (or forwarded to the leader) and the store cannot tell whether
    /// it was applied: its log entry was discarded when another leader took over, the
    /// leader's reply to a forwarded write was lost, or no quorum answered in time. It
    /// must not be sent again as if it never was: read first.
    #[error("the write may or may not have been applied: {0}")]
    OutcomeUnknown(String),
}

impl StoreError {
    /// A request every master would refuse alike (a membership change the cluster cannot
    /// make, say): answered as such, not as an outage another master might not have.
    pub fn refused(why: impl Into<String>) -> StoreError {
        StoreError::Kv(KvError::Invalid(why.into()))
    }

    /// Whether the same call may succeed if retried (after an unknown outcome, only after
    /// reading what the first attempt did).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Kv(e) => e.is_retryable(),
            StoreError::Unavailable(_) | StoreError::Timeout(_) | StoreError::OutcomeUnknown(_) => {
                true
            }
        }
    }
}

/// What the gateway needs from the store.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Reads keys.
    async fn range(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse, StoreError>;

    /// Runs one write through the log and returns its answer. With `fence = Some(term)` the
    /// write applies only if it is logged in that Raft term (controllers decide in a term
    /// and must never act after leadership moved on); otherwise it fails with `Fenced`.
    async fn write(&self, op: Op, fence: Option<u64>) -> Result<KvResponse, StoreError>;

    /// Streams every change to `range` from revision `from` on (inclusive), with previous
    /// values, with no gap and no duplicate; `Compacted` when `from` is too old.
    async fn watch(&self, range: KeyRange, from: u64) -> Result<EventStream, StoreError>;

    /// The store's own figures (its memory, say) in the Prometheus text format, for the
    /// master's `GET /metrics`; none by default. Must not wait on I/O.
    fn metrics_text(&self) -> String {
        String::new()
    }
}
