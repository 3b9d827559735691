//! A user's journey through a whole local cluster: `rafter up` with two agents (host
//! processes, so it runs anywhere), then the verbs the seeds have operators type, each
//! checked through what the cluster does — controllers and agents included.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, Cluster};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: e2e
spec:
  replicas: 3
  selector:
    matchLabels: {app: e2e}
  template:
    metadata:
      labels: {app: e2e}
    spec:
      containers:
      - name: web
        image: docker.io/local/busybox:1
        command: [sh, -c, 'while true; do echo e2e alive; sleep 2; done']
        resources:
          requests: {cpu: 50m, memory: 16Mi}
        readinessProbe:
          exec: {command: [sh, -c, 'true']}
          periodSeconds: 1
";

const LIMIT: Duration = Duration::from_secs(90);

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }) && pod["metadata"]["deletionTimestamp"].is_null()
}

/// The app's pods that are Ready, once exactly `count` of them are and none is terminating.
fn ready_pods(cluster: &Cluster, count: usize) -> Option<Vec<Value>> {
    let list = cluster.json(&["get", "pods", "-l", "app=e2e"]);
    let pods = items(&list);
    (pods.len() == count && pods.iter().all(ready)).then_some(pods)
}

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_user_runs_scales_updates_drains_and_deletes_a_deployment() {
    let cluster = Cluster::start_with("e2e", &["--agents", "2", "--runtime", "process"]);
    let nodes = cluster.json(&["get", "nodes"]);
    assert_eq!(items(&nodes).len(), 2, "two agents register their nodes");

    // apply: the controllers create a ReplicaSet and pods, the scheduler binds them, the
    // agents run them.
    let file = cluster.file("e2e.yaml", DEPLOYMENT);
    assert!(cluster
        .ok(&["apply", "-f", &file])
        .contains("deployment.apps/e2e created"));
    // `wait --for=condition=Ready pod -l`: waits for every pod the selector matches.
    eventually("3 pods", LIMIT, || {
        (items(&cluster.json(&["get", "pods", "-l", "app=e2e"])).len() == 3).then_some(())
    });
    let waited = cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=e2e",
        "--timeout=120s",
    ]);
    assert_eq!(
        waited.matches(" condition met").count(),
        3,
        "one line per pod: {waited}"
    );
    let pods = ready_pods(&cluster, 3).expect("every pod is Ready once the wait returns");
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));

    // scale
    cluster.ok(&["scale", "deployment", "e2e", "--replicas", "4"]);
    eventually("4 Ready pods", LIMIT, || ready_pods(&cluster, 4));

    // set image, rollout status, rollout undo (the pause image is the other image every
    // node has; both hold the shell the command needs)
    let before = cluster.json(&["get", "deploy", "e2e"]);
    let old_image = before["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster.ok(&[
        "set",
        "image",
        "deployment/e2e",
        "web=docker.io/local/pause:1",
    ]);
    cluster.ok(&["rollout", "status", "deployment", "e2e", "--timeout", "90s"]);
    let rolled = eventually("every pod on the new image", LIMIT, || {
        let pods = ready_pods(&cluster, 4)?;
        pods.iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "docker.io/local/pause:1")
            .then_some(pods)
    });
    assert_eq!(rolled.len(), 4);
    cluster.ok(&["rollout", "undo", "deployment", "e2e"]);
    let undone = cluster.json(&["get", "deploy", "e2e"]);
    assert_eq!(
        undone["spec"]["template"]["spec"]["containers"][0]["image"],
        old_image.as_str()
    );
    cluster.ok(&["rollout", "status", "deployment", "e2e", "--timeout", "90s"]);

    // cordon + drain: the pods move to the other node
    cluster.ok(&["drain", "node-1", "--ignore-daemonsets", "--timeout", "60s"]);
    let moved = eventually("4 Ready pods, all on node-2", LIMIT, || {
        let pods = ready_pods(&cluster, 4)?;
        pods.iter().all(|p| node_of(p) == "node-2").then_some(pods)
    });
    assert_eq!(moved.len(), 4);
    let node = cluster.json(&["get", "node", "node-1"]);
    assert_eq!(node["spec"]["unschedulable"], true);

    // taint: only a tolerating pod lands on the tainted node (node-1 stays cordoned)
    cluster.ok(&["taint", "nodes", "node-2", "dedicated=e2e:NoSchedule"]);
    let tolerant = cluster.file(
        "tolerant.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: tolerant}\nspec:\n  tolerations:\n  - {key: dedicated, operator: Equal, value: e2e, effect: NoSchedule}\n  containers:\n  - {name: c, image: docker.io/local/busybox:1, command: [sh, -c, 'sleep 3600']}\n",
    );
    let intolerant = cluster.file(
        "intolerant.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: intolerant}\nspec:\n  containers:\n  - {name: c, image: docker.io/local/busybox:1, command: [sh, -c, 'sleep 3600']}\n",
    );
    cluster.ok(&["apply", "-f", &tolerant, "-f", &intolerant]);
    eventually("the tolerating pod runs on node-2", LIMIT, || {
        let pod = cluster.json(&["get", "pod", "tolerant"]);
        (node_of(&pod) == "node-2" && pod["status"]["phase"] == "Running").then_some(())
    });
    let reason = eventually("a FailedScheduling event for the other pod", LIMIT, || {
        let events = cluster.json(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=intolerant",
        ]);
        items(&events)
            .into_iter()
            .find(|e| e["reason"] == "FailedScheduling")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
    });
    assert!(
        reason.contains("taint") || reason.contains("unschedulable"),
        "{reason}"
    );
    let pod = cluster.json(&["get", "pod", "intolerant"]);
    assert_eq!(node_of(&pod), "", "a pod that tolerates nothing was bound");

    // delete -f: the Deployment goes, and its ReplicaSets and pods after it
    assert!(cluster.ok(&["delete", "-f", &file]).contains("deleted"));
    eventually("the app's pods and ReplicaSets to be gone", LIMIT, || {
        let pods = items(&cluster.json(&["get", "pods", "-l", "app=e2e"]));
        let sets = items(&cluster.json(&["get", "rs", "-l", "app=e2e"]));
        (pods.is_empty() && sets.is_empty()).then_some(())
    });
}
