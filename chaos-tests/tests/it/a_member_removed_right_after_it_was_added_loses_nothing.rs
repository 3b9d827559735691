//! A member is added with `rafter cluster member add` and removed again right away, while
//! a writer goes on and the added master keeps running: the remove is taken as soon as the
//! add's configuration change is done (asked again while it is not, as an operator
//! would), the membership is the first three again, and the removed master, still
//! running but no longer sent the log, never disturbs them: the leader keeps its term and
//! writes go on being acknowledged. Then the leader is killed: nothing acknowledged is
//! missing on any running master.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    acknowledged_in, add_spare_member, every_master_holds, first_ack_after, library_client,
    proxied_cluster, remove_member, spawn_writer, wait_for_voters,
};
use chaos_tests::schedule;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_right_after_it_was_added_loses_nothing() {
    let seed = schedule::seed();
    let _report = schedule::SeedReport(seed);
    let mut cluster = proxied_cluster(seed, 1).await;
    let (client, _config_dir) = library_client(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, writer) = spawn_writer(client.clone(), stop.clone());
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    first_ack_after(&log, Instant::now(), Duration::from_secs(30)).await;

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let new = add_spare_member(&mut cluster, &config);
    // Removed at once: refused only while the add's change is still being committed.
    let refusals = remove_member(&config, new).await;
    eprintln!("removed after {refusals} refusals");
    let first_three: BTreeSet<u64> = [1, 2, 3].into();
    wait_for_voters(&cluster, leader, &first_three).await;

    // The removed master runs on for a while; the three keep their leader and its term.
    let term = cluster.status(leader).await.unwrap().term;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    first_ack_after(&log, quiet_from, Duration::from_secs(10)).await;
    let status = cluster.status(leader).await.unwrap();
    assert_eq!(
        (status.leader_id, status.term),
        (leader, term),
        "the removed member disturbed the leadership"
    );
    let voters: BTreeSet<u64> = status
        .members
        .iter()
        .filter(|m| m.role == "Voter")
        .map(|m| m.id)
        .collect();
    assert_eq!(voters, first_three);
    cluster.kill(new).unwrap();

    // A leader kill afterwards.
    let killed_at = Instant::now();
    cluster.kill(leader).unwrap();
    first_ack_after(&log, killed_at, Duration::from_secs(30)).await;
    cluster.restart(leader).unwrap();
    first_ack_after(&log, Instant::now(), Duration::from_secs(30)).await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acknowledged = acknowledged_in(&log);
    assert!(acknowledged.len() >= 3, "{acknowledged:?}");
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(60))
        .await
        .unwrap();
}
