//! A member of the store: the client-facing facade over Raft, storage and network.
//!
//! Owns [`Node`], its configuration, its errors, watches and disk reserve. It must not implement
//! key-space logic (`kv`), disk formats (`storage`) or the wire protocol (`network`).

mod config;
mod disk_reserve;
mod error;
// reason: node/node.rs holds `Node` itself, beside its config, errors and watches; the
// module is private and its items are re-exported here, so `node::node` is never seen.
#[allow(clippy::module_inception)]
mod node;
mod watch;

pub use config::NodeConfig;
pub(crate) use disk_reserve::DiskReserve;
pub use error::NodeError;
pub(crate) use node::now_ms;
pub use node::since_quorum_ack;
pub use node::Consistency;
pub use node::MetricsWatch;
pub use node::Node;
pub use watch::Watch;
pub use watch::WatchRequest;
