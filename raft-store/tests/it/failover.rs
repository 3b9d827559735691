//! Fast failover: a dead leader (its port refuses connections) is replaced without waiting
//! out its lease; a silent leader whose port still accepts is waited for as before; and the
//! switch turns the mechanism off.

use std::time::Duration;
use std::time::Instant;

use raft_store::FailoverCounts;
use raft_store::NodeConfig;
use raft_store::PutRequest;
use raft_store::WatchReceiver;

use crate::cluster::eventually;
use crate::cluster::TestCluster;

/// Elections long enough that openraft's own timer can never beat fast failover.
const SLOW_ELECTION_MIN: Duration = Duration::from_millis(1500);

/// Heartbeats far enough apart that the follower ranked second, one heartbeat behind the
/// first, sees the first one's vote request before its own turn, even on a loaded machine.
const WIDE_HEARTBEAT: Duration = Duration::from_millis(150);

fn slow_elections(cfg: &mut NodeConfig) {
    cfg.heartbeat_interval = WIDE_HEARTBEAT;
    cfg.election_timeout_min = SLOW_ELECTION_MIN;
    cfg.election_timeout_max = SLOW_ELECTION_MIN * 2;
}

fn slow_elections_without_fast_failover(cfg: &mut NodeConfig) {
    slow_elections(cfg);
    cfg.fast_failover = false;
}

fn without_fast_failover(cfg: &mut NodeConfig) {
    cfg.fast_failover = false;
}

fn total(c: &TestCluster) -> FailoverCounts {
    c.nodes
        .values()
        .map(|n| n.failover_counts())
        .fold(FailoverCounts::default(), |a, b| FailoverCounts {
            early_elections: a.early_elections + b.early_elections,
            lease_bypasses: a.lease_bypasses + b.lease_bypasses,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_leader_is_replaced_by_an_early_election_past_its_lease() {
    let mut c = TestCluster::start_with(3, slow_elections).await;
    c.put("before", "1").await;
    let old = c.wait_for_agreed_leader().await.id();
    assert_eq!(
        total(&c),
        FailoverCounts::default(),
        "nothing to do while the leader lives"
    );
    // Shut down, its port refuses connections, as after kill -9.
    c.stop(old).await;
    let stopped = Instant::now();
    c.put("after", "2").await;
    let acknowledged = stopped.elapsed();
    let new = c.wait_for_leader().await;
    assert_ne!(new.id(), old);
    let counts = total(&c);
    assert!(
        counts.early_elections >= 1,
        "a follower started an election because the leader's port refused: {counts:?}"
    );
    assert!(
        counts.lease_bypasses >= 1,
        "a follower granted its vote past the dead leader's lease: {counts:?}"
    );
    assert_eq!(
        new.failover_counts().early_elections,
        1,
        "the new leader won the election it started early"
    );
    // openraft's own timer cannot fire before the minimum election timeout.
    assert!(
        acknowledged < SLOW_ELECTION_MIN,
        "a write acknowledged {acknowledged:?} after the leader died"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_fast_failover_a_dead_leader_is_replaced_only_after_its_lease() {
    let mut c = TestCluster::start_with(3, slow_elections_without_fast_failover).await;
    c.put("before", "1").await;
    let old = c.wait_for_agreed_leader().await.id();
    // From before the stop: the followers' lease runs from the last heartbeat, before it.
    let stopping = Instant::now();
    c.stop(old).await;
    c.put("after", "2").await;
    let acknowledged = stopping.elapsed();
    assert_ne!(c.wait_for_leader().await.id(), old);
    assert_eq!(
        total(&c),
        FailoverCounts::default(),
        "switched off: never acts"
    );
    assert!(
        acknowledged >= SLOW_ELECTION_MIN,
        "no vote is granted before the lease runs out: {acknowledged:?}"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switched_off_it_never_acts_at_default_timings() {
    let mut c = TestCluster::start_with(3, without_fast_failover).await;
    let old = c.wait_for_agreed_leader().await.id();
    c.stop(old).await;
    c.put("after", "1").await;
    assert_ne!(c.wait_for_leader().await.id(), old);
    assert_eq!(total(&c), FailoverCounts::default());
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_leader_whose_port_still_accepts_keeps_its_lease() {
    let c = TestCluster::start(3).await;
    c.put("k", "1").await;
    let old = c.wait_for_agreed_leader().await.id();
    // Cut off but alive: its listener still accepts connections, as a paused process's
    // kernel or a proxy in front of it would.
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
    eventually("a put on the new leader", || async {
        match c.nodes[&new_leader].put(PutRequest::new("k", "2")).await {
            Ok(r) => Some(r),
            Err(e) if e.is_retryable() => None,
            Err(e) => panic!("put on the new leader {new_leader}: {e:?}"),
        }
    })
    .await;
    assert_eq!(
        total(&c),
        FailoverCounts::default(),
        "a leader whose port accepts is never taken for dead"
    );
    c.faults.heal(old);
    c.shutdown_all().await;
}
