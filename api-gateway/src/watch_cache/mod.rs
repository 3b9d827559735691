//! The watch cache: LISTs and watches served from memory on every master.
//!
//! Owns [`WatchCache`]: one per gateway, kept by one watch of the whole key space (so it
//! sees every revision, and knows it is current), holding every object key (`/registry/…`)
//! but the Events' (unless [`WatchCacheConfig::events`]) as stored (encrypted values stay
//! encrypted) and the recent revisions' changes.
//!
//! - **Consistent reads from the cache.** A linearizable list first asks the store for its
//!   current revision (one read-index round, no range scan), waits until the cache has
//!   applied it, then reads memory: the answer is at least as new as the store's, as
//!   Kubernetes' consistent reads from cache are. A serializable list reads memory at once.
//! - **Admission from the cache.** What a create's admission reads (its namespace,
//!   ServiceAccount, LimitRanges and quotas) is a serializable read of memory, as
//!   Kubernetes' admission plugins read informers; the registry first waits for the cache
//!   to hold this master's own latest write of those kinds, so it reads its own writes.
//! - **Pages from the cache.** A page that leaves keys unread keeps a snapshot of its
//!   revision (the map is persistent: a snapshot shares what did not change since), so
//!   the next pages are read at that revision from memory, for five minutes.
//! - **Watches from the cache.** A watch from a revision the ring still holds reads the
//!   ring, then the one live feed: no store watch and no history read per watcher, and
//!   each changed object is decoded once for all watchers of a master
//!   ([`CachedEvent::object`]). A watcher that falls behind the live feed reads the ring
//!   again; one the ring no longer covers goes on from the store, where it left off.
//! - **Bounded and reported.** The ring is bounded by bytes ([`WatchCacheConfig`]); the
//!   objects are the store's own key space. [`WatchCache::stats`] reports both, and the
//!   number of lists and watches served each way.
//!
//! The store's compaction point is not among the changes the cache follows, so a watch
//! from a revision it holds, or a page at an earlier revision, first asks the store
//! whether that history is still kept (a read at that revision of a key never written):
//! what the store refuses as compacted, the cache refuses too.
//!
//! Anything the cache cannot answer (not loaded yet, a revision it does not hold, a range
//! outside `/registry/` or reaching into the Events', a wait that runs out) is read from
//! the store, as without it. It
//! must not write to the store, and it decides nothing about objects: the registry decodes,
//! filters and authorizes as before.
//!
//! ```text
//!  store ── watch of every key ──► feed ──► CacheState (objects, ring, snapshots)
//!                                    └────► live broadcast ──► each watcher
//!                                           (the revisions ready at once, as one batch)
//!  list ── linearizable revision ──► wait until applied ──► CacheState::range
//! ```

mod event;
mod feed;
mod scope;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

use futures::stream::BoxStream;
use futures::StreamExt;
use raft_store::kv::{KeyRange, RangeRequest};
use rafter_proto::ReadConsistency;
use tokio::sync::broadcast;
use tokio::sync::watch;

use crate::store::{EventStream, KvStore, StoreError};

pub(crate) use event::{CachedEvent, CachedRevision, Decoded};
use scope::Scope;
use state::CacheState;
pub(crate) use state::CachedRange;

/// The key a linearizable list reads to learn the store's current revision (never written).
const REVISION_PROBE: &str = "/rafter/watch-cache/revision";

/// Batches the live feed holds for a watcher that has not read them yet, before that
/// watcher reads the ring instead.
const LIVE_BACKLOG: usize = 4096;

/// The most revisions the feed sends its watchers as one batch. A batch wakes each watcher
/// once, so under a burst of writes a master wakes its watchers per batch, not per revision.
const LIVE_BATCH: usize = 256;

/// The revisions the feed applied together, as the live broadcast carries them.
type LiveBatch = Arc<Vec<Arc<CachedRevision>>>;

/// How the cache is sized and how long a read waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCacheConfig {
    /// Bytes of recent changes held for watches (raw values and their decoded objects,
    /// estimated). Watches from older revisions read the store.
    pub ring_bytes: usize,
    /// How long a linearizable list waits for the cache to apply the store's current
    /// revision before it reads the store instead.
    pub freshness_wait: Duration,
    /// Keys read per page while the cache loads (the later pages are read at the first
    /// one's revision).
    pub load_page: u64,
    /// Whether Events are held too. Off by default, as kube-apiserver's watch cache leaves
    /// them to etcd: a cluster writes one or more per pod scheduled or started, and few
    /// clients list or watch them, so holding them would near double the keys each master
    /// keeps in memory. Their lists and watches read the store.
    pub events: bool,
}

impl Default for WatchCacheConfig {
    fn default() -> Self {
        WatchCacheConfig {
            ring_bytes: 64 << 20,
            freshness_wait: Duration::from_secs(3),
            load_page: 10_000,
            events: false,
        }
    }
}

impl WatchCacheStats {
    /// The figures in the Prometheus text format, as a master's `/metrics` serves them.
    pub fn prometheus_text(&self) -> String {
        let gauges: [(&str, &str, u64); 13] = [
            (
                "ready",
                "1 while the cache is loaded and following the store",
                u64::from(self.ready),
            ),
            (
                "revision",
                "the store revision every cached key is held at",
                self.revision,
            ),
            ("objects", "object keys held", self.objects as u64),
            (
                "object_bytes",
                "bytes of the object keys and values held, with a per-key overhead",
                self.object_bytes as u64,
            ),
            (
                "history_revisions",
                "revisions of changes held for watches",
                self.ring_revisions as u64,
            ),
            (
                "history_bytes",
                "bytes of changes held for watches, estimated, raw and decoded",
                self.ring_bytes as u64,
            ),
            (
                "oldest_watchable_revision",
                "the oldest revision a watch can start from in the cache",
                self.oldest_watchable,
            ),
            (
                "list_snapshots",
                "snapshots kept for the later pages of lists",
                self.snapshots as u64,
            ),
            (
                "reads_from_cache_total",
                "list pages read from memory",
                self.reads_from_cache,
            ),
            (
                "reads_from_store_total",
                "list pages the cache could not answer, read from the store",
                self.reads_from_store,
            ),
            (
                "watches_from_cache_total",
                "watches served from the cache",
                self.watches_from_cache,
            ),
            (
                "watches_from_store_total",
                "watches, or their remainder, read from the store",
                self.watches_from_store,
            ),
            (
                "loads_total",
                "times the cache was loaded from the store",
                self.loads,
            ),
        ];
        crate::prometheus::prometheus_text("rafter_watch_cache", &gauges)
    }
}

/// What the cache holds and what it served, since the gateway started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchCacheStats {
    /// Whether the cache is loaded and following the store.
    pub ready: bool,
    /// The revision it holds every key at.
    pub revision: u64,
    /// Object keys held.
    pub objects: usize,
    /// Bytes of those keys and values, with a per-key overhead.
    pub object_bytes: usize,
    /// Revisions of changes held for watches.
    pub ring_revisions: usize,
    /// Their bytes, estimated (at most [`WatchCacheConfig::ring_bytes`]).
    pub ring_bytes: usize,
    /// The oldest revision a watch can start from in the cache.
    pub oldest_watchable: u64,
    /// Snapshots kept for the later pages of lists.
    pub snapshots: usize,
    /// Reads (list pages) answered from memory.
    pub reads_from_cache: u64,
    /// Reads the cache could not answer, sent to the store.
    pub reads_from_store: u64,
    /// Watches served from the cache.
    pub watches_from_cache: u64,
    /// Watches (or their remainder) read from the store.
    pub watches_from_store: u64,
    /// Times the cache was loaded from the store (1 after a clean start).
    pub loads: u64,
}

#[derive(Default)]
struct Counters {
    reads_from_cache: AtomicU64,
    reads_from_store: AtomicU64,
    watches_from_cache: AtomicU64,
    watches_from_store: AtomicU64,
    loads: AtomicU64,
}

/// The keys a cache with `config` holds: every object's but, unless asked for, the Events'.
fn cache_scope(config: &WatchCacheConfig) -> Scope {
    let skipped = (!config.events).then(|| crate::registry::kind_prefix(rafter_proto::Kind::Event));
    Scope::skipping(skipped)
}

/// The state and the live feed, swapped whole on every load.
struct Current {
    state: CacheState,
    live: broadcast::Sender<LiveBatch>,
}

struct Shared {
    current: RwLock<Option<Current>>,
    applied: watch::Sender<u64>,
    counters: Counters,
    config: WatchCacheConfig,
    scope: Arc<Scope>,
    store: Arc<dyn KvStore>,
}

/// A master's watch cache. Clones share it; the feed stops when the last clone is dropped.
#[derive(Clone)]
pub struct WatchCache {
    shared: Arc<Shared>,
    _feed: Arc<feed::FeedGuard>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The held changes a watcher starts with, and the live feed it follows after them.
type Attached = (Vec<Arc<CachedRevision>>, broadcast::Receiver<LiveBatch>);

/// A change stream of one range: each item is a whole revision, shared, with events of
/// keys outside the range left for the reader to skip.
pub(crate) type CachedChanges = BoxStream<'static, Result<Arc<CachedRevision>, StoreError>>;

impl WatchCache {
    /// Starts loading the cache from `store` and following it (on the current tokio
    /// runtime).
    pub fn start<S>(store: Arc<S>, config: WatchCacheConfig) -> WatchCache
    where
        S: KvStore,
    {
        let (applied, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            current: RwLock::new(None),
            applied,
            counters: Counters::default(),
            config,
            scope: Arc::new(cache_scope(&config)),
            store,
        });
        let feed = feed::spawn(shared.clone());
        WatchCache {
            shared,
            _feed: Arc::new(feed),
        }
    }

    /// What the cache holds and has served.
    pub fn stats(&self) -> WatchCacheStats {
        let c = &self.shared.counters;
        let mut stats = WatchCacheStats {
            reads_from_cache: c.reads_from_cache.load(Ordering::Relaxed),
            reads_from_store: c.reads_from_store.load(Ordering::Relaxed),
            watches_from_cache: c.watches_from_cache.load(Ordering::Relaxed),
            watches_from_store: c.watches_from_store.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            ..WatchCacheStats::default()
        };
        if let Ok(current) = self.shared.current.read() {
            if let Some(current) = current.as_ref() {
                let held = current.state.held();
                stats.ready = true;
                stats.revision = held.revision;
                stats.objects = held.objects;
                stats.object_bytes = held.object_bytes;
                stats.ring_revisions = held.ring_revisions;
                stats.ring_bytes = held.ring_bytes;
                stats.oldest_watchable = held.oldest_watchable;
                stats.snapshots = held.snapshots;
            }
        }
        stats
    }

    /// Waits until the cache has applied `revision`, for at most `wait`. False when it
    /// did not in time (or is not loaded).
    pub async fn wait_for_revision(&self, revision: u64, wait: Duration) -> bool {
        let mut applied = self.shared.applied.subscribe();
        let reached = tokio::time::timeout(wait, applied.wait_for(|r| *r >= revision)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// One page of `request`'s range as `consistency` asks, from memory when the cache can
    /// answer it; `None` when the store must be read instead.
    pub(crate) async fn range(
        &self,
        request: &RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<Option<CachedRange>, StoreError> {
        if !self.shared.scope.covers(&request.range) || !self.is_loaded() {
            return Ok(self.count_store_read());
        }
        if request.revision == 0 && consistency == ReadConsistency::Linearizable {
            let probe = RangeRequest {
                range: KeyRange::key(REVISION_PROBE),
                revision: 0,
                limit: 1,
                keys_only: true,
                count_only: false,
            };
            let current = self
                .shared
                .store
                .range(probe, ReadConsistency::Linearizable)
                .await?
                .revision;
            if !self
                .wait_for_revision(current, self.shared.config.freshness_wait)
                .await
            {
                tracing::debug!(
                    revision = current,
                    "the watch cache is behind the store; reading the store"
                );
                return Ok(self.count_store_read());
            }
        }
        if request.revision != 0 {
            // A later page at its first page's revision: refused as the store would
            // refuse it once that revision is compacted.
            self.check_history(request.revision).await?;
        }
        let page = self.shared.current.read().ok().and_then(|current| {
            current
                .as_ref()
                .and_then(|c| c.state.range(request, Instant::now()))
        });
        match page {
            Some(page) => {
                self.shared
                    .counters
                    .reads_from_cache
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Some(page))
            }
            None => Ok(self.count_store_read()),
        }
    }

    fn count_store_read(&self) -> Option<CachedRange> {
        self.shared
            .counters
            .reads_from_store
            .fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The revision the cache holds every key at (0 when not loaded).
    fn revision_held(&self) -> u64 {
        self.shared
            .current
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.state.revision()))
            .unwrap_or(0)
    }

    /// Fails with the store's `Compacted` error when the store no longer keeps history at
    /// `revision` (its compaction point is not in the changes the cache follows): a read at
    /// that revision of a key never written.
    async fn check_history(&self, revision: u64) -> Result<(), StoreError> {
        let probe = RangeRequest {
            range: KeyRange::key(REVISION_PROBE),
            revision,
            limit: 1,
            keys_only: true,
            count_only: false,
        };
        self.shared
            .store
            .range(probe, ReadConsistency::Serializable)
            .await
            .map(|_| ())
    }

    /// Whether the cache holds the key space and follows the store (it answers reads).
    pub(crate) fn is_loaded(&self) -> bool {
        self.shared.current.read().is_ok_and(|c| c.is_some())
    }

    /// Every change of `range` from revision `from` on (inclusive), in revision order,
    /// each revision once: from the cache while it holds them, else from the store.
    pub(crate) async fn watch(
        &self,
        range: KeyRange,
        from: u64,
    ) -> Result<CachedChanges, StoreError> {
        let from = from.max(1);
        if !self.shared.scope.covers(&range) {
            return self.store_watch(range, from).await;
        }
        if from <= self.revision_held() {
            // History is asked for: the cache may hold changes the store has compacted
            // away, and must refuse what the store would refuse.
            self.check_history(from).await?;
        }
        let attached = self.attach(from);
        match attached {
            Some((backlog, live)) => {
                self.shared
                    .counters
                    .watches_from_cache
                    .fetch_add(1, Ordering::Relaxed);
                Ok(follow(self.clone(), range, from, backlog, live))
            }
            None => self.store_watch(range, from).await,
        }
    }

    /// The held changes from `from` on and the live feed after them, taken together under
    /// the lock so nothing falls between them.
    fn attach(&self, from: u64) -> Option<Attached> {
        let current = self.shared.current.read().ok()?;
        let current = current.as_ref()?;
        let backlog = current.state.changes_from(from)?;
        Some((backlog, current.live.subscribe()))
    }

    async fn store_watch(&self, range: KeyRange, from: u64) -> Result<CachedChanges, StoreError> {
        self.shared
            .counters
            .watches_from_store
            .fetch_add(1, Ordering::Relaxed);
        Ok(shared_changes(self.shared.store.watch(range, from).await?))
    }
}

/// A store watch's revisions in the shape the cache shares them (each decoded on demand,
/// once).
pub(crate) fn shared_changes(changes: EventStream) -> CachedChanges {
    changes
        .map(|item| item.map(|changes| Arc::new(CachedRevision::from_store(changes))))
        .boxed()
}

/// Whether any change of `revision` is of a key in `range`.
fn touches(revision: &CachedRevision, range: &KeyRange) -> bool {
    revision
        .events()
        .iter()
        .any(|e| range.contains(&e.kv().key))
}

/// A watcher on the cache: its backlog, then the live feed; the ring again after falling
/// behind; the store once the cache no longer holds where it is.
fn follow(
    cache: WatchCache,
    range: KeyRange,
    from: u64,
    backlog: Vec<Arc<CachedRevision>>,
    live: broadcast::Receiver<LiveBatch>,
) -> CachedChanges {
    let stream = async_stream::stream! {
        let mut next = from;
        let mut backlog = backlog;
        let mut live = live;
        loop {
            for revision in backlog.drain(..) {
                if revision.revision() < next {
                    continue;
                }
                next = revision.revision() + 1;
                if touches(&revision, &range) {
                    yield Ok(revision);
                }
            }
            // Until the watcher falls behind the live feed (lagged), or the feed ends
            // (the cache is loaded again).
            while let Ok(batch) = live.recv().await {
                for revision in batch.iter() {
                    if revision.revision() < next {
                        continue;
                    }
                    next = revision.revision() + 1;
                    if touches(revision, &range) {
                        yield Ok(revision.clone());
                    }
                }
            }
            // Read the ring again, if it still holds `next`.
            if let Some((held, again)) = cache.attach(next) {
                backlog = held;
                live = again;
                continue;
            }
            // The cache no longer holds `next`: the store does.
            match cache.store_watch(range.clone(), next).await {
                Ok(mut rest) => {
                    while let Some(item) = rest.next().await {
                        yield item;
                    }
                }
                Err(e) => yield Err(e),
            }
            break;
        }
    };
    stream.boxed()
}

#[cfg(test)]
#[path = "cache_test.rs"]
mod tests;
