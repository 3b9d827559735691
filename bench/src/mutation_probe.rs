//! A light, steady writer beside a benchmark's load: one ConfigMap create every
//! `interval`, each timed, as the Kubernetes "mutating API call latency" SLO measures calls
//! while the cluster is busy, rather than the load's own calls, whose latency is mostly
//! their queue.
//!
//! Owns [`MutationProbe`]. It writes only its own ConfigMaps (`probe-<n>`).

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use rafter_client::Client;
use rafter_proto::{v1, Object};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Timed creates, one per interval, until stopped.
pub(crate) struct MutationProbe {
    latencies: Arc<Mutex<Vec<Duration>>>,
    failures: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

/// What the probe measured.
pub(crate) struct ProbeReport {
    /// Every acknowledged create's latency, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// Creates that failed.
    pub(crate) failures: usize,
}

impl MutationProbe {
    /// Starts creating ConfigMaps in `namespace` through `client`, one per `interval`.
    pub(crate) fn start(client: Client, namespace: &str, interval: Duration) -> MutationProbe {
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(0));
        let (l, f, namespace) = (latencies.clone(), failures.clone(), namespace.to_owned());
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0u64.. {
                ticker.tick().await;
                let object = Object::ConfigMap(v1::ConfigMap {
                    metadata: Some(v1::ObjectMeta {
                        name: format!("probe-{n}"),
                        namespace: namespace.clone(),
                        ..Default::default()
                    }),
                    data: [("n".to_owned(), n.to_string())].into(),
                    ..Default::default()
                });
                let t = Instant::now();
                let result = client.create(object).await;
                let took = t.elapsed();
                match result {
                    Ok(_) => {
                        if let Ok(mut l) = l.lock() {
                            l.push(took);
                        }
                    }
                    Err(_) => {
                        if let Ok(mut f) = f.lock() {
                            *f += 1;
                        }
                    }
                }
            }
        });
        MutationProbe {
            latencies,
            failures,
            task,
        }
    }

    /// Stops the probe and gives what it measured.
    pub(crate) fn stop(self) -> ProbeReport {
        self.task.abort();
        let mut latencies = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        latencies.sort_unstable();
        ProbeReport {
            latencies,
            failures: self.failures.lock().map(|f| *f).unwrap_or(0),
        }
    }
}
