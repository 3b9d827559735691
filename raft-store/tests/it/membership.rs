//! Membership changes: add a learner, promote it, remove a member.

use raft_store::WatchReceiver;
use std::collections::BTreeSet;

use raft_store::Consistency;
use raft_store::PutRequest;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_catches_up_is_promoted_and_a_dead_member_is_removed() {
    let mut c = TestCluster::start(3).await;
    c.put("before-join", "1").await;
    c.dirs.insert(4, tempfile::tempdir().unwrap());
    let new = c.start_member(4, "127.0.0.1:0".parse().unwrap()).await;
    let leader = c.wait_for_leader().await;
    leader.add_learner(4, new.addr().to_string()).await.unwrap();
    // The learner has the log once add_learner returns; it applies it shortly after.
    let kv = eventually(
        "the learner applies what was written before it joined",
        || async {
            new.get("before-join", Consistency::Serializable)
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(kv.value, b"1");
    // Replace a failed member: stop a follower, promote the learner, remove the dead one.
    let dead = c
        .follower_ids(leader.id())
        .into_iter()
        .find(|id| *id != 4)
        .unwrap();
    c.stop(dead).await;
    let voters: BTreeSet<u64> = c.nodes.keys().copied().collect();
    leader.change_membership(voters.clone()).await.unwrap();
    let m = leader.metrics().borrow_watched().clone();
    let now: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
    assert_eq!(now, voters);
    leader
        .put(PutRequest::new("after-change", "1"))
        .await
        .unwrap();
    c.wait_applied_everywhere().await;
    assert_eq!(c.value_on(4, "after-change").await.as_deref(), Some("1"));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrapping_every_member_at_every_start_is_idempotent() {
    let mut c = TestCluster::start(3).await;
    let members: std::collections::BTreeMap<u64, String> =
        c.addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
    for node in c.nodes.values() {
        node.initialize_if_new(members.clone()).await.unwrap();
    }
    c.put("k", "1").await;
    c.stop(2).await;
    let again = c.restart(2).await;
    again.initialize_if_new(members).await.unwrap();
    c.wait_applied_everywhere().await;
    assert_eq!(c.value_on(2, "k").await.as_deref(), Some("1"));
    c.shutdown_all().await;
}
