//! What the node proxy forwards, worked out from Services and v1 Endpoints (pure): one
//! [`ServicePortRule`] per Service port that gets rules, with its frontends (ClusterIP,
//! NodePort, LoadBalancer ingress and external IPs) and its ready endpoints.
//!
//! ```text
//!   Service ns/web  port http 80/TCP ──┐   Endpoints ns/web  subset ports [http 8080/TCP]
//!     clusterIP 10.96.0.10             ├─►   addresses [10.88.0.5 (node a), 10.88.0.6 (b)]
//!     nodePort 30080, ingress [IP..]   │
//!                                      ▼
//!   ServicePortRule { 10.96.0.10:80/tcp, :30080, ingress, endpoints [10.88.0.5:8080 local,
//!                     10.88.0.6:8080], affinity, external policy Local? }
//! ```
//!
//! Owns the Kubernetes semantics of which Services get rules (not ExternalName, not
//! headless), how a Service port finds its endpoint port (by name, then protocol), which
//! endpoints are this node's, and the affinity timeout. It must not render rules or do
//! I/O: `nft` renders this model, `userspace` listens for it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rafter_proto::v1::{Endpoints, Service, ServicePort};
use rafter_proto::DEFAULT_AFFINITY_TIMEOUT_SECONDS;

/// A transport protocol a Service port forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol of a manifest's `protocol` field (empty is TCP); `None` if unknown.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables name (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One ready endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The endpoint's address.
    pub ip: Ipv4Addr,
    /// The endpoint's port (the resolved target port).
    pub port: u16,
    /// Whether it runs on this node (`nodeName` of the address).
    pub local: bool,
}

/// Everything the proxy does for one port of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortRule {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name, or its number when it has none.
    pub port_name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The ClusterIP, when the Service has one (allocated, not headless).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service port.
    pub port: u16,
    /// The NodePort, for NodePort and LoadBalancer Services that have one.
    pub node_port: Option<u16>,
    /// LoadBalancer ingress addresses and `spec.externalIPs`, reached on `port`.
    pub external_ips: Vec<Ipv4Addr>,
    /// The ready endpoints, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
    /// `sessionAffinity: ClientIP`: how long (seconds) a client sticks to its endpoint.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`: NodePort and external traffic go to this node's
    /// endpoints only, without masquerade.
    pub external_local: bool,
}

impl ServicePortRule {
    /// `namespace/name:port` for logs and comments.
    pub fn id(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }

    /// The endpoints external traffic may go to (this node's for the Local policy).
    pub fn external_endpoints(&self) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| !self.external_local || e.local)
            .collect()
    }
}

/// The Services and Endpoints the proxy knows, keyed by `(namespace, name)`.
#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    /// Services by `(namespace, name)`.
    pub services: BTreeMap<(String, String), Service>,
    /// Endpoints by `(namespace, name)` (the Service's name).
    pub endpoints: BTreeMap<(String, String), Endpoints>,
}

fn parse_ip(text: &str) -> Option<Ipv4Addr> {
    text.parse().ok()
}

fn port_u16(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

/// The ready endpoints of `port` in `endpoints`: subsets whose port has the Service
/// port's name (an unnamed Service port matches an unnamed endpoint port) and protocol.
fn endpoints_of(
    port: &ServicePort,
    protocol: Protocol,
    endpoints: Option<&Endpoints>,
    node: &str,
) -> Vec<Endpoint> {
    let mut found = BTreeSet::new();
    for subset in endpoints.map(|e| e.subsets.as_slice()).unwrap_or_default() {
        let target = subset
            .ports
            .iter()
            .find(|p| p.name == port.name && Protocol::parse(&p.protocol) == Some(protocol));
        let Some(target) = target.and_then(|p| port_u16(p.port)) else {
            continue;
        };
        for address in &subset.addresses {
            let Some(ip) = parse_ip(&address.ip) else {
                continue;
            };
            let local = address.node_name.as_deref() == Some(node);
            found.insert(Endpoint {
                ip,
                port: target,
                local,
            });
        }
    }
    found.into_iter().collect()
}

/// The rules for every Service port in `state`, for the node named `node`, in a stable
/// order (namespace, name, port). ExternalName and headless Services, ports with an
/// unknown protocol and Services with no frontend at all get none.
pub fn service_rules(state: &ServiceState, node: &str) -> Vec<ServicePortRule> {
    let mut rules = Vec::new();
    for ((namespace, name), service) in &state.services {
        let Some(spec) = &service.spec else {
            continue;
        };
        if spec.r#type == "ExternalName" || spec.cluster_ip == "None" {
            continue;
        }
        let cluster_ip = parse_ip(&spec.cluster_ip);
        let with_node_ports = matches!(spec.r#type.as_str(), "NodePort" | "LoadBalancer");
        let mut external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .filter_map(|a| parse_ip(a))
            .collect();
        if spec.r#type == "LoadBalancer" {
            let ingress = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .map(|lb| lb.ingress.as_slice())
                .unwrap_or_default();
            external_ips.extend(ingress.iter().filter_map(|i| parse_ip(&i.ip)));
        }
        external_ips.sort();
        external_ips.dedup();
        let affinity_timeout = (spec.session_affinity == "ClientIP").then(|| {
            let seconds = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS);
            u32::try_from(seconds).unwrap_or(1).max(1)
        });
        let key = (namespace.clone(), name.clone());
        for port in &spec.ports {
            let (Some(protocol), Some(number)) =
                (Protocol::parse(&port.protocol), port_u16(port.port))
            else {
                continue;
            };
            let node_port = if with_node_ports {
                port_u16(port.node_port)
            } else {
                None
            };
            if cluster_ip.is_none() && node_port.is_none() && external_ips.is_empty() {
                continue;
            }
            let port_name = if port.name.is_empty() {
                number.to_string()
            } else {
                port.name.clone()
            };
            rules.push(ServicePortRule {
                namespace: namespace.clone(),
                name: name.clone(),
                port_name,
                protocol,
                cluster_ip,
                port: number,
                node_port,
                external_ips: external_ips.clone(),
                endpoints: endpoints_of(port, protocol, state.endpoints.get(&key), node),
                affinity_timeout,
                external_local: spec.external_traffic_policy == "Local",
            });
        }
    }
    rules
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rafter_proto::parse_object;
    use rafter_proto::Object;

    /// The state holding `manifests` (Services and Endpoints), defaulted.
    pub(crate) fn state(manifests: &[&str]) -> ServiceState {
        let mut state = ServiceState::default();
        for yaml in manifests {
            let mut object = parse_object(yaml, "test").unwrap();
            rafter_proto::apply_defaults(&mut object);
            let key = (
                object.metadata().namespace.clone(),
                object.metadata().name.clone(),
            );
            match object {
                Object::Service(s) => {
                    state.services.insert(key, s);
                }
                Object::Endpoints(e) => {
                    state.endpoints.insert(key, e);
                }
                other => panic!("not a Service or Endpoints: {other:?}"),
            }
        }
        state
    }

    const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: dns, port: 53, protocol: UDP}]}";
    const WEB_EP: &str = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: shop}\nsubsets:\n- addresses: [{ip: 10.88.0.6, nodeName: b}, {ip: 10.88.0.5, nodeName: a}]\n  notReadyAddresses: [{ip: 10.88.0.7, nodeName: a}]\n  ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]";

    #[test]
    fn a_service_port_gets_its_named_endpoint_ports_and_only_ready_addresses() {
        let rules = service_rules(&state(&[WEB, WEB_EP]), "a");
        assert_eq!(rules.len(), 2);
        let http = &rules[0];
        assert_eq!(http.id(), "shop/web:http");
        assert_eq!(http.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(
            http.endpoints,
            vec![
                Endpoint {
                    ip: Ipv4Addr::new(10, 88, 0, 5),
                    port: 8080,
                    local: true
                },
                Endpoint {
                    ip: Ipv4Addr::new(10, 88, 0, 6),
                    port: 8080,
                    local: false
                },
            ]
        );
        let dns = &rules[1];
        assert_eq!((dns.protocol, dns.port), (Protocol::Udp, 53));
        assert!(dns.endpoints.iter().all(|e| e.port == 5353));
        assert_eq!(http.affinity_timeout, None);
    }

    #[test]
    fn external_name_and_headless_services_get_no_rules() {
        let rules = service_rules(
            &state(&[
                "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: db.example.com}",
                "apiVersion: v1\nkind: Service\nmetadata: {name: hl}\nspec: {clusterIP: None, ports: [{port: 80}]}",
                "apiVersion: v1\nkind: Service\nmetadata: {name: pending}\nspec: {ports: [{port: 80}]}",
            ]),
            "a",
        );
        assert!(rules.is_empty(), "{rules:?}");
    }

    #[test]
    fn client_ip_affinity_defaults_to_three_hours_and_honours_the_timeout() {
        let rules = service_rules(
            &state(&[
                "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, sessionAffinity: ClientIP, ports: [{port: 80}]}",
                "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {clusterIP: 10.96.0.2, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}, ports: [{port: 80}]}",
            ]),
            "n",
        );
        assert_eq!(rules[0].affinity_timeout, Some(10_800));
        assert_eq!(rules[1].affinity_timeout, Some(60));
    }

    #[test]
    fn local_policy_sends_external_traffic_to_this_nodes_endpoints_only() {
        let local = WEB.replace(
            "type: NodePort,",
            "type: NodePort, externalTrafficPolicy: Local,",
        );
        let rules = service_rules(&state(&[&local, WEB_EP]), "b");
        let http = &rules[0];
        assert!(http.external_local);
        let external: Vec<Ipv4Addr> = http.external_endpoints().iter().map(|e| e.ip).collect();
        assert_eq!(external, vec![Ipv4Addr::new(10, 88, 0, 6)]);
        let rules = service_rules(&state(&[&local, WEB_EP]), "elsewhere");
        assert!(rules[0].external_endpoints().is_empty());
        assert_eq!(
            rules[0].endpoints.len(),
            2,
            "cluster traffic still reaches every endpoint"
        );
    }

    #[test]
    fn load_balancer_ingress_and_external_ips_are_frontends() {
        let rules = service_rules(
            &state(&["apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.3, externalIPs: [192.0.2.9], ports: [{port: 8080, nodePort: 31000}]}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.2}, {ip: 192.0.2.9}]}}"]),
            "n",
        );
        assert_eq!(
            rules[0].external_ips,
            vec![Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 9)]
        );
        assert_eq!(rules[0].node_port, Some(31000));
    }

    #[test]
    fn a_cluster_ip_service_has_no_node_port_even_if_one_is_written() {
        let mut st = state(&[WEB]);
        if let Some(spec) = st
            .services
            .values_mut()
            .next()
            .and_then(|s| s.spec.as_mut())
        {
            spec.r#type = "ClusterIP".to_owned();
        }
        assert!(service_rules(&st, "a")
            .iter()
            .all(|r| r.node_port.is_none()));
    }
}
