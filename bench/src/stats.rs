//! Latency samples and their summary: operations per second and latency percentiles.
//!
//! Owns [`Summary`] and the nearest-rank percentile. Pure: no clock, no I/O.

use std::time::Duration;

/// What one measured phase did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    /// Operations that succeeded inside the measured window.
    pub ops: u64,
    /// Operations that failed inside the measured window.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Median latency of the successful operations.
    pub p50: Duration,
    /// 99th percentile latency of the successful operations.
    pub p99: Duration,
    /// Slowest successful operation.
    pub max: Duration,
}

impl Summary {
    /// Summarise `latencies` (any order) measured over `elapsed`.
    pub fn new(
        mut latencies: Vec<Duration>,
        errors: u64,
        first_error: Option<String>,
        elapsed: Duration,
    ) -> Summary {
        latencies.sort_unstable();
        Summary {
            ops: latencies.len() as u64,
            errors,
            first_error,
            elapsed,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }

    /// Successful operations per second over the window.
    pub fn per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }
}

/// The nearest-rank `q` quantile of ascending `sorted` samples (zero when empty).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of some durations (zero when empty).
pub(crate) fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&samples, 0.50), ms(50));
        assert_eq!(percentile(&samples, 0.99), ms(99));
        assert_eq!(percentile(&samples, 1.0), ms(100));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn summary_sorts_and_counts_rates_over_the_window() {
        let s = Summary::new(vec![ms(3), ms(1), ms(2)], 1, None, Duration::from_secs(2));
        assert_eq!(s.ops, 3);
        assert_eq!(s.p50, ms(2));
        assert_eq!(s.max, ms(3));
        assert!((s.per_sec() - 1.5).abs() < 1e-9);
        assert_eq!(median(&[ms(5), ms(1), ms(9)]), ms(5));
    }
}
