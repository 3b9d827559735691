//! The reservation writes of one Service create, update or delete ([`Plan`]): values the
//! Service asks for are checked (range, the API Service's address, held by another
//! Service: refused naming it), values it leaves unset are chosen at random among the free
//! ones, values it gave up are released if it holds them.
//!
//! Owns those decisions and the reads they need (reservation keys, keys only for the
//! taken sets). It must not write: the registry runs the plan in the Service's own
//! transaction, whose compares make a lost race fail instead of sharing a value.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use raft_store::kv::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, PutRequest, RangeRequest,
    TxnOp,
};
use rafter_proto::v1::Service;
use rafter_proto::ReadConsistency;

use super::{
    held, protocol_of, service_type, wants_cluster_ip, wants_node_ports, Held, Owner,
    ServiceRanges, API_SERVICE, IPS_PREFIX, PORTS_PREFIX,
};
use crate::store::{KvStore, StoreError};

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

    fn keep(&mut self, kv: &KeyValue) {
        self.compares.push(Compare::new(
            kv.key.clone(),
            CompareOp::Equal,
            CompareTarget::ModRevision(kv.mod_revision),
        ));
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
            if let Some(kv) = found
                .as_ref()
                .filter(|kv| Owner::decode(&kv.value).is_some_and(|o| o.uid == owner.uid))
            {
                // Already this Service's (its spec had lost the value): kept as it is.
                plan.keep(kv);
                continue;
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
