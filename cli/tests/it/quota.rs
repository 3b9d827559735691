//! ResourceQuota usage on a `rafter up` cluster (no agents: pods stay Pending, which
//! counts): the quota controller keeps `status.used` equal to what the namespace holds,
//! and a pod past the hard limit is refused.

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
