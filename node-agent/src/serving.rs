//! The agent's serving certificate (`kubernetes.io/kubelet-serving`), as kubelet gets its
//! own: after the client certificate, the agent files a request for `system:node:<name>`
//! naming its addresses, keeps the answer in the cert dir and renews it like the client
//! certificate. The log endpoint (`log_server`) serves TLS with whatever this holds.
//!
//! ```text
//!  cert dir: serving.crt + serving.key
//!     │ usable (this CA, this node, every wanted host, key matches, not near expiry)
//!     │      ─────────────────────────────────────────────────────────► publish it
//!     │ otherwise ─► new key + request (kubelet-serving, hosts as SANs), filed with the
//!     ▼              node's client certificate ─► auto-approved by the masters when
//!                    every host is one of the Node's status.addresses ─► write, publish
//!  at four fifths of its lifetime (or 30 s after a failure) ─► again
//! ```
//!
//! Owns the serving files and their renewal task. It must not serve (the log server
//! does) nor approve anything; the request machinery is `bootstrap`'s.

use std::sync::Arc;
use std::time::Duration;

use rafter_client::ClientIdentity;
use rafter_client::{cert_info, key_matches_cert};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::bootstrap::{
    assess, create_private_dir, now_unix, read_optional, renew_at, request_certificate, write_file,
    BootstrapError, CertState, Purpose, RotatingClient, TlsBootstrapConfig, ISSUER_CA_FILE,
    RETRY_SECONDS,
};

/// The serving certificate's file in the cert dir.
pub const SERVING_CERT_FILE: &str = "serving.crt";
/// The serving key's file in the cert dir (mode 0600).
pub const SERVING_KEY_FILE: &str = "serving.key";

/// What the agent needs to get serving certificates: its bootstrap settings (node name,
/// cert dir, cluster CA, lifetimes) and a client authenticated as the node.
#[derive(Clone)]
pub struct ServingTls {
    config: TlsBootstrapConfig,
    client: Arc<RotatingClient>,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingTls")
            .field("node_name", &self.config.node_name)
            .field("cert_dir", &self.config.cert_dir)
            .finish_non_exhaustive()
    }
}

impl ServingTls {
    /// Serving certificates for `config.node_name`, requested through `client` (which
    /// presents the node's client certificate).
    pub fn new(config: TlsBootstrapConfig, client: Arc<RotatingClient>) -> ServingTls {
        ServingTls { config, client }
    }
}

/// What the endpoint serves with: the certificate and key, and the cluster CA whose
/// client certificates (the masters') it requires.
#[derive(Clone)]
pub(crate) struct ServingIdentity {
    /// The serving certificate and key.
    pub(crate) identity: ClientIdentity,
    /// The cluster CA, PEM.
    pub(crate) client_ca_pem: Option<String>,
}

/// The current serving identity: `None` until the first certificate arrives.
pub(crate) type ServingCert = watch::Receiver<Option<ServingIdentity>>;

/// Decides about the serving files: usable only when [`assess`] says so for the client
/// rules (this CA, this node, lifetime), the key is the certificate's and every one of
/// `hosts` is named.
pub(crate) fn serving_state(
    cert: Option<&str>,
    key: Option<&str>,
    issuer_ca: Option<&str>,
    config: &TlsBootstrapConfig,
    hosts: &[String],
    now: i64,
) -> CertState {
    let (Some(cert), Some(key)) = (cert, key) else {
        return CertState::Unusable("no serving certificate and key yet".to_owned());
    };
    if !key_matches_cert(cert, key).unwrap_or(false) {
        return CertState::Unusable("the key is not the certificate's".to_owned());
    }
    let state = assess(
        Some(cert),
        issuer_ca,
        config.cluster.ca_pem.as_deref(),
        &config.node_name,
        now,
        config.renew_before,
    );
    let named = cert_info(cert).map(|i| i.hosts).unwrap_or_default();
    match hosts.iter().find(|h| !named.contains(h)) {
        Some(missing) if matches!(state, CertState::Usable { .. } | CertState::Renew) => {
            CertState::Unusable(format!("it does not name {missing}"))
        }
        _ => state,
    }
}

/// The serving certificate of the cert dir when usable, else a new one (written there).
/// Returns it with its renewal time.
async fn serving_certificate(
    tls: &ServingTls,
    hosts: &[String],
) -> Result<(ClientIdentity, i64), BootstrapError> {
    let config = &tls.config;
    let cert = read_optional(&config.path(SERVING_CERT_FILE))?;
    let key = read_optional(&config.path(SERVING_KEY_FILE))?;
    let issuer = read_optional(&config.path(ISSUER_CA_FILE))?;
    let state = serving_state(
        cert.as_deref(),
        key.as_deref(),
        issuer.as_deref(),
        config,
        hosts,
        now_unix(),
    );
    if let (CertState::Usable { renew_at }, Some(cert_pem), Some(key_pem)) = (&state, &cert, &key) {
        info!(cert_dir = ?config.cert_dir, "using the serving certificate of the cert dir");
        let identity = ClientIdentity {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        };
        return Ok((identity, *renew_at));
    }
    info!(state = ?state, hosts = ?hosts, "requesting a serving certificate");
    let identity =
        request_certificate(config, &tls.client.client(), Purpose::Serving(hosts)).await?;
    create_private_dir(&config.cert_dir)?;
    // The key first: a certificate on disk always has its key next to it.
    write_file(&config.path(SERVING_KEY_FILE), &identity.key_pem, true)?;
    write_file(&config.path(SERVING_CERT_FILE), &identity.cert_pem, false)?;
    let info = cert_info(&identity.cert_pem).map_err(|e| BootstrapError::BadCertificate {
        name: String::new(),
        why: e.to_string(),
    })?;
    Ok((identity, renew_at(&info, config.renew_before)))
}

/// Gets the serving certificate for `hosts` and keeps it renewed, publishing each one;
/// a failure is retried after 30 s. The task runs until aborted.
pub(crate) fn keep_serving_cert(
    tls: ServingTls,
    hosts: Vec<String>,
) -> (ServingCert, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        loop {
            let next = match serving_certificate(&tls, &hosts).await {
                Ok((identity, renew_at)) => {
                    tx.send_replace(Some(ServingIdentity {
                        identity,
                        client_ca_pem: tls.config.cluster.ca_pem.clone(),
                    }));
                    renew_at
                }
                Err(e) => {
                    warn!(error = %e, "getting a serving certificate failed; retrying");
                    now_unix() + RETRY_SECONDS
                }
            };
            let wait = u64::try_from(next.saturating_sub(now_unix())).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_client::ResolvedConfig;
    use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};

    fn config(ca: &ClusterCa) -> TlsBootstrapConfig {
        let cluster = ResolvedConfig {
            context: "t".to_owned(),
            endpoints: vec!["https://127.0.0.1:1".to_owned()],
            ca_pem: Some(ca.cert_pem().to_owned()),
            identity: None,
            token: None,
            namespace: "default".to_owned(),
            insecure: false,
        };
        TlsBootstrapConfig::new("w1", "/nonexistent", cluster)
    }

    fn serving(ca: &ClusterCa, cn: &str, hosts: &[&str]) -> (String, String) {
        let issued = ca
            .issue(&CertRequest {
                common_name: cn.to_owned(),
                organizations: vec!["system:nodes".to_owned()],
                subject_alt_names: hosts.iter().map(|h| (*h).to_owned()).collect(),
                usage: CertUsage::Server,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        (issued.cert_pem, issued.key_pem)
    }

    #[test]
    fn a_serving_certificate_is_reused_only_for_this_node_ca_key_and_every_host() {
        let ca = ClusterCa::generate("t").unwrap();
        let other_ca = ClusterCa::generate("t").unwrap();
        let config = config(&ca);
        let hosts = vec!["w1".to_owned(), "10.0.0.5".to_owned()];
        let now = now_unix();
        let state = |cert: &str, key: &str, issuer: &str| {
            serving_state(Some(cert), Some(key), Some(issuer), &config, &hosts, now)
        };
        let (cert, key) = serving(&ca, "system:node:w1", &["w1", "10.0.0.5", "w1.example"]);
        assert!(matches!(
            state(&cert, &key, ca.cert_pem()),
            CertState::Usable { .. }
        ));
        let unusable = |s: CertState, why: &str| match s {
            CertState::Unusable(text) => assert!(text.contains(why), "{why}: {text}"),
            other => panic!("{why}: {other:?}"),
        };
        unusable(
            state(&cert, &key, other_ca.cert_pem()),
            "another cluster CA",
        );
        let (_, stray_key) = serving(&ca, "system:node:w1", &["w1"]);
        unusable(state(&cert, &stray_key, ca.cert_pem()), "key");
        let (fewer, fewer_key) = serving(&ca, "system:node:w1", &["w1"]);
        unusable(state(&fewer, &fewer_key, ca.cert_pem()), "10.0.0.5");
        let (theirs, their_key) = serving(&ca, "system:node:w2", &["w1", "10.0.0.5"]);
        unusable(state(&theirs, &their_key, ca.cert_pem()), "system:node:w2");
        unusable(
            serving_state(None, None, None, &config, &hosts, now),
            "no serving certificate",
        );
    }
}
