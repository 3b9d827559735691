//! The CRI container log format, written by the process backend and read by anyone
//! serving logs: one line per record,
//!
//! ```text
//! 2026-11-25T11:28:41.786727717Z stdout F hello world
//! <RFC3339Nano time>             <stream> <F = full | P = partial> <message>
//! ```
//!
//! containerd writes the same format for real containers, so `rafter logs` reads every
//! backend's files alike. Owns formatting and parsing of single lines; it must not do
//! file I/O (callers own their files) or rotation.

use std::time::SystemTime;

/// Longest message written in one record; longer lines are split into `P` records.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The timestamp as written (RFC 3339, variable fraction digits).
    pub time: String,
    /// stdout or stderr.
    pub stream: LogStream,
    /// False for a `P` record: the line continues in the next record.
    pub full: bool,
    /// The message without the trailing newline.
    pub message: Vec<u8>,
}

/// Encodes one output line (without its newline) as records with a trailing newline
/// each, split at [`MAX_RECORD_BYTES`]. `complete` is false for a last fragment that had
/// no newline yet (the stream ended or the buffer filled).
pub fn encode_line(at: SystemTime, stream: LogStream, line: &[u8], complete: bool) -> Vec<u8> {
    let time = humantime::format_rfc3339_nanos(at).to_string();
    let mut out = Vec::with_capacity(line.len() + time.len() + 12);
    let mut chunks = line.chunks(MAX_RECORD_BYTES).peekable();
    if chunks.peek().is_none() {
        push_record(&mut out, &time, stream, complete, b"");
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        push_record(&mut out, &time, stream, last && complete, chunk);
    }
    out
}

fn push_record(out: &mut Vec<u8>, time: &str, stream: LogStream, full: bool, msg: &[u8]) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(msg);
    out.push(b'\n');
}

/// Parses one record (with or without its newline); `None` if it is not CRI format.
pub fn parse_line(line: &[u8]) -> Option<LogRecord> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    humantime::parse_rfc3339(time).ok()?;
    Some(LogRecord {
        time: time.to_owned(),
        stream,
        full,
        message: parts.next().unwrap_or_default().to_vec(),
    })
}

/// The text of a whole log file: the messages of its records, partial records joined,
/// one line per full record. Lines that are not CRI records are skipped.
pub fn messages(file: &[u8]) -> Vec<(LogStream, String)> {
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for line in file.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Some(rec) = parse_line(line) {
            pending.extend_from_slice(&rec.message);
            if rec.full {
                out.push((rec.stream, String::from_utf8_lossy(&pending).into_owned()));
                pending.clear();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_round_trips_through_the_cri_format() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let enc = encode_line(at, LogStream::Stderr, b"oops: a b", true);
        assert_eq!(
            String::from_utf8(enc.clone()).unwrap(),
            "2023-11-14T22:13:20.000000005Z stderr F oops: a b\n"
        );
        let rec = parse_line(&enc).unwrap();
        assert_eq!(rec.stream, LogStream::Stderr);
        assert!(rec.full);
        assert_eq!(rec.message, b"oops: a b");
    }

    #[test]
    fn long_lines_are_split_into_partial_records_and_joined_back() {
        let line = vec![b'x'; MAX_RECORD_BYTES * 2 + 10];
        let enc = encode_line(SystemTime::now(), LogStream::Stdout, &line, true);
        let records: Vec<_> = enc
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3);
        assert!(!records[0].full && !records[1].full && records[2].full);
        let joined = messages(&enc);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].1.len(), line.len());
    }

    #[test]
    fn containerd_style_short_fractions_parse() {
        let rec = parse_line(b"2026-11-25T11:28:41.7867Z stdout F hi").unwrap();
        assert_eq!(rec.message, b"hi");
        assert!(parse_line(b"garbage line").is_none());
    }
}
