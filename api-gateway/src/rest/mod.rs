//! The Kubernetes REST front door: what stock `kubectl` and client libraries speak, served
//! on its own listener beside the gRPC one, onto the same [`ResourcesService`].
//!
//! ```text
//!  kubectl ─ HTTPS (h2 / http1.1, client cert or bearer token, Impersonate-* headers)
//!     │
//!     ▼ serve_rest: TLS accept (the cluster CA verifies optional client certs)
//!  route ─► discovery / version / health / openapi        (answered here, no state)
//!     └──► handlers: JSON ⇄ typed request ─► ResourcesService::{create,get,list,watch,…}
//!                                             (authn, impersonation, authz, admission,
//!                                              audit, registry: the gRPC path itself)
//!          ◄── object / List / Table / watch lines / metav1.Status
//! ```
//!
//! Every resource call is translated into the gRPC service's own request, carrying the
//! HTTP headers as metadata (`authorization`, `impersonate-user`, `impersonate-group`) and
//! the connection's TLS peer certificates as the same extension tonic gives it, so who
//! may do what is decided by exactly the code that decides it for gRPC callers.
//!
//! | module | owns |
//! |---|---|
//! | `route` | the URL grammar: `/api/v1/namespaces/<ns>/<resource>/<name>/<sub>` into a [`route::Route`] |
//! | `discovery` | `/version`, `/api`, `/apis`, the APIResourceLists, derived from the kind table |
//! | `protobuf` | the Kubernetes protobuf bodies kubectl ≥ 1.32's typed clients send, for the kinds kubectl's `create` and `auth` verbs send (ConfigMap, Secret, Namespace, ServiceAccount, Deployment, Job, CronJob, Service, ResourceQuota, RBAC, Eviction, access reviews) |
//! | `convert` | JSON bodies ⇄ typed objects, List kinds, query parameters, building the typed request |
//! | `errors` | gRPC statuses as `metav1.Status` with the HTTP code and reason kubectl expects |
//! | `table` | the `meta.k8s.io/v1` Table answer, with the columns `rafter get` prints |
//! | `watch` | watch events as newline-delimited JSON |
//! | `handlers` | each verb and subresource onto the service |
//! | `exec` | pods/exec and pods/attach: the WebSocket upgrade and the `v5`/`v4.channel.k8s.io` framing, onto the service's exec and attach sessions |
//! | `exec_spdy` | pods/exec and pods/attach over SPDY/3.1: the `channel.k8s.io` v1–v4 streams onto the same sessions |
//! | `portforward` | pods/portforward: SPDY/3.1 (kubectl ≤ 1.30) or SPDY tunnelled in WebSocket (≥ 1.31), each stream pair onto the service's port-forward session |
//! | `spdy` | a server's SPDY/3.1 session (frames, zlib header blocks, flow control), the upgrade handshake, and its WebSocket tunnel |
//! | `metrics` | `metrics.k8s.io/v1beta1` (`kubectl top`): its paths and shapes, from the service's `Metrics` figures |
//! | `openapi` | `/openapi/v2` and `/openapi/v3` |
//!
//! This module owns HTTP and the Kubernetes wire conventions only: it must not read the
//! registry or decide access itself.

mod convert;
mod discovery;
mod errors;
mod exec;
mod exec_spdy;
mod handlers;
mod metrics;
mod openapi;
mod portforward;
mod protobuf;
mod route;
mod spdy;
mod table;
mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::server::ServerTls;
use crate::service::ResourcesService;
use crate::store::KvStore;

/// The body of every answer.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Why the REST listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The serving certificate, key or client CA could not be used.
    #[error("the REST listener's TLS material is unusable: {0}")]
    Tls(String),
}

/// What the connection told about the caller: the TCP peer, and its TLS certificates.
#[derive(Clone)]
pub(crate) enum Peer {
    /// A plaintext connection.
    Plain(TcpConnectInfo),
    /// A TLS connection (with the client's certificates, if it sent any).
    Tls(TlsConnectInfo<TcpConnectInfo>),
}

impl Peer {
    /// Puts the connection info where tonic puts it, so `peer_certs()` and
    /// `remote_addr()` answer the same as for a gRPC call.
    pub(crate) fn insert_into(&self, extensions: &mut http::Extensions) {
        match self {
            Peer::Plain(info) => {
                extensions.insert(info.clone());
            }
            Peer::Tls(info) => {
                extensions.insert(info.clone());
            }
        }
    }
}

/// The rustls server configuration: the serving certificate, optional client
/// certificates verified against the cluster CA (a caller may use a token instead), and
/// ALPN for HTTP/2 and HTTP/1.1.
fn tls_config(tls: &ServerTls) -> Result<rustls::ServerConfig, RestError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| RestError::Tls(format!("{what}: {e}"));
    let certs = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("the serving certificate", &e))?;
    let key = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .map_err(|e| bad("the serving key", &e))?
        .ok_or_else(|| RestError::Tls("the serving key PEM holds no key".to_owned()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut tls.client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| bad("the client CA", &e))?;
        roots.add(ca).map_err(|e| bad("the client CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| bad("the client verifier", &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("the TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad("the serving certificate", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS acceptor of the REST listener (`None`: plaintext), checked before serving so
/// unusable material stops the gateway at start.
pub(crate) fn acceptor(tls: Option<&ServerTls>) -> Result<Option<Acceptor>, RestError> {
    match tls {
        Some(tls) => Ok(Some(Acceptor(tokio_rustls::TlsAcceptor::from(Arc::new(
            tls_config(tls)?,
        ))))),
        None => Ok(None),
    }
}

/// A prepared TLS acceptor.
#[derive(Clone)]
pub(crate) struct Acceptor(tokio_rustls::TlsAcceptor);

/// Serves the REST API on `listener` until `shutdown` completes, over `service` (the
/// gRPC service's own instance), with TLS when `acceptor` is given (plaintext is for
/// local development only). Connections open at shutdown are dropped with the task.
pub(crate) async fn serve_rest<S: KvStore>(
    listener: TcpListener,
    acceptor: Option<Acceptor>,
    service: Arc<ResourcesService<S>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let api = Arc::new(handlers::Rest::new(service));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "the REST listener could not accept a connection");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        connections.spawn(async move {
            match acceptor {
                Some(Acceptor(acceptor)) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let peer = Peer::Tls(stream.connect_info());
                        serve_connection(stream, peer, api).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "a REST client failed the TLS handshake"),
                },
                None => {
                    let peer = Peer::Plain(stream.connect_info());
                    serve_connection(stream, peer, api).await;
                }
            }
        });
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Serves HTTP/1.1 or HTTP/2 (whichever the client speaks) on one connection.
async fn serve_connection<S, IO>(io: IO, peer: Peer, api: Arc<handlers::Rest<S>>)
where
    S: KvStore,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let api = api.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(api.handle(request, peer).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "a REST connection ended with an error");
    }
}
