//! Errors a caller of [`Node`](crate::Node) sees.
//!
//! Owns [`NodeError`]: each variant carries what a caller (the API gateway) needs to act.

use std::time::Duration;

use crate::kv::KvError;
use crate::storage::StoreError;
use crate::types::NodeId;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// This member is not the leader; send the request to the leader instead.
    #[error("not the leader; forward to leader {leader_id:?} at {addr:?}")]
    ForwardToLeader {
        /// The leader's id, if known.
        leader_id: Option<NodeId>,
        /// The leader's Raft address, if known.
        addr: Option<String>,
    },
    /// No quorum answered within the bounded time. For writes the outcome is unknown: the
    /// entry may still commit later.
    #[error("no quorum within {after:?}")]
    Timeout {
        /// How long the request waited.
        after: Duration,
    },
    /// A write's entry was appended on this member and then discarded when another leader
    /// took over: it may or may not commit there. Read before retrying.
    #[error("write outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// This member leads, but no quorum has answered it for `after`: it is cut off from
    /// the other members and did not propose the write. Another member may serve it.
    #[error(
        "this member leads but no quorum of the members has answered it for {after:?}: it is \
         cut off from them; the write was not proposed (try another member)"
    )]
    CutOff {
        /// How long no quorum has answered.
        after: Duration,
    },
    /// The key space rejected the request (too large, compacted, lease not found ...).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The member is shut down or Raft stopped on a fatal error.
    #[error("raft stopped: {0}")]
    Stopped(String),
    /// A membership change or initialisation was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The member could not bind or serve its Raft endpoint, or reach a peer.
    #[error("transport: {0}")]
    Transport(String),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl NodeError {
    /// Whether the same request may succeed if retried (possibly at the leader).
    pub fn is_retryable(&self) -> bool {
        match self {
            NodeError::ForwardToLeader { .. }
            | NodeError::Timeout { .. }
            | NodeError::OutcomeUnknown(_)
            | NodeError::CutOff { .. }
            | NodeError::Transport(_) => true,
            NodeError::Kv(e) => e.is_retryable(),
            NodeError::Store(e) => e.is_retryable(),
            NodeError::Stopped(_) | NodeError::Membership(_) | NodeError::Config(_) => false,
        }
    }
}
