//! Dialling a node agent's endpoint (pod logs, node metrics) from a master.
//!
//! ```text
//!   Node annotation rafter.io/agent-logs-endpoint
//!     http://IP:PORT  ─► plaintext (agents without a serving certificate)
//!     https://IP:PORT ─► TLS: the agent's certificate must chain to the cluster CA and
//!                        name the node (DNS SAN = node name); the master presents its
//!                        own certificate (server + client usage) as the client
//! ```
//!
//! Owns the transport choice and the words of a refused handshake. It does not decide who
//! may read what (the service does) and does not read the Node (callers pass the endpoint).

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long connecting to an agent may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a master trusts and presents when it dials agents over TLS.
#[derive(Clone)]
pub(crate) struct AgentTls {
    /// The cluster CA, PEM: the agents' serving certificates chain to it.
    pub(crate) ca_pem: String,
    /// The master's certificate and key, PEM, presented as its client identity.
    pub(crate) identity: Option<(String, String)>,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTls").finish_non_exhaustive()
    }
}

/// Why an agent's endpoint could not be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// The advertised endpoint is not a URL this master can dial.
    #[error("{endpoint} is not an http:// or https:// URL: {detail}")]
    BadUrl {
        /// The advertised endpoint.
        endpoint: String,
        /// The parser's words.
        detail: String,
    },
    /// The agent serves TLS but this master has no cluster CA to verify it with.
    #[error("the agent at {endpoint} serves TLS but this master runs without TLS (no cluster CA to verify it with)")]
    NoCa {
        /// The advertised endpoint.
        endpoint: String,
    },
    /// The agent's certificate does not verify: another CA, or not for this node.
    #[error("the agent at {endpoint} presented a certificate this master refuses (it must be issued by the cluster CA for node {node}): {detail}")]
    Untrusted {
        /// The node.
        node: String,
        /// The advertised endpoint.
        endpoint: String,
        /// The TLS library's words.
        detail: String,
    },
    /// The connection failed for another reason.
    #[error("the agent at {endpoint} cannot be reached: {detail}")]
    Unreachable {
        /// The advertised endpoint.
        endpoint: String,
        /// The transport's words.
        detail: String,
    },
}

/// Whether `endpoint` is dialled with TLS.
pub(crate) fn is_tls(endpoint: &str) -> bool {
    endpoint.starts_with("https://")
}

/// The TLS settings to dial node `node`'s agent with: the certificate must name the node.
fn client_tls(node: &str, tls: &AgentTls) -> ClientTlsConfig {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .domain_name(node);
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    config
}

pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text
}

/// A channel to the agent of `node` at `endpoint`, with TLS when the endpoint is https.
pub(crate) async fn connect(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
) -> Result<Channel, DialError> {
    let bad_url = |detail: String| DialError::BadUrl {
        endpoint: endpoint.to_owned(),
        detail,
    };
    if !is_tls(endpoint) && !endpoint.starts_with("http://") {
        return Err(bad_url("no http:// or https:// scheme".to_owned()));
    }
    let mut target = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| bad_url(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if is_tls(endpoint) {
        let Some(tls) = tls else {
            return Err(DialError::NoCa {
                endpoint: endpoint.to_owned(),
            });
        };
        target = target
            .tls_config(client_tls(node, tls))
            .map_err(|e| bad_url(error_chain(&e)))?;
    }
    target.connect().await.map_err(|e| {
        let detail = error_chain(&e);
        if detail.contains("certificate") || detail.contains("UnknownIssuer") {
            DialError::Untrusted {
                node: node.to_owned(),
                endpoint: endpoint.to_owned(),
                detail,
            }
        } else {
            DialError::Unreachable {
                endpoint: endpoint.to_owned(),
                detail,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};
    use tonic::transport::{Server, ServerTlsConfig};

    fn issue(ca: &ClusterCa, names: &[&str], usage: CertUsage) -> (String, String) {
        let issued = ca
            .issue(&CertRequest {
                common_name: "system:node:n1".to_owned(),
                organizations: vec!["system:nodes".to_owned()],
                subject_alt_names: names.iter().map(|n| (*n).to_owned()).collect(),
                usage,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        (issued.cert_pem, issued.key_pem)
    }

    /// An https endpoint (a health service) presenting `cert`; stops when dropped.
    async fn agent_endpoint(cert: (String, String)) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (_, health) = tonic_health::server::health_reporter();
        let server = Server::builder()
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert.0, cert.1)))
            .unwrap()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        (url, task)
    }

    fn master_tls(ca: &ClusterCa) -> AgentTls {
        let (cert, key) = issue(ca, &["127.0.0.1"], CertUsage::ServerAndClient);
        AgentTls {
            ca_pem: ca.cert_pem().to_owned(),
            identity: Some((cert, key)),
        }
    }

    #[tokio::test]
    async fn an_agent_certificate_from_the_cluster_ca_naming_the_node_is_accepted() {
        let ca = ClusterCa::generate("t").unwrap();
        let (url, server) =
            agent_endpoint(issue(&ca, &["n1", "127.0.0.1"], CertUsage::Server)).await;
        let tls = master_tls(&ca);
        assert!(connect("n1", &url, Some(&tls)).await.is_ok());
        // The same certificate does not make its holder another node.
        let refused = connect("n2", &url, Some(&tls)).await.unwrap_err();
        assert!(matches!(refused, DialError::Untrusted { .. }), "{refused}");
        server.abort();
    }

    #[tokio::test]
    async fn an_agent_certificate_from_another_ca_is_refused_with_a_clear_error() {
        let ca = ClusterCa::generate("t").unwrap();
        let foreign = ClusterCa::generate("elsewhere").unwrap();
        let (url, server) =
            agent_endpoint(issue(&foreign, &["n1", "127.0.0.1"], CertUsage::Server)).await;
        let error = connect("n1", &url, Some(&master_tls(&ca)))
            .await
            .unwrap_err();
        assert!(matches!(error, DialError::Untrusted { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("issued by the cluster CA for node n1") && text.contains("UnknownIssuer"),
            "{text}"
        );
        // Through the log relay: Unavailable about the agent, naming the node.
        let status = crate::pod_logs::open(
            "n1",
            &url,
            Some(&master_tls(&ca)),
            rafter_proto::agent::LogsRequest::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("node n1"), "{}", status.message());
        assert!(
            status.message().contains("cluster CA"),
            "{}",
            status.message()
        );
        // A master without TLS cannot verify it at all.
        let error = connect("n1", &url, None).await.unwrap_err();
        assert!(matches!(error, DialError::NoCa { .. }), "{error}");
        server.abort();
    }

    #[tokio::test]
    async fn an_endpoint_without_a_known_scheme_is_refused() {
        let error = connect("n1", "ftp://127.0.0.1:1", None).await.unwrap_err();
        assert!(matches!(error, DialError::BadUrl { .. }), "{error}");
    }
}
