//! One master: the raft-store member, the API gateway on top of it, and the controller
//! actors (on their own thread; they act only while this master leads), with the PKI
//! they need.
//!
//! ```text
//!  pki dir ──► CA ──► serving cert ─┐
//!  data dir ──► raft-store Node ────┼──► RaftKv ──► Registry ──► gRPC (TLS) on the client port
//!  initial cluster ─► initialize ───┘        └──► system namespaces, member address
//! ```
//!
//! Owns start-up order and shutdown of one master process. It reads and writes the PKI
//! files it is pointed at and nothing else outside the data dir, plus the encryption
//! configuration and audit policy it reads and the audit log it appends to. Files holding keys or cluster data are created 0600 in 0700
//! directories (`rafter_client::private_files`); a key file (CA key, token file, encryption
//! configuration) its group or others may read makes the master refuse to start, naming
//! the file.

use raft_store::WatchReceiver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use raft_store::{Node, NodeConfig};
use rafter_proto::Object;

use api_gateway::audit::{AuditLog, Auditor, Policy as AuditPolicy};
use api_gateway::{
    authorizer, serve_with, AuthzCache, CacheGuard, EncryptionConfig, Registry, RegistryError,
    ServeError, ServeOptions, ServerTls, ServiceRanges, TokenFile, Transformer, WatchCache,
    API_SERVICE,
};
use rafter_client::private_files::{
    create_private_dir, read_private, write_private as write_private_file, PrivateFileError,
};
use rafter_client::{CertRequest, CertUsage, ClusterCa, PkiError, DEFAULT_CERT_VALIDITY};
use rafter_proto::well_known::{MASTERS_GROUP, PEERS_GROUP};

use crate::raft_kv::RaftKv;

/// Namespaces every cluster has: the system ones (`SYSTEM_NAMESPACES`) plus the node lease
/// namespace.
const CLUSTER_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Revisions of history a master keeps by default; older ones are compacted away, as
/// kube-apiserver has etcd compacted. A watch or informer that falls further behind than
/// this gets a "compacted" answer and lists again.
pub const DEFAULT_HISTORY_RETENTION: u64 = 100_000;

/// Writes the scheduler keeps in flight at once by default.
pub const DEFAULT_SCHEDULER_WRITES_IN_FLIGHT: usize = 256;

/// Admits to a member's Raft port only certificates in the peers group, which masters
/// alone are issued: nodes' and users' certificates of the same CA are refused.
struct MembersOnly;

impl raft_store::PeerVerifier for MembersOnly {
    fn verify(&self, cert_der: &[u8]) -> Result<(), String> {
        let identity = rafter_client::cert_identity(cert_der).map_err(|e| e.to_string())?;
        if identity.groups.iter().any(|g| g == PEERS_GROUP) {
            Ok(())
        } else {
            Err(format!(
                "{} (groups {:?}) is not in {PEERS_GROUP}",
                identity.user, identity.groups
            ))
        }
    }
}

/// How to run one master.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// The member id, unique in the cluster, non-zero.
    pub id: u64,
    /// Where the store keeps its data.
    pub data_dir: PathBuf,
    /// Where the CA and this master's certificates live.
    pub pki_dir: PathBuf,
    /// The API (client) listener.
    pub client_addr: SocketAddr,
    /// The address clients reach this master's API at (defaults to `client_addr`).
    pub advertise_client: Option<String>,
    /// The Kubernetes REST API (stock kubectl) listener, with the same TLS and callers
    /// as the gRPC one; `None`: gRPC only.
    pub rest_addr: Option<SocketAddr>,
    /// The Raft (peer) listener.
    pub peer_addr: SocketAddr,
    /// The address peers reach this master at (defaults to `peer_addr`).
    pub advertise_peer: Option<String>,
    /// Member id → peer address of the cluster's first members.
    pub initial_cluster: BTreeMap<u64, String>,
    /// Peer addresses dialled instead of members' advertised ones (advertised → dialled),
    /// as `NodeConfig::peer_routes`: a member reached through a proxy or tunnel from here.
    pub peer_routes: BTreeMap<String, String>,
    /// Create the cluster (on the first start of one master only).
    pub init: bool,
    /// Serve plaintext instead of TLS (local development only).
    pub insecure: bool,
    /// Static bearer tokens (kube-apiserver's `--token-auth-file` format).
    pub token_file: Option<PathBuf>,
    /// Raft timing: heartbeat interval.
    pub heartbeat: Duration,
    /// Revisions of history kept; older ones are compacted automatically. `None` keeps all.
    pub history_retention: Option<u64>,
    /// Free bytes kept on the data disk (`--disk-reserve-mb`): while it has less, this
    /// master refuses writes as leader (RESOURCE_EXHAUSTED naming it), and below a quarter
    /// of it the master stops. 0 disables both.
    pub disk_reserve_bytes: u64,
    /// How many `Scheduled` events the scheduler may write (`--scheduled-events-per-second`,
    /// `--scheduled-events-burst`); `None`: one per pod bound, as Kubernetes writes them.
    pub scheduled_events: Option<actors::EventRate>,
    /// Writes (Bindings and their events) the scheduler keeps in flight at once
    /// (`--scheduler-writes-in-flight`, [`DEFAULT_SCHEDULER_WRITES_IN_FLIGHT`]).
    pub scheduler_writes_in_flight: usize,
    /// The watch cache lists and watches are served from (`--watch-cache-history-mb`,
    /// `--no-watch-cache`); `None` reads every list and watch from the store.
    pub watch_cache: Option<api_gateway::WatchCacheConfig>,
    /// Seats and fair queues of mutating requests (`--max-mutating-requests-inflight`,
    /// `--max-queued-requests-per-user`); `None`: every request is served at once.
    pub flow_control: Option<api_gateway::FlowControlConfig>,
    /// Where the controllers take nodes' pod CIDRs from (`--cluster-cidr`); `None`: no
    /// allocation.
    pub cluster_cidr: Option<actors::ClusterCidr>,
    /// Where Services' ClusterIPs and NodePorts come from (`--service-cluster-ip-range`,
    /// `--service-node-port-range`); every master of a cluster must be given the same.
    pub service_ranges: ServiceRanges,
    /// The cluster DNS Service (`kube-system/kube-dns`) the masters create: its ClusterIP
    /// (`--cluster-dns`; `None`: the tenth address of the service range, as kubeadm's
    /// 10.96.0.10) and the cluster domain it serves (`--cluster-domain`).
    pub cluster_dns: ClusterDnsConfig,
    /// The `EncryptionConfiguration` file (`--encryption-provider-config`); `None` stores
    /// every object as it is.
    pub encryption_config: Option<PathBuf>,
    /// The audit log (`--audit-log-path` ...); `None` records nothing.
    pub audit: Option<AuditConfig>,
    /// Elect a new leader as soon as the old one's peer port refuses connections (its
    /// process is gone), as `NodeConfig::fast_failover`; `--no-fast-failover` turns it off.
    pub fast_failover: bool,
}

/// The cluster DNS Service a master creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDnsConfig {
    /// Its ClusterIP; `None`: the tenth address of the service range.
    pub ip: Option<std::net::Ipv4Addr>,
    /// The cluster domain (recorded on the Service as `rafter.io/cluster-domain`).
    pub domain: String,
}

impl Default for ClusterDnsConfig {
    fn default() -> ClusterDnsConfig {
        ClusterDnsConfig {
            ip: None,
            domain: "cluster.local".to_owned(),
        }
    }
}

/// Where and what a master's audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The log file (`--audit-log-path`), created 0600; its directory must exist.
    pub log_path: PathBuf,
    /// An `audit.k8s.io/v1` Policy file (`--audit-policy-file`); `None` records every call
    /// at level Metadata.
    pub policy_file: Option<PathBuf>,
    /// The size in megabytes past which the log is rotated (`--audit-log-maxsize`).
    pub max_size_mb: u64,
    /// How many rotated files are kept (`--audit-log-maxbackup`).
    pub max_backups: usize,
}

impl AuditConfig {
    /// The log at `log_path`, every call at level Metadata, rotated at 100 MB, 10 backups.
    pub fn new(log_path: PathBuf) -> AuditConfig {
        AuditConfig {
            log_path,
            policy_file: None,
            max_size_mb: 100,
            max_backups: 10,
        }
    }
}

/// Why a master could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The PKI files are missing, unreadable or invalid.
    #[error("pki: {0}")]
    Pki(String),
    /// The token file is missing or malformed.
    #[error("token file {path}: {detail}")]
    Tokens {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The encryption configuration is unreadable or invalid.
    #[error("encryption provider config {path}: {detail}")]
    Encryption {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The audit policy is unreadable or invalid, or the audit log cannot be opened.
    #[error("audit: {path}: {detail}")]
    Audit {
        /// The policy or log file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file that holds keys or cluster data is open to others, or could not be created
    /// privately.
    #[error(transparent)]
    Private(#[from] PrivateFileError),
    /// The store member failed to start or run.
    #[error("store: {0}")]
    Store(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {detail}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        detail: String,
    },
    /// The API server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The controller thread could not start.
    #[error(transparent)]
    Controllers(#[from] actors::RuntimeError),
}

impl From<PkiError> for MasterError {
    fn from(e: PkiError) -> MasterError {
        MasterError::Pki(e.to_string())
    }
}

/// The file names inside the PKI directory.
pub mod pki_files {
    /// The cluster CA certificate (what clients trust).
    pub const CA_CERT: &str = "ca.crt";
    /// The cluster CA key (masters only).
    pub const CA_KEY: &str = "ca.key";
    /// The admin client certificate written at `--init`.
    pub const ADMIN_CERT: &str = "admin.crt";
    /// The admin client key written at `--init`.
    pub const ADMIN_KEY: &str = "admin.key";
    /// The static token file written at `--init`.
    pub const TOKENS: &str = "tokens.csv";
    /// The key ServiceAccount tokens are signed with (ECDSA P-256, every master the same),
    /// written at `--init`.
    pub const SERVICE_ACCOUNT_KEY: &str = "sa.key";
}

fn read(path: &Path) -> Result<String, MasterError> {
    std::fs::read_to_string(path).map_err(|e| MasterError::Pki(format!("{}: {e}", path.display())))
}

fn write_private(path: &Path, text: &str) -> Result<(), MasterError> {
    Ok(write_private_file(path, text.as_bytes())?)
}

/// Reads the encryption configuration (refused when others may read it) into the
/// transformer the registry applies.
pub fn load_encryption(path: &Path) -> Result<Transformer, MasterError> {
    let text = read_private(path)?;
    let invalid = |detail: String| MasterError::Encryption {
        path: path.to_owned(),
        detail,
    };
    let config = EncryptionConfig::parse(&text).map_err(|e| invalid(e.to_string()))?;
    Transformer::new(&config).map_err(|e| invalid(e.to_string()))
}

/// Reads the audit policy (every call at level Metadata without one) and opens the log.
pub fn load_audit(config: &AuditConfig) -> Result<Auditor, MasterError> {
    let policy = match &config.policy_file {
        Some(path) => {
            let invalid = |detail: String| MasterError::Audit {
                path: path.clone(),
                detail,
            };
            let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
            AuditPolicy::parse(&text).map_err(|e| invalid(e.to_string()))?
        }
        None => AuditPolicy::metadata_for_all(),
    };
    let max_bytes = config.max_size_mb.max(1).saturating_mul(1024 * 1024);
    let log = AuditLog::open(&config.log_path, max_bytes, config.max_backups).map_err(|e| {
        MasterError::Audit {
            path: config.log_path.clone(),
            detail: e.to_string(),
        }
    })?;
    Ok(Auditor::new(log, policy))
}

/// Writes a new encryption configuration to `path` (0600): Secrets encrypted with one
/// fresh AES-GCM key named `key1`, unencrypted values still readable. What `rafter up`
/// turns encryption at rest on with.
pub fn write_generated_encryption_config(path: &Path) -> Result<(), MasterError> {
    let text = EncryptionConfig::generate_yaml(&["secrets"], "key1", &api_gateway::generate_key());
    Ok(write_private_file(path, text.as_bytes())?)
}

/// Loads the cluster CA from `pki_dir`, creating it (with an admin certificate and token)
/// when `init` and there is none yet.
pub fn load_or_create_ca(pki_dir: &Path, init: bool) -> Result<ClusterCa, MasterError> {
    let (cert_path, key_path) = (
        pki_dir.join(pki_files::CA_CERT),
        pki_dir.join(pki_files::CA_KEY),
    );
    if cert_path.exists() && key_path.exists() {
        return Ok(ClusterCa::from_pem(
            &read(&cert_path)?,
            &read_private(&key_path)?,
        )?);
    }
    if !init {
        return Err(MasterError::Pki(format!(
            "no cluster CA in {}: copy ca.crt and ca.key from the first master there, or start the first master with --init",
            pki_dir.display()
        )));
    }
    create_private_dir(pki_dir)?;
    let ca = ClusterCa::generate("rafter")?;
    // The CA key is written last, each file whole (written aside, then renamed): masters
    // started beside this one wait for the key and then find every file complete.
    write_private(&cert_path, ca.cert_pem())?;
    let admin = ca.issue(&CertRequest {
        common_name: "admin".into(),
        organizations: vec![MASTERS_GROUP.to_owned()],
        subject_alt_names: vec![],
        usage: CertUsage::Client,
        validity: DEFAULT_CERT_VALIDITY,
    })?;
    write_private(&pki_dir.join(pki_files::ADMIN_CERT), &admin.cert_pem)?;
    write_private(&pki_dir.join(pki_files::ADMIN_KEY), &admin.key_pem)?;
    let token: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    write_private(
        &pki_dir.join(pki_files::TOKENS),
        &format!("{token},admin,admin,\"{MASTERS_GROUP}\"\n"),
    )?;
    write_service_account_key(pki_dir)?;
    write_private(&key_path, ca.key_pem())?;
    tracing::info!(dir = %pki_dir.display(), "created the cluster CA and admin credentials");
    Ok(ca)
}

fn write_service_account_key(pki_dir: &Path) -> Result<(), MasterError> {
    let pem = api_gateway::generate_signing_key().map_err(|e| MasterError::Pki(e.to_string()))?;
    write_private(&pki_dir.join(pki_files::SERVICE_ACCOUNT_KEY), &pem)
}

/// Loads the ServiceAccount token signing key from `pki_dir`. A cluster made before the
/// key existed gets one from its `--init` master; the others must find it there.
pub fn load_or_create_service_account_key(
    pki_dir: &Path,
    init: bool,
) -> Result<api_gateway::TokenKeys, MasterError> {
    let path = pki_dir.join(pki_files::SERVICE_ACCOUNT_KEY);
    if !path.exists() {
        if !init {
            return Err(MasterError::Pki(format!(
                "no service account signing key {}: copy sa.key from the first master there, or start the first master with --init",
                path.display()
            )));
        }
        write_service_account_key(pki_dir)?;
    }
    api_gateway::TokenKeys::from_pem(&read_private(&path)?)
        .map_err(|e| MasterError::Pki(format!("{}: {e}", path.display())))
}

fn host_of(address: &str) -> String {
    address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_matches(['[', ']'])
        .to_owned()
}

/// A running master. Dropping it does not stop it: call [`Master::shutdown`].
pub struct Master {
    node: Node,
    client_addr: SocketAddr,
    rest_addr: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), ServeError>>,
    controllers: Option<actors::RuntimeThread>,
    /// Keeps the authorization cache the gateway and the controllers share current.
    _authz_cache: CacheGuard,
}

impl Master {
    /// Starts the master and returns once its API is listening. The store may still be
    /// electing a leader; calls are served as soon as it has one.
    pub async fn start(config: MasterConfig) -> Result<Master, MasterError> {
        let pki_dir = config.pki_dir.clone();
        let init = config.init;
        let (ca, service_account_keys) = tokio::task::spawn_blocking(move || {
            let ca = load_or_create_ca(&pki_dir, init)?;
            let keys = load_or_create_service_account_key(&pki_dir, init)?;
            Ok::<_, MasterError>((ca, keys))
        })
        .await
        .map_err(|e| MasterError::Pki(e.to_string()))??;

        let token_path = config.token_file.clone().or_else(|| {
            let default = config.pki_dir.join(pki_files::TOKENS);
            default.exists().then_some(default)
        });
        let tokens = match &token_path {
            Some(path) => {
                let text = read_private(path)?;
                TokenFile::parse(&text).map_err(|e| MasterError::Tokens {
                    path: path.clone(),
                    detail: e.to_string(),
                })?
            }
            None => TokenFile::default(),
        };

        let transformer = match &config.encryption_config {
            Some(path) => {
                let transformer = load_encryption(path)?;
                tracing::info!(config = %path.display(), ?transformer, "encryption at rest on");
                transformer
            }
            None => Transformer::identity(),
        };
        let auditor = match &config.audit {
            Some(audit) => {
                let auditor = load_audit(audit)?;
                tracing::info!(log = %audit.log_path.display(), policy = ?audit.policy_file, "audit log on");
                Some(Arc::new(auditor))
            }
            None => None,
        };
        create_private_dir(&config.data_dir)?;

        let client_listener = tokio::net::TcpListener::bind(config.client_addr)
            .await
            .map_err(|e| MasterError::Listen {
                addr: config.client_addr,
                detail: e.to_string(),
            })?;
        let client_addr = client_listener
            .local_addr()
            .map_err(|e| MasterError::Listen {
                addr: config.client_addr,
                detail: e.to_string(),
            })?;
        let rest_listener = match config.rest_addr {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                MasterError::Listen {
                    addr,
                    detail: e.to_string(),
                }
            })?),
            None => None,
        };
        let rest_addr = match &rest_listener {
            Some(listener) => Some(listener.local_addr().map_err(|e| MasterError::Listen {
                addr: config.client_addr,
                detail: e.to_string(),
            })?),
            None => None,
        };
        let advertise_client = config
            .advertise_client
            .clone()
            .unwrap_or_else(|| client_addr.to_string());

        // Three identities, each for one use: the API's serving certificate (no client
        // identity: a leaked serving key is no admin), the Raft peer certificate (the only
        // one the members' Raft ports accept) and the client certificate agents are
        // dialled with (agents let only system:masters read logs and metrics).
        let hosts = {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let advertised_peer = config
                .advertise_peer
                .clone()
                .unwrap_or_else(|| config.peer_addr.to_string());
            for host in [host_of(&advertise_client), host_of(&advertised_peer)] {
                if !names.contains(&host) {
                    names.push(host);
                }
            }
            names
        };
        let member_name = format!("rafter-master-{}", config.id);
        let serving = ca.issue(&CertRequest {
            common_name: member_name.clone(),
            organizations: Vec::new(),
            subject_alt_names: hosts.clone(),
            usage: CertUsage::Server,
            validity: DEFAULT_CERT_VALIDITY,
        })?;
        let peer = ca.issue(&CertRequest {
            common_name: member_name.clone(),
            organizations: vec![PEERS_GROUP.to_owned()],
            subject_alt_names: hosts,
            usage: CertUsage::ServerAndClient,
            validity: DEFAULT_CERT_VALIDITY,
        })?;
        let agent_client = ca.issue(&CertRequest {
            common_name: format!("{member_name}:agent-client"),
            organizations: vec![MASTERS_GROUP.to_owned()],
            subject_alt_names: Vec::new(),
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })?;
        let mut node_config = NodeConfig::new(config.id, config.data_dir.join("store"));
        node_config.listen_addr = config.peer_addr;
        node_config.advertise_addr = config.advertise_peer.clone();
        node_config.peer_routes = config.peer_routes.clone();
        node_config.forward_writes = true;
        node_config.heartbeat_interval = config.heartbeat;
        node_config.election_timeout_min = config.heartbeat * 3;
        node_config.election_timeout_max = config.heartbeat * 6;
        node_config.history_retention = config.history_retention;
        node_config.disk_reserve_bytes = config.disk_reserve_bytes;
        node_config.fast_failover = config.fast_failover;
        if !config.insecure {
            // Masters authenticate each other: a peer without a certificate from the
            // cluster CA cannot replicate to or from this one.
            node_config.tls = Some(raft_store::PeerTls {
                cert_pem: peer.cert_pem,
                key_pem: peer.key_pem,
                ca_pem: ca.cert_pem().to_owned(),
                verifier: Some(Arc::new(MembersOnly)),
            });
        }
        let node = Node::start(node_config)
            .await
            .map_err(|e| MasterError::Store(e.to_string()))?;

        let fresh = node
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_none();
        if config.init && fresh {
            let mut members = config.initial_cluster.clone();
            members
                .entry(config.id)
                .or_insert_with(|| node.addr().to_owned());
            match node.initialize(members).await {
                Ok(()) => tracing::info!("initialized a new cluster"),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster initialization refused (already initialized?)")
                }
            }
        }

        let tls = (!config.insecure).then(|| ServerTls {
            cert_pem: serving.cert_pem,
            key_pem: serving.key_pem,
            client_ca_pem: ca.cert_pem().to_owned(),
            agent_client: Some((agent_client.cert_pem, agent_client.key_pem)),
        });

        let kv = Arc::new(RaftKv::new(node.clone()));
        let mut registry = Registry::new(kv.clone())
            .with_transformer(Arc::new(transformer))
            .with_service_ranges(config.service_ranges);
        if let Some(cache) = config.watch_cache {
            registry = registry.with_watch_cache(WatchCache::start(kv.clone(), cache));
        }
        tokio::spawn(bootstrap_cluster_state(
            kv.clone(),
            registry.clone(),
            config.id,
            advertise_client,
            config.cluster_dns.clone(),
        ));

        // One authorization cache serves the gateway and the controllers, which write as
        // their own identities (`system:controller:<name>`).
        let (authz_cache, authz_cache_guard) = AuthzCache::start(registry.clone());
        let signing_ca = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem())?;
        let controllers = crate::controllers::start(
            registry.clone(),
            node.clone(),
            signing_ca,
            config.heartbeat,
            actors::RuntimeConfig {
                cluster_cidr: config.cluster_cidr,
                scheduled_events: config.scheduled_events,
                pipelined_writes: config.scheduler_writes_in_flight,
                ..actors::RuntimeConfig::default()
            },
            authorizer(&authz_cache),
        )?;

        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(
            client_listener,
            tls,
            registry,
            kv,
            Arc::new(tokens),
            ServeOptions {
                rest_listener,
                audit: auditor,
                service_account_keys: Some(Arc::new(service_account_keys)),
                authz_cache: Some(authz_cache),
                flow_control: config.flow_control.map(api_gateway::FlowControl::new),
                ..ServeOptions::default()
            },
            async {
                let _ = shutdown_rx.await;
            },
        ));
        tracing::info!(id = config.id, api = %client_addr, rest = ?rest_addr, peer = node.addr(), "master started");
        Ok(Master {
            node,
            client_addr,
            rest_addr,
            shutdown: Some(shutdown_tx),
            server,
            controllers: Some(controllers),
            _authz_cache: authz_cache_guard,
        })
    }

    /// The bound API address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The bound REST API address, when it serves one.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest_addr
    }

    /// The store member.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Completes when the store member has stopped on a fatal error (a log write or sync the
    /// disk refused, say) or must stop because its data disk is nearly full, with the
    /// reason: the process should then exit rather than serve on without a store.
    pub async fn store_failed(&self) -> String {
        let mut metrics = self.node.metrics();
        let fatal = async {
            loop {
                if let Err(fatal) = &metrics.borrow_watched().running_state {
                    return fatal.to_string();
                }
                if metrics.changed().await.is_err() {
                    return "the store member stopped".to_owned();
                }
            }
        };
        tokio::select! {
            why = fatal => why,
            why = self.node.disk_exhausted() => why,
        }
    }

    /// Stops the controllers and serving, then stops the store member.
    pub async fn shutdown(mut self) -> Result<(), MasterError> {
        if let Some(controllers) = self.controllers.take() {
            let _ = tokio::task::spawn_blocking(move || controllers.shutdown()).await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = (&mut self.server).await;
        self.node
            .shutdown()
            .await
            .map_err(|e| MasterError::Store(e.to_string()))?;
        match served {
            Ok(result) => result.map_err(MasterError::from),
            Err(e) => Err(MasterError::Store(format!(
                "the API server task failed: {e}"
            ))),
        }
    }
}

/// Once the store has a leader: record this master's API address and make sure the
/// cluster's namespaces and the `kubernetes` Service exist. Retries until done; every
/// step is idempotent.
async fn bootstrap_cluster_state(
    kv: Arc<RaftKv>,
    registry: Registry<RaftKv>,
    id: u64,
    client_address: String,
    cluster_dns: ClusterDnsConfig,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        match ensure_cluster_state(&kv, &registry, id, &client_address, &cluster_dns).await {
            Ok(()) => {
                tracing::info!("cluster state ready");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cluster state not ready yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn ensure_cluster_state(
    kv: &RaftKv,
    registry: &Registry<RaftKv>,
    id: u64,
    client_address: &str,
    cluster_dns: &ClusterDnsConfig,
) -> Result<(), RegistryError> {
    kv.register_client_address(id, client_address).await?;
    for name in CLUSTER_NAMESPACES {
        let namespace = Object::Namespace(rafter_proto::v1::Namespace {
            metadata: Some(rafter_proto::v1::ObjectMeta {
                name: (*name).to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        });
        match registry.create(namespace, false).await {
            Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match registry
        .create(
            api_service(registry.service_ranges(), client_address),
            false,
        )
        .await
    {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    match registry
        .create(dns_service(registry.service_ranges(), cluster_dns), false)
        .await
    {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    write_api_endpoints(kv, registry).await
}

/// Makes the `kubernetes` Endpoints list every registered master. The Endpoints are read
/// before the registrations and written only if unchanged since (resourceVersion), so of
/// two masters starting at once the one that writes last has seen the other's address.
async fn write_api_endpoints(
    kv: &RaftKv,
    registry: &Registry<RaftKv>,
) -> Result<(), RegistryError> {
    use rafter_proto::{Kind, ReadConsistency};
    let (namespace, name) = API_SERVICE;
    for _ in 0..16 {
        let current = match registry
            .get(
                Kind::Endpoints,
                namespace,
                name,
                ReadConsistency::Linearizable,
            )
            .await
        {
            Ok(object) => Some(object),
            Err(RegistryError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let addresses = kv
            .client_addresses_read(raft_store::Consistency::Linearizable)
            .await?;
        let mut wanted = api_endpoints(addresses.values().map(String::as_str));
        let written = match current {
            None => registry.create(wanted, false).await.map(|_| ()),
            Some(current) => {
                if let (Object::Endpoints(now), Object::Endpoints(next)) = (&current, &wanted) {
                    if now.subsets == next.subsets {
                        return Ok(());
                    }
                }
                wanted.metadata_mut().resource_version =
                    current.metadata().resource_version.clone();
                registry
                    .update(wanted, api_gateway::Subresource::Main, false)
                    .await
                    .map(|_| ())
            }
        };
        match written {
            Err(RegistryError::AlreadyExists { .. } | RegistryError::Conflict { .. }) => continue,
            other => return other,
        }
    }
    Err(RegistryError::Conflict {
        kind: Kind::Endpoints,
        name: format!("{namespace}/{name}"),
        detail: "the Endpoints kept changing; try again".to_owned(),
    })
}

/// The cluster DNS Service, `kube-system/kube-dns`: DNS over UDP and TCP on port 53 of its
/// ClusterIP, with no selector: its Endpoints are the nodes' DNS servers (the
/// controllers' `cluster_dns`).
fn dns_service(ranges: &ServiceRanges, config: &ClusterDnsConfig) -> Object {
    let ip = config
        .ip
        .or_else(|| ranges.service_cidr().nth(10))
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let port = |name: &str, protocol: &str| rafter_proto::v1::ServicePort {
        name: name.to_owned(),
        protocol: protocol.to_owned(),
        port: 53,
        target_port: Some(rafter_proto::IntOrString::Int(53)),
        ..Default::default()
    };
    Object::Service(rafter_proto::v1::Service {
        metadata: Some(rafter_proto::v1::ObjectMeta {
            name: actors::CLUSTER_DNS_SERVICE.1.to_owned(),
            namespace: actors::CLUSTER_DNS_SERVICE.0.to_owned(),
            labels: [("k8s-app".to_owned(), "kube-dns".to_owned())].into(),
            annotations: [("rafter.io/cluster-domain".to_owned(), config.domain.clone())].into(),
            ..Default::default()
        }),
        spec: Some(rafter_proto::v1::ServiceSpec {
            r#type: "ClusterIP".to_owned(),
            cluster_ip: ip,
            ports: vec![port("dns", "UDP"), port("dns-tcp", "TCP")],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The `kubernetes` Endpoints: every registered master's API address (`ip:port`; names
/// and unspecified addresses are left out), one subset per port, as kube-apiserver's
/// endpoint reconciler writes them. Written by each master as it starts.
fn api_endpoints<'a>(addresses: impl Iterator<Item = &'a str>) -> Object {
    use rafter_proto::v1::{EndpointAddress, EndpointPort, EndpointSubset};
    let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for address in addresses {
        let Ok(socket) = address.parse::<SocketAddr>() else {
            continue;
        };
        if socket.ip().is_unspecified() {
            continue;
        }
        let ips = by_port.entry(socket.port()).or_default();
        ips.push(socket.ip().to_string());
        ips.sort();
        ips.dedup();
    }
    Object::Endpoints(rafter_proto::v1::Endpoints {
        metadata: Some(rafter_proto::v1::ObjectMeta {
            name: API_SERVICE.1.to_owned(),
            namespace: API_SERVICE.0.to_owned(),
            ..Default::default()
        }),
        subsets: by_port
            .into_iter()
            .map(|(port, ips)| EndpointSubset {
                addresses: ips
                    .into_iter()
                    .map(|ip| EndpointAddress {
                        ip,
                        ..Default::default()
                    })
                    .collect(),
                ports: vec![EndpointPort {
                    name: "https".to_owned(),
                    port: i32::from(port),
                    protocol: "TCP".to_owned(),
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// The `kubernetes` Service in `default`, as the masters create it: the first address of
/// the service range, port 443 (`https`) to the API port of the master that created it
/// (every master of `rafter up` listens on its own port, so this is the first one's). It
/// has no selector: no Endpoints controller manages its endpoints.
fn api_service(ranges: &ServiceRanges, client_address: &str) -> Object {
    let port = client_address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<i32>().ok())
        .unwrap_or(6443);
    Object::Service(rafter_proto::v1::Service {
        metadata: Some(rafter_proto::v1::ObjectMeta {
            name: API_SERVICE.1.to_owned(),
            namespace: API_SERVICE.0.to_owned(),
            labels: [
                ("component".to_owned(), "apiserver".to_owned()),
                ("provider".to_owned(), "kubernetes".to_owned()),
            ]
            .into(),
            ..Default::default()
        }),
        spec: Some(rafter_proto::v1::ServiceSpec {
            r#type: "ClusterIP".to_owned(),
            cluster_ip: ranges.api_service_ip().to_string(),
            ports: vec![rafter_proto::v1::ServicePort {
                name: "https".to_owned(),
                protocol: "TCP".to_owned(),
                port: 443,
                target_port: Some(rafter_proto::IntOrString::Int(port)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use raft_store::PeerVerifier;

    fn der(ca: &ClusterCa, cn: &str, groups: &[&str]) -> Vec<u8> {
        let issued = ca
            .issue(&CertRequest {
                common_name: cn.to_owned(),
                organizations: groups.iter().map(|g| (*g).to_owned()).collect(),
                subject_alt_names: Vec::new(),
                usage: CertUsage::Client,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let mut reader = issued.cert_pem.as_bytes();
        let der = rustls_pemfile::certs(&mut reader).next().unwrap().unwrap();
        der.as_ref().to_vec()
    }

    #[test]
    fn the_api_endpoints_list_every_master_by_port_and_skip_what_is_no_address() {
        let addresses = [
            "127.0.0.1:6444",
            "127.0.0.1:6443",
            "10.0.0.2:6443",
            "0.0.0.0:6445",
            "master-3:6443",
        ];
        let Object::Endpoints(endpoints) = api_endpoints(addresses.into_iter()) else {
            panic!("not Endpoints");
        };
        let subsets: Vec<(i32, Vec<String>)> = endpoints
            .subsets
            .iter()
            .map(|s| {
                (
                    s.ports[0].port,
                    s.addresses.iter().map(|a| a.ip.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            subsets,
            [
                (6443, vec!["10.0.0.2".to_owned(), "127.0.0.1".to_owned()]),
                (6444, vec!["127.0.0.1".to_owned()]),
            ]
        );
        assert_eq!(endpoints.subsets[0].ports[0].name, "https");
    }

    #[test]
    fn only_peer_certificates_pass_the_raft_port() {
        let ca = ClusterCa::generate("test").unwrap();
        assert!(MembersOnly
            .verify(&der(&ca, "rafter-master-2", &[PEERS_GROUP]))
            .is_ok());
        for (cn, groups) in [
            ("system:node:n1", &["system:nodes"][..]),
            ("admin", &[MASTERS_GROUP][..]),
            ("rafter-master-2", &[][..]),
        ] {
            let why = MembersOnly.verify(&der(&ca, cn, groups)).unwrap_err();
            assert!(why.contains(cn) && why.contains(PEERS_GROUP), "{why}");
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn pki_files_are_private_and_an_open_ca_key_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let pki = root.path().join("pki");
        load_or_create_ca(&pki, true).unwrap();
        assert_eq!(mode(&pki), 0o700);
        for entry in std::fs::read_dir(&pki).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        assert!(load_or_create_service_account_key(&pki, false).is_ok());
        let key = pki.join(pki_files::CA_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_ca(&pki, false).unwrap_err().to_string();
        assert!(err.contains("ca.key") && err.contains("0644"), "{err}");
    }

    #[test]
    fn the_audit_log_is_private_and_a_bad_policy_is_refused_naming_its_file() {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("audit.log");
        load_audit(&AuditConfig::new(log.clone())).unwrap();
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let policy = root.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Request}]\n",
        )
        .unwrap();
        let mut config = AuditConfig::new(log);
        config.policy_file = Some(policy.clone());
        load_audit(&config).unwrap();
        std::fs::write(&policy, "apiVersion: v1\nkind: Policy\n").unwrap();
        let err = load_audit(&config).unwrap_err().to_string();
        assert!(
            err.contains("policy.yaml") && err.contains("audit.k8s.io/v1"),
            "{err}"
        );
        config.log_path = root.path().join("missing/audit.log");
        config.policy_file = None;
        let err = load_audit(&config).unwrap_err().to_string();
        assert!(err.contains("missing/audit.log"), "{err}");
    }

    #[test]
    fn the_generated_encryption_config_is_private_and_an_open_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("encryption.yaml");
        write_generated_encryption_config(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(load_encryption(&path)
            .unwrap()
            .encrypts(rafter_proto::Kind::Secret));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_encryption(&path).unwrap_err().to_string();
        assert!(err.contains("encryption.yaml"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "apiVersion: v1\nkind: EncryptionConfiguration\n").unwrap();
        let err = load_encryption(&path).unwrap_err().to_string();
        assert!(
            err.contains("encryption.yaml") && err.contains("apiVersion"),
            "{err}"
        );
    }
}
