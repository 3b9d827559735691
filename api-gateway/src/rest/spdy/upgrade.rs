//! The HTTP/1.1 upgrade to SPDY/3.1 as client-go asks for it: recognising the request,
//! choosing the stream protocol, and the 101 answer.
//!
//! ```text
//!  POST …/exec|attach|portforward   Connection: Upgrade, Upgrade: SPDY/3.1
//!       X-Stream-Protocol-Version: v4.channel.k8s.io      (one header line each,
//!       X-Stream-Protocol-Version: v3.channel.k8s.io …     best first)
//!  ◄ 101 Switching Protocols   Connection: Upgrade, Upgrade: SPDY/3.1,
//!       X-Stream-Protocol-Version: <the first offered that is served>
//! ```
//!
//! Owns the handshake's headers only: who may upgrade is decided before this answer.

use bytes::Bytes;

use super::super::convert::full;
use super::super::Body;

/// The `Upgrade` token of SPDY/3.1.
const SPDY: &str = "SPDY/3.1";

/// The header naming the stream protocols offered and chosen.
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// Whether the request asks to upgrade to SPDY/3.1.
pub(crate) fn requested(headers: &http::HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has(http::header::UPGRADE, SPDY) && has(http::header::CONNECTION, "upgrade")
}

/// The stream protocols the client offers, in its order (every header line, and every
/// comma-separated value in one).
pub(crate) fn offered(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The first protocol the client offers that the server serves.
pub(crate) fn negotiate(offered: &[String], served: &[&'static str]) -> Option<&'static str> {
    offered
        .iter()
        .find_map(|p| served.iter().find(|s| **s == p.as_str()).copied())
}

/// The 101 answer that switches the connection to SPDY with `protocol`.
pub(crate) fn switching(protocol: &'static str) -> http::Response<Body> {
    let mut answer = http::Response::new(full(Bytes::new()));
    *answer.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(http::header::UPGRADE, http::HeaderValue::from_static(SPDY));
    headers.insert(PROTOCOL_HEADER, http::HeaderValue::from_static(protocol));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_spdy_upgrade_is_told_from_a_websocket_one_and_the_clients_order_wins() {
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            (
                "x-stream-protocol-version",
                "v3.channel.k8s.io, v2.channel.k8s.io",
            ),
        ]);
        assert!(requested(&spdy));
        assert!(!requested(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!requested(&headers(&[("upgrade", "SPDY/3.1")])));
        let offered = offered(&spdy);
        assert_eq!(
            offered,
            [
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io"
            ]
        );
        assert_eq!(
            negotiate(&offered, &["v2.channel.k8s.io", "v3.channel.k8s.io"]),
            Some("v3.channel.k8s.io")
        );
        assert_eq!(negotiate(&offered, &["portforward.k8s.io"]), None);
        let answer = switching("v4.channel.k8s.io");
        assert_eq!(answer.status(), 101);
        assert_eq!(answer.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(
            answer.headers()["x-stream-protocol-version"],
            "v4.channel.k8s.io"
        );
    }
}
