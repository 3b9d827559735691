//! A server's SPDY/3.1 session over any byte stream: the streams kubectl opens after a
//! `Upgrade: SPDY/3.1` (exec, attach, port-forward), or inside a WebSocket (`tunnel`).
//!
//! ```text
//!  peer ── SYN_STREAM(id odd, headers) ─► reader task ── SYN_REPLY ─► writer task ─► peer
//!                                            │ Stream{id, headers} ─► Session::accept
//!  peer ── DATA(id) / FIN ──────────────────►│ ─► Stream::recv (WINDOW_UPDATE as consumed)
//!  StreamWriter::write / finish / reset ───────────────────────────► writer task ─► peer
//!  peer ── PING(odd id) ─► echoed;  SETTINGS, WINDOW_UPDATE ─► send windows
//!  Session::close ── GOAWAY ─► the peer closes (or a deadline passes)
//! ```
//!
//! Only the peer opens streams (every stream kubectl uses is its own); each is accepted
//! with a SYN_REPLY at once, and the application drops or resets those it does not
//! want. Flow control: the receive side advertises the protocol's initial 64 KiB and
//! sends WINDOW_UPDATE as the application consumes data. The send side keeps windows,
//! but enforces them only once the peer has shown it keeps them (a WINDOW_UPDATE seen):
//! client-go's SPDY stack never sends one and ignores windows, and waiting on it would
//! stall every stream after 64 KiB. A peer that writes faster than the application
//! reads is held back by the read loop waiting (and so by TCP).
//!
//! Owns the frames' order and the streams' lifecycle only: what a stream means (stdin,
//! a forwarded port) and who may open one are the caller's. It must not block on the
//! application: a stream the application forgot is reset, never waited on forever.

mod dictionary;
pub(crate) mod frame;
pub(crate) mod tunnel;
pub(crate) mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::debug;

use frame::{goaway, rst, Decoder, Encoder, Frame, FrameError, Headers, FLAG_FIN};

/// The window every stream and the session start with (the protocol's default).
const INITIAL_WINDOW: i64 = 64 * 1024;

/// The largest DATA frame sent.
const MAX_DATA_FRAME: usize = 16 * 1024;

/// Consumed bytes are acknowledged with WINDOW_UPDATE once this many have gathered.
const UPDATE_THRESHOLD: u32 = 16 * 1024;

/// The most streams open at once; more are refused.
const MAX_STREAMS: usize = 1024;

/// How many frames may wait for the writer.
const OUT_QUEUE: usize = 64;

/// How many DATA payloads may wait for one stream's reader.
const STREAM_QUEUE: usize = 16;

/// The session (or the stream) is gone: nothing more can be sent.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY stream is closed")]
pub(crate) struct Closed;

/// The send side's flow-control state, shared by the reader (which learns of windows)
/// and the stream writers (which spend them).
struct Windows {
    /// Whether the peer keeps windows (it sent a WINDOW_UPDATE).
    enforced: bool,
    /// The window of streams not yet updated (SETTINGS can change it).
    initial: i64,
    /// The session's window.
    session: i64,
    /// Each open stream's window.
    streams: HashMap<u32, i64>,
}

struct Shared {
    windows: Mutex<Windows>,
    /// Woken when a window grows or the session ends.
    grown: Notify,
    /// The session's reader has ended (the peer is gone).
    ended: watch::Sender<bool>,
    /// The last stream the peer opened (GOAWAY names it).
    last_id: AtomicU32,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // A poisoned lock means a writer panicked mid-update; the numbers are still
        // the best there are.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One SPDY session: the streams the peer opens, and the tasks that move its frames.
pub(crate) struct Session {
    incoming: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
    ended: watch::Receiver<bool>,
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

impl Session {
    /// Starts the session's reader and writer over `io` (the upgraded connection).
    pub(crate) fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(MAX_STREAMS);
        let (ended_tx, ended) = watch::channel(false);
        let shared = Arc::new(Shared {
            windows: Mutex::new(Windows {
                enforced: false,
                initial: INITIAL_WINDOW,
                session: INITIAL_WINDOW,
                streams: HashMap::new(),
            }),
            grown: Notify::new(),
            ended: ended_tx,
            last_id: AtomicU32::new(0),
        });
        let writer = tokio::spawn(write_loop(write, out_rx));
        let reader = tokio::spawn(read_loop(read, out.clone(), incoming_tx, shared.clone()));
        Session {
            incoming,
            out,
            shared,
            ended,
            reader: Some(reader),
            writer: Some(writer),
        }
    }

    /// The next stream the peer opened (already answered with SYN_REPLY), or `None`
    /// once the peer is gone or went away.
    pub(crate) async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    /// Resolves when the peer has closed the connection (or broke the protocol).
    pub(crate) async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Ends the session: GOAWAY after everything already queued, then the peer is given
    /// `linger` to close its end (so it reads all that was sent before the connection
    /// drops: closing first could reset what it has not read yet), then the connection
    /// is dropped.
    pub(crate) async fn close(mut self, linger: Duration) {
        let last_good = self.shared.last_id.load(Ordering::Relaxed);
        let _ = self
            .out
            .send(Frame::GoAway {
                last_good,
                status: goaway::OK,
            })
            .await;
        // Streams the peer opens from now on are refused.
        self.incoming.close();
        let peer_closed = async {
            let mut ended = self.ended.clone();
            let _ = ended.wait_for(|ended| *ended).await;
        };
        if tokio::time::timeout(linger, peer_closed).await.is_err() {
            debug!("the SPDY peer did not close its end in time; dropping the connection");
        }
        // The peer has what was sent (it closes only after reading it), or had its
        // chance: the connection goes.
        for task in [self.reader.take(), self.writer.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        let _ = self.shared.ended.send(true);
        self.shared.grown.notify_waiters();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropped without `close`: the connection goes at once.
        for task in [self.reader.take(), self.writer.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// A stream the peer opened: its headers, the data it sends, and a writer back.
pub(crate) struct Stream {
    id: u32,
    headers: Headers,
    data: mpsc::Receiver<Bytes>,
    writer: StreamWriter,
    unacknowledged: u32,
}

impl Stream {
    /// The first value of header `name` (lowercase), if the SYN_STREAM carried it.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next bytes the peer sent, or `None` once it finished (FIN) or reset the
    /// stream, or the session ended.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let data = self.data.recv().await?;
        // A payload is at most 16 MiB (the frame's length field): it fits.
        self.unacknowledged = self
            .unacknowledged
            .saturating_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
        if self.unacknowledged >= UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut self.unacknowledged);
            for stream in [self.id, 0] {
                let _ = self
                    .writer
                    .out
                    .send(Frame::WindowUpdate { stream, delta })
                    .await;
            }
        }
        Some(data)
    }

    /// A writer for the stream (it may be cloned and moved to another task).
    pub(crate) fn writer(&self) -> StreamWriter {
        self.writer.clone()
    }
}

/// The sending half of a stream.
#[derive(Clone)]
pub(crate) struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
}

impl StreamWriter {
    /// Sends `data` on the stream, in frames of at most 16 KiB, within the peer's
    /// windows when it keeps them.
    pub(crate) async fn write(&self, mut data: Bytes) -> Result<(), Closed> {
        while !data.is_empty() {
            let allowed = self.reserve(data.len().min(MAX_DATA_FRAME)).await?;
            let chunk = data.split_to(allowed);
            self.out
                .send(Frame::Data {
                    stream: self.id,
                    flags: 0,
                    data: chunk,
                })
                .await
                .map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Half-closes the stream: an empty DATA frame with FIN (nothing more is sent).
    pub(crate) async fn finish(&self) -> Result<(), Closed> {
        self.shared.lock().streams.remove(&self.id);
        self.out
            .send(Frame::Data {
                stream: self.id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await
            .map_err(|_| Closed)
    }

    /// Ends the stream abnormally (RST_STREAM CANCEL).
    pub(crate) async fn reset(&self) {
        self.shared.lock().streams.remove(&self.id);
        let _ = self
            .out
            .send(Frame::RstStream {
                stream: self.id,
                status: rst::CANCEL,
            })
            .await;
    }

    /// Waits until up to `wanted` bytes may be sent and takes them from the windows.
    async fn reserve(&self, wanted: usize) -> Result<usize, Closed> {
        loop {
            let grown = self.shared.grown.notified();
            tokio::pin!(grown);
            grown.as_mut().enable();
            if *self.shared.ended.borrow() {
                return Err(Closed);
            }
            {
                let mut windows = self.shared.lock();
                if !windows.enforced {
                    // Counted all the same, so the windows are right should the peer
                    // start keeping them.
                    let spent = i64::try_from(wanted).unwrap_or(i64::MAX);
                    windows.session -= spent;
                    if let Some(window) = windows.streams.get_mut(&self.id) {
                        *window -= spent;
                    }
                    return Ok(wanted);
                }
                let Some(&stream) = windows.streams.get(&self.id) else {
                    // The peer reset the stream: nothing more is wanted.
                    return Err(Closed);
                };
                let open = stream.min(windows.session);
                if open > 0 {
                    let take = usize::try_from(open).unwrap_or(wanted).min(wanted);
                    // `take` is at most 16 KiB.
                    let spent = i64::try_from(take).unwrap_or(i64::MAX);
                    windows.session -= spent;
                    if let Some(window) = windows.streams.get_mut(&self.id) {
                        *window -= spent;
                    }
                    return Ok(take);
                }
            }
            grown.await;
        }
    }
}

/// Writes queued frames until every sender is gone, then shuts the write side.
async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, mut frames: mpsc::Receiver<Frame>) {
    let mut encoder = Encoder::default();
    let mut buf = BytesMut::with_capacity(32 * 1024);
    while let Some(frame) = frames.recv().await {
        let mut next = Some(frame);
        // Gather what is already queued into one write.
        while let Some(frame) = next.take() {
            if let Err(e) = encoder.encode(&frame, &mut buf) {
                debug!(error = %e, "a SPDY frame could not be encoded; it is dropped");
            }
            if buf.len() < 64 * 1024 {
                next = frames.try_recv().ok();
            }
        }
        if let Err(e) = write.write_all(&buf).await {
            debug!(error = %e, "the SPDY connection could not be written");
            return;
        }
        buf.clear();
        if write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// What the reader keeps of each open stream.
struct Open {
    /// Where the peer's data goes (`None` once the peer finished).
    data: Option<mpsc::Sender<Bytes>>,
}

/// Reads frames until the peer closes or breaks the protocol.
async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    out: mpsc::Sender<Frame>,
    incoming: mpsc::Sender<Stream>,
    shared: Arc<Shared>,
) {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let mut streams: HashMap<u32, Open> = HashMap::new();
    let mut last_id = 0u32;
    'read: loop {
        loop {
            let frame = match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    protocol_error(&out, last_id, &e).await;
                    break 'read;
                }
            };
            match frame {
                Frame::SynStream {
                    stream: id,
                    flags,
                    headers,
                    ..
                } => {
                    if id == 0 || id % 2 == 0 || id <= last_id {
                        let _ = out
                            .send(Frame::RstStream {
                                stream: id,
                                status: rst::PROTOCOL_ERROR,
                            })
                            .await;
                        continue;
                    }
                    last_id = id;
                    shared.last_id.store(id, Ordering::Relaxed);
                    if streams.len() >= MAX_STREAMS || incoming.is_closed() {
                        let _ = out
                            .send(Frame::RstStream {
                                stream: id,
                                status: rst::REFUSED_STREAM,
                            })
                            .await;
                        continue;
                    }
                    let (data_tx, data) = mpsc::channel(STREAM_QUEUE);
                    {
                        let mut windows = shared.lock();
                        let initial = windows.initial;
                        windows.streams.insert(id, initial);
                    }
                    let _ = out
                        .send(Frame::SynReply {
                            stream: id,
                            flags: 0,
                            headers: Vec::new(),
                        })
                        .await;
                    if flags & FLAG_FIN == 0 {
                        streams.insert(
                            id,
                            Open {
                                data: Some(data_tx),
                            },
                        );
                    }
                    let stream = Stream {
                        id,
                        headers,
                        data,
                        writer: StreamWriter {
                            id,
                            out: out.clone(),
                            shared: shared.clone(),
                        },
                        unacknowledged: 0,
                    };
                    if incoming.send(stream).await.is_err() {
                        streams.remove(&id);
                        let _ = out
                            .send(Frame::RstStream {
                                stream: id,
                                status: rst::REFUSED_STREAM,
                            })
                            .await;
                    }
                }
                Frame::Data {
                    stream: id,
                    flags,
                    data,
                } => {
                    let Some(open) = streams.get_mut(&id) else {
                        let _ = out
                            .send(Frame::RstStream {
                                stream: id,
                                status: rst::INVALID_STREAM,
                            })
                            .await;
                        continue;
                    };
                    if !data.is_empty() {
                        if let Some(sender) = &open.data {
                            // The application may have dropped the stream: its data
                            // is then discarded.
                            if sender.send(data).await.is_err() {
                                open.data = None;
                            }
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        // The peer sends nothing more: a later DATA is refused.
                        streams.remove(&id);
                    }
                }
                Frame::RstStream { stream: id, .. } => {
                    streams.remove(&id);
                    shared.lock().streams.remove(&id);
                    shared.grown.notify_waiters();
                }
                Frame::Settings { entries, .. } => {
                    for (_, id, value) in entries {
                        if id == frame::SETTINGS_INITIAL_WINDOW_SIZE {
                            let mut windows = shared.lock();
                            let change = i64::from(value) - windows.initial;
                            windows.initial = i64::from(value);
                            for window in windows.streams.values_mut() {
                                *window += change;
                            }
                        }
                    }
                    shared.grown.notify_waiters();
                }
                Frame::WindowUpdate { stream: id, delta } => {
                    {
                        let mut windows = shared.lock();
                        windows.enforced = true;
                        if id == 0 {
                            windows.session += i64::from(delta);
                        } else if let Some(window) = windows.streams.get_mut(&id) {
                            *window += i64::from(delta);
                        }
                    }
                    shared.grown.notify_waiters();
                }
                // The peer's own pings have odd ids (it is the client): echoed.
                Frame::Ping { id } if id % 2 == 1 => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                // No new streams will come; those open go on until the peer closes.
                Frame::GoAway { .. } => {}
                // Replies to our pings (we send none), HEADERS, SYN_REPLY (we open no
                // streams) and unknown control frames carry nothing this server needs.
                Frame::Ping { .. }
                | Frame::Headers { .. }
                | Frame::SynReply { .. }
                | Frame::Unknown { .. } => {}
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The peer is gone: every stream's data ends, writers learn the session ended.
    streams.clear();
    let _ = shared.ended.send(true);
    shared.grown.notify_waiters();
}

/// Tells the peer it broke the protocol (GOAWAY PROTOCOL_ERROR).
async fn protocol_error(out: &mpsc::Sender<Frame>, last_id: u32, error: &FrameError) {
    debug!(error = %error, "a SPDY peer broke the protocol; the session ends");
    let _ = out
        .send(Frame::GoAway {
            last_good: last_id,
            status: goaway::PROTOCOL_ERROR,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;

    /// The client's end of a session: frames written and read with its own codecs.
    struct Peer {
        io: DuplexStream,
        encoder: Encoder,
        decoder: Decoder,
        buf: BytesMut,
    }

    impl Peer {
        async fn send(&mut self, frame: Frame) {
            let mut out = BytesMut::new();
            self.encoder.encode(&frame, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        async fn recv(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(frame);
                }
                let read =
                    tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                        .await
                        .expect("the session answers in time")
                        .unwrap();
                if read == 0 {
                    return None;
                }
            }
        }

        async fn open(&mut self, id: u32, kind: &str, flags: u8) {
            self.send(Frame::SynStream {
                stream: id,
                associated: 0,
                priority: 0,
                flags,
                headers: vec![("streamType".to_owned(), kind.to_owned())],
            })
            .await;
        }
    }

    fn pair() -> (Session, Peer) {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let peer = Peer {
            io: theirs,
            encoder: Encoder::default(),
            decoder: Decoder::default(),
            buf: BytesMut::new(),
        };
        (Session::start(ours), peer)
    }

    #[tokio::test]
    async fn streams_the_peer_opens_are_replied_to_and_carry_data_both_ways() {
        let (mut session, mut peer) = pair();
        peer.open(1, "stdin", 0).await;
        assert!(matches!(
            peer.recv().await,
            Some(Frame::SynReply { stream: 1, .. })
        ));
        let mut stream = session.accept().await.expect("the stream is accepted");
        assert_eq!(stream.header("streamtype"), Some("stdin"));
        peer.send(Frame::Data {
            stream: 1,
            flags: 0,
            data: Bytes::from_static(b"hello"),
        })
        .await;
        peer.send(Frame::Data {
            stream: 1,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"!"),
        })
        .await;
        assert_eq!(stream.recv().await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(stream.recv().await.as_deref(), Some(&b"!"[..]));
        assert_eq!(stream.recv().await, None, "FIN ends the data");
        let writer = stream.writer();
        writer.write(Bytes::from_static(b"back")).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(
            peer.recv().await,
            Some(Frame::Data {
                stream: 1,
                flags: 0,
                data: Bytes::from_static(b"back")
            })
        );
        assert!(matches!(
            peer.recv().await,
            Some(Frame::Data {
                stream: 1,
                flags: FLAG_FIN,
                ..
            })
        ));
        // Pings the peer sends are echoed.
        peer.send(Frame::Ping { id: 5 }).await;
        assert_eq!(peer.recv().await, Some(Frame::Ping { id: 5 }));
        // Closing: GOAWAY naming the last stream, then the connection ends once the
        // peer closes its end.
        let closing = tokio::spawn(session.close(Duration::from_secs(10)));
        assert_eq!(
            peer.recv().await,
            Some(Frame::GoAway {
                last_good: 1,
                status: goaway::OK
            })
        );
        peer.io.shutdown().await.unwrap();
        drop(peer);
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn out_of_order_ids_and_data_for_unknown_streams_are_reset() {
        let (_session, mut peer) = pair();
        peer.open(3, "error", 0).await;
        assert!(matches!(
            peer.recv().await,
            Some(Frame::SynReply { stream: 3, .. })
        ));
        peer.open(1, "data", 0).await;
        assert_eq!(
            peer.recv().await,
            Some(Frame::RstStream {
                stream: 1,
                status: rst::PROTOCOL_ERROR
            })
        );
        peer.send(Frame::Data {
            stream: 9,
            flags: 0,
            data: Bytes::from_static(b"x"),
        })
        .await;
        assert_eq!(
            peer.recv().await,
            Some(Frame::RstStream {
                stream: 9,
                status: rst::INVALID_STREAM
            })
        );
    }

    #[tokio::test]
    async fn a_malformed_frame_ends_the_session_with_goaway_protocol_error() {
        let (mut session, mut peer) = pair();
        // A PING of 3 bytes.
        peer.io
            .write_all(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1])
            .await
            .unwrap();
        assert!(matches!(
            peer.recv().await,
            Some(Frame::GoAway {
                status: goaway::PROTOCOL_ERROR,
                ..
            })
        ));
        assert!(session.accept().await.is_none(), "no stream comes after");
        tokio::time::timeout(Duration::from_secs(10), session.ended())
            .await
            .expect("the session ends");
    }

    #[tokio::test]
    async fn windows_hold_writes_back_once_the_peer_shows_it_keeps_them() {
        let (mut session, mut peer) = pair();
        peer.open(1, "stdout", 0).await;
        assert!(matches!(peer.recv().await, Some(Frame::SynReply { .. })));
        let stream = session.accept().await.unwrap();
        let writer = stream.writer();
        // A peer that never sent WINDOW_UPDATE (client-go) gets more than 64 KiB.
        writer
            .write(Bytes::from(vec![1u8; 80 * 1024]))
            .await
            .unwrap();
        let mut got = 0;
        while got < 80 * 1024 {
            match peer.recv().await {
                Some(Frame::Data { data, .. }) => got += data.len(),
                other => panic!("{other:?}"),
            }
        }
        // One that updates a window is held to it.
        peer.send(Frame::WindowUpdate {
            stream: 1,
            delta: 1,
        })
        .await;
        // The stream's window is now 64 KiB - 80 KiB + 1 < 0: nothing may go out until
        // the peer grants more.
        let mut pending = tokio::spawn(async move {
            writer
                .write(Bytes::from_static(b"later"))
                .await
                .map(|_| writer)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut pending)
                .await
                .is_err(),
            "the write waits for the window"
        );
        // The session's window is short too: both must grow.
        for stream in [1, 0] {
            peer.send(Frame::WindowUpdate {
                stream,
                delta: 32 * 1024,
            })
            .await;
        }
        pending.await.unwrap().unwrap();
        assert!(matches!(
            peer.recv().await,
            Some(Frame::Data { stream: 1, .. })
        ));
    }
}
