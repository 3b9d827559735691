//! A fault-injecting TCP proxy: one listener on loopback forwarding every connection to one
//! upstream address, with faults switched on and off per direction while connections live.
//!
//! ```text
//!  dialler ──► proxy port ──[to_upstream: Pass | Delay | BlackHole | Drop]──► upstream
//!          ◄──────────────  [from_upstream: the same faults]  ◄────────────
//!  cut(): every open connection reset, new ones closed at once, until heal()
//! ```
//!
//! A black hole stops forwarding (the connection stays open and silent, as behind a dead
//! route: what is sent waits, as TCP would retransmit it, and flows once healed; bytes
//! TCP acknowledged are never thrown away, which no real network does); a delay holds each chunk back before forwarding it,
//! in order; a drop loses a chunk with a given probability, and as TCP cannot lose bytes
//! inside a connection, that connection is then reset. Random choices come from a seeded
//! generator, so a schedule replays. Owns its listener and connection tasks; dropping the
//! proxy stops them all. It must not look into what it carries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::HarnessError;

/// How often a held direction looks whether its black hole has ended.
const HOLD_POLL: Duration = Duration::from_millis(5);

/// What happens to the bytes going one way through a proxy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forwarded at once.
    Pass,
    /// Forwarded this long after they arrived, in order.
    Delay(Duration),
    /// Not forwarded: held in the sockets' buffers (the sender stalls once they fill)
    /// until the fault ends, as behind a dead route; the connection stays open.
    BlackHole,
    /// Each chunk lost with this probability (0.0–1.0), resetting its connection.
    Drop(f64),
}

/// Which way through a proxy a fault applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the dialler to the upstream.
    ToUpstream,
    /// From the upstream back to the dialler.
    FromUpstream,
    /// Both ways.
    Both,
}

/// What the proxy's tasks share.
struct Shared {
    upstream: SocketAddr,
    to_upstream: Mutex<Fault>,
    from_upstream: Mutex<Fault>,
    /// Whether connections are cut; every change resets open connections.
    cut: watch::Sender<bool>,
    rng: Mutex<StdRng>,
}

impl Shared {
    fn fault(&self, to_upstream: bool) -> Fault {
        let slot = if to_upstream {
            &self.to_upstream
        } else {
            &self.from_upstream
        };
        *slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lose(&self, probability: f64) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.gen_bool(probability.clamp(0.0, 1.0))
    }
}

/// A running proxy. Dropping it closes its listener and every connection through it.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:port` and forwards to `upstream`; `seed` drives its random
    /// drops. Must be called inside a tokio runtime.
    pub async fn start(port: u16, upstream: SocketAddr, seed: u64) -> Result<Proxy, HarnessError> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| HarnessError::Process(format!("proxy on port {port}: {e}")))?;
        let (cut, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstream,
            to_upstream: Mutex::new(Fault::Pass),
            from_upstream: Mutex::new(Fault::Pass),
            cut,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            port,
            shared,
            accept,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Applies `fault` to the bytes going `direction`, from now on.
    pub fn set(&self, direction: Direction, fault: Fault) {
        if matches!(direction, Direction::ToUpstream | Direction::Both) {
            *self
                .shared
                .to_upstream
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = fault;
        }
        if matches!(direction, Direction::FromUpstream | Direction::Both) {
            *self
                .shared
                .from_upstream
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = fault;
        }
    }

    /// Resets every open connection and closes new ones at once, until [`Proxy::heal`].
    pub fn cut(&self) {
        self.shared.cut.send_replace(true);
    }

    /// Ends every fault: bytes pass both ways, connections are accepted again.
    pub fn heal(&self) {
        self.set(Direction::Both, Fault::Pass);
        self.shared
            .cut
            .send_if_modified(|cut| std::mem::replace(cut, false));
    }

    /// Whether any fault is on.
    pub fn is_faulty(&self) -> bool {
        *self.shared.cut.borrow()
            || self.shared.fault(true) != Fault::Pass
            || self.shared.fault(false) != Fault::Pass
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks end when they see the cut.
        self.shared.cut.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        if *shared.cut.borrow() {
            drop(conn);
            continue;
        }
        tokio::spawn(serve(conn, shared.clone()));
    }
}

/// Carries one connection until either side closes it, a drop resets it or a cut.
async fn serve(conn: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    let Ok(upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = conn.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = conn.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::select! {
        _ = pipe(client_read, upstream_write, &shared, true) => {}
        _ = pipe(upstream_read, client_write, &shared, false) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
    // Dropping both halves of both sockets closes them.
}

/// Copies one direction, applying its fault; ends on close, error or a lost chunk.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
    to_upstream: bool,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Held, not read: what is sent waits in the sockets' buffers (the sender stalls
            // once they fill), as TCP retransmits into a dead route; it flows once healed.
            while shared.fault(to_upstream) == Fault::BlackHole {
                tokio::time::sleep(HOLD_POLL).await;
            }
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            // A read that was waiting when the black hole began is held too.
            while shared.fault(to_upstream) == Fault::BlackHole {
                tokio::time::sleep(HOLD_POLL).await;
            }
            match shared.fault(to_upstream) {
                Fault::Drop(p) if shared.lose(p) => {
                    return Err(std::io::Error::other("chunk dropped"));
                }
                _ => {}
            }
            if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                return Ok(());
            }
        }
    };
    let write = async {
        while let Some((arrived, bytes)) = rx.recv().await {
            if let Fault::Delay(delay) = shared.fault(to_upstream) {
                tokio::time::sleep_until(arrived + delay).await;
            }
            to.write_all(&bytes).await?;
        }
        to.shutdown().await
    };
    // A lost chunk ends both at once; a clean end lets queued bytes drain first.
    tokio::try_join!(read, write).map(|_| ())
}
