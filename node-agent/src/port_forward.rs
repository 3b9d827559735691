//! Port-forward sessions (`kubectl port-forward`, `rafter port-forward`): one TCP
//! connection to a port inside a pod, what a runtime's
//! [`ContainerRuntime::port_forward`](crate::ContainerRuntime::port_forward) answers with;
//! the relay of a connected socket (the process backend, whose pods share the host's
//! network), and the client of containerd's streaming server that the CRI backend uses.
//!
//! ```text
//!   exec_server (AgentStreams.PortForward)
//!      │ PortForwardSession { input: Sender<bytes>, output: Receiver<PortForwardEvent> }
//!      ▼
//!   ProcessRuntime: TcpStream to <host ip>:port ─► tcp_session
//!   ContainerdRuntime: CRI PortForward ─► URL of containerd's streaming server
//!                      └► ws_session: WebSocket `?port=N`, subprotocol v4.channel.k8s.io
//!                           channel 0 data, channel 1 error text, both ways on 0;
//!                           the first frame of each channel from the server is the
//!                           port, 2 bytes little-endian
//! ```
//!
//! The output ends when the pod's side of the connection closes; a connection that
//! could not be made or broke ends with one [`PortForwardEvent::Failed`]. The end of the
//! input (every sender dropped) is the client's half-close: a socket is shut for
//! writing and the answer goes on; the `v4` WebSocket protocol cannot say it, so there
//! the connection stays open until the pod closes it or the session is dropped.
//! Dropping the output receiver closes the connection.
//!
//! Owns the wire of the forwarding; it must not decide who may forward (the gateway
//! does) nor which sandbox (the exec server does).

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::error::{Result, RuntimeError};
use crate::exec::{ws_url, CHANNEL_DEPTH};

/// The subprotocol asked of the streaming server.
const PROTOCOL: &str = "v4.channel.k8s.io";

/// How much is read from the pod's port at a time.
const READ_CHUNK: usize = 32 * 1024;

/// Out of the pod's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortForwardEvent {
    /// Bytes the pod sent.
    Data(Vec<u8>),
    /// The connection could not be made or broke: always the last event.
    Failed(String),
}

/// One forwarded connection: send the client's bytes, receive the pod's until the end.
#[derive(Debug)]
pub struct PortForwardSession {
    /// The client's bytes; dropping every sender is the client's half-close.
    pub input: mpsc::Sender<Vec<u8>>,
    /// The pod's bytes, ending when its side closes.
    pub output: mpsc::Receiver<PortForwardEvent>,
}

/// Relays a connected socket.
pub(crate) fn tcp_session(stream: TcpStream) -> PortForwardSession {
    let (mut read, mut write) = stream.into_split();
    let (input, mut input_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let (output_tx, output) = mpsc::channel::<PortForwardEvent>(CHANNEL_DEPTH);
    let writer = tokio::spawn(async move {
        while let Some(data) = input_rx.recv().await {
            if write.write_all(&data).await.is_err() {
                return;
            }
        }
        // The client's half-close; the pod may still answer.
        let _ = write.shutdown().await;
        std::future::pending::<()>().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let read = tokio::select! {
                read = read.read(&mut buf) => read,
                () = output_tx.closed() => break,
            };
            let event = match read {
                Ok(0) => break,
                Ok(n) => PortForwardEvent::Data(buf[..n].to_vec()),
                Err(e) => PortForwardEvent::Failed(format!("the connection broke: {e}")),
            };
            let last = matches!(event, PortForwardEvent::Failed(_));
            if output_tx.send(event).await.is_err() || last {
                break;
            }
        }
        // Dropping both halves closes the connection.
        writer.abort();
    });
    PortForwardSession { input, output }
}

/// What a server frame on channel `channel` carries past the port prefix, given that
/// `prefix_left` bytes of that prefix are still to come (updated).
fn payload<'a>(prefix_left: &mut usize, data: &'a [u8]) -> &'a [u8] {
    let skip = (*prefix_left).min(data.len());
    *prefix_left -= skip;
    &data[skip..]
}

/// Connects to a streaming server's port-forward `url` (what CRI `PortForward`
/// answered) for `port` and relays.
pub(crate) async fn ws_session(url: &str, port: u16) -> Result<PortForwardSession> {
    let failed = |message: String| RuntimeError::Rpc {
        operation: "PortForward",
        code: "Unavailable".to_owned(),
        message,
        retryable: false,
    };
    let base = ws_url(url);
    let separator = if base.contains('?') { '&' } else { '?' };
    let ws_url = format!("{base}{separator}port={port}");
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| failed(format!("the streaming URL {url}: {e}")))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| failed(format!("the streaming server at {url}: {e}")))?;
    debug!(%url, port, "port-forward stream connected");
    let (mut sink, mut stream) = ws.split();
    let (input, mut input_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_DEPTH);
    let (output_tx, output) = mpsc::channel::<PortForwardEvent>(CHANNEL_DEPTH);
    let writer = tokio::spawn(async move {
        while let Some(data) = input_rx.recv().await {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(0);
            frame.extend_from_slice(&data);
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        // v4 has no half-close: keep the connection until the pod closes it.
        std::future::pending::<()>().await;
    });
    tokio::spawn(async move {
        let mut prefix_left = [2usize, 2usize];
        let mut error = Vec::new();
        let mut broke = None;
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = output_tx.closed() => break,
            };
            let data = match frame {
                Some(Ok(Message::Binary(data))) => data,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    broke = Some(format!("the port-forward stream broke: {e}"));
                    break;
                }
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            match channel {
                0 => {
                    let bytes = payload(&mut prefix_left[0], rest);
                    if !bytes.is_empty()
                        && output_tx
                            .send(PortForwardEvent::Data(bytes.to_vec()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
                1 => error.extend_from_slice(payload(&mut prefix_left[1], rest)),
                _ => {}
            }
        }
        writer.abort();
        let failure = if error.is_empty() {
            broke
        } else {
            Some(String::from_utf8_lossy(&error).into_owned())
        };
        if let Some(message) = failure {
            let _ = output_tx.send(PortForwardEvent::Failed(message)).await;
        }
    });
    Ok(PortForwardSession { input, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_prefix_is_skipped_once_even_across_frames() {
        let mut left = 2;
        assert_eq!(payload(&mut left, &[80, 0]), b"");
        assert_eq!(payload(&mut left, b"hello"), b"hello");
        let mut left = 2;
        assert_eq!(payload(&mut left, &[80]), b"");
        assert_eq!(payload(&mut left, &[0, b'x']), b"x");
    }

    #[tokio::test]
    async fn a_socket_is_relayed_both_ways_and_half_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut asked = Vec::new();
            socket.read_to_end(&mut asked).await.unwrap();
            socket.write_all(&asked).await.unwrap();
            socket.write_all(b"!").await.unwrap();
        });
        let session = tcp_session(TcpStream::connect(addr).await.unwrap());
        session.input.send(b"ping".to_vec()).await.unwrap();
        let PortForwardSession { input, mut output } = session;
        drop(input);
        let mut answer = Vec::new();
        while let Some(event) = output.recv().await {
            match event {
                PortForwardEvent::Data(data) => answer.extend_from_slice(&data),
                PortForwardEvent::Failed(why) => panic!("failed: {why}"),
            }
        }
        assert_eq!(answer, b"ping!");
        server.await.unwrap();
    }
}
