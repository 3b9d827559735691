//! The agent's metrics endpoint: the internal gRPC service `rafter.agent.v1.AgentMetrics`,
//! which the masters' gateways call for `rafter top` (as metrics-server scrapes kubelets).
//! It is served on the same listener as the log endpoint (`log_server`).
//!
//! ```text
//!   gateway ─► AgentMetrics.Metrics ─► sample now (/proc + runtime.container_usage())
//!                                        │ against the previous sample when it is 0.2–60 s
//!                                        │ old and knows every container; otherwise a
//!                                        │ fresh base, then a second sample WINDOW later
//!                                        ▼
//!                                      metrics::usage(base, now) ─► NodeMetrics
//! ```
//!
//! Only the containers of sandboxes labelled with this node count: agents may share one
//! containerd.
//! Samples are taken when asked, not in the background: an agent nobody asks costs
//! nothing, and the window is the time since the previous question (at most a minute),
//! or [`WINDOW`] for the first. Owns the last sample and the service; the arithmetic is
//! `metrics`'. It must not decide who may read figures (the gateway does).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rafter_proto::agent::agent_metrics_server::AgentMetrics;
use rafter_proto::agent::MetricsRequest;
use rafter_proto::api::NodeMetrics;
use rafter_proto::Timestamp;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::metrics::{read_node, usage, Sample};
use crate::pod_worker::LABEL_NODE_NAME;
use crate::runtime::ContainerRuntime;
use crate::spec::LABEL_POD_UID;

/// How long CPU is measured over when there is no usable previous sample.
const WINDOW: Duration = Duration::from_millis(500);
/// A previous sample younger than this gives too noisy a rate.
const MIN_BASE_AGE: Duration = Duration::from_millis(200);
/// A previous sample older than this says too little about now.
const MAX_BASE_AGE: Duration = Duration::from_secs(60);

/// The `AgentMetrics` service of one node.
pub(crate) struct MetricsServer {
    node_name: String,
    runtime: Arc<dyn ContainerRuntime>,
    /// The last sample; the lock also keeps concurrent scrapes from sampling twice.
    last: Mutex<Option<Sample>>,
}

impl MetricsServer {
    pub(crate) fn new(node_name: String, runtime: Arc<dyn ContainerRuntime>) -> MetricsServer {
        MetricsServer {
            node_name,
            runtime,
            last: Mutex::new(None),
        }
    }

    async fn sample(&self) -> Result<Sample, Status> {
        let mut containers = self
            .runtime
            .container_usage()
            .await
            .map_err(|e| Status::unavailable(format!("the container runtime: {e}")))?;
        // Agents may share one runtime (`rafter up` on one machine): only the pods whose
        // sandboxes this node's workers made (containers do not carry the node label).
        let ours: HashSet<String> = self
            .runtime
            .list_sandboxes()
            .await
            .map_err(|e| Status::unavailable(format!("the container runtime: {e}")))?
            .into_iter()
            .filter(|s| s.labels.get(LABEL_NODE_NAME) == Some(&self.node_name))
            .map(|s| s.pod_uid)
            .collect();
        containers.retain(|c| {
            c.labels
                .get(LABEL_POD_UID)
                .is_some_and(|u| ours.contains(u))
        });
        let node = tokio::task::spawn_blocking(read_node)
            .await
            .map_err(|e| Status::internal(format!("reading /proc: {e}")))?;
        Ok(Sample {
            at: Instant::now(),
            node,
            containers,
        })
    }

    /// The node's figures now.
    pub(crate) async fn measure(&self) -> Result<NodeMetrics, Status> {
        let mut last = self.last.lock().await;
        let mut now = self.sample().await?;
        let base = match last.take() {
            Some(prev) if prev.is_base_for(&now, MIN_BASE_AGE, MAX_BASE_AGE) => prev,
            _ => {
                let base = now;
                tokio::time::sleep(WINDOW).await;
                now = self.sample().await?;
                base
            }
        };
        let figures = usage(
            &self.node_name,
            Timestamp::from(SystemTime::now()).to_rfc3339_micros(),
            &base,
            &now,
        );
        debug!(
            pods = figures.pods.len(),
            window_ms = figures.window_ms,
            "metrics measured"
        );
        *last = Some(now);
        Ok(figures)
    }
}

#[tonic::async_trait]
impl AgentMetrics for MetricsServer {
    async fn metrics(
        &self,
        _request: Request<MetricsRequest>,
    ) -> Result<Response<NodeMetrics>, Status> {
        Ok(Response::new(self.measure().await?))
    }
}
