//! The newest version of recently written keys, kept in memory, so that a read of one key
//! can be answered on the caller's (async) thread without RocksDB.
//!
//! Owns [`LatestValues`]. The state machine records every applied change in it under the
//! lock that guards the key space, so an entry is never behind the key space; a key it does
//! not hold is read from RocksDB. It must not be filled from reads, and it only ever answers
//! for the current revision.

use std::collections::HashMap;

use crate::kv::EventKind;
use crate::kv::KeyValue;
use crate::kv::RevisionEvents;

/// Bytes of keys and values a member keeps by default.
pub(crate) const LATEST_VALUES_BUDGET: usize = 32 << 20;

/// Accounted per entry on top of its key and value: the map's and the record's own fields.
const ENTRY_OVERHEAD: usize = 96;

/// The latest [`KeyValue`] of keys put recently. Past its byte budget it starts over empty:
/// a key it does not hold is only a slower read.
#[derive(Debug)]
pub(crate) struct LatestValues {
    entries: HashMap<Vec<u8>, KeyValue>,
    bytes: usize,
    budget: usize,
}

fn size(kv: &KeyValue) -> usize {
    kv.key.len() + kv.value.len() + ENTRY_OVERHEAD
}

impl LatestValues {
    pub(crate) fn new(budget: usize) -> Self {
        LatestValues {
            entries: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// The key's latest version, if it is held (a key not held may still exist).
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.entries.get(key)
    }

    /// Take in one applied revision's changes.
    pub(crate) fn record(&mut self, changes: &RevisionEvents) {
        for event in &changes.events {
            if let Some(old) = self.entries.remove(&event.kv.key) {
                self.bytes -= size(&old);
            }
            if event.kind != EventKind::Put {
                continue;
            }
            let size = size(&event.kv);
            if size > self.budget {
                continue;
            }
            if self.bytes + size > self.budget {
                self.clear();
            }
            self.bytes += size;
            self.entries.insert(event.kv.key.clone(), event.kv.clone());
        }
    }

    /// Forget everything (the key space was replaced).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Event;

    fn put(key: &str, value_len: usize, revision: u64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![1; value_len],
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
            prev_kv: None,
        }
    }

    fn delete(key: &str, revision: u64) -> Event {
        Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
                lease: 0,
            },
            prev_kv: None,
        }
    }

    fn revision(revision: u64, events: Vec<Event>) -> RevisionEvents {
        RevisionEvents { revision, events }
    }

    #[test]
    fn puts_are_held_until_deleted_or_replaced_and_the_budget_bounds_them() {
        let mut latest = LatestValues::new(3 * (ENTRY_OVERHEAD + 1 + 100));
        latest.record(&revision(1, vec![put("a", 100, 1), put("b", 100, 1)]));
        latest.record(&revision(2, vec![put("a", 100, 2)]));
        assert_eq!(latest.get(b"a").map(|kv| kv.mod_revision), Some(2));
        assert_eq!(latest.get(b"b").map(|kv| kv.mod_revision), Some(1));

        latest.record(&revision(3, vec![delete("b", 3)]));
        assert!(latest.get(b"b").is_none(), "a deleted key is not held");

        // Room for three: the fourth key starts over with only itself.
        latest.record(&revision(4, vec![put("c", 100, 4), put("d", 100, 4)]));
        assert_eq!(latest.entries.len(), 3);
        latest.record(&revision(5, vec![put("e", 100, 5)]));
        assert!(["a", "c", "d"]
            .iter()
            .all(|k| latest.get(k.as_bytes()).is_none()));
        assert!(latest.get(b"e").is_some());
        assert!(latest.bytes <= latest.budget);

        // A value larger than the whole budget is not held, and leaves the others.
        latest.record(&revision(6, vec![put("big", 10_000, 6)]));
        assert!(latest.get(b"big").is_none());
        assert!(latest.get(b"e").is_some());
    }
}
