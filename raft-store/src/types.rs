//! The openraft type configuration shared by storage, network and the node.
//!
//! Owns [`TypeConfig`] and the names derived from it. It must not hold behaviour.

use openraft::BasicNode;

use crate::kv::Command;
use crate::kv::KvError;
use crate::kv::KvResponse;

/// Member id.
pub type NodeId = u64;

/// What applying one log entry answered: the key-space response or a logical error.
pub type ApplyResult = Result<KvResponse, KvError>;

openraft::declare_raft_types!(
    /// Rafter's openraft types: entries carry [`Command`]s, snapshots are files.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = tokio::fs::File,
);

pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
