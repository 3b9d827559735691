//! Measured usage for `rafter top`: cumulative samples of the node and of every
//! container, and the pure arithmetic that turns two samples into figures.
//!
//! ```text
//!   /proc/stat, /proc/meminfo ─► NodeSample ─┐
//!   runtime.container_usage() ─► ContainerUsage ─┴─► Sample{at}
//!                                            usage(prev, now) ─► api NodeMetrics
//!                                            (CPU = Δ cumulative CPU time / Δt)
//! ```
//!
//! CPU is a rate, so one sample says nothing: figures are the difference between two
//! samples divided by the time between them, as kubelet's cAdvisor does. Memory is the
//! working set at the later sample. The process backend has no cgroups, so its
//! containers are measured through `/proc` by process group ([`process_groups`]): CPU time
//! of every live member plus what the members reaped from their children, and their RSS.
//!
//! Owns the sample shapes, reading `/proc` and the arithmetic. It must not call the
//! runtime or keep samples between calls; the metrics endpoint (`metrics_server`) does.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rafter_proto::api;

use crate::spec::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

/// Clock ticks per second in `/proc` (USER_HZ: 100 on every Linux ABI Rafter runs on).
const USER_HZ: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// One container's cumulative figures, as a runtime reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Runtime id.
    pub container_id: String,
    /// Its labels: pod uid, name and namespace, container name (`io.rafter.*`).
    pub labels: BTreeMap<String, String>,
    /// CPU time used since it started, in nanoseconds.
    pub cpu_usage_nanos: u64,
    /// Memory working set now, in bytes.
    pub memory_working_set_bytes: u64,
}

/// The whole machine's cumulative figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NodeSample {
    /// CPU time spent not idle (all CPUs), in nanoseconds.
    pub(crate) cpu_busy_nanos: u64,
    /// MemTotal - MemAvailable, in bytes.
    pub(crate) memory_working_set_bytes: u64,
}

/// The node and its containers at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) node: NodeSample,
    pub(crate) containers: Vec<ContainerUsage>,
}

impl Sample {
    /// Whether `later` can be measured against this sample: it is old enough for a
    /// meaningful rate, not too old to say something about now, and knows every
    /// container `later` has.
    pub(crate) fn is_base_for(&self, later: &Sample, min: Duration, max: Duration) -> bool {
        let age = later.at.saturating_duration_since(self.at);
        if age < min || age > max {
            return false;
        }
        later.containers.iter().all(|c| {
            self.containers
                .iter()
                .any(|p| p.container_id == c.container_id)
        })
    }
}

/// `delta` per `window`, in billionths of a unit per second.
fn per_second(delta_nanos: u64, window: Duration) -> u64 {
    let window = window.as_nanos().max(1);
    let rate = u128::from(delta_nanos) * 1_000_000_000 / window;
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The figures of `now` measured against `prev`: node totals, and pods grouped from
/// their containers (by pod uid; containers without one are left out). A container
/// missing from `prev` is measured from zero, as if it had started at `prev`.
pub(crate) fn usage(
    node: &str,
    timestamp: String,
    prev: &Sample,
    now: &Sample,
) -> api::NodeMetrics {
    let window = now.at.saturating_duration_since(prev.at);
    let before: HashMap<&str, u64> = prev
        .containers
        .iter()
        .map(|c| (c.container_id.as_str(), c.cpu_usage_nanos))
        .collect();
    let mut pods: BTreeMap<(String, String, String), Vec<api::ContainerMetrics>> = BTreeMap::new();
    for c in &now.containers {
        let Some(uid) = c.labels.get(LABEL_POD_UID) else {
            continue;
        };
        let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        let base = before.get(c.container_id.as_str()).copied().unwrap_or(0);
        pods.entry((
            label(LABEL_POD_NAMESPACE),
            label(LABEL_POD_NAME),
            uid.clone(),
        ))
        .or_default()
        .push(api::ContainerMetrics {
            name: label(LABEL_CONTAINER_NAME),
            cpu_nano_cores: per_second(c.cpu_usage_nanos.saturating_sub(base), window),
            memory_working_set_bytes: c.memory_working_set_bytes,
        });
    }
    api::NodeMetrics {
        node: node.to_owned(),
        error: String::new(),
        cpu_nano_cores: per_second(
            now.node
                .cpu_busy_nanos
                .saturating_sub(prev.node.cpu_busy_nanos),
            window,
        ),
        memory_working_set_bytes: now.node.memory_working_set_bytes,
        timestamp,
        window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
        pods: pods
            .into_iter()
            .map(|((namespace, name, uid), mut containers)| {
                containers.sort_by(|a, b| a.name.cmp(&b.name));
                api::PodMetrics {
                    namespace,
                    name,
                    uid,
                    containers,
                }
            })
            .collect(),
    }
}

/// Busy CPU time from the `cpu` line of `/proc/stat` (everything but idle and iowait).
fn cpu_busy_nanos(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle) * NANOS_PER_TICK)
}

/// MemTotal - MemAvailable from `/proc/meminfo`, in bytes.
fn memory_in_use(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some(total.saturating_sub(available) * 1024)
}

/// The machine now. Blocking (reads `/proc`); a field that cannot be read is zero.
pub(crate) fn read_node() -> NodeSample {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    NodeSample {
        cpu_busy_nanos: cpu_busy_nanos(&stat).unwrap_or(0),
        memory_working_set_bytes: memory_in_use(&meminfo).unwrap_or(0),
    }
}

/// `(process group, cumulative CPU nanoseconds)` of one `/proc/<pid>/stat` line: the
/// process's own user and system time plus that of its reaped children.
fn stat_group_and_cpu(stat: &str) -> Option<(i32, u64)> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): pgrp is field 5, utime..cstime fields 14..17.
    let pgrp = fields.get(2)?.parse().ok()?;
    let ticks: u64 = (11..=14)
        .map(|i| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Some((pgrp, ticks * NANOS_PER_TICK))
}

/// VmRSS of one `/proc/<pid>/status`, in bytes.
fn status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Cumulative CPU nanoseconds and resident bytes of each of `groups`, summed over their
/// live members from `/proc`. Blocking. Groups with no live member are absent.
pub(crate) fn process_groups(groups: &[i32]) -> HashMap<i32, (u64, u64)> {
    let mut out: HashMap<i32, (u64, u64)> = HashMap::new();
    if groups.is_empty() {
        return out;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((pgrp, cpu)) = stat_group_and_cpu(&stat) else {
            continue;
        };
        if !groups.contains(&pgrp) {
            continue;
        }
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| status_rss(&s))
            .unwrap_or(0);
        let e = out.entry(pgrp).or_default();
        e.0 += cpu;
        e.1 += rss;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, uid: &str, name: &str, cpu: u64, mem: u64) -> ContainerUsage {
        ContainerUsage {
            container_id: id.into(),
            labels: BTreeMap::from([
                (LABEL_POD_UID.to_owned(), uid.to_owned()),
                (LABEL_POD_NAME.to_owned(), format!("pod-{uid}")),
                (LABEL_POD_NAMESPACE.to_owned(), "ns".to_owned()),
                (LABEL_CONTAINER_NAME.to_owned(), name.to_owned()),
            ]),
            cpu_usage_nanos: cpu,
            memory_working_set_bytes: mem,
        }
    }

    #[test]
    fn cpu_is_the_difference_of_cumulative_time_over_the_window_and_pods_group_containers() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            node: NodeSample {
                cpu_busy_nanos: 1_000_000_000,
                memory_working_set_bytes: 1,
            },
            containers: vec![
                container("a", "u1", "app", 5_000_000_000, 10),
                container("b", "u1", "side", 0, 10),
            ],
        };
        let now = Sample {
            at: t0 + Duration::from_secs(2),
            node: NodeSample {
                cpu_busy_nanos: 4_000_000_000,
                memory_working_set_bytes: 2048,
            },
            containers: vec![
                // one core busy for 2 s
                container("a", "u1", "app", 7_000_000_000, 100),
                container("b", "u1", "side", 100_000_000, 200),
                // new since prev: measured from zero
                container("c", "u2", "app", 200_000_000, 300),
            ],
        };
        let m = usage("w1", "t".into(), &prev, &now);
        assert_eq!(m.node, "w1");
        assert_eq!(m.window_ms, 2000);
        assert_eq!(m.cpu_nano_cores, 1_500_000_000);
        assert_eq!(m.memory_working_set_bytes, 2048);
        assert_eq!(m.pods.len(), 2);
        let p1 = &m.pods[0];
        assert_eq!((p1.name.as_str(), p1.uid.as_str()), ("pod-u1", "u1"));
        let cpu: Vec<u64> = p1.containers.iter().map(|c| c.cpu_nano_cores).collect();
        assert_eq!(cpu, vec![1_000_000_000, 50_000_000]);
        assert_eq!(p1.containers[1].memory_working_set_bytes, 200);
        assert_eq!(m.pods[1].containers[0].cpu_nano_cores, 100_000_000);
    }

    #[test]
    fn a_counter_that_went_backwards_reads_zero_and_a_base_must_be_of_useful_age() {
        let t0 = Instant::now();
        let prev = Sample {
            at: t0,
            node: NodeSample::default(),
            containers: vec![container("a", "u1", "app", 9, 0)],
        };
        let now = Sample {
            at: t0 + Duration::from_secs(1),
            node: NodeSample::default(),
            containers: vec![container("a", "u1", "app", 3, 0)],
        };
        let m = usage("w1", String::new(), &prev, &now);
        assert_eq!(m.pods[0].containers[0].cpu_nano_cores, 0);
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(30));
        assert!(prev.is_base_for(&now, min, max));
        assert!(!prev.is_base_for(&prev, min, max), "too young");
        let mut late = now.clone();
        late.at = t0 + Duration::from_secs(31);
        assert!(!prev.is_base_for(&late, min, max), "too old");
        let mut more = now.clone();
        more.containers.push(container("b", "u2", "app", 1, 0));
        assert!(!prev.is_base_for(&more, min, max), "b is unknown to prev");
    }

    #[test]
    fn proc_files_are_parsed() {
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        // busy = 100+5+50+1+2+3 = 161 ticks
        assert_eq!(cpu_busy_nanos(stat), Some(161 * NANOS_PER_TICK));
        let meminfo = "MemTotal:  2000 kB\nMemFree: 100 kB\nMemAvailable:  500 kB\n";
        assert_eq!(memory_in_use(meminfo), Some(1500 * 1024));
        let pid = "42 (sh -c (x)) S 1 42 42 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0 100 1000 50";
        assert_eq!(stat_group_and_cpu(pid), Some((42, 13 * NANOS_PER_TICK)));
        assert_eq!(
            status_rss("Name: sh\nVmRSS:\t  1234 kB\n"),
            Some(1234 * 1024)
        );
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (group, _) = stat_group_and_cpu(&own).unwrap();
        let groups = process_groups(&[group]);
        assert!(
            groups[&group].1 > 0,
            "this test's own group has resident memory"
        );
        assert!(read_node().memory_working_set_bytes > 0);
    }
}
