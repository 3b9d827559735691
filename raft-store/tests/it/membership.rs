//! Membership changes: add a learner, promote it, remove a member.

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
    let m = leader.metrics().borrow().clone();
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
