//! Integration tests of `raft-store`: real members over real tonic on loopback, each with its
//! own RocksDB directory. Grouped by topic; shared fixtures live in `cluster.rs`.

// reason: test code, a panic is the failure report; clippy.toml lets #[test] functions
// unwrap, but not the fixtures and helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup;
mod batching;
mod cluster;
mod cut_off;
mod failover;
mod leases;
mod linearizability;
mod membership;
mod peer_tls;
mod replication;
mod watch;
