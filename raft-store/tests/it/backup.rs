//! Backup of a running cluster and restore into a new one.

use std::collections::BTreeMap;

use raft_store::restore_backup;
use raft_store::Consistency;
use raft_store::KeyRange;
use raft_store::Node;
use raft_store::NodeConfig;
use raft_store::PutRequest;
use raft_store::RangeRequest;
use raft_store::StoreError;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_of_a_running_cluster_seeds_a_new_cluster_with_the_same_key_space() {
    let c = TestCluster::start(3).await;
    for i in 0..10 {
        c.put(&format!("b/{i}"), &i.to_string()).await;
    }
    let leader = c.wait_for_leader().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.backup");
    let info = leader
        .backup(&file, Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(info.revision, 10);
    c.shutdown_all().await;

    // A damaged copy is refused and creates nothing.
    let damaged = dir.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&damaged, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    assert!(matches!(
        restore_backup(&damaged, target.path()),
        Err(StoreError::Corrupt(_))
    ));
    assert!(!target.path().join("db").exists());

    // Restore on three fresh members and bootstrap them as a new cluster.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        assert_eq!(restore_backup(&file, d.path()).unwrap().revision, 10);
    }
    assert!(
        restore_backup(&file, dirs[0].path()).is_err(),
        "restore refuses a used directory"
    );
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(
            Node::start(NodeConfig::new(i as u64 + 1, d.path()))
                .await
                .unwrap(),
        );
    }
    let members: BTreeMap<u64, String> = nodes
        .iter()
        .map(|n| (n.id(), n.addr().to_string()))
        .collect();
    nodes[0].initialize(members).await.unwrap();
    let leader = eventually("the restored cluster elects a leader", || async {
        nodes.iter().find(|n| n.leader_term().is_some()).cloned()
    })
    .await;
    let r = eventually("the restored cluster serves reads", || async {
        leader
            .range(
                RangeRequest::new(KeyRange::prefix("b/")),
                Consistency::Linearizable,
            )
            .await
            .ok()
    })
    .await;
    assert_eq!(r.count, 10);
    assert_eq!(r.revision, 10);
    let next = leader.put(PutRequest::new("b/new", "x")).await.unwrap();
    assert_eq!(next.revision, 11, "revisions continue from the backup");
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
