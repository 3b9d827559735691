//! Raft between members over tonic gRPC (the internal `rafter.raft.v1.Raft` service).
//!
//! Owns the client ([`GrpcNetworkFactory`]), the server ([`RaftGrpcService`]) and the wire
//! encoding. Fault injection for tests is [`NetworkFaults`], applied on the sending side so
//! tests exercise the real transport. It must not touch storage.
//!
//! ```text
//!  openraft (leader) ─ RaftNetwork ─► GrpcNetwork ══ gRPC ══► RaftGrpcService ─► openraft (follower)
//! ```

mod client;
mod codec;
mod server;

pub use client::GrpcNetworkFactory;
pub use client::NetworkFaults;
pub(crate) use client::PeerConnections;
pub use client::PeerTls;
pub use client::PeerVerifier;
pub(crate) use codec::from_bytes;
pub(crate) use codec::to_bytes;
pub use server::RaftGrpcService;

/// Request metadata naming the cluster a replication request is for.
pub(crate) const CLUSTER_HEADER: &str = "rafter-cluster";
/// Request metadata naming the member a replication request is for.
pub(crate) const TARGET_HEADER: &str = "rafter-target";

/// Largest gRPC message between members (a batch of entries or a snapshot chunk).
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
