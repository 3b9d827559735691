//! A stream of creates goes on while the leader is killed with SIGKILL and later restarted;
//! every create a master acknowledged is present afterwards, on every master.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{config_map_names_on, create_anywhere};
use chaos_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_leader_kills() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let mut acknowledged = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..90 {
        if i == 30 || i == 60 {
            let leader = cluster
                .wait_for_leader(Duration::from_secs(20))
                .await
                .expect("a leader");
            cluster.kill(leader).expect("kill -9 the leader");
            if i == 60 {
                // Bring the first victim back: it must catch up from its log.
                let stopped: Vec<u64> = cluster
                    .masters()
                    .iter()
                    .filter(|m| !m.is_running())
                    .map(|m| m.id)
                    .collect();
                for id in stopped.into_iter().filter(|id| *id != leader) {
                    cluster.restart(id).expect("restart");
                }
            }
        }
        let name = format!("cm-{i}");
        match create_anywhere(&cluster, &name, deadline).await {
            Some(_) => {
                acknowledged.insert(name);
            }
            None => panic!(
                "create {name} was never acknowledged; leader logs:\n{}",
                cluster.log_tail(1)
            ),
        }
    }
    // Restart everything that is down and check every master holds every acknowledged write.
    let stopped: Vec<u64> = cluster
        .masters()
        .iter()
        .filter(|m| !m.is_running())
        .map(|m| m.id)
        .collect();
    for id in stopped {
        cluster.restart(id).expect("restart");
    }
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader after restarts");
    for id in 1..=3 {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let names = config_map_names_on(&cluster, id).await.unwrap_or_default();
            if acknowledged.is_subset(&names) {
                break;
            }
            assert!(
                Instant::now() < until,
                "master {id} lacks acknowledged writes: {:?}\n{}",
                acknowledged.difference(&names).collect::<Vec<_>>(),
                cluster.log_tail(id)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
