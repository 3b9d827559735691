//! Timestamps in the API's shape: RFC 3339 UTC with microseconds for what the agent
//! writes (`2026-11-25T11:00:00.000000Z`).
//!
//! Owns formatting only; it must not read the clock itself (callers pass the time in,
//! so the pure parts of the agent stay testable).

use std::time::SystemTime;

/// `at` as `2026-11-25T11:00:00.000000Z`.
pub(crate) fn rfc3339_micros(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_written_with_microseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
        assert_eq!(rfc3339_micros(at), "2026-11-18T11:06:40.123456Z");
    }
}
