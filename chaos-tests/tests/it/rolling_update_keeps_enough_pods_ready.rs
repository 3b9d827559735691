//! A rolling update on real masters and agents (hollow runtime: pods report Running at
//! once, nothing runs): from the pod watch stream, the number of Ready pods of the
//! Deployment never drops below replicas − maxUnavailable while the image changes, and
//! the rollout ends with every replica on the new image.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::support::Agents;
use std::time::{Duration, Instant};

use chaos_tests::{rafter_binary, Cluster};
use futures::StreamExt;
use rafter_client::{Client, ListParams, ResolvedConfig, WatchParams};
use rafter_client::{PatchType, WatchEventType};
use rafter_proto::{parse_object, Kind, Object};

const REPLICAS: usize = 6;
const MAX_UNAVAILABLE: usize = 1;

fn ready_on(object: &Object, image: &str) -> Option<bool> {
    let Object::Pod(pod) = object else {
        return None;
    };
    let spec = pod.spec.as_ref()?;
    let ready = pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    });
    let terminating = pod
        .metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some());
    Some(ready && !terminating && (image.is_empty() || spec.containers[0].image == image))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_never_drops_below_the_minimum_of_ready_pods() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let mut agents = Agents(Vec::new());
    for name in ["hollow-1", "hollow-2"] {
        let child = Command::new(rafter_binary())
            .args([
                "agent",
                "--name",
                name,
                "--runtime",
                "hollow",
                "--lease-interval",
                "2s",
            ])
            .arg("--kubeconfig")
            .arg(&config)
            .arg("--data-dir")
            .arg(work.path().join(name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        agents.0.push(child);
    }
    let client = Client::connect(ResolvedConfig::load(Some(&config), None).unwrap())
        .await
        .unwrap();
    let deployment = parse_object(
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: roll}}\nspec:\n  replicas: {REPLICAS}\n  selector: {{matchLabels: {{app: roll}}}}\n  strategy:\n    rollingUpdate: {{maxUnavailable: {MAX_UNAVAILABLE}, maxSurge: 1}}\n  template:\n    metadata: {{labels: {{app: roll}}}}\n    spec:\n      containers:\n      - {{name: c, image: 'docker.io/local/busybox:1', resources: {{requests: {{cpu: 10m, memory: 8Mi}}}}}}\n"
        ),
        "test",
    )
    .unwrap();
    client.create(deployment).await.unwrap();
    let selector = ListParams {
        label_selector: "app=roll".into(),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let start = loop {
        let list = client
            .list(Kind::Pod, Some("default"), &selector)
            .await
            .unwrap();
        let ready = list
            .items
            .iter()
            .filter(|p| ready_on(p, "") == Some(true))
            .count();
        if ready == REPLICAS && list.items.len() == REPLICAS {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the first rollout did not converge: {ready} ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Follow every pod change from the listed revision on, and change the image.
    let params = WatchParams {
        label_selector: "app=roll".into(),
        ..Default::default()
    };
    let mut watch = Box::pin(client.watch(
        Kind::Pod,
        Some("default"),
        &params,
        Some(&start.resource_version),
    ));
    let mut ready: BTreeMap<String, bool> = start
        .items
        .iter()
        .map(|p| (p.metadata().name.clone(), ready_on(p, "") == Some(true)))
        .collect();
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "docker.io/local/pause:1"}]}}}});
    client
        .patch(
            Kind::Deployment,
            "default",
            "roll",
            PatchType::StrategicMerge,
            &patch,
        )
        .await
        .unwrap();

    let mut lowest = REPLICAS;
    let mut on_new_image: BTreeMap<String, bool> = BTreeMap::new();
    while on_new_image.values().filter(|r| **r).count() < REPLICAS
        || ready.values().filter(|r| **r).count() != REPLICAS
    {
        let event = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            watch.next(),
        )
        .await
        .expect("the rolling update finishes in time")
        .expect("the watch goes on")
        .expect("no watch error");
        let object = event.object.expect("pod events carry the pod");
        let name = object.metadata().name.clone();
        if event.event_type == WatchEventType::Deleted {
            ready.remove(&name);
            on_new_image.remove(&name);
        } else {
            ready.insert(name.clone(), ready_on(&object, "") == Some(true));
            on_new_image.insert(
                name,
                ready_on(&object, "docker.io/local/pause:1") == Some(true),
            );
        }
        let now_ready = ready.values().filter(|r| **r).count();
        lowest = lowest.min(now_ready);
        assert!(
            now_ready >= REPLICAS - MAX_UNAVAILABLE,
            "only {now_ready} pods Ready during the rollout (minimum {})",
            REPLICAS - MAX_UNAVAILABLE
        );
    }
    println!("lowest number of Ready pods during the rollout: {lowest} of {REPLICAS}");
    let sets = client
        .list(
            Kind::ReplicaSet,
            Some("default"),
            &ListParams {
                label_selector: "app=roll".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sets.items.len(), 2, "one ReplicaSet per template");
}
