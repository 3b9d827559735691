//! persistentVolumeClaim volumes on a `rafter up` cluster with one agent (host
//! processes): the scheduler holds a pod until its claim is bound, the binder binds the
//! claim when a fitting hostPath PersistentVolume appears, the agent gives the pod the
//! PV's directory, and what one pod wrote there a later pod of the same claim reads;
//! once the claim is deleted the volume is Released with its data.

use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(60);

/// A claim and a pod using it; `DIR` is the PV's hostPath (the process backend runs the
/// pod on the host, so it writes where the PV points).
fn claim_and_pod(dir: &str, pod: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 100Mi
---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, '{script}']
    volumeMounts:
    - name: data
      mountPath: {dir}
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: data
"
    )
}

fn volume(dir: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-data
spec:
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteOnce]
  hostPath:
    path: {dir}
    type: DirectoryOrCreate
"
    )
}

#[test]
fn a_claims_data_outlives_its_pod_once_the_binder_gives_it_a_volume() {
    let cluster = Cluster::start_with("volumes", &["--agents", "1", "--runtime", "process"]);
    let dir = cluster.dir.join("pv-data").display().to_string();
    let writer = cluster.file(
        "writer.yaml",
        &claim_and_pod(&dir, "writer", &format!("echo kept > {dir}/note")),
    );
    cluster.ok(&["apply", "-f", &writer]);
    eventually("the writer held back for its unbound claim", LIMIT, || {
        let events = cluster.run(&["get", "events", "-o", "json"]);
        (events.code == 0
            && events
                .stdout
                .contains("unbound immediate PersistentVolumeClaims"))
        .then_some(())
    });
    let pod = cluster.json(&["get", "pod", "writer"]);
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");

    let pv = cluster.file("pv.yaml", &volume(&dir));
    cluster.ok(&["apply", "-f", &pv]);
    eventually("the claim Bound to pv-data", LIMIT, || {
        let claim = cluster.json(&["get", "pvc", "data"]);
        (claim["status"]["phase"] == "Bound" && claim["spec"]["volumeName"] == "pv-data")
            .then_some(())
    });
    let pv = cluster.json(&["get", "pv", "pv-data"]);
    assert_eq!(pv["status"]["phase"], "Bound", "{pv}");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data", "{pv}");
    eventually("the writer Succeeded", LIMIT, || {
        (cluster.json(&["get", "pod", "writer"])["status"]["phase"] == "Succeeded").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/note")).unwrap(),
        "kept\n"
    );
    cluster.ok(&["delete", "pod", "writer"]);

    let reader = cluster.file(
        "reader.yaml",
        &claim_and_pod(&dir, "reader", &format!("cat {dir}/note")),
    );
    cluster.ok(&["apply", "-f", &reader]);
    let log = eventually("the reader's log", LIMIT, || {
        let run = cluster.run(&["logs", "reader"]);
        (run.code == 0 && !run.stdout.is_empty()).then_some(run.stdout)
    });
    assert_eq!(log, "kept\n");

    // Without its claim the volume is Released, its data kept.
    cluster.ok(&["delete", "pod", "reader"]);
    cluster.ok(&["delete", "pvc", "data"]);
    eventually("pv-data Released", LIMIT, || {
        (cluster.json(&["get", "pv", "pv-data"])["status"]["phase"] == "Released").then_some(())
    });
    assert!(std::path::Path::new(&format!("{dir}/note")).exists());
}
