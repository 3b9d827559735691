//! # Layout
//!
//! `raft-store` is Rafter's replicated MVCC key-value store: etcd's data model on openraft
//! with RocksDB underneath.
//!
//! | module | owns |
//! |---|---|
//! | [`kv`] | the key space: revisions, ranges, txns, leases, compaction; the pure `apply` |
//! | [`storage`] | RocksDB: the Raft log (synced appends), the state machine, snapshot files, data version |
//! | `types` | openraft type configuration |
//!
//! The crate must not know about Kubernetes objects: keys and values are bytes.

pub mod kv;
pub mod storage;
mod types;

pub use types::ApplyResult;
pub use types::NodeId;
pub use types::TypeConfig;
