//! Concurrent writes share log entries: many clients' puts travel as one entry, yet each
//! keeps its own revision, its own answer and its own fence, and every member and watcher
//! sees each change exactly once.

use raft_store::WatchReceiver;
use std::collections::BTreeSet;

use raft_store::Consistency;
use raft_store::KeyRange;
use raft_store::KvError;
use raft_store::NodeError;
use raft_store::Op;
use raft_store::PutRequest;
use raft_store::WatchRequest;

use crate::cluster::*;

const WRITERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_and_keep_their_own_revisions_and_fences() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_agreed_leader().await;
    let follower = c.nodes[&c.follower_ids(leader.id())[0]].clone();
    let term = leader.leader_term().expect("the leader knows its term");
    let first = leader.revision().await.expect("revision") + 1;
    let mut watch = follower
        .watch(WatchRequest {
            range: KeyRange::prefix("batch/"),
            start_revision: first,
            prev_kv: false,
        })
        .await
        .expect("watch");
    let index_before = leader
        .metrics()
        .borrow_watched()
        .last_log_index
        .unwrap_or(0);

    // Every writer at once, plus writers whose fence names a term that is already over.
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let node = leader.clone();
        tasks.push(tokio::spawn(async move {
            node.put(PutRequest::new(format!("batch/{i:03}"), format!("v{i}")))
                .await
                .map(|r| r.revision)
        }));
    }
    let mut stale = Vec::new();
    for i in 0..5 {
        let node = leader.clone();
        stale.push(tokio::spawn(async move {
            node.submit(
                Op::Put(PutRequest::new(format!("batch/stale-{i}"), "x")),
                Some(term.saturating_sub(1)),
            )
            .await
        }));
    }
    let mut revisions = BTreeSet::new();
    for t in tasks {
        let revision = t.await.expect("writer").expect("put acknowledged");
        assert!(
            revisions.insert(revision),
            "revision {revision} given twice"
        );
    }
    for t in stale {
        match t.await.expect("stale writer") {
            Err(NodeError::Kv(KvError::Fenced { .. })) => {}
            other => panic!("a write fenced to an older term must be refused, got {other:?}"),
        }
    }
    // Each acknowledged write has its own revision, with no gap between them.
    let expected: BTreeSet<u64> = (first..first + WRITERS as u64).collect();
    assert_eq!(revisions, expected);

    // Fewer entries than writes: they were batched.
    let entries = leader
        .metrics()
        .borrow_watched()
        .last_log_index
        .unwrap_or(0)
        - index_before;
    assert!(
        entries < WRITERS as u64,
        "{WRITERS} concurrent writes took {entries} log entries"
    );

    // Every member holds every write and none of the fenced ones.
    c.wait_applied_everywhere().await;
    for id in c.nodes.keys() {
        let got = c.nodes[id]
            .range(
                raft_store::RangeRequest::new(KeyRange::prefix("batch/")),
                Consistency::Serializable,
            )
            .await
            .expect("range");
        assert_eq!(got.kvs.len(), WRITERS, "member {id}");
        assert!(got.kvs.iter().all(|kv| !kv.key.starts_with(b"batch/stale")));
    }

    // A watcher on a follower sees each change once, in revision order.
    let mut seen = Vec::new();
    while seen.len() < WRITERS {
        let next = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("watch delivers in time")
            .expect("watch open")
            .expect("watch ok");
        assert_eq!(next.events.len(), 1, "one put per revision");
        seen.push(next.revision);
    }
    assert_eq!(seen, expected.into_iter().collect::<Vec<_>>());
    c.shutdown_all().await;
}
