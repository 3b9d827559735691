//! The client side of the internal Raft service: openraft's `RaftNetworkFactory` over tonic.
//!
//! Owns connections to peers, RPC deadlines, the mapping of transport failures to openraft's
//! `RPCError`s, and [`NetworkFaults`], the switch tests use to cut members off. It must not
//! retry on its own: openraft decides when to resend.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Timeout;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;
use openraft::RPCTypes;
use rafter_proto::raft::raft_client::RaftClient;
use rafter_proto::raft::RaftPayload;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::network::codec::from_bytes;
use crate::network::codec::to_bytes;
use crate::types::NodeId;
use crate::types::TypeConfig;

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

#[derive(Debug)]
struct Msg(String);

impl Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Msg {}

impl GrpcNetwork {
    async fn call<Resp, E, F, Fut>(
        &self,
        action: RPCTypes,
        option: &RPCOption,
        data: Vec<u8>,
        send: F,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        E: std::error::Error + DeserializeOwned,
        Resp: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        if self.faults.blocks(self.self_id, self.target) {
            return Err(RPCError::Unreachable(Unreachable::new(&Msg(
                "isolated by NetworkFaults".into(),
            ))));
        }
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Msg(e.clone())))),
        };
        let ttl = option.hard_ttl();
        let request = addressed(RaftPayload { data }, &self.cluster, self.target);
        let reply = match tokio::time::timeout(ttl, send(client, request)).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.self_id,
                    target: self.target,
                    timeout: ttl,
                }))
            }
            Ok(Err(status)) => {
                let err = Msg(format!("{}: {}", status.code(), status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded => {
                        RPCError::Unreachable(Unreachable::new(&err))
                    }
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
            Ok(Ok(resp)) => resp.into_inner().data,
        };
        let decoded: Result<Resp, RaftError<NodeId, E>> = from_bytes(&reply)
            .map_err(|s| RPCError::Network(NetworkError::new(&Msg(s.message().to_string()))))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// `payload` as a request for member `target` of `cluster`: the peer refuses it if it is not
/// that member (a reused address answered by another cluster's member must not look like a
/// follower whose log went back).
fn addressed(payload: RaftPayload, cluster: &str, target: NodeId) -> tonic::Request<RaftPayload> {
    let mut request = tonic::Request::new(payload);
    let metadata = request.metadata_mut();
    if let Ok(value) = cluster.parse() {
        metadata.insert(crate::network::CLUSTER_HEADER, value);
    }
    metadata.insert(crate::network::TARGET_HEADER, target.into());
    request
}

// The error type is openraft's RPCError, fixed by the RaftNetwork trait.
#[allow(clippy::result_large_err)]
fn encode<T: serde::Serialize, E: std::error::Error>(
    v: &T,
) -> Result<Vec<u8>, RPCError<NodeId, BasicNode, E>> {
    to_bytes(v).map_err(|s| RPCError::Network(NetworkError::new(&Msg(s.message().to_string()))))
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let data = encode(&rpc)?;
        self.call(
            RPCTypes::AppendEntries,
            &option,
            data,
            |mut c, p| async move { c.append_entries(p).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let data = encode(&rpc)?;
        self.call(
            RPCTypes::InstallSnapshot,
            &option,
            data,
            |mut c, p| async move { c.install_snapshot(p).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let data = encode(&rpc)?;
        self.call(RPCTypes::Vote, &option, data, |mut c, p| async move {
            c.vote(p).await
        })
        .await
    }
}
