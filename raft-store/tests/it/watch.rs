//! Watches: exactly once, in revision order, resumable, and `Compacted` when too old.

use raft_store::Consistency;
use raft_store::EventKind;
use raft_store::KeyRange;
use raft_store::KvError;
use raft_store::NodeError;
use raft_store::PutRequest;
use raft_store::RevisionEvents;
use raft_store::Watch;
use raft_store::WatchReceiver;
use raft_store::WatchRequest;

use crate::cluster::*;

/// Collect events from `watch` until one at `until_revision` (inclusive) arrives.
async fn collect_until(watch: &mut Watch, until_revision: u64) -> Vec<RevisionEvents> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("watch delivers in time");
        let rev = next.expect("watch open").expect("watch ok");
        let done = rev.revision >= until_revision;
        out.push(rev);
        if done {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_on_a_follower_sees_each_change_of_its_prefix_once_with_prev_kv() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    let follower = c.nodes[&c.follower_ids(leader.id())[0]].clone();
    let mut w = follower
        .watch(WatchRequest {
            range: KeyRange::prefix("w/"),
            start_revision: 1,
            prev_kv: true,
        })
        .await
        .unwrap();
    c.put("w/a", "1").await;
    c.put("other", "1").await;
    c.put("w/a", "2").await;
    let r = leader
        .delete(raft_store::DeleteRequest::new(KeyRange::key("w/a")))
        .await
        .unwrap();
    let got = collect_until(&mut w, r.revision).await;
    let summary: Vec<_> = got.iter().map(|r| (r.revision, r.events[0].kind)).collect();
    assert_eq!(
        summary,
        [
            (1, EventKind::Put),
            (3, EventKind::Put),
            (4, EventKind::Delete)
        ]
    );
    assert_eq!(got[1].events[0].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(got[2].events[0].prev_kv.as_ref().unwrap().value, b"2");
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_across_a_leader_change_sees_every_committed_change_once_in_order() {
    let mut c = TestCluster::start(3).await;
    let first_leader = c.wait_for_leader().await.id();
    let watcher_id = c.follower_ids(first_leader)[0];
    let watcher = c.nodes[&watcher_id].clone();
    let mut live = watcher.subscribe_applied(1).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..15 {
        acked.push(c.put(&format!("x/{i}"), "a").await.revision);
    }
    c.stop(first_leader).await;
    for i in 15..30 {
        acked.push(c.put(&format!("x/{i}"), "b").await.revision);
    }
    let last = *acked.last().unwrap();
    let seen = collect_until(&mut live, last).await;
    let revisions: Vec<u64> = seen.iter().map(|r| r.revision).collect();
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(revisions, expected, "every revision exactly once, in order");
    for rev in acked {
        assert!(revisions.contains(&rev));
    }
    // A reconnecting watcher resumes from its last revision with no gap and no duplicate.
    let resume_from = last - 5;
    let mut resumed = watcher.subscribe_applied(resume_from).await.unwrap();
    let again = collect_until(&mut resumed, last).await;
    assert_eq!(
        again.iter().map(|r| r.revision).collect::<Vec<_>>(),
        (resume_from..=last).collect::<Vec<_>>()
    );
    assert_eq!(again, seen[(resume_from - 1) as usize..].to_vec());
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_a_compacted_revision_fails_with_compacted() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    for i in 0..5 {
        leader
            .put(PutRequest::new("k", i.to_string()))
            .await
            .unwrap();
    }
    leader.compact(4).await.unwrap();
    let mut w = leader
        .watch(WatchRequest {
            range: KeyRange::key("k"),
            start_revision: 2,
            prev_kv: false,
        })
        .await
        .unwrap();
    match w.next().await {
        Some(Err(NodeError::Kv(KvError::Compacted {
            requested: 2,
            compacted: 4,
        }))) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut ok = leader
        .watch(WatchRequest {
            range: KeyRange::key("k"),
            start_revision: 4,
            prev_kv: false,
        })
        .await
        .unwrap();
    assert_eq!(collect_until(&mut ok, 5).await.len(), 2);
    let old_read = leader
        .range(
            raft_store::RangeRequest {
                revision: 3,
                ..raft_store::RangeRequest::new(KeyRange::key("k"))
            },
            Consistency::Linearizable,
        )
        .await;
    assert!(matches!(
        old_read,
        Err(NodeError::Kv(KvError::Compacted { .. }))
    ));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_now_sees_only_later_changes() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    leader.put(PutRequest::new("n", "old")).await.unwrap();
    let mut w = leader
        .watch(WatchRequest::new(KeyRange::key("n")))
        .await
        .unwrap();
    let r = leader.put(PutRequest::new("n", "new")).await.unwrap();
    let first = collect_until(&mut w, r.revision).await;
    assert_eq!(first.len(), 1, "the put before the watch is not replayed");
    assert_eq!(
        (first[0].revision, first[0].events[0].kv.value.as_slice()),
        (2, &b"new"[..])
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_compacts_history_beyond_the_retention_automatically() {
    let c = TestCluster::start_with(3, |cfg| cfg.history_retention = Some(5)).await;
    for i in 0..20 {
        c.put(&format!("r/{i}"), "v").await;
    }
    let leader = c.wait_for_leader().await;
    eventually(
        "history below revision 15 is compacted on the leader",
        || async { (leader.compact_revision().await.unwrap() >= 15).then_some(()) },
    )
    .await;
    let mut w = leader
        .watch(WatchRequest {
            range: KeyRange::prefix("r/"),
            start_revision: 1,
            prev_kv: false,
        })
        .await
        .unwrap();
    assert!(matches!(
        w.next().await,
        Some(Err(NodeError::Kv(KvError::Compacted { .. })))
    ));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_on_a_member_that_installs_a_snapshot_has_no_gap() {
    let c = TestCluster::start_with(3, |cfg| {
        cfg.snapshot_every_entries = 10;
        cfg.logs_kept_after_snapshot = 0;
    })
    .await;
    let leader = c.wait_for_agreed_leader().await;
    let lagging = c.follower_ids(leader.id())[0];
    let mut w = c.nodes[&lagging].subscribe_applied(1).await.unwrap();
    c.put("before", "1").await;
    c.faults.isolate(lagging);
    let mut last = 0;
    for i in 0..40 {
        last = c.put(&format!("cut-off/{i}"), "x").await.revision;
    }
    let leader = c.wait_for_leader().await;
    eventually(
        "the leader purged the log the lagging member needs",
        || async {
            let purged = leader
                .metrics()
                .borrow_watched()
                .purged
                .map_or(0, |p| p.index);
            let applied = c.nodes[&lagging]
                .metrics()
                .borrow_watched()
                .last_applied
                .map_or(0, |l| l.index);
            (purged > applied).then_some(())
        },
    )
    .await;
    c.faults.heal(lagging);
    let got = collect_until(&mut w, last).await;
    let revisions: Vec<u64> = got.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, (1..=last).collect::<Vec<_>>());
    let m = c.nodes[&lagging].metrics().borrow_watched().clone();
    assert!(
        m.snapshot.is_some(),
        "the lagging member caught up by snapshot"
    );
    c.shutdown_all().await;
}
