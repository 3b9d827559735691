//! The key-space conformance suite: every test is generic over the backend, and
//! [`kv_conformance_suite!`] instantiates the whole suite for one backend.

use crate::kv::*;

pub(crate) const NOW: u64 = 1_000_000;

pub(crate) fn cmd(op: Op) -> Command {
    Command {
        now_ms: NOW,
        fence_term: None,
        op,
    }
}

pub(crate) fn at(now_ms: u64, op: Op) -> Command {
    Command {
        now_ms,
        fence_term: None,
        op,
    }
}

pub(crate) fn ok<B: KvBackend>(s: &mut KvState<B>, c: Command) -> KvResponse {
    apply(s, &c, 1).expect("backend").result.expect("logical")
}

pub(crate) fn put<B: KvBackend>(s: &mut KvState<B>, k: &str, v: &str) -> PutResponse {
    match ok(s, cmd(Op::Put(PutRequest::new(k, v)))) {
        KvResponse::Put(p) => p,
        other => panic!("unexpected {other:?}"),
    }
}

pub(crate) fn get<B: KvBackend>(s: &KvState<B>, k: &str) -> Option<KeyValue> {
    s.range(&RangeRequest::new(KeyRange::key(k)))
        .expect("range")
        .kvs
        .pop()
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

pub(crate) fn put_then_get_returns_value_and_revisions<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    assert_eq!(put(&mut s, "a", "1").revision, 1);
    assert_eq!(put(&mut s, "a", "2").revision, 2);
    let kv = get(&s, "a").unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (&b"2"[..], 1, 2, 2)
    );
    assert_eq!(s.revision(), 2);
}

pub(crate) fn put_with_prev_kv_returns_the_old_value<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "a", "1");
    let mut req = PutRequest::new("a", "2");
    req.prev_kv = true;
    let KvResponse::Put(resp) = ok(&mut s, cmd(Op::Put(req))) else {
        panic!()
    };
    assert_eq!(resp.prev_kv.unwrap().value, b"1");
}

pub(crate) fn range_by_prefix_and_bounds_returns_keys_in_order<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    for k in ["b/2", "a/1", "b/1", "c", "b0"] {
        put(&mut s, k, "v");
    }
    let r = s.range(&RangeRequest::new(KeyRange::prefix("b/"))).unwrap();
    assert_eq!(keys(&r), ["b/1", "b/2"]);
    let r = s
        .range(&RangeRequest::new(KeyRange::range("a", "b0")))
        .unwrap();
    assert_eq!(keys(&r), ["a/1", "b/1", "b/2"]);
    let r = s.range(&RangeRequest::new(KeyRange::prefix(""))).unwrap();
    assert_eq!(r.count, 5);
}

pub(crate) fn range_honours_limit_keys_only_and_count_only<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    for k in ["p/1", "p/2", "p/3"] {
        put(&mut s, k, "value");
    }
    let mut req = RangeRequest::new(KeyRange::prefix("p/"));
    req.limit = 2;
    req.keys_only = true;
    let r = s.range(&req).unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["p/1".to_string(), "p/2".to_string()], 3, true)
    );
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    req.count_only = true;
    let r = s.range(&req).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 3));
}

pub(crate) fn range_at_a_past_revision_sees_the_old_key_space<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "a", "1"); // rev 1
    put(&mut s, "b", "1"); // rev 2
    put(&mut s, "a", "2"); // rev 3
    ok(
        &mut s,
        cmd(Op::Delete(DeleteRequest::new(KeyRange::key("b")))),
    ); // rev 4
    put(&mut s, "c", "1"); // rev 5
    let mut req = RangeRequest::new(KeyRange::prefix(""));
    req.revision = 2;
    let r = s.range(&req).unwrap();
    assert_eq!(keys(&r), ["a", "b"]);
    assert_eq!(r.kvs[0].value, b"1");
    req.revision = 4;
    let r = s.range(&req).unwrap();
    assert_eq!(keys(&r), ["a"]);
    assert_eq!(r.kvs[0].value, b"2");
    req.revision = 9;
    assert_eq!(
        s.range(&req).unwrap_err(),
        KvError::FutureRevision {
            requested: 9,
            current: 5
        }
    );
}

pub(crate) fn delete_single_and_range_removes_keys_and_bumps_revision_once<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    for k in ["x/1", "x/2", "y"] {
        put(&mut s, k, "v");
    }
    let mut req = DeleteRequest::new(KeyRange::prefix("x/"));
    req.prev_kv = true;
    let KvResponse::Delete(d) = ok(&mut s, cmd(Op::Delete(req))) else {
        panic!()
    };
    assert_eq!((d.deleted, d.prev_kvs.len(), d.revision), (2, 2, 4));
    let KvResponse::Delete(d) = ok(
        &mut s,
        cmd(Op::Delete(DeleteRequest::new(KeyRange::key("missing")))),
    ) else {
        panic!()
    };
    assert_eq!((d.deleted, d.revision), (0, 4));
    assert!(get(&s, "x/1").is_none());
    assert!(get(&s, "y").is_some());
}

pub(crate) fn recreated_key_starts_a_new_generation<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "k", "1");
    put(&mut s, "k", "2");
    ok(
        &mut s,
        cmd(Op::Delete(DeleteRequest::new(KeyRange::key("k")))),
    );
    put(&mut s, "k", "3");
    let kv = get(&s, "k").unwrap();
    assert_eq!((kv.create_revision, kv.version), (4, 1));
}

pub(crate) fn txn_runs_success_branch_when_every_compare_holds<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "k", "1");
    let txn = TxnRequest {
        compare: vec![
            Compare::new("k", CompareOp::Equal, CompareTarget::Value(b"1".to_vec())),
            Compare::new("k", CompareOp::Equal, CompareTarget::ModRevision(1)),
            Compare::new("k", CompareOp::Greater, CompareTarget::Version(0)),
            Compare::new("k", CompareOp::Less, CompareTarget::CreateRevision(2)),
            Compare::new(
                "k",
                CompareOp::NotEqual,
                CompareTarget::Value(b"2".to_vec()),
            ),
        ],
        success: vec![
            TxnOp::Put(PutRequest::new("k", "2")),
            TxnOp::Put(PutRequest::new("other", "x")),
            TxnOp::Range(RangeRequest::new(KeyRange::key("k"))),
        ],
        failure: vec![TxnOp::Put(PutRequest::new("failed", "1"))],
    };
    let KvResponse::Txn(t) = ok(&mut s, cmd(Op::Txn(txn))) else {
        panic!()
    };
    assert!(t.succeeded);
    assert_eq!(t.revision, 2);
    let TxnOpResponse::Range(r) = &t.responses[2] else {
        panic!()
    };
    assert_eq!(
        r.kvs[0].value, b"2",
        "a range in a txn sees the txn's own writes"
    );
    assert_eq!(
        get(&s, "other").unwrap().mod_revision,
        2,
        "all writes of a txn share one revision"
    );
    assert!(get(&s, "failed").is_none());
}

pub(crate) fn txn_runs_failure_branch_when_a_compare_fails<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    let txn = TxnRequest {
        compare: vec![Compare::new(
            "absent",
            CompareOp::Equal,
            CompareTarget::Value(Vec::new()),
        )],
        success: vec![TxnOp::Put(PutRequest::new("won", "1"))],
        failure: vec![TxnOp::Put(PutRequest::new("lost", "1"))],
    };
    let KvResponse::Txn(t) = ok(&mut s, cmd(Op::Txn(txn))) else {
        panic!()
    };
    assert!(!t.succeeded);
    assert!(get(&s, "lost").is_some());
    assert!(get(&s, "won").is_none());
    // Creation guard used for optimistic concurrency: create only if the key is absent.
    let create = TxnRequest {
        compare: vec![Compare::new(
            "lost",
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        )],
        success: vec![TxnOp::Put(PutRequest::new("lost", "2"))],
        failure: vec![],
    };
    let KvResponse::Txn(t) = ok(&mut s, cmd(Op::Txn(create))) else {
        panic!()
    };
    assert!(!t.succeeded);
    assert_eq!(
        t.revision, 1,
        "a txn that writes nothing does not move the revision"
    );
}

pub(crate) fn failed_op_in_txn_writes_nothing<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Put(PutRequest::new("a", "1")),
            TxnOp::Put(PutRequest {
                lease: 77,
                ..PutRequest::new("b", "1")
            }),
        ],
        failure: vec![],
    };
    let applied = apply(&mut s, &cmd(Op::Txn(txn)), 1).unwrap();
    assert_eq!(applied.result, Err(KvError::LeaseNotFound(77)));
    assert!(get(&s, "a").is_none());
    assert_eq!(s.revision(), 0);
    assert!(applied.changes.is_empty());
}

pub(crate) fn oversized_value_is_rejected_and_nothing_is_written<B: KvBackend>(b: B) {
    let limits = Limits {
        max_value_bytes: 10,
        max_request_bytes: 20,
    };
    let mut s = KvState::open(b, limits).unwrap();
    let big = PutRequest::new("k", vec![b'x'; 11]);
    let r = apply(&mut s, &cmd(Op::Put(big)), 1).unwrap().result;
    assert_eq!(
        r,
        Err(KvError::ValueTooLarge {
            size: 11,
            limit: 10
        })
    );
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Put(PutRequest::new("a", "0123456789")),
            TxnOp::Put(PutRequest::new("b", "0123456789")),
        ],
        failure: vec![],
    };
    let r = apply(&mut s, &cmd(Op::Txn(txn)), 1).unwrap().result;
    assert!(matches!(r, Err(KvError::RequestTooLarge { .. })));
    assert_eq!(s.revision(), 0);
    assert!(get(&s, "a").is_none());
    assert_eq!(
        KvError::ValueTooLarge {
            size: 11,
            limit: 10
        }
        .to_string(),
        "value of 11 bytes exceeds the limit of 10 bytes"
    );
}

pub(crate) fn compaction_drops_history_and_old_reads_fail_with_compacted<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    for v in ["1", "2", "3", "4"] {
        put(&mut s, "k", v);
    }
    ok(&mut s, cmd(Op::Compact { revision: 3 }));
    assert_eq!(s.compact_revision(), 3);
    let mut req = RangeRequest::new(KeyRange::key("k"));
    req.revision = 2;
    assert_eq!(
        s.range(&req).unwrap_err(),
        KvError::Compacted {
            requested: 2,
            compacted: 3
        }
    );
    req.revision = 3;
    assert_eq!(s.range(&req).unwrap().kvs[0].value, b"3");
    assert!(matches!(
        s.events_from(2, None, 10),
        Err(KvError::Compacted { .. })
    ));
    assert_eq!(s.events_from(3, None, 10).unwrap().len(), 2);
    let again = apply(&mut s, &cmd(Op::Compact { revision: 3 }), 1)
        .unwrap()
        .result;
    assert!(matches!(again, Err(KvError::Compacted { .. })));
    let future = apply(&mut s, &cmd(Op::Compact { revision: 10 }), 1)
        .unwrap()
        .result;
    assert!(matches!(future, Err(KvError::FutureRevision { .. })));
}

pub(crate) fn events_from_returns_every_change_grouped_by_revision<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "w/a", "1");
    put(&mut s, "z", "1");
    ok(
        &mut s,
        cmd(Op::Delete(DeleteRequest::new(KeyRange::prefix("")))),
    );
    let all = s.events_from(1, None, 100).unwrap();
    assert_eq!(
        all.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(all[2].events.len(), 2);
    let filtered = s
        .events_from(1, Some(&KeyRange::prefix("w/")), 100)
        .unwrap();
    assert_eq!(filtered.len(), 2);
    assert_eq!(filtered[1].events[0].kind, EventKind::Delete);
    assert_eq!(filtered[1].events[0].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(s.events_from(1, None, 2).unwrap().len(), 2);
}

pub(crate) fn lease_expiry_deletes_attached_keys_at_the_entry_time<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    let KvResponse::LeaseGrant { id, .. } =
        ok(&mut s, at(1000, Op::LeaseGrant { id: 0, ttl_ms: 500 }))
    else {
        panic!()
    };
    ok(
        &mut s,
        cmd(Op::Put(PutRequest {
            lease: id,
            ..PutRequest::new("eph", "1")
        })),
    );
    put(&mut s, "keep", "1");
    let KvResponse::LeaseExpire { expired, .. } = ok(&mut s, at(1499, Op::LeaseExpire)) else {
        panic!()
    };
    assert!(expired.is_empty());
    ok(&mut s, at(1400, Op::LeaseKeepAlive { id }));
    let KvResponse::LeaseExpire { expired, .. } = ok(&mut s, at(1800, Op::LeaseExpire)) else {
        panic!()
    };
    assert!(
        expired.is_empty(),
        "keep-alive at 1400 extends expiry to 1900"
    );
    let KvResponse::LeaseExpire { expired, .. } = ok(&mut s, at(1900, Op::LeaseExpire)) else {
        panic!()
    };
    assert_eq!(expired, [id]);
    assert!(get(&s, "eph").is_none());
    assert!(get(&s, "keep").is_some());
    assert!(s.lease(id).unwrap().is_none());
}

pub(crate) fn lease_revoke_deletes_keys_and_unknown_leases_are_refused<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    ok(
        &mut s,
        cmd(Op::LeaseGrant {
            id: 42,
            ttl_ms: 10_000,
        }),
    );
    let dup = apply(&mut s, &cmd(Op::LeaseGrant { id: 42, ttl_ms: 1 }), 1)
        .unwrap()
        .result;
    assert_eq!(dup, Err(KvError::LeaseExists(42)));
    for k in ["a", "b"] {
        ok(
            &mut s,
            cmd(Op::Put(PutRequest {
                lease: 42,
                ..PutRequest::new(k, "1")
            })),
        );
    }
    // Moving a key to no lease detaches it.
    put(&mut s, "b", "2");
    assert_eq!(s.lease(42).unwrap().unwrap().keys, vec![b"a".to_vec()]);
    ok(&mut s, cmd(Op::LeaseRevoke { id: 42 }));
    assert!(get(&s, "a").is_none());
    assert!(get(&s, "b").is_some());
    let r = apply(&mut s, &cmd(Op::LeaseRevoke { id: 42 }), 1)
        .unwrap()
        .result;
    assert_eq!(r, Err(KvError::LeaseNotFound(42)));
    let next = ok(&mut s, cmd(Op::LeaseGrant { id: 0, ttl_ms: 5 }));
    assert_eq!(next, KvResponse::LeaseGrant { id: 43, ttl_ms: 5 });
}

pub(crate) fn lease_extend_all_gives_full_ttl_from_the_new_leaders_clock<B: KvBackend>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    ok(
        &mut s,
        at(
            0,
            Op::LeaseGrant {
                id: 1,
                ttl_ms: 1000,
            },
        ),
    );
    ok(&mut s, at(5000, Op::LeaseExtendAll));
    assert_eq!(s.lease(1).unwrap().unwrap().expires_at_ms, 6000);
}

pub(crate) fn counters_survive_reopening_the_backend<B: KvBackend + Clone>(b: B) {
    let mut s = KvState::open(b, Limits::default()).unwrap();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    ok(&mut s, cmd(Op::Compact { revision: 2 }));
    ok(&mut s, cmd(Op::LeaseGrant { id: 0, ttl_ms: 5 }));
    let s2 = KvState::open(s.backend().clone(), Limits::default()).unwrap();
    assert_eq!(
        (s2.revision(), s2.compact_revision(), s2.next_lease),
        (2, 2, 2)
    );
}

pub(crate) fn batch_applies_each_command_at_its_own_revision_and_isolates_failures<B: KvBackend>(
    b: B,
) {
    let limits = Limits {
        max_value_bytes: 8,
        ..Limits::default()
    };
    let mut s = KvState::open(b, limits).unwrap();
    put(&mut s, "a", "0");
    let fenced = Command {
        now_ms: NOW,
        fence_term: Some(7),
        op: Op::Put(PutRequest::new("f", "x")),
    };
    let batch = cmd(Op::Batch(vec![
        cmd(Op::Put(PutRequest::new("a", "1"))),
        cmd(Op::Put(PutRequest::new("big", "far too large"))),
        fenced,
        cmd(Op::Txn(TxnRequest {
            compare: vec![Compare::new(
                "a",
                CompareOp::Equal,
                CompareTarget::Version(2),
            )],
            success: vec![TxnOp::Put(PutRequest::new("b", "1"))],
            failure: vec![],
        })),
        cmd(Op::Batch(vec![cmd(Op::Put(PutRequest::new(
            "nested", "1",
        )))])),
        cmd(Op::Delete(DeleteRequest::new(KeyRange::key("a")))),
    ]));
    let applied = apply(&mut s, &batch, 1).unwrap();
    let KvResponse::Batch(results) = applied.result.unwrap() else {
        panic!("a batch is answered with a batch");
    };
    assert_eq!(results.len(), 6);
    assert!(matches!(&results[0], Ok(KvResponse::Put(p)) if p.revision == 2));
    assert!(matches!(
        &results[1],
        Err(KvError::ValueTooLarge { size: 13, limit: 8 })
    ));
    assert!(matches!(
        &results[2],
        Err(KvError::Fenced {
            decided_in: 7,
            entry_term: 1
        })
    ));
    // The txn saw the batch's first put (version 2 of "a").
    assert!(matches!(&results[3], Ok(KvResponse::Txn(t)) if t.succeeded && t.revision == 3));
    assert!(matches!(&results[4], Err(KvError::Invalid(_))));
    assert!(matches!(&results[5], Ok(KvResponse::Delete(d)) if d.deleted == 1 && d.revision == 4));
    // Failed commands wrote nothing and took no revision.
    assert_eq!((applied.revision, s.revision()), (4, 4));
    assert!(get(&s, "big").is_none() && get(&s, "f").is_none() && get(&s, "nested").is_none());
    assert!(get(&s, "a").is_none());
    assert_eq!(get(&s, "b").unwrap().mod_revision, 3);
    // One group of changes per revision, as watches deliver them.
    let revisions: Vec<u64> = applied.changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, vec![2, 3, 4]);
    assert_eq!(s.events_from(2, None, 10).unwrap(), applied.changes);
}

/// Instantiate the conformance suite for one backend; `$make` builds a fresh backend.
macro_rules! kv_conformance_suite {
    ($make:expr) => {
        $crate::kv::state::state_test::kv_conformance_suite!(@tests $make;
            put_then_get_returns_value_and_revisions,
            put_with_prev_kv_returns_the_old_value,
            range_by_prefix_and_bounds_returns_keys_in_order,
            range_honours_limit_keys_only_and_count_only,
            range_at_a_past_revision_sees_the_old_key_space,
            delete_single_and_range_removes_keys_and_bumps_revision_once,
            recreated_key_starts_a_new_generation,
            txn_runs_success_branch_when_every_compare_holds,
            txn_runs_failure_branch_when_a_compare_fails,
            failed_op_in_txn_writes_nothing,
            oversized_value_is_rejected_and_nothing_is_written,
            compaction_drops_history_and_old_reads_fail_with_compacted,
            events_from_returns_every_change_grouped_by_revision,
            lease_expiry_deletes_attached_keys_at_the_entry_time,
            lease_revoke_deletes_keys_and_unknown_leases_are_refused,
            lease_extend_all_gives_full_ttl_from_the_new_leaders_clock,
            counters_survive_reopening_the_backend,
            batch_applies_each_command_at_its_own_revision_and_isolates_failures,
        );
    };
    (@tests $make:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::kv::state::state_test::$name($make);
            }
        )*
    };
}
pub(crate) use kv_conformance_suite;

mod mem {
    super::kv_conformance_suite!(crate::kv::MemBackend::new());
}

#[test]
fn key_range_prefix_of_ff_bytes_is_unbounded() {
    assert_eq!(
        KeyRange::prefix(vec![0xffu8, 0xff]),
        KeyRange::Range {
            start: vec![0xff, 0xff],
            end: None
        }
    );
    assert_eq!(
        KeyRange::prefix("a\u{7f}"),
        KeyRange::Range {
            start: b"a\x7f".to_vec(),
            end: Some(b"a\x80".to_vec())
        }
    );
}

#[test]
fn apply_is_deterministic_for_the_same_entries() {
    let entries = [
        at(1, Op::LeaseGrant { id: 0, ttl_ms: 10 }),
        at(
            2,
            Op::Put(PutRequest {
                lease: 1,
                ..PutRequest::new("a", "1")
            }),
        ),
        at(3, Op::Put(PutRequest::new("b", "1"))),
        at(20, Op::LeaseExpire),
    ];
    let run = || {
        let mut s = KvState::open(MemBackend::new(), Limits::default()).unwrap();
        let out: Vec<_> = entries
            .iter()
            .map(|e| apply(&mut s, e, 1).unwrap())
            .collect();
        (
            out,
            s.range(&RangeRequest::new(KeyRange::prefix(""))).unwrap(),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn fenced_command_from_an_older_term_is_refused_and_writes_nothing() {
    let mut s = KvState::open(MemBackend::new(), Limits::default()).unwrap();
    let fenced = Command {
        now_ms: NOW,
        fence_term: Some(3),
        op: Op::Put(PutRequest::new("k", "v")),
    };
    let stale = apply(&mut s, &fenced, 4).unwrap();
    assert_eq!(
        stale.result,
        Err(KvError::Fenced {
            decided_in: 3,
            entry_term: 4
        })
    );
    assert_eq!(s.revision(), 0);
    let current = apply(&mut s, &fenced, 3).unwrap();
    assert!(current.result.is_ok());
    assert_eq!(s.revision(), 1);
}

mod model {
    //! Property: the key space agrees with a plain map snapshotted at every revision.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum ModelOp {
        Put(u8, u8),
        Delete(u8),
        DeletePrefix(u8),
        CasCreate(u8, u8),
    }

    fn op_strategy() -> impl Strategy<Value = ModelOp> {
        prop_oneof![
            4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| ModelOp::Put(k, v)),
            2 => (0u8..6).prop_map(ModelOp::Delete),
            1 => (0u8..2).prop_map(ModelOp::DeletePrefix),
            1 => (0u8..6, any::<u8>()).prop_map(|(k, v)| ModelOp::CasCreate(k, v)),
        ]
    }

    fn key(k: u8) -> String {
        format!("{}/{}", k % 2, k)
    }

    /// The store operation a model step stands for.
    fn to_op(op: &ModelOp) -> Op {
        match op {
            ModelOp::Put(k, v) => Op::Put(PutRequest::new(key(*k), v.to_string())),
            ModelOp::Delete(k) => Op::Delete(DeleteRequest::new(KeyRange::key(key(*k)))),
            ModelOp::DeletePrefix(p) => {
                Op::Delete(DeleteRequest::new(KeyRange::prefix(format!("{p}/"))))
            }
            ModelOp::CasCreate(k, v) => Op::Txn(TxnRequest {
                compare: vec![Compare::new(
                    key(*k),
                    CompareOp::Equal,
                    CompareTarget::Version(0),
                )],
                success: vec![TxnOp::Put(PutRequest::new(key(*k), v.to_string()))],
                failure: vec![],
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn reads_at_every_revision_match_a_map_snapshotted_at_that_revision(
            ops in proptest::collection::vec(op_strategy(), 1..40),
            compact_at in 0usize..40,
        ) {
            let mut s = KvState::open(MemBackend::new(), Limits::default()).unwrap();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            let mut snapshots: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
            snapshots.insert(0, model.clone());
            for op in &ops {
                match op {
                    ModelOp::Put(k, v) => {
                        model.insert(key(*k), v.to_string());
                    }
                    ModelOp::Delete(k) => {
                        model.remove(&key(*k));
                    }
                    ModelOp::DeletePrefix(p) => {
                        model.retain(|k, _| !k.starts_with(&format!("{p}/")));
                    }
                    ModelOp::CasCreate(k, v) => {
                        model.entry(key(*k)).or_insert_with(|| v.to_string());
                    }
                }
                ok(&mut s, cmd(to_op(op)));
                snapshots.insert(s.revision(), model.clone());
            }
            let compact = (compact_at as u64).min(s.revision());
            if compact > 0 {
                ok(&mut s, cmd(Op::Compact { revision: compact }));
            }
            for (rev, snap) in &snapshots {
                let mut req = RangeRequest::new(KeyRange::prefix(""));
                req.revision = *rev;
                if *rev == 0 {
                    continue;
                }
                let got = s.range(&req);
                if *rev < compact {
                    prop_assert!(matches!(got, Err(KvError::Compacted { .. })), "{rev} below {compact}");
                    continue;
                }
                let got: BTreeMap<String, String> = got
                    .unwrap()
                    .kvs
                    .into_iter()
                    .map(|kv| (String::from_utf8(kv.key).unwrap(), String::from_utf8(kv.value).unwrap()))
                    .collect();
                prop_assert_eq!(&got, snap, "revision {}", rev);
                // The same revision read in pages of two: the later pages read a past
                // revision with a limit, as a list's continuation does.
                let mut start = Vec::new();
                let mut paged = BTreeMap::new();
                loop {
                    let mut req = RangeRequest::new(KeyRange::Range { start: start.clone(), end: None });
                    req.revision = *rev;
                    req.limit = 2;
                    let page = s.range(&req).unwrap();
                    let left = snap.keys().filter(|k| k.as_bytes() >= start.as_slice()).count();
                    prop_assert_eq!(page.count, left as u64, "count at revision {} from {:?}", rev, start);
                    prop_assert_eq!(page.more, left > page.kvs.len(), "more at revision {}", rev);
                    prop_assert!(page.kvs.len() <= 2);
                    let Some(last) = page.kvs.last() else { break };
                    start = last.key.clone();
                    start.push(0);
                    for kv in page.kvs {
                        paged.insert(String::from_utf8(kv.key).unwrap(), String::from_utf8(kv.value).unwrap());
                    }
                    if !page.more {
                        break;
                    }
                }
                prop_assert_eq!(&paged, snap, "paged at revision {}", rev);
            }
            // Every change at or after the compaction point is still in the history, in order.
            let from = compact.max(1);
            let history = s.events_from(from, None, usize::MAX).unwrap();
            let revisions: Vec<u64> = history.iter().map(|r| r.revision).collect();
            let expected: Vec<u64> = (from..=s.revision()).collect();
            prop_assert_eq!(revisions, expected);
        }
        #[test]
        fn a_batch_leaves_the_same_key_space_and_history_as_its_commands_one_by_one(
            ops in proptest::collection::vec(op_strategy(), 1..30),
            cut in 0usize..30,
        ) {
            let cmds: Vec<Command> = ops.iter().map(|op| cmd(to_op(op))).collect();
            let mut one_by_one = KvState::open(MemBackend::new(), Limits::default()).unwrap();
            let singles: Vec<_> = cmds.iter().map(|c| apply(&mut one_by_one, c, 1).unwrap()).collect();
            // Some commands alone, the rest as one batch: the split must not matter.
            let cut = cut.min(cmds.len());
            let mut batched = KvState::open(MemBackend::new(), Limits::default()).unwrap();
            let mut answers = Vec::new();
            for c in &cmds[..cut] {
                answers.push(apply(&mut batched, c, 1).unwrap().result);
            }
            let applied = apply(&mut batched, &cmd(Op::Batch(cmds[cut..].to_vec())), 1).unwrap();
            match applied.result {
                Ok(KvResponse::Batch(results)) => answers.extend(results),
                other => prop_assert!(false, "batch answered {:?}", other),
            }
            let expected: Vec<_> = singles.iter().map(|a| a.result.clone()).collect();
            prop_assert_eq!(answers, expected);
            prop_assert_eq!(batched.revision(), one_by_one.revision());
            let all = RangeRequest::new(KeyRange::prefix(""));
            prop_assert_eq!(batched.range(&all).unwrap(), one_by_one.range(&all).unwrap());
            prop_assert_eq!(
                batched.events_from(1, None, usize::MAX).unwrap(),
                one_by_one.events_from(1, None, usize::MAX).unwrap()
            );
        }
    }
}
