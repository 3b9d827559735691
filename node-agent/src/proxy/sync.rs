//! [`ProxyLoop`]: the node proxy's task — lists and watches Services and v1 Endpoints in
//! every namespace, keeps them in a [`ServiceState`], and syncs the mode's forwarding
//! after each burst of changes (coalesced for `debounce`), logging each sync's duration.
//!
//! ```text
//!   list Services ─► watch from rv ─┐   (error / Expired ─► list again after a pause)
//!   list Endpoints ─► watch from rv ┤
//!                                   ▼
//!                 ServiceState ── change ─► sync at now + debounce ─► rules ─► nft / listeners
//!                                                 │ failure: log, retry after a back-off
//!   shutdown ─► nftables: table deleted; userspace: listeners closed
//! ```
//!
//! It syncs only once both kinds are listed (a half-known state would drop live
//! Services' rules). It must not render rules or talk to nft itself.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::apply::NftTable;
use super::model::{service_rules, ServiceState};
use super::nft::Ruleset;
use super::userspace::{Frontends, UserspaceProxy};
use super::{ProxyError, ProxyMode};
use crate::api::{ApiClient, ApiError, ObjectEvent, ObjectEventStream};

/// The first pause before a failed sync is retried (doubling up to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest pause between retries of a failing sync.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// The pause before a failed list or an ended watch is listed again.
const RELIST_PAUSE: Duration = Duration::from_millis(500);

enum Backend {
    /// The nftables table, and listeners for the loopback frontends it leaves out.
    Nft(NftTable, UserspaceProxy),
    Userspace(UserspaceProxy),
}

/// One watched kind: its stream, and when to list it again if it has none.
struct Watched {
    kind: Kind,
    stream: Option<ObjectEventStream>,
    listed: bool,
    relist_at: Instant,
}

impl Watched {
    fn new(kind: Kind) -> Watched {
        Watched {
            kind,
            stream: None,
            listed: false,
            relist_at: Instant::now(),
        }
    }
}

/// The node proxy's task.
pub(crate) struct ProxyLoop {
    api: Arc<dyn ApiClient>,
    node: String,
    node_ip: Option<Ipv4Addr>,
    debounce: Duration,
    backend: Backend,
}

fn key_of(object: &Object) -> (String, String) {
    let meta = object.metadata();
    (meta.namespace.clone(), meta.name.clone())
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
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if matches!(self.backend, Backend::Nft(..)) {
            warn_without_bridge_netfilter().await;
        }
        let mut state = ServiceState::default();
        let mut watched = [Watched::new(Kind::Service), Watched::new(Kind::Endpoints)];
        let mut sync_at: Option<Instant> = None;
        let mut retry = FIRST_RETRY;
        loop {
            let now = Instant::now();
            for w in watched.iter_mut() {
                if w.stream.is_none() && now >= w.relist_at {
                    match self.api.list_all(w.kind).await {
                        Ok((objects, rv)) => {
                            replace(&mut state, w.kind, objects);
                            w.listed = true;
                            w.stream = Some(self.api.watch_all(w.kind, &rv));
                            sync_at.get_or_insert(Instant::now() + self.debounce);
                        }
                        Err(e) => {
                            warn!(kind = w.kind.name(), error = %e, "proxy cannot list; retrying");
                            w.relist_at = Instant::now() + RELIST_PAUSE;
                        }
                    }
                }
            }
            let ready = watched.iter().all(|w| w.listed);
            let relist_at = watched
                .iter()
                .filter(|w| w.stream.is_none())
                .map(|w| w.relist_at)
                .min();
            let [services, endpoints] = &mut watched;
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                event = next_event(&mut services.stream), if services.stream.is_some() => {
                    if handle(&mut state, services, event) {
                        sync_at.get_or_insert(Instant::now() + self.debounce);
                    }
                }
                event = next_event(&mut endpoints.stream), if endpoints.stream.is_some() => {
                    if handle(&mut state, endpoints, event) {
                        sync_at.get_or_insert(Instant::now() + self.debounce);
                    }
                }
                _ = sleep_until(sync_at), if ready && sync_at.is_some() => {
                    sync_at = None;
                    match self.sync(&state).await {
                        Ok(()) => retry = FIRST_RETRY,
                        Err(e) => {
                            warn!(node = %self.node, error = %e, retry_in = ?retry, "proxy sync failed; nothing was changed");
                            sync_at = Some(Instant::now() + retry);
                            retry = (retry * 2).min(MAX_RETRY);
                        }
                    }
                }
                _ = sleep_until(relist_at), if relist_at.is_some() => {}
            }
        }
        self.stop().await;
    }

    /// Makes the forwarding match `state`.
    async fn sync(&mut self, state: &ServiceState) -> Result<(), ProxyError> {
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
                    took = ?started.elapsed(),
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
                    took = ?started.elapsed(),
                    "userspace proxy synced"
                );
            }
        }
        Ok(())
    }

    async fn stop(&mut self) {
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

/// Replaces every object of `kind` in `state` with `objects` (after a list).
fn replace(state: &mut ServiceState, kind: Kind, objects: Vec<Object>) {
    match kind {
        Kind::Service => state.services.clear(),
        _ => state.endpoints.clear(),
    }
    for object in objects {
        upsert(state, object);
    }
}

fn upsert(state: &mut ServiceState, object: Object) {
    let key = key_of(&object);
    match object {
        Object::Service(s) => {
            state.services.insert(key, s);
        }
        Object::Endpoints(e) => {
            state.endpoints.insert(key, e);
        }
        _ => {}
    }
}

/// Applies one watch event; true when the state changed.
fn handle(
    state: &mut ServiceState,
    watched: &mut Watched,
    event: Option<Result<ObjectEvent, ApiError>>,
) -> bool {
    match event {
        Some(Ok(ObjectEvent::Upsert(object))) => {
            upsert(state, *object);
            true
        }
        Some(Ok(ObjectEvent::Deleted(object))) => {
            let key = key_of(&object);
            match object.kind() {
                Kind::Service => state.services.remove(&key).is_some(),
                _ => state.endpoints.remove(&key).is_some(),
            }
        }
        Some(Err(e)) => {
            warn!(kind = watched.kind.name(), error = %e, "proxy watch ended; listing again");
            watched.stream = None;
            watched.relist_at = Instant::now() + RELIST_PAUSE;
            false
        }
        None => {
            watched.stream = None;
            watched.relist_at = Instant::now() + RELIST_PAUSE;
            false
        }
    }
}

async fn next_event(
    stream: &mut Option<ObjectEventStream>,
) -> Option<Result<ObjectEvent, ApiError>> {
    match stream.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
