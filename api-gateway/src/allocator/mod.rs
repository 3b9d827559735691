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
//! with a fresh choice. Deleting a Service releases its keys in the delete's transaction;
//! what a bulk delete (a namespace) leaves behind is released by the repair pass
//! (`repair`), which the leader runs.
//!
//! Owns the ranges ([`ServiceRanges`]), the key layout of reservations and the planning of
//! their writes. It must not write (the registry puts the plan in its transaction) and
//! knows nothing of other kinds.

mod repair;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use raft_store::kv::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, PutRequest, RangeRequest,
    TxnOp,
};
use rafter_proto::v1::{Service, ServiceSpec};
use rafter_proto::{CidrError, Ipv4Cidr, ReadConsistency};

use crate::store::{KvStore, StoreError};

pub(crate) use repair::{plan_repair, StoredService};
pub use repair::{RepairProblem, RepairReport};

/// Where every reservation key lives.
pub const ALLOCATIONS_PREFIX: &str = "/registry/allocations/";
const IPS_PREFIX: &str = "/registry/allocations/serviceips/";
const PORTS_PREFIX: &str = "/registry/allocations/nodeports/";

/// The namespace and name of the Service the first address of the range is kept for.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");

/// Why a range given to the master is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The service CIDR is not a CIDR.
    #[error("--service-cluster-ip-range: {0}")]
    Cidr(#[from] CidrError),
    /// The service CIDR leaves no address for Services besides the API Service's.
    #[error("--service-cluster-ip-range: {0} is too small; it needs a /30 or larger")]
    TooSmall(String),
    /// The node port range is not `LOW-HIGH` with 1 ≤ LOW ≤ HIGH ≤ 65535.
    #[error("--service-node-port-range: {0:?} is not LOW-HIGH with 1 <= LOW <= HIGH <= 65535")]
    Ports(String),
}

/// Why values could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AllocationError {
    /// The Service asks for what it cannot have: field errors, `path: message`.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ranges ClusterIPs and NodePorts come from (`--service-cluster-ip-range`,
/// `--service-node-port-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRanges {
    cidr: Ipv4Cidr,
    ports: (i32, i32),
}

impl Default for ServiceRanges {
    /// `10.96.0.0/12` and `30000-32767`, as Kubernetes.
    fn default() -> Self {
        ServiceRanges {
            cidr: Ipv4Cidr {
                address: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
                prefix: 12,
            },
            ports: (30000, 32767),
        }
    }
}

impl ServiceRanges {
    /// The ranges from their flags' text: `a.b.c.d/n` and `LOW-HIGH`.
    pub fn parse(cidr: &str, node_ports: &str) -> Result<ServiceRanges, RangeError> {
        let cidr = Ipv4Cidr::parse(cidr)?;
        if cidr.prefix > 30 {
            return Err(RangeError::TooSmall(cidr.to_string()));
        }
        let bad = || RangeError::Ports(node_ports.to_owned());
        let (low, high) = node_ports.trim().split_once('-').ok_or_else(bad)?;
        let low: i32 = low.trim().parse().map_err(|_| bad())?;
        let high: i32 = high.trim().parse().map_err(|_| bad())?;
        if !(1..=65535).contains(&low) || !(low..=65535).contains(&high) {
            return Err(bad());
        }
        Ok(ServiceRanges {
            cidr,
            ports: (low, high),
        })
    }

    /// The service CIDR.
    pub fn service_cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The node port range, inclusive.
    pub fn node_ports(&self) -> (i32, i32) {
        self.ports
    }

    /// The first address of the range, kept for the `kubernetes` Service in `default`.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        self.cidr.nth(1).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Whether `ip` may be a ClusterIP: in the range, neither its network nor its
    /// broadcast address.
    fn ip_usable(&self, ip: Ipv4Addr) -> bool {
        self.cidr
            .offset_of(ip)
            .is_some_and(|offset| offset >= 1 && offset + 1 < self.cidr.size())
    }

    fn port_usable(&self, port: i32) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    fn ports_text(&self) -> String {
        format!("{}-{}", self.ports.0, self.ports.1)
    }
}

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

/// The reservation writes that go into a Service's transaction: compares and operations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Conditions the transaction must also hold.
    pub compares: Vec<Compare>,
    /// Operations it must also run.
    pub ops: Vec<TxnOp>,
}

impl Plan {
    /// Whether the plan writes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.compares.is_empty() && self.ops.is_empty()
    }

    fn reserve(&mut self, held: &Held, owner: &Owner) {
        let key = held.key();
        self.compares.push(Compare::new(
            key.clone(),
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        ));
        self.ops
            .push(TxnOp::Put(PutRequest::new(key, owner.encode())));
    }

    fn release(&mut self, kv: &KeyValue) {
        self.compares.push(Compare::new(
            kv.key.clone(),
            CompareOp::Equal,
            CompareTarget::ModRevision(kv.mod_revision),
        ));
        self.ops
            .push(TxnOp::Delete(DeleteRequest::new(KeyRange::key(
                kv.key.clone(),
            ))));
    }
}

async fn read_key<S: KvStore>(
    store: &S,
    key: &str,
    consistency: ReadConsistency,
) -> Result<Option<KeyValue>, StoreError> {
    let response = store
        .range(RangeRequest::new(KeyRange::key(key)), consistency)
        .await?;
    Ok(response.kvs.into_iter().next())
}

/// The values of one kind taken now (keys only).
async fn taken<S: KvStore>(
    store: &S,
    prefix: &str,
    consistency: ReadConsistency,
) -> Result<BTreeSet<Held>, StoreError> {
    let mut request = RangeRequest::new(KeyRange::prefix(prefix));
    request.keys_only = true;
    let response = store.range(request, consistency).await?;
    Ok(response
        .kvs
        .iter()
        .filter_map(|kv| Held::from_key(&kv.key))
        .collect())
}

/// A free value of `low..=high` (inclusive) not in `taken`: the first free one from
/// `low + seed % span` on, wrapping around (a random seed makes it a random choice).
/// `None` when every one is taken.
fn choose<F>(low: u64, high: u64, taken: F, seed: u64) -> Option<u64>
where
    F: Fn(u64) -> bool,
{
    if low > high {
        return None;
    }
    let span = high - low + 1;
    let start = seed % span;
    (0..span)
        .map(|i| low + (start + i) % span)
        .find(|value| !taken(*value))
}

impl ServiceRanges {
    /// Plans the values `next` holds: refuses what it asks for and may not have (out of
    /// range, the API Service's address, held by another Service), chooses at random what
    /// it leaves unset (writing the choice into `next`), and returns the reservation
    /// writes. With `current` (an update) values both hold stay as they are, values only
    /// `current` holds are released, and a changed clusterIP is refused (immutable).
    pub(crate) async fn plan<S: KvStore>(
        &self,
        store: &S,
        current: Option<&Service>,
        next: &mut Service,
        consistency: ReadConsistency,
    ) -> Result<Plan, AllocationError> {
        let owner = Owner::of(next);
        let before = current.map(held).unwrap_or_default();
        let mut errors = Vec::new();
        let Some(spec) = next.spec.as_mut() else {
            return Ok(Plan::default());
        };
        if let Some(old) = current.and_then(|c| c.spec.as_ref()) {
            let kept_or_dropped = spec.cluster_ip == old.cluster_ip
                || service_type(spec) == "ExternalName"
                || old.cluster_ip.is_empty();
            if !kept_or_dropped {
                errors.push(format!(
                    "spec.clusterIP: Invalid value: {:?}: field is immutable",
                    spec.cluster_ip
                ));
            }
        }

        // What the Service asks for by value, with the field that asks.
        let mut asked: Vec<(String, Held)> = Vec::new();
        let want_ip = wants_cluster_ip(spec);
        if want_ip && !spec.cluster_ip.is_empty() {
            match spec.cluster_ip.parse::<Ipv4Addr>() {
                Ok(ip) => asked.push(("spec.clusterIP".to_owned(), Held::Ip(ip))),
                Err(_) => errors.push(format!(
                    "spec.clusterIP: Invalid value: {:?}: provided IP is not in the valid range. The range of valid IPs is {}",
                    spec.cluster_ip, self.cidr
                )),
            }
        }
        let want_ports = wants_node_ports(spec);
        if want_ports {
            for (i, port) in spec.ports.iter().enumerate() {
                if port.node_port != 0 {
                    asked.push((
                        format!("spec.ports[{i}].nodePort"),
                        Held::NodePort {
                            protocol: protocol_of(&port.protocol),
                            port: port.node_port,
                        },
                    ));
                }
            }
        }
        let mut plan = Plan::default();
        let mut holding: BTreeSet<Held> = BTreeSet::new();
        for (path, value) in &asked {
            holding.insert(value.clone());
            if before.contains(value) {
                continue;
            }
            match value {
                Held::Ip(ip) if !self.ip_usable(*ip) => {
                    errors.push(format!(
                        "{path}: Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is {}",
                        self.cidr
                    ));
                    continue;
                }
                Held::Ip(ip)
                    if *ip == self.api_service_ip()
                        && (owner.namespace.as_str(), owner.name.as_str()) != API_SERVICE =>
                {
                    errors.push(format!(
                        "{path}: Invalid value: \"{ip}\": provided IP is reserved for Service \"{}/{}\"",
                        API_SERVICE.0, API_SERVICE.1
                    ));
                    continue;
                }
                Held::NodePort { port, .. } if !self.port_usable(*port) => {
                    errors.push(format!(
                        "{path}: Invalid value: {port}: provided port is not in the valid range. The range of valid ports is {}",
                        self.ports_text()
                    ));
                    continue;
                }
                _ => {}
            }
            // A refusal is only trusted from a linearizable read.
            let mut found = read_key(store, &value.key(), consistency).await?;
            if found.is_some() && consistency == ReadConsistency::Serializable {
                found = read_key(store, &value.key(), ReadConsistency::Linearizable).await?;
            }
            if let Some(kv) = found {
                let by = Owner::decode(&kv.value)
                    .map_or_else(|| "another Service".to_owned(), |o| o.to_string());
                let shown = match value {
                    Held::Ip(ip) => format!("\"{ip}\""),
                    Held::NodePort { port, .. } => port.to_string(),
                };
                let what = if matches!(value, Held::Ip(_)) {
                    "IP"
                } else {
                    "port"
                };
                errors.push(format!(
                    "{path}: Invalid value: {shown}: provided {what} is already allocated (by {by})"
                ));
                continue;
            }
            plan.reserve(value, &owner);
        }
        if !errors.is_empty() {
            return Err(AllocationError::Invalid(errors));
        }

        // What it leaves unset, chosen at random among the free values. A full range is
        // only believed from a linearizable read.
        if want_ip && spec.cluster_ip.is_empty() {
            let size = self.cidr.size();
            // Offsets 2..size-2: not the network, the API Service's or the broadcast address.
            let pick = |taken_ips: &BTreeSet<Held>| {
                choose(
                    2,
                    size.saturating_sub(2),
                    |offset| {
                        self.cidr
                            .nth(offset)
                            .is_none_or(|ip| taken_ips.contains(&Held::Ip(ip)))
                    },
                    rand::random(),
                )
                .and_then(|offset| self.cidr.nth(offset))
            };
            let mut taken_ips = taken(store, IPS_PREFIX, consistency).await?;
            taken_ips.extend(holding.iter().cloned());
            let mut chosen = pick(&taken_ips);
            if chosen.is_none() && consistency == ReadConsistency::Serializable {
                taken_ips = taken(store, IPS_PREFIX, ReadConsistency::Linearizable).await?;
                taken_ips.extend(holding.iter().cloned());
                chosen = pick(&taken_ips);
            }
            let Some(ip) = chosen else {
                return Err(AllocationError::Invalid(vec![format!(
                    "spec.clusterIP: Internal error: failed to allocate a ClusterIP: the range {} is full",
                    self.cidr
                )]));
            };
            spec.cluster_ip = ip.to_string();
            spec.cluster_ips = vec![ip.to_string()];
            holding.insert(Held::Ip(ip));
            plan.reserve(&Held::Ip(ip), &owner);
        }
        if want_ports && spec.ports.iter().any(|p| p.node_port == 0) {
            let mut read = consistency;
            let mut taken_ports = taken(store, PORTS_PREFIX, read).await?;
            taken_ports.extend(holding.iter().cloned());
            let (low, high) = self.ports;
            for (i, port) in spec.ports.iter_mut().enumerate() {
                if port.node_port != 0 {
                    continue;
                }
                let protocol = protocol_of(&port.protocol);
                let pick = |taken_ports: &BTreeSet<Held>| {
                    let is_taken = |p: u64| {
                        i32::try_from(p).map_or(true, |port| {
                            taken_ports.contains(&Held::NodePort {
                                protocol: protocol.clone(),
                                port,
                            })
                        })
                    };
                    choose(low as u64, high as u64, is_taken, rand::random())
                        .and_then(|p| i32::try_from(p).ok())
                };
                let mut chosen = pick(&taken_ports);
                if chosen.is_none() && read == ReadConsistency::Serializable {
                    read = ReadConsistency::Linearizable;
                    taken_ports = taken(store, PORTS_PREFIX, read).await?;
                    taken_ports.extend(holding.iter().cloned());
                    chosen = pick(&taken_ports);
                }
                let Some(chosen) = chosen else {
                    return Err(AllocationError::Invalid(vec![format!(
                        "spec.ports[{i}].nodePort: Internal error: failed to allocate a node port: the range {} is full",
                        self.ports_text()
                    )]));
                };
                port.node_port = chosen;
                let value = Held::NodePort {
                    protocol,
                    port: chosen,
                };
                taken_ports.insert(value.clone());
                holding.insert(value.clone());
                plan.reserve(&value, &owner);
            }
        }

        // What it gave up.
        for value in before.difference(&holding) {
            release_own(store, value, &owner.uid, consistency, &mut plan).await?;
        }
        Ok(plan)
    }

    /// The releases of everything `service` holds, for its deletion.
    pub(crate) async fn release_all<S: KvStore>(
        &self,
        store: &S,
        service: &Service,
        consistency: ReadConsistency,
    ) -> Result<Plan, AllocationError> {
        let mut plan = Plan::default();
        let uid = Owner::of(service).uid;
        for value in held(service) {
            release_own(store, &value, &uid, consistency, &mut plan).await?;
        }
        Ok(plan)
    }
}

/// Releases `value` if the Service with `uid` holds its reservation (a reservation of
/// another Service is never touched).
async fn release_own<S: KvStore>(
    store: &S,
    value: &Held,
    uid: &str,
    consistency: ReadConsistency,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    if let Some(kv) = read_key(store, &value.key(), consistency).await? {
        if Owner::decode(&kv.value).is_some_and(|o| o.uid == uid) {
            plan.release(&kv);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_with_the_flag_named() {
        let r = ServiceRanges::parse("10.96.0.0/12", "30000-32767").unwrap();
        assert_eq!(r, ServiceRanges::default());
        assert_eq!(r.api_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.ip_usable(Ipv4Addr::new(10, 96, 0, 1)));
        assert!(!r.ip_usable(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!r.ip_usable(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(r.ip_usable(Ipv4Addr::new(10, 111, 255, 254)));
        let err = ServiceRanges::parse("10.96.0.1/12", "30000-32767").unwrap_err();
        assert!(
            err.to_string().contains("--service-cluster-ip-range"),
            "{err}"
        );
        let err = ServiceRanges::parse("10.96.0.0/31", "30000-32767").unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
        for bad in ["30000", "32767-30000", "0-10", "1-70000", "a-b"] {
            let err = ServiceRanges::parse("10.96.0.0/12", bad).unwrap_err();
            assert!(
                err.to_string().contains("--service-node-port-range"),
                "{bad}: {err}"
            );
        }
    }

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

    #[test]
    fn choices_are_free_values_until_none_is_left() {
        let taken: BTreeSet<u64> = [3, 4, 6].into();
        let mut seen = BTreeSet::new();
        for seed in 0..50 {
            let v = choose(3, 7, |v| taken.contains(&v), seed).unwrap();
            assert!(v == 5 || v == 7, "{v}");
            seen.insert(v);
        }
        assert_eq!(seen.len(), 2, "every free value is a possible choice");
        assert_eq!(choose(3, 4, |v| taken.contains(&v), 9), None);
        assert_eq!(choose(5, 4, |_| false, 0), None);
    }
}
