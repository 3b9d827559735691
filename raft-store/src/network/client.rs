//! The client side of the internal Raft service: openraft's `RaftNetworkFactory` over tonic.
//!
//! Owns connections to peers, RPC deadlines, the mapping of transport failures to openraft's
//! `RPCError`s, and [`NetworkFaults`], the switch tests use to cut members off. It must not
//! retry on its own: openraft decides when to resend.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

use futures::Stream;
use futures::StreamExt;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::error::Fatal;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Timeout;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendResult;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RPCTypes;
use openraft::RaftNetworkV2;
use rafter_proto::raft::raft_client::RaftClient;
use rafter_proto::raft::RaftPayload;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncSeekExt;
use tonic::transport::Channel;

use crate::network::codec::from_bytes;
use crate::network::codec::to_bytes;
use crate::types::NodeId;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::TypeConfig;
use crate::types::Vote;

/// Bytes of snapshot file per streamed message.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Switches that cut members off the network, for fault-injection tests.
///
/// Share one value between the members of a test cluster: a message from `a` to `b` is
/// dropped (as unreachable) while either `a` or `b` is isolated.
#[derive(Debug, Clone, Default)]
pub struct NetworkFaults {
    isolated: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl NetworkFaults {
    /// Cut `id` off from every other member.
    pub fn isolate(&self, id: NodeId) {
        if let Ok(mut set) = self.isolated.write() {
            set.insert(id);
        }
    }

    /// Reconnect `id`.
    pub fn heal(&self, id: NodeId) {
        if let Ok(mut set) = self.isolated.write() {
            set.remove(&id);
        }
    }

    /// Whether a message from `from` to `to` is dropped.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        self.isolated
            .read()
            .map(|s| s.contains(&from) || s.contains(&to))
            .unwrap_or(false)
    }
}

/// Decides whether the holder of a certificate the cluster CA issued may call a member's
/// Raft service (append, vote, snapshots, forwarded writes, read index). The CA also
/// issues nodes' and users' certificates: those must be refused.
pub trait PeerVerifier: Send + Sync + 'static {
    /// `Ok` when the peer presenting `cert_der` (its leaf certificate, DER) is a member;
    /// otherwise why not.
    fn verify(&self, cert_der: &[u8]) -> Result<(), String>;
}

/// Mutual TLS between members: this member's certificate and key, the CA whose
/// certificates peers must present, and which of those certificates name a member. A peer
/// with a certificate from another CA cannot join: the handshake fails both ways; one with
/// a certificate of the CA that [`PeerTls::verifier`] refuses gets PermissionDenied on
/// every call.
#[derive(Clone)]
pub struct PeerTls {
    /// This member's certificate, PEM (valid for client and server use).
    pub cert_pem: String,
    /// This member's private key, PEM.
    pub key_pem: String,
    /// The cluster CA, PEM.
    pub ca_pem: String,
    /// Which certificates of the CA belong to members; `None` accepts every one.
    pub verifier: Option<Arc<dyn PeerVerifier>>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

impl PeerTls {
    /// The server side: present our certificate, require one from the cluster CA.
    pub(crate) fn server_config(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&self.ca_pem))
    }

    fn client_config(&self, host: &str) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(tonic::transport::Identity::from_pem(
                &self.cert_pem,
                &self.key_pem,
            ))
            .domain_name(host.to_owned())
    }
}

/// Connections to peers by address, shared by Raft replication, forwarded writes and
/// read-index requests (HTTP/2 multiplexes them): openraft asks for a new client for every
/// leadership check, and a fresh connection (and TLS handshake) each time would dominate
/// latency.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerConnections {
    tls: Option<Arc<PeerTls>>,
    /// Advertised address → the address dialled instead (`NodeConfig::peer_routes`).
    routes: Arc<BTreeMap<String, String>>,
    channels: Arc<std::sync::Mutex<BTreeMap<String, RaftClient<Channel>>>>,
}

impl PeerConnections {
    /// Connections made with `tls` (plaintext when `None`), dialling a peer advertised at
    /// an address `routes` names at the address it maps to.
    pub(crate) fn new(tls: Option<PeerTls>, routes: BTreeMap<String, String>) -> Self {
        PeerConnections {
            tls: tls.map(Arc::new),
            routes: Arc::new(routes),
            channels: Arc::default(),
        }
    }

    /// A lazily connected client of the peer at `addr`, reused across calls.
    pub(crate) fn client(
        &self,
        addr: &str,
    ) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let dialled = self.routes.get(addr).map_or(addr, String::as_str);
        let client = connect(dialled, host_of(addr), self.tls.as_deref())?;
        channels.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// Builds a [`GrpcNetwork`] per peer over the member's shared [`PeerConnections`].
#[derive(Debug, Clone)]
pub struct GrpcNetworkFactory {
    self_id: NodeId,
    cluster: Arc<str>,
    faults: NetworkFaults,
    peers: PeerConnections,
}

impl GrpcNetworkFactory {
    /// A factory for member `self_id` of `cluster`, honouring `faults`.
    pub(crate) fn new(
        self_id: NodeId,
        cluster: &str,
        faults: NetworkFaults,
        peers: PeerConnections,
    ) -> Self {
        GrpcNetworkFactory {
            self_id,
            cluster: cluster.into(),
            faults,
            peers,
        }
    }

    fn client(&self, addr: &str) -> Result<RaftClient<Channel>, String> {
        self.peers.client(addr).map_err(|e| e.to_string())
    }
}

/// The host part of `addr` (`host:port`, `[v6]:port`).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_matches(['[', ']'])
}

/// Opens a lazily connected channel to a peer's Raft service at `addr`, over mutual TLS
/// verifying the peer's certificate names `host` when given.
fn connect(
    addr: &str,
    host: &str,
    tls: Option<&PeerTls>,
) -> Result<RaftClient<Channel>, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.client_config(host))?;
    }
    Ok(RaftClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(crate::network::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::network::MAX_MESSAGE_BYTES))
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let client = self.client(&node.addr);
        GrpcNetwork {
            self_id: self.self_id,
            cluster: self.cluster.clone(),
            target,
            client,
            faults: self.faults.clone(),
        }
    }
}

/// The connection from one member to one peer.
pub struct GrpcNetwork {
    self_id: NodeId,
    cluster: Arc<str>,
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
    faults: NetworkFaults,
}

impl GrpcNetwork {
    /// The client for this peer, unless the peer is cut off by a fault switch or could not
    /// be dialled.
    fn reachable_client(&self) -> Result<RaftClient<Channel>, Unreachable<TypeConfig>> {
        if self.faults.blocks(self.self_id, self.target) {
            return Err(Unreachable::from_string("isolated by NetworkFaults"));
        }
        self.client.clone().map_err(Unreachable::from_string)
    }

    async fn call<Resp, F, Fut>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        data: Vec<u8>,
        send: F,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Resp: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let client = self.reachable_client()?;
        let ttl = option.hard_ttl();
        let request = addressed(RaftPayload { data }, &self.cluster, self.target);
        let reply = match tokio::time::timeout(ttl, send(client, request)).await {
            Err(_) => return Err(RPCError::Timeout(self.timeout(action, ttl))),
            Ok(Err(status)) => return Err(status_error(&status)),
            Ok(Ok(resp)) => resp.into_inner().data,
        };
        let decoded: Result<Resp, RaftError<TypeConfig>> = from_bytes(&reply)
            .map_err(|s| RPCError::Network(NetworkError::from_string(s.message())))?;
        // The only error a peer's Raft answers these with is that it has stopped.
        decoded.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn timeout(&self, action: RPCTypes, ttl: Duration) -> Timeout<TypeConfig> {
        timed_out(action, self.self_id, self.target, ttl)
    }

    /// Streams `snapshot`: first its (vote, meta, length in bytes), then the file in chunks.
    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.reachable_client()?;
        let mut file: SnapshotData = snapshot.snapshot;
        let length = file
            .metadata()
            .await
            .map_err(|e| NetworkError::from_string(format!("read snapshot file: {e}")))?
            .len();
        let header = to_bytes(&(vote, snapshot.meta.clone(), length))
            .map_err(|s| NetworkError::from_string(s.message()))?;
        file.rewind()
            .await
            .map_err(|e| NetworkError::from_string(format!("read snapshot file: {e}")))?;
        let chunks =
            futures::stream::unfold((Some(header), Some(file)), |(header, file)| async move {
                if let Some(data) = header {
                    return Some((RaftPayload { data }, (None, file)));
                }
                let mut file = file?;
                let mut data = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                match file.read(&mut data).await {
                    Ok(0) => None,
                    Ok(n) => {
                        data.truncate(n);
                        Some((RaftPayload { data }, (None, Some(file))))
                    }
                    Err(e) => {
                        // Ending the stream early makes the receiver refuse a short file.
                        tracing::warn!(error = %e, "reading the snapshot file failed");
                        None
                    }
                }
            });
        let mut request = tonic::Request::new(chunks);
        address(request.metadata_mut(), &self.cluster, self.target);
        let reply = client
            .install_snapshot(request)
            .await
            .map_err(|status| match status_error(&status) {
                RPCError::Unreachable(e) => StreamingError::Unreachable(e),
                RPCError::Timeout(e) => StreamingError::Timeout(e),
                RPCError::Network(e) => StreamingError::Network(e),
                RPCError::RemoteError(e) => StreamingError::Network(NetworkError::new(&e)),
            })?
            .into_inner()
            .data;
        let decoded: Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> =
            from_bytes(&reply).map_err(|s| NetworkError::from_string(s.message()))?;
        decoded.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}

/// A transport failure as openraft's error: unreachable (back off) or a network error.
fn status_error(status: &tonic::Status) -> RPCError<TypeConfig> {
    let message = format!("{}: {}", status.code(), status.message());
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
            RPCError::Unreachable(Unreachable::from_string(message))
        }
        _ => RPCError::Network(NetworkError::from_string(message)),
    }
}

/// `payload` as a request for member `target` of `cluster`: the peer refuses it if it is not
/// that member (a reused address answered by another cluster's member must not look like a
/// follower whose log went back).
fn addressed(payload: RaftPayload, cluster: &str, target: NodeId) -> tonic::Request<RaftPayload> {
    let mut request = tonic::Request::new(payload);
    address(request.metadata_mut(), cluster, target);
    request
}

fn address(metadata: &mut tonic::metadata::MetadataMap, cluster: &str, target: NodeId) {
    if let Ok(value) = cluster.parse() {
        metadata.insert(crate::network::CLUSTER_HEADER, value);
    }
    metadata.insert(crate::network::TARGET_HEADER, target.into());
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, RPCError<TypeConfig>> {
    to_bytes(v).map_err(|s| RPCError::Network(NetworkError::from_string(s.message())))
}

/// A reply to a streamed append must come within this long of its request, however short
/// openraft's heartbeat-based deadline is: a busy follower is not a dead one (a dead process
/// resets the connection at once; heartbeats, sent apart, keep watching leadership).
const STREAM_READ_DEADLINE_FLOOR: Duration = Duration::from_secs(1);

/// Opens a replication stream to one peer once there is a first request to send.
struct StreamOpener {
    client: Result<RaftClient<Channel>, Unreachable<TypeConfig>>,
    cluster: Arc<str>,
    faults: NetworkFaults,
    from: NodeId,
    to: NodeId,
    setup: Duration,
    read_deadline: Duration,
}

/// Where a replication stream is: not yet opened, reading replies, or over.
enum StreamPhase<S> {
    Open(Box<(StreamOpener, S)>),
    Replies(Box<ReplyState>),
    Over,
}

impl StreamOpener {
    /// Sends `first`, then the rest of `input`, over a new stream (ending it early if a fault
    /// switch cuts the peer off); returns the reply side.
    async fn open<S>(
        self,
        first: AppendEntriesRequest<TypeConfig>,
        input: S,
    ) -> Result<ReplyState, RPCError<TypeConfig>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let mut client = self.client?;
        if self.faults.blocks(self.from, self.to) {
            return Err(RPCError::Unreachable(Unreachable::from_string(
                "isolated by NetworkFaults",
            )));
        }
        let (faults, from, to) = (self.faults.clone(), self.from, self.to);
        // When each request still waiting for its reply was sent, oldest first.
        let sent = Arc::new(std::sync::Mutex::new(VecDeque::<Instant>::new()));
        let sending = sent.clone();
        // The requests end when the reply side is dropped (openraft ended the session):
        // otherwise the transport would keep the stream open, waiting for requests that
        // never come, and the peer's server could not shut down gracefully.
        let (reader_alive, reader_gone) = tokio::sync::oneshot::channel::<()>();
        let outgoing = futures::stream::once(futures::future::ready(first))
            .chain(input)
            .take_until(reader_gone)
            .take_while(move |_| futures::future::ready(!faults.blocks(from, to)))
            .filter_map(move |req| {
                let payload = match to_bytes(&req) {
                    Ok(data) => Some(RaftPayload { data }),
                    Err(e) => {
                        tracing::warn!(error = %e.message(), "cannot encode an append");
                        None
                    }
                };
                if payload.is_some() {
                    lock(&sending).push_back(Instant::now());
                }
                futures::future::ready(payload)
            });
        let mut request = tonic::Request::new(outgoing);
        address(request.metadata_mut(), &self.cluster, self.to);
        let replies = match tokio::time::timeout(self.setup, client.stream_append(request)).await {
            Err(_) => {
                return Err(RPCError::Timeout(timed_out(
                    RPCTypes::AppendEntries,
                    self.from,
                    self.to,
                    self.setup,
                )))
            }
            Ok(Err(status)) => return Err(status_error(&status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        Ok(ReplyState {
            replies,
            _reader_alive: reader_alive,
            sent,
            read_deadline: self.read_deadline,
            faults: self.faults,
            from,
            to,
            done: false,
        })
    }
}

async fn next_stream_item<S>(phase: StreamPhase<S>) -> Option<(ReplyItem, StreamPhase<S>)>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let state = match phase {
        StreamPhase::Over => return None,
        StreamPhase::Replies(state) => *state,
        StreamPhase::Open(opening) => {
            let (opener, mut input) = *opening;
            let first = input.next().await?;
            match opener.open(first, input).await {
                Ok(state) => state,
                Err(e) => return Some((Err(e), StreamPhase::Over)),
            }
        }
    };
    next_reply(state)
        .await
        .map(|(item, state)| (item, StreamPhase::Replies(Box::new(state))))
}

/// The reply side of one replication stream.
struct ReplyState {
    replies: tonic::Streaming<RaftPayload>,
    /// Dropped with this state, which ends the request side of the stream.
    _reader_alive: tokio::sync::oneshot::Sender<()>,
    sent: Arc<std::sync::Mutex<VecDeque<Instant>>>,
    read_deadline: Duration,
    faults: NetworkFaults,
    from: NodeId,
    to: NodeId,
    done: bool,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type ReplyItem = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// The next reply of a replication stream, or its end: a reply overdue, the peer cut off,
/// a transport error or a stopped peer ends it with an error.
async fn next_reply(mut state: ReplyState) -> Option<(ReplyItem, ReplyState)> {
    if state.done {
        return None;
    }
    loop {
        if state.faults.blocks(state.from, state.to) {
            state.done = true;
            let e = Unreachable::from_string("isolated by NetworkFaults");
            return Some((Err(RPCError::Unreachable(e)), state));
        }
        let oldest = lock(&state.sent).front().copied();
        // With nothing awaited, look again after a while: a request may have gone out since.
        let deadline = oldest.map_or_else(
            || tokio::time::Instant::now() + state.read_deadline,
            |at| tokio::time::Instant::from_std(at) + state.read_deadline,
        );
        let next = match tokio::time::timeout_at(deadline, state.replies.next()).await {
            Ok(next) => next,
            Err(_) if oldest.is_none() => continue,
            Err(_) => {
                state.done = true;
                let e = timed_out(
                    RPCTypes::AppendEntries,
                    state.from,
                    state.to,
                    state.read_deadline,
                );
                return Some((Err(RPCError::Timeout(e)), state));
            }
        };
        let item = match next {
            None => return None,
            Some(Err(status)) => Err(status_error(&status)),
            Some(Ok(payload)) => {
                lock(&state.sent).pop_front();
                match from_bytes::<Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>>(
                    &payload.data,
                ) {
                    Ok(Ok(result)) => Ok(result),
                    Ok(Err(fatal)) => Err(RPCError::Unreachable(Unreachable::new(&fatal))),
                    Err(s) => Err(RPCError::Network(NetworkError::from_string(s.message()))),
                }
            }
        };
        state.done = item.is_err();
        return Some((item, state));
    }
}

impl RaftNetworkV2<TypeConfig> for GrpcNetwork {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let data = encode(&rpc)?;
        self.call(
            RPCTypes::AppendEntries,
            &option,
            data,
            |mut c, p| async move { c.append_entries(p).await },
        )
        .await
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        // Nothing happens until openraft polls the replies: it then produces the first request
        // (serving its back-off after a failed stream there, so a peer that refuses streams
        // is not asked again in a tight loop) and keeps watching for cancellation meanwhile.
        let opener = StreamOpener {
            client: self.reachable_client(),
            cluster: self.cluster.clone(),
            faults: self.faults.clone(),
            from: self.self_id,
            to: self.target,
            setup: option.soft_ttl(),
            read_deadline: option.hard_ttl().max(STREAM_READ_DEADLINE_FLOOR),
        };
        let replies = futures::stream::unfold(
            StreamPhase::Open(Box::new((opener, input))),
            next_stream_item,
        );
        Box::pin(futures::future::ready(Ok(
            Box::pin(replies) as BoxStream<'s, ReplyItem>
        )))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let data = encode(&rpc)?;
        self.call(RPCTypes::Vote, &option, data, |mut c, p| async move {
            c.vote(p).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let data = encode(&rpc)?;
        self.call(RPCTypes::Vote, &option, data, |mut c, p| async move {
            c.pre_vote(p).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // openraft's snapshot timeout is per chunk (as it was when it sent the chunks itself):
        // allow it once for the header and once per chunk of the file.
        let bytes = snapshot.snapshot.metadata().await.map_or(0, |m| m.len());
        let chunks = bytes.div_ceil(SNAPSHOT_CHUNK_BYTES as u64);
        let ttl = option
            .hard_ttl()
            .saturating_mul(u32::try_from(chunks.saturating_add(1)).unwrap_or(u32::MAX));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = tokio::time::timeout(ttl, self.send_snapshot(vote, snapshot)) => match sent {
                Ok(result) => result,
                Err(_) => Err(StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, ttl))),
            },
        }
    }
}

/// The error of an RPC from `from` to `target` that got no answer within `ttl`.
fn timed_out(action: RPCTypes, from: NodeId, target: NodeId, ttl: Duration) -> Timeout<TypeConfig> {
    Timeout {
        action,
        id: from,
        target,
        timeout: ttl,
    }
}
