//! Masters restarted with other Service ranges keep every Service's values, allocate new
//! ones from the new ranges, and the new leader's repair pass reports the values outside
//! them as Warning events about their Services (`ClusterIPOutOfRange`, `PortOutOfRange`),
//! also when its first writes are refused (a repair pass is tried again after a back-off).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaos_tests::{AdminClient, Cluster};
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{parse_object, Object};

use crate::support::list_default;

async fn create(client: &mut AdminClient, yaml: &str) -> Object {
    let object = TypedObject::from(parse_object(yaml, "test").unwrap());
    let created = client
        .create(api::CreateRequest {
            object: Some(object),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create: {}", e.message()));
    Object::try_from(created.into_inner()).unwrap()
}

fn values(object: &Object) -> (String, i32) {
    let Object::Service(service) = object else {
        panic!("not a Service: {object:?}")
    };
    let spec = service.spec.clone().unwrap_or_default();
    (spec.cluster_ip, spec.ports[0].node_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_outside_a_changed_range_are_reported_by_the_leaders_repair_pass() {
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--service-cluster-ip-range",
            "10.200.0.0/24",
            "--service-node-port-range",
            "30000-30099",
        ],
    )
    .await
    .expect("a three-master cluster starts");
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let mut client = cluster.client(leader).await.unwrap();
    let old = create(
        &mut client,
        "apiVersion: v1\nkind: Service\nmetadata: {name: old, namespace: default}\nspec: {type: NodePort, clusterIP: 10.200.0.77, selector: {app: old}, ports: [{port: 80, nodePort: 30050}]}\n",
    )
    .await;
    assert_eq!(values(&old), ("10.200.0.77".to_owned(), 30050));

    cluster.set_extra_flags(&[
        "--service-cluster-ip-range",
        "10.201.0.0/24",
        "--service-node-port-range",
        "31000-31099",
    ]);
    for id in 1..=3 {
        cluster.kill(id).unwrap();
    }
    for id in 1..=3 {
        cluster.restart(id).unwrap();
    }
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader after the restart");
    let mut client = cluster.client(leader).await.unwrap();

    // New Services come from the new ranges; the old one keeps its values.
    let new = create(
        &mut client,
        "apiVersion: v1\nkind: Service\nmetadata: {name: new, namespace: default}\nspec: {type: NodePort, selector: {app: new}, ports: [{port: 80}]}\n",
    )
    .await;
    let (ip, port) = values(&new);
    assert!(ip.starts_with("10.201.0."), "{ip}");
    assert!((31000..=31099).contains(&port), "{port}");
    let services = list_default(&mut client, "Service").await.unwrap();
    let kept = services
        .iter()
        .find(|o| o.metadata().name == "old")
        .expect("old is still there");
    assert_eq!(values(kept), ("10.200.0.77".to_owned(), 30050));

    // The new leader's first repair pass reports what lies outside the new ranges.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = list_default(&mut client, "Event").await.unwrap_or_default();
        let reasons: BTreeSet<String> = events
            .iter()
            .filter_map(|o| match o {
                Object::Event(e)
                    if e.involved_object
                        .as_ref()
                        .is_some_and(|r| r.name == "old" && r.kind == "Service")
                        && e.r#type == "Warning" =>
                {
                    Some(e.reason.clone())
                }
                _ => None,
            })
            .collect();
        if reasons.contains("ClusterIPOutOfRange") && reasons.contains("PortOutOfRange") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no out-of-range events about Service old: {reasons:?}\nthe masters' repair and authorization lines:\n{}",
            repair_lines(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every master's log lines about the repair pass or refused writes, for a failure message.
fn repair_lines(cluster: &Cluster) -> String {
    (1..=3)
        .flat_map(|id| {
            cluster
                .log(id)
                .lines()
                .filter(|l| l.contains("repair") || l.contains("forbidden") || l.contains("leader"))
                .map(|l| format!("m{id}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
