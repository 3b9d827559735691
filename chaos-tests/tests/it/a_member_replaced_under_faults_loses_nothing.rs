//! A member is replaced while a writer goes on and faults go on: every peer link delayed
//! through the proxies, the member to be replaced killed, a fresh master (its links
//! proxied too) added with `rafter cluster member add` and the dead one removed, then the
//! leader of the new membership killed. The new member becomes a voter holding everything,
//! and no write acknowledged at any point is missing on any running master.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    acknowledged_in, add_spare_member, every_master_holds, first_ack_after, library_client,
    proxied_cluster, remove_member, spawn_writer, wait_for_voters,
};
use chaos_tests::proxy::{Direction, Fault};
use chaos_tests::schedule;
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_replaced_while_writes_and_faults_go_on_loses_nothing() {
    let seed = schedule::seed();
    let _report = schedule::SeedReport(seed);
    let mut rng = schedule::rng(seed);
    let mut cluster = proxied_cluster(seed, 1).await;
    let (client, _config_dir) = library_client(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, writer) = spawn_writer(client.clone(), stop.clone());

    // Every link, the spare's included, slowed by its own delay; a round trip under the
    // peer RPC timeouts of a 50 ms heartbeat (longer ones stall replication to the new
    // member, and with it the configuration change: docs/chaos.md).
    for from in 1..=4 {
        for to in (1..=4).filter(|to| *to != from) {
            let delay = Duration::from_millis(rng.gen_range(1..12));
            cluster
                .peer_link(from, to)
                .unwrap()
                .set(Direction::Both, Fault::Delay(delay));
        }
    }

    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let replaced = if leader == 3 { 2 } else { 3 };
    let killed_at = Instant::now();
    cluster.kill(replaced).unwrap();
    first_ack_after(&log, killed_at, Duration::from_secs(30)).await;

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let new = add_spare_member(&mut cluster, &config);
    // Asked of the leader, which was never the replaced member.
    let all: BTreeSet<u64> = [1, 2, 3, 4].into();
    wait_for_voters(&cluster, leader, &all).await;
    remove_member(&config, replaced).await;
    let voters: BTreeSet<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|id| *id != replaced)
        .collect();
    wait_for_voters(&cluster, new, &voters).await;

    // A leader kill in the new membership.
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let killed_at = Instant::now();
    cluster.kill(leader).unwrap();
    first_ack_after(&log, killed_at, Duration::from_secs(30)).await;
    cluster.restart(leader).unwrap();
    let restarted_at = Instant::now();
    first_ack_after(&log, restarted_at, Duration::from_secs(30)).await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    cluster.heal_network();
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
