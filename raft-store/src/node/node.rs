//! One member of the replicated store: Raft, its storage, its gRPC endpoint and the
//! leader's housekeeping, behind a small client API.
//!
//! Owns [`Node`]: start/stop, bootstrap and membership, client operations, reads with a
//! chosen consistency, watches. Writes become log entries stamped with this member's clock
//! (only the leader's entries commit, so time is the leader's). It must not interpret keys.
//!
//! ```text
//!  put/txn/... ─► Command{now_ms, op} ─► proposer (concurrent writes share an entry)
//!              ─► raft.client_write ─► (quorum, fsync) ─► apply ─► answer
//!  range(Linearizable) ─► leader: raft.ensure_linearizable (read index) ─► local read
//!                        follower: ReadIndex RPC to the leader ─► wait applied ─► local read
//!  range(Serializable) ─► local read (possibly stale)
//!  housekeeping (leader only): extend leases on election, expire leases, compact history
//! ```

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::Weak;
use std::time::Duration;
use std::time::Instant;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::LinearizableReadError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::RaftMetrics;
use openraft::ServerState;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;

use crate::failover::Failover;
use crate::failover::FailoverCounts;
use crate::kv::*;
use crate::network::GrpcNetworkFactory;
use crate::network::PeerConnections;
use crate::network::RaftGrpcService;
use crate::node::config::NodeConfig;
use crate::node::error::NodeError;
use crate::node::watch::spawn_watch;
use crate::node::watch::Watch;
use crate::node::watch::WatchRequest;
use crate::node::DiskReserve;
use crate::proposer::Proposer;
use crate::read_index::ReadIndexBatcher;
use crate::storage::StateHandle;
use crate::types::ApplyResult;
use crate::types::NodeId;
use crate::types::Raft;
use crate::types::TypeConfig;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read started: the leader confirms its
    /// read index with a quorum; a follower asks the leader for it and serves the read once
    /// it has applied that far.
    #[default]
    Linearizable,
    /// This member's applied state, possibly stale; served by any member.
    Serializable,
}

struct NodeInner {
    id: NodeId,
    addr: String,
    config: NodeConfig,
    raft: Raft,
    handle: RwLock<Option<StateHandle>>,
    shutdown: tokio_watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    db: Weak<rocksdb::DB>,
    reads: Arc<ReadIndexBatcher>,
    /// Shares log entries between concurrent writes.
    proposer: Arc<Proposer>,
    /// Connections to peers (Raft replication, forwarded writes, read indexes).
    peers: PeerConnections,
    /// The data disk's free space against the reserve.
    disk: Arc<DiskReserve>,
    /// Fast failover's state: the leader's last contact, the probe, the counts.
    failover: Arc<Failover>,
}

/// A running member of the store. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn stopped(e: impl std::fmt::Display) -> NodeError {
    NodeError::Stopped(e.to_string())
}

fn write_error(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => NodeError::ForwardToLeader {
            leader_id: f.leader_id,
            addr: f.leader_node.map(|n| n.addr),
        },
        // Appended here, then replaced by another leader's log: it may still commit there,
        // so it must not be proposed again as if it never was.
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            NodeError::OutcomeUnknown(format!(
                "the entry was discarded here when leader {:?} took over; it may still commit",
                f.leader_id
            ))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            NodeError::Membership(e.to_string())
        }
        RaftError::APIError(ClientWriteError::PreconditionFailed(e)) => {
            NodeError::Membership(e.to_string())
        }
        RaftError::Fatal(f) => stopped(f),
    }
}

/// A live view of a member's Raft metrics: `borrow_watched()` for the latest, `changed()` to
/// wait for the next (methods of [`WatchReceiver`]).
pub type MetricsWatch =
    openraft::type_config::alias::WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>;

/// How long ago a quorum last acknowledged this member as leader, from its metrics; `None`
/// when it is not the leader.
pub fn since_quorum_ack(metrics: &RaftMetrics<TypeConfig>) -> Option<Duration> {
    metrics
        .last_quorum_acked
        .as_deref()
        .map(openraft::Instant::elapsed)
}

impl Node {
    /// Open the store in `config.data_dir`, bind the Raft endpoint and start Raft.
    ///
    /// A fresh member waits for [`Node::initialize`] (on one member) or to be added by the
    /// leader; a restarted member rejoins with its stored log and state.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if config.id == 0 {
            return Err(NodeError::Config("member id must be non-zero".into()));
        }
        let dir = config.data_dir.clone();
        let limits = config.limits;
        let (log, sm) =
            tokio::task::spawn_blocking(move || crate::storage::open_store(&dir, limits))
                .await
                .map_err(stopped)??;
        let handle = sm.handle();
        let db = log.db_weak();
        let raft_config = openraft::Config {
            cluster_name: config.cluster_name.clone(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout_min.as_millis() as u64,
            election_timeout_max: config.election_timeout_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|e| NodeError::Transport(format!("bind {}: {e}", config.listen_addr)))?;
        let local = listener
            .local_addr()
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        let addr = config
            .advertise_addr
            .clone()
            .unwrap_or_else(|| local.to_string());
        let peers = PeerConnections::new(config.tls.clone(), config.peer_routes.clone());
        let network = GrpcNetworkFactory::new(
            config.id,
            &config.cluster_name,
            config.faults.clone(),
            peers.clone(),
        );
        let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(stopped)?;
        let (shutdown, shutdown_rx) = tokio_watch::channel(false);
        let reads = ReadIndexBatcher::new(raft.clone());
        let disk = DiskReserve::new(
            config.id,
            config.data_dir.clone(),
            config.disk_reserve_bytes,
        );
        let proposer = Proposer::start(raft.clone(), config.batching, disk.clone());
        let failover = Arc::new(Failover::new(
            config.fast_failover,
            config.heartbeat_interval,
            config.peer_routes.clone(),
        ));
        let service = RaftGrpcService::new(
            config.id,
            &config.cluster_name,
            raft.clone(),
            reads.clone(),
            proposer.clone(),
            config.data_dir.join("snapshots"),
            shutdown_rx.clone(),
            failover.clone(),
        )
        .with_verifier(config.tls.as_ref().and_then(|t| t.verifier.clone()))
        .into_server();
        let mut server_shutdown = shutdown_rx.clone();
        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        if let Some(tls) = &config.tls {
            builder = builder
                .tls_config(tls.server_config())
                .map_err(|e| NodeError::Config(format!("peer TLS: {e}")))?;
        }
        let server = tokio::spawn(async move {
            // tonic ignores its tcp_nodelay setting for streams it did not accept itself:
            // without it, Nagle's algorithm holds small replies back ~40 ms.
            let incoming = futures::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |stream| {
                    stream.inspect(|s| {
                        let _ = s.set_nodelay(true);
                    })
                },
            );
            let result = builder
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = server_shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "raft endpoint stopped");
            }
        });
        tracing::info!(id = config.id, %addr, "raft-store member started");
        let node = Node {
            inner: Arc::new(NodeInner {
                id: config.id,
                addr,
                config,
                raft,
                handle: RwLock::new(Some(handle)),
                shutdown,
                tasks: std::sync::Mutex::new(Vec::new()),
                db,
                reads,
                proposer,
                peers,
                disk: disk.clone(),
                failover: failover.clone(),
            }),
        };
        let disk_watch =
            tokio::spawn(disk.watch(node.inner.config.housekeeping_interval, shutdown_rx.clone()));
        let leader_watch = failover.enabled.then(|| {
            tokio::spawn(crate::failover::watch_leader(
                node.inner.id,
                node.inner.raft.clone(),
                failover,
                shutdown_rx.clone(),
            ))
        });
        let housekeeping = tokio::spawn(housekeeping(node.clone_weak(), shutdown_rx));
        if let Ok(mut tasks) = node.inner.tasks.lock() {
            tasks.extend(leader_watch);
            tasks.push(server);
            tasks.push(housekeeping);
            tasks.push(disk_watch);
        }
        Ok(node)
    }

    fn clone_weak(&self) -> Weak<NodeInner> {
        Arc::downgrade(&self.inner)
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address peers reach this member's Raft endpoint at.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The openraft handle, for metrics and `wait()` conditions.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// How often fast failover has started an election or let a vote past a dead leader's
    /// lease on this member (see [`NodeConfig::fast_failover`]).
    pub fn failover_counts(&self) -> FailoverCounts {
        self.inner.failover.counts()
    }

    /// What this member's database holds in memory (memtables, table readers, block
    /// caches); zeros once it is shut down. Reads RocksDB's properties, not the disk.
    pub fn store_memory(&self) -> crate::StoreMemory {
        self.inner
            .db
            .upgrade()
            .map(|db| crate::storage::memory(&db))
            .unwrap_or_default()
    }

    /// A live view of Raft metrics (leader, term, applied index, membership).
    pub fn metrics(&self) -> MetricsWatch {
        self.inner.raft.metrics()
    }

    /// The term this member leads in, or `None` when it is not the leader. Controllers that
    /// run on the leader pass it to [`Node::submit`] as their fence.
    pub fn leader_term(&self) -> Option<u64> {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        (m.state == ServerState::Leader && m.current_leader == Some(self.inner.id))
            .then_some(m.current_term)
    }

    /// The current leader as this member sees it: id and Raft address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((id, addr))
    }

    fn handle(&self) -> Result<StateHandle, NodeError> {
        self.inner
            .handle
            .read()
            .ok()
            .and_then(|h| h.clone())
            .ok_or_else(|| NodeError::Stopped("member is shut down".into()))
    }

    /// Make this member the first of a new cluster whose voters are `members` (id → Raft
    /// address). Call it once, on one member.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), NodeError> {
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        self.inner
            .raft
            .initialize(nodes)
            .await
            .map_err(|e| match e {
                RaftError::APIError(e) => NodeError::Membership(e.to_string()),
                RaftError::Fatal(f) => stopped(f),
            })
    }

    /// Bootstrap the cluster `members` unless this member already belongs to one: safe to
    /// call on every member at every start (for example by `rafter up`).
    pub async fn initialize_if_new(
        &self,
        members: BTreeMap<NodeId, String>,
    ) -> Result<(), NodeError> {
        if self.inner.raft.is_initialized().await.map_err(stopped)? {
            return Ok(());
        }
        match self.initialize(members).await {
            Err(NodeError::Membership(e))
                if self.inner.raft.is_initialized().await.unwrap_or(false) =>
            {
                tracing::debug!(error = %e, "cluster initialised concurrently");
                Ok(())
            }
            other => other,
        }
    }

    /// Add a non-voting learner and wait until it has caught up with the log.
    pub async fn add_learner(&self, id: NodeId, addr: String) -> Result<(), NodeError> {
        self.inner
            .raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map(|_| ())
            .map_err(write_error)
    }

    /// Replace the set of voters (promote learners, remove members); leader only.
    pub async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), NodeError> {
        self.inner
            .raft
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(write_error)
    }

    /// Propose `op` and wait for it to be applied; bounded by the request timeout.
    async fn write(&self, op: Op) -> Result<KvResponse, NodeError> {
        self.submit(op, None).await
    }

    /// Propose any operation and wait until it is applied, bounded by the request timeout.
    ///
    /// With `fence_term = Some(t)` the operation applies only if it is logged in term `t`:
    /// a controller that decided it while leading in term `t` (see [`Node::leader_term`]) can
    /// never have it applied after leadership moved on. A fenced write that lost its term
    /// fails with `KvError::Fenced`.
    pub async fn submit(&self, op: Op, fence_term: Option<u64>) -> Result<KvResponse, NodeError> {
        check_limits(&op, &self.inner.config.limits)?;
        let timeout = self.inner.config.request_timeout;
        let cmd = Command {
            now_ms: now_ms(),
            fence_term,
            op,
        };
        // A leader already cut off proposes nothing: the caller may try another member.
        let cut_off_after = self.cut_off_after();
        if self.cut_off(cut_off_after) {
            return Err(NodeError::CutOff {
                after: cut_off_after,
            });
        }
        let fut = self.inner.proposer.propose(cmd.clone());
        tokio::pin!(fut);
        // One timer per write, as before there was a cut-off: it first fires when a leader
        // could have been cut off for long enough, then once a heartbeat until the request
        // timeout. A write answered sooner looks at the metrics only once, above.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut check_at = tokio::time::Instant::now() + cut_off_after;
        let proposed = loop {
            match tokio::time::timeout_at(check_at.min(deadline), &mut fut).await {
                Ok(proposed) => break Some(proposed),
                Err(_) if tokio::time::Instant::now() >= deadline => break None,
                Err(_) if self.cut_off(cut_off_after) => {
                    return Err(NodeError::OutcomeUnknown(format!(
                        "this member leads but no quorum of the members has answered it for \
                         {cut_off_after:?}: it is cut off from them, and the write may commit \
                         only if they hear from it again before they elect another leader"
                    )))
                }
                Err(_) => {
                    check_at = tokio::time::Instant::now() + self.inner.config.heartbeat_interval;
                }
            }
        };
        let result: ApplyResult = match proposed {
            None => return Err(NodeError::Timeout { after: timeout }),
            Some(Ok(result)) => result,
            Some(Err(e)) => match write_error(e) {
                NodeError::ForwardToLeader {
                    leader_id,
                    addr: Some(addr),
                } if self.inner.config.forward_writes => {
                    self.forward_while_led_by(leader_id, &addr, cmd, timeout)
                        .await?
                }
                other => return Err(other),
            },
        };
        result.map_err(NodeError::Kv)
    }

    /// Forwards a write to `leader` at `addr` and waits for its answer, until this member
    /// sees leadership move away from `leader` (an election after the leader went silent:
    /// paused, partitioned, dead behind an open connection). The write then fails at once
    /// as of unknown outcome (the old leader may still have it), instead of waiting out
    /// the request timeout on a leader that will not answer.
    async fn forward_while_led_by(
        &self,
        leader: Option<NodeId>,
        addr: &str,
        cmd: Command,
        timeout: Duration,
    ) -> Result<ApplyResult, NodeError> {
        tokio::select! {
            result = forward_write(&self.inner.peers, addr, cmd, timeout) => result,
            () = self.leadership_moved_from(leader) => Err(NodeError::OutcomeUnknown(format!(
                "leadership moved on from {leader:?} while the write was forwarded to it at \
                 {addr}; it may still commit there"
            ))),
        }
    }

    /// How long a leader may go without a quorum's acknowledgement before a write waiting
    /// on it is given up as cut off: four maximum election timeouts (at least 1 s), long
    /// enough that a leader merely slowed by a loaded machine is not mistaken for one the
    /// others have left, short against the request timeout.
    fn cut_off_after(&self) -> Duration {
        (self.inner.config.election_timeout_max * 4).max(Duration::from_secs(1))
    }

    /// Whether this member leads a cluster of more than one voter and no quorum has
    /// acknowledged it for `after` (a leader partitioned from its followers, whose writes
    /// cannot commit). False while it follows or while a quorum answers.
    fn cut_off(&self, after: Duration) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        m.state == openraft::ServerState::Leader
            && m.membership_config
                .membership()
                .voter_ids()
                .nth(1)
                .is_some()
            && m.last_quorum_acked
                .as_ref()
                .is_some_and(|acked| openraft::Instant::elapsed(&**acked) > after)
    }

    /// Resolves once this member no longer names `leader` as its leader (an election
    /// began or ended elsewhere); never, if Raft stops first.
    async fn leadership_moved_from(&self, leader: Option<NodeId>) {
        let mut metrics = self.inner.raft.metrics();
        loop {
            if metrics.borrow_watched().current_leader != leader {
                return;
            }
            if metrics.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Put one key.
    pub async fn put(&self, req: PutRequest) -> Result<PutResponse, NodeError> {
        match self.write(Op::Put(req)).await? {
            KvResponse::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Delete a key or a range of keys.
    pub async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse, NodeError> {
        match self.write(Op::Delete(req)).await? {
            KvResponse::Delete(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Run a compare-and-swap transaction.
    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, NodeError> {
        match self.write(Op::Txn(req)).await? {
            KvResponse::Txn(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Drop history below `revision`.
    pub async fn compact(&self, revision: u64) -> Result<(), NodeError> {
        self.write(Op::Compact { revision }).await.map(|_| ())
    }

    /// Grant a lease of `ttl`; `id = 0` lets the store choose. Returns the lease id.
    pub async fn lease_grant(&self, id: u64, ttl: Duration) -> Result<u64, NodeError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        match self.write(Op::LeaseGrant { id, ttl_ms }).await? {
            KvResponse::LeaseGrant { id, .. } => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Revoke a lease, deleting its keys.
    pub async fn lease_revoke(&self, id: u64) -> Result<(), NodeError> {
        self.write(Op::LeaseRevoke { id }).await.map(|_| ())
    }

    /// Renew a lease for its full TTL; returns the TTL.
    pub async fn lease_keep_alive(&self, id: u64) -> Result<Duration, NodeError> {
        match self.write(Op::LeaseKeepAlive { id }).await? {
            KvResponse::LeaseKeepAlive { ttl_ms, .. } => Ok(Duration::from_millis(ttl_ms)),
            other => Err(unexpected(other)),
        }
    }

    /// A lease as this member has applied it (serializable).
    pub async fn lease(&self, id: u64) -> Result<Option<Lease>, NodeError> {
        Ok(self.handle()?.read(move |kv| kv.lease(id)).await??)
    }

    /// Every lease as this member has applied it (serializable).
    pub async fn leases(&self) -> Result<Vec<Lease>, NodeError> {
        Ok(self.handle()?.read(|kv| kv.leases()).await??)
    }

    /// Confirm leadership with a quorum (read index) and wait until this member has applied
    /// up to it. A quorum that does not answer in time is asked again until the request
    /// timeout.
    async fn read_barrier(&self, consistency: Consistency) -> Result<(), NodeError> {
        if consistency == Consistency::Serializable {
            return Ok(());
        }
        let timeout = self.inner.config.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.inner.reads.read_index()).await;
            match attempt {
                Err(_) => return Err(NodeError::Timeout { after: timeout }),
                Ok(Ok(read_log_id)) => {
                    // Serve the read once this member has applied up to the read index.
                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                    return self
                        .inner
                        .raft
                        .wait(Some(remaining))
                        .applied_index_at_least(read_log_id.map(|l| l.index), "read index")
                        .await
                        .map(|_| ())
                        .map_err(|_| NodeError::Timeout { after: timeout });
                }
                Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => {
                    let Some(addr) = f.leader_node.map(|n| n.addr) else {
                        return Err(NodeError::ForwardToLeader {
                            leader_id: f.leader_id,
                            addr: None,
                        });
                    };
                    // A follower: the leader's read index, then wait to have applied it.
                    // A leader that went silent is not waited for once another is chosen:
                    // the read index is asked again, of the new one.
                    let index = tokio::select! {
                        index = read_index_from(&self.inner.peers, &addr, deadline) => index?,
                        () = self.leadership_moved_from(f.leader_id) => continue,
                    };
                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if let Some(index) = index {
                        self.inner
                            .raft
                            .wait(Some(remaining))
                            .applied_index_at_least(Some(index), "read index")
                            .await
                            .map_err(|_| NodeError::Timeout { after: timeout })?;
                    }
                    return Ok(());
                }
                Ok(Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e)))) => {
                    tracing::debug!(error = %e, "read index not confirmed by a quorum yet; retrying");
                    let pause = tokio::time::Instant::now() + self.inner.config.heartbeat_interval;
                    if pause >= deadline {
                        return Err(NodeError::Timeout { after: timeout });
                    }
                    tokio::time::sleep_until(pause).await;
                }
                Ok(Err(RaftError::Fatal(f))) => return Err(stopped(f)),
            }
        }
    }

    /// Read keys with the given consistency.
    pub async fn range(
        &self,
        req: RangeRequest,
        consistency: Consistency,
    ) -> Result<RangeResponse, NodeError> {
        self.read_barrier(consistency).await?;
        Ok(self.handle()?.range(req).await??)
    }

    /// Read one key with the given consistency.
    pub async fn get(
        &self,
        key: impl Into<Vec<u8>>,
        consistency: Consistency,
    ) -> Result<Option<KeyValue>, NodeError> {
        let mut resp = self
            .range(RangeRequest::new(KeyRange::key(key)), consistency)
            .await?;
        Ok(resp.kvs.pop())
    }

    /// This member's current revision (serializable).
    pub async fn revision(&self) -> Result<u64, NodeError> {
        Ok(self.handle()?.read(|kv| kv.revision()).await?)
    }

    /// This member's compaction point: history below it is gone (serializable).
    pub async fn compact_revision(&self) -> Result<u64, NodeError> {
        Ok(self.handle()?.read(|kv| kv.compact_revision()).await?)
    }

    /// Watch keys on this member: every change from `start_revision` (0: after the current
    /// revision, as of this call), once, in revision order.
    pub async fn watch(&self, req: WatchRequest) -> Result<Watch, NodeError> {
        let handle = self.handle()?;
        let start = self.resolve_start(&handle, req.start_revision).await?;
        Ok(spawn_watch(
            handle,
            Some(req.range),
            start,
            req.prev_kv,
            self.inner.shutdown.subscribe(),
        ))
    }

    /// Every applied revision from `from_revision` (0: after the current revision), with
    /// previous values: the feed for in-process subscribers such as informers.
    pub async fn subscribe_applied(&self, from_revision: u64) -> Result<Watch, NodeError> {
        let handle = self.handle()?;
        let start = self.resolve_start(&handle, from_revision).await?;
        Ok(spawn_watch(
            handle,
            None,
            start,
            true,
            self.inner.shutdown.subscribe(),
        ))
    }

    async fn resolve_start(&self, handle: &StateHandle, start: u64) -> Result<u64, NodeError> {
        if start != 0 {
            return Ok(start);
        }
        Ok(handle.read(|kv| kv.revision()).await? + 1)
    }

    /// Save a consistent copy of the key space to `dest` (snapshot format with a checksum),
    /// after a read barrier of the given consistency. Seed new clusters from it with
    /// [`restore_backup`](crate::restore_backup).
    pub async fn backup(
        &self,
        dest: impl Into<std::path::PathBuf>,
        consistency: Consistency,
    ) -> Result<crate::BackupInfo, NodeError> {
        self.read_barrier(consistency).await?;
        let db = self
            .inner
            .db
            .upgrade()
            .ok_or_else(|| NodeError::Stopped("member is shut down".into()))?;
        let dest = dest.into();
        let info = tokio::task::spawn_blocking(move || crate::storage::write_backup(&db, &dest))
            .await
            .map_err(stopped)??;
        Ok(info)
    }

    /// Resolves, with the reason, once this member must stop because its data disk has less
    /// than a quarter of [`NodeConfig::disk_reserve_bytes`] free; never without a reserve.
    /// The caller then shuts the member down (a master process exits).
    pub async fn disk_exhausted(&self) -> String {
        self.inner.disk.exhausted().await
    }

    /// Stop Raft, the endpoint and background tasks, and wait until the database is closed,
    /// so the same data directory can be opened again.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let _ = self.inner.shutdown.send(true);
        let raft_result = self.inner.raft.shutdown().await;
        let tasks: Vec<JoinHandle<()>> = self
            .inner
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        if let Ok(mut h) = self.inner.handle.write() {
            h.take();
        }
        raft_result.map_err(stopped)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.inner.db.strong_count() > 0 {
            if Instant::now() > deadline {
                return Err(NodeError::Stopped(
                    "database still in use after shutdown".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(id = self.inner.id, "raft-store member stopped");
        Ok(())
    }
}

fn unexpected(resp: KvResponse) -> NodeError {
    NodeError::Kv(KvError::Storage(format!("unexpected response {resp:?}")))
}

/// Asks the leader at `addr` for its read index (confirmed with a quorum).
async fn read_index_from(
    peers: &PeerConnections,
    addr: &str,
    deadline: tokio::time::Instant,
) -> Result<Option<u64>, NodeError> {
    let started = tokio::time::Instant::now();
    let mut client = peers
        .client(addr)
        .map_err(|e| NodeError::Transport(e.to_string()))?;
    let reply = tokio::time::timeout_at(
        deadline,
        client.read_index(rafter_proto::raft::RaftPayload { data: Vec::new() }),
    )
    .await
    .map_err(|_| NodeError::Timeout {
        after: deadline.saturating_duration_since(started),
    })?
    .map_err(|s| NodeError::Transport(s.to_string()))?;
    let decoded: Result<Option<u64>, RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> =
        crate::network::from_bytes(&reply.into_inner().data)
            .map_err(|s| NodeError::Transport(s.to_string()))?;
    decoded.map_err(|e| match e {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
            NodeError::ForwardToLeader {
                leader_id: f.leader_id,
                addr: f.leader_node.map(|n| n.addr),
            }
        }
        RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => {
            NodeError::Transport(q.to_string())
        }
        RaftError::Fatal(f) => NodeError::Stopped(f.to_string()),
    })
}

/// Send a write to the leader's Raft endpoint (the `ClientWrite` RPC).
async fn forward_write(
    peers: &PeerConnections,
    addr: &str,
    cmd: Command,
    timeout: Duration,
) -> Result<ApplyResult, NodeError> {
    let mut client = peers
        .client(addr)
        .map_err(|e| NodeError::Transport(e.to_string()))?;
    let data = crate::network::to_bytes(&cmd).map_err(|s| NodeError::Transport(s.to_string()))?;
    let reply = tokio::time::timeout(
        timeout,
        client.client_write(rafter_proto::raft::RaftPayload { data }),
    )
    .await
    .map_err(|_| NodeError::Timeout { after: timeout })?
    .map_err(|s| forward_failure(addr, &s))?;
    let decoded: Result<ApplyResult, RaftError<TypeConfig, ClientWriteError<TypeConfig>>> =
        crate::network::from_bytes(&reply.into_inner().data).map_err(|s| {
            NodeError::OutcomeUnknown(format!(
                "the leader at {addr} answered the forwarded write with something unreadable: {s}"
            ))
        })?;
    decoded.map_err(write_error)
}

/// What a failed `ClientWrite` RPC means: `Transport` (not applied, safe to send again)
/// only when the connection to the leader could not be made; once the request may have
/// reached the leader (the connection broke, the leader failed), the outcome is unknown.
fn forward_failure(addr: &str, status: &tonic::Status) -> NodeError {
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let refused = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        if refused || error.downcast_ref::<tonic::ConnectError>().is_some() {
            return NodeError::Transport(status.to_string());
        }
        cause = error.source();
    }
    NodeError::OutcomeUnknown(format!(
        "the write was forwarded to the leader at {addr} and no answer came back: {status}"
    ))
}

/// The leader's periodic duties: on winning an election give every lease its full TTL again
/// (so a failover never expires leases early), then propose expiry of leases whose time has
/// passed and, if configured, compaction of old history.
async fn housekeeping(node: Weak<NodeInner>, mut shutdown: tokio_watch::Receiver<bool>) {
    let interval = match node.upgrade() {
        Some(n) => n.config.housekeeping_interval,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut extended_in_term: Option<u64> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let Some(inner) = node.upgrade() else { return };
        let node = Node { inner };
        let m = node.inner.raft.metrics().borrow_watched().clone();
        if m.state != ServerState::Leader {
            extended_in_term = None;
            continue;
        }
        if extended_in_term != Some(m.current_term) {
            match node.write(Op::LeaseExtendAll).await {
                Ok(_) => extended_in_term = Some(m.current_term),
                Err(e) => tracing::debug!(error = %e, "lease extension not committed yet"),
            }
            continue;
        }
        let now = now_ms();
        let Ok(handle) = node.handle() else { return };
        let retention = node.inner.config.history_retention;
        let due = handle
            .read(move |kv| {
                let expired = kv
                    .leases()
                    .map(|ls| ls.iter().any(|l| l.expires_at_ms <= now))
                    .unwrap_or(false);
                let compact_to = retention.and_then(|keep| {
                    let target = kv.revision().saturating_sub(keep);
                    (target > kv.compact_revision()).then_some(target)
                });
                (expired, compact_to)
            })
            .await;
        let Ok((expired, compact_to)) = due else {
            continue;
        };
        if expired {
            if let Err(e) = node.write(Op::LeaseExpire).await {
                tracing::debug!(error = %e, "lease expiry not committed");
            }
        }
        if let Some(revision) = compact_to {
            if let Err(e) = node.write(Op::Compact { revision }).await {
                tracing::debug!(error = %e, "automatic compaction not committed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_write_is_not_sent_only_when_the_leader_could_not_be_connected() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let connect = tonic::ConnectError(Box::new(refused));
        let status = tonic::Status::from_error(Box::new(connect));
        assert!(
            matches!(forward_failure("l:1", &status), NodeError::Transport(_)),
            "{status:?}"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let status = tonic::Status::from_error(Box::new(reset));
        assert!(matches!(
            forward_failure("l:1", &status),
            NodeError::OutcomeUnknown(_)
        ));
        let answered = tonic::Status::internal("the leader failed");
        assert!(matches!(
            forward_failure("l:1", &answered),
            NodeError::OutcomeUnknown(_)
        ));
    }
}
