//! Whether a master has said anything at all on the client's connections: the fact that
//! tells a request that was never sent from one that may have been.
//!
//! Every connection to a master is made by [`connector`], which counts the connections on
//! which the master sent at least one byte ([`Contact`]). Over TLS a request can only go
//! out after the handshake, and the handshake needs the master's answer; so if no open
//! connection had heard from the master when an attempt began, and none has since, the
//! attempt's request was not sent: a master that accepts TCP connections and never
//! answers (a paused process, a black-holed link) can be left without the write counting
//! as of unknown outcome. Plaintext HTTP/2 may send a request before the master speaks,
//! so the rule is only applied to TLS endpoints (the caller's business).
//!
//! This module does the TCP connect and the byte counting; it must not interpret answers.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// What the client heard from one master on its connections.
#[derive(Debug, Default)]
pub(crate) struct Contact {
    /// Connections on which the master sent a byte, ever (only grows).
    heard: AtomicU64,
    /// Of those, the ones still open.
    open_heard: AtomicUsize,
}

/// [`Contact`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    heard: u64,
    open_heard: usize,
}

impl Contact {
    /// The counts now.
    pub(crate) fn seen(&self) -> Seen {
        Seen {
            heard: self.heard.load(Ordering::SeqCst),
            open_heard: self.open_heard.load(Ordering::SeqCst),
        }
    }

    /// Whether nothing was heard from the master on any connection that was open at
    /// `before` or opened since: a TLS request begun at `before` was not sent.
    pub(crate) fn silent_since(&self, before: Seen) -> bool {
        before.open_heard == 0 && self.heard.load(Ordering::SeqCst) == before.heard
    }
}

/// A connection that tells its [`Contact`] when the master first speaks on it and when
/// it closes.
struct Heard {
    stream: TcpStream,
    contact: Arc<Contact>,
    heard: bool,
}

impl Drop for Heard {
    fn drop(&mut self) {
        if self.heard {
            self.contact.open_heard.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl AsyncRead for Heard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if !self.heard && buf.filled().len() > before {
            self.heard = true;
            self.contact.open_heard.fetch_add(1, Ordering::SeqCst);
            self.contact.heard.fetch_add(1, Ordering::SeqCst);
        }
        poll
    }
}

impl AsyncWrite for Heard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connector of one master's channel: TCP (no delay) to the URI's host and port,
/// counted in `contact`. TLS, when configured, is layered on top by the transport.
pub(crate) fn connector(
    contact: Arc<Contact>,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<impl AsyncRead + AsyncWrite + Send + Unpin + 'static>,
    Error = io::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: Uri| {
        let contact = contact.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let stream =
                TcpStream::connect((host.as_str(), uri.port_u16().unwrap_or(default_port))).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(Heard {
                stream,
                contact,
                heard: false,
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_master_that_accepts_and_never_speaks_is_silent_until_it_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("https://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let contact = Arc::new(Contact::default());
        let before = contact.seen();
        let mut io = connector(contact.clone())
            .oneshot(uri)
            .await
            .unwrap()
            .into_inner();
        let (mut server, _) = listener.accept().await.unwrap();
        io.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert!(contact.silent_since(before), "only the client spoke");

        server.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await.unwrap();
        assert!(!contact.silent_since(before), "the master answered");
        let open = contact.seen();
        assert!(
            !contact.silent_since(open),
            "a connection that heard the master is still open"
        );
        drop(io);
        assert!(
            contact.silent_since(contact.seen()),
            "closed: a new attempt needs a new connection"
        );
    }
}
