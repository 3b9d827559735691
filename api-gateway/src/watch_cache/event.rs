//! One revision's changes as every watcher of a master shares them.
//!
//! Owns [`CachedRevision`] and [`CachedEvent`]: the store's event, and the objects decoded
//! from it once, by the first watcher that needs them, for every other watcher to clone.
//! It knows how to hold a decoded object, not how to decode one (the registry does).

use std::sync::Arc;
use std::sync::OnceLock;

use raft_store::kv::{Event, EventKind, KeyValue, RevisionEvents};
use rafter_proto::Object;

/// A decoded object, or why the stored value could not be decoded.
pub(crate) type Decoded = Result<Arc<Object>, String>;

/// One key's change, with its objects decoded at most once.
#[derive(Debug)]
pub(crate) struct CachedEvent {
    kind: EventKind,
    kv: Arc<KeyValue>,
    prev: Option<Arc<KeyValue>>,
    object: OnceLock<Decoded>,
    prev_object: OnceLock<Decoded>,
}

impl CachedEvent {
    pub(crate) fn new(event: Event) -> CachedEvent {
        CachedEvent {
            kind: event.kind,
            kv: Arc::new(event.kv),
            prev: event.prev_kv.map(Arc::new),
            object: OnceLock::new(),
            prev_object: OnceLock::new(),
        }
    }

    /// Put or delete.
    pub(crate) fn kind(&self) -> EventKind {
        self.kind
    }

    /// The key after the change (for a delete, only the key and revision).
    pub(crate) fn kv(&self) -> &KeyValue {
        &self.kv
    }

    pub(crate) fn kv_shared(&self) -> Arc<KeyValue> {
        self.kv.clone()
    }

    /// The object after the change, decoded by `decode` the first time it is asked for.
    pub(crate) fn object(&self, decode: impl FnOnce(&KeyValue) -> Decoded) -> Decoded {
        self.object.get_or_init(|| decode(&self.kv)).clone()
    }

    /// Whether the key existed before the change.
    pub(crate) fn existed_before(&self) -> bool {
        self.prev.is_some()
    }

    /// The object before the change, decoded once; `None` when the key did not exist.
    pub(crate) fn prev_object(&self, decode: impl FnOnce(&KeyValue) -> Decoded) -> Option<Decoded> {
        let prev = self.prev.as_deref()?;
        Some(self.prev_object.get_or_init(|| decode(prev)).clone())
    }

    /// Raw key and values, and the objects decoded from them (charged before they are:
    /// watchers whose selectors read fields decode every event).
    fn bytes(&self) -> usize {
        let values = [Some(&self.kv), self.prev.as_ref()]
            .into_iter()
            .flatten()
            .map(|kv| kv.value.len());
        let decoded: usize = values
            .clone()
            .filter(|len| *len > 0)
            .map(rafter_proto::decoded_bytes)
            .sum();
        self.kv.key.len() + values.sum::<usize>() + decoded + 160
    }
}

/// The changes of one revision, shared by every watcher.
#[derive(Debug)]
pub(crate) struct CachedRevision {
    revision: u64,
    events: Vec<CachedEvent>,
    bytes: usize,
}

impl CachedRevision {
    pub(crate) fn new(revision: u64, events: Vec<CachedEvent>) -> CachedRevision {
        let bytes = events.iter().map(CachedEvent::bytes).sum::<usize>() + 64;
        CachedRevision {
            revision,
            events,
            bytes,
        }
    }

    /// A revision as the store's watch delivered it.
    pub(crate) fn from_store(changes: RevisionEvents) -> CachedRevision {
        CachedRevision::new(
            changes.revision,
            changes.events.into_iter().map(CachedEvent::new).collect(),
        )
    }

    /// The store revision of these changes.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// The changes, in the order the revision made them.
    pub(crate) fn events(&self) -> &[CachedEvent] {
        &self.events
    }

    /// What holding it costs, roughly, for the ring's budget.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
