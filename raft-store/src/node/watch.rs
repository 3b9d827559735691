//! Watches and the applied-revision stream, with the no-gap resume rule.
//!
//! Owns [`Watch`], [`WatchRequest`] and the feeder task behind them. A feeder subscribes to
//! the state machine's broadcast *before* reading history, then delivers history up to the
//! revision it read, then live revisions; a revision it already delivered is skipped and a
//! jump (lagging receiver, snapshot install) sends it back to history. So every change from
//! the start revision is delivered exactly once, in revision order, or the watch ends with
//! `Compacted`. It must not write anything.
//!
//! ```text
//!  subscribe ─► history [from, current] ─► live broadcast ─┬─► deliver (rev == next)
//!                  ▲                                       ├─► skip    (rev <  next)
//!                  └───────────── gap / lagged ────────────┘
//! ```

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::mpsc;
use tokio::sync::watch as tokio_watch;

use crate::kv::KeyRange;
use crate::kv::RevisionEvents;
use crate::node::error::NodeError;
use crate::storage::StateHandle;

const HISTORY_BATCH: usize = 256;
const CHANNEL: usize = 256;

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    /// Keys to watch.
    pub range: KeyRange,
    /// First revision to deliver; 0 means changes after the current revision at the time
    /// the watch is created.
    pub start_revision: u64,
    /// Include each key's previous value in events.
    pub prev_kv: bool,
}

impl WatchRequest {
    /// Watch `range` from now on, without previous values.
    pub fn new(range: KeyRange) -> Self {
        WatchRequest {
            range,
            start_revision: 0,
            prev_kv: false,
        }
    }
}

/// A stream of changes, one item per revision. Dropping it stops the feeder.
#[derive(Debug)]
pub struct Watch {
    rx: mpsc::Receiver<Result<RevisionEvents, NodeError>>,
}

impl Watch {
    /// The next revision's changes; `None` after the member shut down or after an error.
    pub async fn next(&mut self) -> Option<Result<RevisionEvents, NodeError>> {
        self.rx.recv().await
    }
}

impl futures::Stream for Watch {
    type Item = Result<RevisionEvents, NodeError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

pub(crate) fn spawn_watch(
    handle: StateHandle,
    range: Option<KeyRange>,
    start_revision: u64,
    prev_kv: bool,
    shutdown: tokio_watch::Receiver<bool>,
) -> Watch {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let closed = tx.clone();
        let mut shutdown = shutdown;
        tokio::select! {
            _ = feed(handle, range, start_revision, prev_kv, tx) => {}
            _ = closed.closed() => {}
            _ = shutdown.wait_for(|stopped| *stopped) => {}
        }
    });
    Watch { rx }
}

fn shape(
    mut rev: RevisionEvents,
    range: Option<&KeyRange>,
    prev_kv: bool,
) -> Option<RevisionEvents> {
    if let Some(range) = range {
        rev.events.retain(|e| range.contains(&e.kv.key));
    }
    if !prev_kv {
        for e in &mut rev.events {
            e.prev_kv = None;
        }
    }
    (!rev.events.is_empty()).then_some(rev)
}

async fn feed(
    handle: StateHandle,
    range: Option<KeyRange>,
    start_revision: u64,
    prev_kv: bool,
    tx: mpsc::Sender<Result<RevisionEvents, NodeError>>,
) {
    let mut live = handle.subscribe();
    // `next` is the next global revision not yet accounted for.
    let mut next = start_revision.max(1);
    loop {
        // Catch up from history.
        loop {
            let r = range.clone();
            let from = next;
            let read = handle
                .read(move |kv| {
                    kv.events_from(from, r.as_ref(), HISTORY_BATCH)
                        .map(|evs| (evs, kv.revision()))
                })
                .await;
            let (batch, current) = match read {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(NodeError::Kv(e))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let full = batch.len() >= HISTORY_BATCH;
            for rev in batch {
                next = rev.revision + 1;
                if let Some(rev) = shape(rev, None, prev_kv) {
                    if tx.send(Ok(rev)).await.is_err() {
                        return;
                    }
                }
            }
            if !full {
                next = next.max(current + 1);
                break;
            }
        }
        // Follow live revisions until a gap.
        loop {
            match live.recv().await {
                Ok(rev) if rev.revision < next => continue,
                Ok(rev) if rev.revision == next => {
                    next += 1;
                    if let Some(rev) = shape(Arc::unwrap_or_clone(rev), range.as_ref(), prev_kv) {
                        if tx.send(Ok(rev)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
