//! The EndpointSlice mirroring controller: the Endpoints a user writes for a Service
//! without a selector, mirrored into EndpointSlices, as Kubernetes'
//! endpointslicemirroring controller does, so readers of slices see them too.
//!
//! ```text
//!  Service without a selector (not ExternalName)
//!    + Endpoints of its name, not labelled endpointslice.kubernetes.io/skip-mirror=true
//!        │  per subset: addresses ─► endpoints ready, notReadyAddresses ─► not ready,
//!        │  the subset's ports; nodeName, hostname, targetRef as written
//!        ▼
//!  sync_slices (endpoint_slice): managed-by endpointslicemirroring-controller.k8s.io,
//!  labels of the Endpoints, controlled by the Endpoints
//!  anything else (no Service, a selector, no Endpoints, skip-mirror) ─► its mirrored
//!  slices are deleted
//! ```
//!
//! Owns the slices labelled as this controller's. It must not touch the Endpoints it
//! reads, nor the slices the endpointslice controller keeps for Services with selectors.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rafter_proto::v1::{self, Endpoint, EndpointConditions};
use rafter_proto::well_known::{
    ENDPOINT_SLICE_MANAGED_BY_LABEL, ENDPOINT_SLICE_MIRRORING_CONTROLLER, SERVICE_NAME_LABEL,
    SKIP_MIRROR_LABEL,
};
use rafter_proto::{Kind, Object};

use crate::action::{ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::endpoint_slice::{address_type, slice_labels, sync_slices, Group, SliceTarget};
use crate::pods::controller_owner_reference;
use crate::service_backends::{ResolvedPort, DEFAULT_PROTOCOL};

/// The component named in this controller's logs.
pub const COMPONENT: &str = "endpointslicemirroring-controller";

/// Reconciles the mirrored slices of the Service at `key` (a Service key, whether or not
/// the Service exists).
pub fn reconcile(cache: &Cache, key: &ObjectKey) -> Reconciled {
    if key.kind != Kind::Service {
        return Reconciled::nothing();
    }
    let endpoints_key = ObjectKey::new(Kind::Endpoints, key.namespace.clone(), key.name.clone());
    let endpoints = match cache.get(&endpoints_key).map(|o| o.as_ref()) {
        Some(object @ Object::Endpoints(ep)) if mirrored(cache, key, ep) => Some((object, ep)),
        _ => None,
    };
    let mut out = Reconciled::nothing();
    let Some((object, ep)) = endpoints else {
        // Nothing to mirror: whatever this controller mirrored for the name goes.
        let target = SliceTarget {
            namespace: &key.namespace,
            service: &key.name,
            manager: ENDPOINT_SLICE_MIRRORING_CONTROLLER,
            labels: rafter_proto::StringMap::new(),
            owner: v1::OwnerReference::default(),
        };
        out.actions = sync_slices(cache, &target, BTreeMap::new());
        return out;
    };
    let mut wanted: BTreeMap<Group, Vec<Endpoint>> = BTreeMap::new();
    for subset in &ep.subsets {
        let mut ports: Vec<ResolvedPort> = subset
            .ports
            .iter()
            .map(|p| ResolvedPort {
                name: p.name.clone(),
                port: p.port,
                protocol: if p.protocol.is_empty() {
                    DEFAULT_PROTOCOL.to_owned()
                } else {
                    p.protocol.clone()
                },
                app_protocol: String::new(),
            })
            .collect();
        ports.sort();
        for (addresses, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, false),
        ] {
            for address in addresses {
                let Ok(ip) = address.ip.parse::<IpAddr>() else {
                    continue;
                };
                wanted
                    .entry((address_type(ip).to_owned(), ports.clone()))
                    .or_default()
                    .push(Endpoint {
                        addresses: vec![address.ip.clone()],
                        conditions: Some(EndpointConditions {
                            ready: Some(ready),
                            serving: Some(ready),
                            terminating: Some(false),
                        }),
                        hostname: address.hostname.clone(),
                        target_ref: address.target_ref.clone(),
                        node_name: address.node_name.clone().unwrap_or_default(),
                        zone: String::new(),
                    });
            }
        }
    }
    let mut labels = object.metadata().labels.clone();
    labels.remove(SKIP_MIRROR_LABEL);
    labels.remove(ENDPOINT_SLICE_MANAGED_BY_LABEL);
    labels.remove(SERVICE_NAME_LABEL);
    let target = SliceTarget {
        namespace: &key.namespace,
        service: &key.name,
        manager: ENDPOINT_SLICE_MIRRORING_CONTROLLER,
        labels: slice_labels(labels, &key.name, ENDPOINT_SLICE_MIRRORING_CONTROLLER),
        owner: controller_owner_reference(object),
    };
    out.actions = sync_slices(cache, &target, wanted);
    out
}

/// Whether `ep` is to be mirrored: its Service exists, is not being deleted, has no
/// selector and is not of type ExternalName, and the Endpoints do not opt out.
fn mirrored(cache: &Cache, service_key: &ObjectKey, ep: &v1::Endpoints) -> bool {
    let Some(Object::Service(service)) = cache.get(service_key).map(|o| o.as_ref()) else {
        return false;
    };
    let deleting = service
        .metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some());
    let selectorless = service
        .spec
        .as_ref()
        .is_none_or(|s| s.selector.is_empty() && s.r#type != "ExternalName");
    let skip = ep
        .metadata
        .as_ref()
        .and_then(|m| m.labels.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    !deleting && selectorless && !skip
}

#[cfg(test)]
#[path = "endpoint_slice_mirroring_test.rs"]
mod tests;
