//! The EndpointSlice controller: for every Service with a selector, `discovery.k8s.io/v1`
//! EndpointSlices listing the pods that back it, as Kubernetes' endpointslice controller
//! writes them.
//!
//! ```text
//!  Service (selector) ──► backends (service_backends), terminating pods included
//!        │  per pod: addresses [podIP], conditions
//!        │    ready       = publishNotReadyAddresses or (Ready and not terminating)
//!        │    serving     = publishNotReadyAddresses or Ready
//!        │    terminating = deletion timestamp set
//!        │  nodeName, zone (the node's topology.kubernetes.io/zone), targetRef, hostname
//!        ▼
//!  groups by (addressType, resolved ports), endpoints by address, ≤ 100 per slice
//!  (no pod at all: one empty IPv4 slice, so readers see the Service has none)
//!        │  the slices this controller manages for the Service (labels
//!        │  kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by),
//!        │  by group and name, paired in order with the wanted ones
//!        ├─ wanted, no slice left to pair ─► Create (generateName `<service>-`)
//!        ├─ paired, different content ─────► Update
//!        ├─ slice left over ───────────────► Delete
//!        └─ paired, same content ──────────► nothing
//! ```
//!
//! Simpler than Kubernetes' in one respect, said here: a slice is filled in address order,
//! so past 100 endpoints one new pod may move others between slices (Kubernetes fills
//! the gaps first). Below 100 endpoints per port group nothing moves.
//!
//! Owns the slices labelled as this controller's. It must not touch slices other managers
//! write, nor any slice of a Service without a selector, and does not delete slices of a
//! deleted Service: each carries a controller ownerReference to its Service, so the
//! garbage collector removes them with it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rafter_proto::v1::{self, Endpoint, EndpointConditions, EndpointSlicePort, ObjectMeta};
use rafter_proto::well_known::{
    ENDPOINT_SLICE_CONTROLLER, ENDPOINT_SLICE_MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
};
use rafter_proto::{Kind, Object};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::endpoints::{adopt, service_labels};
use crate::pods::controller_owner_reference;
use crate::service_backends::{backends, managed_service, Backend, ResolvedPort};

/// The component named in the events this controller records.
pub const COMPONENT: &str = "endpointslice-controller";

/// The most endpoints one slice holds (Kubernetes' `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The node label that names its zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A group of endpoints that share one slice shape: address type and resolved ports.
pub(crate) type Group = (String, Vec<ResolvedPort>);

/// Reconciles the EndpointSlices of the Service at `key`.
pub fn reconcile(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let Some((object, service, selector)) = managed_service(cache, key) else {
        return Reconciled::nothing();
    };
    let meta = object.metadata();
    if meta.deletion_timestamp.is_some() {
        return Reconciled::nothing();
    }
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses;
    let found = backends(cache, service, &selector, true);

    let mut wanted: BTreeMap<Group, Vec<Endpoint>> = BTreeMap::new();
    for backend in &found.pods {
        let Ok(ip) = backend.ip.parse::<IpAddr>() else {
            continue;
        };
        let mut ports = backend.ports.clone();
        ports.sort();
        wanted
            .entry((address_type(ip).to_owned(), ports))
            .or_default()
            .push(endpoint(cache, &meta.name, backend, publish));
    }
    if wanted.is_empty() {
        wanted.insert(("IPv4".to_owned(), Vec::new()), Vec::new());
    }

    let target = SliceTarget {
        namespace: &meta.namespace,
        service: &meta.name,
        manager: ENDPOINT_SLICE_CONTROLLER,
        labels: slice_labels(
            service_labels(meta, spec.cluster_ip == "None"),
            &meta.name,
            ENDPOINT_SLICE_CONTROLLER,
        ),
        owner: controller_owner_reference(object),
    };
    let mut out = Reconciled::nothing();
    out.actions = sync_slices(cache, &target, wanted);
    out
}

/// Whose slices a sync writes: the Service they serve, the manager label they carry,
/// their labels and their controller.
pub(crate) struct SliceTarget<'a> {
    /// The Service's namespace.
    pub namespace: &'a str,
    /// The Service's name.
    pub service: &'a str,
    /// The value of the managed-by label.
    pub manager: &'static str,
    /// Every label of the slices (the service-name and managed-by ones included).
    pub labels: rafter_proto::StringMap,
    /// Their controller ownerReference.
    pub owner: v1::OwnerReference,
}

/// The actions that make the slices `target.manager` keeps for `target.service` hold
/// `wanted`: per group, chunks of at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints in address
/// order paired with the group's slices by name (an empty group still gets one slice);
/// slices of groups no longer wanted are deleted.
pub(crate) fn sync_slices(
    cache: &Cache,
    target: &SliceTarget<'_>,
    wanted: BTreeMap<Group, Vec<Endpoint>>,
) -> Vec<Action> {
    let mut existing: BTreeMap<Group, Vec<&v1::EndpointSlice>> = BTreeMap::new();
    for slice in managed_slices(cache, target.namespace, target.service, target.manager) {
        existing.entry(group_of(slice)).or_default().push(slice);
    }
    let mut actions = Vec::new();
    for (group, mut endpoints) in wanted {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        let mut have = existing.remove(&group).unwrap_or_default().into_iter();
        let chunks: Vec<Vec<Endpoint>> = if endpoints.is_empty() {
            vec![Vec::new()]
        } else {
            endpoints
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(<[Endpoint]>::to_vec)
                .collect()
        };
        for chunk in chunks {
            let ports = slice_ports(&group.1);
            match have.next() {
                Some(slice) => {
                    let mut updated = slice.clone();
                    updated.address_type.clone_from(&group.0);
                    updated.endpoints = chunk;
                    updated.ports = ports;
                    let m = updated.metadata.get_or_insert_with(Default::default);
                    m.labels.clone_from(&target.labels);
                    adopt(m, target.owner.clone());
                    if &updated != slice {
                        actions.push(Action::Update(Object::EndpointSlice(updated)));
                    }
                }
                None => {
                    let slice = v1::EndpointSlice {
                        api_version: "discovery.k8s.io/v1".to_owned(),
                        kind: "EndpointSlice".to_owned(),
                        metadata: Some(ObjectMeta {
                            generate_name: format!("{}-", target.service),
                            namespace: target.namespace.to_owned(),
                            labels: target.labels.clone(),
                            owner_references: vec![target.owner.clone()],
                            ..Default::default()
                        }),
                        address_type: group.0.clone(),
                        endpoints: chunk,
                        ports,
                    };
                    actions.push(Action::Create(Object::EndpointSlice(slice)));
                }
            }
        }
        for left_over in have {
            actions.push(Action::delete_of(&Object::EndpointSlice(left_over.clone())));
        }
    }
    for slice in existing.into_values().flatten() {
        actions.push(Action::delete_of(&Object::EndpointSlice(slice.clone())));
    }
    actions
}

/// The slices `manager` keeps for Service `namespace/service`, ordered by name.
pub(crate) fn managed_slices<'a>(
    cache: &'a Cache,
    namespace: &'a str,
    service: &'a str,
    manager: &'a str,
) -> impl Iterator<Item = &'a v1::EndpointSlice> + 'a {
    cache
        .list_namespaced(Kind::EndpointSlice, namespace)
        .filter_map(|o| match o.as_ref() {
            Object::EndpointSlice(slice) => Some(slice),
            _ => None,
        })
        .filter(move |slice| managed_for(slice, manager).is_some_and(|name| name == service))
}

/// The Service a slice `manager` keeps belongs to.
pub(crate) fn managed_for<'a>(slice: &'a v1::EndpointSlice, manager: &str) -> Option<&'a str> {
    let labels = &slice.metadata.as_ref()?.labels;
    if labels
        .get(ENDPOINT_SLICE_MANAGED_BY_LABEL)
        .map(String::as_str)
        != Some(manager)
    {
        return None;
    }
    labels.get(SERVICE_NAME_LABEL).map(String::as_str)
}

/// `labels` plus the service-name and managed-by labels.
pub(crate) fn slice_labels(
    mut labels: rafter_proto::StringMap,
    service: &str,
    manager: &str,
) -> rafter_proto::StringMap {
    labels.insert(SERVICE_NAME_LABEL.to_owned(), service.to_owned());
    labels.insert(
        ENDPOINT_SLICE_MANAGED_BY_LABEL.to_owned(),
        manager.to_owned(),
    );
    labels
}

/// The `addressType` of an address.
pub(crate) fn address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

fn group_of(slice: &v1::EndpointSlice) -> Group {
    let mut ports: Vec<ResolvedPort> = slice
        .ports
        .iter()
        .map(|p| ResolvedPort {
            name: p.name.clone(),
            port: p.port,
            protocol: p.protocol.clone(),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    (slice.address_type.clone(), ports)
}

fn slice_ports(ports: &[ResolvedPort]) -> Vec<EndpointSlicePort> {
    ports
        .iter()
        .map(|p| EndpointSlicePort {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port: p.port,
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

fn endpoint(cache: &Cache, service: &str, backend: &Backend<'_>, publish: bool) -> Endpoint {
    let node = backend.node_name();
    let zone = cache
        .node(node)
        .and_then(|n| n.metadata.as_ref())
        .and_then(|m| m.labels.get(ZONE_LABEL))
        .cloned()
        .unwrap_or_default();
    Endpoint {
        addresses: vec![backend.ip.to_owned()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (backend.ready && !backend.terminating)),
            serving: Some(publish || backend.ready),
            terminating: Some(backend.terminating),
        }),
        hostname: backend.hostname(service),
        target_ref: Some(backend.target_ref()),
        node_name: node.to_owned(),
        zone,
    }
}

#[cfg(test)]
#[path = "endpoint_slice_test.rs"]
mod tests;
