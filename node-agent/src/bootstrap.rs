//! TLS bootstrap of the agent's client certificate, as kubelet does it: the agent joins
//! with a bootstrap token, and from then on talks to the masters with a client
//! certificate for `system:node:<name>` (O `system:nodes`) and no token.
//!
//! ```text
//!  cert dir: client.crt + client.key (+ ca.crt it was issued under)
//!     │ usable (same CA, names this node, not near expiry) ─────────────► use it
//!     │ valid but near expiry ─► renew, authenticated by the certificate ─► use the new one
//!     │ missing / foreign / expired ─► bootstrap token? ─ no ─► NoCredentials
//!     ▼                                     │ yes
//!  new key (rcgen) + PKCS#10 ─► CertificateSigningRequest (kube-apiserver-client-kubelet)
//!     ─► watch it by name ─► status.certificate ─► write files (key 0600) ─► mTLS client
//!                          └► Denied / Failed ─► error naming the reason
//!
//!  CertRotation task: at renew time ─► same request with the current certificate ─►
//!  files replaced, the shared client swapped (RotatingClient)
//! ```
//!
//! Owns the certificate files in the cert dir, the decision whether they can be used
//! ([`assess`], pure), the CSR round trip, and [`RotatingClient`], an [`ApiClient`] whose
//! connection is replaced when the certificate is. It must not approve anything (the
//! masters' CSR controller auto-approves a node's own bootstrap and renewal requests) and
//! holds no agent policy beyond "which credentials to present".

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use futures::StreamExt;
use rafter_client::{
    cert_info, key_matches_cert, new_serving_request, CertInfo, Client, ClientError, WatchEventType,
};
use rafter_client::{ClientIdentity, ResolvedConfig, WatchParams};
use rafter_proto::v1::{self, CertificateSigningRequest, Pod};
use rafter_proto::{Kind, Object};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{ApiClient, ApiError, ObjectEventStream, PodEventStream};

/// The signer of node agents' client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of node agents' serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The group every node's certificate names.
pub const NODES_GROUP: &str = "system:nodes";
/// The client certificate's file in the cert dir.
pub const CLIENT_CERT_FILE: &str = "client.crt";
/// The client key's file in the cert dir (mode 0600).
pub const CLIENT_KEY_FILE: &str = "client.key";
/// The CA the client certificate was issued under, to notice a cluster that changed.
pub const ISSUER_CA_FILE: &str = "ca.crt";

/// The user a node's certificate names.
pub fn node_user(node_name: &str) -> String {
    format!("system:node:{node_name}")
}

/// Why the agent has no client certificate.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// No usable certificate and no bootstrap token to get one with.
    #[error("no usable client certificate in {cert_dir:?} ({why}) and no bootstrap token to request one: pass --bootstrap-token or --bootstrap-kubeconfig")]
    NoCredentials {
        /// The cert dir.
        cert_dir: PathBuf,
        /// Why the files there cannot be used.
        why: String,
    },
    /// The masters are reached over plaintext: client certificates need TLS.
    #[error("TLS bootstrap needs TLS to the masters (a cluster CA), not an insecure connection")]
    Insecure,
    /// The request was denied by an approver.
    #[error("certificate request {name} was denied ({reason}): {message}")]
    Denied {
        /// The CSR's name.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The signer refused the request.
    #[error("certificate request {name} failed ({reason}): {message}")]
    Failed {
        /// The CSR's name.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// No certificate arrived in time (nobody approved the request?).
    #[error("certificate request {name} got no certificate within {waited:?}: is it approved? (`rafter certificate approve {name}`)")]
    Timeout {
        /// The CSR's name.
        name: String,
        /// How long the agent waited.
        waited: Duration,
    },
    /// The signed certificate is not what was asked for.
    #[error("certificate request {name} was answered with an unusable certificate: {why}")]
    BadCertificate {
        /// The CSR's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Key or request generation failed.
    #[error("making a key and request: {0}")]
    Pki(#[from] rafter_client::PkiError),
    /// The API refused or could not be reached.
    #[error("{what}: {source}")]
    Api {
        /// What the agent was doing.
        what: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The cert dir cannot be written.
    #[error("{path:?}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How the agent gets and keeps its client certificate.
#[derive(Debug, Clone)]
pub struct TlsBootstrapConfig {
    /// The node's name: the certificate is for `system:node:<name>`.
    pub node_name: String,
    /// Where the certificate and key live.
    pub cert_dir: PathBuf,
    /// The masters and the cluster CA (its identity and token are not used).
    pub cluster: ResolvedConfig,
    /// The bootstrap token to request a first certificate with.
    pub bootstrap_token: Option<String>,
    /// The lifetime to ask for (`spec.expirationSeconds`); `None`: the signer's default.
    pub expiration_seconds: Option<i32>,
    /// Renew when less than this is left; `None`: a fifth of the certificate's lifetime.
    pub renew_before: Option<Duration>,
    /// How long to wait for a request to be signed.
    pub wait: Duration,
}

impl TlsBootstrapConfig {
    /// Defaults for node `node_name` keeping its certificate in `cert_dir`.
    pub fn new(
        node_name: impl Into<String>,
        cert_dir: impl Into<PathBuf>,
        cluster: ResolvedConfig,
    ) -> TlsBootstrapConfig {
        TlsBootstrapConfig {
            node_name: node_name.into(),
            cert_dir: cert_dir.into(),
            cluster,
            bootstrap_token: None,
            expiration_seconds: None,
            renew_before: None,
            wait: Duration::from_secs(120),
        }
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.cert_dir.join(file)
    }

    /// The cluster config authenticated by `identity` and nothing else.
    fn with_identity(&self, identity: &ClientIdentity) -> ResolvedConfig {
        ResolvedConfig {
            identity: Some(identity.clone()),
            token: None,
            ..self.cluster.clone()
        }
    }
}

/// What can be done with the certificate found in the cert dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertState {
    /// Use it; renew it at `renew_at` (Unix seconds).
    Usable {
        /// When to renew, seconds since the Unix epoch.
        renew_at: i64,
    },
    /// Still valid but due for renewal: renew with it before use.
    Renew,
    /// Cannot be used (missing, another node's, another cluster's, expired).
    Unusable(String),
}

/// When a certificate valid from `info.not_before` to `info.not_after` should be renewed.
pub(crate) fn renew_at(info: &CertInfo, renew_before: Option<Duration>) -> i64 {
    let margin = match renew_before {
        Some(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        None => (info.not_after - info.not_before) / 5,
    };
    info.not_after.saturating_sub(margin)
}

/// Decides about the files of the cert dir: `cert` and its `issuer_ca` as read (`None`
/// when missing), against the cluster's CA, for `node_name`, at `now` (Unix seconds).
pub fn assess(
    cert: Option<&str>,
    issuer_ca: Option<&str>,
    cluster_ca: Option<&str>,
    node_name: &str,
    now: i64,
    renew_before: Option<Duration>,
) -> CertState {
    let Some(cert) = cert else {
        return CertState::Unusable("no certificate yet".to_owned());
    };
    if issuer_ca.map(str::trim) != cluster_ca.map(str::trim) {
        return CertState::Unusable("issued under another cluster CA".to_owned());
    }
    let info = match cert_info(cert) {
        Ok(info) => info,
        Err(e) => return CertState::Unusable(e.to_string()),
    };
    let user = node_user(node_name);
    if info.identity.user != user || info.identity.groups != [NODES_GROUP] {
        return CertState::Unusable(format!(
            "it names {} in {:?}, not {user} in {NODES_GROUP}",
            info.identity.user, info.identity.groups
        ));
    }
    if now >= info.not_after {
        return CertState::Unusable("it has expired".to_owned());
    }
    let at = renew_at(&info, renew_before);
    if now >= at {
        CertState::Renew
    } else {
        CertState::Usable { renew_at: at }
    }
}

/// Where a certificate request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrOutcome {
    /// Not signed yet.
    Pending,
    /// Signed: the certificate, PEM.
    Issued(String),
    /// Denied by an approver: reason and message.
    Denied(String, String),
    /// Refused by the signer: reason and message.
    Failed(String, String),
}

/// Reads a request's status.
pub fn csr_outcome(csr: &CertificateSigningRequest) -> CsrOutcome {
    let status = csr.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.r#type == kind && c.status != "False")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = condition("Denied") {
        return CsrOutcome::Denied(reason, message);
    }
    if let Some((reason, message)) = condition("Failed") {
        return CsrOutcome::Failed(reason, message);
    }
    if status.certificate.is_empty() {
        return CsrOutcome::Pending;
    }
    match base64::engine::general_purpose::STANDARD
        .decode(status.certificate.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    {
        Some(pem) => CsrOutcome::Issued(pem),
        None => CsrOutcome::Failed(
            "BadCertificate".to_owned(),
            "status.certificate is not base64 of PEM text".to_owned(),
        ),
    }
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, BootstrapError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(BootstrapError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates `dir` (and missing parents) with mode 0700: it holds the node's private keys.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), BootstrapError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BootstrapError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees
/// half a file; `private` files get mode 0600 from their creation on.
pub(crate) fn write_file(path: &Path, text: &str, private: bool) -> Result<(), BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BootstrapError::Io { path, source }
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Which of the node's certificates a request is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// The client certificate (`kube-apiserver-client-kubelet`).
    Client,
    /// The serving certificate (`kubelet-serving`) for these DNS names and IP addresses.
    Serving(&'a [String]),
}

impl Purpose<'_> {
    fn signer(self) -> &'static str {
        match self {
            Purpose::Client => KUBELET_CLIENT_SIGNER,
            Purpose::Serving(_) => KUBELET_SERVING_SIGNER,
        }
    }

    fn usages(self) -> [&'static str; 3] {
        match self {
            Purpose::Client => ["digital signature", "key encipherment", "client auth"],
            Purpose::Serving(_) => ["digital signature", "key encipherment", "server auth"],
        }
    }
}

/// Files a request for `system:node:<name>` with `client` and waits for its certificate.
pub(crate) async fn request_certificate(
    config: &TlsBootstrapConfig,
    client: &Client,
    purpose: Purpose<'_>,
) -> Result<ClientIdentity, BootstrapError> {
    let user = node_user(&config.node_name);
    let hosts: &[String] = match purpose {
        Purpose::Client => &[],
        Purpose::Serving(hosts) => hosts,
    };
    let (request_pem, key_pem) = new_serving_request(&user, &[NODES_GROUP.to_owned()], hosts)?;
    let csr = CertificateSigningRequest {
        api_version: "certificates.k8s.io/v1".to_owned(),
        kind: "CertificateSigningRequest".to_owned(),
        metadata: Some(v1::ObjectMeta {
            generate_name: format!("node-csr-{}-", config.node_name),
            ..Default::default()
        }),
        spec: Some(v1::CertificateSigningRequestSpec {
            request: base64::engine::general_purpose::STANDARD.encode(&request_pem),
            signer_name: purpose.signer().to_owned(),
            expiration_seconds: config.expiration_seconds,
            usages: purpose.usages().map(str::to_owned).to_vec(),
            ..Default::default()
        }),
        status: None,
    };
    let created = client
        .create(Object::CertificateSigningRequest(csr))
        .await
        .map_err(|source| BootstrapError::Api {
            what: format!("filing a certificate request for {user}"),
            source,
        })?;
    let name = created.metadata().name.clone();
    info!(csr = %name, user = %user, "filed a certificate request; waiting for its certificate");
    let cert_pem = tokio::time::timeout(config.wait, wait_for_certificate(client, &name))
        .await
        .map_err(|_| BootstrapError::Timeout {
            name: name.clone(),
            waited: config.wait,
        })??;
    let info = cert_info(&cert_pem).map_err(|e| BootstrapError::BadCertificate {
        name: name.clone(),
        why: e.to_string(),
    })?;
    if info.identity.user != user {
        return Err(BootstrapError::BadCertificate {
            name,
            why: format!("it names {}, not {user}", info.identity.user),
        });
    }
    if let Some(missing) = hosts.iter().find(|h| !info.hosts.contains(h)) {
        return Err(BootstrapError::BadCertificate {
            name,
            why: format!("it is not valid for {missing} (it names {:?})", info.hosts),
        });
    }
    info!(csr = %name, signer = purpose.signer(), not_after = info.not_after, "got a certificate");
    Ok(ClientIdentity { cert_pem, key_pem })
}

/// Follows one request (by name) until it is signed, denied or failed.
async fn wait_for_certificate(client: &Client, name: &str) -> Result<String, BootstrapError> {
    let params = WatchParams {
        field_selector: format!("metadata.name={name}"),
        ..WatchParams::default()
    };
    loop {
        // Without a revision the watch starts with the request as it is now, so a
        // certificate set before the watch opened is not missed.
        let mut events =
            Box::pin(client.watch(Kind::CertificateSigningRequest, None, &params, None));
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    warn!(csr = %name, error = %e, "watch of the certificate request broke; watching again");
                    break;
                }
            };
            let Some(Object::CertificateSigningRequest(csr)) = event.object else {
                continue;
            };
            if event.event_type == WatchEventType::Deleted {
                return Err(BootstrapError::Failed {
                    name: name.to_owned(),
                    reason: "Deleted".to_owned(),
                    message: "the request was deleted before it was signed".to_owned(),
                });
            }
            match csr_outcome(&csr) {
                CsrOutcome::Pending => {}
                CsrOutcome::Issued(pem) => return Ok(pem),
                CsrOutcome::Denied(reason, message) => {
                    return Err(BootstrapError::Denied {
                        name: name.to_owned(),
                        reason,
                        message,
                    })
                }
                CsrOutcome::Failed(reason, message) => {
                    return Err(BootstrapError::Failed {
                        name: name.to_owned(),
                        reason,
                        message,
                    })
                }
            }
        }
        // The client library already resumed on every master it knows; give the
        // masters a moment before opening a new watch.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Keeps `identity` in the cert dir.
fn store(config: &TlsBootstrapConfig, identity: &ClientIdentity) -> Result<(), BootstrapError> {
    create_private_dir(&config.cert_dir)?;
    // The key first: a certificate on disk always has its key next to it.
    write_file(&config.path(CLIENT_KEY_FILE), &identity.key_pem, true)?;
    write_file(&config.path(CLIENT_CERT_FILE), &identity.cert_pem, false)?;
    write_file(
        &config.path(ISSUER_CA_FILE),
        config.cluster.ca_pem.as_deref().unwrap_or_default(),
        false,
    )
}

pub(crate) fn api_error(what: &str) -> impl FnOnce(ClientError) -> BootstrapError + '_ {
    move |source| BootstrapError::Api {
        what: what.to_owned(),
        source,
    }
}

/// The agent's client certificate: the one in the cert dir when usable, else a renewed
/// or newly bootstrapped one (written there). Returns it with its renewal time.
pub async fn client_certificate(
    config: &TlsBootstrapConfig,
) -> Result<(ClientIdentity, i64), BootstrapError> {
    if config.cluster.insecure || config.cluster.ca_pem.is_none() {
        return Err(BootstrapError::Insecure);
    }
    let cert = read_optional(&config.path(CLIENT_CERT_FILE))?;
    let key = read_optional(&config.path(CLIENT_KEY_FILE))?;
    let issuer = read_optional(&config.path(ISSUER_CA_FILE))?;
    let state = match (&cert, &key) {
        (_, None) => CertState::Unusable("no key".to_owned()),
        // A crash between writing a new key and its certificate leaves a pair that
        // cannot authenticate: ask again rather than fail every handshake.
        (Some(cert), Some(key)) if !key_matches_cert(cert, key).unwrap_or(false) => {
            CertState::Unusable("the key is not the certificate's".to_owned())
        }
        _ => assess(
            cert.as_deref(),
            issuer.as_deref(),
            config.cluster.ca_pem.as_deref(),
            &config.node_name,
            now_unix(),
            config.renew_before,
        ),
    };
    let existing = cert
        .zip(key)
        .map(|(cert_pem, key_pem)| ClientIdentity { cert_pem, key_pem });
    let identity = match (state, existing) {
        (CertState::Usable { renew_at }, Some(identity)) => {
            info!(cert_dir = ?config.cert_dir, "using the client certificate of the cert dir");
            return Ok((identity, renew_at));
        }
        (CertState::Renew, Some(identity)) => {
            info!("the client certificate is due for renewal; renewing it with itself");
            match renew_with(config, &identity).await {
                Ok(renewed) => renewed,
                Err(e) => {
                    // Still valid: start with it, and let rotation try again soon.
                    warn!(error = %e, "renewing the client certificate failed; using it as it is");
                    return Ok((identity, now_unix() + RETRY_SECONDS));
                }
            }
        }
        (state, _) => {
            let why = match state {
                CertState::Unusable(why) => why,
                _ => "no key".to_owned(),
            };
            let Some(token) = &config.bootstrap_token else {
                return Err(BootstrapError::NoCredentials {
                    cert_dir: config.cert_dir.clone(),
                    why,
                });
            };
            info!(reason = %why, "requesting a client certificate with the bootstrap token");
            let bootstrap = ResolvedConfig {
                identity: None,
                token: Some(token.clone()),
                ..config.cluster.clone()
            };
            let client = Client::connect(bootstrap)
                .await
                .map_err(api_error("connecting with the bootstrap token"))?;
            request_certificate(config, &client, Purpose::Client).await?
        }
    };
    store(config, &identity)?;
    let info = cert_info(&identity.cert_pem).map_err(|e| BootstrapError::BadCertificate {
        name: String::new(),
        why: e.to_string(),
    })?;
    Ok((identity, renew_at(&info, config.renew_before)))
}

/// A request for a new certificate authenticated by the current one.
async fn renew_with(
    config: &TlsBootstrapConfig,
    identity: &ClientIdentity,
) -> Result<ClientIdentity, BootstrapError> {
    let client = Client::connect(config.with_identity(identity))
        .await
        .map_err(api_error("connecting with the client certificate"))?;
    request_certificate(config, &client, Purpose::Client).await
}

/// How long after a failed renewal the next attempt is made, in seconds.
pub(crate) const RETRY_SECONDS: i64 = 30;

/// An [`ApiClient`] over a [`Client`] that certificate rotation replaces: every call
/// uses the newest connection; streams opened before keep theirs until they end.
pub struct RotatingClient {
    current: RwLock<Client>,
}

impl RotatingClient {
    /// A client starting with `client`.
    pub fn new(client: Client) -> RotatingClient {
        RotatingClient {
            current: RwLock::new(client),
        }
    }

    /// The connection calls use now.
    pub fn client(&self) -> Client {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, client: Client) {
        match self.current.write() {
            Ok(mut guard) => *guard = client,
            Err(poisoned) => *poisoned.into_inner() = client,
        }
    }
}

#[async_trait]
impl ApiClient for RotatingClient {
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ApiError> {
        ApiClient::get(&self.client(), kind, namespace, name).await
    }

    async fn create_token(
        &self,
        request: rafter_proto::api::TokenRequest,
    ) -> Result<rafter_proto::api::TokenResponse, ApiError> {
        ApiClient::create_token(&self.client(), request).await
    }

    async fn create(&self, object: Object) -> Result<Object, ApiError> {
        ApiClient::create(&self.client(), object).await
    }

    async fn update(&self, object: Object) -> Result<Object, ApiError> {
        ApiClient::update(&self.client(), object).await
    }

    async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        ApiClient::update_status(&self.client(), object).await
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<(), ApiError> {
        ApiClient::delete_pod(&self.client(), namespace, name, uid).await
    }

    async fn list_pods(&self, node: &str) -> Result<(Vec<Pod>, String), ApiError> {
        ApiClient::list_pods(&self.client(), node).await
    }

    fn watch_pods(&self, node: &str, resource_version: &str) -> PodEventStream {
        ApiClient::watch_pods(&self.client(), node, resource_version)
    }

    async fn list_all(&self, kind: Kind) -> Result<(Vec<Object>, String), ApiError> {
        ApiClient::list_all(&self.client(), kind).await
    }

    fn watch_all(&self, kind: Kind, resource_version: &str) -> ObjectEventStream {
        ApiClient::watch_all(&self.client(), kind, resource_version)
    }
}

/// The certificate rotation task; stopped when dropped.
pub struct CertRotation {
    task: JoinHandle<()>,
}

impl Drop for CertRotation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews the certificate at `renew_at` (Unix seconds) and again before each new one
/// runs out, replacing the files and `client`'s connection. A failed renewal is retried
/// every 30 s.
pub fn rotate(
    config: TlsBootstrapConfig,
    client: Arc<RotatingClient>,
    mut renew_at: i64,
) -> CertRotation {
    let task = tokio::spawn(async move {
        loop {
            let wait = u64::try_from(renew_at.saturating_sub(now_unix())).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            match renew(&config, &client).await {
                Ok(next) => renew_at = next,
                Err(e) => {
                    warn!(error = %e, "renewing the client certificate failed; retrying");
                    renew_at = now_unix() + RETRY_SECONDS;
                }
            }
        }
    });
    CertRotation { task }
}

async fn renew(
    config: &TlsBootstrapConfig,
    client: &RotatingClient,
) -> Result<i64, BootstrapError> {
    let identity = request_certificate(config, &client.client(), Purpose::Client).await?;
    store(config, &identity)?;
    let info = cert_info(&identity.cert_pem).map_err(|e| BootstrapError::BadCertificate {
        name: String::new(),
        why: e.to_string(),
    })?;
    let fresh = Client::connect(config.with_identity(&identity))
        .await
        .map_err(api_error("connecting with the renewed certificate"))?;
    client.replace(fresh);
    info!(not_after = info.not_after, "rotated the client certificate");
    Ok(renew_at(&info, config.renew_before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};

    /// A certificate of the default lifetime (a year).
    fn issued(ca: &ClusterCa, cn: &str, orgs: &[&str]) -> String {
        ca.issue(&CertRequest {
            common_name: cn.to_owned(),
            organizations: orgs.iter().map(|o| (*o).to_owned()).collect(),
            subject_alt_names: vec![],
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap()
        .cert_pem
    }

    #[test]
    fn a_certificate_of_this_node_from_this_ca_is_used_until_its_last_fifth() {
        let ca = ClusterCa::generate("t").unwrap();
        let cert = issued(&ca, "system:node:w1", &["system:nodes"]);
        let info = cert_info(&cert).unwrap();
        let now = now_unix();
        let state = assess(
            Some(&cert),
            Some(ca.cert_pem()),
            Some(ca.cert_pem()),
            "w1",
            now,
            None,
        );
        let CertState::Usable { renew_at } = state else {
            panic!("{state:?}");
        };
        assert_eq!(
            renew_at,
            info.not_after - (info.not_after - info.not_before) / 5
        );
        let late = renew_at + 1;
        assert_eq!(
            assess(
                Some(&cert),
                Some(ca.cert_pem()),
                Some(ca.cert_pem()),
                "w1",
                late,
                None
            ),
            CertState::Renew
        );
        let expired = info.not_after;
        assert!(matches!(
            assess(
                Some(&cert),
                Some(ca.cert_pem()),
                Some(ca.cert_pem()),
                "w1",
                expired,
                None
            ),
            CertState::Unusable(_)
        ));
        let soon = assess(
            Some(&cert),
            Some(ca.cert_pem()),
            Some(ca.cert_pem()),
            "w1",
            now,
            Some(Duration::from_secs(400 * 86_400)),
        );
        assert_eq!(
            soon,
            CertState::Renew,
            "a margin longer than the lifetime renews now"
        );
    }

    #[test]
    fn another_nodes_or_another_clusters_certificate_is_not_used() {
        let ca = ClusterCa::generate("t").unwrap();
        let other_ca = ClusterCa::generate("t").unwrap();
        let now = now_unix();
        let cases = [
            (
                issued(&ca, "system:node:w2", &["system:nodes"]),
                ca.cert_pem(),
                "another node",
            ),
            (
                issued(&ca, "system:node:w1", &["system:masters"]),
                ca.cert_pem(),
                "another group",
            ),
            (
                issued(&ca, "system:node:w1", &["system:nodes"]),
                other_ca.cert_pem(),
                "another CA",
            ),
        ];
        for (cert, issuer, what) in cases {
            let state = assess(
                Some(&cert),
                Some(issuer),
                Some(ca.cert_pem()),
                "w1",
                now,
                None,
            );
            assert!(matches!(state, CertState::Unusable(_)), "{what}: {state:?}");
        }
        assert!(matches!(
            assess(None, None, Some(ca.cert_pem()), "w1", now, None),
            CertState::Unusable(_)
        ));
        assert!(matches!(
            assess(
                Some("garbage"),
                Some(ca.cert_pem()),
                Some(ca.cert_pem()),
                "w1",
                now,
                None
            ),
            CertState::Unusable(_)
        ));
    }

    fn with_status(conditions: &[(&str, &str)], certificate: &str) -> CertificateSigningRequest {
        CertificateSigningRequest {
            status: Some(v1::CertificateSigningRequestStatus {
                conditions: conditions
                    .iter()
                    .map(|(kind, status)| v1::Condition {
                        r#type: (*kind).to_owned(),
                        status: (*status).to_owned(),
                        reason: format!("{kind}Reason"),
                        message: "because".to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                certificate: certificate.to_owned(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_is_pending_until_signed_denied_or_failed() {
        assert_eq!(csr_outcome(&with_status(&[], "")), CsrOutcome::Pending);
        assert_eq!(
            csr_outcome(&with_status(&[("Approved", "True")], "")),
            CsrOutcome::Pending
        );
        let pem = base64::engine::general_purpose::STANDARD.encode("PEM");
        assert_eq!(
            csr_outcome(&with_status(&[("Approved", "True")], &pem)),
            CsrOutcome::Issued("PEM".to_owned())
        );
        assert_eq!(
            csr_outcome(&with_status(&[("Denied", "True")], "")),
            CsrOutcome::Denied("DeniedReason".to_owned(), "because".to_owned())
        );
        assert_eq!(
            csr_outcome(&with_status(
                &[("Approved", "True"), ("Failed", "True")],
                ""
            )),
            CsrOutcome::Failed("FailedReason".to_owned(), "because".to_owned())
        );
        assert_eq!(
            csr_outcome(&with_status(&[("Denied", "False")], "")),
            CsrOutcome::Pending
        );
        assert!(matches!(
            csr_outcome(&with_status(&[], "%%%")),
            CsrOutcome::Failed(..)
        ));
    }

    #[test]
    fn keys_are_written_private_and_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_file(&path, "secret", true).unwrap();
        write_file(&path, "secret2", true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret2");
    }
}
