//! The disk under the Raft leader's log starts failing its syncs with EIO (the log
//! writer's failpoint): the member stops (its process exits with an error) rather than
//! acknowledge what it could not make durable; the other two elect a leader and writes go
//! on. With the disk healthy again the member restarts on its own log and catches up, and
//! no acknowledged write is missing on any master.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{every_master_holds, library_client, library_create};
use chaos_tests::{Cluster, Failpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_wal_sync_fails_stops_and_restarted_loses_nothing() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    crate::support::require_failpoints(&cluster);
    let (client, _config_dir) = library_client(&cluster).await;
    let mut acknowledged = BTreeMap::new();
    crate::support::create_acknowledged(&client, "before", 5, &mut acknowledged).await;

    let victim = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    cluster
        .set_failpoint(victim, Failpoint::WalSyncEio, true)
        .unwrap();
    let failed_at = Instant::now();
    // Writes go on; the first that reaches the victim's log makes it stop.
    let mut i = 0;
    while cluster.masters()[usize::try_from(victim - 1).unwrap()].is_running() {
        i += 1;
        let name = format!("during-{i}");
        if let Some(uid) = library_create(&client, &name, Duration::from_secs(10)).await {
            acknowledged.insert(name, uid);
        }
        if let Ok(status) = cluster
            .wait_for_exit(victim, Duration::from_millis(200))
            .await
        {
            assert!(
                !status.success(),
                "master {victim} exited successfully after its WAL sync failed"
            );
            break;
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(30),
            "master {victim} still runs 30 s after its WAL syncs started failing:\n{}",
            cluster.log_tail(victim)
        );
    }
    let log = cluster.log(victim);
    assert!(
        log.contains("syncing the Raft log failed") && log.contains("the store stopped"),
        "master {victim} stopped without saying why:\n{}",
        cluster.log_tail(victim)
    );

    // The others carry on.
    crate::support::create_acknowledged(&client, "after", 5, &mut acknowledged).await;

    cluster
        .set_failpoint(victim, Failpoint::WalSyncEio, false)
        .unwrap();
    cluster.restart(victim).unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("all three agree on a leader again");
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
}
