//! The node agent end to end: a gateway over the in-memory store, an agent on a real
//! backend (process always; containerd when `RAFTER_CONTAINERD_SOCK` is set), pods
//! created through the API and watched until their status says what the test expects.

use base64::Engine;
use futures::StreamExt;
use node_agent::{read_logs, LogRequest, MIRROR_ANNOTATION};
use rafter_client::DeleteOptions;
use rafter_proto::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
    ContainerStatus, EnvFromSource, EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector,
    ObjectMeta, Pod, PodSpec, Probe, Secret, SecretKeySelector, SecretVolumeSource, Volume,
    VolumeMount,
};
use rafter_proto::{Kind, Object};

use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, Runtime, BUSYBOX};

pub(crate) fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: BUSYBOX.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

pub(crate) fn pod(name: &str, node: &str, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_name: node.into(),
            containers,
            restart_policy: "Always".into(),
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn uid(p: &Pod) -> String {
    p.metadata.as_ref().unwrap().uid.clone()
}

pub(crate) fn container<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .iter()
        .find(|c| c.name == name)
}

pub(crate) fn running(p: &Pod) -> Option<()> {
    let s = p.status.as_ref()?;
    (s.phase == "Running"
        && !s.container_statuses.is_empty()
        && s.container_statuses.iter().all(|c| c.ready))
    .then_some(())
}

pub(crate) fn log_request(p: &Pod, container: &str) -> LogRequest {
    let meta = p.metadata.as_ref().unwrap();
    LogRequest {
        namespace: meta.namespace.clone(),
        pod_name: meta.name.clone(),
        pod_uid: meta.uid.clone(),
        container: container.into(),
        ..LogRequest::default()
    }
}

pub(crate) async fn wait_log(node: &TestNode, p: &Pod, container: &str, want: &str) -> Vec<String> {
    let request = log_request(p, container);
    eventually(
        &format!("log of {container} to contain {want:?}"),
        || async {
            let lines = read_logs(&node.log_dir(), &request).await.ok()?;
            lines.iter().any(|l| l.contains(want)).then_some(lines)
        },
    )
    .await
}

/// Deletes the pod through the API and waits until the agent has removed it.
pub(crate) async fn delete_and_wait(cluster: &Cluster, node: &TestNode, name: &str) {
    let Some(p) = cluster.pod(name).await else {
        return;
    };
    let uid = uid(&p);
    cluster
        .client
        .delete(Kind::Pod, "default", name, &DeleteOptions::default())
        .await
        .unwrap();
    cluster.wait_gone(name).await;
    eventually(&format!("pod {name}'s sandbox to be removed"), || async {
        node.sandboxes()
            .await
            .iter()
            .all(|s| s.pod_uid != uid)
            .then_some(())
    })
    .await;
}

pub async fn a_bound_pod_runs_and_reaches_running_with_a_pod_ip(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let listed = cluster
        .client
        .list(Kind::Pod, Some("default"), &Default::default())
        .await
        .unwrap();
    let mut events = Box::pin(cluster.client.watch(
        Kind::Pod,
        Some("default"),
        &Default::default(),
        Some(&listed.resource_version),
    ));
    cluster
        .create_pod(pod(
            "web",
            &node.name,
            vec![sh("app", "echo hello; exec sleep 300")],
        ))
        .await;
    cluster.wait_pod("web", "Running and ready", running).await;
    let p = cluster.pod("web").await.unwrap();
    let status = p.status.clone().unwrap();
    // Every status the agent wrote on the way agrees with itself: a container it reports
    // running is never under phase Pending (the pass that starts the containers writes
    // Running, not the plan it made before starting them).
    let mut phases = Vec::new();
    while phases.last().map(String::as_str) != Some("Running") {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .expect("the watch shows the pod Running")
            .expect("the watch goes on")
            .unwrap();
        let Some(Object::Pod(seen)) = event.object else {
            continue;
        };
        let Some(st) = seen.status else { continue };
        if st.phase.is_empty() {
            continue;
        }
        let started = st
            .container_statuses
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        assert!(
            !(started && st.phase == "Pending"),
            "a status says Pending with a container running: {st:?}"
        );
        phases.push(st.phase);
    }
    assert!(!status.pod_ip.is_empty(), "{status:?}");
    assert_eq!(status.host_ip, "127.0.0.1");
    assert!(status.start_time.is_some());
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let c = status.conditions.iter().find(|c| c.r#type == kind).unwrap();
        assert_eq!(c.status, "True", "{kind}: {c:?}");
    }
    let app = container(&p, "app").unwrap();
    assert!(app.state.as_ref().unwrap().running.is_some());
    assert!(app
        .container_id
        .starts_with(&format!("{}://", node.runtime.backend())));
    assert_eq!(app.restart_count, 0);
    wait_log(&node, &p, "app", "hello").await;
    delete_and_wait(&cluster, &node, "web").await;
}

pub async fn an_init_container_runs_before_the_app(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let mut p = pod(
        "init",
        &node.name,
        vec![sh("app", "echo app; exec sleep 300")],
    );
    p.spec.as_mut().unwrap().init_containers =
        vec![sh("first", "echo first"), sh("second", "echo second")];
    cluster.create_pod(p).await;
    cluster.wait_pod("init", "Running", running).await;
    let p = cluster.pod("init").await.unwrap();
    let status = p.status.clone().unwrap();
    let finished: Vec<String> = status
        .init_container_statuses
        .iter()
        .map(|c| {
            let t = c.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!((t.exit_code, t.reason.as_str()), (0, "Completed"), "{c:?}");
            t.finished_at.clone().unwrap()
        })
        .collect();
    let started = |name: &str| {
        let cs = status
            .init_container_statuses
            .iter()
            .chain(&status.container_statuses);
        let c = cs.into_iter().find(|c| c.name == name).unwrap();
        let st = c.state.as_ref().unwrap();
        st.terminated
            .as_ref()
            .and_then(|t| t.started_at.clone())
            .or_else(|| st.running.as_ref().and_then(|r| r.started_at.clone()))
            .unwrap()
    };
    assert!(finished[0] <= started("second"), "{status:?}");
    assert!(finished[1] <= started("app"), "{status:?}");
    wait_log(&node, &p, "first", "first").await;
    delete_and_wait(&cluster, &node, "init").await;
}

pub async fn a_crashing_container_goes_to_crash_loop_back_off_with_growing_restart_count(
    rt: Runtime,
) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    cluster
        .create_pod(pod(
            "crash",
            &node.name,
            vec![sh("app", "echo crashing; exit 3")],
        ))
        .await;
    let first = cluster
        .wait_pod("crash", "CrashLoopBackOff", |p| {
            let c = container(p, "app")?;
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let last = c.last_state.as_ref()?.terminated.as_ref()?;
            (waiting.reason == "CrashLoopBackOff" && last.exit_code == 3).then_some(c.restart_count)
        })
        .await;
    assert!(first >= 1);
    cluster
        .wait_pod("crash", "restartCount to grow", |p| {
            (container(p, "app")?.restart_count >= first + 2).then_some(())
        })
        .await;
    let p = cluster.pod("crash").await.unwrap();
    assert_eq!(p.status.as_ref().unwrap().phase, "Running");
    let previous = LogRequest {
        previous: true,
        ..log_request(&p, "app")
    };
    let lines = read_logs(&node.log_dir(), &previous).await.unwrap();
    assert!(lines.contains(&"crashing".to_string()), "{lines:?}");
    delete_and_wait(&cluster, &node, "crash").await;
}

pub async fn a_liveness_probe_failure_restarts_the_container(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let mut app = sh("app", "exec sleep 300");
    app.liveness_probe = Some(Box::new(Probe {
        exec: Some(ExecAction {
            command: vec!["sh".into(), "-c".into(), "exit 1".into()],
        }),
        period_seconds: 1,
        failure_threshold: 2,
        success_threshold: 1,
        timeout_seconds: 2,
        ..Default::default()
    }));
    cluster.create_pod(pod("live", &node.name, vec![app])).await;
    let p = cluster
        .wait_pod("live", "a restart after liveness failures", |p| {
            let c = container(p, "app")?;
            c.last_state.as_ref()?.terminated.as_ref()?;
            (c.restart_count >= 1).then(|| p.clone())
        })
        .await;
    let c = container(&p, "app").unwrap();
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_ne!(last.exit_code, 0, "{c:?}");
    delete_and_wait(&cluster, &node, "live").await;
}

pub async fn a_config_map_volume_shows_its_keys_as_files(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let meta = |name: &str| {
        Some(ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        })
    };
    let cm = ConfigMap {
        metadata: meta("settings"),
        data: rafter_proto::StringMap::from([
            ("greeting".to_string(), "hello from a configmap".to_string()),
            ("mode".to_string(), "fast".to_string()),
        ]),
        ..Default::default()
    };
    cluster.client.create(Object::ConfigMap(cm)).await.unwrap();
    let secret = Secret {
        metadata: meta("creds"),
        data: rafter_proto::StringMap::from([(
            "password".to_string(),
            base64::engine::general_purpose::STANDARD.encode("s3cret"),
        )]),
        ..Default::default()
    };
    cluster.client.create(Object::Secret(secret)).await.unwrap();

    let mut app = sh(
        "app",
        "cat /etc/config/greeting; echo; cat /etc/secret/password; echo; \
         echo GREETING=$GREETING PASS=$PASS MODE=$CFG_mode POD=$POD_NAME; exec sleep 300",
    );
    let from = |source: EnvVarSource| Some(source);
    app.env = vec![
        EnvVar {
            name: "GREETING".into(),
            value_from: from(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "settings".into(),
                    key: "greeting".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        EnvVar {
            name: "PASS".into(),
            value_from: from(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "creds".into(),
                    key: "password".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        EnvVar {
            name: "POD_NAME".into(),
            value_from: from(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: "v1".into(),
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    app.env_from = vec![EnvFromSource {
        prefix: "CFG_".into(),
        config_map_ref: Some(ConfigMapEnvSource {
            name: "settings".into(),
            optional: None,
        }),
        secret_ref: None,
    }];
    app.volume_mounts = vec![
        VolumeMount {
            name: "cfg".into(),
            mount_path: "/etc/config".into(),
            read_only: true,
            ..Default::default()
        },
        VolumeMount {
            name: "sec".into(),
            mount_path: "/etc/secret".into(),
            read_only: true,
            ..Default::default()
        },
    ];
    let mut p = pod("volumes", &node.name, vec![app]);
    p.spec.as_mut().unwrap().volumes = vec![
        Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "settings".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "sec".into(),
            secret: Some(SecretVolumeSource {
                secret_name: "creds".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let created = cluster.create_pod(p).await;
    cluster.wait_pod("volumes", "Running", running).await;
    let p = cluster.pod("volumes").await.unwrap();
    wait_log(
        &node,
        &p,
        "app",
        "GREETING=hello from a configmap PASS=s3cret MODE=fast POD=volumes",
    )
    .await;
    let volume = |name: &str, key: &str| {
        node.data
            .path()
            .join("pods")
            .join(uid(&created))
            .join("volumes")
            .join(name)
            .join(key)
    };
    assert_eq!(
        std::fs::read_to_string(volume("cfg", "greeting")).unwrap(),
        "hello from a configmap"
    );
    assert_eq!(
        std::fs::read_to_string(volume("cfg", "mode")).unwrap(),
        "fast"
    );
    assert_eq!(
        std::fs::read_to_string(volume("sec", "password")).unwrap(),
        "s3cret"
    );
    if node.runtime.backend() == "containerd" {
        // The process backend ignores mounts by design; in a real container the files show.
        let lines = wait_log(&node, &p, "app", "hello from a configmap").await;
        assert!(
            lines.contains(&"hello from a configmap".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"s3cret".to_string()), "{lines:?}");
    }
    delete_and_wait(&cluster, &node, "volumes").await;
}

pub async fn deleting_the_pod_stops_its_containers_and_removes_the_object(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let created = cluster
        .create_pod(pod(
            "doomed",
            &node.name,
            vec![sh(
                "app",
                "trap 'exit 0' TERM; while true; do sleep 0.2; done",
            )],
        ))
        .await;
    cluster.wait_pod("doomed", "Running", running).await;
    let p = cluster.pod("doomed").await.unwrap();
    let id = container(&p, "app")
        .unwrap()
        .container_id
        .split("://")
        .nth(1)
        .unwrap()
        .to_owned();
    delete_and_wait(&cluster, &node, "doomed").await;
    match node.runtime.container_status(&id).await {
        Err(e) => assert!(e.is_not_found(), "{e}"),
        Ok(st) => panic!("container {id} of {} still exists: {st:?}", uid(&created)),
    }
}

pub async fn an_agent_restart_adopts_running_containers_without_restarting_them(rt: Runtime) {
    let cluster = Cluster::start().await;
    let mut node = TestNode::start(&cluster, rt).await;
    cluster
        .create_pod(pod("keeper", &node.name, vec![sh("app", "exec sleep 300")]))
        .await;
    let gone = cluster
        .create_pod(pod("leaver", &node.name, vec![sh("app", "exec sleep 300")]))
        .await;
    cluster.wait_pod("keeper", "Running", running).await;
    cluster.wait_pod("leaver", "Running", running).await;
    let before = container(&cluster.pod("keeper").await.unwrap(), "app")
        .unwrap()
        .clone();

    node.stop().await;
    // While the agent is away, one pod is force-deleted.
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    cluster
        .client
        .delete(Kind::Pod, "default", "leaver", &force)
        .await
        .unwrap();
    node.restart().await;

    // The new agent is at work once a new pod runs.
    cluster
        .create_pod(pod(
            "newcomer",
            &node.name,
            vec![sh("app", "exec sleep 300")],
        ))
        .await;
    cluster.wait_pod("newcomer", "Running", running).await;
    let after = container(&cluster.pod("keeper").await.unwrap(), "app")
        .unwrap()
        .clone();
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(after.restart_count, 0);
    let id = after.container_id.split("://").nth(1).unwrap();
    assert_eq!(
        node.runtime.container_status(id).await.unwrap().state,
        node_agent::ContainerState::Running
    );
    eventually("the force-deleted pod's sandbox to be removed", || async {
        node.sandboxes()
            .await
            .iter()
            .all(|s| s.pod_uid != uid(&gone))
            .then_some(())
    })
    .await;
    delete_and_wait(&cluster, &node, "keeper").await;
    delete_and_wait(&cluster, &node, "newcomer").await;
}

pub async fn a_missing_image_is_reported_as_err_image_pull(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let mut app = sh("app", "true");
    app.image = "docker.io/local/no-such-image:1".into();
    cluster
        .create_pod(pod("noimage", &node.name, vec![app]))
        .await;
    // ErrImagePull can last less than one poll before the back-off starts: the first
    // reason seen is either, and the back-off must follow.
    let pull_errors: [&[&str]; 2] = [&["ErrImagePull", "ImagePullBackOff"], &["ImagePullBackOff"]];
    for reasons in pull_errors {
        cluster
            .wait_pod("noimage", &reasons.join(" or "), |p| {
                let waiting = container(p, "app")?.state.as_ref()?.waiting.as_ref()?;
                reasons.contains(&waiting.reason.as_str()).then_some(())
            })
            .await;
    }
    assert_eq!(
        cluster.pod("noimage").await.unwrap().status.unwrap().phase,
        "Pending"
    );
    delete_and_wait(&cluster, &node, "noimage").await;
}

pub async fn a_missing_image_with_pull_policy_never_is_err_image_never_pull(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let mut app = sh("app", "true");
    app.image = "docker.io/local/never-pulled:1".into();
    app.image_pull_policy = "Never".into();
    cluster
        .create_pod(pod("neverpull", &node.name, vec![app]))
        .await;
    let message = cluster
        .wait_pod("neverpull", "ErrImageNeverPull", |p| {
            let waiting = container(p, "app")?.state.as_ref()?.waiting.as_ref()?;
            (waiting.reason == "ErrImageNeverPull").then(|| waiting.message.clone())
        })
        .await;
    assert!(
        message.contains("not present with pull policy of Never"),
        "{message}"
    );
    delete_and_wait(&cluster, &node, "neverpull").await;
}

/// Runs once (process backend): the node's own objects.
pub async fn node_and_lease_appear_and_the_lease_renews(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let status = eventually("the node to be Ready", || async {
        let Ok(Object::Node(n)) = cluster.client.get(Kind::Node, "", &node.name).await else {
            return None;
        };
        let s = n.status?;
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
            .then_some(s)
    })
    .await;
    assert_eq!(status.capacity["pods"], "110");
    assert!(status.capacity["cpu"].parse::<u64>().unwrap() >= 1);
    assert!(status.capacity["memory"].ends_with("Ki"));
    assert!(status
        .addresses
        .iter()
        .any(|a| a.r#type == "InternalIP" && a.address == "127.0.0.1"));
    assert!(status
        .node_info
        .unwrap()
        .container_runtime_version
        .contains("://"));
    let lease = |rv: Option<String>| {
        let client = cluster.client.clone();
        let name = node.name.clone();
        async move {
            let Ok(Object::Lease(l)) = client.get(Kind::Lease, "kube-node-lease", &name).await
            else {
                return None;
            };
            let spec = l.spec?;
            assert_eq!(spec.holder_identity, name);
            assert_eq!(spec.lease_duration_seconds, Some(40));
            let renew = spec.renew_time?;
            assert!(
                renew.ends_with('Z') && renew.len() == "2026-11-25T11:00:00.000000Z".len(),
                "{renew}"
            );
            (rv.as_ref() != Some(&renew)).then_some(renew)
        }
    };
    let first = eventually("the lease to appear", || lease(None)).await;
    eventually("the lease to be renewed", || lease(Some(first.clone()))).await;
}

/// Runs once (process backend): a manifest in the manifest dir runs and is mirrored.
pub async fn a_static_pod_runs_and_is_mirrored_in_the_api(rt: Runtime) {
    let cluster = Cluster::start().await;
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("static.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: local\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo static; exec sleep 300']\n"
        ),
    )
    .unwrap();
    let mut node = TestNode::start(&cluster, rt.clone()).await;
    node.manifest_dir = Some(manifests.path().to_owned());
    node.restart().await;
    let name = format!("local-{}", node.name);
    let mirror = cluster
        .wait_pod(&name, "the mirror pod Running", |p| {
            running(p).map(|_| p.clone())
        })
        .await;
    assert!(mirror
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .contains_key(MIRROR_ANNOTATION));
    assert_eq!(
        node.sandboxes().await.len(),
        1,
        "the mirror pod is not run a second time"
    );
    std::fs::remove_file(manifests.path().join("static.yaml")).unwrap();
    eventually(
        "the static pod's sandbox to go with its manifest",
        || async { node.sandboxes().await.is_empty().then_some(()) },
    )
    .await;
}

/// Runs once (process backend): a runtime that does not answer makes the node NotReady.
pub async fn a_runtime_that_is_down_makes_the_node_not_ready() {
    let cluster = Cluster::start().await;
    let dead = node_agent::ContainerdRuntime::new(node_agent::ContainerdConfig::new(
        "/nonexistent/rafter-test/containerd.sock",
    ))
    .unwrap();
    let node = TestNode::start(&cluster, std::sync::Arc::new(dead)).await;
    let ready = eventually("the node to report its runtime down", || async {
        let Ok(Object::Node(n)) = cluster.client.get(Kind::Node, "", &node.name).await else {
            return None;
        };
        n.status?
            .conditions
            .into_iter()
            .find(|c| c.r#type == "Ready" && c.status == "False")
    })
    .await;
    assert_eq!(ready.reason, "ContainerRuntimeUnhealthy");
    assert!(
        ready.message.contains("container runtime is down"),
        "{}",
        ready.message
    );
}

/// Against the scripted fake API: a failed list and an expired watch are followed by a
/// new list, and a pod created in between runs all the same.
pub async fn the_agent_lists_again_after_a_failed_list_and_an_expired_watch() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let fake = Arc::new(crate::fake_api::FakeApi::new());
    fake.failing_lists.store(1, Ordering::SeqCst);
    fake.expiring_watches.store(1, Ordering::SeqCst);
    let data = tempfile::tempdir().unwrap();
    let mut config = node_agent::AgentConfig::new("fake-node", data.path());
    config.resync = std::time::Duration::from_millis(200);
    config.lease_interval = std::time::Duration::from_millis(200);
    config.node_ip = Some("127.0.0.1".into());
    let runtime = Arc::new(node_agent::HollowRuntime::new(
        node_agent::HollowConfig::default(),
    ));
    let api: Arc<dyn node_agent::ApiClient> = fake.clone();
    let agent = node_agent::Agent::start(config, runtime, api)
        .await
        .unwrap();
    eventually("a list after each fault", || async {
        (fake.list_calls.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    // Delivered through the watch that follows the third list.
    fake.put(Object::Pod(pod(
        "p",
        "fake-node",
        vec![sh("app", "sleep 1")],
    )));
    eventually("the pod to run despite the faults", || async {
        running(&fake.pod("default", "p")?)
    })
    .await;
    let holder = eventually("the lease", || async {
        use node_agent::ApiClient as _;
        match fake.get(Kind::Lease, "kube-node-lease", "fake-node").await {
            Ok(Object::Lease(l)) => Some(l.spec?.holder_identity),
            _ => None,
        }
    })
    .await;
    assert_eq!(holder, "fake-node");
    agent.shutdown().await;
}

/// Against the scripted fake API and a hollow runtime: once a pod runs and nothing
/// changes, its worker leaves the runtime alone until its resync (a worker with nothing
/// due used to wait zero and look at its pod again at once, without end).
pub async fn an_idle_running_pod_costs_the_runtime_almost_no_calls() {
    use std::sync::Arc;
    use std::time::Duration;

    let fake = Arc::new(crate::fake_api::FakeApi::new());
    let data = tempfile::tempdir().unwrap();
    let mut config = node_agent::AgentConfig::new("idle-node", data.path());
    config.lease_interval = Duration::from_secs(10);
    config.node_ip = Some("127.0.0.1".into());
    let runtime = node_agent::HollowRuntime::new(node_agent::HollowConfig::default());
    let api: Arc<dyn node_agent::ApiClient> = fake.clone();
    let agent = node_agent::Agent::start(config, Arc::new(runtime.clone()), api)
        .await
        .unwrap();
    fake.put(Object::Pod(pod(
        "p",
        "idle-node",
        vec![sh("app", "sleep 3600")],
    )));
    eventually("the pod to run", || async {
        running(&fake.pod("default", "p")?)
    })
    .await;
    // The window is the measurement: what an idle pod costs over it.
    let window = Duration::from_secs(3);
    let before = runtime.reads();
    tokio::time::sleep(window).await;
    let reads = runtime.reads() - before;
    // The relist's two calls a second, and at most one sync of the pod (three reads).
    let most = 2 * (window.as_secs() + 1) + 3;
    assert!(
        reads <= most,
        "{reads} runtime reads in {window:?} with one idle pod (at most {most})"
    );
    agent.shutdown().await;
}

/// The tmpfs mount points under `dir` (from `/proc/self/mountinfo`; the path is
/// canonicalised as the kernel writes it).
fn tmpfs_mounts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let point = std::path::PathBuf::from(fields.get(4)?.replace("\\040", " "));
            (fields.get(sep + 1) == Some(&"tmpfs") && point.starts_with(&dir)).then_some(point)
        })
        .collect()
}

/// Detaches the tmpfs mounts under a node's data dir when a test ends, passed or failed
/// (else a failed test leaves them behind and its temporary directory cannot go).
struct UnmountOnDrop(std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        for point in tmpfs_mounts_under(&self.0) {
            let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A pod `name` on `node` mounting Secret `creds` (key `password`) at `/etc/secret`.
fn pod_with_secret_volume(name: &str, node: &str) -> Pod {
    let mut app = sh("app", "cat /etc/secret/password; echo; exec sleep 300");
    app.volume_mounts = vec![VolumeMount {
        name: "sec".into(),
        mount_path: "/etc/secret".into(),
        read_only: true,
        ..Default::default()
    }];
    let mut p = pod(name, node, vec![app]);
    p.spec.as_mut().unwrap().volumes = vec![Volume {
        name: "sec".into(),
        secret: Some(SecretVolumeSource {
            secret_name: "creds".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    p
}

async fn create_secret(cluster: &Cluster, value: &str) {
    let secret = Secret {
        metadata: Some(ObjectMeta {
            name: "creds".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        data: rafter_proto::StringMap::from([(
            "password".to_string(),
            base64::engine::general_purpose::STANDARD.encode(value),
        )]),
        ..Default::default()
    };
    cluster.client.create(Object::Secret(secret)).await.unwrap();
}

pub async fn a_secret_volume_is_a_tmpfs_mount_until_the_pod_is_deleted(rt: Runtime) {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts tmpfs: run it as root"
    );
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let _unmount = UnmountOnDrop(node.data.path().to_path_buf());
    create_secret(&cluster, "tmpfs-s3cret").await;
    let created = cluster
        .create_pod(pod_with_secret_volume("secretive", &node.name))
        .await;
    cluster.wait_pod("secretive", "Running", running).await;
    let pod_dir = node.data.path().join("pods").join(uid(&created));
    let volume = pod_dir.join("volumes").join("sec");
    let canonical = std::fs::canonicalize(&volume).unwrap();
    assert_eq!(
        tmpfs_mounts_under(&pod_dir),
        vec![canonical],
        "the secret volume is a tmpfs mount"
    );
    let file = volume.join("password");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "tmpfs-s3cret");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // The API defaults defaultMode to 0644, as Kubernetes does; the file keeps it, and
    // the tmpfs root, 0700, keeps everyone but root out.
    let default_mode = created.spec.as_ref().unwrap().volumes[0]
        .secret
        .as_ref()
        .unwrap()
        .default_mode;
    assert_eq!(default_mode, Some(0o644));
    assert_eq!(mode(&file), 0o644, "the file has the volume's defaultMode");
    assert_eq!(mode(&volume), 0o700, "the tmpfs root is the owner's only");
    if node.runtime.backend() == "containerd" {
        let p = cluster.pod("secretive").await.unwrap();
        wait_log(&node, &p, "app", "tmpfs-s3cret").await;
    }

    delete_and_wait(&cluster, &node, "secretive").await;
    eventually("the secret volume's mount to be gone", || async {
        tmpfs_mounts_under(&pod_dir).is_empty().then_some(())
    })
    .await;
    eventually("the pod directory to be removed", || async {
        (!pod_dir.exists()).then_some(())
    })
    .await;
}

pub async fn an_agent_restart_unmounts_the_secret_volumes_of_pods_that_are_gone(rt: Runtime) {
    let cluster = Cluster::start().await;
    let mut node = TestNode::start(&cluster, rt).await;
    let _unmount = UnmountOnDrop(node.data.path().to_path_buf());
    create_secret(&cluster, "left-behind").await;
    let created = cluster
        .create_pod(pod_with_secret_volume("leaver", &node.name))
        .await;
    cluster.wait_pod("leaver", "Running", running).await;
    let pod_dir = node.data.path().join("pods").join(uid(&created));
    assert_eq!(tmpfs_mounts_under(&pod_dir).len(), 1);

    // While the agent is away the pod is force-deleted and its sandbox removed, so
    // nothing but the mount is left to say it was here.
    node.stop().await;
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    cluster
        .client
        .delete(Kind::Pod, "default", "leaver", &force)
        .await
        .unwrap();
    for sb in node.sandboxes().await {
        if sb.pod_uid == uid(&created) {
            for c in node.runtime.list_containers(Some(&sb.id)).await.unwrap() {
                let _ = node
                    .runtime
                    .stop_container(&c.id, std::time::Duration::from_secs(1))
                    .await;
            }
            node.runtime.stop_sandbox(&sb.id).await.unwrap();
            node.runtime.remove_sandbox(&sb.id).await.unwrap();
        }
    }
    node.restart().await;

    eventually("the gone pod's secret mount to be unmounted", || async {
        tmpfs_mounts_under(&pod_dir).is_empty().then_some(())
    })
    .await;
    eventually("the gone pod's directory to be removed", || async {
        (!pod_dir.exists()).then_some(())
    })
    .await;
}
