//! Hollow nodes for `bench scheduler`: Node objects registered Ready, and one task that
//! renews all their Leases, paced so that each is renewed once per interval.
//!
//! Owns [`NodeShape`] (what every hollow node offers), [`register`] and [`LeaseRenewer`].
//! It runs no agent and no pod: a real `node-agent` per node would also watch its pods
//! (5 000 watch streams the gateway must filter) and run a worker per pod, which on this
//! 2-core machine would measure the agents rather than the scheduler. What the control
//! plane sees is the same as from agents: Nodes with a Ready condition and allocatable
//! resources, and Leases in `kube-node-lease` renewed as often as the agent renews its own
//! (10 s), which the node lifecycle controller reads to keep the nodes Ready.
//!
//! ```text
//!  register: Node (status Ready, allocatable) + Lease, `clients` at once
//!  renewer:  node i renewed at start + k·interval + i·interval/N, ≤ 64 updates in flight
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::{Timestamp, LEASE_NAMESPACE};
use anyhow::Context;
use futures::StreamExt;
use rafter_client::{Client, ClientError};
use rafter_proto::v1::{self, Condition, Lease, LeaseSpec, NodeStatus, ObjectMeta};
use rafter_proto::{Kind, Object};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// Lease updates in flight at once.
const RENEWALS_IN_FLIGHT: usize = 64;

/// What every hollow node offers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeShape {
    /// Allocatable CPU in millicores.
    pub cpu_millis: i64,
    /// Allocatable memory in MiB.
    pub memory_mib: i64,
    /// Allocatable pods.
    pub pods: i64,
}

impl NodeShape {
    /// Room for twice the even share of `pods` over `nodes` (at least 16 pods' worth) of
    /// pods requesting `pod_cpu_millis` and `pod_memory_mib`, and at least 110 pods as
    /// an agent reports: every pod fits, and the scheduler still has to spread them.
    pub fn for_workload(
        nodes: usize,
        pods: usize,
        pod_cpu_millis: i64,
        pod_memory_mib: i64,
    ) -> Self {
        let share = pods.div_ceil(nodes.max(1)) as i64;
        let room = (2 * share).max(16);
        NodeShape {
            cpu_millis: room * pod_cpu_millis,
            memory_mib: room * pod_memory_mib,
            pods: room.max(110),
        }
    }
}

/// The name of hollow node `i`.
pub(crate) fn node_name(i: usize) -> String {
    format!("hollow-{i:05}")
}

fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
}

fn node(name: &str, shape: NodeShape) -> Object {
    let now = now().to_rfc3339();
    let allocatable: rafter_proto::StringMap = [
        ("cpu".to_owned(), format!("{}m", shape.cpu_millis)),
        ("memory".to_owned(), format!("{}Mi", shape.memory_mib)),
        ("pods".to_owned(), shape.pods.to_string()),
    ]
    .into();
    Object::Node(v1::Node {
        metadata: Some(ObjectMeta {
            name: name.to_owned(),
            labels: [
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("rafter.dev/hollow".to_owned(), "true".to_owned()),
            ]
            .into(),
            ..Default::default()
        }),
        spec: Some(v1::NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: allocatable.clone(),
            allocatable,
            conditions: vec![Condition {
                r#type: "Ready".to_owned(),
                status: "True".to_owned(),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
                reason: "KubeletReady".to_owned(),
                message: "hollow node of bench scheduler".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn lease(name: &str) -> Object {
    let now = now().to_rfc3339();
    Object::Lease(Lease {
        metadata: Some(ObjectMeta {
            name: name.to_owned(),
            namespace: LEASE_NAMESPACE.to_owned(),
            ..Default::default()
        }),
        spec: Some(LeaseSpec {
            holder_identity: name.to_owned(),
            lease_duration_seconds: Some(40),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Creates `object`, retrying while the cluster is unavailable; an object that exists
/// already (a retried create that had been applied) counts as created.
async fn create(client: &Client, object: Object) -> anyhow::Result<Object> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.create(object.clone()).await {
            Ok(created) => return Ok(created),
            Err(ClientError::AlreadyExists { .. }) => {
                let meta = object.metadata();
                return Ok(client
                    .get(object.kind(), &meta.namespace, &meta.name)
                    .await?);
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the masters have created the lease namespace (they do so in the
/// background once a leader is elected).
async fn wait_for_lease_namespace(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(Kind::Namespace, "", LEASE_NAMESPACE).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(anyhow::Error::from(e)
                    .context(format!("waiting for the namespace {LEASE_NAMESPACE}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Registers `count` Ready nodes and their Leases, `clients` creates at once. Returns the
/// Leases as created (the renewer updates them).
pub(crate) async fn register(
    pool: &[Client],
    count: usize,
    shape: NodeShape,
    clients: usize,
) -> anyhow::Result<Vec<Lease>> {
    let Some(first) = pool.first() else {
        anyhow::bail!("no client to register nodes with");
    };
    wait_for_lease_namespace(first).await?;
    let results: Vec<anyhow::Result<Lease>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = pool[i % pool.len()].clone();
            async move {
                let name = node_name(i);
                create(&client, node(&name, shape))
                    .await
                    .with_context(|| format!("registering node {name}"))?;
                match create(&client, lease(&name))
                    .await
                    .with_context(|| format!("creating the lease of {name}"))?
                {
                    Object::Lease(lease) => Ok(lease),
                    other => anyhow::bail!("a lease create answered a {}", other.kind().name()),
                }
            }
        })
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    let mut leases: Vec<Lease> = results.into_iter().collect::<anyhow::Result<_>>()?;
    leases.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    Ok(leases)
}

fn name_of(lease: &Lease) -> &str {
    lease.metadata.as_ref().map_or("", |m| m.name.as_str())
}

/// What the renewer did.
#[derive(Debug, Default)]
pub(crate) struct RenewalCounts {
    /// Leases renewed.
    pub renewed: AtomicU64,
    /// Renewals that failed (the next round tries again).
    pub failed: AtomicU64,
    /// The latest a renewal started after it was due, in milliseconds.
    pub max_late_ms: AtomicU64,
}

/// Renews every Lease once per interval until dropped.
pub(crate) struct LeaseRenewer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// What it did so far.
    pub counts: Arc<RenewalCounts>,
}

impl LeaseRenewer {
    /// Starts renewing `leases` through `pool`, each once per `interval`.
    pub fn start(pool: Vec<Client>, leases: Vec<Lease>, interval: Duration) -> LeaseRenewer {
        let counts = Arc::new(RenewalCounts::default());
        let (stop, mut stopped) = watch::channel(false);
        let task_counts = Arc::clone(&counts);
        let task = tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(RENEWALS_IN_FLIGHT));
            let slots: Vec<Arc<tokio::sync::Mutex<Lease>>> = leases
                .into_iter()
                .map(|l| Arc::new(tokio::sync::Mutex::new(l)))
                .collect();
            let n = slots.len().max(1) as u32;
            let start = Instant::now();
            for round in 0u32.. {
                for (i, slot) in slots.iter().enumerate() {
                    let due = start + interval * round + interval * (i as u32) / n;
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        _ = stopped.changed() => return,
                    }
                    let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                        return;
                    };
                    let late = due.elapsed().as_millis() as u64;
                    task_counts.max_late_ms.fetch_max(late, Ordering::Relaxed);
                    let client = pool[i % pool.len()].clone();
                    let (slot, counts) = (Arc::clone(slot), Arc::clone(&task_counts));
                    tokio::spawn(async move {
                        let _permit = permit;
                        let mut lease = slot.lock().await;
                        match renew(&client, &lease).await {
                            Ok(renewed) => {
                                *lease = renewed;
                                counts.renewed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tracing::warn!(lease = name_of(&lease), error = %e, "lease renewal failed");
                                counts.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            }
        });
        LeaseRenewer { stop, task, counts }
    }

    /// Stops renewing.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// `lease` with renewTime = now, written; on a Conflict, the current one renewed instead.
async fn renew(client: &Client, lease: &Lease) -> Result<Lease, ClientError> {
    let mut next = lease.clone();
    for _ in 0..3 {
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(now().to_rfc3339());
        }
        match client.update(Object::Lease(next.clone())).await {
            Ok(Object::Lease(renewed)) => return Ok(renewed),
            Ok(_) => break,
            Err(ClientError::Conflict { .. }) => {
                let name = name_of(&next).to_owned();
                match client.get(Kind::Lease, LEASE_NAMESPACE, &name).await? {
                    Object::Lease(current) => next = current,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Protocol {
        message: "the lease could not be renewed".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_shape_leaves_room_for_twice_the_even_share() {
        let shape = NodeShape::for_workload(5000, 30_000, 100, 64);
        assert_eq!(shape.cpu_millis, 16 * 100);
        assert_eq!(shape.pods, 110);
        let dense = NodeShape::for_workload(10, 1000, 100, 64);
        assert_eq!(dense.cpu_millis, 200 * 100);
        assert_eq!(dense.memory_mib, 200 * 64);
        assert_eq!(dense.pods, 200);
    }
}
