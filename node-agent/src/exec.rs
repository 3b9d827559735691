//! Interactive exec and attach sessions (`kubectl exec`/`attach`, `rafter exec`/`attach`):
//! the types a runtime's [`ContainerRuntime::exec`](crate::ContainerRuntime::exec) and
//! [`ContainerRuntime::attach`](crate::ContainerRuntime::attach) answer with, and the
//! client of containerd's streaming server that the CRI backend relays through (attach
//! speaks the same channel protocol as exec).
//!
//! ```text
//!   exec_server (AgentStreams.Exec)
//!      │ ExecSession { input: Sender<ExecInput>, output: Receiver<ExecEvent> }
//!      ▼
//!   ProcessRuntime: a child process with piped stdio
//!   ContainerdRuntime: CRI Exec ─► URL of containerd's streaming server
//!                      └► ws_session: WebSocket, subprotocol v5/v4.channel.k8s.io
//!                           frames: [0 stdin|1 stdout|2 stderr|3 status|4 resize|255 close] + data
//! ```
//!
//! A session's output ends with exactly one [`ExecEvent::Exit`] (unless its receiver is
//! dropped first); dropping the receiver ends the command (or the attach), even while
//! it writes nothing (the process backend kills its
//! process group, the WebSocket is closed). The `v4` protocol (containerd 1.6) cannot
//! say "stdin is closed": there [`ExecInput::CloseStdin`] is not passed on, and a command
//! that reads its stdin to the end does not finish until the session is dropped.
//!
//! Owns the wire of the streaming protocol; it must not decide who may exec (the
//! gateway does) nor which container (the exec server does).

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::error::{Result, RuntimeError};

/// How many messages wait in either direction before the sender waits.
pub(crate) const CHANNEL_DEPTH: usize = 32;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Pass stdin to the command.
    pub stdin: bool,
    /// Allocate a terminal (stderr is merged into stdout).
    pub tty: bool,
}

/// How to attach to a container's own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachSpec {
    /// Pass stdin to it (it must have been started with `stdin`).
    pub stdin: bool,
    /// It has a terminal (stderr is merged into stdout).
    pub tty: bool,
}

/// Into the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for its stdin.
    Stdin(Vec<u8>),
    /// The client's terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// No more stdin.
    CloseStdin,
}

/// Out of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes it wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes it wrote to stderr.
    Stderr(Vec<u8>),
    /// It ended: always the last event.
    Exit {
        /// Exit code (128 + signal when killed by one).
        code: i32,
        /// Why, when not a plain exit.
        message: String,
    },
}

/// A running exec: send input, receive output until [`ExecEvent::Exit`].
#[derive(Debug)]
pub struct ExecSession {
    /// Into the command.
    pub input: mpsc::Sender<ExecInput>,
    /// Out of the command.
    pub output: mpsc::Receiver<ExecEvent>,
}

/// The subprotocols offered to the streaming server, best first.
const PROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

/// The exit code a `metav1.Status` on the error stream stands for: 0 for Success, the
/// `ExitCode` cause for NonZeroExitCode, otherwise 1 with the status' message.
pub(crate) fn exit_of_status(json: &[u8]) -> (i32, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        // Before v4 the error stream carried plain text.
        return (1, String::from_utf8_lossy(json).into_owned());
    };
    if value.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return (0, String::new());
    }
    let message = value
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    let code = value
        .pointer("/details/causes")
        .and_then(|c| c.as_array())
        .and_then(|causes| {
            causes.iter().find_map(|c| {
                (c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))
                    .then(|| c.get("message").and_then(|m| m.as_str()))
                    .flatten()
                    .and_then(|m| m.parse::<i32>().ok())
            })
        });
    match code {
        Some(code) => (code, String::new()),
        None => (1, message),
    }
}

/// The WebSocket URL of a streaming server's http(s) `url`.
pub(crate) fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_owned()
    }
}

/// Connects to a streaming server's exec or attach `url` (what CRI `Exec` or `Attach`,
/// `operation`, answered) and relays.
pub(crate) async fn ws_session(operation: &'static str, url: &str) -> Result<ExecSession> {
    let failed = |message: String| RuntimeError::Rpc {
        operation,
        code: "Unavailable".to_owned(),
        message,
        retryable: false,
    };
    let ws_url = ws_url(url);
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("the streaming URL {url}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(PROTOCOLS),
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| failed(format!("the streaming server at {url}: {e}")))?;
    let v5 = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        == Some("v5.channel.k8s.io");
    debug!(%url, v5, operation, "stream connected");
    let (mut sink, mut stream) = ws.split();
    let (input, mut input_rx) = mpsc::channel::<ExecInput>(CHANNEL_DEPTH);
    let (output_tx, output) = mpsc::channel::<ExecEvent>(CHANNEL_DEPTH);
    let writer = tokio::spawn(async move {
        while let Some(msg) = input_rx.recv().await {
            let frame = match msg {
                ExecInput::Stdin(data) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(0);
                    frame.extend_from_slice(&data);
                    frame
                }
                ExecInput::Resize { width, height } => {
                    let mut frame = vec![4];
                    frame.extend_from_slice(
                        serde_json::json!({"Width": width, "Height": height})
                            .to_string()
                            .as_bytes(),
                    );
                    frame
                }
                ExecInput::CloseStdin if v5 => vec![255, 0],
                ExecInput::CloseStdin => continue,
            };
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        let mut status: Vec<u8> = Vec::new();
        let mut ended = None;
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = output_tx.closed() => {
                    // The caller went away while the stream was quiet: closing ends the
                    // command (or detaches).
                    writer.abort();
                    return;
                }
            };
            let Some(frame) = frame else {
                break;
            };
            let data = match frame {
                Ok(Message::Binary(data)) => data,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    ended = Some(format!("the exec stream broke: {e}"));
                    break;
                }
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let event = match channel {
                1 if !payload.is_empty() => ExecEvent::Stdout(payload.to_vec()),
                2 if !payload.is_empty() => ExecEvent::Stderr(payload.to_vec()),
                3 => {
                    status.extend_from_slice(payload);
                    continue;
                }
                _ => continue,
            };
            if output_tx.send(event).await.is_err() {
                // The caller went away: closing ends the command.
                writer.abort();
                return;
            }
        }
        let (code, message) = match (status.is_empty(), ended) {
            (false, _) => exit_of_status(&status),
            (true, Some(why)) => (1, why),
            (true, None) => (0, String::new()),
        };
        writer.abort();
        let _ = output_tx.send(ExecEvent::Exit { code, message }).await;
    });
    Ok(ExecSession { input, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_gives_the_exit_code() {
        assert_eq!(
            exit_of_status(br#"{"metadata":{},"status":"Success"}"#).0,
            0
        );
        let failure = br#"{"status":"Failure","reason":"NonZeroExitCode","message":"command terminated with non-zero exit code","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_of_status(failure), (3, String::new()));
        let other = br#"{"status":"Failure","message":"no such file"}"#;
        assert_eq!(exit_of_status(other), (1, "no such file".to_owned()));
    }
}
