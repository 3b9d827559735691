use std::path::PathBuf;

use super::*;
use crate::hollow::{HollowConfig, HollowRuntime};
use crate::spec::{ContainerConfig, SandboxConfig};

const MINE: &str = "io.rafter.test.mine";

fn sandbox(uid: &str, mine: bool) -> SandboxConfig {
    let mut labels = BTreeMap::new();
    if mine {
        labels.insert(MINE.to_owned(), "yes".to_owned());
    }
    SandboxConfig {
        pod_uid: uid.to_owned(),
        pod_name: format!("pod-{uid}"),
        namespace: "default".into(),
        attempt: 0,
        hostname: format!("pod-{uid}"),
        log_dir: PathBuf::from("/nonexistent"),
        host_network: false,
        labels,
        dns: None,
    }
}

fn container() -> ContainerConfig {
    ContainerConfig {
        name: "app".into(),
        image: "busybox".into(),
        ..Default::default()
    }
}

/// A hollow runtime whose started containers run at once.
fn hollow() -> Arc<HollowRuntime> {
    Arc::new(HollowRuntime::new(HollowConfig {
        start_delay: Duration::ZERO,
        ..Default::default()
    }))
}

fn relister(runtime: &Arc<HollowRuntime>) -> Relister {
    let rt: Arc<dyn ContainerRuntime> = runtime.clone();
    Relister::new(rt, |labels| labels.contains_key(MINE))
}

/// Runs a pod with one started container; its sandbox and container ids.
async fn run_pod(rt: &HollowRuntime, uid: &str, mine: bool) -> (String, String) {
    let config = sandbox(uid, mine);
    let sb = rt.run_sandbox(&config).await.unwrap();
    let id = rt
        .create_container(&sb.id, &container(), &config)
        .await
        .unwrap();
    rt.start_container(&id).await.unwrap();
    (sb.id, id)
}

fn sorted(mut uids: Vec<String>) -> Vec<String> {
    uids.sort();
    uids
}

#[tokio::test]
async fn only_pods_whose_containers_changed_are_reported_and_other_agents_pods_never() {
    let rt = hollow();
    let (_, a_container) = run_pod(&rt, "a", true).await;
    let (b_sandbox, _) = run_pod(&rt, "b", true).await;
    let (_, other_container) = run_pod(&rt, "other", false).await;
    let mut relister = relister(&rt);

    // The first listing reports every pod of this agent's: the workers may have missed
    // anything before it.
    assert_eq!(sorted(relister.relist().await.unwrap()), ["a", "b"]);
    assert!(
        relister.relist().await.unwrap().is_empty(),
        "nothing changed"
    );

    // A container exits on its own: only its pod.
    rt.exit_container(&a_container, 1).unwrap();
    rt.exit_container(&other_container, 1).unwrap();
    assert_eq!(relister.relist().await.unwrap(), ["a"]);
    assert!(relister.relist().await.unwrap().is_empty());

    // A new pod, and a sandbox stopped under a running pod.
    run_pod(&rt, "c", true).await;
    rt.stop_sandbox(&b_sandbox).await.unwrap();
    assert_eq!(sorted(relister.relist().await.unwrap()), ["b", "c"]);

    // A pod whose sandbox is removed is reported once as gone.
    rt.remove_sandbox(&b_sandbox).await.unwrap();
    assert_eq!(relister.relist().await.unwrap(), ["b"]);
    assert!(relister.relist().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_replaced_container_changes_its_pod_even_in_the_same_state() {
    let rt = hollow();
    let (sb, first) = run_pod(&rt, "a", true).await;
    let mut relister = relister(&rt);
    relister.relist().await.unwrap();

    rt.exit_container(&first, 0).unwrap();
    rt.remove_container(&first).await.unwrap();
    let config = sandbox("a", true);
    let second = rt
        .create_container(&sb, &container(), &config)
        .await
        .unwrap();
    rt.start_container(&second).await.unwrap();
    assert_eq!(relister.relist().await.unwrap(), ["a"]);
}

#[tokio::test]
async fn the_loop_sends_changes_and_stops_on_shutdown() {
    let rt = hollow();
    let (_, id) = run_pod(&rt, "a", true).await;
    let (tx, mut rx) = mpsc::channel(4);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(relister(&rt).run(Duration::from_millis(20), tx, stopped));

    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(first.unwrap().unwrap(), ["a"]);
    rt.exit_container(&id, 2).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(next.unwrap().unwrap(), ["a"]);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the relister stops on shutdown")
        .unwrap();
}
