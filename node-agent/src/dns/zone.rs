//! The cluster domain's records, built from Services and Endpoints as one immutable
//! snapshot ([`ClusterZone`]) that queries read without locks held across a build.
//!
//! ```text
//!   <svc>.<ns>.svc.<domain>            A/AAAA  ClusterIP; headless: every ready address
//!   <host>.<svc>.<ns>.svc.<domain>     A       a headless endpoint (its hostname, else its
//!                                              address with dashes: 10-244-1-5)
//!   _<port>._<proto>.<svc>.<ns>.svc…   SRV     named ports (headless: one per endpoint)
//!   <svc>.<ns>.svc.<domain>            CNAME   ExternalName Services
//!   a-b-c-d.<ns>.pod.<domain>          A       any pod address (written in the name)
//!   d.c.b.a.in-addr.arpa               PTR     ClusterIPs and headless endpoints
//! ```
//!
//! Names under the domain that hold nothing are NXDOMAIN; names that exist only as parents
//! (`<ns>.svc.<domain>`) or hold other types answer with no records (NODATA). Owns the
//! naming scheme and lookups; it must not read the API (the caller hands it objects) nor
//! speak the wire format (the server does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use rafter_proto::v1::{Endpoints, Service};

/// How long resolvers may keep an answer, in seconds (short: Services and endpoints change).
pub const TTL: u32 = 5;

/// What the zone says about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The records of that name and type.
    Records(Vec<Record>),
    /// The name exists, with no records of that type.
    NoData,
    /// The name is in the cluster domain and does not exist.
    NxDomain,
    /// The name is not the zone's to answer (forward it).
    Outside,
}

/// Why a cluster domain is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{domain:?} is not a valid cluster domain: {reason}")]
pub struct DomainError {
    /// As given.
    pub domain: String,
    /// What is wrong.
    pub reason: String,
}

/// The records of the cluster domain at one moment.
#[derive(Debug, Clone)]
pub struct ClusterZone {
    domain: LowerName,
    pod_domain: LowerName,
    records: HashMap<(LowerName, RecordType), Vec<Record>>,
    /// Every name that exists (with records, or as a parent of one).
    names: HashSet<LowerName>,
}

fn name(text: &str) -> Option<Name> {
    let mut name = Name::from_ascii(text).ok()?;
    name.set_fqdn(true);
    Some(name)
}

impl ClusterZone {
    /// An empty zone for `domain` (`cluster.local`).
    pub fn empty(domain: &str) -> Result<ClusterZone, DomainError> {
        let refuse = |reason: &str| DomainError {
            domain: domain.to_owned(),
            reason: reason.to_owned(),
        };
        let origin = name(domain).ok_or_else(|| refuse("not a DNS name"))?;
        if origin.is_root() {
            return Err(refuse("it must not be the root"));
        }
        let pod = name(&format!("pod.{domain}")).ok_or_else(|| refuse("not a DNS name"))?;
        let mut zone = ClusterZone {
            domain: LowerName::new(&origin),
            pod_domain: LowerName::new(&pod),
            records: HashMap::new(),
            names: HashSet::new(),
        };
        zone.names.insert(zone.domain.clone());
        zone.names.insert(zone.pod_domain.clone());
        if let Some(svc) = name(&format!("svc.{domain}")) {
            zone.names.insert(LowerName::new(&svc));
        }
        Ok(zone)
    }

    /// The zone of `domain` holding `services`, with the addresses of headless Services
    /// from their Endpoints (keyed by namespace and name).
    pub fn build<'a>(
        domain: &str,
        services: impl IntoIterator<Item = &'a Service>,
        endpoints: &BTreeMap<(String, String), Endpoints>,
    ) -> Result<ClusterZone, DomainError> {
        let mut zone = ClusterZone::empty(domain)?;
        for service in services {
            zone.add_service(domain, service, endpoints);
        }
        Ok(zone)
    }

    /// The cluster domain (`cluster.local.`).
    pub fn domain(&self) -> &LowerName {
        &self.domain
    }

    fn add(&mut self, owner: &Name, rdata: RData) {
        let lower = LowerName::new(owner);
        // The owner and every parent up to the domain exist.
        let mut parent = lower.clone();
        while self.domain.zone_of(&parent) && parent != self.domain {
            self.names.insert(parent.clone());
            parent = parent.base_name();
        }
        let entry = self
            .records
            .entry((lower, rdata.record_type()))
            .or_default();
        let record = Record::from_rdata(owner.clone(), TTL, rdata);
        if !entry.contains(&record) {
            entry.push(record);
        }
    }

    fn add_address(&mut self, owner: &Name, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.add(owner, RData::A(A(v4))),
            IpAddr::V6(v6) => self.add(owner, RData::AAAA(AAAA(v6))),
        }
        if let Some(reverse) = reverse_name(ip) {
            self.add(&reverse, RData::PTR(PTR(owner.clone())));
        }
    }

    fn add_service(
        &mut self,
        domain: &str,
        service: &Service,
        endpoints: &BTreeMap<(String, String), Endpoints>,
    ) {
        let Some(meta) = &service.metadata else {
            return;
        };
        let Some(spec) = &service.spec else {
            return;
        };
        let Some(owner) = name(&format!("{}.{}.svc.{domain}", meta.name, meta.namespace)) else {
            return;
        };
        if spec.r#type == "ExternalName" {
            if let Some(target) = name(&spec.external_name) {
                self.add(&owner, RData::CNAME(CNAME(target)));
            }
            return;
        }
        let headless = spec.cluster_ip == "None";
        if !headless {
            let mut ips: Vec<&String> = spec.cluster_ips.iter().collect();
            if ips.is_empty() {
                ips.push(&spec.cluster_ip);
            }
            let ips: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
            if ips.is_empty() {
                // Not allocated yet: the name exists, with nothing to answer.
                self.names.insert(LowerName::new(&owner));
                return;
            }
            for ip in ips {
                self.add_address(&owner, ip);
            }
            for port in &spec.ports {
                self.add_srv(&owner, &port.name, &port.protocol, port.port, &owner);
            }
            return;
        }
        self.names.insert(LowerName::new(&owner));
        let key = (meta.namespace.clone(), meta.name.clone());
        let Some(endpoints) = endpoints.get(&key) else {
            return;
        };
        for subset in &endpoints.subsets {
            for address in &subset.addresses {
                let Ok(ip) = address.ip.parse::<IpAddr>() else {
                    continue;
                };
                let label = if address.hostname.is_empty() {
                    address.ip.replace(['.', ':'], "-")
                } else {
                    address.hostname.clone()
                };
                let Some(host) = name(&format!("{label}.{}", owner.to_ascii())) else {
                    continue;
                };
                self.add(
                    &owner,
                    match ip {
                        IpAddr::V4(v4) => RData::A(A(v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                    },
                );
                self.add_address(&host, ip);
                for port in &subset.ports {
                    self.add_srv(&owner, &port.name, &port.protocol, port.port, &host);
                }
            }
        }
    }

    fn add_srv(&mut self, owner: &Name, port_name: &str, protocol: &str, port: i32, target: &Name) {
        let (Ok(port), false) = (u16::try_from(port), port_name.is_empty()) else {
            return;
        };
        let protocol = if protocol.is_empty() { "tcp" } else { protocol };
        let Some(srv) = name(&format!(
            "_{port_name}._{}.{}",
            protocol.to_ascii_lowercase(),
            owner.to_ascii()
        )) else {
            return;
        };
        self.add(&srv, RData::SRV(SRV::new(0, 100, port, target.clone())));
    }

    /// What the zone says about `name` and `kind`.
    pub fn answer(&self, name: &LowerName, kind: RecordType) -> Answer {
        let in_domain = self.domain.zone_of(name);
        if !in_domain && !self.records.contains_key(&(name.clone(), RecordType::PTR)) {
            return Answer::Outside;
        }
        if let Some(records) = self.lookup(name, kind) {
            return Answer::Records(records);
        }
        if !in_domain {
            // A reverse name of ours asked for another type.
            return Answer::NoData;
        }
        if let Some(ip) = self.pod_address(name) {
            return match kind {
                RecordType::A => Answer::Records(vec![Record::from_rdata(
                    Name::from(name.clone()),
                    TTL,
                    RData::A(A(ip)),
                )]),
                _ => Answer::NoData,
            };
        }
        if self.names.contains(name) || self.is_pod_namespace(name) {
            Answer::NoData
        } else {
            Answer::NxDomain
        }
    }

    fn lookup(&self, name: &LowerName, kind: RecordType) -> Option<Vec<Record>> {
        if let Some(records) = self.records.get(&(name.clone(), kind)) {
            return Some(records.clone());
        }
        // A CNAME answers every type asked of its name.
        self.records
            .get(&(name.clone(), RecordType::CNAME))
            .filter(|_| kind != RecordType::CNAME)
            .cloned()
    }

    /// `a-b-c-d.<ns>.pod.<domain>`: the address written in the first label.
    fn pod_address(&self, name: &LowerName) -> Option<Ipv4Addr> {
        if name.num_labels() != self.pod_domain.num_labels() + 2 || !self.pod_domain.zone_of(name) {
            return None;
        }
        let first = Name::from(name.clone());
        let label = first.iter().next()?;
        std::str::from_utf8(label)
            .ok()?
            .replace('-', ".")
            .parse()
            .ok()
    }

    fn is_pod_namespace(&self, name: &LowerName) -> bool {
        name.num_labels() == self.pod_domain.num_labels() + 1 && self.pod_domain.zone_of(name)
    }
}

/// `d.c.b.a.in-addr.arpa.` for an IPv4 address (IPv6 reverse names are not kept).
fn reverse_name(ip: IpAddr) -> Option<Name> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            name(&format!("{d}.{c}.{b}.{a}.in-addr.arpa"))
        }
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
#[path = "zone_test.rs"]
mod zone_test;
