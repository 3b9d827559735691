//! What one master's watch cache holds: every key of its scope at one revision, the recent
//! revisions that led there, and the snapshots later pages of a list read from.
//!
//! Owns [`CacheState`], pure: it takes the store's revisions in order and answers range
//! reads and "every change since revision r". It does no I/O and never decodes a value;
//! the feed (`feed.rs`) fills it and the cache handle (`mod.rs`) locks it.
//!
//! ```text
//!   store revisions ──► apply ──► objects (persistent map, key → latest KeyValue),
//!                          │      the keys of its `Scope` only
//!                          └────► ring: (base, revision] of changes, byte-bounded
//!   range(req) ── revision 0 or `revision` ──► objects
//!              └─ an older revision ─────────► a kept snapshot, or not servable
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use imbl::OrdMap;
use raft_store::kv::{EventKind, KeyRange, KeyValue, RangeRequest, RevisionEvents};

use super::event::{CachedEvent, CachedRevision};
use super::scope::Scope;

/// Accounted per key held, on top of its key and value bytes: the map's node share, the
/// `Arc` and the record's own fields.
const ENTRY_OVERHEAD: usize = 128;

/// Snapshots kept for the later pages of lists, at most.
const SNAPSHOTS: usize = 16;

/// How long a snapshot is kept after the page that made it: a continue token older than
/// this is read from the store at its revision instead.
const SNAPSHOT_LIFETIME: Duration = Duration::from_secs(300);

/// One page of keys read from the cache.
#[derive(Debug, Clone)]
pub(crate) struct CachedRange {
    /// The keys, in key order.
    pub(crate) kvs: Vec<Arc<KeyValue>>,
    /// How many keys are in the range, past the limit too.
    pub(crate) count: u64,
    /// Whether keys past the limit remain.
    pub(crate) more: bool,
    /// The revision the page is read at.
    pub(crate) revision: u64,
}

struct Snapshot {
    revision: u64,
    objects: OrdMap<Vec<u8>, Arc<KeyValue>>,
    taken: Instant,
}

/// The cached key space at one revision, and the changes that led there.
pub(crate) struct CacheState {
    scope: Arc<Scope>,
    objects: OrdMap<Vec<u8>, Arc<KeyValue>>,
    object_bytes: usize,
    revision: u64,
    /// Every change of a cached key after `base`, up to `revision`, one entry per revision
    /// that changed any.
    ring: VecDeque<Arc<CachedRevision>>,
    ring_bytes: usize,
    ring_budget: usize,
    base: u64,
    snapshots: Mutex<VecDeque<Snapshot>>,
}

/// What the state holds, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) revision: u64,
    pub(crate) objects: usize,
    pub(crate) object_bytes: usize,
    pub(crate) ring_revisions: usize,
    pub(crate) ring_bytes: usize,
    pub(crate) oldest_watchable: u64,
    pub(crate) snapshots: usize,
}

fn kv_size(kv: &KeyValue) -> usize {
    kv.key.len() + kv.value.len() + ENTRY_OVERHEAD
}

impl CacheState {
    /// The keys of `scope` as a load read them at `revision`, with no history yet: a watch
    /// can start from `revision + 1` on.
    pub(crate) fn loaded(
        scope: Arc<Scope>,
        kvs: Vec<KeyValue>,
        revision: u64,
        ring_budget: usize,
    ) -> CacheState {
        let mut state = CacheState {
            scope,
            objects: OrdMap::new(),
            object_bytes: 0,
            revision,
            ring: VecDeque::new(),
            ring_bytes: 0,
            ring_budget,
            base: revision,
            snapshots: Mutex::new(VecDeque::new()),
        };
        state.load_page(kvs);
        state
    }

    /// Takes in more keys the load read at the state's revision (a load reads page by
    /// page, and each page is held once, here). Only before the first [`apply`].
    ///
    /// [`apply`]: CacheState::apply
    pub(crate) fn load_page(&mut self, kvs: Vec<KeyValue>) {
        for kv in kvs {
            if !self.scope.holds(&kv.key) {
                continue;
            }
            self.object_bytes += kv_size(&kv);
            self.objects.insert(kv.key.clone(), Arc::new(kv));
        }
    }

    /// The revision every key is held at.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Takes in the store's next revision (every revision after the load, in order, each
    /// once). Returns the cached keys' changes of it, when there are any, as watchers get
    /// them. A revision at or below the one held is ignored.
    pub(crate) fn apply(&mut self, changes: RevisionEvents) -> Option<Arc<CachedRevision>> {
        if changes.revision <= self.revision {
            return None;
        }
        self.revision = changes.revision;
        let events: Vec<CachedEvent> = changes
            .events
            .into_iter()
            .filter(|e| self.scope.holds(&e.kv.key))
            .map(CachedEvent::new)
            .collect();
        if events.is_empty() {
            return None;
        }
        for event in &events {
            let kv = event.kv();
            if let Some(old) = self.objects.remove(&kv.key) {
                self.object_bytes -= kv_size(&old);
            }
            if event.kind() == EventKind::Put {
                self.object_bytes += kv_size(kv);
                self.objects.insert(kv.key.clone(), event.kv_shared());
            }
        }
        let cached = Arc::new(CachedRevision::new(changes.revision, events));
        self.ring_bytes += cached.bytes();
        self.ring.push_back(cached.clone());
        while self.ring_bytes > self.ring_budget {
            let Some(oldest) = self.ring.pop_front() else {
                break;
            };
            self.ring_bytes -= oldest.bytes();
            self.base = oldest.revision();
        }
        Some(cached)
    }

    /// Every held change after revision `from - 1`, oldest first; `None` when some of
    /// them are no longer held (the watcher must read them elsewhere).
    pub(crate) fn changes_from(&self, from: u64) -> Option<Vec<Arc<CachedRevision>>> {
        if from <= self.base {
            return None;
        }
        let start = self.ring.partition_point(|r| r.revision() < from);
        Some(self.ring.range(start..).cloned().collect())
    }

    /// The keys of `request`'s range, when the cache can answer it: at the current
    /// revision (`revision` 0 or the held one), or at a snapshot kept for an earlier page.
    /// A read with a limit that leaves keys unread keeps a snapshot of the revision it
    /// read, for the pages after it.
    pub(crate) fn range(&self, request: &RangeRequest, now: Instant) -> Option<CachedRange> {
        if request.keys_only || request.count_only || !self.scope.covers(&request.range) {
            return None;
        }
        let (start, end) = match &request.range {
            KeyRange::Key(key) => {
                let mut end = key.clone();
                end.push(0);
                (key.clone(), end)
            }
            KeyRange::Range { start, end } => (start.clone(), end.clone()?),
        };
        if start >= end {
            return Some(CachedRange {
                kvs: Vec::new(),
                count: 0,
                more: false,
                revision: self.revision,
            });
        }
        let read = |objects: &OrdMap<Vec<u8>, Arc<KeyValue>>, revision: u64| {
            let mut kvs = Vec::new();
            let mut count = 0u64;
            for (_, kv) in objects.range(start.clone()..end.clone()) {
                count += 1;
                if request.limit == 0 || (kvs.len() as u64) < request.limit {
                    kvs.push(kv.clone());
                }
            }
            let more = count > kvs.len() as u64;
            CachedRange {
                kvs,
                count,
                more,
                revision,
            }
        };
        if request.revision == 0 || request.revision == self.revision {
            let page = read(&self.objects, self.revision);
            if page.more {
                self.keep_snapshot(now);
            }
            return Some(page);
        }
        let mut snapshots = self.snapshots.lock().ok()?;
        snapshots.retain(|s| now.duration_since(s.taken) < SNAPSHOT_LIFETIME);
        let snapshot = snapshots.iter().find(|s| s.revision == request.revision)?;
        Some(read(&snapshot.objects, snapshot.revision))
    }

    fn keep_snapshot(&self, now: Instant) {
        let Ok(mut snapshots) = self.snapshots.lock() else {
            return;
        };
        snapshots.retain(|s| now.duration_since(s.taken) < SNAPSHOT_LIFETIME);
        if let Some(kept) = snapshots.iter_mut().find(|s| s.revision == self.revision) {
            kept.taken = now;
            return;
        }
        if snapshots.len() >= SNAPSHOTS {
            snapshots.pop_front();
        }
        snapshots.push_back(Snapshot {
            revision: self.revision,
            objects: self.objects.clone(),
            taken: now,
        });
    }

    /// What is held, for reports.
    pub(crate) fn held(&self) -> Held {
        Held {
            revision: self.revision,
            objects: self.objects.len(),
            object_bytes: self.object_bytes,
            ring_revisions: self.ring.len(),
            ring_bytes: self.ring_bytes,
            oldest_watchable: self.base + 1,
            snapshots: self.snapshots.lock().map(|s| s.len()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
#[path = "state_test.rs"]
mod tests;
