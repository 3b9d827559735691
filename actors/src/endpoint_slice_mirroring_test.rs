use super::*;
use crate::action::Action;
use crate::testing::*;
use rafter_proto::v1::{EndpointAddress, EndpointPort, EndpointSubset, ObjectMeta};
use rafter_proto::well_known::ENDPOINT_SLICE_CONTROLLER;

fn svc_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, "default", name)
}

/// User-written Endpoints `name`: ready and not-ready IPs on port 5432.
fn user_endpoints(name: &str, ready: &[&str], not_ready: &[&str]) -> v1::Endpoints {
    let address = |ip: &&str| EndpointAddress {
        ip: (*ip).to_owned(),
        ..Default::default()
    };
    v1::Endpoints {
        metadata: Some(ObjectMeta {
            name: name.to_owned(),
            namespace: "default".to_owned(),
            uid: format!("ep-{name}"),
            labels: [("team".to_owned(), "db".to_owned())].into(),
            ..Default::default()
        }),
        subsets: vec![EndpointSubset {
            addresses: ready.iter().map(address).collect(),
            not_ready_addresses: not_ready.iter().map(address).collect(),
            ports: vec![EndpointPort {
                name: "pg".to_owned(),
                port: 5432,
                protocol: "TCP".to_owned(),
            }],
        }],
        ..Default::default()
    }
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

fn deleted(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect()
}

/// Each endpoint as `ip ready`.
fn endpoints_of(slice: &v1::EndpointSlice) -> Vec<String> {
    slice
        .endpoints
        .iter()
        .map(|e| {
            let ready = e.conditions.and_then(|c| c.ready) == Some(true);
            format!("{} {ready}", e.addresses.join(","))
        })
        .collect()
}

/// The cache after the created slices were stored.
fn stored(mut cache: Cache, r: &Reconciled) -> Cache {
    for (i, mut slice) in created(r).into_iter().enumerate() {
        let m = slice.metadata.get_or_insert_with(Default::default);
        m.name = format!("{}m{i:04}", m.generate_name);
        m.uid = format!("mirror-uid-{i}");
        cache.upsert(Object::EndpointSlice(slice));
    }
    cache
}

#[test]
fn the_endpoints_of_a_service_without_a_selector_are_mirrored() {
    let cache = Cache::from_objects([
        service("default", "db")
            .no_selector()
            .port("pg", 5432, "")
            .build(),
        Object::Endpoints(user_endpoints(
            "db",
            &["192.0.2.10", "192.0.2.11"],
            &["192.0.2.12"],
        )),
    ]);
    let r = reconcile(&cache, &svc_key("db"));
    let slices = created(&r);
    assert_eq!(slices.len(), 1, "{r:?}");
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        endpoints_of(slice),
        ["192.0.2.10 true", "192.0.2.11 true", "192.0.2.12 false"]
    );
    assert_eq!(
        (slice.ports[0].name.as_str(), slice.ports[0].port),
        ("pg", 5432)
    );
    let m = slice.metadata.as_ref().unwrap();
    assert_eq!(
        m.labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        Some("db")
    );
    assert_eq!(
        m.labels
            .get(ENDPOINT_SLICE_MANAGED_BY_LABEL)
            .map(String::as_str),
        Some(ENDPOINT_SLICE_MIRRORING_CONTROLLER)
    );
    assert_eq!(m.labels.get("team").map(String::as_str), Some("db"));
    assert_eq!(
        (
            m.owner_references[0].kind.as_str(),
            m.owner_references[0].uid.as_str()
        ),
        ("Endpoints", "ep-db")
    );
    // Stored, nothing more to do.
    let cache = stored(cache, &r);
    assert_eq!(reconcile(&cache, &svc_key("db")), Reconciled::nothing());
}

#[test]
fn services_with_selectors_opted_out_or_gone_have_nothing_mirrored() {
    let mut skipped = user_endpoints("skip", &["192.0.2.10"], &[]);
    skipped
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .insert(SKIP_MIRROR_LABEL.to_owned(), "true".to_owned());
    let cache = Cache::from_objects([
        service("default", "web").port("", 80, "").build(),
        Object::Endpoints(user_endpoints("web", &["10.0.0.1"], &[])),
        service("default", "skip").no_selector().build(),
        Object::Endpoints(skipped),
        Object::Endpoints(user_endpoints("orphan", &["10.0.0.2"], &[])),
    ]);
    for name in ["web", "skip", "orphan"] {
        assert_eq!(
            reconcile(&cache, &svc_key(name)),
            Reconciled::nothing(),
            "{name}"
        );
    }
}

#[test]
fn mirrored_slices_follow_the_endpoints_and_go_with_the_service() {
    let mut cache = Cache::from_objects([
        service("default", "db").no_selector().build(),
        Object::Endpoints(user_endpoints("db", &["192.0.2.10"], &[])),
    ]);
    let r = reconcile(&cache, &svc_key("db"));
    cache = stored(cache, &r);
    // The user edits the Endpoints: the slice follows in place.
    cache.upsert(Object::Endpoints(user_endpoints(
        "db",
        &["192.0.2.10"],
        &["192.0.2.20"],
    )));
    let r = reconcile(&cache, &svc_key("db"));
    let [Action::Update(Object::EndpointSlice(slice))] = r.actions.as_slice() else {
        panic!("one update: {r:?}");
    };
    assert_eq!(endpoints_of(slice), ["192.0.2.10 true", "192.0.2.20 false"]);
    // The endpointslice controller's slices of the name are not this controller's.
    let mut other = slice.clone();
    let m = other.metadata.get_or_insert_with(Default::default);
    m.name = "db-other".to_owned();
    m.labels.insert(
        ENDPOINT_SLICE_MANAGED_BY_LABEL.to_owned(),
        ENDPOINT_SLICE_CONTROLLER.to_owned(),
    );
    cache.upsert(Object::EndpointSlice(other));
    // The Service goes: its mirrored slice goes, the other stays.
    cache.remove(&svc_key("db"));
    let r = reconcile(&cache, &svc_key("db"));
    assert_eq!(deleted(&r), ["db-m0000"]);
    assert_eq!(r.actions.len(), 1);
}
