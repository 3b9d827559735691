//! Masters 2 and 3 keep their data on small filesystems the test makes, which are filled
//! until less than the reserve (`--disk-reserve-mb`) is free, but more than a quarter of
//! it. With master 1 paused, one of them leads: every write is refused with a clear error
//! (the client's `NoSpace`, naming the leader and its reserve), nothing refused is written,
//! and no master exits. Once space returns, the same cluster takes writes again, and every
//! master holds every acknowledged write.
//!
//! Needs root and loop devices; without them the test says why and passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::small_disk::SmallDisk;
use crate::support::{config_map, every_master_holds, library_client};
use chaos_tests::{Cluster, ClusterOptions};
use rafter_client::ClientError;
use rafter_proto::Object;

const RESERVE_MB: u64 = 64;
/// Free space left on the small disks: below the reserve, above a quarter of it.
const LEFT_MB: u64 = 36;
const DEADLINE: Duration = Duration::from_secs(60);

/// The leader masters 2 and 3 agree on, once it is one of them.
async fn leader_among_the_unpaused(cluster: &Cluster) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (two, three) = (cluster.status(2).await, cluster.status(3).await);
        if let (Ok(two), Ok(three)) = (two, three) {
            if two.leader_id == three.leader_id && [2, 3].contains(&two.leader_id) {
                return two.leader_id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "masters 2 and 3 elected no leader with master 1 paused; their logs end:\n{}\n{}",
            cluster.log_tail(2),
            cluster.log_tail(3)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_below_its_disk_reserve_refuses_writes_and_takes_them_once_space_returns() {
    let _turn = crate::small_disk::take_turn().await;
    let disks = match (SmallDisk::make(256), SmallDisk::make(256)) {
        (Ok(two), Ok(three)) => [two, three],
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("SKIPPED: no small filesystem to fill: {why}");
            return;
        }
    };
    let mut cluster = Cluster::start_with_options(
        3,
        ClusterOptions {
            flags: vec!["--disk-reserve-mb".into(), RESERVE_MB.to_string()],
            data_dir_of: [
                (2, disks[0].mount.join("m2")),
                (3, disks[1].mount.join("m3")),
            ]
            .into(),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a three-master cluster starts");
    let (client, _config_dir) = library_client(&cluster).await;
    let mut acknowledged = BTreeMap::new();
    crate::support::create_acknowledged(&client, "before", 5, &mut acknowledged).await;
    every_master_holds(&cluster, &acknowledged, DEADLINE)
        .await
        .unwrap();

    let mut fillers = Vec::new();
    for disk in &disks {
        fillers.push(tokio::task::block_in_place(|| disk.leave_free(LEFT_MB)));
    }
    cluster.pause(1, true).unwrap();
    let leader = leader_among_the_unpaused(&cluster).await;

    // Every write is refused, before it is proposed, naming the leader and its reserve.
    // (The first attempts may meet the election or the paused master: they are retried.)
    let deadline = Instant::now() + DEADLINE;
    let mut refused = Vec::new();
    let message = loop {
        let name = format!("refused-{}", refused.len());
        let object = Object::try_from(config_map(&name)).unwrap();
        match tokio::time::timeout(Duration::from_secs(20), client.create(object)).await {
            Ok(Err(ClientError::NoSpace { message })) => {
                refused.push(name);
                break message;
            }
            Ok(Ok(_)) => panic!(
                "{name} was acknowledged while the leader's disk is below its reserve:\n{}",
                cluster.log_tail(leader)
            ),
            Ok(Err(ClientError::OutcomeUnknown { .. } | ClientError::NoMasterAvailable { .. }))
            | Err(_) => {}
            Ok(Err(e)) => panic!("create {name}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no write was refused for lack of space"
        );
    };
    assert!(
        message.contains(&format!("member {leader}'s data disk"))
            && message.contains(&format!("reserve of {}", RESERVE_MB * 1024 * 1024)),
        "the refusal names the leader and its reserve: {message}"
    );
    // Refused again, with nothing written: not a one-off.
    for i in 0..3 {
        let name = format!("refused-again-{i}");
        let object = Object::try_from(config_map(&name)).unwrap();
        match client.create(object).await {
            Err(ClientError::NoSpace { .. }) => refused.push(name),
            other => panic!("create {name} below the reserve: {other:?}"),
        }
    }
    for id in [2, 3] {
        if let Ok(status) = cluster.wait_for_exit(id, Duration::from_millis(10)).await {
            panic!(
                "master {id} exited ({status}) with {LEFT_MB} MB free (a quarter of the reserve \
                 is {} MB):\n{}",
                RESERVE_MB / 4,
                cluster.log_tail(id)
            );
        }
    }

    // Space returns: with master 1 still paused, the leader on a small disk takes writes.
    for filler in &fillers {
        std::fs::remove_file(filler).unwrap();
    }
    let deadline = Instant::now() + DEADLINE;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("after-{attempt}");
        let object = Object::try_from(config_map(&name)).unwrap();
        match tokio::time::timeout(Duration::from_secs(20), client.create(object)).await {
            Ok(Ok(created)) => {
                acknowledged.insert(name, created.metadata().uid.clone());
                break;
            }
            Ok(Err(ClientError::NoSpace { .. })) => refused.push(name),
            Ok(Err(ClientError::OutcomeUnknown { .. } | ClientError::NoMasterAvailable { .. }))
            | Err(_) => {}
            Ok(Err(e)) => panic!("create {name}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "no write was taken after space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.pause(1, false).unwrap();
    crate::support::create_acknowledged(&client, "resumed", 3, &mut acknowledged).await;
    every_master_holds(&cluster, &acknowledged, DEADLINE)
        .await
        .unwrap();
    for name in &refused {
        for id in [1, 2, 3] {
            let names = crate::support::config_map_uids_on(&cluster, id)
                .await
                .unwrap_or_default();
            assert!(
                !names.contains_key(name),
                "{name} was refused, yet master {id} holds it"
            );
        }
    }
    drop(cluster);
    drop(disks);
}
