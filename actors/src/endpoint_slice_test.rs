use super::*;
use crate::testing::*;

fn svc_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, "default", name)
}

fn created(r: &Reconciled) -> Vec<v1::EndpointSlice> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::EndpointSlice(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn updated(r: &Reconciled) -> Vec<v1::EndpointSlice> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Update(Object::EndpointSlice(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn deleted(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect()
}

/// Each endpoint as `pod@ip ready/serving/terminating`.
fn endpoints_of(slice: &v1::EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            let flag = |b: Option<bool>| match b {
                Some(true) => "T",
                Some(false) => "F",
                None => "-",
            };
            format!(
                "{}@{} {}{}{}",
                e.target_ref.as_ref().map_or("?", |r| r.name.as_str()),
                e.addresses.join(","),
                flag(c.ready),
                flag(c.serving),
                flag(c.terminating)
            )
        })
        .collect()
}

fn ports_of(slice: &v1::EndpointSlice) -> Vec<String> {
    slice
        .ports
        .iter()
        .map(|p| format!("{}:{}/{}", p.name, p.port, p.protocol))
        .collect()
}

/// The cache after every created slice was stored under a name of its own.
fn stored(mut cache: Cache, r: &Reconciled) -> Cache {
    for (i, mut slice) in created(r).into_iter().enumerate() {
        let m = slice.metadata.get_or_insert_with(Default::default);
        m.name = format!("{}{i:05}", m.generate_name);
        m.uid = format!("slice-uid-{i}");
        m.resource_version = "9".to_owned();
        cache.upsert(Object::EndpointSlice(slice));
    }
    cache
}

#[test]
fn a_slice_lists_every_pod_with_its_conditions() {
    let svc = service("default", "web").port("http", 80, "8080").build();
    let cache = Cache::from_objects([
        svc,
        node("n1").label(ZONE_LABEL, "zone-a").build(),
        pod("default", "ready")
            .label("app", "web")
            .node("n1")
            .serving("10.244.1.5", true)
            .build(),
        pod("default", "unready")
            .label("app", "web")
            .node("n2")
            .serving("10.244.2.3", false)
            .build(),
        pod("default", "leaving")
            .label("app", "web")
            .node("n1")
            .serving("10.244.1.9", true)
            .deleting()
            .build(),
        pod("default", "no-ip").label("app", "web").build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    let slices = created(&r);
    assert_eq!(slices.len(), 1, "{r:?}");
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        endpoints_of(slice),
        [
            "ready@10.244.1.5 TTF",
            "leaving@10.244.1.9 FTT",
            "unready@10.244.2.3 FFF"
        ]
    );
    assert_eq!(ports_of(slice), ["http:8080/TCP"]);
    assert_eq!(slice.endpoints[0].node_name, "n1");
    assert_eq!(slice.endpoints[0].zone, "zone-a");
    assert_eq!(slice.endpoints[2].zone, "");
    let m = slice.metadata.as_ref().unwrap();
    assert_eq!(m.generate_name, "web-");
    assert_eq!(
        m.labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        m.labels
            .get(ENDPOINT_SLICE_MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(ENDPOINT_SLICE_CONTROLLER)
    );
    assert_eq!(m.owner_references[0].uid, "uid-default-web");
    assert_eq!(m.owner_references[0].controller, Some(true));
}

#[test]
fn pods_resolving_a_named_port_differently_get_slices_of_their_own() {
    let svc = service("default", "web").port("http", 80, "web").build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "a")
            .label("app", "web")
            .container_port("web", 8080)
            .serving("10.0.0.1", true)
            .build(),
        pod("default", "b")
            .label("app", "web")
            .container_port("web", 9090)
            .serving("10.0.0.2", true)
            .build(),
        pod("default", "lacking")
            .label("app", "web")
            .serving("10.0.0.3", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    let shapes: Vec<(Vec<String>, Vec<String>)> = created(&r)
        .iter()
        .map(|s| (ports_of(s), endpoints_of(s)))
        .collect();
    assert_eq!(
        shapes,
        [
            (
                vec!["http:8080/TCP".to_owned()],
                vec!["a@10.0.0.1 TTF".to_owned()]
            ),
            (
                vec!["http:9090/TCP".to_owned()],
                vec!["b@10.0.0.2 TTF".to_owned()]
            ),
        ]
    );
}

#[test]
fn publish_not_ready_addresses_marks_every_endpoint_ready() {
    let svc = service("default", "db")
        .port("", 5432, "")
        .publish_not_ready()
        .build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "db-0")
            .label("app", "db")
            .serving("10.0.0.1", false)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("db"));
    assert_eq!(endpoints_of(&created(&r)[0]), ["db-0@10.0.0.1 TTF"]);
}

#[test]
fn a_service_with_no_pods_has_one_empty_slice() {
    let svc = service("default", "web").port("http", 80, "").build();
    let cache = Cache::from_objects([svc]);
    let r = reconcile(&cache, &svc_key("web"));
    let slices = created(&r);
    assert_eq!(slices.len(), 1);
    assert!(slices[0].endpoints.is_empty());
    assert_eq!(slices[0].address_type, "IPv4");
    // Stored, it is not written again.
    let cache = stored(cache, &r);
    assert_eq!(reconcile(&cache, &svc_key("web")), Reconciled::nothing());
}

#[test]
fn a_service_without_a_selector_gets_no_slices() {
    let svc = service("default", "external").no_selector().build();
    let cache = Cache::from_objects([
        svc,
        pod("default", "p")
            .label("app", "external")
            .serving("10.0.0.1", true)
            .build(),
    ]);
    assert_eq!(
        reconcile(&cache, &svc_key("external")),
        Reconciled::nothing()
    );
}

#[test]
fn more_than_a_slice_holds_is_split_and_then_left_alone() {
    let svc = service("default", "web").port("", 80, "").build();
    let mut objects = vec![svc];
    for i in 0..150 {
        objects.push(
            pod("default", &format!("p{i:03}"))
                .label("app", "web")
                .serving(&format!("10.0.{}.{}", i / 200, i % 200 + 1), true)
                .build(),
        );
    }
    let cache = Cache::from_objects(objects);
    let r = reconcile(&cache, &svc_key("web"));
    let sizes: Vec<usize> = created(&r).iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [MAX_ENDPOINTS_PER_SLICE, 50]);
    let cache = stored(cache, &r);
    assert_eq!(reconcile(&cache, &svc_key("web")), Reconciled::nothing());
}

#[test]
fn a_readiness_change_updates_the_slice_in_place() {
    let svc = service("default", "web").port("", 80, "").build();
    let mut cache = Cache::from_objects([
        svc,
        pod("default", "a")
            .label("app", "web")
            .serving("10.0.0.1", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    cache = stored(cache, &r);
    cache.upsert(
        pod("default", "a")
            .label("app", "web")
            .serving("10.0.0.1", false)
            .build(),
    );
    let r = reconcile(&cache, &svc_key("web"));
    assert!(created(&r).is_empty() && deleted(&r).is_empty(), "{r:?}");
    let slices = updated(&r);
    assert_eq!(slices.len(), 1);
    let m = slices[0].metadata.as_ref().unwrap();
    assert_eq!(
        (m.name.as_str(), m.resource_version.as_str()),
        ("web-00000", "9")
    );
    assert_eq!(endpoints_of(&slices[0]), ["a@10.0.0.1 FFF"]);
}

#[test]
fn slices_of_a_port_mapping_no_pod_has_any_more_are_deleted_and_others_managers_kept() {
    let svc = service("default", "web").port("", 80, "").build();
    let mut cache = Cache::from_objects([
        svc,
        pod("default", "a")
            .label("app", "web")
            .serving("10.0.0.1", true)
            .build(),
    ]);
    let r = reconcile(&cache, &svc_key("web"));
    cache = stored(cache, &r);
    // The Service's port changes: the old slice goes, a new one comes.
    cache.upsert(service("default", "web").port("", 81, "").build());
    let mut foreign = created(&r)[0].clone();
    let m = foreign.metadata.get_or_insert_with(Default::default);
    m.name = "web-by-hand".to_owned();
    m.labels.insert(
        ENDPOINT_SLICE_MANAGED_BY_LABEL.to_owned(),
        "someone-else".to_owned(),
    );
    cache.upsert(Object::EndpointSlice(foreign));
    let r = reconcile(&cache, &svc_key("web"));
    assert_eq!(deleted(&r), ["web-00000"]);
    let new = created(&r);
    assert_eq!(new.len(), 1);
    assert_eq!(ports_of(&new[0]), [":81/TCP"]);
}
