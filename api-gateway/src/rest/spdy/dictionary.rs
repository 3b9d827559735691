//! The SPDY/3 header compression dictionary: the bytes both ends preload into their zlib
//! streams (the protocol's section 2.6.10.1), so header blocks compress from the first
//! frame. Owns those bytes only; it must not be changed: a single byte off and the
//! peer's inflate refuses every header block (the zlib header carries its Adler-32).
//!
//! The dictionary is defined as a list of words, each preceded by its length as a
//! 32-bit big-endian integer, followed by one unprefixed string; it is laid out here
//! in that shape and assembled once.

use std::sync::OnceLock;

/// The length-prefixed words, in order.
const WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The unprefixed tail: status codes and phrases, dates, common values.
const TAIL: [&str; 4] = [
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
     401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error\
     501 Not Implemented503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
     Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,\
     application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=\
     gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
];

/// The dictionary's bytes (1,423 of them).
pub(crate) fn dictionary() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut bytes = Vec::with_capacity(1423);
        for word in WORDS {
            // Every word is a few bytes long: the cast cannot truncate.
            bytes.extend_from_slice(&(word.len() as u32).to_be_bytes());
            bytes.extend_from_slice(word.as_bytes());
        }
        for part in TAIL {
            bytes.extend_from_slice(part.as_bytes());
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adler-32, as zlib puts it in a stream's header to name its dictionary.
    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in bytes {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn the_dictionary_is_the_protocols_1423_bytes() {
        let bytes = dictionary();
        assert_eq!(bytes.len(), 1423);
        assert_eq!(&bytes[..11], b"\0\0\0\x07options");
        assert!(bytes.ends_with(b",*,enq=0."));
        // The identifier every SPDY/3 peer's zlib stream names (and checks).
        assert_eq!(adler32(bytes), 0xe3c6_a7c2);
    }
}
