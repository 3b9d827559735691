//! The node's own objects: its `Node` (registration, capacity, addresses, nodeInfo,
//! conditions) and its `Lease` in `kube-node-lease` (the heartbeat the node lifecycle
//! controller reads).
//!
//! ```text
//!   every lease interval:
//!     runtime.version() ── ok / error ──► Ready condition (True / False, reason)
//!     Node missing? ─► create (spec, labels, annotations) ─► status
//!     (present at start: labels, podCIDR and the agent's annotations brought up to date)
//!     status changed, or older than STATUS_EVERY × interval? ─► update status
//!     Lease kube-node-lease/N ─► renewTime = now (create when missing)
//!     until done: spec.podCIDR set (IPAM controller)? ─► runtime.update_pod_cidr
//! ```
//!
//! The builders ([`node_status`], [`renewed_lease`]) are pure: they take the time as an
//! argument and are tested on their own; [`NodeReporter`] only carries out their result.
//! This module must not touch pods or containers.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rafter_proto::v1::{
    Condition, Lease, LeaseSpec, Node, NodeAddress, NodeSpec, NodeStatus, NodeSystemInfo,
    ObjectMeta,
};
use rafter_proto::Timestamp;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::api::{ApiClient, ApiError};
use crate::host::HostInfo;
use crate::runtime::ContainerRuntime;

/// Namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// `spec.leaseDurationSeconds` of the node's lease.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Pods a node accepts (`capacity.pods`).
pub const MAX_PODS: u64 = 110;
/// Node status is written at least every this many lease intervals, even unchanged.
const STATUS_EVERY: u32 = 6;

/// How the container runtime answered the last health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RuntimeHealth {
    /// It answered; `nodeInfo.containerRuntimeVersion`.
    Up(String),
    /// It did not; why.
    Down(String),
}

/// The status the node should report now. `previous` keeps transition times of
/// conditions whose status did not change, and the last known runtime version.
pub(crate) fn node_status(
    host: &HostInfo,
    health: &RuntimeHealth,
    now: SystemTime,
    previous: Option<&NodeStatus>,
) -> NodeStatus {
    let now = Timestamp::from(now).to_rfc3339_micros();
    let mut capacity = rafter_proto::StringMap::new();
    capacity.insert("cpu".to_owned(), host.cpus.to_string());
    capacity.insert(
        "memory".to_owned(),
        format!("{}Ki", host.memory_bytes / 1024),
    );
    capacity.insert("pods".to_owned(), MAX_PODS.to_string());
    let (ready, reason, message) = match health {
        RuntimeHealth::Up(_) => (
            "True",
            "KubeletReady",
            "rafter agent is posting ready status".to_owned(),
        ),
        RuntimeHealth::Down(why) => (
            "False",
            "ContainerRuntimeUnhealthy",
            format!("container runtime is down: {why}"),
        ),
    };
    let prev_runtime = previous
        .and_then(|p| p.node_info.as_ref())
        .map(|i| i.container_runtime_version.clone())
        .unwrap_or_default();
    let condition = |kind: &str, status: &str, reason: &str, message: String| {
        let since = previous
            .and_then(|p| p.conditions.iter().find(|c| c.r#type == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            r#type: kind.to_owned(),
            status: status.to_owned(),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
            reason: reason.to_owned(),
            message,
            ..Condition::default()
        }
    };
    NodeStatus {
        allocatable: capacity.clone(),
        capacity,
        conditions: vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "rafter agent has sufficient memory available".to_owned(),
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "rafter agent has no disk pressure".to_owned(),
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "rafter agent has sufficient PID available".to_owned(),
            ),
            condition("Ready", ready, reason, message),
        ],
        addresses: vec![
            NodeAddress {
                r#type: "InternalIP".to_owned(),
                address: host.internal_ip.clone(),
            },
            NodeAddress {
                r#type: "Hostname".to_owned(),
                address: host.hostname.clone(),
            },
        ],
        node_info: Some(NodeSystemInfo {
            machine_id: host.machine_id.clone(),
            system_uuid: host.machine_id.clone(),
            boot_id: host.boot_id.clone(),
            kernel_version: host.kernel_version.clone(),
            os_image: host.os_image.clone(),
            container_runtime_version: match health {
                RuntimeHealth::Up(v) => v.clone(),
                RuntimeHealth::Down(_) => prev_runtime,
            },
            kubelet_version: format!("rafter-agent/{}", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: String::new(),
            operating_system: "linux".to_owned(),
            architecture: host.architecture.clone(),
        }),
        phase: String::new(),
    }
}

/// `status` with every heartbeat time removed: what "changed" compares.
fn without_heartbeats(status: &NodeStatus) -> NodeStatus {
    let mut s = status.clone();
    for c in &mut s.conditions {
        c.last_heartbeat_time = None;
    }
    s
}

/// The node's lease renewed at `now` by `node` (created when `existing` is `None`).
pub(crate) fn renewed_lease(node: &str, existing: Option<Lease>, now: SystemTime) -> Lease {
    let now = Timestamp::from(now).to_rfc3339_micros();
    let mut lease = existing.unwrap_or_else(|| Lease {
        metadata: Some(ObjectMeta {
            name: node.to_owned(),
            namespace: NODE_LEASE_NAMESPACE.to_owned(),
            ..ObjectMeta::default()
        }),
        ..Lease::default()
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity != node {
        if !spec.holder_identity.is_empty() {
            spec.lease_transitions += 1;
        }
        spec.holder_identity = node.to_owned();
        spec.acquire_time = Some(now.clone());
    }
    if spec.acquire_time.is_none() {
        spec.acquire_time = Some(now.clone());
    }
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(now);
    lease
}

fn node_labels(name: &str, host: &HostInfo) -> rafter_proto::StringMap {
    rafter_proto::StringMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), host.architecture.clone()),
    ])
}

/// Keeps the node registered, its status current and its lease renewed.
pub(crate) struct NodeReporter {
    pub(crate) name: String,
    pub(crate) host: HostInfo,
    pub(crate) pod_cidr: Option<String>,
    /// Annotations the Node must carry (the log endpoint); others are kept.
    pub(crate) annotations: rafter_proto::StringMap,
    pub(crate) interval: Duration,
    pub(crate) api: Arc<dyn ApiClient>,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
}

#[derive(Default)]
struct ReporterState {
    registered: bool,
    last_status: Option<NodeStatus>,
    last_write: Option<Instant>,
    lease: Option<Lease>,
    /// The podCIDR the runtime has been told (it never changes once set).
    runtime_cidr: Option<String>,
}

impl NodeReporter {
    /// Runs until `shutdown` turns true (or its sender goes away).
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut state = ReporterState::default();
        loop {
            let health = match self.runtime.version().await {
                Ok(v) => RuntimeHealth::Up(v.node_info()),
                Err(e) => RuntimeHealth::Down(e.to_string()),
            };
            if let Err(e) = self.report(&mut state, &health).await {
                warn!(node = %self.name, error = %e, "node status not written; retrying");
                state.registered = false;
            }
            if let Err(e) = self.renew(&mut state).await {
                warn!(node = %self.name, error = %e, "lease not renewed; retrying");
                state.lease = None;
            }
            if state.runtime_cidr.is_none() {
                state.runtime_cidr = self.tell_runtime_cidr().await;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn report(
        &self,
        state: &mut ReporterState,
        health: &RuntimeHealth,
    ) -> Result<(), ApiError> {
        let node = if state.registered {
            None
        } else {
            Some(self.register().await?)
        };
        if let Some(node) = &node {
            state.last_status = node.status.clone();
            state.last_write = None;
            state.registered = true;
        }
        let status = node_status(
            &self.host,
            health,
            SystemTime::now(),
            state.last_status.as_ref(),
        );
        let changed = state
            .last_status
            .as_ref()
            .is_none_or(|prev| without_heartbeats(prev) != without_heartbeats(&status));
        let due = state
            .last_write
            .is_none_or(|at| at.elapsed() >= self.interval * STATUS_EVERY);
        if !changed && !due {
            return Ok(());
        }
        let mut node = match node {
            Some(n) => n,
            None => match self.api.get(Kind::Node, "", &self.name).await? {
                Object::Node(n) => n,
                _ => return Err(ApiError::Other("the API returned a non-Node".to_owned())),
            },
        };
        node.status = Some(status.clone());
        if let Some(meta) = node.metadata.as_mut() {
            meta.resource_version.clear();
        }
        self.api.update_status(Object::Node(node)).await?;
        if changed {
            info!(node = %self.name, ?health, "node status updated");
        }
        state.last_status = Some(status);
        state.last_write = Some(Instant::now());
        Ok(())
    }

    /// Tells the runtime the node's podCIDR once the node has one (the IPAM controller
    /// sets it); returns it when the runtime took it.
    async fn tell_runtime_cidr(&self) -> Option<String> {
        let cidr = match self.api.get(Kind::Node, "", &self.name).await {
            Ok(Object::Node(n)) => n.spec.map(|s| s.pod_cidr).filter(|c| !c.is_empty())?,
            _ => return None,
        };
        match self.runtime.update_pod_cidr(&cidr).await {
            Ok(()) => {
                info!(node = %self.name, %cidr, "runtime told the node's pod CIDR");
                Some(cidr)
            }
            Err(e) => {
                warn!(node = %self.name, %cidr, error = %e, "runtime not told the pod CIDR; retrying");
                None
            }
        }
    }

    /// Creates the Node, or brings an existing one's spec and labels up to date.
    async fn register(&self) -> Result<Node, ApiError> {
        match self.api.get(Kind::Node, "", &self.name).await {
            Ok(Object::Node(mut node)) => {
                let mut dirty = false;
                let meta = node.metadata.get_or_insert_with(ObjectMeta::default);
                for (k, v) in node_labels(&self.name, &self.host) {
                    if meta.labels.get(&k) != Some(&v) {
                        meta.labels.insert(k, v);
                        dirty = true;
                    }
                }
                for (k, v) in &self.annotations {
                    if meta.annotations.get(k) != Some(v) {
                        meta.annotations.insert(k.clone(), v.clone());
                        dirty = true;
                    }
                }
                let spec = node.spec.get_or_insert_with(NodeSpec::default);
                if let Some(cidr) = &self.pod_cidr {
                    if spec.pod_cidr.is_empty() {
                        spec.pod_cidr = cidr.clone();
                        spec.pod_cidrs = vec![cidr.clone()];
                        dirty = true;
                    }
                }
                if dirty {
                    node = match self.api.update(Object::Node(node)).await? {
                        Object::Node(n) => n,
                        _ => return Err(ApiError::Other("the API returned a non-Node".into())),
                    };
                }
                debug!(node = %self.name, "node already registered");
                Ok(node)
            }
            Ok(_) => Err(ApiError::Other("the API returned a non-Node".into())),
            Err(e) if e.is_not_found() => {
                let node = Node {
                    metadata: Some(ObjectMeta {
                        name: self.name.clone(),
                        labels: node_labels(&self.name, &self.host),
                        annotations: self.annotations.clone(),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(NodeSpec {
                        pod_cidr: self.pod_cidr.clone().unwrap_or_default(),
                        pod_cidrs: self.pod_cidr.iter().cloned().collect(),
                        ..NodeSpec::default()
                    }),
                    ..Node::default()
                };
                let created = match self.api.create(Object::Node(node)).await {
                    Ok(Object::Node(n)) => n,
                    Ok(_) => return Err(ApiError::Other("the API returned a non-Node".into())),
                    Err(ApiError::AlreadyExists(_)) => {
                        return Box::pin(self.register()).await;
                    }
                    Err(e) => return Err(e),
                };
                info!(node = %self.name, "node registered");
                Ok(created)
            }
            Err(e) => Err(e),
        }
    }

    async fn renew(&self, state: &mut ReporterState) -> Result<(), ApiError> {
        let existing = match state.lease.take() {
            Some(l) => Some(l),
            None => match self
                .api
                .get(Kind::Lease, NODE_LEASE_NAMESPACE, &self.name)
                .await
            {
                Ok(Object::Lease(l)) => Some(l),
                Ok(_) => return Err(ApiError::Other("the API returned a non-Lease".into())),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            },
        };
        let create = existing.is_none();
        let lease = renewed_lease(&self.name, existing, SystemTime::now());
        let written = if create {
            self.api.create(Object::Lease(lease)).await
        } else {
            self.api.update(Object::Lease(lease)).await
        }?;
        if let Object::Lease(l) = written {
            state.lease = Some(l);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostInfo {
        HostInfo {
            cpus: 4,
            memory_bytes: 8 << 30,
            hostname: "box".into(),
            internal_ip: "10.0.0.5".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            architecture: "amd64".into(),
        }
    }

    fn ready(status: &NodeStatus) -> &Condition {
        status
            .conditions
            .iter()
            .find(|c| c.r#type == "Ready")
            .unwrap()
    }

    #[test]
    fn a_healthy_runtime_makes_the_node_ready_with_its_capacity() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = node_status(
            &host(),
            &RuntimeHealth::Up("containerd://1.6".into()),
            now,
            None,
        );
        assert_eq!(s.capacity["cpu"], "4");
        assert_eq!(s.capacity["memory"], "8388608Ki");
        assert_eq!(s.capacity["pods"], "110");
        assert_eq!(ready(&s).status, "True");
        assert_eq!(
            s.node_info.as_ref().unwrap().container_runtime_version,
            "containerd://1.6"
        );
        assert_eq!(s.addresses[0].address, "10.0.0.5");
    }

    #[test]
    fn a_down_runtime_flips_ready_and_keeps_unchanged_transition_times() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let t1 = t0 + Duration::from_secs(10);
        let up = node_status(&host(), &RuntimeHealth::Up("c://1".into()), t0, None);
        let down = node_status(
            &host(),
            &RuntimeHealth::Down("socket gone".into()),
            t1,
            Some(&up),
        );
        let r = ready(&down);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ContainerRuntimeUnhealthy")
        );
        assert!(r.message.contains("socket gone"));
        assert_eq!(
            r.last_transition_time,
            Some(Timestamp::from(t1).to_rfc3339_micros())
        );
        let mem = down
            .conditions
            .iter()
            .find(|c| c.r#type == "MemoryPressure")
            .unwrap();
        assert_eq!(
            mem.last_transition_time,
            Some(Timestamp::from(t0).to_rfc3339_micros())
        );
        assert_eq!(
            mem.last_heartbeat_time,
            Some(Timestamp::from(t1).to_rfc3339_micros())
        );
        assert_eq!(
            down.node_info.as_ref().unwrap().container_runtime_version,
            "c://1"
        );
        assert_ne!(without_heartbeats(&up), without_heartbeats(&down));
    }

    #[test]
    fn renewing_a_lease_moves_renew_time_and_keeps_acquire_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let first = renewed_lease("n1", None, t0);
        let spec = first.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity, "n1");
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(
            spec.renew_time.as_deref(),
            Some("2026-11-18T11:06:40.000000Z")
        );
        let later = renewed_lease("n1", Some(first.clone()), t0 + Duration::from_secs(10));
        let spec2 = later.spec.unwrap();
        assert_eq!(spec2.acquire_time, spec.acquire_time);
        assert_ne!(spec2.renew_time, spec.renew_time);
        assert_eq!(spec2.lease_transitions, 0);
    }
}
