//! [`Timestamp`]: a point in time as the API writes it, the one time type of every crate.
//!
//! Owns the conversion between the API's RFC 3339 strings (`creationTimestamp`,
//! `lastTransitionTime`, a Lease's `renewTime`) and instants: second precision for what
//! objects store, as Kubernetes writes it, and microseconds for what agents write in
//! `MicroTime` fields. It reads the clock only in [`Timestamp::now`]: controller cores take
//! "now" from their caller (the time the leader wrote into the log entry), so every replay
//! computes the same actions.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time of this machine's clock.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// The instant `millis` milliseconds after the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp(millis.saturating_mul(1000))
    }

    /// The instant `seconds` seconds after the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds.saturating_mul(1_000_000))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Parses an RFC 3339 timestamp as the API writes them (`2024-05-01T10:00:00Z`).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = at.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros).ok().map(Timestamp)
    }

    /// Parses an optional API timestamp; `None` when absent or unparsable.
    pub fn parse_opt(text: Option<&String>) -> Option<Timestamp> {
        text.and_then(|t| Timestamp::parse(t))
    }

    fn at(self, nanos: bool) -> Option<OffsetDateTime> {
        let at = OffsetDateTime::from_unix_timestamp(self.unix_seconds()).ok()?;
        if nanos {
            let micros = u32::try_from(self.0.rem_euclid(1_000_000)).ok()?;
            at.replace_microsecond(micros).ok()
        } else {
            Some(at)
        }
    }

    /// The RFC 3339 form objects store, at second precision as Kubernetes writes it
    /// (`2024-05-01T10:00:00Z`).
    pub fn to_rfc3339(self) -> String {
        self.at(false)
            .and_then(|at| at.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }

    /// The RFC 3339 form of `MicroTime` fields, with six fractional digits
    /// (`2026-11-25T11:00:00.000000Z`).
    pub fn to_rfc3339_micros(self) -> String {
        match self.at(true) {
            Some(at) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.microsecond()
            ),
            None => "1970-01-01T00:00:00.000000Z".to_owned(),
        }
    }

    /// This instant moved `d` later.
    pub fn plus(self, d: Duration) -> Timestamp {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// This instant moved `seconds` later (earlier when negative).
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// How long after `earlier` this instant is; zero when it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let micros = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(at: SystemTime) -> Timestamp {
        let micros = match at.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|m| -m)
                .unwrap_or(i64::MIN),
        };
        Timestamp(micros)
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
        assert_eq!(with_fraction.to_rfc3339(), "2024-05-01T10:00:00Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn micro_times_are_written_with_six_digits() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
        assert_eq!(
            Timestamp::from(at).to_rfc3339_micros(),
            "2026-11-18T11:06:40.123456Z"
        );
        let whole = Timestamp::from_unix_seconds(1_795_000_000);
        assert_eq!(whole.to_rfc3339_micros(), "2026-11-18T11:06:40.000000Z");
        assert_eq!(
            Timestamp::parse(&whole.to_rfc3339_micros()),
            Some(whole),
            "the micro form parses back"
        );
    }

    #[test]
    fn millis_and_seconds_convert_both_ways() {
        let t = Timestamp::from_unix_millis(1_500);
        assert_eq!(t.unix_millis(), 1_500);
        assert_eq!(t.unix_seconds(), 1);
        assert_eq!(Timestamp::from_unix_seconds(-1).unix_millis(), -1_000);
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
