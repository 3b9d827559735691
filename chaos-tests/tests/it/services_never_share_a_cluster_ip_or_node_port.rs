//! 50 NodePort Services are created at once through all three masters while the leader
//! is killed with SIGKILL, on ranges small enough that the masters' random choices
//! collide: no two Services share a ClusterIP or a node port, every acknowledged Service
//! is there with the values it was acknowledged with, and once they are all deleted each
//! of their values can be asked for again by name (nothing stays reserved), as can the
//! values of a Service whose namespace was deleted whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_tests::{wait_until, AdminClient, Cluster};
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{parse_object, Object};

use crate::support::list_default;

const SERVICES: usize = 50;

/// ClusterIP and node ports of a Service.
type Values = (String, Vec<i32>);

fn values(object: &Object) -> Values {
    let Object::Service(service) = object else {
        panic!("not a Service: {object:?}")
    };
    let spec = service.spec.clone().unwrap_or_default();
    (
        spec.cluster_ip,
        spec.ports.iter().map(|p| p.node_port).collect(),
    )
}

fn service(name: &str, chosen: Option<&Values>) -> TypedObject {
    let (ip, ports) = match chosen {
        Some((ip, ports)) => (format!("clusterIP: {ip}, "), ports.clone()),
        None => (String::new(), vec![0, 0]),
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{type: NodePort, {ip}selector: {{app: {name}}}, ports: [{{name: http, port: 80, nodePort: {}}}, {{name: https, port: 443, nodePort: {}}}]}}\n",
        ports[0], ports[1]
    );
    TypedObject::from(parse_object(&yaml, "test").unwrap())
}

/// Creates `name` through the masters' clients, starting with `first`, until one
/// answers. `Some(values)` when acknowledged, `None` when it turned out to exist already
/// (an earlier attempt whose answer was lost did commit).
async fn create(
    clients: &[AdminClient],
    first: usize,
    name: &str,
    deadline: Instant,
) -> Option<Values> {
    while Instant::now() < deadline {
        for i in 0..clients.len() {
            let mut client = clients[(first + i) % clients.len()].clone();
            let request = api::CreateRequest {
                object: Some(service(name, None)),
                dry_run: false,
                field_manager: Default::default(),
            };
            match client.create(request).await {
                Ok(created) => {
                    let object = Object::try_from(created.into_inner()).unwrap();
                    return Some(values(&object));
                }
                Err(status) if status.code() == tonic::Code::AlreadyExists => return None,
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    panic!("{name} refused: {}", status.message())
                }
                Err(_) => continue,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} was never created")
}

/// The Services of the default namespace as some running master lists them.
async fn listed(cluster: &Cluster) -> BTreeMap<String, Values> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for master in cluster.masters().iter().filter(|m| m.is_running()) {
            let Ok(mut client) = cluster.client(master.id).await else {
                continue;
            };
            if let Some(objects) = list_default(&mut client, "Service").await {
                return objects
                    .iter()
                    .map(|o| (o.metadata().name.clone(), values(o)))
                    .collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no master lists Services")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_never_share_a_cluster_ip_or_node_port_across_a_leader_kill() {
    // 253 addresses for Services and 200 node ports for 50 Services × 2 ports.
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--service-cluster-ip-range",
            "10.200.0.0/24",
            "--service-node-port-range",
            "30000-30199",
        ],
    )
    .await
    .expect("a three-master cluster starts");
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.client(id).await.expect("a client per master"));
    }
    // A namespace deleted whole takes its Service along, and its values with it.
    let team_values: Values = ("10.200.0.250".to_owned(), vec![30198, 30199]);
    let mut first = clients[0].clone();
    for yaml in [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n".to_owned(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: team}\nspec: {type: NodePort, clusterIP: 10.200.0.250, ports: [{name: a, port: 1, nodePort: 30198}, {name: b, port: 2, nodePort: 30199}]}\n".to_owned(),
    ] {
        let object = TypedObject::from(parse_object(&yaml, "test").unwrap());
        first
            .create(api::CreateRequest {
                object: Some(object),
                dry_run: false, field_manager: Default::default() })
            .await
            .expect("team/db created");
    }
    first
        .delete(api::DeleteRequest {
            key: Some(api::ObjectKey {
                kind: "Namespace".into(),
                namespace: String::new(),
                name: "team".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("namespace team deleted");
    let again = first
        .create(api::CreateRequest {
            object: Some(service("db-again", Some(&team_values))),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("team/db's values are free again: {}", e.message()));
    assert_eq!(
        values(&Object::try_from(again.into_inner()).unwrap()),
        team_values
    );

    let clients = Arc::new(clients);
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);

    // Every create runs in its own task, starting with its own master.
    let mut tasks = Vec::new();
    for i in 0..SERVICES {
        let (clients, done) = (clients.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("svc-{i:02}");
            let acknowledged = create(&clients, i % 3, &name, deadline).await;
            done.fetch_add(1, Ordering::SeqCst);
            (name, acknowledged)
        }));
    }
    // Kill the leader once some creates are through and the rest are in flight.
    wait_until(Duration::from_secs(60), "ten Services created", || {
        done.load(Ordering::SeqCst) >= 10
    })
    .await
    .expect("creates progress");
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let killed_at = done.load(Ordering::SeqCst);
    cluster.kill(leader).expect("kill -9 the leader");

    let mut acknowledged: BTreeMap<String, Values> = BTreeMap::new();
    for task in tasks {
        let (name, values) = task.await.expect("create task");
        if let Some(values) = values {
            acknowledged.insert(name, values);
        }
    }
    assert!(
        killed_at < SERVICES,
        "the leader was killed only after every create was through"
    );
    cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a new leader");

    // The masters create the `kubernetes` Service once they have a leader; wait for it.
    let until = Instant::now() + Duration::from_secs(30);
    let services = loop {
        let services = listed(&cluster).await;
        if services.contains_key("kubernetes") || Instant::now() > until {
            break services;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ours: BTreeMap<&String, &Values> = services
        .iter()
        .filter(|(name, _)| name.starts_with("svc-"))
        .collect();
    assert_eq!(ours.len(), SERVICES, "every Service exists: {ours:?}");
    assert_eq!(services.get("db-again"), Some(&team_values));
    for (name, values) in &acknowledged {
        assert_eq!(
            ours.get(name).copied(),
            Some(values),
            "{name} as acknowledged"
        );
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (name, (ip, node_ports)) in &services {
        assert!(ips.insert(ip.clone()), "ClusterIP {ip} of {name} is shared");
        for port in node_ports.iter().filter(|p| **p != 0) {
            assert!(
                (30000..=30199).contains(port),
                "{name}'s node port {port} is out of range"
            );
            assert!(ports.insert(*port), "node port {port} of {name} is shared");
        }
    }
    assert_eq!(
        ports.len(),
        2 * SERVICES + 2,
        "every Service of this test, db-again too"
    );
    assert_eq!(
        services.get("kubernetes").map(|v| v.0.as_str()),
        Some("10.200.0.1"),
        "the API Service has the range's first address"
    );

    // Its Endpoints name masters' API addresses (each master writes what it sees).
    let mut client = cluster.client(1 + (leader % 3)).await.unwrap();
    let master_ports: BTreeSet<i32> = cluster
        .masters()
        .iter()
        .map(|m| i32::from(m.client_port))
        .collect();
    let until = Instant::now() + Duration::from_secs(30);
    // Every master wrote itself in when it started: all three are listed (the killed one
    // included: it is still a member).
    let api = loop {
        let endpoints = list_default(&mut client, "Endpoints")
            .await
            .unwrap_or_default();
        let found = endpoints.into_iter().find_map(|o| match o {
            Object::Endpoints(e) if e.metadata.as_ref().is_some_and(|m| m.name == "kubernetes") => {
                Some(e)
            }
            _ => None,
        });
        let listed: BTreeSet<i32> = found
            .iter()
            .flat_map(|e| {
                e.subsets
                    .iter()
                    .flat_map(|s| s.ports.iter().map(|p| p.port))
            })
            .collect();
        match found {
            Some(found) if listed == master_ports => break found,
            _ if Instant::now() > until => {
                panic!("the kubernetes Endpoints list {listed:?}, not {master_ports:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    for subset in &api.subsets {
        assert_eq!(subset.ports[0].name, "https", "{api:?}");
        assert!(
            subset.addresses.iter().all(|a| a.ip == "127.0.0.1"),
            "{api:?}"
        );
    }

    // Delete them all; then every value can be had again, asked for by value.
    let mut client = cluster
        .client(
            cluster
                .wait_for_leader(Duration::from_secs(20))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    for name in ours.keys() {
        client
            .delete(api::DeleteRequest {
                key: Some(api::ObjectKey {
                    kind: "Service".into(),
                    namespace: "default".into(),
                    name: (*name).clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }
    for (i, held) in ours.values().enumerate() {
        let name = format!("again-{i:02}");
        let created = client
            .create(api::CreateRequest {
                object: Some(service(&name, Some(held))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap_or_else(|e| panic!("{name} asking for {held:?}: {}", e.message()));
        let object = Object::try_from(created.into_inner()).unwrap();
        assert_eq!(&values(&object), *held);
    }
}
