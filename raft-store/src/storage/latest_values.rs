//! The newest version of recently written keys, kept in memory, so that a read of one key
//! can be answered on the caller's (async) thread without RocksDB, and so that the apply
//! of a put, compare or delete of such a key reads its previous version from memory too.
//!
//! Owns [`LatestValues`]. The state machine records every applied change in it under the
//! lock that guards the key space, so an entry is never behind the key space; a key it does
//! not hold is read from RocksDB. It must not be filled from reads, and it only ever answers
//! for the current revision.

use std::collections::HashMap;

use crate::kv::state::KnownValues;
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

/// The apply reads a held key's previous version from here instead of RocksDB: an entry is
/// recorded once its change is applied, so it is what RocksDB holds when the next entry's
/// apply starts.
impl KnownValues for LatestValues {
    fn known(&self, key: &[u8]) -> Option<&KeyValue> {
        self.get(key)
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

    /// A backend that counts the reads of keys' latest records (`l/…`).
    #[derive(Debug, Default)]
    struct Counting {
        inner: crate::kv::MemBackend,
        latest_reads: std::sync::atomic::AtomicUsize,
    }

    impl crate::kv::KvRead for Counting {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, crate::kv::KvError> {
            if key.starts_with(b"l/") {
                self.latest_reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.inner.get(key)
        }

        fn scan(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), crate::kv::KvError> {
            self.inner.scan(start, end, visit)
        }
    }

    impl crate::kv::KvBackend for Counting {
        fn write(&mut self, batch: Vec<crate::kv::BatchOp>) -> Result<(), crate::kv::KvError> {
            self.inner.write(batch)
        }
    }

    /// Applies `op` as the state machine does: with `latest` known, then recorded in it.
    fn apply_known<B: crate::kv::KvBackend>(
        state: &mut crate::kv::KvState<B>,
        latest: &mut LatestValues,
        op: crate::kv::Op,
    ) -> crate::kv::Applied {
        let cmd = crate::kv::Command {
            now_ms: 1,
            fence_term: None,
            op,
        };
        let applied =
            crate::kv::state::apply_with_meta(state, Some((&cmd, 1)), Vec::new(), &*latest)
                .unwrap();
        for change in &applied.changes {
            latest.record(change);
        }
        applied
    }

    #[test]
    fn a_put_of_a_held_key_reads_its_previous_version_from_memory_not_the_backend() {
        use crate::kv::{KvState, Limits, Op, PutRequest};
        let mut state = KvState::open(Counting::default(), Limits::default()).unwrap();
        let mut latest = LatestValues::new(LATEST_VALUES_BUDGET);
        apply_known(&mut state, &mut latest, Op::Put(PutRequest::new("a", "1")));
        let reads = |s: &KvState<Counting>| {
            s.backend()
                .latest_reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let after_create = reads(&state);
        assert!(after_create >= 1, "a new key is looked up in the backend");

        let mut put = PutRequest::new("a", "2");
        put.prev_kv = true;
        let applied = apply_known(&mut state, &mut latest, Op::Put(put));
        assert_eq!(
            reads(&state),
            after_create,
            "the held key was read from the backend"
        );
        match applied.result {
            Ok(crate::kv::KvResponse::Put(resp)) => {
                let prev = resp.prev_kv.expect("the previous version");
                assert_eq!(prev.value, b"1");
                assert_eq!(prev.version, 1);
            }
            other => panic!("put answered {other:?}"),
        }
        let event = &applied.changes[0].events[0];
        assert_eq!(event.kv.version, 2);
        assert_eq!(event.kv.create_revision, 1);

        // Past the budget the values start over: the key is read from the backend again.
        latest.clear();
        apply_known(&mut state, &mut latest, Op::Put(PutRequest::new("a", "3")));
        assert!(reads(&state) > after_create);
    }

    mod property {
        //! Property: an apply that reads held keys from the latest values answers, stores
        //! and records exactly what one reading only the backend does.

        use proptest::prelude::*;

        use super::*;
        use crate::kv::{
            Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KvState, Limits,
            MemBackend, Op, PutRequest, RangeRequest, TxnOp, TxnRequest,
        };

        fn key(k: u8) -> String {
            format!("k{k}")
        }

        fn op_strategy() -> impl Strategy<Value = Op> {
            let put = (0u8..5, 1usize..40, any::<bool>()).prop_map(|(k, len, leased)| {
                let mut p = PutRequest::new(key(k), vec![b'v'; len]);
                p.lease = if leased { 7 } else { 0 };
                p.prev_kv = true;
                Op::Put(p)
            });
            let delete =
                (0u8..5).prop_map(|k| Op::Delete(DeleteRequest::new(KeyRange::key(key(k)))));
            let create = (0u8..5, 1usize..40).prop_map(|(k, len)| {
                Op::Txn(TxnRequest {
                    compare: vec![Compare::new(
                        key(k),
                        CompareOp::Equal,
                        CompareTarget::Version(0),
                    )],
                    success: vec![TxnOp::Put(PutRequest::new(key(k), vec![b'c'; len]))],
                    failure: vec![],
                })
            });
            let revoke = Just(Op::LeaseRevoke { id: 7 });
            let grant = Just(Op::LeaseGrant {
                id: 7,
                ttl_ms: 60_000,
            });
            prop_oneof![5 => put, 2 => delete, 2 => create, 1 => revoke, 1 => grant]
        }

        /// Some ops alone, the rest in batches of up to four, as the proposer sends them.
        fn entries(ops: &[Op], batch_every: usize) -> Vec<Op> {
            ops.chunks(batch_every.max(1))
                .map(|chunk| match chunk {
                    [one] => one.clone(),
                    many => Op::Batch(
                        many.iter()
                            .map(|op| crate::kv::Command {
                                now_ms: 1,
                                fence_term: None,
                                op: op.clone(),
                            })
                            .collect(),
                    ),
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            #[test]
            fn applying_with_held_values_matches_applying_from_the_backend_alone(
                ops in proptest::collection::vec(op_strategy(), 1..40),
                batch_every in 1usize..5,
                budget_entries in 1usize..6,
            ) {
                let mut plain = KvState::open(MemBackend::new(), Limits::default()).unwrap();
                let mut known = KvState::open(MemBackend::new(), Limits::default()).unwrap();
                // A budget of a few entries, so the values also start over during the run.
                let mut latest = LatestValues::new(budget_entries * (ENTRY_OVERHEAD + 42));
                apply_known(&mut known, &mut latest, Op::LeaseGrant { id: 7, ttl_ms: 60_000 });
                let grant = crate::kv::Command { now_ms: 1, fence_term: None, op: Op::LeaseGrant { id: 7, ttl_ms: 60_000 } };
                crate::kv::apply(&mut plain, &grant, 1).unwrap();
                for op in entries(&ops, batch_every) {
                    let cmd = crate::kv::Command { now_ms: 1, fence_term: None, op: op.clone() };
                    let expected = crate::kv::apply(&mut plain, &cmd, 1).unwrap();
                    let got = apply_known(&mut known, &mut latest, op);
                    prop_assert_eq!(&got.result, &expected.result);
                    prop_assert_eq!(&got.changes, &expected.changes);
                }
                let all = RangeRequest::new(KeyRange::prefix(""));
                prop_assert_eq!(known.range(&all).unwrap(), plain.range(&all).unwrap());
                prop_assert_eq!(
                    known.events_from(1, None, usize::MAX).unwrap(),
                    plain.events_from(1, None, usize::MAX).unwrap()
                );
            }
        }
    }
}
