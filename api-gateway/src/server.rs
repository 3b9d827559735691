//! Serving the API: the `Resources` and `Cluster` services plus the standard gRPC health
//! service on one listener, with TLS (rustls) and client-certificate verification against
//! the cluster CA, or in plaintext only when asked for explicitly (local development).
//!
//! Owns the transport (listener, TLS, message size limits, graceful shutdown) and the
//! wiring of one gateway: its authorization cache, its authorizer chain and the default
//! RBAC policy, started with the server and stopped with it, and the audit log it is given
//! ([`ServeOptions`]). It does not decide who may
//! call (`authz`, `rbac`, `node_authz`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rafter_proto::api::cluster_server::ClusterServer;
use rafter_proto::api::resources_server::ResourcesServer;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::audit::{Auditor, CallPath};
use crate::auth::Authenticator;
use crate::auth::TokenFile;
use crate::authz::{Authorizer, Chain, PrivilegedGroup};
use crate::authz_cache::AuthzCache;
use crate::bootstrap_policy::ensure_default_policy;
use crate::cluster::{ClusterControl, ClusterService};
use crate::flow_control::FlowControl;
use crate::node_authz::NodeAuthorizer;
use crate::rbac::Rbac;
use crate::registry::Registry;
use crate::sa_token::TokenKeys;
use crate::service::ResourcesService;
use crate::store::KvStore;

/// The largest request the transport decodes. Objects over the registry's limit are
/// refused by the registry with ResourceExhausted; this bound only stops runaway input.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// How long a starting gateway waits for its authorization cache before serving.
const CACHE_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Aborts a task when dropped (the default-policy task ends with the server).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The authorizers every request passes, in order: cluster administrators, the Node
/// authorizer, RBAC; what none allows is refused.
pub fn authorizer(cache: &Arc<AuthzCache>) -> Arc<dyn Authorizer> {
    let graph = cache.clone();
    let policy = cache.clone();
    Arc::new(Chain::new(vec![
        Box::new(PrivilegedGroup::masters()),
        Box::new(NodeAuthorizer::new(move |check| graph.read_graph(check))),
        Box::new(Rbac::new(move || policy.policy())),
    ]))
}

/// PEM material for a TLS listener.
#[derive(Clone)]
pub struct ServerTls {
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
    /// The CA whose client certificates are accepted (clients may also use tokens).
    pub client_ca_pem: String,
    /// The certificate and key (PEM) the gateway presents when it dials a node's agent
    /// (logs, metrics); `None` presents the serving certificate. A master's serving
    /// certificate is no client identity of its own, so masters give one here.
    pub agent_client: Option<(String, String)>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (TLS material rejected, listener broken ...).
    #[error("the API server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The REST listener could not start.
    #[error(transparent)]
    Rest(#[from] crate::rest::RestError),
}

/// The accepted connections of `listener` with TCP_NODELAY set: tonic ignores its own
/// `tcp_nodelay` for streams it did not accept, and Nagle's algorithm would hold small
/// replies back ~40 ms (the delayed-ACK timer).
fn without_nagle(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |stream| {
            stream.inspect(|s| {
                let _ = s.set_nodelay(true);
            })
        },
    )
}

/// What a gateway may be given beyond its listener, store and credentials; the default
/// is what [`serve`] runs with.
#[derive(Default)]
pub struct ServeOptions {
    /// Serves the Kubernetes REST API (stock kubectl) on this listener too, with the same
    /// TLS, callers and service as the gRPC one; `None`: gRPC only.
    pub rest_listener: Option<TcpListener>,
    /// Records every call of the `Resources` and `Cluster` services; `None`: no audit.
    pub audit: Option<Arc<Auditor>>,
    /// Signs and verifies ServiceAccount tokens (the masters' shared `sa.key`); `None`:
    /// no tokens are issued or accepted.
    pub service_account_keys: Option<Arc<TokenKeys>>,
    /// Replaces the authorizer chain of [`authorizer`]: for benchmarks that measure what
    /// authorization costs, never in a master. `None`: the chain.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// The authorization cache a master shares with its controllers (which it authorizes
    /// as their own identities); `None`: the gateway starts one of its own.
    pub authz_cache: Option<Arc<AuthzCache>>,
    /// Seats and fair queues for mutating requests (a master's are on by default);
    /// `None`: every request is served at once.
    pub flow_control: Option<Arc<FlowControl>>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("rest_listener", &self.rest_listener)
            .field("audit", &self.audit)
            .field("service_account_keys", &self.service_account_keys)
            .field("authorizer", &self.authorizer.as_ref().map(|_| "replaced"))
            .field("authz_cache", &self.authz_cache.as_ref().map(|_| "shared"))
            .field("flow_control", &self.flow_control)
            .finish()
    }
}

/// Serves the API on `listener` until `shutdown` completes. `tls = None` is plaintext.
pub async fn serve<S, C>(
    listener: TcpListener,
    tls: Option<ServerTls>,
    registry: Registry<S>,
    control: Arc<C>,
    tokens: Arc<TokenFile>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: KvStore,
    C: ClusterControl,
{
    serve_with(
        listener,
        tls,
        registry,
        control,
        tokens,
        ServeOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with `options` (an audit log).
pub async fn serve_with<S, C>(
    listener: TcpListener,
    tls: Option<ServerTls>,
    registry: Registry<S>,
    control: Arc<C>,
    tokens: Arc<TokenFile>,
    mut options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    S: KvStore,
    C: ClusterControl,
{
    let authenticator = Authenticator::new(registry.clone(), tokens)
        .with_service_account_keys(options.service_account_keys.clone());
    let (cache, _cache_guard) = match options.authz_cache.clone() {
        Some(cache) => (cache, None),
        None => {
            let (cache, guard) = AuthzCache::start(registry.clone());
            (cache, Some(guard))
        }
    };
    let policy_task = tokio::spawn(ensure_default_policy(registry.clone()));
    let _policy_guard = AbortOnDrop(policy_task);
    if !cache.wait_synced(CACHE_SYNC_TIMEOUT).await {
        tracing::warn!(
            "the authorization cache did not list its kinds within {CACHE_SYNC_TIMEOUT:?}; serving, and refusing what it cannot yet allow"
        );
    }
    let authorizer = options
        .authorizer
        .clone()
        .unwrap_or_else(|| authorizer(&cache));
    let mut service = ResourcesService::new(registry, authenticator.clone(), authorizer.clone())
        .with_audit(options.audit.clone())
        .with_token_keys(options.service_account_keys.clone())
        .with_flow_control(options.flow_control.clone());
    if let Some(tls) = &tls {
        // Agents are dialled with the gateway's agent-client identity.
        let (cert, key) = tls
            .agent_client
            .clone()
            .unwrap_or_else(|| (tls.cert_pem.clone(), tls.key_pem.clone()));
        service = service.with_agent_tls(tls.client_ca_pem.clone(), cert, key);
    }
    let service = Arc::new(service);
    // The REST front door serves the same service instance; it stops with the gRPC server.
    let (rest_stop, rest_stopped) = tokio::sync::oneshot::channel::<()>();
    let rest_acceptor = crate::rest::acceptor(tls.as_ref())?;
    let rest = options.rest_listener.take().map(|listener| {
        tokio::spawn(crate::rest::serve_rest(
            listener,
            rest_acceptor,
            service.clone(),
            async {
                let _ = rest_stopped.await;
            },
        ))
    });
    let resources = ResourcesServer::from_arc(service)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(64 * 1024 * 1024);
    let cluster = ClusterServer::new(
        ClusterService::new(control, authenticator, authorizer).with_audit(options.audit.clone()),
    );
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ResourcesServer<ResourcesService<S>>>()
        .await;

    // The audit log records each call's path, which tonic hands handlers only this way.
    let call_paths = options
        .audit
        .is_some()
        .then(|| tower::util::MapRequestLayer::new(CallPath::insert::<tonic::body::Body>));
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(tls.cert_pem, tls.key_pem))
            .client_ca_root(Certificate::from_pem(tls.client_ca_pem))
            .client_auth_optional(true);
        builder = builder.tls_config(config)?;
    }
    let served = builder
        .layer(tower::util::option_layer(call_paths))
        .add_service(resources)
        .add_service(cluster)
        .add_service(health)
        .serve_with_incoming_shutdown(without_nagle(listener), shutdown)
        .await;
    let _ = rest_stop.send(());
    if let Some(rest) = rest {
        if let Err(e) = rest.await {
            tracing::warn!(error = %e, "the REST server task failed");
        }
    }
    served?;
    Ok(())
}
