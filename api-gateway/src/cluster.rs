//! The `Cluster` service: members, leader, term, applied index, health and readiness of
//! the master that answers, and adding or removing a master.
//!
//! Owns the wire side only; the facts come from a [`ClusterControl`], which the local
//! raft-store member implements (and `testing::MemKv`, as a one-member
//! cluster, for tests). Only cluster administrators (`system:masters`) may change membership.

use std::sync::Arc;

use raft_store::kv::KvError;
use rafter_proto::api::cluster_server::Cluster;
use rafter_proto::api::{self, ClusterStatus};
use tonic::{Request, Response, Status};

use crate::audit::{Audit, Auditor, Stage};
use crate::auth::Authenticator;
use crate::authz::{Attributes, Authorizer};
use crate::impersonation::caller;
use crate::status::authorize;
use crate::store::{KvStore, StoreError};

/// What the `Cluster` service needs from the local member.
#[async_trait::async_trait]
pub trait ClusterControl: Send + Sync + 'static {
    /// The local member's view of the cluster.
    async fn status(&self) -> Result<ClusterStatus, StoreError>;
    /// Adds a member (as a learner, promoted to voter when `promote`).
    async fn add_member(&self, request: api::AddMemberRequest)
        -> Result<ClusterStatus, StoreError>;
    /// Removes a member.
    async fn remove_member(&self, id: u64) -> Result<ClusterStatus, StoreError>;
    /// A consistent copy of the store in raft-store's checksummed backup format.
    async fn snapshot(&self) -> Result<Vec<u8>, StoreError>;
}

/// The non-resource path membership changes and snapshots are authorized on.
const MEMBERS_PATH: &str = "/cluster/members";

/// The `Cluster` service over a [`ClusterControl`].
pub struct ClusterService<C, S> {
    control: Arc<C>,
    authenticator: Authenticator<S>,
    authorizer: Arc<dyn Authorizer>,
    auditor: Option<Arc<Auditor>>,
}

impl<C: ClusterControl, S: KvStore> ClusterService<C, S> {
    /// The service; `authenticator` and `authorizer` are the ones the `Resources` service
    /// uses.
    pub fn new(
        control: Arc<C>,
        authenticator: Authenticator<S>,
        authorizer: Arc<dyn Authorizer>,
    ) -> ClusterService<C, S> {
        ClusterService {
            control,
            authenticator,
            authorizer,
            auditor: None,
        }
    }

    /// Records every call with `auditor` (`None`: no audit).
    pub fn with_audit(mut self, auditor: Option<Arc<Auditor>>) -> ClusterService<C, S> {
        self.auditor = auditor;
        self
    }

    /// The audit record of a call (`stage` ResponseStarted for the snapshot stream).
    fn audit<T>(&self, request: &Request<T>, verb: &str, stage: Stage) -> Audit {
        Audit::begin(self.auditor.as_ref(), request, verb, stage)
    }

    /// Authenticates the caller and asks the authorizer about `verb` on the membership.
    async fn require_admin<T>(
        &self,
        audit: &mut Audit,
        request: &Request<T>,
        verb: &str,
    ) -> Result<(), Status> {
        let user = caller(
            &self.authenticator,
            self.authorizer.as_ref(),
            audit,
            request,
        )
        .await?;
        authorize(
            self.authorizer.as_ref(),
            &Attributes::non_resource(&user, verb, MEMBERS_PATH),
        )
    }
}

/// The status a store error answers with. A refused request ([`StoreError::refused`]) is
/// FailedPrecondition: every master would refuse it alike, so clients do not try it on the
/// others.
fn to_status(e: StoreError) -> Status {
    match e {
        StoreError::Timeout(m) => Status::deadline_exceeded(m),
        e @ StoreError::OutcomeUnknown(_) => crate::status::outcome_unknown(e.to_string()),
        StoreError::Kv(KvError::Invalid(m)) => Status::failed_precondition(m),
        other => Status::unavailable(other.to_string()),
    }
}

/// Size of the chunks a snapshot is streamed in.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

#[tonic::async_trait]
impl<C: ClusterControl, S: KvStore> Cluster for ClusterService<C, S> {
    type SnapshotStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<api::SnapshotChunk, Status>> + Send>>;

    async fn snapshot(
        &self,
        request: Request<api::Empty>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let mut audit = self.audit(&request, "get", Stage::ResponseStarted);
        let result = async {
            self.require_admin(&mut audit, &request, "get").await?;
            let bytes = self.control.snapshot().await.map_err(to_status)?;
            let chunks: Vec<Result<api::SnapshotChunk, Status>> = bytes
                .chunks(SNAPSHOT_CHUNK_BYTES)
                .map(|chunk| {
                    Ok(api::SnapshotChunk {
                        data: chunk.to_vec(),
                    })
                })
                .collect();
            Ok(Response::new(
                Box::pin(futures::stream::iter(chunks)) as Self::SnapshotStream
            ))
        }
        .await;
        audit.finish(result).await
    }

    async fn status(
        &self,
        request: Request<api::Empty>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let mut audit = self.audit(&request, "get", Stage::ResponseComplete);
        let result = async {
            caller(
                &self.authenticator,
                self.authorizer.as_ref(),
                &mut audit,
                &request,
            )
            .await?;
            Ok(Response::new(
                self.control.status().await.map_err(to_status)?,
            ))
        }
        .await;
        audit.finish(result).await
    }

    async fn add_member(
        &self,
        request: Request<api::AddMemberRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let mut audit = self.audit(&request, "create", Stage::ResponseComplete);
        let result = async {
            self.require_admin(&mut audit, &request, "create").await?;
            Ok(Response::new(
                self.control
                    .add_member(request.into_inner())
                    .await
                    .map_err(to_status)?,
            ))
        }
        .await;
        audit.finish(result).await
    }

    async fn remove_member(
        &self,
        request: Request<api::RemoveMemberRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        let mut audit = self.audit(&request, "delete", Stage::ResponseComplete);
        let result = async {
            self.require_admin(&mut audit, &request, "delete").await?;
            let id = request.get_ref().id;
            Ok(Response::new(
                self.control.remove_member(id).await.map_err(to_status)?,
            ))
        }
        .await;
        audit.finish(result).await
    }
}
