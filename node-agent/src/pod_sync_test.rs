use std::collections::BTreeMap;
use std::path::PathBuf;

use rafter_proto::v1::{ObjectMeta, PodSpec};

use super::*;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
}

fn pod(policy: &str, init: &[&str], app: &[&str]) -> Pod {
    let c = |n: &&str| Container {
        name: n.to_string(),
        image: "busybox".into(),
        ..Default::default()
    };
    Pod {
        metadata: Some(ObjectMeta {
            name: "p".into(),
            namespace: "default".into(),
            uid: "u".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: policy.into(),
            init_containers: init.iter().map(c).collect(),
            containers: app.iter().map(c).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sandbox() -> Sandbox {
    Sandbox {
        id: "sb".into(),
        pod_uid: "u".into(),
        pod_name: "p".into(),
        namespace: "default".into(),
        attempt: 0,
        state: SandboxState::Ready,
        ip: Some("10.88.0.5".into()),
        created_at: t(0),
        labels: BTreeMap::new(),
    }
}

fn container(
    name: &str,
    attempt: u32,
    state: ContainerState,
    exit: Option<i32>,
    finished: u64,
) -> ContainerStatus {
    ContainerStatus {
        id: format!("{name}-{attempt}"),
        name: name.into(),
        attempt,
        image: "busybox".into(),
        image_id: "sha256:x".into(),
        state,
        exit_code: exit,
        reason: match exit {
            Some(0) => "Completed".into(),
            Some(_) => "Error".into(),
            None => String::new(),
        },
        message: String::new(),
        created_at: t(finished.saturating_sub(1)),
        started_at: Some(t(finished.saturating_sub(1))),
        finished_at: exit.map(|_| t(finished)),
        log_path: PathBuf::new(),
        labels: BTreeMap::new(),
    }
}

fn observed(containers: Vec<ContainerStatus>) -> Observed {
    let mut map: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
    for c in containers {
        map.entry(c.name.clone()).or_default().push(c);
    }
    for list in map.values_mut() {
        list.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    }
    Observed {
        sandbox: Some(sandbox()),
        old_sandboxes: vec![],
        containers: map,
    }
}

fn policy() -> BackoffPolicy {
    BackoffPolicy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(300),
    }
}

fn run(pod: &Pod, obs: &Observed, now: u64) -> Plan {
    plan(
        pod,
        obs,
        &HashMap::new(),
        &HashMap::new(),
        &policy(),
        t(now),
    )
}

#[test]
fn back_off_doubles_from_the_second_restart_up_to_the_cap() {
    let p = policy();
    assert_eq!(p.delay(0), Duration::ZERO);
    assert_eq!(p.delay(1), Duration::from_secs(10));
    assert_eq!(p.delay(2), Duration::from_secs(20));
    assert_eq!(p.delay(6), Duration::from_secs(300));
    assert_eq!(p.delay(60), Duration::from_secs(300));
}

#[test]
fn a_pod_without_a_sandbox_gets_one_before_any_container() {
    let p = pod("Always", &[], &["app"]);
    let obs = Observed::default();
    let plan = run(&p, &obs, 0);
    assert_eq!(plan.actions, vec![Action::RunSandbox { attempt: 0 }]);
    assert_eq!(plan.phase, "Pending");
}

#[test]
fn init_containers_run_one_at_a_time_before_the_app() {
    let p = pod("Always", &["a", "b"], &["app"]);
    let plan = run(&p, &observed(vec![]), 0);
    assert_eq!(
        plan.actions,
        vec![Action::StartContainer {
            init: true,
            index: 0,
            attempt: 0
        }]
    );
    assert_eq!(plan.init["b"], Decision::NotYet);
    assert_eq!(plan.app["app"], Decision::NotYet);

    let obs = observed(vec![container("a", 0, ContainerState::Running, None, 1)]);
    assert!(run(&p, &obs, 2).actions.is_empty());

    let obs = observed(vec![container("a", 0, ContainerState::Exited, Some(0), 1)]);
    assert_eq!(
        run(&p, &obs, 2).actions,
        vec![Action::StartContainer {
            init: true,
            index: 1,
            attempt: 0
        }]
    );

    let obs = observed(vec![
        container("a", 0, ContainerState::Exited, Some(0), 1),
        container("b", 0, ContainerState::Exited, Some(0), 2),
    ]);
    let plan = run(&p, &obs, 3);
    assert!(plan.initialized);
    assert_eq!(
        plan.actions,
        vec![Action::StartContainer {
            init: false,
            index: 0,
            attempt: 0
        }]
    );
}

#[test]
fn a_failing_init_container_fails_the_pod_only_under_never() {
    let obs = observed(vec![container("a", 0, ContainerState::Exited, Some(1), 1)]);
    let never = run(&pod("Never", &["a"], &["app"]), &obs, 2);
    assert_eq!(never.phase, "Failed");
    assert!(never
        .actions
        .iter()
        .all(|a| !matches!(a, Action::StartContainer { .. })));
    let always = run(&pod("Always", &["a"], &["app"]), &obs, 2);
    assert_eq!(always.phase, "Pending");
    assert_eq!(
        always.actions,
        vec![Action::StartContainer {
            init: true,
            index: 0,
            attempt: 1
        }]
    );
}

#[test]
fn a_crashing_container_restarts_after_a_growing_back_off() {
    let p = pod("Always", &[], &["app"]);
    let obs = observed(vec![
        container("app", 0, ContainerState::Exited, Some(1), 1),
        container("app", 1, ContainerState::Exited, Some(1), 5),
    ]);
    let plan = run(&p, &obs, 6);
    assert!(matches!(plan.app["app"], Decision::BackOff { .. }));
    assert_eq!(plan.wake_at, Some(t(15)));
    assert_eq!(plan.phase, "Running");
    let plan = run(&p, &obs, 15);
    assert_eq!(
        plan.actions,
        vec![Action::StartContainer {
            init: false,
            index: 0,
            attempt: 2
        }]
    );
}

#[test]
fn restart_policy_decides_whether_an_exit_restarts() {
    let ok = observed(vec![container(
        "app",
        0,
        ContainerState::Exited,
        Some(0),
        1,
    )]);
    let bad = observed(vec![container(
        "app",
        0,
        ContainerState::Exited,
        Some(3),
        1,
    )]);
    assert_eq!(
        run(&pod("OnFailure", &[], &["app"]), &ok, 2).phase,
        "Succeeded"
    );
    assert_eq!(run(&pod("Never", &[], &["app"]), &bad, 2).phase, "Failed");
    assert_eq!(
        run(&pod("OnFailure", &[], &["app"]), &bad, 2).actions,
        vec![Action::StartContainer {
            init: false,
            index: 0,
            attempt: 1
        }]
    );
    assert_eq!(
        run(&pod("Always", &[], &["app"]), &ok, 2).actions,
        vec![Action::StartContainer {
            init: false,
            index: 0,
            attempt: 1
        }]
    );
    let done = run(&pod("Never", &[], &["app"]), &ok, 2);
    assert_eq!(done.actions, vec![Action::StopSandbox { id: "sb".into() }]);
}

#[test]
fn a_failed_liveness_probe_stops_the_running_container() {
    let p = pod("Always", &[], &["app"]);
    let obs = observed(vec![container("app", 0, ContainerState::Running, None, 1)]);
    let unhealthy = HashMap::from([("app-0".to_string(), "liveness probe failed")]);
    let plan = plan(&p, &obs, &unhealthy, &HashMap::new(), &policy(), t(3));
    assert_eq!(
        plan.actions,
        vec![Action::StopContainer {
            id: "app-0".into(),
            reason: "liveness probe failed"
        }]
    );
}

#[test]
fn a_failed_startup_probe_stops_the_container_and_the_restart_policy_decides_what_follows() {
    let obs = observed(vec![container("app", 0, ContainerState::Running, None, 1)]);
    let unhealthy = HashMap::from([("app-0".to_string(), "startup probe failed")]);
    let stop = plan(
        &pod("Always", &[], &["app"]),
        &obs,
        &unhealthy,
        &HashMap::new(),
        &policy(),
        t(3),
    );
    assert_eq!(
        stop.actions,
        vec![Action::StopContainer {
            id: "app-0".into(),
            reason: "startup probe failed"
        }]
    );
    // Killed (137): Always starts attempt 1, Never leaves the pod Failed.
    let killed = observed(vec![container(
        "app",
        0,
        ContainerState::Exited,
        Some(137),
        4,
    )]);
    let again = run(&pod("Always", &[], &["app"]), &killed, 5);
    assert!(again.actions.contains(&Action::StartContainer {
        init: false,
        index: 0,
        attempt: 1
    }));
    let never = run(&pod("Never", &[], &["app"]), &killed, 5);
    assert_eq!(never.phase, "Failed");
}

#[test]
fn old_attempts_beyond_the_previous_one_are_removed() {
    let p = pod("Always", &[], &["app"]);
    let obs = observed(vec![
        container("app", 0, ContainerState::Exited, Some(1), 1),
        container("app", 1, ContainerState::Exited, Some(1), 2),
        container("app", 2, ContainerState::Running, None, 3),
    ]);
    assert_eq!(
        run(&p, &obs, 4).actions,
        vec![Action::RemoveContainer { id: "app-0".into() }]
    );
}

#[test]
fn status_shows_crash_loop_back_off_with_the_last_termination() {
    let p = pod("Always", &[], &["app"]);
    let obs = observed(vec![
        container("app", 0, ContainerState::Exited, Some(1), 1),
        container("app", 1, ContainerState::Exited, Some(2), 5),
    ]);
    let plan = run(&p, &obs, 6);
    let status = pod_status(&StatusInputs {
        pod: &p,
        observed: &obs,
        plan: &plan,
        fresh: &HashMap::new(),
        ready: &HashSet::new(),
        not_started: &HashSet::new(),
        backend: "process",
        host_ip: "10.0.0.1",
        now: t(6),
    });
    let c = &status.container_statuses[0];
    assert_eq!(c.restart_count, 1);
    let waiting = c.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason, "CrashLoopBackOff");
    assert!(
        waiting.message.contains("back-off 10s"),
        "{}",
        waiting.message
    );
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_str()), (2, "Error"));
    assert_eq!(status.pod_ip, "10.88.0.5");
    assert_eq!(status.phase, "Running");
}

#[test]
fn a_running_ready_pod_has_all_conditions_true_and_keeps_transition_times() {
    let mut p = pod("Always", &[], &["app"]);
    let obs = observed(vec![container("app", 0, ContainerState::Running, None, 1)]);
    let plan = run(&p, &obs, 2);
    let ready = HashSet::from(["app-0".to_string()]);
    let inputs = |p: &Pod, now| {
        pod_status(&StatusInputs {
            pod: p,
            observed: &obs,
            plan: &plan,
            fresh: &HashMap::new(),
            ready: &ready,
            not_started: &HashSet::new(),
            backend: "containerd",
            host_ip: "10.0.0.1",
            now: t(now),
        })
    };
    let first = inputs(&p, 2);
    assert!(
        first.conditions.iter().all(|c| c.status == "True"),
        "{:?}",
        first.conditions
    );
    assert!(first.container_statuses[0].ready);
    assert_eq!(
        first.container_statuses[0].container_id,
        "containerd://app-0"
    );
    p.status = Some(first.clone());
    let again = inputs(&p, 9);
    assert_eq!(again, first, "nothing changed, so nothing is written");
}

#[test]
fn an_image_that_failed_to_pull_backs_off_as_image_pull_back_off() {
    let p = pod("Always", &[], &["app"]);
    let blocked = HashMap::from([(
        "app".to_string(),
        Blocked {
            reason: "ErrImagePull".into(),
            message: "image not found".into(),
            failures: 1,
            until: t(10),
        },
    )]);
    let plan = plan(
        &p,
        &observed(vec![]),
        &HashMap::new(),
        &blocked,
        &policy(),
        t(5),
    );
    assert!(plan.actions.is_empty());
    assert!(
        matches!(&plan.app["app"], Decision::Blocked { reason, .. } if reason == "ImagePullBackOff")
    );
    assert_eq!(plan.wake_at, Some(t(10)));
}

#[test]
fn a_container_in_an_unknown_state_is_waited_for_not_restarted() {
    let p = pod("Always", &[], &["app"]);
    let obs = observed(vec![container("app", 1, ContainerState::Unknown, None, 1)]);
    let plan = run(&p, &obs, 2);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.app["app"], Decision::Running);
}

#[test]
fn status_after_a_restart_shows_the_new_attempt_and_the_previous_termination() {
    // The plan (made before the restart) said Start; the runtime now shows the new attempt.
    let p = pod("Always", &[], &["app"]);
    let before = observed(vec![container(
        "app",
        0,
        ContainerState::Exited,
        Some(137),
        1,
    )]);
    let plan = run(&p, &before, 2);
    let after = observed(vec![
        container("app", 0, ContainerState::Exited, Some(137), 1),
        container("app", 1, ContainerState::Created, None, 3),
    ]);
    let status = pod_status(&StatusInputs {
        pod: &p,
        observed: &after,
        plan: &plan,
        fresh: &HashMap::new(),
        ready: &HashSet::new(),
        not_started: &HashSet::new(),
        backend: "containerd",
        host_ip: "10.0.0.1",
        now: t(3),
    });
    let c = &status.container_statuses[0];
    assert_eq!(c.restart_count, 1);
    assert_eq!(c.container_id, "containerd://app-1");
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (last.exit_code, last.container_id.as_str()),
        (137, "containerd://app-0")
    );
}
