//! A leader cut off from its followers gives up a write as of unknown outcome once no
//! quorum has answered it for a while, instead of holding it for the whole request
//! timeout; a leader that is only idle is never taken for cut off.

use std::time::Duration;
use std::time::Instant;

use raft_store::NodeError;
use raft_store::PutRequest;

use crate::cluster::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_leader_still_writes() {
    let c = TestCluster::start(3).await;
    c.put("k", "1").await;
    let leader = c.wait_for_agreed_leader().await;
    // Idle for longer than the cut-off (1 s at the default timings): heartbeats alone must
    // keep its quorum's acknowledgements fresh.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    leader
        .put(PutRequest::new("k", "2"))
        .await
        .expect("an idle leader's write commits");
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_leader_gives_up_a_write_long_before_the_request_timeout() {
    let c = TestCluster::start(3).await;
    c.put("k", "1").await;
    let leader = c.wait_for_agreed_leader().await;
    c.faults.isolate(leader.id());
    let sent = Instant::now();
    let result = leader.put(PutRequest::new("k", "2")).await;
    let took = sent.elapsed();
    assert!(
        matches!(result, Err(NodeError::OutcomeUnknown(ref why)) if why.contains("cut off")),
        "{result:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "given up at the cut-off (1 s, checked every heartbeat), not the 5 s request timeout: {took:?}"
    );
    c.faults.heal(leader.id());
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_already_cut_off_proposes_nothing_and_says_so() {
    let c = TestCluster::start(3).await;
    c.put("k", "1").await;
    let leader = c.wait_for_agreed_leader().await;
    c.faults.isolate(leader.id());
    // The first write waits out the cut-off; by then the leader is known to be cut off.
    let first = leader.put(PutRequest::new("k", "2")).await;
    assert!(
        matches!(first, Err(NodeError::OutcomeUnknown(_))),
        "{first:?}"
    );
    let sent = Instant::now();
    let second = leader.put(PutRequest::new("k", "3")).await;
    // Isolated both ways, it hears no vote request and stays leader in its own view.
    assert!(
        matches!(second, Err(NodeError::CutOff { .. })),
        "{second:?}"
    );
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "refused at once, not after another wait: {:?}",
        sent.elapsed()
    );
    c.faults.heal(leader.id());
    c.shutdown_all().await;
}
