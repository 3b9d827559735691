//! The server side of the internal Raft service: decodes requests and feeds the local `Raft`.
//!
//! Owns [`RaftGrpcService`]. It must not interpret the messages: openraft does.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use futures::StreamExt;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::VoteRequest;
use rafter_proto::raft::raft_server::Raft as RaftRpc;
use rafter_proto::raft::RaftPayload;
use tokio::io::AsyncSeekExt;
use tokio::io::AsyncWriteExt;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::failover::lease_stands_in_the_way;
use crate::failover::Failover;
use crate::kv::Command;
use crate::network::client::PeerVerifier;
use crate::network::codec::from_bytes;
use crate::network::codec::to_bytes;
use crate::proposer::Proposer;
use crate::read_index::ReadIndexBatcher;
use crate::types::ApplyResult;
use crate::types::NodeId;
use crate::types::Raft;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Serves the `rafter.raft.v1.Raft` gRPC service for one member.
#[derive(Clone)]
pub struct RaftGrpcService {
    id: NodeId,
    cluster: Arc<str>,
    raft: Raft,
    reads: Arc<ReadIndexBatcher>,
    proposer: Arc<Proposer>,
    /// Where snapshots received from the leader are written.
    snapshot_dir: Arc<PathBuf>,
    /// Which callers are members, when peers present certificates.
    verifier: Option<Arc<dyn PeerVerifier>>,
    /// Turns true when the member shuts down: replication streams end then, so the server's
    /// graceful shutdown does not wait for peers to close them.
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Records when the leader was last heard; lets votes past the lease of a dead leader.
    failover: Arc<Failover>,
}

impl RaftGrpcService {
    /// Serve RPCs into `raft`; read-index requests share rounds through `reads`, forwarded
    /// writes share entries through `proposer`.
    /// Replication requests must be addressed to member `id` of `cluster`; snapshots from
    /// the leader are received into files in `snapshot_dir`. Appends are reported to
    /// `failover`, and votes pass its check.
    #[allow(clippy::too_many_arguments)] // reason: each is one of the member's parts, named
    pub(crate) fn new(
        id: NodeId,
        cluster: &str,
        raft: Raft,
        reads: Arc<ReadIndexBatcher>,
        proposer: Arc<Proposer>,
        snapshot_dir: PathBuf,
        shutdown: tokio::sync::watch::Receiver<bool>,
        failover: Arc<Failover>,
    ) -> Self {
        RaftGrpcService {
            id,
            cluster: cluster.into(),
            raft,
            reads,
            proposer,
            snapshot_dir: Arc::new(snapshot_dir),
            verifier: None,
            shutdown,
            failover,
        }
    }

    /// Refuses calls from peers whose certificate `verifier` does not admit.
    pub(crate) fn with_verifier(mut self, verifier: Option<Arc<dyn PeerVerifier>>) -> Self {
        self.verifier = verifier;
        self
    }

    /// The tonic service, with message limits large enough for batches of 1.5 MiB values.
    pub fn into_server(self) -> rafter_proto::raft::raft_server::RaftServer<Self> {
        rafter_proto::raft::raft_server::RaftServer::new(self)
            .max_decoding_message_size(crate::network::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::network::MAX_MESSAGE_BYTES)
    }
}

impl RaftGrpcService {
    /// Refuses a caller whose certificate does not name a member (a node's or a user's
    /// certificate of the same CA): no Raft call, forwarded writes and read index included,
    /// reaches openraft from anyone else.
    fn check_peer<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let certs = request.peer_certs();
        let Some(cert) = certs.as_deref().and_then(|c| c.first()) else {
            return Err(Status::permission_denied(
                "a Raft peer must present a member's certificate",
            ));
        };
        verifier.verify(cert.as_ref()).map_err(|why| {
            tracing::warn!(member = self.id, %why, "refused a Raft call from a non-member");
            Status::permission_denied(format!("not a member of this cluster: {why}"))
        })
    }

    /// Refuses a replication request meant for another member or cluster: a peer that dials
    /// an address now served by someone else must get an error, not that member's log.
    fn check_addressee(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let header = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (cluster, target) = (
            header(crate::network::CLUSTER_HEADER),
            header(crate::network::TARGET_HEADER),
        );
        if *cluster == *self.cluster && target == self.id.to_string() {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "this is member {} of cluster {:?}, not member {target:?} of cluster {cluster:?}",
            self.id, self.cluster
        )))
    }
}

impl RaftGrpcService {
    /// Whether `req` is a vote only the lease of a leader would refuse, and that leader's
    /// port refuses connections: then the vote may go past the lease (see `failover`).
    async fn leader_known_dead(&self, req: &VoteRequest<TypeConfig>) -> bool {
        let ours = self.raft.metrics().borrow_watched().clone();
        let Some(leader) = lease_stands_in_the_way(self.id, &ours, &req.vote) else {
            return false;
        };
        let Some(addr) = ours
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
        else {
            return false;
        };
        let probe = self.failover.probe.probe(&addr).await;
        if probe.confirms_death() {
            tracing::info!(
                member = self.id,
                leader,
                %addr,
                %probe,
                candidate = %req.vote,
                "leader's port refuses connections: letting the vote past its lease"
            );
            self.failover.lease_bypassed();
            true
        } else {
            tracing::debug!(member = self.id, leader, %probe, "leader not known dead: the lease stands");
            false
        }
    }
}

fn payload(data: Vec<u8>) -> Response<RaftPayload> {
    Response::new(RaftPayload { data })
}

#[tonic::async_trait]
impl RaftRpc for RaftGrpcService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        self.check_addressee(request.metadata())?;
        let req = from_bytes(&request.into_inner().data)?;
        self.failover.contact.touch();
        let resp = self.raft.append_entries(req).await;
        Ok(payload(to_bytes(&resp)?))
    }

    type StreamAppendStream =
        Pin<Box<dyn Stream<Item = Result<RaftPayload, Status>> + Send + 'static>>;

    async fn stream_append(
        &self,
        request: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        self.check_peer(&request)?;
        self.check_addressee(request.metadata())?;
        // The requests end where the stream ends or at the first that does not decode; the
        // leader then sees the replies end and starts a new stream. Each append is contact
        // with the leader; the end of the stream is a hint that the leader may be gone.
        let failover = self.failover.clone();
        let requests = futures::stream::unfold(request.into_inner(), move |mut input| {
            let failover = failover.clone();
            async move {
                let Some(Ok(payload)) = input.next().await else {
                    failover.contact.hint();
                    return None;
                };
                match from_bytes::<AppendEntriesRequest<TypeConfig>>(&payload.data) {
                    Ok(req) => {
                        failover.contact.touch();
                        Some((req, input))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable append in a replication stream");
                        None
                    }
                }
            }
        });
        let mut shutdown = self.shutdown.clone();
        let replies = self
            .raft
            .stream_append(requests)
            .map(|reply| to_bytes(&reply).map(|data| RaftPayload { data }))
            .take_until(async move {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        self.check_addressee(request.metadata())?;
        let mut req: VoteRequest<TypeConfig> = from_bytes(&request.into_inner().data)?;
        if self.failover.enabled && !req.leadership_transfer {
            req.leadership_transfer = self.leader_known_dead(&req).await;
        }
        let resp = self.raft.vote(req).await;
        Ok(payload(to_bytes(&resp)?))
    }

    async fn pre_vote(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        self.check_addressee(request.metadata())?;
        let req = from_bytes(&request.into_inner().data)?;
        let resp = self.raft.pre_vote(req).await;
        Ok(payload(to_bytes(&resp)?))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        self.check_addressee(request.metadata())?;
        let mut chunks = request.into_inner();
        let header = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta, length): (Vote, SnapshotMeta, u64) = from_bytes(&header.data)?;
        let io = |e: std::io::Error| Status::internal(format!("receive snapshot: {e}"));
        let mut file = crate::storage::incoming_snapshot_file(&self.snapshot_dir)
            .await
            .map_err(io)?;
        let mut received = 0u64;
        while let Some(chunk) = chunks.next().await {
            let data = chunk?.data;
            received += data.len() as u64;
            file.write_all(&data).await.map_err(io)?;
        }
        // A stream the sender ended early must not be installed as a whole snapshot.
        if received != length {
            return Err(Status::data_loss(format!(
                "snapshot stream ended after {received} of {length} bytes"
            )));
        }
        file.flush().await.map_err(io)?;
        file.rewind().await.map_err(io)?;
        let snapshot = Snapshot {
            meta,
            snapshot: file,
        };
        let resp = self.raft.install_full_snapshot(vote, snapshot).await;
        Ok(payload(to_bytes(&resp)?))
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        // Confirms leadership with a quorum; the index is what a reader must have applied.
        let resp: Result<Option<u64>, RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> =
            self.reads
                .read_index()
                .await
                .map(|read_log_id| read_log_id.map(|l| l.index));
        Ok(payload(to_bytes(&resp)?))
    }

    async fn client_write(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_peer(&request)?;
        let mut cmd: Command = from_bytes(&request.into_inner().data)?;
        // Time is decided by the leader: restamp the forwarded entry with this member's clock.
        cmd.now_ms = crate::node::now_ms();
        let resp: Result<ApplyResult, RaftError<TypeConfig, ClientWriteError<TypeConfig>>> =
            self.proposer.propose(cmd).await;
        Ok(payload(to_bytes(&resp)?))
    }
}
