//! The closed-loop load driver: `clients` tasks, each issuing one operation at a time.
//!
//! Owns [`Plan`] and [`drive`]. Every client first runs the warm-up (not recorded), then
//! issues operations until the measured window closes (a duration) or until it has done
//! its share of a fixed operation count. Latency is the time from issuing an operation to
//! its acknowledgement; the rate is the acknowledged operations over the window.
//!
//! ```text
//!  start ──warm-up──► measure_from ──── operations recorded ────► end (or ops done)
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::Summary;

/// How long a phase runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Measure for this long.
    Duration(Duration),
    /// Measure exactly this many operations, shared among the clients.
    Ops(u64),
}

/// One measured phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Concurrent clients (tokio tasks), each with one operation in flight.
    pub clients: usize,
    /// Unrecorded operations before the window opens.
    pub warmup: Duration,
    /// When the window closes.
    pub limit: Limit,
}

/// What one client did in the window.
struct ClientResult {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

/// Run `op(client, seq)` from `plan.clients` concurrent tasks and summarise the window.
pub(crate) async fn drive<F, Fut>(plan: Plan, op: F) -> anyhow::Result<Summary>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let clients = plan.clients.max(1);
    let measure_from = Instant::now() + plan.warmup;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = op.clone();
        let quota = match plan.limit {
            Limit::Ops(n) => {
                let n_clients = clients as u64;
                let index = client as u64;
                Some(n / n_clients + u64::from(index < n % n_clients))
            }
            Limit::Duration(_) => None,
        };
        let end = match plan.limit {
            Limit::Duration(d) => Some(measure_from + d),
            Limit::Ops(_) => None,
        };
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < measure_from {
                let _ = op(client, seq).await;
                seq += 1;
            }
            let mut result = ClientResult {
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
                last_done: Instant::now(),
            };
            let mut done = 0u64;
            loop {
                let started = Instant::now();
                if end.is_some_and(|end| started >= end) || quota.is_some_and(|q| done >= q) {
                    break;
                }
                let outcome = op(client, seq).await;
                let finished = Instant::now();
                seq += 1;
                done += 1;
                result.last_done = finished;
                match outcome {
                    Ok(()) => result.latencies.push(finished - started),
                    Err(e) => {
                        result.errors += 1;
                        if result.first_error.is_none() {
                            result.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            result
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_done = measure_from;
    for task in tasks {
        let r = task.await?;
        latencies.extend(r.latencies);
        errors += r.errors;
        first_error = first_error.or(r.first_error);
        last_done = last_done.max(r.last_done);
    }
    let elapsed = last_done.saturating_duration_since(measure_from);
    Ok(Summary::new(latencies, errors, first_error, elapsed))
}
