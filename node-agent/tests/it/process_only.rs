//! What only the process backend does: reaping the process groups a crashed agent left.

use std::sync::Arc;

use node_agent::{ContainerRuntime, ContainerState, ProcessConfig, ProcessRuntime};

use crate::harness::{eventually, shell, wait_state, Runtime, TestPod};

/// Process backend only: a crashed agent's containers are reaped by the next one.
#[tokio::test]
async fn a_restarted_process_agent_reaps_what_a_crashed_one_left_running() {
    let state = tempfile::tempdir().unwrap();
    let config = ProcessConfig {
        state_dir: Some(state.path().to_owned()),
        ..ProcessConfig::default()
    };
    let crashed = ProcessRuntime::new(config.clone());
    let rt: Runtime = Arc::new(crashed.clone());
    let pod = TestPod::start(&rt, "reap").await;
    let id = pod.run(&rt, shell("app", "exec sleep 300")).await;
    wait_state(&rt, &id, ContainerState::Running).await;
    let note = eventually("the pgid note", || async {
        let text = tokio::fs::read_to_string(state.path().join(format!("{id}.pgid")))
            .await
            .ok()?;
        text.split_whitespace().next()?.parse::<i32>().ok()
    })
    .await;
    // A crash: nothing runs the runtime's drop (which would kill its children).
    std::mem::forget(pod);
    std::mem::forget(rt);
    std::mem::forget(crashed);

    let next = ProcessRuntime::new(config);
    assert_eq!(next.reap_orphans().await.unwrap(), 1);
    eventually("the orphan to die", || async {
        // Killed, and a zombie until its (leaked) parent handle would reap it.
        let stat = tokio::fs::read_to_string(format!("/proc/{note}/stat")).await;
        let dead = match stat {
            Err(_) => true,
            Ok(s) => s[s.rfind(')').unwrap() + 2..].starts_with('Z'),
        };
        dead.then_some(())
    })
    .await;
    assert_eq!(next.reap_orphans().await.unwrap(), 0);
    assert!(next.list_containers(None).await.unwrap().is_empty());
}
