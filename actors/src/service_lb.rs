//! The built-in service load balancer's core (k3s's ServiceLB without its pods): a
//! `type: LoadBalancer` Service's `status.loadBalancer.ingress` is the InternalIP of every
//! Ready node, and every node's proxy accepts the Service port on those addresses.
//!
//! ```text
//!   Service (type LoadBalancer) ──┐
//!   Nodes: Ready, not deleted ────┴─► ingress = their InternalIPs, sorted
//!         differs from status.loadBalancer.ingress ─► UpdateStatus(Service)
//!   Service of another type with ingress left ─► UpdateStatus(ingress cleared)
//! ```
//!
//! No cloud, no address pool: the nodes' own addresses are the load balancer, so traffic
//! to any of them on the Service port reaches the Service (the NodePort stays too). Owns
//! the choice of addresses; it must not write (the actor does) nor touch the spec.

use rafter_proto::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, ServiceStatus};
use rafter_proto::{Kind, Object};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::pods::condition;

/// Whether `node` is Ready and not being deleted.
pub(crate) fn serves(node: &Node) -> bool {
    let deleting = node
        .metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some());
    let ready = node
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Ready"))
        .is_some_and(|c| c.status == "True");
    ready && !deleting
}

/// The InternalIPs of the Ready nodes, sorted, without duplicates.
pub fn ingress_addresses(cache: &Cache) -> Vec<String> {
    let mut addresses: Vec<String> = cache
        .list(Kind::Node)
        .filter_map(|o| match o.as_ref() {
            Object::Node(n) if serves(n) => n.status.as_ref(),
            _ => None,
        })
        .filter_map(|s| s.addresses.iter().find(|a| a.r#type == "InternalIP"))
        .map(|a| a.address.clone())
        .filter(|a| !a.is_empty())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// Sets the ingress of the Service at `key` to the Ready nodes' addresses (or clears it
/// when the Service is no longer a LoadBalancer).
pub fn reconcile(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let Some(Object::Service(service)) = cache.get(key).map(|o| o.as_ref()) else {
        return Reconciled::nothing();
    };
    if service
        .metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some())
    {
        return Reconciled::nothing();
    }
    let load_balancer = service
        .spec
        .as_ref()
        .is_some_and(|s| s.r#type == "LoadBalancer");
    let want: Vec<LoadBalancerIngress> = if load_balancer {
        ingress_addresses(cache)
            .into_iter()
            .map(|ip| LoadBalancerIngress {
                ip,
                ..Default::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    let have = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .map(|lb| lb.ingress.clone())
        .unwrap_or_default();
    if have == want {
        return Reconciled::nothing();
    }
    let mut updated = service.clone();
    updated.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus { ingress: want }),
    });
    Reconciled {
        actions: vec![Action::UpdateStatus(Object::Service(updated))],
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

    fn node(name: &str, ip: &str, ready: &str) -> Object {
        object(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{addresses: [{{type: Hostname, address: {name}}}, {{type: InternalIP, address: '{ip}'}}], conditions: [{{type: Ready, status: '{ready}'}}]}}"
        ))
    }

    fn service(kind: &str, ingress: &[&str]) -> Object {
        let ingress: Vec<String> = ingress.iter().map(|i| format!("{{ip: '{i}'}}")).collect();
        object(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{type: {kind}, ports: [{{port: 80, nodePort: 30080}}]}}\nstatus: {{loadBalancer: {{ingress: [{}]}}}}",
            ingress.join(", ")
        ))
    }

    fn key() -> ObjectKey {
        ObjectKey::new(Kind::Service, "default", "web")
    }

    fn written_ingress(r: &Reconciled) -> Option<Vec<String>> {
        match r.actions.as_slice() {
            [Action::UpdateStatus(Object::Service(s))] => Some(
                s.status
                    .as_ref()?
                    .load_balancer
                    .as_ref()?
                    .ingress
                    .iter()
                    .map(|i| i.ip.clone())
                    .collect(),
            ),
            [] => None,
            other => panic!("unexpected actions {other:?}"),
        }
    }

    #[test]
    fn a_load_balancer_gets_the_ready_nodes_internal_ips() {
        let cache = Cache::from_objects([
            node("b", "10.0.0.2", "True"),
            node("a", "10.0.0.1", "True"),
            node("down", "10.0.0.3", "Unknown"),
            service("LoadBalancer", &[]),
        ]);
        assert_eq!(
            written_ingress(&reconcile(&cache, &key())),
            Some(vec!["10.0.0.1".to_owned(), "10.0.0.2".to_owned()])
        );
    }

    #[test]
    fn nothing_is_written_when_the_ingress_is_current_and_a_node_going_down_leaves_it() {
        let current = Cache::from_objects([
            node("a", "10.0.0.1", "True"),
            node("b", "10.0.0.2", "True"),
            service("LoadBalancer", &["10.0.0.1", "10.0.0.2"]),
        ]);
        assert!(reconcile(&current, &key()).actions.is_empty());
        let b_down = Cache::from_objects([
            node("a", "10.0.0.1", "True"),
            node("b", "10.0.0.2", "False"),
            service("LoadBalancer", &["10.0.0.1", "10.0.0.2"]),
        ]);
        assert_eq!(
            written_ingress(&reconcile(&b_down, &key())),
            Some(vec!["10.0.0.1".to_owned()])
        );
    }

    #[test]
    fn a_service_that_is_no_longer_a_load_balancer_loses_its_ingress() {
        let cache = Cache::from_objects([
            node("a", "10.0.0.1", "True"),
            service("NodePort", &["10.0.0.1"]),
        ]);
        assert_eq!(written_ingress(&reconcile(&cache, &key())), Some(vec![]));
        let plain = Cache::from_objects([node("a", "10.0.0.1", "True"), service("NodePort", &[])]);
        assert!(reconcile(&plain, &key()).actions.is_empty());
    }
}
