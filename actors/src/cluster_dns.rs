//! The cluster DNS Service's endpoints: every Ready node's agent serves DNS and advertises
//! where on its Node (`rafter.io/cluster-dns-endpoint: IP:PORT`); the `kube-dns` Service
//! in `kube-system` (no selector) gets those addresses as its Endpoints, so pods reach
//! some node's DNS server through the Service's ClusterIP, and a master going down does
//! not stop name resolution.
//!
//! ```text
//!   Nodes: Ready, not deleted, annotated ─► one subset per port:
//!        addresses (ip, nodeName), ports dns/UDP and dns-tcp/TCP
//!   differs from the kube-dns Endpoints ─► Create / Update(Endpoints)
//! ```
//!
//! A `kube-dns` Service with a selector is someone else's (a DNS server run as pods): left
//! alone. Owns the choice of addresses; it must not write (the actor does).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rafter_proto::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta};
use rafter_proto::well_known::CLUSTER_DNS_ENDPOINT_ANNOTATION;
use rafter_proto::{Kind, Object};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::service_lb::serves;

/// The cluster DNS Service: `kube-system/kube-dns`.
pub const CLUSTER_DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// The key of the cluster DNS Service (and of its Endpoints).
pub fn cluster_dns_key(kind: Kind) -> ObjectKey {
    ObjectKey::new(kind, CLUSTER_DNS_SERVICE.0, CLUSTER_DNS_SERVICE.1)
}

/// The subsets the Ready nodes' advertised DNS servers make, one per port.
pub fn dns_subsets(cache: &Cache) -> Vec<EndpointSubset> {
    let mut by_port: BTreeMap<u16, BTreeMap<String, String>> = BTreeMap::new();
    for object in cache.list(Kind::Node) {
        let Object::Node(node) = object.as_ref() else {
            continue;
        };
        let Some(meta) = node.metadata.as_ref().filter(|_| serves(node)) else {
            continue;
        };
        let Some(addr) = meta
            .annotations
            .get(CLUSTER_DNS_ENDPOINT_ANNOTATION)
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            continue;
        };
        by_port
            .entry(addr.port())
            .or_default()
            .insert(addr.ip().to_string(), meta.name.clone());
    }
    by_port
        .into_iter()
        .map(|(port, nodes)| EndpointSubset {
            addresses: nodes
                .into_iter()
                .map(|(ip, node)| EndpointAddress {
                    ip,
                    node_name: Some(node),
                    ..Default::default()
                })
                .collect(),
            ports: vec![
                EndpointPort {
                    name: "dns".to_owned(),
                    port: i32::from(port),
                    protocol: "UDP".to_owned(),
                },
                EndpointPort {
                    name: "dns-tcp".to_owned(),
                    port: i32::from(port),
                    protocol: "TCP".to_owned(),
                },
            ],
            ..Default::default()
        })
        .collect()
}

/// Brings the `kube-dns` Endpoints in line with the nodes' DNS servers.
pub fn reconcile(cache: &Cache) -> Reconciled {
    let Some(Object::Service(service)) = cache
        .get(&cluster_dns_key(Kind::Service))
        .map(|o| o.as_ref())
    else {
        return Reconciled::nothing();
    };
    let selects = service
        .spec
        .as_ref()
        .is_some_and(|s| !s.selector.is_empty());
    let deleting = service
        .metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some());
    if selects || deleting {
        return Reconciled::nothing();
    }
    let want = dns_subsets(cache);
    let action = match cache
        .get(&cluster_dns_key(Kind::Endpoints))
        .map(|o| o.as_ref())
    {
        Some(Object::Endpoints(current)) if current.subsets == want => {
            return Reconciled::nothing()
        }
        Some(Object::Endpoints(current)) => {
            let mut updated = current.clone();
            updated.subsets = want;
            Action::Update(Object::Endpoints(updated))
        }
        _ => Action::Create(Object::Endpoints(Endpoints {
            metadata: Some(ObjectMeta {
                name: CLUSTER_DNS_SERVICE.1.to_owned(),
                namespace: CLUSTER_DNS_SERVICE.0.to_owned(),
                labels: [("k8s-app".to_owned(), "kube-dns".to_owned())].into(),
                ..Default::default()
            }),
            subsets: want,
            ..Default::default()
        })),
    };
    Reconciled {
        actions: vec![action],
        ..Reconciled::nothing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::parse_object;

    fn object(yaml: &str) -> Object {
        parse_object(yaml, "test").unwrap()
    }

    fn node(name: &str, dns: &str, ready: &str) -> Object {
        object(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, annotations: {{rafter.io/cluster-dns-endpoint: '{dns}'}}}}\nstatus: {{conditions: [{{type: Ready, status: '{ready}'}}]}}"
        ))
    }

    fn service(selector: &str) -> Object {
        object(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: kube-dns, namespace: kube-system}}\nspec: {{clusterIP: 10.96.0.10, ports: [{{name: dns, port: 53, protocol: UDP}}]{selector}}}"
        ))
    }

    fn written(r: &Reconciled) -> Option<Vec<(String, i32)>> {
        let endpoints = match r.actions.as_slice() {
            [Action::Create(Object::Endpoints(e)) | Action::Update(Object::Endpoints(e))] => e,
            [] => return None,
            other => panic!("unexpected actions {other:?}"),
        };
        let mut out = Vec::new();
        for subset in &endpoints.subsets {
            assert_eq!(subset.ports.len(), 2, "dns over UDP and TCP");
            for a in &subset.addresses {
                out.push((a.ip.clone(), subset.ports[0].port));
            }
        }
        Some(out)
    }

    #[test]
    fn ready_nodes_dns_servers_become_the_kube_dns_endpoints() {
        let cache = Cache::from_objects([
            service(""),
            node("a", "10.244.1.1:41000", "True"),
            node("b", "10.244.2.1:42000", "True"),
            node("down", "10.244.3.1:43000", "False"),
            node("odd", "not an address", "True"),
        ]);
        assert_eq!(
            written(&reconcile(&cache)),
            Some(vec![
                ("10.244.1.1".to_owned(), 41000),
                ("10.244.2.1".to_owned(), 42000)
            ])
        );
    }

    #[test]
    fn current_endpoints_are_left_and_a_selector_means_someone_else_serves_dns() {
        let nodes = [node("a", "10.244.1.1:53", "True")];
        let wanted = match reconcile(&Cache::from_objects(
            nodes.iter().cloned().chain([service("")]),
        ))
        .actions
        .pop()
        {
            Some(Action::Create(e)) => e,
            other => panic!("{other:?}"),
        };
        let current = Cache::from_objects(nodes.iter().cloned().chain([service(""), wanted]));
        assert!(reconcile(&current).actions.is_empty());
        let pods = Cache::from_objects(
            nodes
                .iter()
                .cloned()
                .chain([service(", selector: {k8s-app: kube-dns}")]),
        );
        assert!(reconcile(&pods).actions.is_empty());
        assert!(
            reconcile(&Cache::from_objects(nodes)).actions.is_empty(),
            "no Service"
        );
    }
}
