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
//! Plaintext on the agent's `--logs-listen` address (loopback by default): there is no
//! TLS between masters and agents yet. That is acceptable for now because the only
//! caller is the gateway, which has authenticated and authorised the user; mutual TLS
//! comes with the agent's certificate bootstrap. Do not listen on a routable address
//! until then.
//!
//! Owns the wire (request checks, chunking, status codes) and the listener's task. It
//! must not read the pod from the API or decide who may read a log: the gateway does.
//! A follow stream ends when the caller goes away (tonic drops it) or the agent stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_logs_server::{AgentLogs, AgentLogsServer};
use rafter_proto::agent::agent_metrics_server::AgentMetricsServer;
use rafter_proto::agent::{LogChunk, LogsRequest};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use crate::logs::{follow_logs, read_logs, LogError, LogRequest};

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
pub(crate) fn advertised(bound: SocketAddr, node_ip: &str) -> String {
    let mut addr = bound;
    if bound.ip().is_unspecified() {
        if let Ok(ip) = node_ip.parse() {
            addr.set_ip(ip);
        }
    }
    format!("http://{addr}")
}

/// Serves the log endpoint on `listener` until `shutdown` turns true. Open follow
/// streams are dropped then, not drained.
/// The metrics endpoint (`crate::metrics_server`) is served on the same listener.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    log_dir: PathBuf,
    metrics: crate::metrics_server::MetricsServer,
    mut shutdown: watch::Receiver<bool>,
) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(AgentLogsServer::new(LogServer { log_dir }))
        .add_service(AgentMetricsServer::new(metrics))
        .serve_with_incoming(incoming);
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                warn!(error = %e, "the log endpoint stopped");
            }
        }
        _ = async {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        } => {}
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
            advertised("0.0.0.0:7000".parse().unwrap(), "10.0.0.5"),
            "http://10.0.0.5:7000"
        );
        assert_eq!(
            advertised("127.0.0.1:7000".parse().unwrap(), "10.0.0.5"),
            "http://127.0.0.1:7000"
        );
    }
}
