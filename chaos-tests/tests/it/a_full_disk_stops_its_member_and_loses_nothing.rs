//! One master keeps its data on a small filesystem the test makes (an ext4 image,
//! loop-mounted), which then fills up. With less than a quarter of its reserve
//! (`--disk-reserve-mb`) free, that member stops (exits unsuccessfully, saying why in its
//! log) rather than let a log write find the disk full; the other two go on acknowledging.
//! Once space returns it starts, catches up, and no acknowledged write is missing on any
//! master.
//!
//! Needs root and loop devices; without them the test says why and passes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::small_disk::SmallDisk;
use crate::support::{every_master_holds, library_client};
use chaos_tests::{Cluster, ClusterOptions};

/// The member whose disk fills up (not 1: its data dir holds the PKI).
const VICTIM: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_a_full_disk_stops_and_recovers_when_space_returns() {
    let _turn = crate::small_disk::take_turn().await;
    let disk = match SmallDisk::make(160) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: no small filesystem to fill: {why}");
            return;
        }
    };
    let mut cluster = Cluster::start_with_options(
        3,
        ClusterOptions {
            flags: vec!["--disk-reserve-mb".into(), "32".into()],
            data_dir_of: [(VICTIM, disk.mount.join("m3"))].into(),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a three-master cluster starts");
    let (client, _config_dir) = library_client(&cluster).await;
    let mut acknowledged = BTreeMap::new();
    crate::support::create_acknowledged(&client, "before", 5, &mut acknowledged).await;
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(20))
        .await
        .unwrap();

    let filler = tokio::task::block_in_place(|| disk.fill());

    // It stops by itself, on its reading of the free space, and says why.
    let status = cluster
        .wait_for_exit(VICTIM, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "master {VICTIM} runs on a full disk: {e}\n{}",
                cluster.log_tail(VICTIM)
            )
        });
    assert!(!status.success());
    let log = cluster.log(VICTIM);
    assert!(
        log.contains("below a quarter of the reserve"),
        "master {VICTIM}'s log says why it stopped; it ends:\n{}",
        cluster.log_tail(VICTIM)
    );
    // The other two go on acknowledging.
    crate::support::create_acknowledged(&client, "during", 5, &mut acknowledged).await;

    // Space returns.
    std::fs::remove_file(&filler).unwrap();
    cluster.restart(VICTIM).unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("all three agree on a leader again");
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
    drop(cluster);
    drop(disk);
}
