//! The gateway's view of the replicated store: range reads, writes (puts, deletes,
//! transactions) and watches from a revision, behind the [`KvStore`] trait.
//!
//! Owns the seam between Kubernetes semantics (the `registry`) and the key-value store.
//! The real implementation is the local raft-store member (writes go to the Raft leader);
//! [`MemKv`] is an in-memory, unreplicated key space on the same pure `apply` function, for
//! tests of the layers above. This module knows nothing about objects or kinds.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::Stream;
use raft_store::kv::{
    apply, Command, KeyRange, KvError, KvResponse, KvState, Limits, MemBackend, Op, RangeRequest,
    RangeResponse, RevisionEvents,
};
use tokio::sync::watch;

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
}

impl StoreError {
    /// A request every master would refuse alike (a membership change the cluster cannot
    /// make, say): answered as such, not as an outage another master might not have.
    pub fn refused(why: impl Into<String>) -> StoreError {
        StoreError::Kv(KvError::Invalid(why.into()))
    }

    /// Whether the same call may succeed if retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Kv(e) => e.is_retryable(),
            StoreError::Unavailable(_) | StoreError::Timeout(_) => true,
        }
    }
}

/// Whether a read must reflect every write acknowledged before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Linearizable: confirmed with the leader first.
    Linearizable,
    /// Serializable: the local member's state, possibly stale.
    Serializable,
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
}

/// The Raft term the in-memory store pretends to lead in.
pub const MEM_TERM: u64 = 1;

/// An in-memory, unreplicated key space: the pure `apply` function under a mutex.
/// For tests of the gateway; never used by a master.
#[derive(Clone)]
pub struct MemKv {
    state: Arc<Mutex<KvState<MemBackend>>>,
    revision: watch::Sender<u64>,
}

impl MemKv {
    /// An empty key space.
    pub fn new() -> Result<MemKv, StoreError> {
        let state = KvState::open(MemBackend::new(), Limits::default())?;
        let (revision, _) = watch::channel(state.revision());
        Ok(MemKv {
            state: Arc::new(Mutex::new(state)),
            revision,
        })
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    fn events_from(&self, from: u64, range: &KeyRange) -> Result<Vec<RevisionEvents>, StoreError> {
        Ok(self.lock()?.events_from(from, Some(range), 256)?)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, KvState<MemBackend>>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("the in-memory store was poisoned".to_owned()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl KvStore for MemKv {
    async fn range(
        &self,
        request: RangeRequest,
        _consistency: ReadConsistency,
    ) -> Result<RangeResponse, StoreError> {
        Ok(self.lock()?.range(&request)?)
    }

    async fn write(&self, op: Op, fence: Option<u64>) -> Result<KvResponse, StoreError> {
        let (result, revision) = {
            let mut state = self.lock()?;
            // One member that leads forever in term 1.
            let command = Command {
                now_ms: now_ms(),
                fence_term: fence,
                op,
            };
            let applied = apply(&mut state, &command, MEM_TERM)?;
            (applied.result, applied.revision)
        };
        self.revision.send_replace(revision);
        Ok(result?)
    }

    async fn watch(&self, range: KeyRange, from: u64) -> Result<EventStream, StoreError> {
        // Fail fast on a compacted start, as the real store does.
        self.lock()?.events_from(from, Some(&range), 1)?;
        let store = self.clone();
        let mut revisions = self.revision.subscribe();
        let stream = async_stream::try_stream! {
            let mut next = from;
            loop {
                let batch = store.events_from(next, &range)?;
                if batch.is_empty() {
                    if revisions.changed().await.is_err() {
                        break;
                    }
                    continue;
                }
                for revision_events in batch {
                    next = revision_events.revision + 1;
                    yield revision_events;
                }
            }
        };
        Ok(Box::pin(stream))
    }
}
