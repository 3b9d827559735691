//! Every master is killed with SIGKILL at once (a power cut) while writes go on, then all
//! are started again on their data dirs: they elect a leader, and every write any of them
//! acknowledged is there, with the uid its creator was told.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{every_master_holds, library_client, library_create};
use chaos_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_full_restart_of_every_master() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let (client, _config_dir) = library_client(&cluster).await;
    let mut acknowledged = BTreeMap::new();
    // Writes in flight when the power goes: some acknowledged, some not.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            for i in 0..40 {
                let name = format!("cm-{i}");
                if let Some(uid) = library_create(&client, &name, Duration::from_secs(5)).await {
                    acknowledged.insert(name, uid);
                }
            }
            acknowledged
        })
    };
    // Cut power once some writes are acknowledged.
    crate::support::wait_for_config_maps(&cluster, 10).await;
    cluster.kill_all().unwrap();
    cluster.start_stopped().unwrap();
    acknowledged.extend(writer.await.unwrap());
    assert!(acknowledged.len() >= 10, "{acknowledged:?}");
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader after the full restart");
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
}
