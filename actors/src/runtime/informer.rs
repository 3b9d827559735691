//! The informer actor: lists the informed kinds, then follows the change feed from the
//! listed revision, applies every change to the one [`CacheWriter`] and tells the
//! controllers what changed ([`CacheUpdate`]), with the object before and after.
//!
//! ```text
//!  ClusterApi::snapshot ─► Replace per kind ─► CacheWriter ─► CacheUpdate{relisted}
//!         ▲                                                      │
//!         │ Gone / feed ended / error                            ▼ every controller
//!  ClusterApi::changes(rev+1) ─► ready chunks ─► Upsert/Delete ─► CacheUpdate{changes}
//! ```
//!
//! Owns the cache's only writer and the cache revision (published on a watch channel for
//! the leadership barrier). It must not reconcile or write to the cluster. A gap in the
//! feed (compaction, a lagging subscriber, a dropped stream) makes it list again; the
//! cache is replaced in one step, so readers never see half of a list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use rafter_proto::Object;
use tokio::sync::watch;

use crate::action::ObjectKey;
use crate::cache::{CacheEvent, CacheReader, CacheWriter};
use crate::runtime::api::{ApiError, ClusterApi, RevisionChanges, Snapshot, INFORMED_KINDS};

/// Most revisions applied (and announced) in one step while catching up.
const CHUNK: usize = 512;
/// The longest wait between failed lists.
const MAX_RELIST_DELAY: Duration = Duration::from_secs(5);
/// The longest wait between lists that failed for want of a leader or quorum: such a list
/// fails before it reads anything, and the controllers wait for the first list that works
/// (a master's first, while the cluster elects its leader).
const MAX_UNAVAILABLE_RELIST_DELAY: Duration = Duration::from_millis(250);

/// How long to wait before listing again after `failures` failed lists in a row, the last
/// with `error`: doubling from 100 ms, up to 250 ms while the store is unavailable and up
/// to 5 s otherwise.
fn relist_delay(failures: u32, error: &ApiError) -> Duration {
    let cap = match error {
        ApiError::Unavailable(_) => MAX_UNAVAILABLE_RELIST_DELAY,
        _ => MAX_RELIST_DELAY,
    };
    Duration::from_millis(50)
        .saturating_mul(1 << failures.min(10))
        .min(cap)
}

/// One object's change, as controllers see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The object's key.
    pub key: ObjectKey,
    /// The object before the change (`None`: created).
    pub old: Option<Arc<Object>>,
    /// The object after the change (`None`: deleted).
    pub new: Option<Arc<Object>>,
}

/// What the informer tells every controller after applying changes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub(crate) struct CacheUpdate {
    /// The revision the cache is at now.
    pub revision: u64,
    /// The objects that changed (empty after a list).
    pub changes: Arc<Vec<Change>>,
    /// The cache was listed afresh: every key may have changed.
    pub relisted: bool,
}

/// A chunk of the change feed, tagged with the follow it belongs to.
#[derive(Message)]
#[rtype(result = "()")]
struct Followed {
    generation: u64,
    items: Vec<Result<RevisionChanges, ApiError>>,
}

/// The informer actor.
pub(crate) struct Informer {
    api: Arc<dyn ClusterApi>,
    writer: CacheWriter,
    reader: CacheReader,
    subscribers: Vec<Recipient<CacheUpdate>>,
    revision: u64,
    revision_tx: watch::Sender<u64>,
    generation: u64,
    follower: Option<actix_rt::task::JoinHandle<()>>,
    failures: u32,
}

impl Informer {
    pub(crate) fn new(
        api: Arc<dyn ClusterApi>,
        writer: CacheWriter,
        subscribers: Vec<Recipient<CacheUpdate>>,
        revision_tx: watch::Sender<u64>,
    ) -> Informer {
        let reader = writer.reader();
        Informer {
            api,
            writer,
            reader,
            subscribers,
            revision: 0,
            revision_tx,
            generation: 0,
            follower: None,
            failures: 0,
        }
    }

    fn relist(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
        let generation = self.generation;
        let api = Arc::clone(&self.api);
        ctx.spawn(async move { api.snapshot().await }.into_actor(self).map(
            move |listed, act, ctx| {
                if generation != act.generation {
                    return;
                }
                match listed {
                    Ok(snapshot) => {
                        act.failures = 0;
                        act.install(snapshot);
                        act.follow(ctx);
                    }
                    Err(e) => {
                        act.failures += 1;
                        let delay = relist_delay(act.failures, &e);
                        tracing::warn!(error = %e, retry_in = ?delay, "informer: list failed");
                        ctx.run_later(delay, |act, ctx| act.relist(ctx));
                    }
                }
            },
        ));
    }

    fn install(&mut self, snapshot: Snapshot) {
        let mut by_kind: HashMap<rafter_proto::Kind, Vec<Arc<Object>>> = HashMap::new();
        let count = snapshot.objects.len();
        for object in snapshot.objects {
            by_kind.entry(object.kind()).or_default().push(object);
        }
        let events: Vec<CacheEvent> = INFORMED_KINDS
            .iter()
            .map(|kind| CacheEvent::Replace {
                kind: *kind,
                objects: by_kind.remove(kind).unwrap_or_default(),
            })
            .collect();
        self.writer.apply_all(events);
        self.revision = snapshot.revision;
        tracing::info!(
            revision = self.revision,
            objects = count,
            "informer: listed the cluster"
        );
        self.announce(Vec::new(), true);
    }

    fn announce(&mut self, changes: Vec<Change>, relisted: bool) {
        let update = CacheUpdate {
            revision: self.revision,
            changes: Arc::new(changes),
            relisted,
        };
        for subscriber in &self.subscribers {
            subscriber.do_send(update.clone());
        }
        self.revision_tx.send_replace(self.revision);
    }

    fn follow(&mut self, ctx: &mut Context<Self>) {
        let generation = self.generation;
        let from = self.revision + 1;
        let api = Arc::clone(&self.api);
        let addr = ctx.address();
        self.follower = Some(actix_rt::spawn(async move {
            let stream = match api.changes(from).await {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = addr
                        .send(Followed {
                            generation,
                            items: vec![Err(e)],
                        })
                        .await;
                    return;
                }
            };
            let mut chunks = stream.ready_chunks(CHUNK);
            while let Some(items) = chunks.next().await {
                if addr.send(Followed { generation, items }).await.is_err() {
                    return;
                }
            }
            let _ = addr
                .send(Followed {
                    generation,
                    items: vec![Err(ApiError::Gone("the change feed ended".to_owned()))],
                })
                .await;
        }));
    }

    /// Applies revisions in order; returns the error that ended the feed, if any.
    fn apply(&mut self, items: Vec<Result<RevisionChanges, ApiError>>) -> Option<ApiError> {
        let mut order: Vec<ObjectKey> = Vec::new();
        let mut olds: HashMap<ObjectKey, Option<Arc<Object>>> = HashMap::new();
        let mut events = Vec::new();
        let mut relisted = false;
        let mut failure = None;
        {
            let cache = self.reader.read();
            for item in items {
                let changes = match item {
                    Ok(changes) => changes,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                if changes.revision <= self.revision {
                    continue;
                }
                self.revision = changes.revision;
                for event in changes.events {
                    let key = match &event {
                        CacheEvent::Upsert(object) => ObjectKey::of(object),
                        CacheEvent::Delete(key) => key.clone(),
                        CacheEvent::Replace { .. } => {
                            relisted = true;
                            events.push(event);
                            continue;
                        }
                    };
                    if !olds.contains_key(&key) {
                        olds.insert(key.clone(), cache.get(&key).cloned());
                        order.push(key);
                    }
                    events.push(event);
                }
            }
        }
        if !events.is_empty() {
            self.writer.apply_all(events);
        }
        let changes: Vec<Change> = {
            let cache = self.reader.read();
            order
                .into_iter()
                .map(|key| {
                    let new = cache.get(&key).cloned();
                    let old = olds.remove(&key).flatten();
                    Change { key, old, new }
                })
                .collect()
        };
        self.announce(changes, relisted);
        failure
    }
}

impl Actor for Informer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.relist(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
    }
}

impl Handler<Followed> for Informer {
    type Result = ();

    fn handle(&mut self, msg: Followed, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        if let Some(e) = self.apply(msg.items) {
            tracing::warn!(error = %e, revision = self.revision, "informer: the change feed broke; listing again");
            self.relist(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_that_found_no_leader_are_retried_sooner_than_other_failures() {
        let unavailable = ApiError::Unavailable("no leader".into());
        let other = ApiError::Other("internal".into());
        let waits = |e: &ApiError| (1..=8).map(|n| relist_delay(n, e)).collect::<Vec<_>>();
        assert_eq!(
            waits(&unavailable),
            [100, 200, 250, 250, 250, 250, 250, 250].map(Duration::from_millis)
        );
        assert_eq!(
            waits(&other),
            [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(Duration::from_millis)
        );
    }
}
