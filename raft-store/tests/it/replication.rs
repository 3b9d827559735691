//! Writes, failover, restarts and quorum loss on a three-member cluster.

use raft_store::WatchReceiver;
use std::time::Duration;
use std::time::Instant;

use raft_store::Consistency;
use raft_store::KeyRange;
use raft_store::Node;
use raft_store::NodeConfig;
use raft_store::NodeError;
use raft_store::PutRequest;
use raft_store::RangeRequest;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_commit_and_every_member_applies_them() {
    let c = TestCluster::start(3).await;
    for i in 0..10 {
        // Through whichever member leads: on a loaded machine leadership may move.
        let r = c.put(&format!("k{i}"), &format!("v{i}")).await;
        assert_eq!(r.revision, i + 1);
    }
    let leader = c.wait_for_leader().await;
    c.wait_applied_everywhere().await;
    for id in 1..=3 {
        assert_eq!(
            c.value_on(id, "k9").await.as_deref(),
            Some("v9"),
            "member {id}"
        );
    }
    let r = leader
        .range(
            RangeRequest::new(KeyRange::prefix("k")),
            Consistency::Linearizable,
        )
        .await
        .unwrap();
    assert_eq!(r.count, 10);
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_names_the_leader_for_writes_and_serves_linearizable_reads_by_read_index() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    let follower = &c.nodes[&c.follower_ids(leader.id())[0]];
    follower
        .raft()
        .wait(Some(DEADLINE))
        .current_leader(leader.id(), "the follower learns who leads")
        .await
        .unwrap();
    match follower.put(PutRequest::new("k", "v")).await {
        Err(NodeError::ForwardToLeader { leader_id, addr }) => {
            assert_eq!(leader_id, Some(leader.id()));
            assert_eq!(addr.as_deref(), Some(leader.addr()));
        }
        other => panic!("expected ForwardToLeader, got {other:?}"),
    }
    // A linearizable read on a follower sees a write the leader acknowledged just before,
    // with no waiting by the caller: the follower takes the leader's read index.
    leader.put(PutRequest::new("k", "v")).await.unwrap();
    let read = follower.get("k", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.map(|kv| kv.value), Some(b"v".to_vec()));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_forwards_writes_to_the_leader_when_configured() {
    let c = TestCluster::start_with(3, |cfg| cfg.forward_writes = true).await;
    let leader = c.wait_for_leader().await;
    let follower = c.nodes[&c.follower_ids(leader.id())[0]].clone();
    let r = follower.put(PutRequest::new("fwd", "1")).await.unwrap();
    assert_eq!(r.revision, 1);
    assert_eq!(
        leader
            .get("fwd", Consistency::Linearizable)
            .await
            .unwrap()
            .unwrap()
            .value,
        b"1"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_elects_a_new_one_and_writes_resume() {
    let mut c = TestCluster::start(3).await;
    c.put("before", "1").await;
    let old = c.wait_for_leader().await.id();
    c.stop(old).await;
    let new = c.wait_for_leader().await;
    assert_ne!(new.id(), old);
    c.put("after", "2").await;
    assert_eq!(
        new.get("before", Consistency::Linearizable)
            .await
            .unwrap()
            .unwrap()
            .value,
        b"1"
    );
    assert_eq!(
        new.get("after", Consistency::Linearizable)
            .await
            .unwrap()
            .unwrap()
            .value,
        b"2"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_follower_restarts_from_its_directory_and_catches_up() {
    let mut c = TestCluster::start(3).await;
    c.put("a", "1").await;
    let leader = c.wait_for_leader().await.id();
    let follower = c.follower_ids(leader)[0];
    c.stop(follower).await;
    for i in 0..20 {
        c.put(&format!("while-down/{i}"), "x").await;
    }
    c.restart(follower).await;
    c.wait_applied_everywhere().await;
    assert_eq!(c.value_on(follower, "a").await.as_deref(), Some("1"));
    assert_eq!(
        c.value_on(follower, "while-down/19").await.as_deref(),
        Some("x")
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_behind_the_snapshot_point_catches_up_by_snapshot() {
    let mut c = TestCluster::start_with(3, |cfg| {
        cfg.snapshot_every_entries = 10;
        cfg.logs_kept_after_snapshot = 0;
    })
    .await;
    let leader = c.wait_for_leader().await.id();
    let follower = c.follower_ids(leader)[0];
    c.stop(follower).await;
    for i in 0..40 {
        c.put(&format!("s/{i:02}"), &i.to_string()).await;
    }
    let leader_node = c.wait_for_leader().await;
    eventually("leader purged its log behind a snapshot", || async {
        leader_node
            .metrics()
            .borrow_watched()
            .purged
            .map(|p| p.index > 5)
            .filter(|p| *p)
    })
    .await;
    let node = c.restart(follower).await;
    c.wait_applied_everywhere().await;
    assert!(
        node.metrics().borrow_watched().snapshot.is_some(),
        "follower installed a snapshot"
    );
    let r = node
        .range(
            RangeRequest::new(KeyRange::prefix("s/")),
            Consistency::Serializable,
        )
        .await
        .unwrap();
    assert_eq!(r.count, 40);
    assert_eq!(r.kvs[39].value, b"39");
    c.put("after-snapshot", "1").await;
    c.wait_applied_everywhere().await;
    assert_eq!(
        c.value_on(follower, "after-snapshot").await.as_deref(),
        Some("1")
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_members_restarted_keep_every_acknowledged_write() {
    let mut c = TestCluster::start(3).await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let r = c.put(&format!("durable/{i}"), &i.to_string()).await;
        acked.push((i, r.revision));
    }
    for id in [1, 2, 3] {
        c.stop(id).await;
    }
    for id in [1, 2, 3] {
        c.restart(id).await;
    }
    let leader = c.wait_for_leader().await;
    for (i, rev) in acked {
        let kv = leader
            .get(format!("durable/{i}"), Consistency::Linearizable)
            .await
            .unwrap()
            .expect("acked write");
        assert_eq!(
            (kv.value, kv.mod_revision),
            (i.to_string().into_bytes(), rev)
        );
    }
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_without_quorum_fails_within_the_request_timeout() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    for id in c.follower_ids(leader.id()) {
        c.stop(id).await;
    }
    let started = Instant::now();
    let r = leader.put(PutRequest::new("lonely", "1")).await;
    assert!(r.is_err(), "a write without quorum must fail: {r:?}");
    assert!(r.unwrap_err().is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3) + Duration::from_secs(2));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_address_taken_over_by_another_clusters_member_is_refused() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    c.put("k", "1").await;
    // The followers go away and new members of another cluster, with the same ids and empty
    // logs, take over their addresses (as tests running side by side reuse freed ports).
    let mut strangers = Vec::new();
    let mut dirs = Vec::new();
    for id in c.follower_ids(leader.id()) {
        c.stop(id).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = NodeConfig::new(id, dir.path());
        cfg.listen_addr = c.addrs[&id];
        cfg.cluster_name = unique_cluster_name();
        let stranger = Node::start(cfg)
            .await
            .expect("a stranger on the freed address");
        strangers.push(stranger);
        dirs.push(dir);
    }
    // The leader is refused by them, not misled: writes fail as retryable, twice, and it is
    // still running (a follower's log going back would stop its Raft core).
    for _ in 0..2 {
        let r = leader.put(PutRequest::new("lonely", "1")).await;
        assert!(
            r.as_ref().is_err_and(|e| e.is_retryable()),
            "a write without quorum fails and may be retried: {r:?}"
        );
    }
    for stranger in strangers {
        assert_eq!(
            stranger.get("k", Consistency::Serializable).await.unwrap(),
            None
        );
        stranger.shutdown().await.expect("shutdown");
    }
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_leader_is_replaced_and_rejoins_as_a_follower() {
    let c = TestCluster::start(3).await;
    c.put("k", "1").await;
    let old = c.wait_for_leader().await.id();
    c.faults.isolate(old);
    let others = c.follower_ids(old);
    let new_leader = eventually("the connected majority elects a new leader", || async {
        others
            .iter()
            .find(|id| {
                let m = c.nodes[id].metrics().borrow_watched().clone();
                m.state == openraft::ServerState::Leader
            })
            .copied()
    })
    .await;
    // Retried while the new leader has not yet heard from a quorum (it refuses proposals
    // with ForwardToLeader until then); the same value, so a retry changes nothing else.
    let r = eventually("a put on the new leader", || async {
        match c.nodes[&new_leader].put(PutRequest::new("k", "2")).await {
            Ok(r) => Some(r),
            Err(e) if e.is_retryable() => None,
            Err(e) => panic!("put on the new leader {new_leader}: {e:?}"),
        }
    })
    .await;
    c.faults.heal(old);
    c.wait_applied_everywhere().await;
    let kv = c.nodes[&old]
        .get("k", Consistency::Serializable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"2"[..], r.revision)
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_value_is_refused_with_a_clear_error_and_nothing_is_written() {
    let c = TestCluster::start(3).await;
    c.put("small", "1").await;
    let leader = c.wait_for_leader().await;
    let big = vec![b'x'; 1536 * 1024 + 1];
    match leader.put(PutRequest::new("big", big)).await {
        Err(NodeError::Kv(raft_store::KvError::ValueTooLarge { size, limit })) => {
            assert_eq!((size, limit), (1536 * 1024 + 1, 1536 * 1024));
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(leader.revision().await.unwrap(), 1);
    assert!(leader
        .get("big", Consistency::Linearizable)
        .await
        .unwrap()
        .is_none());
    // A value just under the limit goes through the log and the gRPC transport.
    let fits = vec![b'y'; 1536 * 1024];
    c.put_req(PutRequest::new("fits", fits)).await;
    c.wait_applied_everywhere().await;
    for id in 1..=3 {
        let kv = c.nodes[&id]
            .get("fits", Consistency::Serializable)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kv.value.len(), 1536 * 1024);
    }
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_fenced_to_an_old_leadership_term_is_refused_after_failover() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_agreed_leader().await;
    let term = leader.leader_term().expect("leader has a term");
    let put = |v: &str| raft_store::Op::Put(PutRequest::new("fenced", v));
    let r = leader.submit(put("1"), Some(term)).await.unwrap();
    assert!(matches!(r, raft_store::KvResponse::Put(_)));
    c.stop(leader.id()).await;
    // A leader that has not heard from a quorum lately refuses proposals (ForwardToLeader
    // with no leader) until it does: retry those, as a client would.
    let (new, new_term) = eventually("the fenced write to be refused", || async {
        let new = c.wait_for_leader().await;
        let new_term = new.leader_term()?;
        match new.submit(put("2"), Some(term)).await {
            Err(NodeError::Kv(raft_store::KvError::Fenced {
                decided_in,
                entry_term,
            })) => {
                assert_eq!((decided_in, entry_term), (term, new_term));
                Some((new, new_term))
            }
            Err(NodeError::ForwardToLeader { .. }) => None,
            other => panic!("expected Fenced, got {other:?}"),
        }
    })
    .await;
    assert!(new_term > term);
    let kv = new
        .get("fenced", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kv.value, b"1");
    c.shutdown_all().await;
}
