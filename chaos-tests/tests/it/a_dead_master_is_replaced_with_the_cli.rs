//! Replacing a dead master as an operator does: start a new master without `--init`, then
//! `rafter cluster member add` it and `rafter cluster member remove` the dead one. The new
//! master must hold everything written before it joined, and it must count towards quorum:
//! with it, the cluster still writes after losing one more of the original masters.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{
    config_map_names_on, create_anywhere, member_add, rafter, text, wait_for_voters,
};
use chaos_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_replaced_with_the_cli_and_the_new_one_keeps_quorum() {
    let mut cluster = Cluster::start(3).await.expect("three masters");
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config");
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..10 {
        let name = format!("before-{i}");
        assert!(
            create_anywhere(&cluster, &name, deadline).await.is_some(),
            "{name} was not acknowledged"
        );
    }

    cluster.kill(3).expect("kill -9 master 3");
    let new = cluster.add_master().expect("a fourth master starts");
    cluster
        .write_client_config(&config)
        .expect("client config written");
    let peer = format!("127.0.0.1:{}", cluster.masters()[3].peer_port);

    let added = member_add(&config, new, &peer);
    assert!(
        added.status.success(),
        "member add failed:\n{}",
        text(&added)
    );
    assert!(
        text(&added).contains(&format!("member {new} added as a voter")),
        "{}",
        text(&added)
    );

    // The same id at another address is refused (the store would keep the old address).
    let moved = member_add(&config, new, "127.0.0.1:1");
    assert!(!moved.status.success(), "a second add succeeded");
    assert!(
        text(&moved).contains("already in the cluster with peer address"),
        "{}",
        text(&moved)
    );

    let removed = rafter(&config, &["cluster", "member", "remove", "3"]);
    assert!(
        removed.status.success(),
        "member remove failed:\n{}",
        text(&removed)
    );
    // Removing it again is refused, with the reason.
    let again = rafter(&config, &["cluster", "member", "remove", "3"]);
    assert!(!again.status.success(), "a second remove succeeded");
    assert!(
        text(&again).contains("member 3 is not a voter"),
        "{}",
        text(&again)
    );

    let voters: BTreeSet<u64> = [1, 2, new].into();
    wait_for_voters(&cluster, new, &voters).await;

    // The new master serves what was written before it joined.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let names = config_map_names_on(&cluster, new).await.unwrap_or_default();
        if (0..10).all(|i| names.contains(&format!("before-{i}"))) {
            break;
        }
        assert!(
            Instant::now() < until,
            "master {new} lacks the earlier writes: {names:?}\n{}",
            cluster.log_tail(new)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It votes: with one original master killed too, it and the other form the quorum.
    let victim = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    let victim = if victim == new { 1 } else { victim };
    cluster.kill(victim).expect("kill -9 another master");
    let deadline = Instant::now() + Duration::from_secs(60);
    assert!(
        create_anywhere(&cluster, "after", deadline).await.is_some(),
        "no write was acknowledged by master {new} and the last original one\n{}",
        cluster.log_tail(new)
    );
}
