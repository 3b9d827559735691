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
    /// Rafter's openraft types: entries carry [`Command`]s; members are `BasicNode`s.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = BasicNode,
);

/// Snapshots are files: built into, kept as and streamed from `<dir>/snapshots`.
pub(crate) type SnapshotData = tokio::fs::File;

/// The local Raft, parameterised by the state machine (openraft 0.10).
pub type Raft = openraft::Raft<TypeConfig, crate::storage::StateMachine>;

pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
