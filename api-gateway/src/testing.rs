//! Test support: [`MemKv`], an in-memory, unreplicated key space on raft-store's pure
//! `apply` function, as the gateway's [`KvStore`] and as a one-member [`ClusterControl`].
//!
//! Built for this crate's own tests and, with the `testing` feature, for other crates'
//! tests. It is never part of a master: a master's store is the replicated member.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use raft_store::kv::{
    apply, Command, KeyRange, KvResponse, KvState, Limits, MemBackend, Op, RangeRequest,
    RangeResponse, RevisionEvents,
};
use rafter_proto::api::{self, ClusterStatus};
use rafter_proto::ReadConsistency;
use tokio::sync::watch;

use crate::cluster::ClusterControl;
use crate::store::{EventStream, KvStore, StoreError};

/// The Raft term the in-memory store pretends to lead in.
pub const MEM_TERM: u64 = 1;

/// Revisions a watch reads from history at once.
const WATCH_BATCH: usize = 256;

/// An in-memory, unreplicated key space: the pure `apply` function under a mutex.
/// For tests; never used by a master.
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

    /// Up to 256 revisions of changes in `range` from `from`, and the revision the store was
    /// at when they were read (one lock: nothing in `range` up to it was left out unless the
    /// batch is full).
    fn events_from(
        &self,
        from: u64,
        range: &KeyRange,
    ) -> Result<(Vec<RevisionEvents>, u64), StoreError> {
        let state = self.lock()?;
        Ok((
            state.events_from(from, Some(range), WATCH_BATCH)?,
            state.revision(),
        ))
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
                let (batch, read_at) = store.events_from(next, &range)?;
                let whole = batch.len() < WATCH_BATCH;
                for revision_events in batch {
                    next = revision_events.revision + 1;
                    yield revision_events;
                }
                if whole {
                    // Nothing else in range up to `read_at`: the next read starts after it,
                    // not again from the last change in range (which made every write cost
                    // a scan of all history since a quiet range's last change).
                    next = next.max(read_at + 1);
                    if revisions.changed().await.is_err() {
                        break;
                    }
                }
            }
        };
        Ok(Box::pin(stream))
    }
}

#[async_trait::async_trait]
impl ClusterControl for MemKv {
    async fn status(&self) -> Result<ClusterStatus, StoreError> {
        let revision = i64::try_from(self.revision()).unwrap_or(i64::MAX);
        Ok(ClusterStatus {
            member_id: 1,
            leader_id: 1,
            term: 1,
            applied_index: self.revision(),
            commit_index: self.revision(),
            revision,
            members: vec![api::Member {
                id: 1,
                client_address: String::new(),
                peer_address: String::new(),
                role: "Voter".to_owned(),
                healthy: true,
            }],
            ready: true,
        })
    }

    async fn add_member(
        &self,
        _request: api::AddMemberRequest,
    ) -> Result<ClusterStatus, StoreError> {
        Err(StoreError::refused(
            "the in-memory store has one member and takes no others",
        ))
    }

    async fn remove_member(&self, _id: u64) -> Result<ClusterStatus, StoreError> {
        Err(StoreError::refused(
            "the in-memory store has one member and takes no others",
        ))
    }

    async fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::Unavailable(
            "the in-memory store keeps no snapshots".to_owned(),
        ))
    }
}
