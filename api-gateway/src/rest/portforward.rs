//! `…/pods/<name>/portforward`: kubectl's SPDY session of stream pairs, one pair per
//! local TCP connection, each relayed onto the service's port-forward session
//! (`ResourcesService::port_forward_session`, the gRPC `Resources.PortForward`'s path).
//!
//! ```text
//!  kubectl ≤ 1.30 ── POST …/portforward   Upgrade: SPDY/3.1,
//!                                         X-Stream-Protocol-Version: portforward.k8s.io
//!  kubectl ≥ 1.31 ── GET  …/portforward   Upgrade: websocket,
//!                    Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io
//!                    (the same SPDY session, carried in binary messages: `spdy::tunnel`)
//!     │ admit_port_forward (create pods/portforward) ── refused: the usual metav1.Status
//!     ◄ 101
//!  per local connection, streams with headers streamType, port, requestID:
//!     error (the client half-closes it at once), data
//!     data bytes ─► port_forward_session input (FIN: the client's half-close)
//!     the pod's bytes ─► data; their end ─► FIN on data and error
//!     a failure ─► its message on the error stream (kubectl prints it)
//! ```
//!
//! Owns the pairing of streams and the relay only; who may forward, and how the node
//! reaches the pod's port, are the service's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rafter_proto::api;
use rafter_proto::Kind;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::convert::{full, subject, Call};
use super::errors::ApiError;
use super::route::ResourcePath;
use super::spdy::{tunnel, upgrade, Session, Stream};
use super::{Body, Peer};
use crate::service::ResourcesService;
use crate::store::KvStore;

/// The stream protocol of port-forward.
const PROTOCOL: &str = "portforward.k8s.io";

/// The WebSocket subprotocol that tunnels it (kubectl ≥ 1.31).
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long the client has to close the connection once the session ends.
const LINGER: Duration = Duration::from_secs(5);

/// Whether `path` is a pod's portforward subresource.
pub(crate) fn is_port_forward(path: &ResourcePath) -> bool {
    path.kind == Kind::Pod
        && path.name.is_some()
        && path.subresource.as_deref() == Some("portforward")
}

/// Answers a port-forward request: 101 and the session's task, or the refusal.
pub(crate) async fn port_forward<S: KvStore>(
    service: Arc<ResourcesService<S>>,
    mut request: http::Request<Incoming>,
    peer: Peer,
    path: ResourcePath,
) -> http::Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _body) = request.into_parts();
    let call = Call::new(&parts, peer);
    let namespace = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    // Whatever the transport, a caller who may not forward hears Forbidden first.
    if let Err(status) = service
        .admit_port_forward(call.grpc(()), &namespace, &name)
        .await
    {
        return ApiError::from_status(&status, &subject(Kind::Pod, Some(&name))).into_response();
    }
    let pod = Pod {
        service,
        call: Arc::new(call),
        namespace,
        name,
    };
    if upgrade::requested(&parts.headers) {
        let offered = upgrade::offered(&parts.headers);
        if upgrade::negotiate(&offered, &[PROTOCOL]).is_none() {
            return ApiError::bad_request(format!(
                "unable to negotiate a stream protocol: the client offers {offered:?}, the \
                 server serves [\"{PROTOCOL}\"]"
            ))
            .into_response();
        }
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => pod.serve(Session::start(TokioIo::new(upgraded))).await,
                Err(e) => debug!(error = %e, "the port-forward upgrade to SPDY failed"),
            }
        });
        return upgrade::switching(PROTOCOL);
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let websocket = header("upgrade").eq_ignore_ascii_case("websocket");
    let key = header("sec-websocket-key").to_owned();
    let tunnelled = header("sec-websocket-protocol")
        .split(',')
        .any(|p| p.trim() == TUNNEL_PROTOCOL);
    if !(websocket && tunnelled && !key.is_empty()) {
        return ApiError::bad_request(format!(
            "port-forward needs a connection upgrade: SPDY/3.1 (X-Stream-Protocol-Version: \
             {PROTOCOL}) or WebSocket (Sec-WebSocket-Protocol: {TUNNEL_PROTOCOL})"
        ))
        .into_response();
    }
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                pod.serve(Session::start(tunnel::bytes_of(ws))).await;
            }
            Err(e) => debug!(error = %e, "the port-forward upgrade to WebSocket failed"),
        }
    });
    let mut answer = http::Response::new(full(Bytes::new()));
    *answer.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = http::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(TUNNEL_PROTOCOL),
    );
    answer
}

/// The pod being forwarded to, and the caller's credentials for each connection.
struct Pod<S> {
    service: Arc<ResourcesService<S>>,
    call: Arc<Call>,
    namespace: String,
    name: String,
}

impl<S: KvStore> Pod<S> {
    /// Pairs the streams the client opens by their requestID and forwards each pair,
    /// until the client closes the session.
    async fn serve(self, mut session: Session) {
        let this = Arc::new(self);
        let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
        let mut forwards = tokio::task::JoinSet::new();
        loop {
            let stream = tokio::select! {
                stream = session.accept() => match stream {
                    Some(stream) => stream,
                    None => break,
                },
                Some(_) = forwards.join_next(), if !forwards.is_empty() => continue,
            };
            let request_id = stream.header("requestid").unwrap_or("").to_owned();
            let entry = pending.entry(request_id.clone()).or_default();
            match stream.header("streamtype") {
                Some("error") => entry.0 = Some(stream),
                Some("data") => entry.1 = Some(stream),
                other => {
                    debug!(stream_type = ?other, "a port-forward stream of an unknown type is reset");
                    stream.writer().reset().await;
                    continue;
                }
            }
            if matches!(pending.get(&request_id), Some((Some(_), Some(_)))) {
                if let Some((Some(error), Some(data))) = pending.remove(&request_id) {
                    forwards.spawn(this.clone().forward(error, data));
                }
            }
        }
        // The client is gone: its connections end with it.
        forwards.abort_all();
        session.close(LINGER).await;
    }

    /// Relays one connection: the data stream's bytes to the pod's port and back.
    async fn forward(self: Arc<Self>, error: Stream, mut data: Stream) {
        let errors = error.writer();
        let data_out = data.writer();
        let port = data
            .header("port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let Some(port) = port else {
            let message = format!(
                "invalid port header {:?}: a port-forward stream needs a TCP port",
                data.header("port").unwrap_or("")
            );
            let _ = errors.write(Bytes::from(message)).await;
            let _ = errors.finish().await;
            data_out.reset().await;
            return;
        };
        let (input, input_rx) = mpsc::channel::<Bytes>(16);
        let pump = tokio::spawn(async move {
            while let Some(bytes) = data.recv().await {
                if input.send(bytes).await.is_err() {
                    return;
                }
            }
            // The client's half-close ends the input stream (input is dropped here).
        });
        let start = api::PortForwardStart {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            port: u32::from(port),
        };
        let failure = match self
            .service
            .port_forward_session(
                self.call.grpc(()),
                start,
                tokio_stream::wrappers::ReceiverStream::new(input_rx),
            )
            .await
        {
            Err(status) => Some(status.message().to_owned()),
            Ok(mut output) => loop {
                match output.next().await {
                    Some(Ok(bytes)) => {
                        if data_out.write(bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Err(status)) => break Some(status.message().to_owned()),
                    None => break None,
                }
            },
        };
        if let Some(message) = failure {
            // The agent's own failures already say which port and pod.
            let message = if message.starts_with("error forwarding port") {
                message
            } else {
                format!(
                    "error forwarding port {port} to pod {}/{}: {message}",
                    self.namespace, self.name
                )
            };
            let _ = errors.write(Bytes::from(message)).await;
        }
        let _ = data_out.finish().await;
        let _ = errors.finish().await;
        pump.abort();
    }
}
