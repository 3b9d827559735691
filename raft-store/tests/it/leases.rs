//! Leases decided by the leader and applied identically on every member.

use std::time::Duration;

use raft_store::Consistency;
use raft_store::PutRequest;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_lease_deletes_its_keys_on_every_member() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    let id = leader
        .lease_grant(0, Duration::from_millis(300))
        .await
        .unwrap();
    leader
        .put(PutRequest {
            lease: id,
            ..PutRequest::new("ephemeral", "1")
        })
        .await
        .unwrap();
    leader.put(PutRequest::new("durable", "1")).await.unwrap();
    eventually("the lease expires through the log", || async {
        leader
            .get("ephemeral", Consistency::Linearizable)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    c.wait_applied_everywhere().await;
    for id in 1..=3 {
        assert_eq!(c.value_on(id, "ephemeral").await, None);
        assert_eq!(c.value_on(id, "durable").await.as_deref(), Some("1"));
    }
    assert!(leader.lease(id).await.unwrap().is_none());
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_alive_lease_outlives_its_ttl_and_revoke_deletes_keys() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    let id = leader
        .lease_grant(7, Duration::from_millis(800))
        .await
        .unwrap();
    assert_eq!(id, 7);
    leader
        .put(PutRequest {
            lease: id,
            ..PutRequest::new("held", "1")
        })
        .await
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_millis(1600);
    while std::time::Instant::now() < until {
        assert_eq!(
            leader.lease_keep_alive(id).await.unwrap(),
            Duration::from_millis(800)
        );
        assert!(leader
            .get("held", Consistency::Linearizable)
            .await
            .unwrap()
            .is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    leader.lease_revoke(id).await.unwrap();
    assert!(leader
        .get("held", Consistency::Linearizable)
        .await
        .unwrap()
        .is_none());
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_leader_extends_leases_instead_of_expiring_them_early() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader().await;
    let id = leader.lease_grant(0, Duration::from_secs(3)).await.unwrap();
    let granted = leader.lease(id).await.unwrap().unwrap();
    let old = leader.id();
    c.stop(old).await;
    let new = c.wait_for_leader().await;
    let extended = eventually("the new leader extends the lease", || async {
        let l = new.lease(id).await.unwrap()?;
        (l.expires_at_ms > granted.expires_at_ms).then_some(l)
    })
    .await;
    assert_eq!(extended.ttl_ms, 3000);
    c.shutdown_all().await;
}
