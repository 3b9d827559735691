//! [`UserspaceProxy`]: the proxy mode of the process runtime, where pods share the host's
//! network and there is no pod network for nftables to DNAT into. A tokio TCP listener per
//! frontend the host can bind — each NodePort on every address (`0.0.0.0:nodePort`), and
//! each LoadBalancer ingress or external IP that is this node's address on the Service
//! port — hands every accepted connection to the next endpoint in round-robin order and
//! copies bytes both ways.
//!
//! ClusterIPs are not served in this mode (no address to listen on without the kernel's
//! help), nor UDP or SCTP: the agent says so at startup. Beside nftables, the same
//! listeners serve the loopback frontends the kernel rules leave out
//! ([`Frontends::Loopback`]: `curl 127.0.0.1:<nodePort>` on the node). Owns the listeners and their
//! endpoint lists; a sync swaps the endpoints of a running listener in place, so open
//! connections and the listening socket survive endpoint changes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::model::{Protocol, ServicePortRule};
use super::ProxyError;

/// How long a connection to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoints of one listener and the round-robin cursor.
#[derive(Debug, Default)]
struct Backends {
    addresses: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    /// The endpoints in the order this connection tries them.
    fn order(&self) -> Vec<SocketAddr> {
        let addresses = match self.addresses.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if addresses.is_empty() {
            return addresses;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % addresses.len();
        let mut order = addresses[start..].to_vec();
        order.extend_from_slice(&addresses[..start]);
        order
    }

    fn set(&self, addresses: Vec<SocketAddr>) {
        match self.addresses.write() {
            Ok(mut a) => *a = addresses,
            Err(poisoned) => *poisoned.into_inner() = addresses,
        }
    }
}

struct Listener {
    service: String,
    backends: Arc<Backends>,
    task: JoinHandle<()>,
}

/// Which frontends a [`UserspaceProxy`] listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontends {
    /// The userspace mode: NodePorts on every address (`0.0.0.0`), and ingress and
    /// external IPs that are `node_ip`.
    All {
        /// This node's address.
        node_ip: Option<Ipv4Addr>,
    },
    /// Beside nftables: only what the kernel rules cannot reach — NodePorts on
    /// `127.0.0.1`, and ingress and external IPs in `127.0.0.0/8` (DNAT of a loopback
    /// source to a pod would need `route_localnet`, a host-wide switch left alone).
    Loopback,
}

/// The userspace proxy's listeners, by the address they listen on.
#[derive(Default)]
pub struct UserspaceProxy {
    listeners: BTreeMap<SocketAddr, Listener>,
}

impl UserspaceProxy {
    /// A proxy with no listener.
    pub fn new() -> UserspaceProxy {
        UserspaceProxy::default()
    }

    /// The addresses listened on now.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.listeners.keys().copied().collect()
    }

    /// Listens for every TCP frontend of `rules` that `frontends` selects, stops
    /// listeners no longer wanted, and points each at its current endpoints. A frontend
    /// that cannot be bound is reported in the error; the others are served. Listeners
    /// set `SO_REUSEPORT`, so agents sharing a machine can all listen on a NodePort.
    pub async fn sync(
        &mut self,
        rules: &[ServicePortRule],
        frontends: Frontends,
    ) -> Result<usize, ProxyError> {
        let mut wanted: BTreeMap<SocketAddr, (String, Vec<SocketAddr>)> = BTreeMap::new();
        let (node_port_ip, external): (Ipv4Addr, &dyn Fn(&Ipv4Addr) -> bool) = match frontends {
            Frontends::All { node_ip } => (Ipv4Addr::UNSPECIFIED, &move |ip| Some(*ip) == node_ip),
            Frontends::Loopback => (Ipv4Addr::LOCALHOST, &|ip| ip.is_loopback()),
        };
        for rule in rules.iter().filter(|r| r.protocol == Protocol::Tcp) {
            let backends: Vec<SocketAddr> = rule
                .external_endpoints()
                .iter()
                .map(|e| SocketAddr::from((e.ip, e.port)))
                .collect();
            if let Some(port) = rule.node_port {
                wanted.insert(
                    SocketAddr::from((node_port_ip, port)),
                    (rule.id(), backends.clone()),
                );
            }
            for ip in rule.external_ips.iter().filter(|ip| external(ip)) {
                wanted.insert(
                    SocketAddr::from((*ip, rule.port)),
                    (rule.id(), backends.clone()),
                );
            }
        }
        let gone: Vec<SocketAddr> = self
            .listeners
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(listener) = self.listeners.remove(&addr) {
                debug!(%addr, service = %listener.service, "userspace proxy stops listening");
                listener.task.abort();
            }
        }
        let mut failed = Vec::new();
        for (addr, (service, backends)) in wanted {
            if let Some(listener) = self.listeners.get(&addr) {
                listener.backends.set(backends);
                continue;
            }
            match bind_shared(addr) {
                Ok(socket) => {
                    let shared = Arc::new(Backends::default());
                    shared.set(backends);
                    let task = tokio::spawn(serve(socket, shared.clone(), service.clone()));
                    debug!(%addr, %service, "userspace proxy listening");
                    self.listeners.insert(
                        addr,
                        Listener {
                            service,
                            backends: shared,
                            task,
                        },
                    );
                }
                Err(e) => failed.push(format!("{addr} ({service}): {e}")),
            }
        }
        if failed.is_empty() {
            Ok(self.listeners.len())
        } else {
            Err(ProxyError::Listen(failed.join("; ")))
        }
    }

    /// Stops every listener.
    pub fn stop(&mut self) {
        for (_, listener) in std::mem::take(&mut self.listeners) {
            listener.task.abort();
        }
    }
}

impl Drop for UserspaceProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listener on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`.
fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve(socket: TcpListener, backends: Arc<Backends>, service: String) {
    loop {
        let (client, peer) = match socket.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(%service, error = %e, "userspace proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let order = backends.order();
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = forward(client, &order).await {
                debug!(%service, %peer, error = %e, "userspace proxy connection ended");
            }
        });
    }
}

/// Connects to the first endpoint of `order` that answers and copies both ways.
async fn forward(mut client: TcpStream, order: &[SocketAddr]) -> std::io::Result<()> {
    for backend in order {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            Ok(Ok(mut upstream)) => {
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
                return Ok(());
            }
            Ok(Err(e)) => debug!(%backend, error = %e, "endpoint refused; trying the next"),
            Err(_) => debug!(%backend, "endpoint timed out; trying the next"),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "no endpoint answered",
    ))
}
