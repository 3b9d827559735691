//! The hollow backend keeps the runtime contract without running anything.

use std::sync::Arc;
use std::time::Duration;

use node_agent::{ContainerState, HollowConfig, HollowRuntime};

use crate::harness::{shell, wait_state, Runtime, TestPod};

#[tokio::test]
async fn a_thousand_hollow_pods_run_without_processes() {
    let hollow = HollowRuntime::new(HollowConfig {
        start_delay: Duration::from_millis(20),
        ..HollowConfig::default()
    });
    let rt: Runtime = Arc::new(hollow.clone());
    let mut ids = Vec::new();
    let mut pods = Vec::new();
    for _ in 0..1000 {
        let pod = TestPod::start(&rt, "hollow").await;
        ids.push(pod.run(&rt, shell("app", "sleep 1")).await);
        pods.push(pod);
    }
    let last = ids.last().unwrap().clone();
    wait_state(&rt, &last, ContainerState::Running).await;
    let running = rt
        .list_containers(None)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .count();
    assert_eq!(running, 1000);

    hollow.exit_container(&ids[0], 1).unwrap();
    let st = wait_state(&rt, &ids[0], ContainerState::Exited).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (Some(1), "Error"));
    for pod in pods {
        pod.cleanup(&rt).await;
    }
    assert!(rt.list_sandboxes().await.unwrap().is_empty());
}
