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
//! | `failover` | fast failover: an election at once when the leader's port refuses connections |
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
//! Without the default `node` feature only [`kv`] is built (no openraft, no RocksDB): the
//! pure key space the API gateway's in-memory test store runs on.
//!
//! The crate must not know about Kubernetes objects: keys and values are bytes. It does not
//! forward requests for the API gateway except, when configured, writes to the leader.

#[cfg(feature = "node")]
mod failover;
pub mod kv;
#[cfg(feature = "node")]
mod network;
#[cfg(feature = "node")]
mod node;
#[cfg(feature = "node")]
mod proposer;
#[cfg(feature = "node")]
mod read_index;
#[cfg(feature = "node")]
mod storage;
#[cfg(feature = "node")]
mod types;

#[cfg(feature = "node")]
pub use failover::FailoverCounts;
pub use kv::*;
#[cfg(feature = "node")]
pub use network::NetworkFaults;
#[cfg(feature = "node")]
pub use network::PeerTls;
#[cfg(feature = "node")]
pub use network::PeerVerifier;
#[cfg(feature = "node")]
pub use node::since_quorum_ack;
#[cfg(feature = "node")]
pub use node::Consistency;
#[cfg(feature = "node")]
pub use node::MetricsWatch;
#[cfg(feature = "node")]
pub use node::Node;
#[cfg(feature = "node")]
pub use node::NodeConfig;
#[cfg(feature = "node")]
pub use node::NodeError;
#[cfg(feature = "node")]
pub use node::Watch;
#[cfg(feature = "node")]
pub use node::WatchRequest;
#[cfg(feature = "node")]
/// The trait whose methods read a [`MetricsWatch`].
pub use openraft::async_runtime::watch::WatchReceiver;
#[cfg(feature = "node")]
pub use proposer::BatchLimits;
#[cfg(feature = "node")]
pub use storage::restore_backup;
#[cfg(feature = "node")]
pub use storage::BackupInfo;
#[cfg(feature = "node")]
pub use storage::StoreError;
#[cfg(feature = "node")]
pub use storage::StoreMemory;
#[cfg(feature = "node")]
pub use storage::FAILPOINTS_COMPILED;
#[cfg(feature = "node")]
pub use types::ApplyResult;
#[cfg(feature = "node")]
pub use types::NodeId;
#[cfg(feature = "node")]
pub use types::Raft;
#[cfg(feature = "node")]
pub use types::TypeConfig;
