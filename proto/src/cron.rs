//! Cron schedules of CronJobs ([`CronSchedule`]): a schedule in cron syntax read in a
//! time zone, and the first tick after an instant.
//!
//! The syntax is Vixie cron's five fields (minute, hour, day of month, month, day of
//! week, names allowed: `MON`, `JAN`), the macros `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight` and `@hourly`, and, beyond Kubernetes, an optional
//! leading seconds field (six fields) for schedules finer than a minute. Parsing and
//! occurrence search are the `croner` crate's; zones are the IANA database of
//! `chrono-tz`. Owns the reading of schedules only: no clock (the caller says when "now"
//! is), no state.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use crate::Timestamp;

/// Why a schedule or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule is not cron syntax.
    #[error("unparseable schedule {schedule:?}: {reason}")]
    Schedule {
        /// The schedule as given.
        schedule: String,
        /// What the parser said.
        reason: String,
    },
    /// The time zone is not an IANA zone name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}

/// A parsed schedule in its time zone (UTC when none is given).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `schedule` to be read in `time_zone` (an IANA name such as `Europe/Paris`).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<CronSchedule, ScheduleError> {
        let zone = match time_zone {
            None | Some("") => Tz::UTC,
            Some(name) => {
                Tz::from_str(name).map_err(|_| ScheduleError::TimeZone(name.to_owned()))?
            }
        };
        if schedule.trim_start().starts_with("TZ=") || schedule.trim_start().starts_with("CRON_TZ=")
        {
            return Err(ScheduleError::Schedule {
                schedule: schedule.to_owned(),
                reason: "a time zone in the schedule is not supported; use spec.timeZone"
                    .to_owned(),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(schedule)
            .map_err(|e| ScheduleError::Schedule {
                schedule: schedule.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first tick strictly after `after`, or `None` when the schedule has no more.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = Utc
            .timestamp_millis_opt(after.unix_millis())
            .single()?
            .with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(Timestamp::from_unix_millis(next.timestamp_millis()))
    }

    /// The ticks in `(after, until]`, oldest first, at most `limit` of them (the newest
    /// ones when there are more), and how many there were in all (up to `limit + 1`
    /// means "more than `limit`").
    pub fn ticks_between(
        &self,
        after: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> (Vec<Timestamp>, usize) {
        let mut ticks = std::collections::VecDeque::new();
        let mut total = 0;
        let mut cursor = after;
        while let Some(next) = self.next_after(cursor) {
            if next > until {
                break;
            }
            total += 1;
            ticks.push_back(next);
            if ticks.len() > limit {
                ticks.pop_front();
            }
            cursor = next;
            if total > 10_000 {
                break;
            }
        }
        (ticks.into(), total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn five_fields_and_macros_give_the_next_tick() {
        let every_minute = CronSchedule::parse("*/1 * * * *", None).unwrap();
        assert_eq!(
            every_minute.next_after(at("2026-01-01T10:00:30Z")),
            Some(at("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            every_minute.next_after(at("2026-01-01T10:01:00Z")),
            Some(at("2026-01-01T10:02:00Z")),
            "a tick is strictly after the instant"
        );
        let hourly = CronSchedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-01-01T10:20:00Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        let seconds = CronSchedule::parse("*/5 * * * * *", None).unwrap();
        assert_eq!(
            seconds.next_after(at("2026-01-01T10:00:01Z")),
            Some(at("2026-01-01T10:00:05Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_ticks() {
        let nine = CronSchedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        // 09:00 in Paris in winter is 08:00 UTC.
        assert_eq!(
            nine.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T08:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_refused_with_what_was_wrong() {
        assert!(matches!(
            CronSchedule::parse("61 * * * *", None),
            Err(ScheduleError::Schedule { .. })
        ));
        assert!(matches!(
            CronSchedule::parse("* * * * *", Some("Mars/Olympus")),
            Err(ScheduleError::TimeZone(z)) if z == "Mars/Olympus"
        ));
        assert!(CronSchedule::parse("TZ=UTC * * * * *", None).is_err());
    }

    #[test]
    fn ticks_between_keeps_the_newest_and_counts_all() {
        let s = CronSchedule::parse("* * * * *", None).unwrap();
        let (ticks, total) =
            s.ticks_between(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:05:30Z"), 2);
        assert_eq!(total, 5);
        assert_eq!(
            ticks,
            vec![at("2026-01-01T10:04:00Z"), at("2026-01-01T10:05:00Z")]
        );
    }
}
