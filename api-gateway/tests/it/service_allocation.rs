//! Services' ClusterIPs and NodePorts through the registry on an in-memory store: chosen
//! from the ranges, user-chosen values honoured or refused naming the Service holding
//! them, immutable, moved with type changes, freed on delete and by the repair pass,
//! never shared even when many creates race.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use api_gateway::testing::MemKv;
use api_gateway::{KvStore, Registry, RegistryError, ServiceRanges, Subresource};
use raft_store::kv::{DeleteRequest, KeyRange, Op, RangeRequest};
use rafter_proto::{parse_object, DeleteOptions, Kind, Object, ReadConsistency};

fn registry() -> Registry<MemKv> {
    Registry::new(Arc::new(MemKv::new().unwrap()))
}

fn service(yaml: &str) -> Object {
    parse_object(&format!("apiVersion: v1\nkind: Service\n{yaml}"), "test").unwrap()
}

fn spec(object: &Object) -> rafter_proto::v1::ServiceSpec {
    match object {
        Object::Service(s) => s.spec.clone().unwrap(),
        other => panic!("not a service: {other:?}"),
    }
}

async fn get(r: &Registry<MemKv>, ns: &str, name: &str) -> Object {
    r.get(Kind::Service, ns, name, ReadConsistency::Linearizable)
        .await
        .unwrap()
}

/// Every reservation key and the Service it names.
async fn reservations(r: &Registry<MemKv>) -> Vec<(String, String)> {
    let response = r
        .store()
        .range(
            RangeRequest::new(KeyRange::prefix("/registry/allocations/")),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    response
        .kvs
        .iter()
        .map(|kv| {
            let owner: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                format!(
                    "{}/{}",
                    owner["namespace"].as_str().unwrap(),
                    owner["name"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

fn invalid(e: RegistryError) -> Vec<String> {
    match e {
        RegistryError::Invalid { errors, .. } => errors,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn services_get_distinct_cluster_ips_and_node_ports_from_the_ranges() {
    let r = registry();
    let cidr = r.service_ranges().service_cidr();
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (name, ty) in [("a", "ClusterIP"), ("b", "NodePort"), ("c", "LoadBalancer")] {
        let created = r
            .create(
                service(&format!(
                    "metadata: {{name: {name}}}\nspec: {{type: {ty}, selector: {{app: x}}, ports: [{{name: http, port: 80}}, {{name: dns, port: 53, protocol: UDP}}]}}"
                )),
                false,
            )
            .await
            .unwrap();
        let s = spec(&created);
        let ip: Ipv4Addr = s.cluster_ip.parse().unwrap();
        assert!(cidr.contains(ip), "{ip} outside {cidr}");
        assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 1), "the API Service's address");
        assert_eq!(s.cluster_ips, std::slice::from_ref(&s.cluster_ip));
        assert!(ips.insert(ip), "{ip} given twice");
        for p in &s.ports {
            if ty == "ClusterIP" {
                assert_eq!(p.node_port, 0);
            } else {
                assert!((30000..=32767).contains(&p.node_port), "{}", p.node_port);
                assert!(ports.insert(p.node_port), "{} given twice", p.node_port);
            }
        }
        // As stored, not only as answered.
        assert_eq!(spec(&get(&r, "default", name).await), s);
    }
    let held = reservations(&r).await;
    // 3 IPs and 2 ports for each of b and c.
    assert_eq!(held.len(), 7, "{held:?}");
    for ip in &ips {
        assert!(held
            .iter()
            .any(|(k, _)| *k == format!("/registry/allocations/serviceips/{ip}")));
    }
}

#[tokio::test]
async fn user_chosen_values_are_honoured_and_taken_ones_refused_naming_the_holder() {
    let r = registry();
    let db = r
        .create(
            service("metadata: {name: db}\nspec: {clusterIP: 10.96.0.20, ports: [{port: 5432}]}"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(spec(&db).cluster_ip, "10.96.0.20");
    let web = r
        .create(
            service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(spec(&web).ports[0].node_port, 30080);

    let err = r
        .create(
            service("metadata: {name: db2, namespace: default}\nspec: {clusterIP: 10.96.0.20, ports: [{port: 5432}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.clusterIP: Invalid value: \"10.96.0.20\": provided IP is already allocated (by Service \"default/db\")"]
    );
    // A free IP asked for together with a taken port: refused, and the IP stays free.
    let err = r
        .create(
            service("metadata: {name: web2}\nspec: {type: NodePort, clusterIP: 10.96.0.30, ports: [{name: a, port: 80, nodePort: 30081}, {name: b, port: 81, nodePort: 30080}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated (by Service \"default/web\")"]
    );
    let held: Vec<String> = reservations(&r).await.into_iter().map(|(k, _)| k).collect();
    assert!(
        !held
            .iter()
            .any(|k| k.ends_with("/10.96.0.30") || k.ends_with("/30081")),
        "{held:?}"
    );
    assert!(matches!(
        r.get(
            Kind::Service,
            "default",
            "web2",
            ReadConsistency::Linearizable
        )
        .await,
        Err(RegistryError::NotFound { .. })
    ));
    // The same port number under another protocol is another value.
    r.create(
        service("metadata: {name: dns}\nspec: {type: NodePort, ports: [{port: 53, protocol: UDP, nodePort: 30080}]}"),
        false,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn values_outside_the_ranges_and_the_api_services_address_are_refused() {
    let r = registry();
    let err = r
        .create(
            service("metadata: {name: a}\nspec: {clusterIP: 10.0.0.5, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.clusterIP: Invalid value: \"10.0.0.5\": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    );
    let err = r
        .create(
            service(
                "metadata: {name: a}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 8080}]}",
            ),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"]
    );
    let err = r
        .create(
            service("metadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert!(invalid(err)[0].contains("reserved for Service \"default/kubernetes\""));
    let err = r
        .create(
            service("metadata: {name: a}\nspec: {ports: [{port: 80, nodePort: 30080}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
    assert!(reservations(&r).await.is_empty());
    // The API Service itself gets it; creating it again is AlreadyExists (as every
    // master does at start), not its own address being taken.
    let yaml = "metadata: {name: kubernetes, namespace: default}\nspec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}";
    let api = r.create(service(yaml), false).await.unwrap();
    assert_eq!(spec(&api).cluster_ip, "10.96.0.1");
    let again = r.create(service(yaml), false).await.unwrap_err();
    assert!(
        matches!(again, RegistryError::AlreadyExists { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn headless_and_external_name_services_hold_nothing() {
    let r = registry();
    let headless = r
        .create(
            service("metadata: {name: h}\nspec: {clusterIP: None, selector: {app: x}, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(spec(&headless).cluster_ip, "None");
    let external = r
        .create(
            service(
                "metadata: {name: e}\nspec: {type: ExternalName, externalName: db.example.com}",
            ),
            false,
        )
        .await
        .unwrap();
    assert_eq!(spec(&external).cluster_ip, "");
    assert!(reservations(&r).await.is_empty());
    let err = r
        .create(
            service("metadata: {name: e2}\nspec: {type: ExternalName, externalName: db.example.com, clusterIP: 10.96.0.9}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.clusterIP: Forbidden: may not be set for ExternalName services"]
    );
}

#[tokio::test]
async fn cluster_ip_is_immutable_and_an_update_leaving_values_out_keeps_them() {
    let r = registry();
    let created = r
        .create(
            service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap();
    let before = spec(&created);
    let mut changed = created.clone();
    if let Object::Service(s) = &mut changed {
        s.spec.as_mut().unwrap().cluster_ip = "10.96.0.77".into();
    }
    let err = r
        .update(changed, Subresource::Main, false)
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.clusterIP: Invalid value: \"10.96.0.77\": field is immutable"]
    );
    let mut headless = created.clone();
    if let Object::Service(s) = &mut headless {
        s.spec.as_mut().unwrap().cluster_ip = "None".into();
    }
    assert!(r.update(headless, Subresource::Main, false).await.is_err());

    // The manifest applied again (no clusterIP, no nodePort) keeps both.
    let mut again = service(
        "metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}], selector: {app: web}}",
    );
    again.metadata_mut().namespace = "default".into();
    let updated = r.update(again, Subresource::Main, false).await.unwrap();
    let after = spec(&updated);
    assert_eq!(after.cluster_ip, before.cluster_ip);
    assert_eq!(after.ports[0].node_port, before.ports[0].node_port);
    assert_eq!(reservations(&r).await.len(), 2);
}

#[tokio::test]
async fn type_and_port_changes_allocate_and_free_in_the_same_write() {
    let r = registry();
    let created = r
        .create(
            service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}"),
            false,
        )
        .await
        .unwrap();
    let ip = spec(&created).cluster_ip;
    let keys =
        |held: Vec<(String, String)>| -> Vec<String> { held.into_iter().map(|(k, _)| k).collect() };

    // NodePort → ClusterIP: the node port is dropped and freed; the IP stays.
    let cluster_ip = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                s.spec.as_mut().unwrap().r#type = "ClusterIP".into();
            }
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(spec(&cluster_ip).ports[0].node_port, 0);
    assert_eq!(spec(&cluster_ip).cluster_ip, ip);
    assert_eq!(
        keys(reservations(&r).await),
        [format!("/registry/allocations/serviceips/{ip}")]
    );
    // Another Service may have 30080 now.
    r.create(
        service(
            "metadata: {name: other}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}",
        ),
        false,
    )
    .await
    .unwrap();

    // ClusterIP → LoadBalancer: a node port is chosen for it.
    let lb = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                s.spec.as_mut().unwrap().r#type = "LoadBalancer".into();
            }
            Ok(true)
        })
        .await
        .unwrap();
    let port = spec(&lb).ports[0].node_port;
    assert!((30000..=32767).contains(&port) && port != 30080, "{port}");

    // A port added takes a node port of its own; a port removed frees its own.
    let grown = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                let spec = s.spec.as_mut().unwrap();
                spec.ports[0].name = "http".into();
                spec.ports.push(rafter_proto::v1::ServicePort {
                    name: "https".into(),
                    port: 443,
                    ..Default::default()
                });
            }
            Ok(true)
        })
        .await
        .unwrap();
    let https = spec(&grown).ports[1].node_port;
    assert!(https != 0 && https != port);
    let shrunk = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                s.spec.as_mut().unwrap().ports.remove(0);
            }
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(spec(&shrunk).ports[0].node_port, https);
    let held = keys(reservations(&r).await);
    assert!(
        !held.contains(&format!("/registry/allocations/nodeports/tcp/{port}")),
        "{held:?}"
    );
    assert!(
        held.contains(&format!("/registry/allocations/nodeports/tcp/{https}")),
        "{held:?}"
    );

    // → ExternalName: the IP and the node port go; back to ClusterIP: a new IP.
    let external = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                let spec = s.spec.as_mut().unwrap();
                spec.r#type = "ExternalName".into();
                spec.external_name = "db.example.com".into();
            }
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(spec(&external).cluster_ip, "");
    assert_eq!(spec(&external).ports[0].node_port, 0);
    let held = reservations(&r).await;
    assert!(
        held.iter().all(|(_, owner)| owner == "default/other"),
        "{held:?}"
    );
    assert_eq!(held.len(), 2, "other's IP and port: {held:?}");
    let back = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                let spec = s.spec.as_mut().unwrap();
                spec.r#type = "ClusterIP".into();
                spec.external_name.clear();
            }
            Ok(true)
        })
        .await
        .unwrap();
    let new_ip = spec(&back).cluster_ip;
    assert!(new_ip.parse::<Ipv4Addr>().is_ok(), "{new_ip:?}");
    assert!(keys(reservations(&r).await)
        .contains(&format!("/registry/allocations/serviceips/{new_ip}")));
}

#[tokio::test]
async fn deleting_a_service_frees_its_values_for_the_next() {
    let r = registry();
    let yaml = "metadata: {name: web}\nspec: {type: NodePort, clusterIP: 10.96.5.5, ports: [{port: 80, nodePort: 31000}]}";
    r.create(service(yaml), false).await.unwrap();
    r.delete(
        Kind::Service,
        "default",
        "web",
        &DeleteOptions::default(),
        false,
    )
    .await
    .unwrap();
    assert!(reservations(&r).await.is_empty());
    let again = yaml.replace("name: web", "name: web2");
    let created = r.create(service(&again), false).await.unwrap();
    assert_eq!(spec(&created).cluster_ip, "10.96.5.5");
    // A dry run chooses and checks but reserves nothing.
    let dry = r
        .create(
            service("metadata: {name: dry}\nspec: {type: NodePort, ports: [{port: 80}]}"),
            true,
        )
        .await
        .unwrap();
    assert!(!spec(&dry).cluster_ip.is_empty() && spec(&dry).ports[0].node_port != 0);
    assert_eq!(reservations(&r).await.len(), 2);
}

#[tokio::test]
async fn a_namespace_delete_frees_its_services_values_in_the_same_write() {
    let r = registry();
    r.create(
        parse_object(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}",
            "ns",
        )
        .unwrap(),
        false,
    )
    .await
    .unwrap();
    r.create(
        service("metadata: {name: db, namespace: team}\nspec: {type: NodePort, clusterIP: 10.96.7.7, ports: [{port: 5432, nodePort: 31111}]}"),
        false,
    )
    .await
    .unwrap();
    r.create(
        service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}"),
        false,
    )
    .await
    .unwrap();
    r.delete(
        Kind::Namespace,
        "",
        "team",
        &DeleteOptions::default(),
        false,
    )
    .await
    .unwrap();
    let held = reservations(&r).await;
    assert_eq!(held.len(), 2, "web's IP and port only: {held:?}");
    assert!(held.iter().all(|(_, owner)| owner == "default/web"));
    r.create(
        service("metadata: {name: db}\nspec: {type: NodePort, clusterIP: 10.96.7.7, ports: [{port: 5432, nodePort: 31111}]}"),
        false,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_repair_pass_releases_reservations_whose_service_is_gone_and_keeps_live_ones() {
    let r = registry();
    r.create(
        service("metadata: {name: db, namespace: kube-system}\nspec: {type: NodePort, clusterIP: 10.96.7.7, ports: [{port: 5432, nodePort: 31111}]}"),
        false,
    )
    .await
    .unwrap();
    let live = r
        .create(
            service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap();
    // The Service goes without its values (as one created in a namespace while the
    // namespace's delete was being decided goes with the namespace).
    r.store()
        .write(
            Op::Delete(DeleteRequest::new(KeyRange::key(
                "/registry/core/services/kube-system/db",
            ))),
            None,
        )
        .await
        .unwrap();
    let err = r
        .create(
            service("metadata: {name: db}\nspec: {clusterIP: 10.96.7.7, ports: [{port: 5432}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert!(invalid(err)[0].contains("kube-system/db"));

    let report = r.repair_service_allocations().await.unwrap();
    assert_eq!(report.released.len(), 2, "{report:?}");
    assert!(report.problems.is_empty(), "{report:?}");
    let held = reservations(&r).await;
    assert_eq!(held.len(), 2, "web's IP and port stay: {held:?}");
    assert!(held.iter().all(|(_, owner)| owner == "default/web"));
    assert!(held
        .iter()
        .any(|(k, _)| k.ends_with(&spec(&live).cluster_ip)));
    r.create(
        service("metadata: {name: db}\nspec: {type: NodePort, clusterIP: 10.96.7.7, ports: [{port: 5432, nodePort: 31111}]}"),
        false,
    )
    .await
    .unwrap();
    // A second pass finds nothing to do.
    let report = r.repair_service_allocations().await.unwrap();
    assert!(
        report.released.is_empty() && report.restored.is_empty() && report.problems.is_empty(),
        "{report:?}"
    );
}

#[tokio::test]
async fn the_repair_pass_restores_a_missing_reservation_and_reports_it() {
    let r = registry();
    let created = r
        .create(
            service("metadata: {name: web}\nspec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap();
    r.store()
        .write(
            Op::Delete(DeleteRequest::new(KeyRange::key(
                "/registry/allocations/serviceips/10.96.9.9",
            ))),
            None,
        )
        .await
        .unwrap();
    let report = r.repair_service_allocations().await.unwrap();
    assert_eq!(report.restored.len(), 1, "{report:?}");
    assert_eq!(report.problems.len(), 1);
    let problem = &report.problems[0];
    assert_eq!(problem.reason, "ClusterIPNotAllocated");
    assert_eq!(
        (problem.namespace.as_str(), problem.name.as_str()),
        ("default", "web")
    );
    assert_eq!(problem.uid, created.metadata().uid);
    let err = r
        .create(
            service("metadata: {name: thief}\nspec: {clusterIP: 10.96.9.9, ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert!(invalid(err)[0].contains("default/web"));
}

#[tokio::test]
async fn a_full_range_is_a_clear_error_and_nothing_is_half_allocated() {
    // A /29 leaves 10.10.0.2-10.10.0.6 for Services (.1 is the API Service's).
    let ranges = ServiceRanges::parse("10.10.0.0/29", "30000-30002").unwrap();
    let r = registry().with_service_ranges(ranges);
    let mut ips = BTreeSet::new();
    for i in 0..5 {
        let created = r
            .create(
                service(&format!(
                    "metadata: {{name: s{i}}}\nspec: {{ports: [{{port: 80}}]}}"
                )),
                false,
            )
            .await
            .unwrap();
        ips.insert(spec(&created).cluster_ip);
    }
    let expected: BTreeSet<String> = (2..=6).map(|i| format!("10.10.0.{i}")).collect();
    assert_eq!(ips, expected);
    let err = r
        .create(
            service("metadata: {name: s5}\nspec: {ports: [{port: 80}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.clusterIP: Internal error: failed to allocate a ClusterIP: the range 10.10.0.0/29 is full"]
    );
    // Ports: free an IP, then ask for more node ports than the range has.
    r.delete(
        Kind::Service,
        "default",
        "s0",
        &DeleteOptions::default(),
        false,
    )
    .await
    .unwrap();
    let err = r
        .create(
            service("metadata: {name: np}\nspec: {type: NodePort, ports: [{name: a, port: 1}, {name: b, port: 2}, {name: c, port: 3}, {name: d, port: 4}]}"),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.ports[3].nodePort: Internal error: failed to allocate a node port: the range 30000-30002 is full"]
    );
    // Nothing of the refused Service is held: its IP and three ports are free.
    assert_eq!(reservations(&r).await.len(), 4);
    let fits = r
        .create(
            service("metadata: {name: np}\nspec: {type: NodePort, ports: [{name: a, port: 1}, {name: b, port: 2}, {name: c, port: 3}]}"),
            false,
        )
        .await
        .unwrap();
    let ports: BTreeSet<i32> = spec(&fits).ports.iter().map(|p| p.node_port).collect();
    assert_eq!(ports, [30000, 30001, 30002].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_racing_through_several_registries_never_share_a_value() {
    // A /26 (61 addresses for Services) and 64 node ports for 48 Services, each first
    // choice made before any is written (as 48 creates through three masters at once):
    // choices collide, the store refuses the second of two, and the loser chooses again.
    let store = MemKv::new().unwrap();
    let ranges = ServiceRanges::parse("10.20.0.0/26", "31000-31063").unwrap();
    let gated = Arc::new(Gated {
        inner: store.clone(),
        held: 48,
        barrier: tokio::sync::Barrier::new(48),
        writes: Default::default(),
    });
    let registries: Vec<Registry<Gated>> = (0..3)
        .map(|_| Registry::new(gated.clone()).with_service_ranges(ranges))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..48 {
        let r = registries[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            r.create(
                service(&format!(
                    "metadata: {{name: s{i}}}\nspec: {{type: NodePort, ports: [{{port: 80}}]}}"
                )),
                false,
            )
            .await
        }));
    }
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for task in tasks {
        let created = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("every create is written (the gate opens once all 48 are in)")
            .unwrap()
            .unwrap();
        let s = spec(&created);
        assert!(ips.insert(s.cluster_ip.clone()), "{} twice", s.cluster_ip);
        assert!(
            ports.insert(s.ports[0].node_port),
            "{} twice",
            s.ports[0].node_port
        );
    }
    let plain = Registry::new(Arc::new(store));
    assert_eq!(reservations(&plain).await.len(), 96);
}

#[tokio::test]
async fn an_update_asking_for_a_taken_port_is_refused_and_changes_nothing() {
    let r = registry();
    r.create(
        service(
            "metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}",
        ),
        false,
    )
    .await
    .unwrap();
    let created = r
        .create(
            service("metadata: {name: api}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30090}]}"),
            false,
        )
        .await
        .unwrap();
    let before = reservations(&r).await;
    let err = r
        .modify(Kind::Service, "default", "api", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                s.spec.as_mut().unwrap().ports[0].node_port = 30080;
            }
            Ok(true)
        })
        .await
        .unwrap_err();
    assert_eq!(
        invalid(err),
        ["spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated (by Service \"default/web\")"]
    );
    assert_eq!(reservations(&r).await, before);
    let stored = get(&r, "default", "api").await;
    assert_eq!(spec(&stored), spec(&created));
    assert_eq!(
        stored.metadata().resource_version,
        created.metadata().resource_version
    );

    // A dry-run move to a free port answers the move and keeps the old reservation.
    let mut moved = stored.clone();
    if let Object::Service(s) = &mut moved {
        s.spec.as_mut().unwrap().ports[0].node_port = 30100;
    }
    let answered = r
        .update(moved.clone(), Subresource::Main, true)
        .await
        .unwrap();
    assert_eq!(spec(&answered).ports[0].node_port, 30100);
    assert_eq!(reservations(&r).await, before);
    // The real one moves the reservation in the same write.
    r.update(moved, Subresource::Main, false).await.unwrap();
    let held: Vec<String> = reservations(&r).await.into_iter().map(|(k, _)| k).collect();
    assert!(held.contains(&"/registry/allocations/nodeports/tcp/30100".to_owned()));
    assert!(!held.contains(&"/registry/allocations/nodeports/tcp/30090".to_owned()));
}

/// Writes a Service as stored, bypassing the registry (as data from before allocation).
async fn store_raw(r: &Registry<MemKv>, object: &Object) {
    let key = format!(
        "/registry/core/services/{}/{}",
        object.metadata().namespace,
        object.metadata().name
    );
    r.store()
        .write(
            Op::Put(raft_store::kv::PutRequest::new(key, object.encode_to_vec())),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_value_a_service_lost_but_still_holds_is_its_own_and_repair_releases_it_if_unused() {
    let r = registry();
    let created = r
        .create(
            service("metadata: {name: web}\nspec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}"),
            false,
        )
        .await
        .unwrap();
    // The stored Service no longer shows the port; its reservation is still there.
    let mut lost = created.clone();
    if let Object::Service(s) = &mut lost {
        let spec = s.spec.as_mut().unwrap();
        spec.r#type = "ClusterIP".into();
        spec.ports[0].node_port = 0;
    }
    store_raw(&r, &lost).await;
    // Asking for it again is asking for its own value.
    let back = r
        .modify(Kind::Service, "default", "web", Subresource::Main, |o| {
            if let Object::Service(s) = o {
                let spec = s.spec.as_mut().unwrap();
                spec.r#type = "NodePort".into();
                spec.ports[0].node_port = 30080;
            }
            Ok(true)
        })
        .await
        .unwrap();
    assert_eq!(spec(&back).ports[0].node_port, 30080);

    // Lost again and not asked for: the repair pass releases it, the IP stays.
    store_raw(&r, &lost).await;
    let report = r.repair_service_allocations().await.unwrap();
    assert_eq!(report.released.len(), 1, "{report:?}");
    assert!(report.released[0].contains("30080/TCP"), "{report:?}");
    let held = reservations(&r).await;
    assert_eq!(
        held,
        [(
            format!(
                "/registry/allocations/serviceips/{}",
                spec(&created).cluster_ip
            ),
            "default/web".to_owned()
        )]
    );
}

/// The in-memory store, with its first `n` writes held until all `n` are in: every one of
/// them was planned on the same state, so their random choices collide.
struct Gated {
    inner: MemKv,
    held: usize,
    barrier: tokio::sync::Barrier,
    writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl KvStore for Gated {
    async fn range(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<raft_store::kv::RangeResponse, api_gateway::StoreError> {
        self.inner.range(request, consistency).await
    }

    async fn write(
        &self,
        op: Op,
        fence: Option<u64>,
    ) -> Result<raft_store::kv::KvResponse, api_gateway::StoreError> {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < self.held {
            self.barrier.wait().await;
        }
        self.inner.write(op, fence).await
    }

    async fn watch(
        &self,
        range: KeyRange,
        from: u64,
    ) -> Result<api_gateway::EventStream, api_gateway::StoreError> {
        self.inner.watch(range, from).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_racing_for_node_ports_with_a_resource_version_all_land_on_distinct_ports() {
    // 20 Services turn NodePort at once on 24 ports, every choice made before any is
    // written: choices collide, and a collision must make the update choose again, not
    // fail as if the Service had changed.
    let store = MemKv::new().unwrap();
    let ranges = ServiceRanges::parse("10.30.0.0/24", "30000-30023").unwrap();
    let plain = Registry::new(Arc::new(store.clone())).with_service_ranges(ranges);
    let mut created = Vec::new();
    for i in 0..20 {
        created.push(
            plain
                .create(
                    service(&format!(
                        "metadata: {{name: s{i}}}\nspec: {{ports: [{{port: 80}}]}}"
                    )),
                    false,
                )
                .await
                .unwrap(),
        );
    }
    let gated = Registry::new(Arc::new(Gated {
        inner: store,
        held: 20,
        barrier: tokio::sync::Barrier::new(20),
        writes: Default::default(),
    }))
    .with_service_ranges(ranges);
    let mut tasks = Vec::new();
    for mut object in created {
        assert!(!object.metadata().resource_version.is_empty());
        if let Object::Service(s) = &mut object {
            s.spec.as_mut().unwrap().r#type = "NodePort".into();
        }
        let r = gated.clone();
        tasks.push(tokio::spawn(async move {
            r.update(object, Subresource::Main, false).await
        }));
    }
    let mut ports = BTreeSet::new();
    for task in tasks {
        let updated = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("every update is written (the gate opens once all 20 are in)")
            .unwrap()
            .unwrap();
        let port = spec(&updated).ports[0].node_port;
        assert!((30000..=30023).contains(&port), "{port}");
        assert!(ports.insert(port), "{port} twice");
    }
    assert_eq!(reservations(&plain).await.len(), 40);
}
