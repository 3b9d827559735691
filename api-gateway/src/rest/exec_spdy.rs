//! `…/pods/<name>/exec` and `…/attach` over SPDY/3.1, as kubectl ≤ 1.29 speaks them (and
//! newer kubectl when WebSocket fails), onto the same sessions the WebSocket path uses
//! (an attach is an exec without a command: its end is the container's).
//!
//! ```text
//!  kubectl ── POST …/exec?command=..&stdin=..&stdout=..&stderr=..&tty=..
//!             Upgrade: SPDY/3.1, X-Stream-Protocol-Version: v4.channel.k8s.io, v3 …
//!     │ exec_session (authn, create pods/exec, audit, the agent's stream) ── refused:
//!     │                                                      the usual metav1.Status
//!     ◄ 101, Upgrade: SPDY/3.1, the chosen X-Stream-Protocol-Version
//!  client opens streams (header streamType):  error, stdin?, stdout?, stderr?, resize?
//!     stdin bytes ─► Stdin, its FIN ─► StdinClose;  resize {"Width","Height"} ─► Resize
//!     Stdout/Stderr ─► the stdout/stderr streams
//!     exit ─► the error stream: v4 a metav1.Status; v1–v3 the failure's message (empty
//!             on success); then FIN on every stream and GOAWAY
//! ```
//!
//! Owns the mapping of channel.k8s.io streams onto the session's messages only; the
//! framing is `spdy`'s, the decisions the service's.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rafter_proto::api::{self, exec_request, exec_response};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::debug;

use super::exec::exit_status;
use super::spdy::{upgrade, Session, Stream, StreamWriter};
use super::Body;

/// The channel protocols served over SPDY, in no particular order (the client's
/// order decides).
pub(crate) const PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// How long the client has to open the streams its request announced (the kubelet's
/// own limit).
const STREAMS_WAIT: Duration = Duration::from_secs(30);

/// How long the client has to close the connection once everything is sent.
const LINGER: Duration = Duration::from_secs(10);

/// Which streams the request announced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Announced {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

/// The streams of one exec, once the client opened them.
struct Channels {
    error: Stream,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// The 101 answer, and the task that relays once the connection is upgraded; the
/// session (`output`, fed by `input`) is already open and authorised.
pub(crate) fn serve(
    on_upgrade: OnUpgrade,
    protocol: &'static str,
    announced: Announced,
    command: Vec<String>,
    input: mpsc::Sender<api::ExecRequest>,
    output: crate::service::ExecOutput,
) -> http::Response<Body> {
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                debug!(error = %e, "the exec upgrade to SPDY failed");
                return;
            }
        };
        let session = Session::start(TokioIo::new(upgraded));
        relay(session, protocol, announced, command, input, output).await;
    });
    upgrade::switching(protocol)
}

/// Waits for the announced streams: `None` if the client does not open them in time.
async fn gather(
    session: &mut Session,
    announced: Announced,
    resize_stream: bool,
) -> Option<Channels> {
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let wanted_stderr = announced.stderr && !announced.tty;
    let opened = async {
        loop {
            let stream = session.accept().await?;
            let slot = match stream.header("streamtype") {
                Some("error") => &mut error,
                Some("stdin") => &mut stdin,
                Some("stdout") => &mut stdout,
                Some("stderr") => &mut stderr,
                Some("resize") => &mut resize,
                other => {
                    debug!(stream_type = ?other, "an exec stream of an unknown type is reset");
                    stream.writer().reset().await;
                    continue;
                }
            };
            *slot = Some(stream);
            let complete = error.is_some()
                && (!announced.stdin || stdin.is_some())
                && (!announced.stdout || stdout.is_some())
                && (!wanted_stderr || stderr.is_some())
                && (!resize_stream || resize.is_some());
            if complete {
                return Some(());
            }
        }
    };
    tokio::time::timeout(STREAMS_WAIT, opened).await.ok()??;
    Some(Channels {
        error: error?,
        stdin,
        stdout,
        stderr,
        resize,
    })
}

/// Relays the client's streams to the session's input and its output to the streams,
/// until the exit (or the client leaving).
async fn relay(
    mut session: Session,
    protocol: &'static str,
    announced: Announced,
    command: Vec<String>,
    input: mpsc::Sender<api::ExecRequest>,
    mut output: crate::service::ExecOutput,
) {
    let v4 = protocol == PROTOCOLS[0];
    // channel.k8s.io v3 added the resize stream.
    let resizes = announced.tty && (v4 || protocol == PROTOCOLS[1]);
    let Some(channels) = gather(&mut session, announced, resizes).await else {
        debug!("the exec client did not open its streams; the session ends");
        session.close(LINGER).await;
        return;
    };
    let Channels {
        error,
        stdin,
        stdout,
        stderr,
        resize,
    } = channels;
    if let Some(stdin) = stdin {
        tokio::spawn(pump_stdin(stdin, input.clone()));
    }
    if let Some(resize) = resize {
        tokio::spawn(pump_resizes(resize, input.clone()));
    }
    let stdout = stdout.map(|s| s.writer());
    let stderr = stderr.map(|s| s.writer());
    let status = loop {
        let message = tokio::select! {
            message = output.next() => message,
            () = session.ended() => {
                // The client is gone: dropping the output ends the command.
                debug!("the exec client left before the command ended");
                return;
            }
        };
        let sent = match message.map(|m| m.map(|m| m.msg)) {
            Some(Ok(Some(exec_response::Msg::Stdout(data)))) => send(&stdout, data).await,
            Some(Ok(Some(exec_response::Msg::Stderr(data)))) => send(&stderr, data).await,
            Some(Ok(Some(exec_response::Msg::Exit(exit)))) => {
                break exit_status(&command, exit.code, &exit.message);
            }
            Some(Ok(None)) => true,
            Some(Err(e)) => {
                break json!({"metadata": {}, "status": "Failure",
                    "reason": "InternalError", "message": e.message()});
            }
            None => {
                break json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                    "message": "the node's agent ended the exec stream without an exit status"});
            }
        };
        if !sent {
            debug!("the exec client's stream is gone; the session ends");
            return;
        }
    };
    let report = error_report(&status, v4);
    let errors = error.writer();
    if !report.is_empty() {
        let _ = errors.write(Bytes::from(report)).await;
    }
    for writer in [Some(errors), stdout, stderr].into_iter().flatten() {
        let _ = writer.finish().await;
    }
    // Stdin may still be open: the command is over, so its input goes nowhere.
    drop(input);
    session.close(LINGER).await;
}

/// Sends `data` on `stream` if the client opened it; false when the session is gone.
async fn send(stream: &Option<StreamWriter>, data: Vec<u8>) -> bool {
    match stream {
        Some(writer) => writer.write(Bytes::from(data)).await.is_ok(),
        // The client did not ask for this stream (stderr under a terminal, say).
        None => true,
    }
}

/// What the error stream carries: v4 the Status itself; older versions the failure's
/// message as text, nothing on success.
fn error_report(status: &Value, v4: bool) -> Vec<u8> {
    if v4 {
        return status.to_string().into_bytes();
    }
    if status["status"] == "Success" {
        return Vec::new();
    }
    status["message"]
        .as_str()
        .unwrap_or("the command failed")
        .as_bytes()
        .to_vec()
}

/// Stdin's bytes to the session; its end (FIN) closes the command's stdin.
async fn pump_stdin(mut stdin: Stream, input: mpsc::Sender<api::ExecRequest>) {
    while let Some(data) = stdin.recv().await {
        let msg = exec_request::Msg::Stdin(data.to_vec());
        if input
            .send(api::ExecRequest { msg: Some(msg) })
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = input
        .send(api::ExecRequest {
            msg: Some(exec_request::Msg::StdinClose(true)),
        })
        .await;
}

/// The resize stream's JSON objects (`{"Width":80,"Height":24}`, one after another,
/// split across frames anywhere) to the session.
async fn pump_resizes(mut resize: Stream, input: mpsc::Sender<api::ExecRequest>) {
    let mut pending = Vec::new();
    while let Some(data) = resize.recv().await {
        pending.extend_from_slice(&data);
        let (sizes, used) = terminal_sizes(&pending);
        pending.drain(..used);
        for size in sizes {
            let msg = exec_request::Msg::Resize(size);
            if input
                .send(api::ExecRequest { msg: Some(msg) })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The whole JSON objects at the start of `bytes`, as terminal sizes, and how many
/// bytes they used (a partial object at the end is left for more bytes; garbage is
/// skipped).
fn terminal_sizes(bytes: &[u8]) -> (Vec<api::TerminalSize>, usize) {
    let mut sizes = Vec::new();
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut used = 0;
    loop {
        match values.next() {
            Some(Ok(size)) => {
                used = values.byte_offset();
                let dim = |k: &str| {
                    size.get(k)
                        .and_then(Value::as_u64)
                        .and_then(|v| u32::try_from(v).ok())
                        .unwrap_or(0)
                };
                sizes.push(api::TerminalSize {
                    width: dim("Width"),
                    height: dim("Height"),
                });
            }
            Some(Err(e)) if e.is_eof() => return (sizes, used),
            // Not JSON: everything so far is dropped.
            Some(Err(_)) => return (sizes, bytes.len()),
            // Only whitespace after the last object.
            None => return (sizes, used),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizes_are_read_across_frame_boundaries() {
        let (sizes, used) = terminal_sizes(b"{\"Width\":80,\"Height\":24}\n{\"Wid");
        assert_eq!(
            sizes,
            vec![api::TerminalSize {
                width: 80,
                height: 24
            }]
        );
        assert_eq!(used, 24, "the partial object is left for more bytes");
        let (sizes, used) = terminal_sizes(b"\n{\"Width\":100,\"Height\":40}\n");
        assert_eq!(sizes[0].width, 100);
        assert_eq!(used, 26);
        assert_eq!(terminal_sizes(b"not json").1, 8);
    }

    #[test]
    fn the_error_stream_carries_a_status_in_v4_and_a_message_before() {
        let failed = exit_status(&["false".into()], 1, "");
        let v4: Value = serde_json::from_slice(&error_report(&failed, true)).unwrap();
        assert_eq!(v4["reason"], "NonZeroExitCode");
        let text = String::from_utf8(error_report(&failed, false)).unwrap();
        assert!(text.contains("exit code 1"), "{text}");
        assert!(error_report(&exit_status(&[], 0, ""), false).is_empty());
    }
}
