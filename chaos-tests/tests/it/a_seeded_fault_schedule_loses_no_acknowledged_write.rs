//! A writer creates ConfigMaps through the client library (its traffic through the client
//! proxies) while a schedule drawn from one seed injects a fault per round into a proxied
//! three-master cluster: kill -9 of the leader, the leader cut off both ways or one way,
//! the leader paused past the election timeout, the leader's WAL syncs failing (EIO), a
//! full restart of every master, delayed peer links. After each round the writer must get
//! a write acknowledged again, and a ReplicaSet created right after the fault must get its
//! Pod from the controllers of whichever master leads then; at the end every acknowledged
//! write is on every master.
//!
//! `RAFTER_CHAOS_SEED` replays a schedule, `RAFTER_CHAOS_ROUNDS` lengthens it (a soak);
//! a run never has fewer than 20 leader kills, 2 partitions, 1 pause, 1 disk fault and 1
//! full restart. The figures (time from each fault to the first acknowledged write and to
//! the controllers acting again, by kind, and the longest run of failed requests) are
//! printed at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    controllers_act_after, every_master_holds, first_ack_after, library_client, proxied_cluster,
    require_failpoints, spawn_writer,
};
use chaos_tests::proxy::{Direction, Fault};
use chaos_tests::{schedule, Failpoint};
use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    KillLeader,
    PartitionLeader,
    PartitionLeaderOneWay,
    PauseLeader,
    WalSyncEio,
    FullRestart,
    DelayLinks,
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_fault_schedule_loses_no_acknowledged_write() {
    let seed = schedule::seed();
    let _report = schedule::SeedReport(seed);
    let mut rng = schedule::rng(seed);
    let rounds = schedule::rounds(26);
    let plan = schedule::draw(
        &mut rng,
        rounds,
        &[
            (Kind::KillLeader, 20),
            (Kind::PartitionLeader, 1),
            (Kind::PartitionLeaderOneWay, 1),
            (Kind::PauseLeader, 1),
            (Kind::WalSyncEio, 1),
            (Kind::FullRestart, 1),
            (Kind::DelayLinks, 1),
        ],
        &[
            (Kind::KillLeader, 6),
            (Kind::PartitionLeader, 2),
            (Kind::PartitionLeaderOneWay, 1),
            (Kind::PauseLeader, 2),
            (Kind::WalSyncEio, 1),
            (Kind::FullRestart, 1),
            (Kind::DelayLinks, 1),
        ],
    );
    eprintln!("schedule of {} rounds: {plan:?}", plan.len());

    let mut cluster = proxied_cluster(seed, 0).await;
    require_failpoints(&cluster);
    let (client, _config_dir) = library_client(&cluster).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (log, writer) = spawn_writer(client.clone(), stop.clone());

    let mut failover: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    let mut acting: BTreeMap<Kind, Vec<Duration>> = BTreeMap::new();
    for (round, kind) in plan.iter().enumerate() {
        let leader = cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("round {round} ({kind:?}): {e}"));
        let others: Vec<u64> = cluster
            .masters()
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != leader)
            .collect();
        let at = Instant::now();
        let within = Duration::from_secs(40);
        // Started right after the fault is injected: a ReplicaSet created then, timed to
        // the first Pod the controllers make for it.
        let start_acting = || {
            let client = client.clone();
            let name = format!("acting-{round}");
            tokio::spawn(async move { controllers_act_after(&client, at, &name).await })
        };
        let after = match kind {
            Kind::KillLeader => {
                cluster.kill(leader).unwrap();
                let acting = start_acting();
                let after = first_ack_after(&log, at, within).await;
                cluster.restart(leader).unwrap();
                (after, acting)
            }
            Kind::PartitionLeader | Kind::PartitionLeaderOneWay => {
                if *kind == Kind::PartitionLeader {
                    cluster.isolate(leader).unwrap();
                } else {
                    for other in &others {
                        let out = cluster.peer_link(leader, *other).unwrap();
                        out.set(Direction::ToUpstream, Fault::BlackHole);
                        let inbound = cluster.peer_link(*other, leader).unwrap();
                        inbound.set(Direction::FromUpstream, Fault::BlackHole);
                    }
                }
                let acting = start_acting();
                let after = first_ack_after(&log, at, within).await;
                // Held past several election timeouts before healing.
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.heal_network();
                (after, acting)
            }
            Kind::PauseLeader => {
                cluster.pause(leader, true).unwrap();
                let acting = start_acting();
                let after = first_ack_after(&log, at, within).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.pause(leader, false).unwrap();
                (after, acting)
            }
            Kind::WalSyncEio => {
                cluster
                    .set_failpoint(leader, Failpoint::WalSyncEio, true)
                    .unwrap();
                let acting = start_acting();
                let status = cluster
                    .wait_for_exit(leader, within)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert!(!status.success(), "master {leader} exited cleanly on EIO");
                let after = first_ack_after(&log, at, within).await;
                cluster
                    .set_failpoint(leader, Failpoint::WalSyncEio, false)
                    .unwrap();
                cluster.restart(leader).unwrap();
                (after, acting)
            }
            Kind::FullRestart => {
                cluster.kill_all().unwrap();
                let acting = start_acting();
                cluster.start_stopped().unwrap();
                (first_ack_after(&log, at, within).await, acting)
            }
            Kind::DelayLinks => {
                // Below half the election timeout (150-300 ms at a 50 ms heartbeat): a
                // round trip longer than the election timeout keeps every election from
                // finishing (see docs/chaos.md).
                let delay = Duration::from_millis(rng.gen_range(5..60));
                for from in 1..=3 {
                    for to in (1..=3).filter(|to| *to != from) {
                        if let Some(link) = cluster.peer_link(from, to) {
                            link.set(Direction::Both, Fault::Delay(delay));
                        }
                    }
                }
                let acting = start_acting();
                let after = first_ack_after(&log, at, within).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.heal_network();
                (after, acting)
            }
        };
        let (after, acting_task) = after;
        let acted = acting_task
            .await
            .unwrap_or_else(|e| panic!("round {round} ({kind:?}): {e}"));
        eprintln!(
            "round {round}: {kind:?} of leader {leader}: first write acknowledged after {after:?}, controllers acting after {acted:?}"
        );
        failover.entry(*kind).or_default().push(after);
        acting.entry(*kind).or_default().push(acted);
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let attempts = log.lock().unwrap().clone();
    let acknowledged: BTreeMap<String, String> = attempts
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.uid.clone()?)))
        .collect();
    assert!(
        acknowledged.len() >= plan.len(),
        "only {} writes acknowledged",
        acknowledged.len()
    );
    cluster.start_stopped().unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(60))
        .await
        .unwrap();

    // The figures.
    let (mut run, mut longest, mut run_started, mut longest_time) =
        (0usize, 0usize, None, Duration::ZERO);
    for attempt in &attempts {
        if attempt.uid.is_some() {
            run = 0;
            run_started = None;
        } else {
            run += 1;
            let since = *run_started.get_or_insert(attempt.started);
            longest = longest.max(run);
            longest_time = longest_time.max(attempt.ended.duration_since(since));
        }
    }
    eprintln!(
        "seed {seed}: {} rounds, {} writes sent, {} acknowledged; longest run of failed requests: {longest} ({longest_time:?})",
        plan.len(),
        attempts.len(),
        acknowledged.len()
    );
    for (what, figures) in [
        ("the first acknowledged write", &mut failover),
        (
            "the controllers acting again (a ReplicaSet created after the fault → its first Pod)",
            &mut acting,
        ),
    ] {
        eprintln!("fault kind: rounds, p50, p99, max time to {what}");
        for (kind, times) in figures.iter_mut() {
            times.sort();
            eprintln!(
                "{kind:?}: {}, {:?}, {:?}, {:?}",
                times.len(),
                percentile(times, 50.0),
                percentile(times, 99.0),
                times[times.len() - 1]
            );
        }
    }
}
