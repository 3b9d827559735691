//! The agent's log endpoint: the internal gRPC service `rafter.agent.v1.AgentLogs`, which
//! the masters' gateways call to serve `rafter logs` (pods/log).
//!
//! ```text
//!   rafter logs ─► gateway (authenticates, finds the pod's node and its
//!                  rafter.io/agent-logs-endpoint annotation)
//!                     │ AgentLogs.Logs(namespace, pod, uid, container, tail, previous, follow)
//!                     ▼
//!   LogServer ─► read_logs / follow_logs (crate::logs) ─► LogChunk{lines + '\n'}
//! ```
//!
//! With a serving certificate (`crate::serving`: agents that joined through TLS bootstrap)
//! the endpoint serves TLS and is advertised as `https://`; the masters verify it against
//! the cluster CA and the node's name, and the endpoint requires a client certificate of
//! that CA in the group `system:masters` (the masters present theirs; a node's or another
//! user's certificate is refused). Connections arriving before the first certificate
//! wait in the listen queue; a renewed certificate starts a new server on the same
//! listener while the old one finishes its streams. Without one (token-only agents,
//! clusters without TLS) it stays plaintext (`http://`), as before: the only caller is
//! the gateway, which has authenticated and authorised the user, but such an endpoint
//! should stay on loopback or a trusted network.
//!
//! Owns the wire (request checks, chunking, status codes) and the listener's task. It
//! must not read the pod from the API or decide who may read a log: the gateway does.
//! A follow stream ends when the caller goes away (tonic drops it) or the agent stops.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_images_server::AgentImagesServer;
use rafter_proto::agent::agent_logs_server::{AgentLogs, AgentLogsServer};
use rafter_proto::agent::agent_metrics_server::AgentMetricsServer;
use rafter_proto::agent::agent_streams_server::AgentStreamsServer;
use rafter_proto::agent::{LogChunk, LogsRequest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::image_server::ImageServer;
use crate::logs::{follow_logs, read_logs, LogError, LogRequest};
use crate::serving::{ServingCert, ServingIdentity};

/// A non-follow answer is sent in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// The `AgentLogs` service over the agent's log directory.
pub(crate) struct LogServer {
    log_dir: PathBuf,
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

fn status_of(error: LogError) -> Status {
    match error {
        LogError::NotFound { .. } => Status::not_found(error.to_string()),
        LogError::Io { .. } => Status::internal(error.to_string()),
    }
}

/// A name that is safe as one path component.
fn component(field: &str, value: &str) -> Result<String, Status> {
    if value.is_empty() || value.contains('/') || value == "." || value == ".." {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} is not a name"
        )));
    }
    Ok(value.to_owned())
}

/// The library request of a wire request, or InvalidArgument.
fn log_request(r: &LogsRequest) -> Result<LogRequest, Status> {
    let tail = match r.tail_lines {
        None => None,
        Some(n) if n < 0 => {
            return Err(Status::invalid_argument(format!(
                "tail_lines must not be negative (got {n})"
            )))
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    Ok(LogRequest {
        namespace: component("namespace", &r.namespace)?,
        pod_name: component("pod name", &r.pod_name)?,
        pod_uid: component("pod uid", &r.pod_uid)?,
        container: component("container", &r.container)?,
        tail,
        previous: r.previous,
    })
}

/// Lines joined into chunks of about [`CHUNK_BYTES`], each line ending in `\n`.
fn chunks(lines: Vec<String>) -> Vec<LogChunk> {
    let mut out = Vec::new();
    let mut data = Vec::new();
    for line in lines {
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        if data.len() >= CHUNK_BYTES {
            out.push(LogChunk {
                data: std::mem::take(&mut data),
            });
        }
    }
    if !data.is_empty() {
        out.push(LogChunk { data });
    }
    out
}

#[tonic::async_trait]
impl AgentLogs for LogServer {
    type LogsStream = LogStream;

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let wire = request.into_inner();
        let r = log_request(&wire)?;
        debug!(pod = %format!("{}/{}", r.namespace, r.pod_name), container = %r.container, follow = wire.follow, "log requested");
        if wire.follow {
            let lines = follow_logs(&self.log_dir, r).map(|line| match line {
                Ok(mut line) => {
                    line.push('\n');
                    Ok(LogChunk {
                        data: line.into_bytes(),
                    })
                }
                Err(e) => Err(status_of(e)),
            });
            return Ok(Response::new(Box::pin(lines)));
        }
        let lines = read_logs(&self.log_dir, &r).await.map_err(status_of)?;
        let stream = futures::stream::iter(chunks(lines).into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The URL the gateway reaches a listener bound to `bound` at: the node's InternalIP
/// when it is bound to every address.
/// `https://` when `tls`, `http://` otherwise.
pub(crate) fn advertised(bound: SocketAddr, node_ip: &str, tls: bool) -> String {
    let mut addr = bound;
    if bound.ip().is_unspecified() {
        if let Ok(ip) = node_ip.parse() {
            addr.set_ip(ip);
        }
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// The connections `listener` accepts, as a stream several servers can take turns on.
fn accepts(listener: Arc<TcpListener>) -> impl Stream<Item = std::io::Result<TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, l))
    })
}

type ServerRun = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// A TLS server with `identity` on `listener` until `stop` fires.
/// Lets a call through only if its client certificate names a member of `system:masters`
/// (the masters, and cluster admins): nodes and other users read logs and metrics through
/// the gateway, which authorises them.
fn caller_is_a_master(request: Request<()>) -> Result<Request<()>, Status> {
    let cert = request
        .peer_certs()
        .and_then(|certs| certs.first().cloned())
        .ok_or_else(|| {
            Status::unauthenticated("a client certificate of the cluster CA is required")
        })?;
    let identity = rafter_client::cert_identity(cert.as_ref()).map_err(|e| {
        Status::unauthenticated(format!("the client certificate cannot be read: {e}"))
    })?;
    if identity
        .groups
        .iter()
        .any(|g| g == rafter_proto::well_known::MASTERS_GROUP)
    {
        Ok(request)
    } else {
        Err(Status::permission_denied(format!(
            "{} may not call this node's endpoint: only {} may (read logs and metrics through the API)",
            identity.user,
            rafter_proto::well_known::MASTERS_GROUP
        )))
    }
}

fn tls_server(
    listener: Arc<TcpListener>,
    serving: &ServingIdentity,
    logs: Arc<LogServer>,
    metrics: Arc<crate::metrics_server::MetricsServer>,
    images: Arc<ImageServer>,
    exec: Arc<crate::exec_server::ExecServer>,
    stop: oneshot::Receiver<()>,
) -> Result<ServerRun, tonic::transport::Error> {
    let identity = &serving.identity;
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
    if let Some(ca) = &serving.client_ca_pem {
        // Callers must present a certificate of the cluster CA (masters do).
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    // With client certificates required, only the masters (group system:masters) may
    // call: a node's or a user's certificate from the same CA is refused.
    let masters_only = serving.client_ca_pem.is_some();
    let check = move |request: Request<()>| {
        if masters_only {
            caller_is_a_master(request)
        } else {
            Ok(request)
        }
    };
    let server = tonic::transport::Server::builder()
        .tls_config(config)?
        .add_service(InterceptedService::new(
            AgentLogsServer::from_arc(logs),
            check,
        ))
        .add_service(InterceptedService::new(
            AgentMetricsServer::from_arc(metrics),
            check,
        ))
        .add_service(InterceptedService::new(
            AgentImagesServer::from_arc(images),
            check,
        ))
        .add_service(InterceptedService::new(
            AgentStreamsServer::from_arc(exec),
            check,
        ))
        .serve_with_incoming_shutdown(accepts(listener), async {
            let _ = stop.await;
        });
    Ok(Box::pin(server))
}

/// Serves TLS with each certificate `certs` publishes, until `shutdown` completes.
async fn serve_tls(
    listener: TcpListener,
    logs: LogServer,
    metrics: crate::metrics_server::MetricsServer,
    images: ImageServer,
    exec: crate::exec_server::ExecServer,
    mut certs: ServingCert,
    shutdown: impl Future<Output = ()>,
) {
    let listener = Arc::new(listener);
    let (logs, metrics, images, exec) = (
        Arc::new(logs),
        Arc::new(metrics),
        Arc::new(images),
        Arc::new(exec),
    );
    let mut running = FuturesUnordered::<ServerRun>::new();
    let mut stop_current: Option<oneshot::Sender<()>> = None;
    certs.mark_changed();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            changed = certs.changed() => {
                if changed.is_err() {
                    // Nobody renews any more: keep serving with what there is.
                    std::future::pending::<()>().await;
                }
                let Some(identity) = certs.borrow_and_update().clone() else { continue };
                let (stop, stopped) = oneshot::channel();
                match tls_server(listener.clone(), &identity, logs.clone(), metrics.clone(), images.clone(), exec.clone(), stopped) {
                    Ok(server) => {
                        // The previous server stops accepting and finishes its streams.
                        if let Some(previous) = stop_current.replace(stop) {
                            let _ = previous.send(());
                        }
                        running.push(server);
                        info!("log endpoint serving TLS with the current serving certificate");
                    }
                    Err(e) => warn!(error = %e, "the serving certificate cannot be used"),
                }
            }
            Some(result) = running.next(), if !running.is_empty() => {
                if let Err(e) = result {
                    warn!(error = %e, "the log endpoint stopped");
                }
            }
        }
    }
}

/// Serves the log endpoint on `listener` until `shutdown` turns true. Open follow
/// streams are dropped then, not drained.
/// The metrics endpoint (`crate::metrics_server`), the image endpoint
/// (`crate::image_server`) and the exec endpoint (`crate::exec_server`) are served on the
/// same listener.
/// With `tls`, it serves TLS with the serving certificates published there.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    log_dir: PathBuf,
    metrics: crate::metrics_server::MetricsServer,
    images: ImageServer,
    exec: crate::exec_server::ExecServer,
    tls: Option<ServingCert>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stopping = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    if let Some(certs) = tls {
        serve_tls(
            listener,
            LogServer { log_dir },
            metrics,
            images,
            exec,
            certs,
            stopping,
        )
        .await;
        return;
    }
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(AgentLogsServer::new(LogServer { log_dir }))
        .add_service(AgentMetricsServer::new(metrics))
        .add_service(AgentImagesServer::new(images))
        .add_service(AgentStreamsServer::new(exec))
        .serve_with_incoming(incoming);
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                warn!(error = %e, "the log endpoint stopped");
            }
        }
        () = stopping => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> LogsRequest {
        LogsRequest {
            namespace: "ns".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            container: "c".into(),
            ..LogsRequest::default()
        }
    }

    #[test]
    fn a_request_with_a_path_in_a_name_or_a_negative_tail_is_refused() {
        assert!(log_request(&wire()).is_ok());
        let mut r = wire();
        r.container = "../../etc".into();
        assert_eq!(
            log_request(&r).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let mut r = wire();
        r.pod_uid = "..".into();
        assert!(log_request(&r).is_err());
        let mut r = wire();
        r.tail_lines = Some(-1);
        assert!(log_request(&r).is_err());
        r.tail_lines = Some(3);
        assert_eq!(log_request(&r).unwrap().tail, Some(3));
    }

    #[test]
    fn lines_are_chunked_with_newlines_and_an_unspecified_address_advertises_the_node_ip() {
        let c = chunks(vec!["a".into(), "b".into()]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].data, b"a\nb\n");
        let big = vec!["x".repeat(1000); 200];
        let c = chunks(big);
        assert!(c.len() > 1);
        assert_eq!(c.iter().map(|c| c.data.len()).sum::<usize>(), 200 * 1001);
        assert_eq!(
            advertised("0.0.0.0:7000".parse().unwrap(), "10.0.0.5", false),
            "http://10.0.0.5:7000"
        );
        assert_eq!(
            advertised("127.0.0.1:7000".parse().unwrap(), "10.0.0.5", true),
            "https://127.0.0.1:7000"
        );
    }

    fn issue(
        ca: &rafter_client::ClusterCa,
        name: &str,
        group: &str,
        usage: rafter_client::CertUsage,
        hosts: &[&str],
    ) -> rafter_client::CertAndKey {
        ca.issue(&rafter_client::CertRequest {
            common_name: name.into(),
            organizations: vec![group.into()],
            subject_alt_names: hosts.iter().map(|h| h.to_string()).collect(),
            usage,
            validity: time::Duration::hours(1),
        })
        .expect("issue a certificate")
    }

    /// Asks the endpoint at `addr` (serving as node `n1`) for a log, presenting `client`.
    async fn ask(addr: SocketAddr, ca_pem: &str, client: &rafter_client::CertAndKey) -> Status {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .identity(Identity::from_pem(&client.cert_pem, &client.key_pem))
            .domain_name("n1");
        let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("client TLS")
            .connect()
            .await
            .expect("connect");
        let mut logs = rafter_proto::agent::agent_logs_client::AgentLogsClient::new(channel);
        match logs.logs(wire()).await {
            Ok(_) => panic!("no such log exists, the call cannot succeed"),
            Err(status) => status,
        }
    }

    #[tokio::test]
    async fn over_tls_only_members_of_system_masters_may_call() {
        use rafter_client::CertUsage;
        let ca = rafter_client::ClusterCa::generate("test").expect("a CA");
        let serving = issue(
            &ca,
            "system:node:n1",
            "system:nodes",
            CertUsage::Server,
            &["n1"],
        );
        let master = issue(
            &ca,
            "rafter-master-1",
            rafter_proto::well_known::MASTERS_GROUP,
            CertUsage::Client,
            &[],
        );
        let node = issue(
            &ca,
            "system:node:n2",
            "system:nodes",
            CertUsage::Client,
            &[],
        );
        let (_certs, rx) = watch::channel(Some(ServingIdentity {
            identity: rafter_client::ClientIdentity {
                cert_pem: serving.cert_pem,
                key_pem: serving.key_pem,
            },
            client_ca_pem: Some(ca.cert_pem().to_owned()),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let dir = tempfile::tempdir().expect("log dir");
        let runtime = Arc::new(crate::HollowRuntime::new(crate::HollowConfig::default()));
        let metrics = crate::metrics_server::MetricsServer::new("n1".into(), runtime.clone());
        let pinned = Arc::new(
            crate::pinned_images::PinnedImages::load(dir.path().join("pinned"), Vec::new())
                .await
                .expect("pinned images"),
        );
        let images = ImageServer::new("n1".into(), runtime.clone(), pinned, dir.path());
        let exec = crate::exec_server::ExecServer::new(runtime);
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            dir.path().to_owned(),
            metrics,
            images,
            exec,
            Some(rx),
            stopped,
        ));

        // A master gets past the check: the log simply does not exist.
        assert_eq!(
            ask(addr, ca.cert_pem(), &master).await.code(),
            tonic::Code::NotFound
        );
        // Another node's certificate, from the same CA, is refused and told why.
        let refused = ask(addr, ca.cert_pem(), &node).await;
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("system:node:n2"),
            "{}",
            refused.message()
        );

        let _ = stop.send(true);
        let _ = server.await;
    }
}
