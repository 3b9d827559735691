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
//! ## Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), raft_store::NodeError> {
//! use std::collections::BTreeMap;
//! use raft_store::{Consistency, KeyRange, Node, NodeConfig, PutRequest, WatchRequest};
//!
//! let node = Node::start(NodeConfig::new(1, "/var/lib/rafter/store")).await?;
//! node.initialize_if_new(BTreeMap::from([(1, node.addr().to_string())])).await?;
//! let put = node.put(PutRequest::new("/registry/pods/default/web", "...")).await?;
//! let kv = node.get("/registry/pods/default/web", Consistency::Linearizable).await?;
//! let mut watch = node
//!     .watch(WatchRequest { range: KeyRange::prefix("/registry/pods/"), start_revision: put.revision, prev_kv: true })
//!     .await?;
//! while let Some(changes) = watch.next().await {
//!     let changes = changes?; // every revision once, in order; `Compacted` if too old
//! #   let _ = (changes, &kv);
//! }
//! node.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Errors say what to do next: [`NodeError::ForwardToLeader`] names the leader (or set
//! [`NodeConfig::forward_writes`]), [`NodeError::is_retryable`] tells transient failures
//! from final ones, and [`Node::submit`] with a fence term refuses writes decided under an
//! older leadership.
//!
//! The crate must not know about Kubernetes objects: keys and values are bytes. It does not
//! forward requests for the API gateway except, when configured, writes to the leader.

pub mod kv;
mod network;
mod node;
mod proposer;
mod read_index;
mod storage;
mod types;

pub use types::ApplyResult;
pub use types::NodeId;
pub use types::Raft;
pub use types::TypeConfig;

pub use kv::*;
pub use network::NetworkFaults;
pub use network::PeerTls;
pub use node::since_quorum_ack;
pub use node::Consistency;
pub use node::MetricsWatch;
pub use node::Node;
pub use node::NodeConfig;
pub use node::NodeError;
pub use node::Watch;
pub use node::WatchRequest;
/// The trait whose methods read a [`MetricsWatch`].
pub use openraft::async_runtime::watch::WatchReceiver;
pub use proposer::BatchLimits;
pub use storage::restore_backup;
pub use storage::BackupInfo;
pub use storage::StoreError;
