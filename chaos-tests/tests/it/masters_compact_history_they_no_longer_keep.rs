//! Masters compact the store's history beyond their retention on their own, as
//! kube-apiserver has etcd compacted: a watch from a revision that is gone is told to list
//! again (`Expired`), and a watch from a recent revision still sees every change after it.

use std::time::{Duration, Instant};

use chaos_tests::Cluster;
use futures::StreamExt;
use rafter_client::{Client, ListParams, WatchParams};
use rafter_client::{ClientError, WatchEvent, WatchEventType};
use rafter_proto::{parse_object, Kind, Object};

fn config_map(i: usize) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept-{i:03}\ndata: {{i: '{i}'}}\n"
        ),
        "test",
    )
    .unwrap()
}

/// The first item of a watch from `resource_version`, if one comes within a few seconds.
async fn first_event(
    client: &Client,
    resource_version: &str,
) -> Option<Result<WatchEvent, ClientError>> {
    let mut watch = Box::pin(client.watch(
        Kind::ConfigMap,
        Some("default"),
        &WatchParams::default(),
        Some(resource_version),
    ));
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_compacted_history_is_told_to_list_again() {
    let cluster = Cluster::start_with(3, &["--history-retention", "20"])
        .await
        .expect("a three-master cluster starts");
    let (client, _config_dir) = crate::support::library_client(&cluster).await;

    // The revision of the first create: a watch from it starts with the second.
    let old = client
        .create(config_map(0))
        .await
        .unwrap()
        .metadata()
        .resource_version
        .clone();
    assert_ne!(old, "0");
    for i in 1..40 {
        client.create(config_map(i)).await.unwrap();
    }

    // The leader compacts on its next housekeeping round; until then the old history is
    // still there and the watch starts with the second create.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match first_event(&client, &old).await {
            Some(Err(ClientError::Expired { .. })) => break,
            other => assert!(
                Instant::now() < deadline,
                "history from {old} is still served after 40 changes with a retention of 20: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Recent history is kept: a watch from the list's revision sees the next change.
    let recent = client
        .list(Kind::ConfigMap, Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        recent.items.len(),
        40,
        "compaction drops history, not objects"
    );
    let mut watch = Box::pin(client.watch(
        Kind::ConfigMap,
        Some("default"),
        &WatchParams::default(),
        Some(&recent.resource_version),
    ));
    client.create(config_map(40)).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("no error");
    assert_eq!(event.event_type, WatchEventType::Added);
    assert_eq!(event.object.unwrap().metadata().name, "kept-040");
}
