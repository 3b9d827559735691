//! The Endpoints controller: for every Service with a selector, an Endpoints object of the
//! same name listing the pods that back it, as Kubernetes' endpoints controller writes it.
//!
//! ```text
//!  Service (selector) ──► backends (service_backends): pods with an address, ports resolved
//!        │
//!        ▼  per pod: Ready, or publishNotReadyAddresses ──► addresses
//!           otherwise                                   ──► notReadyAddresses
//!           being deleted: left out (kept, as ready, under publishNotReadyAddresses)
//!        ▼
//!  subsets: pods serving the same resolved ports share one (named ports may resolve to
//!  different numbers per pod); addresses by IP, subsets by ports: one order, no churn;
//!  past 1,000 addresses cut down (not-ready ones first), annotated
//!  endpoints.kubernetes.io/over-capacity: truncated
//!        │
//!        ├─ no Endpoints ─────────────► Create (labels of the Service, ownerReference)
//!        ├─ different content ────────► Update
//!        └─ same content ─────────────► nothing
//!  a named targetPort a pod lacks ─► the pod is left out of that port; Warning event
//!                                    TargetPortNotFound on the Service
//! ```
//!
//! Owns the content of controller-written Endpoints. It must not touch the Endpoints of a
//! Service without a selector (the user writes those) and does not delete: Endpoints carry
//! a controller ownerReference to their Service, so the garbage collector removes them
//! with it.

use std::collections::BTreeMap;

use rafter_proto::v1::{self, EndpointAddress, EndpointPort, EndpointSubset, ObjectMeta};
use rafter_proto::well_known::HEADLESS_SERVICE_LABEL;
use rafter_proto::{Kind, Object};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::pods::controller_owner_reference;
use crate::service_backends::{backends, managed_service, Backends, MissingPort, ResolvedPort};

/// The component named in the events this controller records.
pub const COMPONENT: &str = "endpoint-controller";

/// The most addresses (ready and not) one Endpoints lists, as in Kubernetes; the
/// EndpointSlices list every pod.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;

/// The annotation on Endpoints cut down to [`MAX_ENDPOINTS_ADDRESSES`] (`truncated`).
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";

/// The reason of the event about a pod lacking a named target port.
pub const TARGET_PORT_NOT_FOUND: &str = "TargetPortNotFound";

/// Reconciles the Endpoints of the Service at `key`.
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
    let found = backends(cache, service, &selector, publish);
    let mut out = Reconciled::nothing();
    for missing in &found.missing {
        out.actions
            .push(Action::RecordEvent(missing_port_event(object, missing)));
    }
    let headless = spec.cluster_ip == "None";
    let mut subsets = subsets(
        &meta.name,
        &found,
        publish,
        spec.ports.is_empty() && !headless,
    );
    let truncated = truncate(&mut subsets);
    let labels = service_labels(meta, headless);
    let owner = controller_owner_reference(object);
    let endpoints_key = ObjectKey::new(Kind::Endpoints, meta.namespace.clone(), meta.name.clone());
    match cache.get(&endpoints_key).map(|o| o.as_ref()) {
        None => {
            let endpoints = v1::Endpoints {
                api_version: "v1".to_owned(),
                kind: "Endpoints".to_owned(),
                metadata: Some(ObjectMeta {
                    name: meta.name.clone(),
                    namespace: meta.namespace.clone(),
                    labels,
                    annotations: truncated
                        .then(|| (OVER_CAPACITY_ANNOTATION.to_owned(), "truncated".to_owned()))
                        .into_iter()
                        .collect(),
                    owner_references: vec![owner],
                    ..Default::default()
                }),
                subsets,
            };
            out.actions
                .push(Action::Create(Object::Endpoints(endpoints)));
        }
        Some(Object::Endpoints(existing)) => {
            let mut updated = existing.clone();
            updated.subsets = subsets;
            let m = updated.metadata.get_or_insert_with(Default::default);
            m.labels = labels;
            if truncated {
                m.annotations
                    .insert(OVER_CAPACITY_ANNOTATION.to_owned(), "truncated".to_owned());
            } else {
                m.annotations.remove(OVER_CAPACITY_ANNOTATION);
            }
            adopt(m, owner);
            if &updated != existing {
                out.actions.push(Action::Update(Object::Endpoints(updated)));
            }
        }
        Some(_) => {}
    }
    out
}

/// The Service's labels, plus the headless label for a headless Service, as the
/// controllers' objects carry them.
pub(crate) fn service_labels(meta: &ObjectMeta, headless: bool) -> rafter_proto::StringMap {
    let mut labels = meta.labels.clone();
    if headless {
        labels.insert(HEADLESS_SERVICE_LABEL.to_owned(), String::new());
    } else {
        labels.remove(HEADLESS_SERVICE_LABEL);
    }
    labels
}

/// Makes `owner` the controller of an object, replacing a controller reference to an
/// earlier Service of the same name (deleted and created again) and keeping the others.
pub(crate) fn adopt(meta: &mut ObjectMeta, owner: v1::OwnerReference) {
    meta.owner_references
        .retain(|r| r.uid == owner.uid || !(r.kind == owner.kind && r.name == owner.name));
    match meta
        .owner_references
        .iter_mut()
        .find(|r| r.uid == owner.uid)
    {
        Some(r) => *r = owner,
        None => meta.owner_references.push(owner),
    }
}

/// The subsets of Service `service`: pods grouped by the ports they serve. `portless_none`: a Service with no
/// ports that is not headless lists no addresses (nothing could reach them), as in
/// Kubernetes.
fn subsets(
    service: &str,
    found: &Backends<'_>,
    publish: bool,
    portless_none: bool,
) -> Vec<EndpointSubset> {
    if portless_none {
        return Vec::new();
    }
    let mut groups: BTreeMap<Vec<ResolvedPort>, EndpointSubset> = BTreeMap::new();
    for backend in &found.pods {
        let mut ports = backend.ports.clone();
        ports.sort();
        let subset = groups.entry(ports).or_default();
        let node = backend.node_name();
        let address = EndpointAddress {
            ip: backend.ip.to_owned(),
            hostname: backend.hostname(service),
            node_name: (!node.is_empty()).then(|| node.to_owned()),
            target_ref: Some(backend.target_ref()),
        };
        if publish || backend.ready {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, mut subset)| {
            subset.ports = ports
                .into_iter()
                .map(|p| EndpointPort {
                    name: p.name,
                    port: p.port,
                    protocol: p.protocol,
                })
                .collect();
            sort_addresses(&mut subset.addresses);
            sort_addresses(&mut subset.not_ready_addresses);
            subset
        })
        .collect()
}

/// Cuts the subsets down to [`MAX_ENDPOINTS_ADDRESSES`] addresses as Kubernetes does:
/// not-ready addresses go first; when the ready ones alone are too many, every not-ready
/// one goes and the ready ones are cut, each subset keeping its share (rounded down, the
/// last subset taking what is left). Returns whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets.iter().map(|s| s.addresses.len()).sum();
    let not_ready: usize = subsets.iter().map(|s| s.not_ready_addresses.len()).sum();
    if ready + not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    let cut_ready = ready > MAX_ENDPOINTS_ADDRESSES;
    let (room, total) = if cut_ready {
        (MAX_ENDPOINTS_ADDRESSES, ready)
    } else {
        (MAX_ENDPOINTS_ADDRESSES - ready, not_ready)
    };
    let mut left = room;
    let last = subsets.len().saturating_sub(1);
    for (i, subset) in subsets.iter_mut().enumerate() {
        let list = if cut_ready {
            subset.not_ready_addresses.clear();
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let share = if i < last {
            room * list.len() / total
        } else {
            left
        };
        let keep = share.min(list.len()).min(left);
        list.truncate(keep);
        left -= keep;
    }
    true
}

fn sort_addresses(addresses: &mut [EndpointAddress]) {
    addresses.sort_by(|a, b| {
        let name = |x: &EndpointAddress| x.target_ref.as_ref().map(|r| r.name.clone());
        (a.ip.as_str(), name(a)).cmp(&(b.ip.as_str(), name(b)))
    });
}

/// The Warning about a pod without the container port a Service port names.
pub(crate) fn missing_port_event(service: &Object, missing: &MissingPort) -> EventRecord {
    let port = if missing.service_port.is_empty() {
        String::new()
    } else {
        format!(" {:?}", missing.service_port)
    };
    EventRecord::about(
        service,
        EventType::Warning,
        TARGET_PORT_NOT_FOUND,
        format!(
            "pod {} has no container port named {:?} (the targetPort of service port{port}); it is left out of that port",
            missing.pod, missing.target
        ),
        COMPONENT,
    )
}

#[cfg(test)]
#[path = "endpoints_test.rs"]
mod tests;
