//! SPDY/3.1 frames on the wire: reading them from a byte buffer and writing them into
//! one, with the session's two zlib contexts for header blocks.
//!
//! ```text
//!  control: |1| version 3 (15) | type (16) | flags (8) | length (24) | payload
//!  data:    |0| stream id (31)             | flags (8) | length (24) | bytes
//!  header block (zlib, SPDY/3 dictionary, sync-flushed per frame):
//!           count (32) then per pair: name length (32) name, value length (32) value
//! ```
//!
//! Owns the byte layout and header compression only. It does not know what a stream's
//! state is or whether a frame is allowed now: a frame that is well formed decodes, and
//! the session decides. A malformed frame is an error, never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;

/// The protocol version carried in control frames.
const VERSION: u16 = 3;

/// A frame's fixed header: 8 bytes.
const HEADER_LEN: usize = 8;

/// The most header bytes one block may inflate to (a peer's zip bomb ends the session).
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// The most name/value pairs one block may hold.
const MAX_HEADER_PAIRS: u32 = 1024;

/// Control frame types.
mod kind {
    pub(super) const SYN_STREAM: u16 = 1;
    pub(super) const SYN_REPLY: u16 = 2;
    pub(super) const RST_STREAM: u16 = 3;
    pub(super) const SETTINGS: u16 = 4;
    pub(super) const PING: u16 = 6;
    pub(super) const GOAWAY: u16 = 7;
    pub(super) const HEADERS: u16 = 8;
    pub(super) const WINDOW_UPDATE: u16 = 9;
}

/// The FIN flag of SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender's last frame.
pub(crate) const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes this server sends.
pub(crate) mod rst {
    /// The frame broke the protocol (a stream id out of order, for one).
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not open.
    pub(crate) const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing (too many open).
    pub(crate) const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer wanted.
    pub(crate) const CANCEL: u32 = 5;
}

/// GOAWAY status codes.
pub(crate) mod goaway {
    /// A normal end of the session.
    pub(crate) const OK: u32 = 0;
    /// The peer broke the protocol.
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
}

/// SETTINGS ids this server reads.
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// The name/value pairs of a header block, names lowercase, in order.
pub(crate) type Headers = Vec<(String, String)>;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The peer opens a stream.
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    /// The answer to a SYN_STREAM: the stream is accepted.
    SynReply {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    /// A stream ends abnormally.
    RstStream { stream: u32, status: u32 },
    /// Session settings: `(flags, id, value)` entries.
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check, echoed by the end that did not send it.
    Ping { id: u32 },
    /// The session ends; streams above `last_good` were not processed.
    GoAway { last_good: u32, status: u32 },
    /// More headers for a stream.
    Headers {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    /// The receiver consumed `delta` bytes of a stream (0: of the session).
    WindowUpdate { stream: u32, delta: u32 },
    /// Bytes of a stream.
    Data { stream: u32, flags: u8, data: Bytes },
    /// A control frame of a type this server does not use (skipped, as the protocol
    /// says unknown control frames are).
    Unknown { kind: u16 },
}

/// Why the bytes are not SPDY/3.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A control frame of another protocol version.
    #[error("a SPDY control frame of version {0} (only 3 is spoken)")]
    Version(u16),
    /// A frame whose length does not fit its type.
    #[error("a SPDY {kind} frame of {length} bytes is malformed")]
    Length { kind: &'static str, length: usize },
    /// A header block that does not inflate, or does not parse once inflated.
    #[error("a SPDY header block is malformed: {0}")]
    HeaderBlock(String),
    /// A header block to send could not be compressed.
    #[error("a SPDY header block could not be compressed: {0}")]
    Compress(String),
}

/// The reading end: the peer's zlib stream of header blocks, for the session's life.
pub(crate) struct Decoder {
    inflate: Decompress,
}

/// The writing end: our zlib stream of header blocks, for the session's life.
pub(crate) struct Encoder {
    deflate: Compress,
    /// Whether the dictionary was given to the stream yet.
    primed: bool,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`, or `None` when `buf` holds only
    /// part of one (more bytes are needed; nothing is consumed).
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let length = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
        if buf.len() < HEADER_LEN + length {
            buf.reserve(HEADER_LEN + length - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let mut payload = buf.split_to(length).freeze();
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: word & 0x7fff_ffff,
                flags,
                data: payload,
            }));
        }
        // Both halves of `word` fit 16 bits: the casts cannot truncate.
        let version = ((word >> 16) & 0x7fff) as u16;
        let kind = (word & 0xffff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let bad = |kind: &'static str| FrameError::Length { kind, length };
        let frame = match kind {
            kind::SYN_STREAM => {
                if length < 10 {
                    return Err(bad("SYN_STREAM"));
                }
                let stream = payload.get_u32() & 0x7fff_ffff;
                let associated = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                let headers = self.inflate_headers(&payload)?;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            kind::SYN_REPLY | kind::HEADERS => {
                if length < 4 {
                    return Err(bad(if kind == kind::HEADERS {
                        "HEADERS"
                    } else {
                        "SYN_REPLY"
                    }));
                }
                let stream = payload.get_u32() & 0x7fff_ffff;
                let headers = self.inflate_headers(&payload)?;
                if kind == kind::HEADERS {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            kind::RST_STREAM => {
                if length != 8 {
                    return Err(bad("RST_STREAM"));
                }
                Frame::RstStream {
                    stream: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            kind::SETTINGS => {
                if length < 4 {
                    return Err(bad("SETTINGS"));
                }
                let count = payload.get_u32() as usize;
                if count.checked_mul(8) != Some(length - 4) {
                    return Err(bad("SETTINGS"));
                }
                let entries = (0..count)
                    .map(|_| {
                        let head = payload.get_u32();
                        // The top byte is the entry's flags, the rest its id.
                        ((head >> 24) as u8, head & 0x00ff_ffff, payload.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            kind::PING => {
                if length != 4 {
                    return Err(bad("PING"));
                }
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            kind::GOAWAY => {
                // SPDY/3 added the status; a SPDY/2-shaped 4-byte GOAWAY is accepted too.
                if length != 8 && length != 4 {
                    return Err(bad("GOAWAY"));
                }
                let last_good = payload.get_u32() & 0x7fff_ffff;
                let status = if payload.remaining() >= 4 {
                    payload.get_u32()
                } else {
                    goaway::OK
                };
                Frame::GoAway { last_good, status }
            }
            kind::WINDOW_UPDATE => {
                if length != 8 {
                    return Err(bad("WINDOW_UPDATE"));
                }
                Frame::WindowUpdate {
                    stream: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { kind: other },
        };
        Ok(Some(frame))
    }

    /// Inflates and parses one header block (the next part of the peer's zlib stream).
    fn inflate_headers(&mut self, block: &[u8]) -> Result<Headers, FrameError> {
        let bad = |e: &dyn std::fmt::Display| FrameError::HeaderBlock(e.to_string());
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        let mut primed_now = false;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlock(format!(
                        "it inflates past {MAX_HEADER_BLOCK} bytes"
                    )));
                }
                out.reserve(out.len().max(256));
            }
            let (before_in, before_out) = (self.inflate.total_in(), out.len());
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed =
                usize::try_from(self.inflate.total_in() - before_in).map_err(|e| bad(&e))?;
            input = &input[consumed..];
            let progress = consumed > 0 || out.len() > before_out || primed_now;
            primed_now = false;
            match result {
                Ok(Status::StreamEnd) => break,
                Ok(_) if input.is_empty() && out.len() < out.capacity() => break,
                Ok(Status::BufError) if input.is_empty() => break,
                Ok(_) if !progress && out.len() < out.capacity() => {
                    return Err(FrameError::HeaderBlock(
                        "its zlib data stops making progress".to_owned(),
                    ))
                }
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(_) => {
                        primed_now = true;
                        self.inflate.set_dictionary(dictionary()).map_err(|e| {
                            FrameError::HeaderBlock(format!(
                                "the peer's zlib stream names another dictionary: {e}"
                            ))
                        })?;
                    }
                    None => return Err(bad(&e)),
                },
            }
        }
        parse_headers(&out)
    }
}

impl Encoder {
    /// Appends `frame` to `out`.
    pub(crate) fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                put_header(out, stream & 0x7fff_ffff, *flags, data.len())?;
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                let block = self.deflate_headers(headers)?;
                put_control(out, kind::SYN_STREAM, *flags, 10 + block.len())?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32(associated & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0);
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            }
            | Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    kind::SYN_REPLY
                } else {
                    kind::HEADERS
                };
                let block = self.deflate_headers(headers)?;
                put_control(out, kind, *flags, 4 + block.len())?;
                out.put_u32(stream & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream, status } => {
                put_control(out, kind::RST_STREAM, 0, 8)?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                put_control(out, kind::SETTINGS, *flags, 4 + 8 * entries.len())?;
                out.put_u32(len32(entries.len())?);
                for (entry_flags, id, value) in entries {
                    out.put_u32((u32::from(*entry_flags) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                put_control(out, kind::PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                put_control(out, kind::GOAWAY, 0, 8)?;
                out.put_u32(last_good & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream, delta } => {
                put_control(out, kind::WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Unknown { kind } => put_control(out, *kind, 0, 0)?,
        }
        Ok(())
    }

    /// Serialises and compresses one header block (the next part of our zlib stream).
    fn deflate_headers(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let bad = |e: &dyn std::fmt::Display| FrameError::Compress(e.to_string());
        if !self.primed {
            self.deflate
                .set_dictionary(dictionary())
                .map_err(|e| bad(&e))?;
            self.primed = true;
        }
        let mut raw = Vec::new();
        raw.put_u32(len32(headers.len())?);
        for (name, value) in headers {
            raw.put_u32(len32(name.len())?);
            raw.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            raw.put_u32(len32(value.len())?);
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(64));
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| bad(&e))?;
            let consumed =
                usize::try_from(self.deflate.total_in() - before).map_err(|e| bad(&e))?;
            input = &input[consumed..];
            // A sync flush is complete once the input is used up with room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Parses an inflated header block.
fn parse_headers(mut block: &[u8]) -> Result<Headers, FrameError> {
    let short = || FrameError::HeaderBlock("it ends inside a name or value".to_owned());
    let take = |block: &mut &[u8]| -> Result<String, FrameError> {
        if block.remaining() < 4 {
            return Err(short());
        }
        let length = block.get_u32() as usize;
        if block.remaining() < length {
            return Err(short());
        }
        let text = std::str::from_utf8(&block[..length])
            .map_err(|_| FrameError::HeaderBlock("a name or value is not UTF-8".to_owned()))?
            .to_owned();
        block.advance(length);
        Ok(text)
    };
    if block.remaining() < 4 {
        return Err(short());
    }
    let count = block.get_u32();
    if count > MAX_HEADER_PAIRS {
        return Err(FrameError::HeaderBlock(format!(
            "it holds {count} pairs (at most {MAX_HEADER_PAIRS})"
        )));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = take(&mut block)?;
        if name.is_empty() {
            return Err(FrameError::HeaderBlock("a header name is empty".to_owned()));
        }
        let value = take(&mut block)?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    if !block.is_empty() {
        return Err(FrameError::HeaderBlock(
            "bytes follow the last pair".to_owned(),
        ));
    }
    Ok(headers)
}

/// A length as the 32-bit field the protocol gives it.
fn len32(length: usize) -> Result<u32, FrameError> {
    u32::try_from(length).map_err(|_| FrameError::Length {
        kind: "outgoing",
        length,
    })
}

/// A frame's 24-bit length field.
fn len24(length: usize) -> Result<[u8; 3], FrameError> {
    if length > 0x00ff_ffff {
        return Err(FrameError::Length {
            kind: "outgoing",
            length,
        });
    }
    // Each byte is masked: the casts cannot truncate anything meant.
    Ok([(length >> 16) as u8, (length >> 8) as u8, length as u8])
}

fn put_header(out: &mut BytesMut, word: u32, flags: u8, length: usize) -> Result<(), FrameError> {
    let length = len24(length)?;
    out.put_u32(word);
    out.put_u8(flags);
    out.extend_from_slice(&length);
    Ok(())
}

fn put_control(out: &mut BytesMut, kind: u16, flags: u8, length: usize) -> Result<(), FrameError> {
    put_header(
        out,
        0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind),
        flags,
        length,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Encodes `frames` with one codec and decodes them with another (the two ends).
    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let (mut sender, mut receiver) = (Encoder::default(), Decoder::default());
        let mut wire = BytesMut::new();
        for frame in frames {
            sender.encode(frame, &mut wire).unwrap();
        }
        let mut decoded = Vec::new();
        while let Some(frame) = receiver.decode(&mut wire).unwrap() {
            decoded.push(frame);
        }
        assert!(wire.is_empty(), "{} bytes left undecoded", wire.len());
        decoded
    }

    #[test]
    fn every_frame_type_round_trips_and_header_blocks_share_one_zlib_stream() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 2,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "8080")]),
            },
            Frame::SynStream {
                stream: 3,
                associated: 1,
                priority: 0,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "data"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream: 3,
                flags: 0,
                headers: Vec::new(),
            },
            Frame::Headers {
                stream: 3,
                flags: FLAG_FIN,
                headers: headers(&[("x", "a\0b")]),
            },
            Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream: 5,
                flags: 0,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream: 3,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good: 3,
                status: goaway::OK,
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: 32768,
            },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn header_names_go_out_lowercase() {
        let sent = Frame::SynReply {
            stream: 1,
            flags: 0,
            headers: headers(&[("StreamType", "Error")]),
        };
        let got = round_trip(&[sent]);
        assert_eq!(
            got,
            vec![Frame::SynReply {
                stream: 1,
                flags: 0,
                headers: headers(&[("streamtype", "Error")]),
            }]
        );
    }

    #[test]
    fn a_partial_frame_waits_for_more_bytes_and_consumes_nothing() {
        let mut wire = BytesMut::new();
        Encoder::default()
            .encode(
                &Frame::Data {
                    stream: 1,
                    flags: 0,
                    data: Bytes::from_static(b"abcdef"),
                },
                &mut wire,
            )
            .unwrap();
        let whole = wire.clone();
        let mut part = BytesMut::from(&whole[..10]);
        let mut codec = Decoder::default();
        assert_eq!(codec.decode(&mut part).unwrap(), None);
        assert_eq!(part.len(), 10);
        part.extend_from_slice(&whole[10..]);
        assert!(matches!(
            codec.decode(&mut part).unwrap(),
            Some(Frame::Data { stream: 1, .. })
        ));
    }

    #[test]
    fn a_fresh_decoder_reads_a_dictionary_primed_stream_of_several_blocks() {
        // A peer's zlib stream names the dictionary in its header and goes on across
        // frames: a decoder that has seen nothing before must read all of them.
        let mut wire = BytesMut::new();
        let mut peer = Encoder::default();
        for id in [1u32, 3, 5] {
            peer.encode(
                &Frame::SynStream {
                    stream: id,
                    associated: 0,
                    priority: 0,
                    flags: 0,
                    headers: headers(&[("streamtype", "stdout")]),
                },
                &mut wire,
            )
            .unwrap();
        }
        // The stream's header names the SPDY dictionary (FDICT set, then its Adler-32).
        assert_eq!(wire[18], 0x78, "a zlib stream");
        assert_eq!(wire[19] & 0x20, 0x20, "FDICT");
        assert_eq!(&wire[20..24], &0xe3c6_a7c2u32.to_be_bytes());
        let mut codec = Decoder::default();
        for id in [1u32, 3, 5] {
            match codec.decode(&mut wire).unwrap() {
                Some(Frame::SynStream {
                    stream, headers: h, ..
                }) => {
                    assert_eq!(stream, id);
                    assert_eq!(h, headers(&[("streamtype", "stdout")]));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let decode = |bytes: &[u8]| Decoder::default().decode(&mut BytesMut::from(bytes));
        // A control frame of SPDY/2.
        assert_eq!(
            decode(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::Version(2))
        );
        // A PING of 3 bytes; a RST_STREAM of 4; a SYN_STREAM too short for its fields.
        assert!(matches!(
            decode(&[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 1]),
            Err(FrameError::Length { kind: "PING", .. })
        ));
        assert!(matches!(
            decode(&[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1]),
            Err(FrameError::Length { .. })
        ));
        assert!(matches!(
            decode(&[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 1]),
            Err(FrameError::Length { .. })
        ));
        // SETTINGS whose count disagrees with its length.
        assert!(matches!(
            decode(&[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9]),
            Err(FrameError::Length { .. })
        ));
        // A SYN_STREAM whose header block is not zlib at all.
        let mut syn = vec![0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        syn.extend_from_slice(b"junk");
        assert!(matches!(decode(&syn), Err(FrameError::HeaderBlock(_))));
        // A header block that inflates to a pair cut short.
        assert!(matches!(
            parse_headers(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']),
            Err(FrameError::HeaderBlock(_))
        ));
        assert!(matches!(
            parse_headers(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::HeaderBlock(_))
        ));
        // Unknown control types are skipped, as the protocol says.
        assert_eq!(
            decode(&[0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2]),
            Ok(Some(Frame::Unknown { kind: 10 }))
        );
    }

    #[test]
    fn a_header_block_naming_another_dictionary_is_refused() {
        // A zlib header with FDICT and an Adler-32 that is not the SPDY dictionary's.
        let mut syn = vec![0x80, 3, 0, 1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        syn.extend_from_slice(&[0x78, 0xbb, 0, 0, 0, 1]);
        let error = Decoder::default().decode(&mut BytesMut::from(&syn[..]));
        assert!(
            matches!(error, Err(FrameError::HeaderBlock(_))),
            "{error:?}"
        );
    }
}
