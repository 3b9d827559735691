//! The node proxy (the kube-proxy role): makes every Service reachable from this node —
//! its ClusterIP:port, its NodePort on every node address, its LoadBalancer ingress and
//! external IPs — by forwarding to the Service's ready endpoints.
//!
//! ```text
//!   API ── list + watch Services, v1 Endpoints (all namespaces) ──► ServiceState
//!                                      │ change: sync within `debounce` (coalesced)
//!                                      ▼
//!               model::service_rules (pure) ──► [ServicePortRule]
//!                     │ nftables mode                          │ userspace mode
//!                     ▼                                         ▼
//!   nft::Ruleset (pure text) ──► apply::NftTable       userspace::UserspaceProxy
//!   one `nft -f -` transaction per sync,               tokio listeners on NodePorts and
//!   table `ip <name>` of its own                       on this node's ingress IPs
//!   (+ userspace listeners for 127.0.0.1 NodePorts,
//!    which DNAT cannot reach without route_localnet)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `model` | which Services get rules and with which endpoints (pure) |
//! | `nft` | the nftables table for a model, as text (pure) |
//! | `apply` | running `nft`: atomic replacement, what was applied, removal |
//! | `userspace` | the process runtime's TCP proxy |
//! | `sync` | the watch, debounce and retry loop around either mode |
//!
//! The proxy learns about Services only through its watches; it writes nothing to the
//! API. A failed sync is logged and retried after a pause, and never leaves half a rule
//! set: each sync is one nft transaction.

mod apply;
mod model;
mod nft;
mod sync;
mod userspace;

use std::time::Duration;

pub use apply::{check as nft_check, Applied, NftTable};
pub use model::{service_rules, Endpoint, Protocol, ServicePortRule, ServiceState};
pub use nft::{delete_table, Ruleset};
pub(crate) use sync::ProxyLoop;
pub use userspace::{Frontends, UserspaceProxy};

/// How the node proxy forwards Service traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables rules in table `ip <table>`, written with `command` (`["nft"]`, or a
    /// prefix that runs it elsewhere, such as `ip netns exec NS nft`). For runtimes with
    /// a pod network (containerd).
    Nftables {
        /// The table's name.
        table: String,
        /// The command that runs `nft`.
        command: Vec<String>,
    },
    /// TCP listeners on NodePorts and this node's ingress addresses, round-robin to the
    /// endpoints; no ClusterIPs. For the process runtime (pods on the host network).
    Userspace,
    /// No proxy.
    Off,
}

impl ProxyMode {
    /// nftables in the default table `rafter`, with `nft` from the PATH.
    pub fn nftables() -> ProxyMode {
        ProxyMode::Nftables {
            table: DEFAULT_TABLE.to_owned(),
            command: vec!["nft".to_owned()],
        }
    }

    /// The mode's name for logs (`nftables`, `userspace`, `off`).
    pub fn name(&self) -> &'static str {
        match self {
            ProxyMode::Nftables { .. } => "nftables",
            ProxyMode::Userspace => "userspace",
            ProxyMode::Off => "off",
        }
    }
}

/// The proxy's table when nothing else is said.
pub const DEFAULT_TABLE: &str = "rafter";

/// How long the proxy waits after a change for more changes before it syncs.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Why a proxy sync failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The nft command line is empty.
    #[error("no nft command configured")]
    NoCommand,
    /// The program could not be started or fed.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// nft refused the transaction (nothing was changed).
    #[error("nft failed (exit {status:?}): {stderr}")]
    Nft {
        /// Its exit code.
        status: Option<i32>,
        /// What it printed.
        stderr: String,
    },
    /// nft did not finish in time.
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
    /// The userspace proxy could not listen on some frontends.
    #[error("cannot listen on {0}")]
    Listen(String),
}
