//! The node IPAM controller's core: every Node gets `spec.podCIDR`, one subnet of the
//! cluster CIDR (default `10.244.0.0/16` cut into `/24`s), so each node's pods get IPs from
//! their own range.
//!
//! ```text
//!   Nodes in the cache ─► taken = the podCIDRs they carry
//!        │ nodes without one (not being deleted), by name
//!        ▼
//!   lowest free subnet each ─► Update(Node with spec.podCIDR, spec.podCIDRs)
//!   none left ─► Warning CIDRNotAvailable;  two nodes with one subnet ─► Warning CIDRConflict
//! ```
//!
//! There is no allocation table: what is taken is derived from the stored Nodes every
//! pass, so a deleted node's subnet is free again at once, and a new leader knows the
//! allocations from its cache (no state to hand over). The controller runs as one pass
//! over all nodes (one key, like the scheduler), so two nodes reconciled at once can never
//! be given the same subnet before the cache shows the first write. A subnet set by
//! someone else (an agent's `--pod-cidr`) is respected and counted as taken.
//!
//! Owns the arithmetic and the choice; it must not write (the actor does) and must not
//! change a podCIDR once set (Kubernetes treats it as immutable).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use rafter_proto::{CidrError, Ipv4Cidr, Kind, Object};

use crate::action::{Action, EventRecord, EventType, Reconciled};
use crate::cache::Cache;

const COMPONENT: &str = "node-ipam-controller";

/// Why a cluster CIDR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterCidrError {
    /// The CIDR itself is malformed or has host bits set.
    #[error(transparent)]
    Cidr(#[from] CidrError),
    /// The per-node prefix is not longer than the cluster's, or leaves no host addresses.
    #[error("a /{node} per node does not fit in a /{cluster} cluster CIDR (need {cluster} < node size ≤ 30)")]
    NodeSize {
        /// The cluster prefix.
        cluster: u8,
        /// The per-node prefix.
        node: u8,
    },
}

/// The cluster CIDR and the size of each node's share (`--cluster-cidr`,
/// `--node-cidr-mask-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    cluster: Ipv4Cidr,
    node_prefix: u8,
}

impl Default for ClusterCidr {
    /// `10.244.0.0/16` in `/24`s: 256 nodes of 254 pods.
    fn default() -> Self {
        ClusterCidr {
            cluster: Ipv4Cidr {
                address: u32::from(Ipv4Addr::new(10, 244, 0, 0)),
                prefix: 16,
            },
            node_prefix: 24,
        }
    }
}

impl ClusterCidr {
    /// `cidr` cut into subnets of `/node_prefix`.
    pub fn new(cidr: &str, node_prefix: u8) -> Result<ClusterCidr, ClusterCidrError> {
        let cluster = Ipv4Cidr::parse(cidr)?;
        if node_prefix <= cluster.prefix || node_prefix > 30 {
            return Err(ClusterCidrError::NodeSize {
                cluster: cluster.prefix,
                node: node_prefix,
            });
        }
        Ok(ClusterCidr {
            cluster,
            node_prefix,
        })
    }

    /// How many node subnets there are.
    pub fn subnets(&self) -> u64 {
        1u64 << (self.node_prefix - self.cluster.prefix)
    }

    /// The `index`th node subnet.
    pub fn subnet(&self, index: u64) -> Option<Ipv4Cidr> {
        if index >= self.subnets() {
            return None;
        }
        let step = 1u64 << (32 - u32::from(self.node_prefix));
        let address = u64::from(self.cluster.address) + index * step;
        Some(Ipv4Cidr {
            address: u32::try_from(address).ok()?,
            prefix: self.node_prefix,
        })
    }

    /// The index of `cidr` if it is one of this cluster's node subnets.
    fn index_of(&self, cidr: &Ipv4Cidr) -> Option<u64> {
        if cidr.prefix != self.node_prefix || !self.cluster.contains(Ipv4Addr::from(cidr.address)) {
            return None;
        }
        let step = 1u64 << (32 - u32::from(self.node_prefix));
        Some(u64::from(cidr.address - self.cluster.address) / step)
    }
}

impl fmt::Display for ClusterCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in /{}s", self.cluster, self.node_prefix)
    }
}

/// One pass: a subnet for every node that has none, warnings for conflicts and
/// exhaustion.
pub fn reconcile(cache: &Cache, cidr: &ClusterCidr) -> Reconciled {
    let mut out = Reconciled::nothing();
    let nodes: Vec<&Object> = cache.list(Kind::Node).map(|o| o.as_ref()).collect();
    // Taken subnets and who holds each (the first by name keeps it in a conflict).
    let mut holders: BTreeMap<String, Vec<&Object>> = BTreeMap::new();
    let mut taken = std::collections::BTreeSet::new();
    let mut needy = Vec::new();
    for object in &nodes {
        let Object::Node(node) = object else { continue };
        let spec_cidr = node.spec.as_ref().map_or("", |s| s.pod_cidr.as_str());
        if spec_cidr.is_empty() {
            if object.metadata().deletion_timestamp.is_none() {
                needy.push(node);
            }
            continue;
        }
        holders
            .entry(spec_cidr.to_owned())
            .or_default()
            .push(object);
        if let Some(i) = Ipv4Cidr::parse(spec_cidr)
            .ok()
            .and_then(|c| cidr.index_of(&c))
        {
            taken.insert(i);
        }
    }
    for (subnet, holding) in &holders {
        let mut names: Vec<&str> = holding.iter().map(|o| o.metadata().name.as_str()).collect();
        names.sort_unstable();
        for object in holding.iter().filter(|o| o.metadata().name != names[0]) {
            out.actions.push(Action::RecordEvent(EventRecord::about(
                object,
                EventType::Warning,
                "CIDRConflict",
                format!("podCIDR {subnet} is also node {}'s", names[0]),
                COMPONENT,
            )));
        }
    }
    let mut next = 0u64;
    for node in needy {
        while taken.contains(&next) {
            next += 1;
        }
        let object = Object::Node(node.clone());
        let Some(subnet) = cidr.subnet(next) else {
            out.actions.push(Action::RecordEvent(EventRecord::about(
                &object,
                EventType::Warning,
                "CIDRNotAvailable",
                format!("no pod CIDR left in {cidr}; the node's pods get no addresses of their own until a node is deleted"),
                COMPONENT,
            )));
            continue;
        };
        taken.insert(next);
        let mut node = node.clone();
        let spec = node.spec.get_or_insert_with(Default::default);
        spec.pod_cidr = subnet.to_string();
        spec.pod_cidrs = vec![subnet.to_string()];
        out.actions.push(Action::Update(Object::Node(node)));
        out.actions.push(Action::RecordEvent(EventRecord::about(
            &object,
            EventType::Normal,
            "CIDRAssigned",
            format!("podCIDR {subnet} assigned"),
            COMPONENT,
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1;

    fn node(name: &str, cidr: &str) -> Object {
        Object::Node(v1::Node {
            metadata: Some(v1::ObjectMeta {
                name: name.into(),
                uid: format!("uid-{name}"),
                resource_version: "1".into(),
                ..Default::default()
            }),
            spec: Some(v1::NodeSpec {
                pod_cidr: cidr.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn cache(nodes: Vec<Object>) -> Cache {
        Cache::from_objects(nodes)
    }

    fn assigned(r: &Reconciled) -> Vec<(String, String)> {
        r.actions
            .iter()
            .filter_map(|a| match a {
                Action::Update(Object::Node(n)) => Some((
                    n.metadata.as_ref()?.name.clone(),
                    n.spec.as_ref()?.pod_cidr.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cidrs_parse_and_cut_into_node_subnets() {
        let c = ClusterCidr::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(c, ClusterCidr::default());
        assert_eq!(c.subnets(), 256);
        assert_eq!(c.subnet(0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(c.subnet(255).unwrap().to_string(), "10.244.255.0/24");
        assert!(c.subnet(256).is_none());
        assert!(matches!(
            ClusterCidr::new("10.244.1.0/16", 24),
            Err(ClusterCidrError::Cidr(CidrError::HostBits { .. }))
        ));
        assert!(matches!(
            ClusterCidr::new("10.244.0.0/16", 16),
            Err(ClusterCidrError::NodeSize { .. })
        ));
        assert!(matches!(
            ClusterCidr::new("10.244.0.0", 24),
            Err(ClusterCidrError::Cidr(CidrError::Malformed(_)))
        ));
        assert!(matches!(
            ClusterCidr::new("10.300.0.0/16", 24),
            Err(ClusterCidrError::Cidr(CidrError::Malformed(_)))
        ));
        let s = Ipv4Cidr::parse("10.244.3.0/24").unwrap();
        assert!(s.contains("10.244.3.17".parse().unwrap()));
        assert!(!s.contains("10.244.4.1".parse().unwrap()));
    }

    #[test]
    fn nodes_without_a_cidr_get_the_lowest_free_subnets_none_shared() {
        let c = ClusterCidr::default();
        let r = reconcile(
            &cache(vec![
                node("a", "10.244.0.0/24"),
                node("b", ""),
                node("c", "10.244.2.0/24"),
                node("d", ""),
                node("e", ""),
            ]),
            &c,
        );
        assert_eq!(
            assigned(&r),
            [
                ("b".to_owned(), "10.244.1.0/24".to_owned()),
                ("d".to_owned(), "10.244.3.0/24".to_owned()),
                ("e".to_owned(), "10.244.4.0/24".to_owned()),
            ]
        );
        // Once the writes are in the cache, a pass has nothing to do.
        let r = reconcile(
            &cache(vec![
                node("a", "10.244.0.0/24"),
                node("b", "10.244.1.0/24"),
                node("c", "10.244.2.0/24"),
            ]),
            &c,
        );
        assert!(r.actions.is_empty(), "{r:?}");
    }

    #[test]
    fn a_deleted_nodes_subnet_is_free_again_because_nothing_but_the_nodes_is_remembered() {
        let c = ClusterCidr::default();
        let r = reconcile(
            &cache(vec![node("a", "10.244.0.0/24"), node("new", "")]),
            &c,
        );
        assert_eq!(
            assigned(&r),
            [("new".to_owned(), "10.244.1.0/24".to_owned())]
        );
        // "b" (10.244.1.0/24) was deleted: its subnet goes to the next node.
        let r = reconcile(
            &cache(vec![
                node("a", "10.244.0.0/24"),
                node("c", "10.244.2.0/24"),
                node("z", ""),
            ]),
            &c,
        );
        assert_eq!(assigned(&r), [("z".to_owned(), "10.244.1.0/24".to_owned())]);
    }

    #[test]
    fn exhaustion_and_conflicts_are_warned_about_and_foreign_cidrs_are_kept() {
        let c = ClusterCidr::new("10.0.0.0/23", 24).unwrap();
        let r = reconcile(
            &cache(vec![
                node("a", "10.0.0.0/24"),
                node("b", "10.0.0.0/24"),
                node("c", "192.168.0.0/24"),
                node("d", ""),
                node("e", ""),
            ]),
            &c,
        );
        assert_eq!(assigned(&r), [("d".to_owned(), "10.0.1.0/24".to_owned())]);
        let reasons: Vec<(&str, &str)> = r
            .events()
            .map(|e| (e.involved.name.as_str(), e.reason.as_str()))
            .collect();
        assert!(reasons.contains(&("b", "CIDRConflict")), "{reasons:?}");
        assert!(!reasons.contains(&("a", "CIDRConflict")), "{reasons:?}");
        assert!(reasons.contains(&("e", "CIDRNotAvailable")), "{reasons:?}");
    }
}
