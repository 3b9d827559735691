//! The client side of the internal Raft service: openraft's `RaftNetworkFactory` over tonic.
//!
//! Owns connections to peers, RPC deadlines, the mapping of transport failures to openraft's
//! `RPCError`s, and [`NetworkFaults`], the switch tests use to cut members off. It must not
//! retry on its own: openraft decides when to resend.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

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

/// Mutual TLS between members: this member's certificate and key, and the CA whose
/// certificates peers must present. A peer with a certificate from another CA cannot
/// join: the handshake fails both ways.
#[derive(Clone)]
pub struct PeerTls {
    /// This member's certificate, PEM (valid for client and server use).
    pub cert_pem: String,
    /// This member's private key, PEM.
    pub key_pem: String,
    /// The cluster CA, PEM.
    pub ca_pem: String,
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
    channels: Arc<std::sync::Mutex<BTreeMap<String, RaftClient<Channel>>>>,
}

impl PeerConnections {
    /// Connections made with `tls` (plaintext when `None`).
    pub(crate) fn new(tls: Option<PeerTls>) -> Self {
        PeerConnections {
            tls: tls.map(Arc::new),
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
        let client = connect(addr, self.tls.as_deref())?;
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

/// Opens a lazily connected channel to a peer's Raft service, over mutual TLS when given.
fn connect(
    addr: &str,
    tls: Option<&PeerTls>,
) -> Result<RaftClient<Channel>, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(host, _)| host)
            .trim_matches(['[', ']']);
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
        Timeout {
            action,
            id: self.self_id,
            target: self.target,
            timeout: ttl,
        }
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
