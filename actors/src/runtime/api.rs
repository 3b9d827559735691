//! The seam between the controller runtime and the cluster: [`ClusterApi`] (read the
//! informed kinds, follow their changes, carry out one [`Action`] as a fenced write) and
//! the errors and answers that cross it.
//!
//! Owns the vocabulary only. It must not know how the master stores objects: the master
//! implements the trait over its registry and Raft member (api-gateway depends on this
//! crate, never the reverse), tests implement it over an in-memory map.
//!
//! The futures an implementation returns are polled on the controllers' actix System
//! thread. An implementation whose I/O belongs to another tokio runtime (the master's
//! tonic and openraft tasks) must hop there itself, for example by spawning on a held
//! `tokio::runtime::Handle` and awaiting the join handle; it must never block.

use std::sync::Arc;

use futures::stream::BoxStream;
use rafter_proto::{Kind, Object};

use crate::action::{Action, EventRecord};
use crate::cache::CacheEvent;
use rafter_proto::Timestamp;

/// The kinds the informer lists and follows: everything a controller reads.
pub const INFORMED_KINDS: &[Kind] = &[
    Kind::Pod,
    Kind::Node,
    Kind::Lease,
    Kind::ReplicaSet,
    Kind::Deployment,
    Kind::DaemonSet,
    Kind::Namespace,
    Kind::ServiceAccount,
    Kind::CertificateSigningRequest,
    Kind::PersistentVolume,
    Kind::PersistentVolumeClaim,
    Kind::Service,
    Kind::Endpoints,
    Kind::EndpointSlice,
    Kind::Job,
    Kind::CronJob,
    Kind::ResourceQuota,
];

/// Whether the informer caches objects of `kind`.
pub fn is_informed(kind: Kind) -> bool {
    INFORMED_KINDS.contains(&kind)
}

/// Why a call through [`ClusterApi`] failed, as a controller acts on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The write was decided in a Raft term that is over: this master no longer leads.
    #[error("fenced: {0}")]
    Fenced(String),
    /// The object changed since it was read (stale resourceVersion or precondition).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An object with that name exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// History from the asked revision is gone (compacted) or the change feed has a gap:
    /// the informer must list again.
    #[error("gone: {0}")]
    Gone(String),
    /// No quorum, no leader, a timeout: the call may succeed later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else (invalid object, forbidden, internal error).
    #[error("{0}")]
    Other(String),
}

/// What a successful write left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// A store revision at which the write is visible (the write's own revision, or any
    /// later one): the informer's cache shows the write once it reaches this revision.
    /// 0 when nothing was written.
    pub revision: u64,
}

/// Every informed object at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The objects, of the kinds in [`INFORMED_KINDS`], each in the `Arc` the informer's
    /// cache will share it in.
    pub objects: Vec<Arc<Object>>,
    /// The revision they were read at.
    pub revision: u64,
}

/// The changes of one store revision to informed kinds. A revision that touched nothing
/// informed still arrives, with no events, so the informer's revision keeps up with the
/// store's (a controller waiting for its own write of an Event needs that).
#[derive(Debug, Clone)]
pub struct RevisionChanges {
    /// The revision.
    pub revision: u64,
    /// Its changes to informed objects; the objects carry `resourceVersion`.
    pub events: Vec<CacheEvent>,
}

/// A Service whose ClusterIP or NodePorts and their reservations disagree, as a repair
/// pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocationProblem {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's uid.
    pub uid: String,
    /// The event reason (`ClusterIPNotAllocated`, `PortAlreadyAllocated` ...).
    pub reason: String,
    /// What a person reads.
    pub message: String,
}

/// What one repair pass over Services' ClusterIP and NodePort reservations did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocationRepair {
    /// Reservations released: their Service is gone without releasing them, or no
    /// longer holds the value.
    pub released: Vec<String>,
    /// Values of Services that lacked a reservation and have one now.
    pub restored: Vec<String>,
    /// Services to tell their users about (as Warning events).
    pub problems: Vec<AllocationProblem>,
}

/// Every revision from a starting one, in order, with no gap; an `Err` ends it.
pub type ChangeStream = BoxStream<'static, Result<RevisionChanges, ApiError>>;

/// What the controller runtime needs from the cluster.
#[async_trait::async_trait]
pub trait ClusterApi: Send + Sync + 'static {
    /// Every object of the informed kinds, read at one revision.
    async fn snapshot(&self) -> Result<Snapshot, ApiError>;

    /// Every change from revision `from` (inclusive) on, one item per revision, no gap;
    /// `Gone` (now or later in the stream) when history from `from` is not available.
    async fn changes(&self, from: u64) -> Result<ChangeStream, ApiError>;

    /// The store's current revision, read linearizably: once the informer reaches it, the
    /// cache holds every write committed before the call (the new leader's barrier).
    async fn revision(&self) -> Result<u64, ApiError>;

    /// Carries out one action of `controller` (the name its reconciler gives) as a write that applies only if it is logged in Raft term `term` (`Fenced`
    /// otherwise). The master authorizes it as that controller's own identity
    /// (`system:controller:<name>`), so a controller writes only what its role allows.
    async fn execute(
        &self,
        controller: &'static str,
        action: Action,
        term: u64,
    ) -> Result<Outcome, ApiError>;

    /// One repair pass over Services' ClusterIP and NodePort reservations, judged at one
    /// store revision, its writes applying only in Raft term `term` (`Fenced` otherwise).
    async fn repair_service_allocations(&self, term: u64) -> Result<AllocationRepair, ApiError>;
}

/// An event record as the Event object to create: named after the involved object and
/// `now` plus `unique` (any number that differs between events of one object).
pub fn event_object(record: &EventRecord, now: Timestamp, unique: u64) -> Object {
    let name = format!(
        "{}.{:x}{:04x}",
        record.involved.name,
        now.unix_millis(),
        unique & 0xffff
    );
    Object::Event(record.to_event(name, now))
}
