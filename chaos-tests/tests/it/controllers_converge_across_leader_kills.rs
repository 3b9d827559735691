//! A Deployment of 10 replicas rolls out on fake Nodes while the leader (whose controllers
//! are creating and binding the pods) is killed with SIGKILL; the controllers on the new
//! leader finish the rollout with exactly one ReplicaSet, and take a scale-up made after
//! the kill. Prints how long the control loops were dark: from the kill until the new
//! leader's controllers created a pod.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::list_default;
use chaos_tests::{AdminClient, Cluster};
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{v1, IntOrString, Object};

fn rfc3339(at: std::time::SystemTime) -> String {
    let seconds = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = seconds / 86_400;
    let (h, m, s) = (seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

fn fake_node(name: &str) -> Object {
    let now = rfc3339(std::time::SystemTime::now());
    Object::Node(v1::Node {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            labels: [("kubernetes.io/hostname".to_owned(), name.to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(v1::NodeSpec::default()),
        status: Some(v1::NodeStatus {
            allocatable: [
                ("cpu".to_owned(), "4".to_owned()),
                ("memory".to_owned(), "8Gi".to_owned()),
                ("pods".to_owned(), "110".to_owned()),
            ]
            .into(),
            capacity: [
                ("cpu".to_owned(), "4".to_owned()),
                ("memory".to_owned(), "8Gi".to_owned()),
                ("pods".to_owned(), "110".to_owned()),
            ]
            .into(),
            conditions: vec![v1::Condition {
                r#type: "Ready".to_owned(),
                status: "True".to_owned(),
                reason: "KubeletReady".to_owned(),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn lease(node: &str) -> Object {
    Object::Lease(v1::Lease {
        metadata: Some(v1::ObjectMeta {
            name: node.to_owned(),
            namespace: "kube-node-lease".to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::LeaseSpec {
            holder_identity: node.to_owned(),
            lease_duration_seconds: Some(40),
            renew_time: Some(rfc3339(std::time::SystemTime::now())),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn web(replicas: i32) -> Object {
    let labels: rafter_proto::StringMap = [("app".to_owned(), "web".to_owned())].into();
    Object::Deployment(v1::Deployment {
        metadata: Some(v1::ObjectMeta {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(v1::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(v1::PodTemplateSpec {
                metadata: Some(v1::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(Box::new(v1::PodSpec {
                    containers: vec![v1::Container {
                        name: "app".to_owned(),
                        image: "nginx:1.25".to_owned(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })),
            }),
            strategy: Some(v1::DeploymentStrategy {
                r#type: "RollingUpdate".to_owned(),
                rolling_update: Some(v1::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::String("25%".to_owned())),
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A client of any running master that answers.
async fn any_client(cluster: &Cluster) -> Option<AdminClient> {
    for master in cluster.masters().iter().filter(|m| m.is_running()) {
        if let Ok(client) = cluster.client(master.id).await {
            return Some(client);
        }
    }
    None
}

/// Writes `object` through any running master, creating or replacing it, until accepted.
async fn put(cluster: &Cluster, object: Object, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(mut client) = any_client(cluster).await {
            let created = client
                .create(api::CreateRequest {
                    object: Some(TypedObject::from(object.clone())),
                    dry_run: false,
                    field_manager: Default::default(),
                })
                .await;
            match created {
                Ok(_) => return,
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    let updated = client
                        .update(api::UpdateRequest {
                            object: Some(TypedObject::from(object.clone())),
                            ..Default::default()
                        })
                        .await;
                    if updated.is_ok() {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not write {:?}", object.metadata().name);
}

/// Scales the Deployment through any running master, until accepted.
async fn scale(cluster: &Cluster, replicas: i32, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(mut client) = any_client(cluster).await {
            let scaled = client
                .update_scale(api::UpdateScaleRequest {
                    key: Some(api::ObjectKey {
                        kind: "Deployment".to_owned(),
                        namespace: "default".to_owned(),
                        name: "web".to_owned(),
                    }),
                    replicas,
                    resource_version: String::new(),
                    field_manager: Default::default(),
                })
                .await;
            if scaled.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not scale the Deployment to {replicas}");
}

async fn list(cluster: &Cluster, kind: &str) -> Option<Vec<Object>> {
    list_default(&mut any_client(cluster).await?, kind).await
}

/// Pods (all, bound) of the Deployment, and its ReplicaSets.
async fn rollout(cluster: &Cluster) -> Option<(usize, usize, usize, BTreeMap<String, usize>)> {
    let pods = list(cluster, "Pod").await?;
    let rses = list(cluster, "ReplicaSet").await?;
    let mut per_node = BTreeMap::new();
    let mut bound = 0;
    for pod in &pods {
        if let Object::Pod(p) = pod {
            let node = p.spec.as_ref().map_or("", |s| s.node_name.as_str());
            if !node.is_empty() {
                bound += 1;
                *per_node.entry(node.to_owned()).or_insert(0) += 1;
            }
        }
    }
    Some((pods.len(), bound, rses.len(), per_node))
}

const NODES: [&str; 3] = ["hollow-1", "hollow-2", "hollow-3"];

async fn renew_leases(cluster: &Cluster) {
    for node in NODES {
        put(cluster, lease(node), Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rollout_converges_across_a_leader_kill_with_one_replica_set() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    for node in NODES {
        put(&cluster, fake_node(node), Duration::from_secs(20)).await;
    }
    renew_leases(&cluster).await;
    put(&cluster, web(10), Duration::from_secs(20)).await;

    // Mid-way: some pods exist, not all are bound yet (or just about).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((pods, _, _, _)) = rollout(&cluster).await {
            if pods >= 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the leader's controllers created no pods; leader log:\n{}",
            cluster.log_tail(leader)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = cluster
        .log(leader)
        .lines()
        .filter(|l| l.contains("controllers active") || l.contains("controllers stopped"))
        .count();
    assert_eq!(
        started, 1,
        "the first leader's controllers started once and never stopped"
    );
    let at_kill = rollout(&cluster).await;
    let killed = Instant::now();
    cluster.kill(leader).expect("kill -9 the leader");
    eprintln!("killed leader {leader} with the rollout at {at_kill:?} (pods, bound, replicasets)");

    // A scale-up only the new leader's controllers can carry out.
    scale(&cluster, 12, Duration::from_secs(30)).await;
    let scaled = killed.elapsed();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first_new_pod = None;
    let mut last_renewal = Instant::now();
    let final_state = loop {
        if last_renewal.elapsed() > Duration::from_secs(5) {
            renew_leases(&cluster).await;
            last_renewal = Instant::now();
        }
        if let Some((pods, bound, rses, per_node)) = rollout(&cluster).await {
            if pods > 10 && first_new_pod.is_none() {
                first_new_pod = Some(killed.elapsed());
            }
            if pods == 12 && bound == 12 {
                break (pods, bound, rses, per_node);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not converge after the kill: {:?}",
            rollout(&cluster).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a new leader");
    let handover: Vec<String> = cluster
        .log(new_leader)
        .lines()
        .filter(|l| l.contains("controllers active"))
        .map(str::to_owned)
        .collect();
    eprintln!(
        "control loops dark after the kill: scale accepted after {scaled:?}, first pod by the new leader's controllers after {:?}; converged {final_state:?}; new leader {new_leader}: {handover:?}",
        first_new_pod
    );
    assert_eq!(
        handover.len(),
        1,
        "the new leader's controllers started once and did not flap: {handover:?}"
    );
    let (_, _, rses, per_node) = final_state;
    assert_eq!(
        rses, 1,
        "exactly one ReplicaSet (no duplicate after the failover)"
    );
    assert!(
        per_node.len() >= 2,
        "pods spread over the nodes: {per_node:?}"
    );
    // Stable: nothing more is created once converged.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = rollout(&cluster).await.expect("a list");
    assert_eq!(
        (settled.0, settled.2),
        (12, 1),
        "no surplus pods or ReplicaSets"
    );
}
