//! ResourceQuota usage on a `rafter up` cluster (no agents: pods stay Pending, which
//! counts): the quota controller keeps `status.used` equal to what the namespace holds,
//! and a pod past the hard limit is refused. A LimitRange gives a bare pod its defaults
//! and refuses one over its max, naming the field and the bound.

use std::time::Duration;

use crate::cluster::{eventually, Cluster};

#[test]
fn a_quotas_status_used_follows_the_namespaces_pods_and_the_hard_limit_holds() {
    let cluster = Cluster::start("quota");
    let quota = cluster.file(
        "quota.yaml",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: '3', requests.cpu: '1', count/jobs.batch: '2'}\n",
    );
    cluster.ok(&["apply", "-f", &quota]);
    for name in ["a", "b"] {
        let pod = cluster.file(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: 200m}}}}}}]\n"),
        );
        cluster.ok(&["apply", "-f", &pod]);
    }
    eventually(
        "status.used counts two pods",
        Duration::from_secs(30),
        || {
            let q = cluster.json(&["get", "resourcequota", "q"]);
            let used = &q["status"]["used"];
            (used["pods"] == "2"
                && used["requests.cpu"] == "400m"
                && used["count/jobs.batch"] == "0")
                .then_some(())
        },
    );
    let q = cluster.json(&["get", "resourcequota", "q"]);
    assert_eq!(q["status"]["hard"]["pods"], "3", "{q}");
    cluster.ok(&["delete", "pod", "a"]);
    eventually("a deleted pod is released", Duration::from_secs(30), || {
        let q = cluster.json(&["get", "resourcequota", "q"]);
        (q["status"]["used"]["pods"] == "1").then_some(())
    });
}

#[test]
fn a_limit_range_default_lands_on_a_pod_and_a_pod_over_max_is_refused_naming_field_and_limit() {
    let cluster = Cluster::start("limits");
    let limits = cluster.file(
        "limits.yaml",
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m, memory: 64Mi}\n    max: {cpu: '1'}\n",
    );
    cluster.ok(&["apply", "-f", &limits]);
    let plain = cluster.file(
        "plain.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    cluster.ok(&["apply", "-f", &plain]);
    let pod = cluster.json(&["get", "pod", "plain"]);
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "500m", "{pod}");
    assert_eq!(resources["limits"]["memory"], "128Mi", "{pod}");
    assert_eq!(resources["requests"]["cpu"], "100m", "{pod}");
    assert_eq!(resources["requests"]["memory"], "64Mi", "{pod}");

    let big = cluster.file(
        "big.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers: [{name: c, image: busybox, resources: {limits: {cpu: '2'}}}]\n",
    );
    let run = cluster.run(&["apply", "-f", &big]);
    assert_ne!(run.code, 0, "a pod over max is refused: {}", run.stdout);
    assert!(
        run.stderr
            .contains("maximum cpu usage per Container is 1, but limit is 2")
            && run
                .stderr
                .contains("spec.containers[0].resources.limits.cpu"),
        "{}",
        run.stderr
    );
    assert!(
        !cluster.run(&["get", "pod", "big"]).stdout.contains("big"),
        "nothing half-done"
    );
}
