//! A byte stream carried in WebSocket binary messages, as kubectl ≥ 1.31 tunnels its
//! SPDY session for port-forward (`Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`):
//! the client writes each chunk of its SPDY bytes as one binary message and reads the
//! concatenation of the messages it receives, whatever their boundaries.
//!
//! ```text
//!  WebSocket ── binary payloads ──► pump ──► duplex ──► Session (reads bytes)
//!  Session (writes bytes) ──► duplex ──► pump ── one binary message per chunk ──► WebSocket
//!  close or end of either side ──► end of the other (a normal close, 1000, to the client)
//! ```
//!
//! Owns the byte/message translation only; it knows nothing of SPDY.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The buffer between the WebSocket and the byte stream, each way.
const BUFFER: usize = 64 * 1024;

/// The byte stream of `ws`'s binary messages: pumps run until either side ends.
pub(crate) fn bytes_of<IO>(ws: WebSocketStream<IO>) -> DuplexStream
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(BUFFER);
    let (mut sink, mut messages) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    // WebSocket → session.
    let inbound = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            match message {
                Message::Binary(data) if to_session.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                // Text has no meaning here; pings are answered by tungstenite itself.
                _ => {}
            }
        }
        let _ = to_session.shutdown().await;
    });
    // Session → WebSocket.
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let message = Message::Binary(buf[..n].to_vec().into());
                    if sink.send(message).await.is_err() {
                        inbound.abort();
                        return;
                    }
                }
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
        // The client answers the close; the inbound pump ends with its connection.
        let _ = inbound.await;
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[tokio::test]
    async fn bytes_cross_in_binary_messages_both_ways_and_a_close_ends_the_stream() {
        let (server_io, client_io) = tokio::io::duplex(4096);
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut bytes = bytes_of(server);
        // Two messages arrive as one byte stream.
        client
            .send(Message::Binary(b"hel".to_vec().into()))
            .await
            .unwrap();
        client
            .send(Message::Binary(b"lo".to_vec().into()))
            .await
            .unwrap();
        let mut got = [0u8; 5];
        bytes.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        // Bytes written come out as a binary message.
        bytes.write_all(b"back").await.unwrap();
        match client.next().await {
            Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], b"back"),
            other => panic!("{other:?}"),
        }
        // The client's close is the end of the stream.
        client.close(None).await.unwrap();
        let mut rest = Vec::new();
        bytes.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
