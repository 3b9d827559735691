use super::*;
use crate::testing::*;

fn svc_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, "default", name)
}

/// The Endpoints a reconcile writes (created or updated), if any.
fn written(r: &Reconciled) -> Option<v1::Endpoints> {
    r.actions.iter().find_map(|a| match a {
        Action::Create(Object::Endpoints(ep)) | Action::Update(Object::Endpoints(ep)) => {
            Some(ep.clone())
        }
        _ => None,
    })
}

/// Each subset as (ready pod names, not-ready pod names, ports as name:port).
fn shape(ep: &v1::Endpoints) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let names = |list: &[EndpointAddress]| -> Vec<String> {
        list.iter()
            .map(|a| {
                let pod = a.target_ref.as_ref().map_or("?", |r| r.name.as_str());
                format!("{pod}@{}", a.ip)
            })
            .collect()
    };
    ep.subsets
        .iter()
        .map(|s| {
            (
                names(&s.addresses),
                names(&s.not_ready_addresses),
                s.ports
                    .iter()
                    .map(|p| format!("{}:{}/{}", p.name, p.port, p.protocol))
                    .collect(),
            )
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The cache after the reconcile's Endpoints write was stored.
fn stored(mut cache: Cache, r: &Reconciled) -> Cache {
    let mut ep = written(r).expect("an Endpoints write");
    let m = ep.metadata.get_or_insert_with(Default::default);
    m.uid = "ep-uid".to_owned();
    m.resource_version = "7".to_owned();
    cache.upsert(Object::Endpoints(ep));
    cache
}

#[test]
fn ready_pods_are_addresses_and_unready_ones_not_ready_addresses() {
    let svc = service("default", "web").port("http", 80, "8080").build();
    let cache = Cache::from_objects([
        svc.clone(),
        pod("default", "web-a")
            .label("app", "web")
            .node("n1")
            .serving("10.244.1.5", true)
            .build(),
        pod("default", "web-b")
            .label("app", "web")
            .node("n2")
            .serving("10.244.2.3", false)
            .build(),
        // No address yet, finished, or selected by nothing: not endpoints.
        pod("default", "web-pending").label("app", "web").build(),
        pod("default", "web-done")
            .label("app", "web")
            .serving("10.244.1.9", true)
            .phase("Succeeded")
            .build(),
        pod("default", "db")
            .label("app", "db")
            .serving("10.244.1.7", true)
            .build(),
        pod("other", "web-x")
            .label("app", "web")
            .serving("10.244.1.8", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    assert!(matches!(r.actions.as_slice(), [Action::Create(_)]), "{r:?}");
    let ep = written(&r).unwrap();
    assert_eq!(
        shape(&ep),
        [(
            strings(&["web-a@10.244.1.5"]),
            strings(&["web-b@10.244.2.3"]),
            strings(&["http:8080/TCP"])
        )]
    );
    let m = ep.metadata.as_ref().unwrap();
    assert_eq!((m.name.as_str(), m.namespace.as_str()), ("web", "default"));
    assert_eq!(m.owner_references.len(), 1);
    assert_eq!(m.owner_references[0].uid, "uid-default-web");
    assert_eq!(m.owner_references[0].kind, "Service");
    assert_eq!(m.owner_references[0].controller, Some(true));
    let a = &ep.subsets[0].addresses[0];
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let target = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_str(),
            target.namespace.as_str(),
            target.uid.as_str()
        ),
        ("Pod", "default", "uid-default-web-a")
    );
}

#[test]
fn named_target_ports_resolve_per_pod_and_group_pods_by_ports() {
    let svc = service("default", "web").port("http", 80, "web").build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "old")
            .label("app", "web")
            .container_port("web", 8080)
            .serving("10.0.0.2", true)
            .build(),
        pod("default", "new")
            .label("app", "web")
            .container_port("web", 9090)
            .serving("10.0.0.3", true)
            .build(),
        pod("default", "old-2")
            .label("app", "web")
            .container_port("web", 8080)
            .serving("10.0.0.1", false)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    assert_eq!(
        shape(&written(&r).unwrap()),
        [
            (
                strings(&["old@10.0.0.2"]),
                strings(&["old-2@10.0.0.1"]),
                strings(&["http:8080/TCP"])
            ),
            (
                strings(&["new@10.0.0.3"]),
                vec![],
                strings(&["http:9090/TCP"])
            ),
        ]
    );
    assert_eq!(r.events().count(), 0);
}

#[test]
fn a_pod_without_the_named_port_is_left_out_of_that_port_and_reported() {
    let svc = service("default", "web")
        .port("http", 80, "web")
        .port("metrics", 9100, "")
        .build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "full")
            .label("app", "web")
            .container_port("web", 8080)
            .serving("10.0.0.1", true)
            .build(),
        pod("default", "bare")
            .label("app", "web")
            .serving("10.0.0.2", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    assert_eq!(
        shape(&written(&r).unwrap()),
        [
            (
                strings(&["full@10.0.0.1"]),
                vec![],
                strings(&["http:8080/TCP", "metrics:9100/TCP"])
            ),
            (
                strings(&["bare@10.0.0.2"]),
                vec![],
                strings(&["metrics:9100/TCP"])
            ),
        ]
    );
    let events: Vec<_> = r.events().collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_type, EventType::Warning);
    assert_eq!(events[0].reason, TARGET_PORT_NOT_FOUND);
    assert_eq!(events[0].involved, svc_key("web"));
    assert!(
        events[0].message.contains("pod bare") && events[0].message.contains("\"web\""),
        "{}",
        events[0].message
    );
}

#[test]
fn a_pod_serving_none_of_the_ports_is_no_endpoint() {
    let svc = service("default", "web").port("http", 80, "web").build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "bare")
            .label("app", "web")
            .serving("10.0.0.2", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    assert!(written(&r).unwrap().subsets.is_empty());
    assert_eq!(r.events().count(), 1);
}

#[test]
fn terminating_pods_leave_the_endpoints() {
    let svc = service("default", "web").port("", 80, "").build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "going")
            .label("app", "web")
            .serving("10.0.0.1", true)
            .deleting()
            .build(),
        pod("default", "staying")
            .label("app", "web")
            .serving("10.0.0.2", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    assert_eq!(
        shape(&written(&r).unwrap()),
        [(
            strings(&["staying@10.0.0.2"]),
            vec![],
            strings(&[":80/TCP"])
        )]
    );
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let svc = service("default", "db")
        .port("", 5432, "")
        .headless()
        .publish_not_ready()
        .build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "db-0")
            .label("app", "db")
            .serving("10.0.0.1", false)
            .hostname("db-0", "db")
            .build(),
        pod("default", "db-1")
            .label("app", "db")
            .serving("10.0.0.2", true)
            .deleting()
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("db"));
    let ep = written(&r).unwrap();
    assert_eq!(
        shape(&ep),
        [(
            strings(&["db-0@10.0.0.1", "db-1@10.0.0.2"]),
            vec![],
            strings(&[":5432/TCP"])
        )]
    );
    assert_eq!(ep.subsets[0].addresses[0].hostname, "db-0");
    assert!(ep
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .contains_key(HEADLESS_SERVICE_LABEL));
}

#[test]
fn a_service_without_a_selector_keeps_user_written_endpoints() {
    let svc = service("default", "external")
        .no_selector()
        .port("", 5432, "")
        .build();
    let user = Object::Endpoints(v1::Endpoints {
        metadata: Some(ObjectMeta {
            name: "external".to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        subsets: vec![EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: "192.0.2.10".to_owned(),
                ..Default::default()
            }],
            ports: vec![EndpointPort {
                port: 5432,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    let cache = Cache::from_objects([
        svc,
        user,
        pod("default", "p")
            .label("app", "external")
            .serving("10.0.0.1", true)
            .build(),
    ]);
    assert_eq!(
        reconcile(&cache, &svc_key("external")),
        Reconciled::nothing()
    );
    // And no Service at all: nothing to manage.
    assert_eq!(reconcile(&cache, &svc_key("gone")), Reconciled::nothing());
}

#[test]
fn unchanged_endpoints_are_not_written_again_and_a_readiness_change_is() {
    let svc = service("default", "web").port("http", 80, "8080").build();
    let ready = pod("default", "web-a")
        .label("app", "web")
        .node("n1")
        .serving("10.0.0.1", true);
    let mut cache = Cache::from_objects([svc, ready.build()]);
    let first = reconcile(&cache, &svc_key("web"));
    cache = stored(cache, &first);
    assert_eq!(reconcile(&cache, &svc_key("web")), Reconciled::nothing());

    cache.upsert(
        pod("default", "web-a")
            .label("app", "web")
            .node("n1")
            .serving("10.0.0.1", false)
            .build(),
    );
    let r = reconcile(&cache, &svc_key("web"));
    assert!(matches!(r.actions.as_slice(), [Action::Update(_)]), "{r:?}");
    let ep = written(&r).unwrap();
    assert_eq!(ep.metadata.as_ref().unwrap().resource_version, "7");
    assert_eq!(
        shape(&ep),
        [(
            vec![],
            strings(&["web-a@10.0.0.1"]),
            strings(&["http:8080/TCP"])
        )]
    );
}

#[test]
fn endpoints_left_by_an_earlier_service_of_the_name_are_taken_over() {
    let svc = service("default", "web").port("", 80, "").build();
    let old = service("default", "web").uid("old-uid").build();
    let mut stale = v1::Endpoints {
        metadata: Some(ObjectMeta {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            owner_references: vec![controller_owner_reference(&old)],
            ..Default::default()
        }),
        ..Default::default()
    };
    stale.subsets = Vec::new();
    let cache = Cache::from_objects([svc, Object::Endpoints(stale)]);
    let r = reconcile(&cache, &svc_key("web"));
    let refs = written(&r).unwrap().metadata.unwrap().owner_references;
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].uid, "uid-default-web");
}

#[test]
fn endpoints_over_capacity_keep_ready_addresses_first_and_say_so() {
    let svc = service("default", "big").port("", 80, "").build();
    let mut objects = vec![svc];
    for i in 0..1100 {
        let ready = i < 950;
        objects.push(
            pod("default", &format!("p{i:04}"))
                .label("app", "big")
                .serving(&format!("10.1.{}.{}", i / 250, i % 250 + 1), ready)
                .build(),
        );
    }
    let mut cache = Cache::from_objects(objects);
    let r = reconcile(&cache, &svc_key("big"));
    let ep = written(&r).unwrap();
    let ready: usize = ep.subsets.iter().map(|s| s.addresses.len()).sum();
    let not_ready: usize = ep.subsets.iter().map(|s| s.not_ready_addresses.len()).sum();
    assert_eq!((ready, not_ready), (950, 50));
    assert_eq!(
        ep.metadata
            .as_ref()
            .unwrap()
            .annotations
            .get(OVER_CAPACITY_ANNOTATION)
            .map(String::as_str),
        Some("truncated")
    );
    cache = stored(cache, &r);
    assert_eq!(reconcile(&cache, &svc_key("big")), Reconciled::nothing());

    // Too many ready ones: only ready addresses, 1,000 of them; back under the limit the
    // annotation goes.
    for i in 950..1100 {
        cache.upsert(
            pod("default", &format!("p{i:04}"))
                .label("app", "big")
                .serving(&format!("10.1.{}.{}", i / 250, i % 250 + 1), true)
                .build(),
        );
    }
    let ep = written(&reconcile(&cache, &svc_key("big"))).unwrap();
    let ready: usize = ep.subsets.iter().map(|s| s.addresses.len()).sum();
    let not_ready: usize = ep.subsets.iter().map(|s| s.not_ready_addresses.len()).sum();
    assert_eq!((ready, not_ready), (MAX_ENDPOINTS_ADDRESSES, 0));
    for i in 10..1100 {
        cache.remove(&ObjectKey::new(Kind::Pod, "default", format!("p{i:04}")));
    }
    let ep = written(&reconcile(&cache, &svc_key("big"))).unwrap();
    assert_eq!(ep.subsets[0].addresses.len(), 10);
    assert!(ep.metadata.unwrap().annotations.is_empty());
}
