//! `…/pods/<name>/exec` and `…/pods/<name>/attach` over WebSocket, as kubectl ≥ 1.30
//! speaks them, onto the service's exec and attach sessions
//! (`ResourcesService::exec_session`/`attach_session`, the gRPC `Resources.Exec`'s and
//! `Resources.Attach`'s own paths). Both share the upgrade and the channel framing.
//!
//! ```text
//!  kubectl ── GET/POST …/exec?command=..&container=..&stdin=..&tty=..
//!             (or …/attach?container=..&stdin=..&tty=..)
//!             Upgrade: websocket, Sec-WebSocket-Protocol: v5.channel.k8s.io (or v4)
//!     │ exec_session / attach_session (authn, create pods/exec or pods/attach, audit,
//!     │ the agent's stream) ── refused: the usual metav1.Status
//!     ◄ 101 Switching Protocols, the chosen subprotocol
//!  frames, first byte the stream:   client ─► 0 stdin, 4 resize {"Width","Height"},
//!                                             255 close (v5: [255, 0] = stdin closed)
//!                                   server ─► 1 stdout, 2 stderr, 3 metav1.Status, close
//! ```
//!
//! A SPDY/3.1 upgrade (what kubectl ≤ 1.29 speaks, and newer kubectl's fallback) opens
//! the same session and is relayed by `exec_spdy`. A request with neither upgrade is
//! authorised first, so a caller who may not exec (attach) hears Forbidden, and then
//! refused with 400. An attach ends with Success on stream 3 when the container ends.
//! Owns the WebSocket upgrade and its channel framing only.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rafter_proto::api::{self, attach_request, exec_request, exec_response};
use rafter_proto::Kind;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::convert::{full, subject, Call};
use super::errors::ApiError;
use super::exec_spdy;
use super::route::ResourcePath;
use super::spdy::upgrade;
use super::{Body, Peer};
use crate::service::{CommandStart, ResourcesService};
use crate::store::KvStore;

/// The channel protocols served, best first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Whether `path` is a pod's exec subresource.
pub(crate) fn is_exec(path: &ResourcePath) -> bool {
    path.kind == Kind::Pod && path.name.is_some() && path.subresource.as_deref() == Some("exec")
}

/// Whether `path` is a pod's attach subresource.
pub(crate) fn is_attach(path: &ResourcePath) -> bool {
    path.kind == Kind::Pod && path.name.is_some() && path.subresource.as_deref() == Some("attach")
}

/// The upgrade a request asked for, with the stream protocol chosen.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// WebSocket, with its subprotocol.
    WebSocket(&'static str),
    /// SPDY/3.1, with its X-Stream-Protocol-Version.
    Spdy(&'static str),
}

/// Which session a request opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Exec,
    Attach,
}

/// The attach input of an exec-shaped one (the frames are the same).
fn attach_input(message: api::ExecRequest) -> Option<api::AttachRequest> {
    let msg = match message.msg? {
        exec_request::Msg::Stdin(data) => attach_request::Msg::Stdin(data),
        exec_request::Msg::Resize(size) => attach_request::Msg::Resize(size),
        exec_request::Msg::StdinClose(close) => attach_request::Msg::StdinClose(close),
        exec_request::Msg::Start(_) => return None,
    };
    Some(api::AttachRequest { msg: Some(msg) })
}

/// The subprotocol to answer with, of those the client offered.
fn chosen_protocol(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    PROTOCOLS.into_iter().find(|p| offered.contains(p))
}

/// The metav1.Status sent on stream 3 when the command ended with `code`.
pub(crate) fn exit_status(command: &[String], code: i32, message: &str) -> Value {
    if code == 0 && message.is_empty() {
        return json!({"metadata": {}, "status": "Success"});
    }
    if code == 0 {
        return json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": message});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// One frame: the stream byte, then the data.
fn frame(stream: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(stream);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// The service's input message of one client frame (None: nothing to pass on).
fn input_of(data: &[u8], v5: bool) -> Option<api::ExecRequest> {
    let (&stream, payload) = data.split_first()?;
    let msg = match stream {
        0 if !payload.is_empty() => exec_request::Msg::Stdin(payload.to_vec()),
        4 => {
            let size: Value = serde_json::from_slice(payload).ok()?;
            let dim = |k: &str| {
                size.get(k)
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0)
            };
            exec_request::Msg::Resize(api::TerminalSize {
                width: dim("Width"),
                height: dim("Height"),
            })
        }
        255 if v5 && payload.first() == Some(&0) => exec_request::Msg::StdinClose(true),
        _ => return None,
    };
    Some(api::ExecRequest { msg: Some(msg) })
}

/// Answers an exec request: 101 and a relay task, or the refusal.
pub(crate) async fn exec<S: KvStore>(
    service: &ResourcesService<S>,
    request: http::Request<Incoming>,
    peer: Peer,
    path: ResourcePath,
) -> http::Response<Body> {
    serve(service, request, peer, path, Session::Exec).await
}

/// Answers an attach request: 101 and a relay task, or the refusal.
pub(crate) async fn attach<S: KvStore>(
    service: &ResourcesService<S>,
    request: http::Request<Incoming>,
    peer: Peer,
    path: ResourcePath,
) -> http::Response<Body> {
    serve(service, request, peer, path, Session::Attach).await
}

async fn serve<S: KvStore>(
    service: &ResourcesService<S>,
    mut request: http::Request<Incoming>,
    peer: Peer,
    path: ResourcePath,
    session: Session,
) -> http::Response<Body> {
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _body) = request.into_parts();
    let call = Call::new(&parts, peer);
    let namespace = path.namespace.clone().unwrap_or_default();
    let name = path.name.clone().unwrap_or_default();
    let refused = |status: tonic::Status| {
        ApiError::from_status(&status, &subject(Kind::Pod, Some(&name))).into_response()
    };
    let websocket = call.header("upgrade").eq_ignore_ascii_case("websocket");
    let key = call.header("sec-websocket-key").to_owned();
    let transport = if upgrade::requested(&parts.headers) {
        upgrade::negotiate(&upgrade::offered(&parts.headers), &exec_spdy::PROTOCOLS)
            .map(Transport::Spdy)
    } else {
        chosen_protocol(call.header("sec-websocket-protocol"))
            .filter(|_| websocket && !key.is_empty())
            .map(Transport::WebSocket)
    };
    let Some(transport) = transport else {
        let admitted = match session {
            Session::Exec => service.admit_exec(call.grpc(()), &namespace, &name).await,
            Session::Attach => service.admit_attach(call.grpc(()), &namespace, &name).await,
        };
        if let Err(status) = admitted {
            return refused(status);
        }
        let what = match session {
            Session::Exec => "exec",
            Session::Attach => "attach",
        };
        return ApiError::bad_request(format!(
            "{what} needs a connection upgrade: WebSocket (Sec-WebSocket-Protocol: \
             v5.channel.k8s.io or v4.channel.k8s.io) or SPDY/3.1 (X-Stream-Protocol-Version: \
             one of {:?})",
            exec_spdy::PROTOCOLS
        ))
        .into_response();
    };
    let command: Vec<String> = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let (input, input_rx) = mpsc::channel::<api::ExecRequest>(32);
    let input_rx = tokio_stream::wrappers::ReceiverStream::new(input_rx);
    let opened = match session {
        Session::Exec => {
            let start = api::ExecStart {
                namespace,
                name: name.clone(),
                container: call.param("container").to_owned(),
                command: command.clone(),
                stdin: call.flag("stdin"),
                tty: call.flag("tty"),
            };
            service
                .exec_session(call.grpc(()), start, input_rx, CommandStart::OnFirstRead)
                .await
        }
        Session::Attach => {
            let start = api::AttachStart {
                namespace,
                name: name.clone(),
                container: call.param("container").to_owned(),
                stdin: call.flag("stdin"),
                tty: call.flag("tty"),
            };
            let input = input_rx.filter_map(|m| futures::future::ready(attach_input(m)));
            service.attach_session(call.grpc(()), start, input).await
        }
    };
    let output = match opened {
        Ok(output) => output,
        Err(status) => return refused(status),
    };
    let protocol = match transport {
        Transport::WebSocket(protocol) => protocol,
        Transport::Spdy(protocol) => {
            let announced = exec_spdy::Announced {
                stdin: call.flag("stdin"),
                stdout: call.flag("stdout"),
                stderr: call.flag("stderr"),
                tty: call.flag("tty"),
            };
            return exec_spdy::serve(on_upgrade, protocol, announced, command, input, output);
        }
    };
    let v5 = protocol == PROTOCOLS[0];
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                debug!(error = %e, ?session, "the upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        relay(ws, v5, command, input, output).await;
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
        http::HeaderValue::from_static(protocol),
    );
    answer
}

/// Relays frames to the session's input and its output to frames, until the exit.
async fn relay<IO>(
    ws: WebSocketStream<IO>,
    v5: bool,
    command: Vec<String>,
    input: mpsc::Sender<api::ExecRequest>,
    mut output: crate::service::ExecOutput,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut frames) = ws.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = frames.next().await {
            match message {
                Message::Binary(data) => {
                    if let Some(msg) = input_of(&data, v5) {
                        if input.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        // The client is gone or closed: its stdin ends, the command may still finish.
        let _ = input
            .send(api::ExecRequest {
                msg: Some(exec_request::Msg::StdinClose(true)),
            })
            .await;
        input.closed().await;
    });
    let mut status = None;
    while let Some(message) = output.next().await {
        let sent = match message.map(|m| m.msg) {
            Ok(Some(exec_response::Msg::Stdout(data))) => sink.send(frame(1, &data)).await,
            Ok(Some(exec_response::Msg::Stderr(data))) => sink.send(frame(2, &data)).await,
            Ok(Some(exec_response::Msg::Exit(exit))) => {
                status = Some(exit_status(&command, exit.code, &exit.message));
                break;
            }
            Ok(None) => Ok(()),
            Err(e) => {
                status = Some(json!({"metadata": {}, "status": "Failure",
                    "reason": "InternalError", "message": e.message()}));
                break;
            }
        };
        if sent.is_err() {
            reader.abort();
            return;
        }
    }
    let status = status.unwrap_or_else(|| {
        json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": "the node's agent ended the exec stream without an exit status"})
    });
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    // A normal close (1000): client-go reads any other as the streams breaking.
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_offered_protocol_is_chosen() {
        assert_eq!(
            chosen_protocol("v4.channel.k8s.io, v5.channel.k8s.io"),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            chosen_protocol("v4.channel.k8s.io"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(chosen_protocol("channel.k8s.io"), None);
    }

    #[test]
    fn a_non_zero_exit_is_kubectls_non_zero_exit_code_status() {
        let s = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3, "");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&[], 0, "")["status"], "Success");
    }

    #[test]
    fn attach_frames_are_exec_frames() {
        let close = input_of(&[255, 0], true).and_then(attach_input);
        assert_eq!(
            close.and_then(|m| m.msg),
            Some(attach_request::Msg::StdinClose(true))
        );
    }

    #[test]
    fn client_frames_become_input() {
        let stdin = input_of(&[0, b'h', b'i'], true).and_then(|m| m.msg);
        assert_eq!(stdin, Some(exec_request::Msg::Stdin(b"hi".to_vec())));
        let resize = input_of(b"\x04{\"Width\":80,\"Height\":24}", true).and_then(|m| m.msg);
        assert_eq!(
            resize,
            Some(exec_request::Msg::Resize(api::TerminalSize {
                width: 80,
                height: 24
            }))
        );
        assert!(input_of(&[255, 0], false).is_none());
        assert_eq!(
            input_of(&[255, 0], true).and_then(|m| m.msg),
            Some(exec_request::Msg::StdinClose(true))
        );
    }
}
