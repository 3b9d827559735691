//! Routes to the other nodes' pods (host-gw): for every other Node with a `spec.podCIDR`
//! and an InternalIP, a host route `podCIDR via InternalIP`, so a pod on this node reaches
//! a pod on any other node through the nodes' own network, with no overlay.
//!
//! ```text
//!   list Nodes ─► watch from rv ──► nodes by name ──(≤100 ms later, and every resync)──┐
//!        ▲ error / end: list again after a pause                                      │
//!        └────────────────────────────────────────────────────────────────────────────┤
//!   desired (pure): podCIDR → InternalIP of every other node          current: `ip route
//!     not this node, not a node whose address is this host's own      show proto 188`
//!     (agents of one machine share its routes), not overlapping ours        │
//!                  └──────────────── plan (pure) ◄──────────────────────────┘
//!                                     │ `ip route replace … proto 188` / `ip route del …`
//! ```
//!
//! The routes this agent writes carry routing protocol number [`ROUTE_PROTOCOL`], which no
//! routing daemon uses, so the agent reads back exactly the routes it owns and removes
//! those of nodes that are gone; it never touches any other route. The gateway must be
//! directly reachable (same link), as host-gw networks require; a route the kernel refuses
//! is logged and tried again at the next sync.
//!
//! Owns the choice of routes and their upkeep; it must not configure the pod bridge or
//! addresses (CNI does) nor hold Service rules (the proxy does).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::v1::Node;
use rafter_proto::{Ipv4Cidr, Kind, Object};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::api::{ApiClient, WatchChange};

/// The routing protocol number that marks the routes the agent owns (`ip route … proto`).
pub const ROUTE_PROTOCOL: u8 = 188;

/// How soon after a change the routes are brought up to date (changes coalesce).
const SETTLE: Duration = Duration::from_millis(100);

/// Why a node gets no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Its podCIDR is not an IPv4 network.
    BadCidr(String),
    /// It has no usable InternalIP.
    NoAddress,
    /// Its podCIDR overlaps this node's own.
    Overlaps(Ipv4Cidr),
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::BadCidr(c) => write!(f, "spec.podCIDR {c:?} is not an IPv4 network"),
            Skipped::NoAddress => write!(f, "it reports no IPv4 InternalIP address"),
            Skipped::Overlaps(own) => write!(f, "its podCIDR overlaps this node's {own}"),
        }
    }
}

/// The routes this node should have: every other node's podCIDR via its InternalIP, and
/// the nodes that get none with why (nodes without a podCIDR yet, and nodes on this very
/// host, are left out silently: there is nothing to route).
pub fn desired(
    own_name: &str,
    nodes: &BTreeMap<String, Node>,
    local_addresses: &BTreeSet<Ipv4Addr>,
) -> (BTreeMap<Ipv4Cidr, Ipv4Addr>, BTreeMap<String, Skipped>) {
    let own = nodes
        .get(own_name)
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| Ipv4Cidr::parse(&s.pod_cidr).ok());
    let mut routes = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    for (name, node) in nodes {
        if name == own_name {
            continue;
        }
        let cidr = node
            .spec
            .as_ref()
            .map(|s| s.pod_cidr.as_str())
            .unwrap_or_default();
        if cidr.is_empty() {
            continue;
        }
        let Ok(subnet) = Ipv4Cidr::parse(cidr) else {
            skipped.insert(name.clone(), Skipped::BadCidr(cidr.to_owned()));
            continue;
        };
        let address = node
            .status
            .as_ref()
            .into_iter()
            .flat_map(|s| &s.addresses)
            .filter(|a| a.r#type == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok());
        let Some(via) = address else {
            skipped.insert(name.clone(), Skipped::NoAddress);
            continue;
        };
        if local_addresses.contains(&via) || via.is_loopback() {
            continue;
        }
        if let Some(own) = own.filter(|o| o.overlaps(&subnet)) {
            skipped.insert(name.clone(), Skipped::Overlaps(own));
            continue;
        }
        routes.insert(subnet, via);
    }
    (routes, skipped)
}

/// One change to the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Add the route, or point it at a new gateway.
    Replace(Ipv4Cidr, Ipv4Addr),
    /// Remove a route the agent owns.
    Delete(Ipv4Cidr),
}

/// What turns `current` (the agent's routes now) into `desired`.
pub fn plan(
    current: &BTreeMap<Ipv4Cidr, Ipv4Addr>,
    desired: &BTreeMap<Ipv4Cidr, Ipv4Addr>,
) -> Vec<RouteChange> {
    let mut changes: Vec<RouteChange> = current
        .keys()
        .filter(|s| !desired.contains_key(s))
        .map(|s| RouteChange::Delete(*s))
        .collect();
    for (subnet, via) in desired {
        if current.get(subnet) != Some(via) {
            changes.push(RouteChange::Replace(*subnet, *via));
        }
    }
    changes
}

/// Why the routing table could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// `ip` could not be run.
    #[error("running ip {args}: {source}")]
    Spawn {
        /// The arguments.
        args: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `ip` ran and refused.
    #[error("ip {args}: {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// `ip -json` printed something that is not its JSON.
    #[error("ip {args} printed unexpected output: {detail}")]
    Output {
        /// The arguments.
        args: String,
        /// What was wrong.
        detail: String,
    },
}

/// Runs `ip ARGS` and returns what it printed.
async fn ip(args: &[&str]) -> Result<String, RouteError> {
    let joined = args.join(" ");
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|source| RouteError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RouteError::Failed {
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_json(args: &str, text: &str) -> Result<Vec<serde_json::Value>, RouteError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| RouteError::Output {
        args: args.to_owned(),
        detail: e.to_string(),
    })
}

/// The routes the agent owns now (`ip -json route show proto 188`).
pub async fn current_routes() -> Result<BTreeMap<Ipv4Cidr, Ipv4Addr>, RouteError> {
    let proto = ROUTE_PROTOCOL.to_string();
    let args = ["-json", "-4", "route", "show", "proto", proto.as_str()];
    let text = ip(&args).await?;
    let mut routes = BTreeMap::new();
    for route in parse_json(&args.join(" "), &text)? {
        let dst = route["dst"].as_str().and_then(|d| Ipv4Cidr::parse(d).ok());
        let via = route["gateway"].as_str().and_then(|g| g.parse().ok());
        if let (Some(dst), Some(via)) = (dst, via) {
            routes.insert(dst, via);
        }
    }
    Ok(routes)
}

/// This host's IPv4 addresses (`ip -json -4 addr show`).
pub async fn local_addresses() -> Result<BTreeSet<Ipv4Addr>, RouteError> {
    let args = ["-json", "-4", "addr", "show"];
    let text = ip(&args).await?;
    let mut addresses = BTreeSet::new();
    for link in parse_json(&args.join(" "), &text)? {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(a) = info["local"].as_str().and_then(|a| a.parse().ok()) {
                addresses.insert(a);
            }
        }
    }
    Ok(addresses)
}

/// Carries out one change.
pub async fn apply(change: &RouteChange) -> Result<(), RouteError> {
    let proto = ROUTE_PROTOCOL.to_string();
    match change {
        RouteChange::Replace(subnet, via) => {
            let (dst, via) = (subnet.to_string(), via.to_string());
            ip(&["route", "replace", &dst, "via", &via, "proto", &proto]).await?;
        }
        RouteChange::Delete(subnet) => {
            let dst = subnet.to_string();
            ip(&["route", "del", &dst, "proto", &proto]).await?;
        }
    }
    Ok(())
}

/// Brings the routing table in line with `nodes` once; returns how many changes failed.
async fn sync(own_name: &str, nodes: &BTreeMap<String, Node>) -> Result<usize, RouteError> {
    let local = local_addresses().await?;
    let (want, skipped) = desired(own_name, nodes, &local);
    for (node, why) in &skipped {
        debug!(%node, reason = %why, "no route to the node's pods");
    }
    let changes = plan(&current_routes().await?, &want);
    let mut failed = 0;
    for change in &changes {
        match apply(change).await {
            Ok(()) => info!(?change, "pod route changed"),
            Err(e) => {
                failed += 1;
                warn!(?change, error = %e, "pod route not changed; trying again at the next sync");
            }
        }
    }
    Ok(failed)
}

/// A Node object with its name.
fn as_node(object: Object) -> Option<(String, Node)> {
    match object {
        Object::Node(node) => {
            let name = node.metadata.as_ref().map(|m| m.name.clone())?;
            Some((name, node))
        }
        _ => None,
    }
}

/// Keeps the routes to the other nodes' pods current until `shutdown` turns true: lists
/// and watches Nodes, syncs shortly after each change and every `resync` (which also
/// repairs routes removed by hand). The routes stay when the agent stops, so its pods keep
/// their connectivity across an agent restart.
pub async fn run(
    api: Arc<dyn ApiClient>,
    own_name: String,
    resync: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (list, rv) = match api.list_all(Kind::Node).await {
            Ok(listed) => listed,
            Err(e) => {
                warn!(error = %e, "listing nodes for pod routes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        let mut nodes: BTreeMap<String, Node> = list.into_iter().filter_map(as_node).collect();
        let mut stream = api.watch_all(Kind::Node, &rv);
        let mut due = Some(tokio::time::Instant::now());
        let mut tick = tokio::time::interval(resync.max(SETTLE));
        loop {
            let wait = due.map_or(resync, |at| {
                at.saturating_duration_since(tokio::time::Instant::now())
            });
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait), if due.is_some() => {
                    due = None;
                    match sync(&own_name, &nodes).await {
                        Ok(0) => {}
                        Ok(_) => due = Some(tokio::time::Instant::now() + resync),
                        Err(e) => {
                            warn!(error = %e, "pod routes not synced; retrying");
                            due = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
                _ = tick.tick() => {
                    due.get_or_insert_with(tokio::time::Instant::now);
                }
                event = stream.next() => match event {
                    Some(Ok(WatchChange::Upsert(object))) => {
                        if let Some((name, node)) = as_node(*object) {
                            nodes.insert(name, node);
                        }
                        due.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
                    }
                    Some(Ok(WatchChange::Deleted(object))) => {
                        if let Some((name, _)) = as_node(*object) {
                            nodes.remove(&name);
                        }
                        due.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "node watch ended; listing again");
                        break;
                    }
                    None => break,
                },
            }
        }
    }
}

#[cfg(test)]
#[path = "routes_test.rs"]
mod routes_test;
