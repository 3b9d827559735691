//! # Layout
//!
//! `raft-store` is Rafter's replicated MVCC key-value store: etcd's data model on openraft
//! with RocksDB underneath.
//!
//! | module | owns |
//! |---|---|
//! | [`kv`] | the key space: revisions, ranges, txns, leases, compaction; the pure `apply` |
//!
//! The crate must not know about Kubernetes objects: keys and values are bytes.

pub mod kv;
