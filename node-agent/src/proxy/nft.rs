//! The nftables rule set of the node proxy (pure): [`Ruleset::build`] turns the
//! [`ServicePortRule`]s into the chains and sets of one table of its own, and renders them
//! as one `nft -f` transaction — the whole table on the first sync ([`Ruleset::full`]), or
//! flushed and refilled in place afterwards ([`Ruleset::update`]), which keeps the
//! ClientIP affinity sets' entries across syncs and deletes what is no longer needed.
//!
//! ```text
//!  nat prerouting / output ─► services
//!     services:  ip daddr . l4proto . dport vmap { CIP . tcp . 80 : goto svc-S,
//!                                                  LBIP . tcp . 80 : goto ext-S }
//!                fib daddr type local (not 127/8): l4proto . dport vmap { tcp . 30080 : goto ext-S }
//!     ext-S:     Cluster policy: mark for masquerade, goto svc-S
//!                Local policy:   spread over this node's endpoints (no masquerade)
//!     svc-S:     [affinity: ip saddr @aff-E goto ep-E, per endpoint]
//!                numgen random mod N vmap { 0 : goto ep-E0, 1 : goto ep-E1, .. }
//!     ep-E:      ip saddr E mark for masquerade (hairpin) ; [update @aff-E { ip saddr }]
//!                dnat to E
//!  nat postrouting: marked ─► masquerade
//!  filter input / forward / output ─► no-endpoints: reject what has no endpoint,
//!                drop NodePorts of Local Services with no endpoint on this node
//! ```
//!
//! Everything here is text; running `nft` is `apply`'s job. IPv4 only (`table ip`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::model::{Endpoint, ServicePortRule};

/// The packet mark bit that asks the postrouting chain to masquerade (as kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The chains and sets one sync leaves in the table, to delete the stale ones next time.
pub type Names = BTreeSet<(ObjectType, String)>;

/// An nftables object the proxy creates by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectType {
    /// A chain.
    Chain,
    /// A named set.
    Set,
}

impl ObjectType {
    fn keyword(self) -> &'static str {
        match self {
            ObjectType::Chain => "chain",
            ObjectType::Set => "set",
        }
    }
}

/// A chain: its declaration (`{ type .. hook .. }` for base chains) and its rules.
#[derive(Debug, Clone)]
struct Chain {
    name: String,
    declaration: Option<&'static str>,
    rules: Vec<String>,
}

/// The desired content of the proxy's table.
#[derive(Debug, Clone)]
pub struct Ruleset {
    table: String,
    chains: Vec<Chain>,
    /// Set name → its declaration body.
    sets: Vec<(String, String)>,
}

/// The base chains: (name, declaration, the rules they always hold).
const BASE_CHAINS: &[(&str, &str, &[&str])] = &[
    (
        "nat-prerouting",
        "{ type nat hook prerouting priority dstnat; policy accept; }",
        &["jump services"],
    ),
    (
        "nat-output",
        "{ type nat hook output priority -100; policy accept; }",
        &["jump services"],
    ),
    (
        "nat-postrouting",
        "{ type nat hook postrouting priority srcnat; policy accept; }",
        &[
            "meta mark & 0x4000 == 0 return",
            "meta mark set meta mark ^ 0x4000",
            "masquerade",
        ],
    ),
    (
        "filter-input",
        "{ type filter hook input priority filter - 10; policy accept; }",
        &["jump no-endpoints"],
    ),
    (
        "filter-forward",
        "{ type filter hook forward priority filter - 10; policy accept; }",
        &["jump no-endpoints"],
    ),
    (
        "filter-output",
        "{ type filter hook output priority filter - 10; policy accept; }",
        &["jump no-endpoints"],
    ),
];

fn base(rule: &ServicePortRule) -> String {
    format!("{}/{}/{}", rule.namespace, rule.name, rule.port_name)
}

fn endpoint_suffix(rule: &ServicePortRule, ep: &Endpoint) -> String {
    format!("{}/{}/{}", base(rule), ep.ip, ep.port)
}

/// The affinity set of an endpoint (the timeout is part of the name, so a changed
/// timeout makes a new set rather than a declaration that clashes with the old one).
fn affinity_set(rule: &ServicePortRule, ep: &Endpoint, timeout: u32) -> String {
    format!("aff-{}/{timeout}", endpoint_suffix(rule, ep))
}

fn endpoint_chain(rule: &ServicePortRule, ep: &Endpoint) -> String {
    format!("ep-{}", endpoint_suffix(rule, ep))
}

/// Rules that pick one of `endpoints` (affinity first, then at random).
fn spread(rule: &ServicePortRule, endpoints: &[&Endpoint]) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(timeout) = rule.affinity_timeout {
        for ep in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                affinity_set(rule, ep, timeout),
                endpoint_chain(rule, ep)
            ));
        }
    }
    let arms: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(rule, ep)))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        arms.join(", ")
    ));
    rules
}

fn vmap_rule(prefix: &str, arms: &[String]) -> Option<String> {
    (!arms.is_empty()).then(|| format!("{prefix} vmap {{ {} }}", arms.join(", ")))
}

fn set_rule(prefix: &str, elements: &[String], verdict: &str) -> Option<String> {
    (!elements.is_empty()).then(|| format!("{prefix} {{ {} }} {verdict}", elements.join(", ")))
}

impl Ruleset {
    /// The table `table` for `rules`.
    pub fn build(table: &str, rules: &[ServicePortRule]) -> Ruleset {
        let mut chains = Vec::new();
        let mut sets = Vec::new();
        let mut address_arms = Vec::new();
        let mut node_port_arms = Vec::new();
        let mut reject_addresses = Vec::new();
        let mut reject_node_ports = Vec::new();
        let mut drop_addresses = Vec::new();
        let mut drop_node_ports = Vec::new();
        for rule in rules {
            let proto = rule.protocol.nft();
            let svc = format!("svc-{}", base(rule));
            let ext = format!("ext-{}", base(rule));
            let all: Vec<&Endpoint> = rule.endpoints.iter().collect();
            let external = rule.external_endpoints();
            for ep in &all {
                let mut ep_rules = vec![format!(
                    "ip saddr {} meta mark set meta mark | {MASQUERADE_MARK:#x}",
                    ep.ip
                )];
                if let Some(timeout) = rule.affinity_timeout {
                    let set = affinity_set(rule, ep, timeout);
                    ep_rules.push(format!("update @{set} {{ ip saddr }}"));
                    sets.push((
                        set,
                        format!("{{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"),
                    ));
                }
                ep_rules.push(format!(
                    "meta l4proto {proto} dnat to {}:{}",
                    ep.ip, ep.port
                ));
                chains.push(Chain {
                    name: endpoint_chain(rule, ep),
                    declaration: None,
                    rules: ep_rules,
                });
            }
            if !all.is_empty() {
                chains.push(Chain {
                    name: svc.clone(),
                    declaration: None,
                    rules: spread(rule, &all),
                });
            }
            // Where external traffic (NodePort, ingress and external IPs) goes.
            let has_external = rule.node_port.is_some() || !rule.external_ips.is_empty();
            let external_target = if !has_external {
                None
            } else if rule.external_local {
                (!external.is_empty()).then(|| {
                    chains.push(Chain {
                        name: ext.clone(),
                        declaration: None,
                        rules: spread(rule, &external),
                    });
                    ext.clone()
                })
            } else {
                (!all.is_empty()).then(|| {
                    chains.push(Chain {
                        name: ext.clone(),
                        declaration: None,
                        rules: vec![
                            format!("meta mark set meta mark | {MASQUERADE_MARK:#x}"),
                            format!("goto {svc}"),
                        ],
                    });
                    ext.clone()
                })
            };
            if let Some(ip) = rule.cluster_ip {
                let element = format!("{ip} . {proto} . {}", rule.port);
                if all.is_empty() {
                    reject_addresses.push(element);
                } else {
                    address_arms.push(format!("{element} : goto {svc}"));
                }
            }
            // Loopback frontends are the userspace listeners' (see `userspace`).
            for ip in rule.external_ips.iter().filter(|ip| !ip.is_loopback()) {
                let element = format!("{ip} . {proto} . {}", rule.port);
                match &external_target {
                    Some(chain) => address_arms.push(format!("{element} : goto {chain}")),
                    None if all.is_empty() => reject_addresses.push(element),
                    None => drop_addresses.push(element),
                }
            }
            if let Some(node_port) = rule.node_port {
                let element = format!("{proto} . {node_port}");
                match &external_target {
                    Some(chain) => node_port_arms.push(format!("{element} : goto {chain}")),
                    None if all.is_empty() => reject_node_ports.push(element),
                    None => drop_node_ports.push(element),
                }
            }
        }
        let mut services = Vec::new();
        services.extend(vmap_rule(
            "ip daddr . meta l4proto . th dport",
            &address_arms,
        ));
        services.extend(vmap_rule(
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport",
            &node_port_arms,
        ));
        let mut no_endpoints = Vec::new();
        no_endpoints.extend(set_rule(
            "ip daddr . meta l4proto . th dport",
            &reject_addresses,
            "reject",
        ));
        no_endpoints.extend(set_rule(
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport",
            &reject_node_ports,
            "reject",
        ));
        no_endpoints.extend(set_rule(
            "ip daddr . meta l4proto . th dport",
            &drop_addresses,
            "drop",
        ));
        no_endpoints.extend(set_rule(
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport",
            &drop_node_ports,
            "drop",
        ));
        let mut all_chains: Vec<Chain> = BASE_CHAINS
            .iter()
            .map(|(name, declaration, rules)| Chain {
                name: (*name).to_owned(),
                declaration: Some(declaration),
                rules: rules.iter().map(|r| (*r).to_owned()).collect(),
            })
            .collect();
        all_chains.push(Chain {
            name: "services".to_owned(),
            declaration: None,
            rules: services,
        });
        all_chains.push(Chain {
            name: "no-endpoints".to_owned(),
            declaration: None,
            rules: no_endpoints,
        });
        all_chains.extend(chains);
        Ruleset {
            table: table.to_owned(),
            chains: all_chains,
            sets,
        }
    }

    /// The chains and sets this rule set declares.
    pub fn names(&self) -> Names {
        let chains = self
            .chains
            .iter()
            .map(|c| (ObjectType::Chain, c.name.clone()));
        let sets = self.sets.iter().map(|(n, _)| (ObjectType::Set, n.clone()));
        chains.chain(sets).collect()
    }

    /// The number of rules (for logs and benchmarks).
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// Declarations and rules, after the table exists and is empty of rules.
    fn content(&self, out: &mut String) {
        let t = &self.table;
        for (name, body) in &self.sets {
            let _ = writeln!(out, "add set ip {t} {name} {body}");
        }
        for chain in &self.chains {
            match chain.declaration {
                Some(d) => {
                    let _ = writeln!(out, "add chain ip {t} {} {d}", chain.name);
                }
                None => {
                    let _ = writeln!(out, "add chain ip {t} {}", chain.name);
                }
            }
        }
        for chain in &self.chains {
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule ip {t} {} {rule}", chain.name);
            }
        }
    }

    /// One transaction that replaces the whole table (creating it if missing): for the
    /// first sync and after a failure, when what is in the kernel is not known.
    pub fn full(&self) -> String {
        let t = &self.table;
        let mut out = format!("add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n");
        self.content(&mut out);
        out
    }

    /// One transaction that flushes every chain of the table, declares and fills this
    /// rule set, and deletes what `previous` (the last successful sync) had and this
    /// does not. Dynamic sets keep their entries (affinity survives a sync).
    pub fn update(&self, previous: &Names) -> String {
        let t = &self.table;
        let mut out = format!("add table ip {t}\nflush table ip {t}\n");
        self.content(&mut out);
        let now = self.names();
        // Chains before sets: a stale chain's rules may have referenced a stale set (the
        // flush removed them already, but keep the natural order).
        for (kind, name) in previous.difference(&now) {
            let _ = writeln!(out, "delete {} ip {t} {name}", kind.keyword());
        }
        out
    }
}

/// The transaction that removes the table (when the agent stops).
pub fn delete_table(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

#[cfg(test)]
#[path = "nft_test.rs"]
mod tests;
