//! What the report prints besides the figures: the machine, the command, the time, and
//! the formatting of durations, rates and ratios.
//!
//! Owns [`Machine`]. Nothing here is measured; it only describes the run.

use std::time::Duration;

/// The machine and the conditions of a run.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started.
    pub load_at_start: f64,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The 1-minute load average.
pub(crate) fn load_average() -> f64 {
    read("/proc/loadavg")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

impl Machine {
    /// Describe this machine now.
    pub fn probe() -> Machine {
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_at_start: load_average(),
        }
    }

    /// The header every report starts with.
    pub fn header(&self, title: &str) -> String {
        let profile = if cfg!(debug_assertions) {
            "debug build (figures are not representative; use --release)"
        } else {
            "release build"
        };
        let allocator = if cfg!(feature = "mimalloc") {
            "mimalloc (--features mimalloc)"
        } else if cfg!(feature = "jemalloc-profiling") {
            "jemalloc with its heap profiler (--features jemalloc-profiling)"
        } else if cfg!(feature = "jemalloc") {
            "jemalloc (the default)"
        } else {
            "the system's (glibc malloc)"
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        format!(
            "# {title}\n\
             date:     {}\n\
             command:  cargo run --release -p bench -- {}\n\
             machine:  {} x {} cores, Linux {}, {profile}, allocator {allocator}\n\
             load:     1-min load average {:.2} at start (the clients and all members share these cores)\n",
            utc_now(),
            args.join(" "),
            self.cpu,
            self.cores,
            self.kernel,
            self.load_at_start,
        )
    }

    /// The footer: the load at the end, and a warning when something else was running.
    pub fn footer(&self) -> String {
        let end = load_average();
        let mut text = format!(
            "load: 1-min load average {:.2} at start, {end:.2} at end\n",
            self.load_at_start
        );
        if self.load_at_start > 0.5 {
            text.push_str(
                "note: the machine was already busy when the run started (other builds or \
                 tests?); figures are lower than on an idle machine.\n",
            );
        }
        text
    }
}

/// The current UTC time as `date -u` prints it, or seconds since the epoch.
pub(crate) fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("{secs} s since the epoch")
        })
}

/// A duration in milliseconds with two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A rate without decimals.
pub(crate) fn rate(per_sec: f64) -> String {
    format!("{per_sec:.0}")
}

/// Failover samples: the median and every run, in milliseconds.
pub(crate) fn failover_line(samples: &[Duration]) -> String {
    if samples.is_empty() {
        return "not measured".into();
    }
    let runs: Vec<String> = samples
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect();
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    format!(
        "median {:.0} ms, p99 {:.0} ms (runs: {} ms)",
        crate::stats::median(samples).as_secs_f64() * 1000.0,
        crate::stats::percentile(&sorted, 0.99).as_secs_f64() * 1000.0,
        runs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_are_formatted_for_the_table() {
        assert_eq!(ms(Duration::from_micros(1500)), "1.50");
        assert_eq!(rate(1234.4), "1234");
        assert_eq!(
            failover_line(&[Duration::from_millis(300), Duration::from_millis(100)]),
            "median 100 ms, p99 300 ms (runs: 300, 100 ms)"
        );
    }
}
