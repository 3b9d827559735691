//! Fifty pod creates sent at once, spread over the three masters, against a ResourceQuota
//! of ten pods: exactly ten are created, every other one is refused naming the quota and
//! its limit, and the quota's `status.used` (charged by the writes, then recounted by the
//! controller) says ten. Each master's gateway charges the quota in the pod's own
//! transaction, so no two masters can both take the tenth place.

use std::time::{Duration, Instant};

use chaos_tests::{AdminClient, Cluster};
use futures::StreamExt;
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{parse_object, Object};

const NAMESPACE: &str = "quota-race";
const CREATES: usize = 50;
const HARD: usize = 10;

fn pod(i: usize) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{i}, namespace: {NAMESPACE}}}\nspec:\n  containers:\n  - {{name: c, image: docker.io/local/busybox:1}}\n"
        ),
        "test",
    )
    .unwrap()
}

/// What one create ended as.
#[derive(Debug, PartialEq)]
enum Outcome {
    Created,
    Refused(String),
}

/// Creates pod `i` through `client`; an answer that leaves the outcome open (a timeout, an
/// unavailable master) is settled by reading the pod through the same master.
async fn create(mut client: AdminClient, i: usize) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "p-{i}: no create settled in 60 s"
        );
        let answer = client
            .create(api::CreateRequest {
                object: Some(TypedObject::from(pod(i))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await;
        match answer {
            Ok(_) => return Outcome::Created,
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                return Outcome::Refused(status.message().to_owned())
            }
            Err(status) if status.code() == tonic::Code::AlreadyExists => return Outcome::Created,
            Err(status) => {
                let read = client
                    .get(api::GetRequest {
                        key: Some(api::ObjectKey {
                            kind: "Pod".to_owned(),
                            namespace: NAMESPACE.to_owned(),
                            name: format!("p-{i}"),
                        }),
                        consistency: api::Consistency::Linearizable as i32,
                    })
                    .await;
                match read {
                    Ok(_) => return Outcome::Created,
                    Err(e) if e.code() == tonic::Code::NotFound => {}
                    Err(e) => {
                        eprintln!("p-{i}: create answered {status}, then a read {e}; again");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

async fn pods_and_used(client: &mut AdminClient) -> Option<(usize, String)> {
    let pods = client
        .list(api::ListRequest {
            kind: "Pod".to_owned(),
            namespace: NAMESPACE.to_owned(),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner()
        .items
        .len();
    let quota = client
        .get(api::GetRequest {
            key: Some(api::ObjectKey {
                kind: "ResourceQuota".to_owned(),
                namespace: NAMESPACE.to_owned(),
                name: "pods-10".to_owned(),
            }),
            consistency: api::Consistency::Linearizable as i32,
        })
        .await
        .ok()
        .and_then(|answer| Object::try_from(answer.into_inner()).ok())?;
    let Object::ResourceQuota(quota) = quota else {
        return None;
    };
    let used = quota.status?.used.get("pods").cloned()?;
    Some((pods, used))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_pass_a_quota() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    let mut clients = Vec::new();
    for master in cluster.masters() {
        clients.push(cluster.client(master.id).await.unwrap());
    }
    let setup = [
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"),
        format!(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: pods-10, namespace: {NAMESPACE}}}\nspec: {{hard: {{pods: '{HARD}'}}}}\n"
        ),
    ];
    for yaml in setup {
        clients[0]
            .create(api::CreateRequest {
                object: Some(TypedObject::from(parse_object(&yaml, "test").unwrap())),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap();
    }
    // Pods name the namespace's default ServiceAccount, which its controller creates.
    let deadline = Instant::now() + Duration::from_secs(30);
    while clients[0]
        .get(api::GetRequest {
            key: Some(api::ObjectKey {
                kind: "ServiceAccount".to_owned(),
                namespace: NAMESPACE.to_owned(),
                name: "default".to_owned(),
            }),
            consistency: api::Consistency::Linearizable as i32,
        })
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "no default ServiceAccount in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let outcomes: Vec<Outcome> = futures::stream::iter(0..CREATES)
        .map(|i| create(clients[i % clients.len()].clone(), i))
        .buffer_unordered(CREATES)
        .collect()
        .await;
    let created = outcomes.iter().filter(|o| **o == Outcome::Created).count();
    assert_eq!(created, HARD, "{outcomes:?}");
    for outcome in &outcomes {
        if let Outcome::Refused(message) = outcome {
            assert!(
                message.contains("exceeded quota: pods-10") && message.contains("limited: pods=10"),
                "a refusal names the quota and its limit: {message}"
            );
        }
    }

    // Every master lists exactly ten pods and reports ten used.
    for client in &mut clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = pods_and_used(client).await;
            if seen == Some((HARD, HARD.to_string())) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pods listed and status.used.pods: {seen:?}, not ({HARD}, {HARD})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
