//! Coalescing of concurrent linearizable reads on the leader into shared read-index rounds.
//!
//! Owns [`ReadIndexBatcher`]. A read index is only valid for readers that arrived before the
//! round confirming it started; so readers join a round that has not started yet, and at
//! most one round runs at a time while the next one gathers readers:
//!
//! ```text
//!  readers ─► waiting round (gathering) ──(previous round done)──► started: get_read_log_id
//!                 ▲ later readers start the next waiting round          └─► every joined reader
//! ```
//!
//! A reader that finds no round in flight and none gathering runs its round itself.
//!
//! It must not wait for the state machine: each reader does that against its own deadline.

use std::sync::Arc;
use std::sync::Mutex;

use openraft::error::Fatal;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;
use openraft::ReadPolicy;
use tokio::sync::watch;

use crate::types::LogId;
use crate::types::Raft;
use crate::types::TypeConfig;

pub(crate) type ReadIndexResult =
    Result<Option<LogId>, RaftError<TypeConfig, LinearizableReadError<TypeConfig>>>;

type Round = watch::Receiver<Option<ReadIndexResult>>;

/// Shares read-index rounds between concurrent readers.
pub(crate) struct ReadIndexBatcher {
    raft: Raft,
    /// The round gathering readers, not started yet.
    waiting: Mutex<Option<Round>>,
    /// Held by the round in flight.
    running: tokio::sync::Mutex<()>,
}

impl ReadIndexBatcher {
    pub(crate) fn new(raft: Raft) -> Arc<Self> {
        Arc::new(ReadIndexBatcher {
            raft,
            waiting: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// A read index confirmed by a quorum in a round that started after this call.
    pub(crate) async fn read_index(self: &Arc<Self>) -> ReadIndexResult {
        // A lone reader (no round in flight, none gathering) runs its round from its own
        // task: one hand-off fewer. Readers arriving meanwhile gather for the next round.
        if let Ok(_in_flight) = self.running.try_lock() {
            let gathering = self
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            if !gathering {
                return self.confirm().await;
            }
        }
        let mut round = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match &*waiting {
                Some(round) => round.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *waiting = Some(rx.clone());
                    let this = self.clone();
                    tokio::spawn(async move { this.run_round(tx).await });
                    rx
                }
            }
        };
        loop {
            if let Some(result) = round.borrow_and_update().clone() {
                return result;
            }
            if round.changed().await.is_err() {
                return Err(RaftError::Fatal(Fatal::Stopped));
            }
        }
    }

    async fn run_round(&self, tx: watch::Sender<Option<ReadIndexResult>>) {
        let _in_flight = self.running.lock().await;
        // The round starts now: readers arriving from here on must join the next one.
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = tx.send(Some(self.confirm().await));
    }

    /// One round: the leader confirms its leadership with a quorum.
    async fn confirm(&self) -> ReadIndexResult {
        self.raft
            .get_read_log_id(ReadPolicy::ReadIndex)
            .await
            .map(|(read_log_id, _applied)| Some(*read_log_id.log_id()))
    }
}
