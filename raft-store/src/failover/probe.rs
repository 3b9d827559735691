//! Whether a peer's process is gone, asked of its host: a TCP connect that is refused.
//!
//! Owns [`LeaderProbe`] and its short-lived cache of answers. Only a refused connect
//! (`ECONNREFUSED`: the host is up and nothing listens on the port) is evidence of death; a
//! connect that is accepted (a paused process's kernel, a proxy), that times out (a black
//! hole, a partition) or that fails otherwise proves nothing. It must not decide what to do
//! with the answer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What one connect to a peer's Raft address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The host refused the connection: no process listens there any more.
    Refused,
    /// The connection was accepted: something (perhaps only a kernel) answers.
    Accepted,
    /// No answer within the probe's timeout.
    Unanswered,
    /// The connect failed some other way (no route, name not resolved, ...).
    Failed(std::io::ErrorKind),
}

impl Probe {
    /// Whether this answer proves the peer's process is gone.
    pub(crate) fn confirms_death(self) -> bool {
        self == Probe::Refused
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Refused => f.write_str("connection refused"),
            Probe::Accepted => f.write_str("connection accepted"),
            Probe::Unanswered => f.write_str("no answer"),
            Probe::Failed(kind) => write!(f, "connect failed: {kind}"),
        }
    }
}

/// Connects to peers' advertised addresses (through the member's peer routes, as
/// replication does) and remembers each answer for a short while.
#[derive(Debug)]
pub(crate) struct LeaderProbe {
    /// Advertised address → the address dialled instead (`NodeConfig::peer_routes`).
    routes: BTreeMap<String, String>,
    /// How long a connect may take before the answer is [`Probe::Unanswered`].
    timeout: Duration,
    /// How long an answer is reused.
    ttl: Duration,
    cache: Mutex<BTreeMap<String, (Instant, Probe)>>,
}

impl LeaderProbe {
    /// Probes that give up after `timeout` and reuse an answer for `ttl`.
    pub(crate) fn new(routes: BTreeMap<String, String>, timeout: Duration, ttl: Duration) -> Self {
        LeaderProbe {
            routes,
            timeout,
            ttl,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether the peer advertised at `addr` accepts connections now (or did within the
    /// cache's lifetime).
    pub(crate) async fn probe(&self, addr: &str) -> Probe {
        let now = Instant::now();
        if let Some(&(at, answer)) = self.lock().get(addr) {
            if now.duration_since(at) < self.ttl {
                return answer;
            }
        }
        let dialled = self.routes.get(addr).map_or(addr, String::as_str);
        let answer =
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(dialled)).await
            {
                Err(_) => Probe::Unanswered,
                Ok(Ok(_stream)) => Probe::Accepted,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
                Ok(Err(e)) => Probe::Failed(e.kind()),
            };
        self.lock()
            .insert(addr.to_owned(), (Instant::now(), answer));
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Instant, Probe)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> LeaderProbe {
        LeaderProbe::new(
            BTreeMap::new(),
            Duration::from_secs(2),
            Duration::from_millis(0),
        )
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_confirms_death() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let answer = probe().probe(&addr).await;
        assert_eq!(answer, Probe::Refused);
        assert!(answer.confirms_death());
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_is_accepted_and_proves_nothing() {
        // Bound and listening but never accepting: the kernel completes the handshake, as it
        // does for a SIGSTOPped process.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let answer = probe().probe(&addr).await;
        assert_eq!(answer, Probe::Accepted);
        assert!(!answer.confirms_death());
        drop(listener);
    }

    #[tokio::test]
    async fn the_advertised_address_is_dialled_through_its_route() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let routed = listener.local_addr().unwrap().to_string();
        let routes = BTreeMap::from([("member-1.example:7000".to_owned(), routed)]);
        let probe = LeaderProbe::new(routes, Duration::from_secs(2), Duration::from_millis(0));
        assert_eq!(probe.probe("member-1.example:7000").await, Probe::Accepted);
    }

    #[tokio::test]
    async fn an_answer_is_reused_until_it_is_too_old() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cached = LeaderProbe::new(
            BTreeMap::new(),
            Duration::from_secs(2),
            Duration::from_secs(3600),
        );
        assert_eq!(cached.probe(&addr).await, Probe::Accepted);
        drop(listener);
        assert_eq!(
            cached.probe(&addr).await,
            Probe::Accepted,
            "the cached answer"
        );
        assert_eq!(probe().probe(&addr).await, Probe::Refused, "a fresh answer");
    }
}
