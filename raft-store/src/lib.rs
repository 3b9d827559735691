//! # Layout
//!
//! `raft-store` is Rafter's replicated MVCC key-value store: etcd's data model on openraft
//! with RocksDB underneath. [`Node`] is the entry point: start a member, bootstrap or join a
//! cluster, then put / range / delete / txn / lease / watch.
//!
//! | module | owns |
//! |---|---|
//! | [`kv`] | the key space: revisions, ranges, txns, leases, compaction; the pure [`apply`] |
//! | `storage` | RocksDB: the Raft log (synced appends), the state machine, snapshot files, data version |
//! | `network` | Raft between members over tonic (`rafter.raft.v1.Raft`), fault switches for tests |
//! | `node` | [`Node`]: the member facade, consistency of reads, watches, leader housekeeping |
//! | `read_index` | sharing read-index rounds between concurrent linearizable reads |
//! | `types` | openraft type configuration |
//!
//! ```text
//!   client ─► Node ─► openraft ─► network ══gRPC══► peers
//!                        │
//!                        ├─► storage::LogStore      (log CF, synced)
//!                        └─► storage::StateMachine  (data CF) ─► kv::apply ─► watches
//! ```
//!
//! The crate must not know about Kubernetes objects: keys and values are bytes. It does not
//! forward requests for the API gateway except, when configured, writes to the leader.

pub mod kv;
mod network;
mod node;
mod read_index;
mod storage;
mod types;

pub use types::ApplyResult;
pub use types::NodeId;
pub use types::TypeConfig;

pub use kv::*;
pub use network::NetworkFaults;
pub use network::PeerTls;
pub use node::Consistency;
pub use node::Node;
pub use node::NodeConfig;
pub use node::NodeError;
pub use node::Watch;
pub use node::WatchRequest;
pub use storage::restore_backup;
pub use storage::BackupInfo;
pub use storage::StoreError;
