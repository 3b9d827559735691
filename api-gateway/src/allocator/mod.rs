//! Service ClusterIPs and NodePorts: which values a Service holds, choosing the ones it
//! leaves unset, and the reservation keys that make every value unique.
//!
//! ```text
//!  create/update ─► carry_over (update: values left out are kept, type-dependent ones dropped)
//!        │          ─► admission ─► plan(store, current, next)
//!        │                              │ read: explicit values' keys, taken set (keys only)
//!        │                              ▼
//!        │          refuse (field, value, owning Service) | choose unset values at random
//!        ▼
//!  one transaction: the Service put + reservation puts (create_revision == 0)
//!                   + releases of values it gave up (mod_revision == as read, owner == it)
//! ```
//!
//! A value is held through one key per value in the store, next to the objects:
//! `/registry/allocations/serviceips/<ip>` and `/registry/allocations/nodeports/<protocol>/<port>`,
//! whose value names the owning Service (namespace, name, uid). The reservation is written
//! in the same Raft transaction as the Service, with a compare that the key does not exist,
//! so uniqueness is the store's guarantee: two masters choosing the same value at once,
//! or a leader failing over between them, can never both succeed. A lost race is retried
//! with a fresh choice. Deleting a Service (or its namespace) releases its keys in the
//! delete's transaction; what no write released (a Service created in a namespace while
//! its deletion was decided) is released by the repair pass (`repair`), which the leader
//! runs.
//!
//! | module | owns |
//! |---|---|
//! | `ranges` | [`ServiceRanges`]: the CIDR and port range, which values are usable |
//! | (this file) | the values a Service holds ([`Held`]), reservation keys and their [`Owner`], what an update keeps |
//! | `plan` | the reservation writes of a create, update or delete ([`Plan`]): refusals, random choices |
//! | `repair` | the repair pass's judgement ([`plan_repair`]) |
//!
//! The allocator must not write (the registry puts a plan in its own transaction) and knows
//! nothing of other kinds.

mod plan;
mod ranges;
mod repair;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use rafter_proto::v1::{Service, ServiceSpec};

pub(crate) use plan::{AllocationError, Plan};
pub use ranges::{RangeError, ServiceRanges};
pub(crate) use repair::{plan_repair, StoredService};
pub use repair::{RepairProblem, RepairReport};

/// Where every reservation key lives.
pub const ALLOCATIONS_PREFIX: &str = "/registry/allocations/";
const IPS_PREFIX: &str = "/registry/allocations/serviceips/";
const PORTS_PREFIX: &str = "/registry/allocations/nodeports/";

/// The namespace and name of the Service the first address of the range is kept for.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");

/// One value a Service holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Held {
    /// Its ClusterIP.
    Ip(Ipv4Addr),
    /// A node port, per protocol (`tcp`, `udp`, `sctp`).
    NodePort {
        /// Lowercase protocol.
        protocol: String,
        /// The port.
        port: i32,
    },
}

impl Held {
    /// The reservation key of this value.
    pub(crate) fn key(&self) -> String {
        match self {
            Held::Ip(ip) => format!("{IPS_PREFIX}{ip}"),
            Held::NodePort { protocol, port } => format!("{PORTS_PREFIX}{protocol}/{port}"),
        }
    }

    /// The value a reservation key stands for.
    pub(crate) fn from_key(key: &[u8]) -> Option<Held> {
        let key = std::str::from_utf8(key).ok()?;
        if let Some(ip) = key.strip_prefix(IPS_PREFIX) {
            return ip.parse().ok().map(Held::Ip);
        }
        let (protocol, port) = key.strip_prefix(PORTS_PREFIX)?.split_once('/')?;
        Some(Held::NodePort {
            protocol: protocol.to_owned(),
            port: port.parse().ok()?,
        })
    }

    /// As a person reads it: `10.96.0.10` or `30080/TCP`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Held::Ip(ip) => format!("ClusterIP {ip}"),
            Held::NodePort { protocol, port } => {
                format!("node port {port}/{}", protocol.to_ascii_uppercase())
            }
        }
    }
}

/// Who holds a reservation: the value of its key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Owner {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's uid: a Service of the same name created later is another owner.
    pub uid: String,
}

impl Owner {
    fn of(service: &Service) -> Owner {
        let meta = service.metadata.clone().unwrap_or_default();
        Owner {
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
        }
    }

    fn decode(value: &[u8]) -> Option<Owner> {
        serde_json::from_slice(value).ok()
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Service \"{}/{}\"", self.namespace, self.name)
    }
}

fn service_type(spec: &ServiceSpec) -> &str {
    if spec.r#type.is_empty() {
        "ClusterIP"
    } else {
        spec.r#type.as_str()
    }
}

/// Whether a Service of this spec gets a ClusterIP (not headless, not ExternalName).
fn wants_cluster_ip(spec: &ServiceSpec) -> bool {
    service_type(spec) != "ExternalName" && spec.cluster_ip != "None"
}

/// Whether a Service of this spec gets node ports.
fn wants_node_ports(spec: &ServiceSpec) -> bool {
    matches!(service_type(spec), "NodePort" | "LoadBalancer")
}

fn protocol_of(protocol: &str) -> String {
    if protocol.is_empty() {
        "tcp".to_owned()
    } else {
        protocol.to_ascii_lowercase()
    }
}

/// Every value a Service holds (what its spec carries; unparsable values hold nothing).
pub(crate) fn held(service: &Service) -> BTreeSet<Held> {
    let mut held = BTreeSet::new();
    let Some(spec) = &service.spec else {
        return held;
    };
    if wants_cluster_ip(spec) {
        if let Ok(ip) = spec.cluster_ip.parse::<Ipv4Addr>() {
            held.insert(Held::Ip(ip));
        }
    }
    if wants_node_ports(spec) {
        for port in spec.ports.iter().filter(|p| p.node_port != 0) {
            held.insert(Held::NodePort {
                protocol: protocol_of(&port.protocol),
                port: port.node_port,
            });
        }
    }
    held
}

/// Before admission of a create or an update: `clusterIP` from `clusterIPs` when only
/// the list is given, and the list kept equal to it.
pub(crate) fn normalize(service: &mut Service) {
    let Some(spec) = &mut service.spec else {
        return;
    };
    if spec.cluster_ip.is_empty() {
        if let Some(first) = spec.cluster_ips.first() {
            spec.cluster_ip = first.clone();
        }
    }
    spec.cluster_ips = if spec.cluster_ip.is_empty() {
        Vec::new()
    } else {
        vec![spec.cluster_ip.clone()]
    };
}

/// Before admission of an update, as Kubernetes' service strategy does: what the update
/// leaves out (a manifest applied again has no clusterIP or nodePort) is kept from
/// `current`, and the values the new type has no use for are dropped when the update
/// did not change them (a NodePort Service turned ClusterIP loses its node ports, one
/// turned ExternalName its ClusterIP).
pub(crate) fn carry_over(current: &Service, next: &mut Service) {
    let Some(old) = &current.spec else { return };
    let Some(new) = &mut next.spec else { return };
    let new_type = service_type(new).to_owned();
    if new.cluster_ip.is_empty() && new.cluster_ips.is_empty() && new_type != "ExternalName" {
        new.cluster_ip = old.cluster_ip.clone();
    }
    if new_type == "ExternalName" && new.cluster_ip == old.cluster_ip {
        new.cluster_ip.clear();
        new.cluster_ips.clear();
    }
    let node_ports = wants_node_ports(new);
    for port in &mut new.ports {
        let before = old.ports.iter().find(|p| {
            p.port == port.port && protocol_of(&p.protocol) == protocol_of(&port.protocol)
        });
        match before {
            Some(before) if node_ports && port.node_port == 0 => {
                port.node_port = before.node_port;
            }
            Some(before) if !node_ports && port.node_port == before.node_port => {
                port.node_port = 0;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_keys_name_their_value() {
        let ip = Held::Ip(Ipv4Addr::new(10, 96, 3, 4));
        assert_eq!(ip.key(), "/registry/allocations/serviceips/10.96.3.4");
        let port = Held::NodePort {
            protocol: "udp".into(),
            port: 30053,
        };
        assert_eq!(port.key(), "/registry/allocations/nodeports/udp/30053");
        for held in [ip, port] {
            assert_eq!(Held::from_key(held.key().as_bytes()), Some(held));
        }
        assert_eq!(Held::from_key(b"/registry/core/services/default/x"), None);
    }
}
