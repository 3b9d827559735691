//! Settings of one member.
//!
//! Owns [`NodeConfig`] and its defaults. It must not start anything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::kv::Limits;
use crate::network::NetworkFaults;
use crate::network::PeerTls;
use crate::proposer::BatchLimits;
use crate::types::NodeId;

/// How to run one member of the store.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's id (non-zero, unique in the cluster).
    pub id: NodeId,
    /// The cluster's name: members refuse replication requests addressed to another
    /// cluster (an address reused by another cluster's member).
    pub cluster_name: String,
    /// Where the RocksDB database and snapshots live.
    pub data_dir: PathBuf,
    /// Address the Raft gRPC endpoint binds (port 0 picks a free port).
    pub listen_addr: SocketAddr,
    /// Address peers use to reach this member; defaults to the bound address.
    pub advertise_addr: Option<String>,
    /// Addresses to dial instead of peers' advertised ones (advertised → dialled): a member
    /// reached through a proxy or tunnel only from here. Replication, forwarded writes and
    /// read-index requests all take this route; TLS still verifies the advertised host.
    pub peer_routes: BTreeMap<String, String>,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// How long a write or linearizable read waits for a quorum before failing.
    pub request_timeout: Duration,
    /// Size limits on values and requests.
    pub limits: Limits,
    /// How often the leader checks for expired leases and automatic compaction.
    pub housekeeping_interval: Duration,
    /// Keep at least this many revisions of history; older ones are compacted automatically.
    /// `None` disables automatic compaction.
    pub history_retention: Option<u64>,
    /// Build a snapshot after this many log entries since the last one. A snapshot copies the
    /// whole key space into a file, on every member at about the same time, so the default
    /// is etcd's `--snapshot-count` (100,000); the log keeps that many entries meanwhile.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind the last snapshot (for followers that lag a little).
    pub logs_kept_after_snapshot: u64,
    /// How concurrent writes share log entries (see [`BatchLimits`]).
    pub batching: BatchLimits,
    /// Forward writes that reach a follower to the leader instead of answering
    /// `ForwardToLeader`.
    pub forward_writes: bool,
    /// Fault switches for tests; the default never drops anything.
    pub faults: NetworkFaults,
    /// Mutual TLS with peers; plaintext when `None` (tests, local development).
    pub tls: Option<PeerTls>,
    /// Free bytes kept on the data disk: a leader with less refuses new writes
    /// (`KvError::NoSpace`), and a member with less than a quarter of it stops. 0 disables
    /// both.
    pub disk_reserve_bytes: u64,
    /// Elect a new leader as soon as the old one's Raft port refuses connections (its
    /// process is gone) instead of waiting out its lease; a silent leader whose port still
    /// accepts or does not answer is waited for as before. See [`crate::FailoverCounts`].
    pub fast_failover: bool,
}

impl NodeConfig {
    /// Defaults for member `id` storing its data in `data_dir`, listening on an ephemeral
    /// loopback port.
    pub fn new(id: NodeId, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            id,
            cluster_name: "rafter".to_owned(),
            data_dir: data_dir.into(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_addr: None,
            peer_routes: BTreeMap::new(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            housekeeping_interval: Duration::from_millis(250),
            history_retention: None,
            snapshot_every_entries: 100_000,
            logs_kept_after_snapshot: 1_000,
            batching: BatchLimits::default(),
            forward_writes: false,
            faults: NetworkFaults::default(),
            tls: None,
            disk_reserve_bytes: 0,
            fast_failover: true,
        }
    }
}
