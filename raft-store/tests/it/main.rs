//! Integration tests of `raft-store`: real members over real tonic on loopback, each with its
//! own RocksDB directory. Grouped by topic; shared fixtures live in `cluster.rs`.

mod backup;
mod batching;
mod checker;
mod cluster;
mod leases;
mod linearizability;
mod membership;
mod peer_tls;
mod replication;
mod watch;
