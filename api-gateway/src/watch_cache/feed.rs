//! The one task that keeps a watch cache current: load the keys of its scope at one revision,
//! then follow a watch of the whole key space from the next one.
//!
//! Owns the load/follow loop and its [`FeedGuard`]. On any store error it drops the state
//! (watchers go on from the store, reads go to the store) and loads again after a pause.
//! It must not write to the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use raft_store::kv::{KeyRange, RangeRequest, RangeResponse};
use rafter_proto::ReadConsistency;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::state::CacheState;
use super::{Current, Shared, LIVE_BACKLOG, LIVE_BATCH};
use crate::store::StoreError;

/// The pause before loading again after the store failed, doubled per failure up to the
/// last.
const RETRY: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Stops the feed when dropped.
pub(super) struct FeedGuard(JoinHandle<()>);

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn spawn(shared: Arc<Shared>) -> FeedGuard {
    FeedGuard(tokio::spawn(run(shared)))
}

async fn run(shared: Arc<Shared>) {
    let mut failures = 0usize;
    loop {
        let started = tokio::time::Instant::now();
        let error = load_and_follow(&shared).await;
        if let Ok(mut current) = shared.current.write() {
            *current = None;
        }
        if started.elapsed() > Duration::from_secs(10) {
            failures = 0;
        }
        let pause = RETRY[failures.min(RETRY.len() - 1)];
        failures += 1;
        tracing::warn!(
            %error,
            retry_in = ?pause,
            "the watch cache stopped following the store; lists and watches read the store \
             until it is loaded again"
        );
        tokio::time::sleep(pause).await;
    }
}

/// Every key of the cache's scope at one revision, range by range and page by page, each
/// page taken into the state as it arrives.
async fn load(shared: &Shared) -> Result<CacheState, StoreError> {
    let mut state: Option<CacheState> = None;
    for (start, end) in shared.scope.ranges() {
        let mut next = start;
        loop {
            let revision = state.as_ref().map_or(0, CacheState::revision);
            let page = read_page(shared, &mut next, &end, revision).await?;
            let more = page.more && !page.kvs.is_empty();
            match state.as_mut() {
                Some(state) => state.load_page(page.kvs),
                None => {
                    state = Some(CacheState::loaded(
                        shared.scope.clone(),
                        page.kvs,
                        page.revision,
                        shared.config.ring_bytes,
                    ));
                }
            }
            if !more {
                break;
            }
        }
    }
    state.ok_or_else(|| StoreError::refused("the watch cache's scope holds no keys"))
}

/// One page of the keys in `[next, end)`, at `revision` (0: the current one, read
/// linearizably); moves `next` past it.
async fn read_page(
    shared: &Shared,
    next: &mut Vec<u8>,
    end: &[u8],
    revision: u64,
) -> Result<RangeResponse, StoreError> {
    let request = RangeRequest {
        range: KeyRange::range(next.clone(), end.to_vec()),
        revision,
        limit: shared.config.load_page.max(1),
        keys_only: false,
        count_only: false,
    };
    let consistency = if revision == 0 {
        ReadConsistency::Linearizable
    } else {
        ReadConsistency::Serializable
    };
    let page = shared.store.range(request, consistency).await?;
    if let Some(last) = page.kvs.last() {
        *next = last.key.clone();
        next.push(0);
    }
    Ok(page)
}

/// Loads the cache and follows the store until the store fails; returns why.
async fn load_and_follow(shared: &Shared) -> StoreError {
    let state = match load(shared).await {
        Ok(state) => state,
        Err(e) => return e,
    };
    let revision = state.revision();
    let mut changes = match shared
        .store
        .watch(KeyRange::prefix(Vec::new()), revision + 1)
        .await
    {
        Ok(changes) => changes,
        Err(e) => return e,
    };
    let held = state.held();
    match shared.current.write() {
        Ok(mut current) => {
            let (live, _) = broadcast::channel(LIVE_BACKLOG);
            *current = Some(Current { state, live });
        }
        Err(_) => return StoreError::Unavailable("the watch cache's lock is poisoned".into()),
    }
    shared.applied.send_replace(revision);
    shared.counters.loads.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        revision,
        objects = held.objects,
        bytes = held.object_bytes,
        "the watch cache is loaded"
    );
    while let Some(item) = changes.next().await {
        // This revision and those already waiting behind it, applied and sent together.
        let mut ready = vec![item];
        while ready.len() < LIVE_BATCH {
            match changes.next().now_or_never() {
                Some(Some(item)) => ready.push(item),
                Some(None) | None => break,
            }
        }
        let mut revision = 0;
        match shared.current.write() {
            Ok(mut current) => {
                let Some(current) = current.as_mut() else {
                    return StoreError::Unavailable("the watch cache was dropped".into());
                };
                let mut batch = Vec::with_capacity(ready.len());
                let mut failed = None;
                for item in ready {
                    match item {
                        Ok(changed) => {
                            revision = changed.revision;
                            batch.extend(current.state.apply(changed));
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    // No receiver is not an error: no one watches right now.
                    let _ = current.live.send(Arc::new(batch));
                }
                if let Some(e) = failed {
                    return e;
                }
            }
            Err(_) => return StoreError::Unavailable("the watch cache's lock is poisoned".into()),
        }
        shared.applied.send_if_modified(|applied| {
            let moved = revision > *applied;
            if moved {
                *applied = revision;
            }
            moved
        });
    }
    StoreError::Unavailable("the store's watch of every key ended".into())
}
