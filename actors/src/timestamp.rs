//! [`Timestamp`]: a point in time as the controllers see it, passed in by the caller.
//!
//! Owns the conversion between the API's RFC 3339 strings (`creationTimestamp`,
//! `lastTransitionTime`, a Lease's `renewTime`) and milliseconds since the Unix epoch. It
//! must not read the clock: the actor around a controller core decides what "now" is (the
//! time the leader wrote into the log entry), so every replay computes the same actions.

use std::fmt;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// The instant `seconds` seconds after the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp as the API writes them (`2024-05-01T10:00:00Z`).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let millis = at.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).ok().map(Timestamp)
    }

    /// Parses an optional API timestamp; `None` when absent or unparsable.
    pub fn parse_opt(text: Option<&String>) -> Option<Timestamp> {
        text.and_then(|t| Timestamp::parse(t))
    }

    /// The RFC 3339 form the API stores, at second precision as Kubernetes writes it.
    pub fn to_rfc3339(self) -> String {
        let seconds = self.0.div_euclid(1000);
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }

    /// This instant moved `d` later.
    pub fn plus(self, d: Duration) -> Timestamp {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// This instant moved `seconds` later (earlier when negative).
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_second_precision() {
        let t = Timestamp::parse("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T10:00:00Z");
        let with_fraction = Timestamp::parse("2024-05-01T10:00:00.750+00:00").unwrap();
        assert_eq!(with_fraction.since(t), Duration::from_millis(750));
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn durations_never_go_negative() {
        let t = Timestamp::from_unix_seconds(100);
        assert_eq!(t.since(t.plus_seconds(5)), Duration::ZERO);
        assert_eq!(
            t.plus(Duration::from_secs(2)).since(t),
            Duration::from_secs(2)
        );
    }
}
