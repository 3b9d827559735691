//! [`ProxyLoop`]: the node proxy's task — a sink of the agent's Service watch
//! (`service_watch`): after each burst of changes (coalesced for `debounce`) it syncs
//! the mode's forwarding, logging each sync's duration; at shutdown the nftables table is
//! deleted, or the userspace listeners closed.
//!
//! ```text
//!   ServiceState ─► rules (model) ─► nft::Ruleset ─► NftTable (one transaction)
//!                                 └► UserspaceProxy listeners
//! ```
//!
//! It must not render rules or talk to nft itself.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{info, warn};

use super::apply::NftTable;
use super::model::{service_rules, ServiceState};
use super::nft::Ruleset;
use super::userspace::{Frontends, UserspaceProxy};
use super::{ProxyError, ProxyMode};
use crate::api::ApiClient;
use crate::service_watch::{self, ServiceSink};

enum Backend {
    /// The nftables table, and listeners for the loopback frontends it leaves out.
    Nft(NftTable, UserspaceProxy),
    Userspace(UserspaceProxy),
}

/// The node proxy's task.
pub(crate) struct ProxyLoop {
    api: Arc<dyn ApiClient>,
    node: String,
    node_ip: Option<Ipv4Addr>,
    debounce: Duration,
    backend: Backend,
}

impl ProxyLoop {
    /// The loop for `mode`, or `None` when the mode is `Off`.
    pub(crate) fn new(
        mode: &ProxyMode,
        api: Arc<dyn ApiClient>,
        node: String,
        node_ip: Option<Ipv4Addr>,
        debounce: Duration,
    ) -> Option<ProxyLoop> {
        let backend = match mode {
            ProxyMode::Nftables { table, command } => Backend::Nft(
                NftTable::new(table.clone(), command.clone()),
                UserspaceProxy::new(),
            ),
            ProxyMode::Userspace => Backend::Userspace(UserspaceProxy::new()),
            ProxyMode::Off => return None,
        };
        Some(ProxyLoop {
            api,
            node,
            node_ip,
            debounce,
            backend,
        })
    }

    /// Runs until `shutdown`, then removes the proxy's table or listeners.
    pub(crate) async fn run(mut self, shutdown: watch::Receiver<bool>) {
        if matches!(self.backend, Backend::Nft(..)) {
            warn_without_bridge_netfilter().await;
        }
        let (api, debounce) = (Arc::clone(&self.api), self.debounce);
        service_watch::follow(api, debounce, &mut self, shutdown).await;
    }

    /// Makes the forwarding match `state`.
    async fn apply(&mut self, state: &ServiceState) -> Result<(), ProxyError> {
        let started = std::time::Instant::now();
        let rules = service_rules(state, &self.node);
        match &mut self.backend {
            Backend::Nft(table, loopback) => {
                let ruleset = Ruleset::build(table.name(), &rules);
                let applied = table.apply(&ruleset).await?;
                // Best effort: the kernel rules are what matters; say what is missing.
                if let Err(e) = loopback.sync(&rules, Frontends::Loopback).await {
                    warn!(node = %self.node, error = %e, "loopback NodePorts not all served");
                }
                info!(
                    node = %self.node,
                    table = table.name(),
                    service_ports = rules.len(),
                    rules = applied.rules,
                    full = applied.full,
                    took_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "proxy rules synced"
                );
            }
            Backend::Userspace(proxy) => {
                let frontends = Frontends::All {
                    node_ip: self.node_ip,
                };
                let listeners = proxy.sync(&rules, frontends).await?;
                info!(
                    node = %self.node,
                    service_ports = rules.len(),
                    listeners,
                    took_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "userspace proxy synced"
                );
            }
        }
        Ok(())
    }

    async fn remove(&mut self) {
        match &mut self.backend {
            Backend::Nft(table, loopback) => {
                loopback.stop();
                match table.remove().await {
                    Ok(()) => info!(table = table.name(), "proxy table removed"),
                    Err(e) => {
                        warn!(table = table.name(), error = %e, "cannot remove the proxy table")
                    }
                }
            }
            Backend::Userspace(proxy) => proxy.stop(),
        }
    }
}

/// Where the kernel says whether bridged IPv4 traffic passes netfilter (br_netfilter).
const BRIDGE_NF_CALL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Says once, at start, when bridged traffic skips netfilter: replies between two pods of
/// one bridge are then not un-DNATed, so a pod cannot reach a pod of its own node through
/// a ClusterIP (kube-proxy has the same need).
async fn warn_without_bridge_netfilter() {
    match tokio::fs::read_to_string(BRIDGE_NF_CALL).await {
        Ok(v) if v.trim() == "1" => {}
        Ok(v) => {
            warn!(path = BRIDGE_NF_CALL, value = %v.trim(), "bridged traffic skips netfilter: pods cannot reach pods of this node through a ClusterIP; set it to 1")
        }
        Err(e) => {
            warn!(path = BRIDGE_NF_CALL, error = %e, "br_netfilter is not loaded: pods cannot reach pods of this node through a ClusterIP (modprobe br_netfilter)")
        }
    }
}

#[async_trait]
impl ServiceSink for ProxyLoop {
    fn name(&self) -> &'static str {
        "proxy"
    }

    async fn sync(&mut self, state: &ServiceState) -> Result<(), String> {
        self.apply(state).await.map_err(|e| e.to_string())
    }

    async fn stop(&mut self) {
        self.remove().await;
    }
}
