//! The checks can fail: every master is switched to the deliberately broken log writer
//! (the `AckBeforeSync` failpoint: entries reported durable before they are, written
//! without the WAL), writes are acknowledged, all masters lose power and restart, and the
//! same check the durability tests use reports exactly the writes acknowledged while
//! broken as lost.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{every_master_holds, library_client, library_create};
use chaos_tests::{Cluster, Failpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durability_check_catches_a_build_that_acknowledges_before_the_fsync() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    crate::support::require_failpoints(&cluster);
    let (client, _config_dir) = library_client(&cluster).await;
    let mut durable = BTreeMap::new();
    for i in 0..5 {
        let name = format!("durable-{i}");
        let uid = library_create(&client, &name, Duration::from_secs(20))
            .await
            .expect("acknowledged");
        durable.insert(name, uid);
    }
    every_master_holds(&cluster, &durable, Duration::from_secs(20))
        .await
        .unwrap();

    let ids: Vec<u64> = cluster.masters().iter().map(|m| m.id).collect();
    for id in &ids {
        cluster
            .set_failpoint(*id, Failpoint::AckBeforeSync, true)
            .unwrap();
    }
    let mut broken = BTreeMap::new();
    for i in 0..5 {
        let name = format!("broken-{i}");
        let uid = library_create(&client, &name, Duration::from_secs(20))
            .await
            .expect("the broken build acknowledges");
        broken.insert(name, uid);
    }
    cluster.kill_all().unwrap();
    for id in &ids {
        cluster
            .set_failpoint(*id, Failpoint::AckBeforeSync, false)
            .unwrap();
    }
    cluster.start_stopped().unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader after the restart");

    every_master_holds(&cluster, &durable, Duration::from_secs(20))
        .await
        .expect("what was synced survives");
    let mut all = durable.clone();
    all.extend(broken.clone());
    let report = every_master_holds(&cluster, &all, Duration::from_secs(5))
        .await
        .expect_err("the check reports the writes the broken build lost");
    for name in durable.keys() {
        assert!(!report.contains(&format!("\"{name}\"")), "{report}");
    }
    assert!(
        broken
            .keys()
            .any(|name| report.contains(&format!("\"{name}\""))),
        "{report}"
    );
}
