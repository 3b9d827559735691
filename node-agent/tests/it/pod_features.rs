//! Pod-spec features end to end on the agent (process backend always; containerd when
//! `RAFTER_CONTAINERD_SOCK` is set): `$(VAR)` expansion, startupProbe, container log
//! rotation.

use std::path::Path;

use rafter_proto::v1::{
    Container, EnvVar, EnvVarSource, ExecAction, HostPathVolumeSource, ObjectFieldSelector,
    ObjectMeta, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, PersistentVolumeStatus, Pod, Probe, ResourceRequirements, Volume,
    VolumeMount,
};
use rafter_proto::Object;

use node_agent::{read_logs, LogRotation};

use crate::agent::{container, delete_and_wait, log_request, pod, running, sh, wait_log};
use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, Runtime};

/// An exec probe running `script` in `sh`, every second.
fn exec_probe(script: &str, failure_threshold: i32) -> Option<Box<Probe>> {
    Some(Box::new(Probe {
        exec: Some(ExecAction {
            command: vec!["sh".into(), "-c".into(), script.into()],
        }),
        period_seconds: 1,
        timeout_seconds: 2,
        success_threshold: 1,
        failure_threshold,
        ..Default::default()
    }))
}

/// Mounts the host directory `dir` at the same path in `app` (the process backend
/// ignores mounts, and then sees the same path on the host), so probes and the test
/// share files on either backend.
fn share_dir(p: &mut Pod, app_index: usize, dir: &Path) {
    let path = dir.display().to_string();
    let spec = p.spec.as_mut().unwrap();
    spec.volumes.push(Volume {
        name: "shared".into(),
        host_path: Some(HostPathVolumeSource {
            path: path.clone(),
            r#type: "Directory".into(),
        }),
        ..Default::default()
    });
    let app: &mut Container = &mut spec.containers[app_index];
    app.volume_mounts.push(VolumeMount {
        name: "shared".into(),
        mount_path: path,
        ..Default::default()
    });
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

pub async fn command_args_and_env_values_expand_var_references(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let literal = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: value.into(),
        ..Default::default()
    };
    // `$(A)` in the script is ours to expand; left alone, sh would run a command `A`.
    let mut app = sh(
        "app",
        "echo CMD=$(A) B=$B D=$D ARG1=$1 ARG2=$2 LATE=$LATE; exec sleep 300",
    );
    app.args = vec!["argv0".into(), "$(B)".into(), "$$(B)".into()];
    app.env = vec![
        literal("A", "one"),
        literal("B", "$(A)-two"),
        EnvVar {
            name: "POD".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: "v1".into(),
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Only what is defined before a value is visible to it: LATE is not, yet.
        literal("D", "$(POD)/$(LATE)/$$(A)"),
        literal("LATE", "late"),
    ];
    cluster
        .create_pod(pod("expand", &node.name, vec![app]))
        .await;
    let p = cluster
        .wait_pod("expand", "created", |p| {
            p.status.as_ref().map(|_| p.clone())
        })
        .await;
    wait_log(
        &node,
        &p,
        "app",
        "CMD=one B=one-two D=expand/$(LATE)/$(A) ARG1=one-two ARG2=$(B) LATE=late",
    )
    .await;
    delete_and_wait(&cluster, &node, "expand").await;
}

pub async fn a_startup_probe_holds_liveness_and_readiness_until_it_succeeds(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path();
    let d = dir.display();
    let mut app = sh("app", "exec sleep 300");
    app.startup_probe = exec_probe(&format!("echo x >> {d}/startup; test -f {d}/go"), 60);
    app.liveness_probe = exec_probe(&format!("echo x >> {d}/liveness"), 3);
    app.readiness_probe = exec_probe(&format!("echo x >> {d}/readiness"), 3);
    let mut p = pod("slow-start", &node.name, vec![app]);
    share_dir(&mut p, 0, dir);
    cluster.create_pod(p).await;
    eventually("the startup probe to run three times", || async {
        (lines_in(&dir.join("startup")) >= 3).then_some(())
    })
    .await;
    assert_eq!(
        lines_in(&dir.join("liveness")),
        0,
        "liveness ran before start"
    );
    assert_eq!(
        lines_in(&dir.join("readiness")),
        0,
        "readiness ran before start"
    );
    let p = cluster.pod("slow-start").await.unwrap();
    let c = container(&p, "app").unwrap();
    assert!(c.state.as_ref().unwrap().running.is_some(), "{c:?}");
    assert!(!c.ready && c.started == Some(false), "{c:?}");
    assert_eq!(c.restart_count, 0);

    std::fs::write(dir.join("go"), b"").unwrap();
    cluster
        .wait_pod("slow-start", "Running and ready once started", running)
        .await;
    eventually("liveness and readiness to run once started", || async {
        (lines_in(&dir.join("liveness")) >= 1 && lines_in(&dir.join("readiness")) >= 1)
            .then_some(())
    })
    .await;
    let after = lines_in(&dir.join("startup"));
    let p = cluster.pod("slow-start").await.unwrap();
    let c = container(&p, "app").unwrap();
    assert_eq!((c.started, c.restart_count), (Some(true), 0), "{c:?}");
    // The startup probe stops once it succeeded.
    eventually("two more liveness runs", || async {
        (lines_in(&dir.join("liveness")) >= 3).then_some(())
    })
    .await;
    assert_eq!(
        lines_in(&dir.join("startup")),
        after,
        "startup probe ran after success"
    );
    delete_and_wait(&cluster, &node, "slow-start").await;
}

pub async fn a_startup_probe_that_keeps_failing_restarts_the_container(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let mut app = sh("app", "echo attempt; exec sleep 300");
    app.startup_probe = exec_probe("exit 1", 2);
    app.liveness_probe = exec_probe("exit 0", 1);
    cluster
        .create_pod(pod("never-starts", &node.name, vec![app]))
        .await;
    let p = cluster
        .wait_pod("never-starts", "a restart after startup failures", |p| {
            let c = container(p, "app")?;
            c.last_state.as_ref()?.terminated.as_ref()?;
            (c.restart_count >= 1).then(|| p.clone())
        })
        .await;
    let c = container(&p, "app").unwrap();
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_ne!(last.exit_code, 0, "{c:?}");
    assert!(!c.ready, "{c:?}");
    delete_and_wait(&cluster, &node, "never-starts").await;
}

/// Log cap of the rotation test: small, so a chatty container passes it every sync.
const CAP: u64 = 4096;

pub async fn a_log_past_its_cap_is_rotated_and_old_content_is_bounded(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start_with(&cluster, rt, |config| {
        config.log_rotation = LogRotation {
            max_size: CAP,
            max_files: 3,
        };
    })
    .await;
    // About 100 lines of ~100 bytes a second: past the cap at every sync.
    let app = sh(
        "app",
        "i=0; while true; do i=$((i+1)); echo \"line $i padding-padding-padding-padding\"; \
         sleep 0.01; done",
    );
    cluster
        .create_pod(pod("chatty", &node.name, vec![app]))
        .await;
    cluster.wait_pod("chatty", "Running", running).await;
    let p = cluster.pod("chatty").await.unwrap();
    let request = log_request(&p, "app");
    let number = |line: &str| -> u64 {
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a numbered line: {line:?}"))
    };
    // The current file starts far past the first line: it was rotated several times.
    let lines = eventually("the current log to start past line 300", || async {
        let lines = read_logs(&node.log_dir(), &request).await.ok()?;
        (number(lines.first()?) > 300).then_some(lines)
    })
    .await;
    // Within the current file the lines follow each other: nothing lost at a reopen.
    for pair in lines.windows(2) {
        assert_eq!(number(&pair[1]), number(&pair[0]) + 1, "{pair:?}");
    }
    let dir = node
        .log_dir()
        .join(format!(
            "{}_{}_{}",
            request.namespace, request.pod_name, request.pod_uid
        ))
        .join("app");
    let files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    let rotated: Vec<&(String, u64)> = files.iter().filter(|(n, _)| n != "0.log").collect();
    assert!(
        !rotated.is_empty() && rotated.len() <= 2,
        "max_files 3 keeps the current file and at most two rotated ones: {files:?}"
    );
    for (name, size) in &rotated {
        assert!(name.starts_with("0.log."), "{files:?}");
        // Checked at every sync (300 ms here): a file outgrows the cap by at most what
        // the container writes in between.
        assert!(*size < CAP + 64 * 1024, "{name} is {size} bytes");
    }
    delete_and_wait(&cluster, &node, "chatty").await;
}

/// A hostPath PersistentVolume and a claim bound to it by hand, as the binder would
/// leave them (the in-process cluster runs no controllers).
async fn bound_claim(cluster: &Cluster, claim: &str, pv_name: &str, host: &Path) {
    let storage = |q: &str| rafter_proto::StringMap::from([("storage".to_string(), q.to_string())]);
    let pv = PersistentVolume {
        metadata: Some(ObjectMeta {
            name: pv_name.into(),
            ..Default::default()
        }),
        spec: Some(PersistentVolumeSpec {
            capacity: storage("1Gi"),
            access_modes: vec!["ReadWriteOnce".into()],
            host_path: Some(HostPathVolumeSource {
                path: host.display().to_string(),
                r#type: "DirectoryOrCreate".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Object::PersistentVolume(mut pv) = cluster
        .client
        .create(Object::PersistentVolume(pv))
        .await
        .unwrap()
    else {
        panic!("not a PV")
    };
    let pvc = PersistentVolumeClaim {
        metadata: Some(ObjectMeta {
            name: claim.into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            resources: Some(ResourceRequirements {
                requests: storage("100Mi"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Object::PersistentVolumeClaim(mut pvc) = cluster
        .client
        .create(Object::PersistentVolumeClaim(pvc))
        .await
        .unwrap()
    else {
        panic!("not a PVC")
    };
    let meta = pvc.metadata.clone().unwrap();
    pv.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
        kind: "PersistentVolumeClaim".into(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        api_version: "v1".into(),
        ..Default::default()
    });
    let Object::PersistentVolume(mut pv) = cluster
        .client
        .update(Object::PersistentVolume(pv))
        .await
        .unwrap()
    else {
        panic!("not a PV")
    };
    pv.status = Some(PersistentVolumeStatus {
        phase: "Bound".into(),
        ..Default::default()
    });
    cluster
        .client
        .update_status(Object::PersistentVolume(pv))
        .await
        .unwrap();
    pvc.spec.as_mut().unwrap().volume_name = pv_name.into();
    let Object::PersistentVolumeClaim(mut pvc) = cluster
        .client
        .update(Object::PersistentVolumeClaim(pvc))
        .await
        .unwrap()
    else {
        panic!("not a PVC")
    };
    pvc.status = Some(PersistentVolumeClaimStatus {
        phase: "Bound".into(),
        access_modes: vec!["ReadWriteOnce".into()],
        capacity: storage("1Gi"),
    });
    cluster
        .client
        .update_status(Object::PersistentVolumeClaim(pvc))
        .await
        .unwrap();
}

/// A pod running `script` with claim `claim` mounted at `mount`.
fn pod_with_claim(name: &str, node: &str, claim: &str, mount: &str, script: &str) -> Pod {
    let mut app = sh("app", script);
    app.volume_mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: mount.into(),
        ..Default::default()
    }];
    let mut p = pod(name, node, vec![app]);
    p.spec.as_mut().unwrap().volumes = vec![Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: false,
        }),
        ..Default::default()
    }];
    p
}

pub async fn a_claims_data_outlives_the_pod_that_wrote_it(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let disk = tempfile::tempdir().unwrap();
    let host = disk.path().join("pv-data");
    // The process backend ignores mounts: there the container sees the PV's hostPath at
    // its host path. containerd bind-mounts it where the pod asks.
    let mount = if node.runtime.backend() == "process" {
        host.display().to_string()
    } else {
        "/data".to_owned()
    };
    // A claim that is not bound yet keeps the container waiting with a clear reason.
    let mut early = pod_with_claim("early", &node.name, "data", &mount, "exec sleep 300");
    early.spec.as_mut().unwrap().volumes[0]
        .persistent_volume_claim
        .as_mut()
        .unwrap()
        .claim_name = "missing".into();
    cluster.create_pod(early).await;
    let why = cluster
        .wait_pod("early", "CreateContainerConfigError", |p| {
            let waiting = container(p, "app")?.state.as_ref()?.waiting.clone()?;
            (waiting.reason == "CreateContainerConfigError").then_some(waiting.message)
        })
        .await;
    assert!(why.contains("missing"), "{why}");
    delete_and_wait(&cluster, &node, "early").await;

    bound_claim(&cluster, "data", "pv-1", &host).await;
    cluster
        .create_pod(pod_with_claim(
            "writer",
            &node.name,
            "data",
            &mount,
            &format!("echo kept-by-the-claim > {mount}/note; exec sleep 300"),
        ))
        .await;
    eventually("the writer's file on the PV's hostPath", || async {
        let text = std::fs::read_to_string(host.join("note")).ok()?;
        (text.trim() == "kept-by-the-claim").then_some(())
    })
    .await;
    delete_and_wait(&cluster, &node, "writer").await;

    cluster
        .create_pod(pod_with_claim(
            "reader",
            &node.name,
            "data",
            &mount,
            &format!("cat {mount}/note; exec sleep 300"),
        ))
        .await;
    cluster.wait_pod("reader", "Running", running).await;
    let p = cluster.pod("reader").await.unwrap();
    wait_log(&node, &p, "app", "kept-by-the-claim").await;
    delete_and_wait(&cluster, &node, "reader").await;
}
