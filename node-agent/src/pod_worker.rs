//! [`PodWorker`]: one task per pod, carrying out [`plan`](crate::pod_sync::plan) against
//! the runtime and writing the pod's status through the status subresource when it
//! changed.
//!
//! ```text
//!   desired (watch::Receiver<Desired>) ──┐
//!   probe verdict changed (Notify) ──────┤
//!   runtime changed (relist, Notify) ────┼─► sync:
//!   back-off ends / resync timer ────────┘     observe runtime (sandboxes + containers by pod uid)
//!                                              plan (pure) ─► execute actions
//!                                              keep one probe task per running container
//!                                              (startup first; liveness/readiness once started)
//!                                              rotate running containers' logs past the cap
//!                                              pod_status (pure) ─► update_status if changed
//!   deletionTimestamp set / pod gone ─► stop containers within the grace period,
//!       remove sandboxes and the pod directory, delete the pod object (grace 0, uid)
//! ```
//!
//! Owns the per-pod memory that the runtime cannot tell (start failures being backed
//! off, the last status written, probe tasks). Everything else is observed again on
//! every sync, so a restarted agent adopts what runs. When its desired-state sender goes
//! away (agent shutdown) the worker returns and leaves the containers running. It must
//! not watch the API: the manager feeds it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rafter_proto::v1::{Container, Pod, PodStatus};
use rafter_proto::{Kind, Object};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::api::{ApiClient, ApiError};
use crate::dns::ClusterDns;
use crate::env::{resolve_env, PodObjects};
use crate::error::RuntimeError;
use crate::expansion::expand_with_env;
use crate::image_pull::ImagePuller;
use crate::log_rotation::{self, LogRotation};
use crate::pod_sync::{plan, pod_status, Action, BackoffPolicy, Blocked, Observed, StatusInputs};
use crate::probes::{self, ProbeKind, ProbeTarget, ProbeWorker};
use crate::runtime::ContainerRuntime;
use crate::service_account;
use crate::spec::{ContainerConfig, SandboxConfig};
use crate::status::{ContainerState, Sandbox, SandboxState};
use crate::volumes;

/// Annotation of a mirror pod (value: the static pod's config hash).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Label on every sandbox the agent runs: its node's name. Orphan removal touches only
/// sandboxes with this node's name, so agents sharing one containerd leave each other be.
pub const LABEL_NODE_NAME: &str = "io.rafter.node.name";
/// The sandbox label naming the agent that made it (`rafter-node-agent.<hash of its data
/// directory>`): agents that share one container runtime, even under one node name (test
/// clusters side by side on one machine), never take each other's sandboxes for orphans.
pub const LABEL_AGENT: &str = "io.rafter.agent";

/// What the agent shares with every pod worker.
pub(crate) struct WorkerContext {
    pub(crate) node_name: String,
    /// This agent's [`LABEL_AGENT`] value.
    pub(crate) owner: String,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) api: Arc<dyn ApiClient>,
    pub(crate) host_ip: String,
    /// The cluster CA projected as `ca.crt` beside pods' ServiceAccount tokens; `None`:
    /// no token volumes (see `service_account`).
    pub(crate) service_account_ca: Option<String>,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
    pub(crate) backoff: BackoffPolicy,
    pub(crate) resync: Duration,
    pub(crate) log_rotation: LogRotation,
    /// Cluster DNS, for the pods' resolver configuration.
    pub(crate) cluster_dns: ClusterDns,
    /// Sandboxes being created at once, node-wide. A burst of pods then starts in the
    /// order it arrived instead of all of them sharing the CPU and finishing together
    /// (sandbox creation — runc, CNI, iptables — is most of a pod's start-up cost).
    pub(crate) sandbox_slots: Arc<tokio::sync::Semaphore>,
    /// Pull policy, logins and pull events.
    pub(crate) images: ImagePuller,
}

/// What the manager wants for a pod.
#[derive(Debug, Clone)]
pub(crate) enum Desired {
    /// Run this pod (or tear it down, when it has a deletionTimestamp).
    Pod(Box<Pod>),
    /// The pod is gone from the API (or was never known): remove what runs.
    Gone,
}

/// Where a pod came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The API (bound to this node).
    Api,
    /// A manifest file; status goes to its mirror pod.
    Static,
}

/// One pod's worker.
pub(crate) struct PodWorker {
    ctx: Arc<WorkerContext>,
    uid: String,
    source: Source,
    desired: watch::Receiver<Desired>,
    wake: Arc<Notify>,
    probes: HashMap<(String, ProbeKind), ProbeWorker>,
    blocked: HashMap<String, Blocked>,
    sandbox_retry_at: Option<SystemTime>,
    /// The pod's only sandbox as the last listing showed it (or the pod's first sandbox,
    /// as this worker made it): while it exists, observing asks for its status instead of
    /// listing the pod's sandboxes. Forgotten when this worker replaces a sandbox.
    known_sandbox: Option<String>,
    /// The pod's first sandbox as this pass made it: the next observation is that sandbox
    /// with no containers, without asking the runtime.
    made_sandbox: Option<Sandbox>,
    last_written: Option<PodStatus>,
    last_pod: Option<Pod>,
    /// The pod's projected ServiceAccount token, once written.
    token: Option<service_account::Projected>,
    /// Whether a token volume left by a previous agent was looked for.
    token_adopted: bool,
}

/// The grace period of a pod's containers; 2 s for one the agent knows nothing about.
fn grace_of(pod: Option<&Pod>) -> Duration {
    let Some(pod) = pod else {
        return Duration::from_secs(2);
    };
    let secs = Some(pod)
        .and_then(|p| {
            p.metadata
                .as_ref()
                .and_then(|m| m.deletion_grace_period_seconds)
                .or_else(|| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Whether `pod` differs from `last` (the pod as last synced) only in its
/// resourceVersion, and carries `written` as its status.
fn is_echo(last: &Pod, written: &PodStatus, pod: &Pod) -> bool {
    let without_revision = |p: &Pod| {
        p.metadata.clone().map(|mut m| {
            m.resource_version.clear();
            m
        })
    };
    pod.status.as_ref() == Some(written)
        && pod.spec == last.spec
        && without_revision(pod) == without_revision(last)
}

fn key_of(pod: &Pod) -> (String, String) {
    pod.metadata
        .as_ref()
        .map(|m| (m.namespace.clone(), m.name.clone()))
        .unwrap_or_default()
}

impl PodWorker {
    pub(crate) fn new(
        ctx: Arc<WorkerContext>,
        uid: String,
        source: Source,
        desired: watch::Receiver<Desired>,
        wake: Arc<Notify>,
    ) -> PodWorker {
        PodWorker {
            ctx,
            uid,
            source,
            desired,
            wake,
            probes: HashMap::new(),
            blocked: HashMap::new(),
            sandbox_retry_at: None,
            known_sandbox: None,
            made_sandbox: None,
            last_written: None,
            last_pod: None,
            token: None,
            token_adopted: false,
        }
    }

    /// Runs until the pod is torn down, or the manager goes away.
    pub(crate) async fn run(mut self) {
        let mut wake_at = None;
        // Whether only the desired pod woke the worker (not a timer, probe or relist).
        let mut only_desired = false;
        loop {
            let desired = self.desired.borrow_and_update().clone();
            wake_at = match desired {
                Desired::Gone => {
                    let last = self.last_pod.take();
                    self.teardown(last.as_ref()).await;
                    return;
                }
                Desired::Pod(pod) => {
                    let deleting = pod
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.deletion_timestamp.is_some());
                    if deleting && self.source == Source::Api {
                        self.teardown(Some(&pod)).await;
                        if self.delete_object(&pod).await {
                            return;
                        }
                        Some(SystemTime::now() + Duration::from_secs(1))
                    } else if only_desired && self.is_echo(&pod) {
                        // Only the revision moved (the echo of this worker's own status
                        // write): nothing to do, and nothing due sooner than before.
                        self.last_pod = Some(*pod);
                        wake_at
                    } else {
                        let next = self.sync(&pod).await;
                        self.last_pod = Some(*pod);
                        next
                    }
                }
            };
            // Nothing due: the next look is the resync (or an earlier wake).
            let wait = match wake_at {
                Some(at) => at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
                None => self.ctx.resync,
            }
            .min(self.ctx.resync);
            only_desired = false;
            tokio::select! {
                changed = self.desired.changed() => {
                    if changed.is_err() {
                        debug!(uid = %self.uid, "pod worker stops (agent shutting down)");
                        return;
                    }
                    only_desired = true;
                }
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Whether `pod` is the pod last synced with nothing new but its revision and the
    /// status this worker wrote last.
    fn is_echo(&self, pod: &Pod) -> bool {
        match (&self.last_pod, &self.last_written) {
            (Some(last), Some(written)) => is_echo(last, written, pod),
            _ => false,
        }
    }

    /// Deletes the pod object once its containers are gone; true when done.
    async fn delete_object(&self, pod: &Pod) -> bool {
        let (ns, name) = key_of(pod);
        match self.ctx.api.delete_pod(&ns, &name, &self.uid).await {
            Ok(()) => {
                info!(pod = %format!("{ns}/{name}"), "pod deleted after its containers stopped");
                true
            }
            Err(ApiError::NotFound(_)) | Err(ApiError::Conflict(_)) => true,
            Err(e) => {
                warn!(pod = %format!("{ns}/{name}"), error = %e, "pod not deleted yet; retrying");
                false
            }
        }
    }

    /// Stops every container of the pod within its grace period, then removes its
    /// sandboxes and directory.
    async fn teardown(&mut self, pod: Option<&Pod>) {
        self.probes.clear();
        let grace = grace_of(pod);
        let rt = &self.ctx.runtime;
        let sandboxes = match rt.list_pod_sandboxes(&self.uid).await {
            Ok(list) => list,
            Err(e) => {
                warn!(uid = %self.uid, error = %e, "cannot list sandboxes for teardown");
                Vec::new()
            }
        };
        for sb in &sandboxes {
            if let Ok(containers) = rt.list_containers(Some(&sb.id)).await {
                let live: Vec<_> = containers
                    .iter()
                    .filter(|c| {
                        matches!(c.state, ContainerState::Running | ContainerState::Created)
                    })
                    .collect();
                if !live.is_empty() {
                    info!(uid = %self.uid, containers = live.len(), grace_secs = grace.as_secs(),
                        "stopping the pod's containers");
                }
                let stops = live.iter().map(|c| rt.stop_container(&c.id, grace));
                for result in futures::future::join_all(stops).await {
                    if let Err(e) = result {
                        warn!(uid = %self.uid, error = %e, "container not stopped cleanly");
                    }
                }
            }
            if let Err(e) = rt.stop_sandbox(&sb.id).await {
                warn!(uid = %self.uid, error = %e, "sandbox not stopped");
            }
            if let Err(e) = rt.remove_sandbox(&sb.id).await {
                warn!(uid = %self.uid, error = %e, "sandbox not removed");
            }
        }
        volumes::remove_pod_dir(&volumes::pod_dir(&self.ctx.data_dir, &self.uid)).await;
        if !sandboxes.is_empty() {
            info!(uid = %self.uid, "pod's containers stopped and removed");
        }
    }

    async fn observe(&mut self) -> Result<Observed, RuntimeError> {
        let rt = self.ctx.runtime.clone();
        if let Some(id) = self.known_sandbox.clone() {
            match rt.sandbox_status(&id).await {
                Ok(sandbox) => return self.observe_sandbox(sandbox, Vec::new()).await,
                Err(e) if e.is_not_found() => self.known_sandbox = None,
                Err(e) => return Err(e),
            }
        }
        let mut sandboxes = rt.list_pod_sandboxes(&self.uid).await?;
        sandboxes.sort_by(|a, b| {
            b.attempt
                .cmp(&a.attempt)
                .then(b.created_at.cmp(&a.created_at))
        });
        let mut iter = sandboxes.into_iter();
        let Some(newest) = iter.next() else {
            return Ok(Observed::default());
        };
        let old: Vec<String> = iter.map(|s| s.id).collect();
        let newest = match rt.sandbox_status(&newest.id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => newest,
            Err(e) => return Err(e),
        };
        if old.is_empty() {
            self.known_sandbox = Some(newest.id.clone());
        }
        self.observe_sandbox(newest, old).await
    }

    /// The containers of the pod's newest sandbox, with the older sandboxes to remove.
    async fn observe_sandbox(
        &self,
        newest: Sandbox,
        old_sandboxes: Vec<String>,
    ) -> Result<Observed, RuntimeError> {
        let rt = &self.ctx.runtime;
        let mut observed = Observed::default();
        for summary in rt.list_containers(Some(&newest.id)).await? {
            match rt.container_status(&summary.id).await {
                Ok(st) => observed
                    .containers
                    .entry(summary.container_name().to_owned())
                    .or_default()
                    .push(st),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for list in observed.containers.values_mut() {
            list.sort_by(|a, b| {
                b.attempt
                    .cmp(&a.attempt)
                    .then(b.created_at.cmp(&a.created_at))
            });
        }
        observed.sandbox = Some(newest);
        observed.old_sandboxes = old_sandboxes;
        Ok(observed)
    }

    /// One round of reconciliation; returns when to look again.
    async fn sync(&mut self, api_pod: &Pod) -> Option<SystemTime> {
        let mut pod = api_pod.clone();
        if let Some(written) = &self.last_written {
            pod.status = Some(written.clone());
        }
        let observed = match self.observe().await {
            Ok(o) => o,
            Err(e) => {
                warn!(uid = %self.uid, error = %e, "cannot observe the runtime; retrying");
                return Some(SystemTime::now() + Duration::from_secs(1));
            }
        };
        let now = SystemTime::now();
        let unhealthy: HashMap<String, &'static str> = self
            .probes
            .iter()
            .filter_map(|((id, kind), p)| {
                let state = p.state();
                match kind {
                    ProbeKind::Liveness if !state.healthy => {
                        Some((id.clone(), "liveness probe failed"))
                    }
                    ProbeKind::Startup if state.failed => {
                        Some((id.clone(), "startup probe failed"))
                    }
                    _ => None,
                }
            })
            .collect();
        self.blocked
            .retain(|_, b| b.until > now - Duration::from_secs(3600));
        let mut planned = self.plan_at(&pod, &observed, &unhealthy, now);
        let mut fresh = HashMap::new();
        let acted = !planned.actions.is_empty();
        for action in &planned.actions {
            self.execute(&pod, &observed, action, &mut fresh).await;
        }
        let mut observed = match self.made_sandbox.take() {
            Some(sandbox) => Observed {
                sandbox: Some(sandbox),
                ..Observed::default()
            },
            None if acted => self.observe().await.unwrap_or(observed),
            None => observed,
        };
        // A sandbox was just made: start its containers in this same pass, rather than
        // after a status write and a pause (one status write and ~200 ms less per pod).
        let new_sandbox = planned
            .actions
            .iter()
            .any(|a| matches!(a, Action::RunSandbox { .. }));
        if new_sandbox {
            let again = self.plan_at(&pod, &observed, &unhealthy, SystemTime::now());
            if !again.actions.is_empty() {
                for action in &again.actions {
                    self.execute(&pod, &observed, action, &mut fresh).await;
                }
                observed = self.observe().await.unwrap_or(observed);
            }
        }
        // The status says what runs now. A plan made before its actions ran still sees
        // the containers they started as waiting (phase Pending), and writing that would
        // cost a second status write (a Raft write) as soon as its echo came back.
        if acted {
            planned = self.plan_at(&pod, &observed, &unhealthy, SystemTime::now());
        }
        self.keep_probes(&pod, &observed);
        self.rotate_logs(&observed).await;
        let not_started = self.not_started(&pod, &observed);
        let ready = self.ready_containers(&pod, &observed, &not_started);
        let status = pod_status(&StatusInputs {
            pod: &pod,
            observed: &observed,
            plan: &planned,
            fresh: &fresh,
            ready: &ready,
            not_started: &not_started,
            backend: self.ctx.runtime.backend(),
            host_ip: &self.ctx.host_ip,
            now: SystemTime::now(),
        });
        let unwritten = (!self.write_status(api_pod, status).await)
            .then(|| SystemTime::now() + Duration::from_secs(1));
        let refresh = self.refresh_token(&pod).await;
        // What changes in the runtime after this (a container exiting) wakes the worker
        // through the node-wide relist; only what the runtime cannot show is timed here.
        [planned.wake_at, self.sandbox_retry_at, unwritten, refresh]
            .into_iter()
            .flatten()
            .min()
    }

    /// [`plan`] for this worker's pod at `now`, with its blocked containers and back-off.
    fn plan_at(
        &self,
        pod: &Pod,
        observed: &Observed,
        unhealthy: &HashMap<String, &'static str>,
        now: SystemTime,
    ) -> crate::pod_sync::Plan {
        plan(
            pod,
            observed,
            unhealthy,
            &self.blocked,
            &self.ctx.backoff,
            now,
        )
    }

    /// Replaces the pod's projected token once 80% of its lifetime has passed; when to
    /// look again (the next refresh, or a retry in 5 s after a failure).
    async fn refresh_token(&mut self, pod: &Pod) -> Option<SystemTime> {
        let ca = self.ctx.service_account_ca.clone()?;
        let pod_dir = volumes::pod_dir(&self.ctx.data_dir, &self.uid);
        let due = match &self.token {
            Some(token) => token.refresh_at,
            // A token a previous agent projected for containers that still run: this one
            // does not know when it expires, so it replaces it at once (looked for once).
            None if !std::mem::replace(&mut self.token_adopted, true)
                && self.source == Source::Api =>
            {
                let dir = pod_dir.join("volumes").join(service_account::VOLUME);
                if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
                    return None;
                }
                SystemTime::now()
            }
            None => return None,
        };
        if due > SystemTime::now() {
            return Some(due);
        }
        match service_account::project(self.ctx.api.as_ref(), pod, &pod_dir, &ca).await {
            Ok(Some(projected)) => {
                debug!(uid = %self.uid, "service account token refreshed");
                let next = projected.refresh_at;
                self.token = Some(projected);
                Some(next)
            }
            // The pod or its account opted out meanwhile: the mounted token stays until it
            // expires, as the kubelet leaves it.
            Ok(None) => {
                self.token = None;
                None
            }
            Err(e) => {
                warn!(uid = %self.uid, error = %e, "service account token not refreshed; retrying");
                Some(SystemTime::now() + Duration::from_secs(5))
            }
        }
    }

    fn block(
        &mut self,
        name: &str,
        reason: &str,
        message: String,
        fresh: &mut HashMap<String, (String, String)>,
    ) {
        let failures = self.blocked.get(name).map(|b| b.failures + 1).unwrap_or(1);
        let until = SystemTime::now() + self.ctx.backoff.delay(failures);
        warn!(uid = %self.uid, container = name, reason, %message, "container cannot start");
        fresh.insert(name.to_owned(), (reason.to_owned(), message.clone()));
        self.blocked.insert(
            name.to_owned(),
            Blocked {
                reason: reason.to_owned(),
                message,
                failures,
                until,
            },
        );
    }

    async fn execute(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        action: &Action,
        fresh: &mut HashMap<String, (String, String)>,
    ) {
        let rt = self.ctx.runtime.clone();
        match action {
            Action::RemoveSandbox { id } => {
                let _ = rt.stop_sandbox(id).await;
                if let Err(e) = rt.remove_sandbox(id).await {
                    warn!(uid = %self.uid, error = %e, "old sandbox not removed");
                }
            }
            Action::StopSandbox { id } => {
                self.probes.clear();
                if let Err(e) = rt.stop_sandbox(id).await {
                    warn!(uid = %self.uid, error = %e, "sandbox of a finished pod not stopped");
                }
            }
            Action::RunSandbox { attempt } => {
                if self
                    .sandbox_retry_at
                    .is_some_and(|at| at > SystemTime::now())
                {
                    return;
                }
                let config = match SandboxConfig::from_pod(
                    pod,
                    *attempt,
                    &self.ctx.log_dir,
                    &self.ctx.cluster_dns,
                ) {
                    Ok(mut c) => {
                        c.labels
                            .insert(LABEL_NODE_NAME.to_owned(), self.ctx.node_name.clone());
                        c.labels
                            .insert(LABEL_AGENT.to_owned(), self.ctx.owner.clone());
                        c
                    }
                    Err(e) => {
                        warn!(uid = %self.uid, error = %e, "pod cannot get a sandbox");
                        return;
                    }
                };
                // Never closed, so acquiring only fails if the agent is going away.
                let Ok(_slot) = self.ctx.sandbox_slots.acquire().await else {
                    return;
                };
                // A replaced sandbox: the next observation lists the pod's sandboxes
                // again, to find any left behind.
                self.known_sandbox = None;
                let first = observed.sandbox.is_none() && observed.old_sandboxes.is_empty();
                match rt.run_sandbox(&config).await {
                    Ok(sb) => {
                        self.sandbox_retry_at = None;
                        if first {
                            self.known_sandbox = Some(sb.id.clone());
                            self.made_sandbox = Some(sb.clone());
                        }
                        info!(uid = %self.uid, sandbox = %sb.id, ip = ?sb.ip, "sandbox running");
                    }
                    Err(e) => {
                        warn!(uid = %self.uid, error = %e, "sandbox not created; retrying");
                        self.sandbox_retry_at = Some(SystemTime::now() + Duration::from_secs(2));
                    }
                }
            }
            Action::StopContainer { id, reason } => {
                info!(uid = %self.uid, container = %id, reason, "stopping container");
                self.probes.retain(|(cid, _), _| cid != id);
                if let Err(e) = rt.stop_container(id, grace_of(Some(pod))).await {
                    warn!(uid = %self.uid, error = %e, "container not stopped");
                }
            }
            Action::RemoveContainer { id } => {
                if let Err(e) = rt.remove_container(id).await {
                    debug!(uid = %self.uid, error = %e, "old container not removed");
                }
            }
            Action::StartContainer {
                init,
                index,
                attempt,
            } => {
                let spec = pod.spec.clone().unwrap_or_default();
                let list = if *init {
                    &spec.init_containers
                } else {
                    &spec.containers
                };
                let Some(container) = list.get(*index) else {
                    return;
                };
                let Some(sandbox) = observed
                    .sandbox
                    .as_ref()
                    .filter(|s| s.state == SandboxState::Ready)
                else {
                    return;
                };
                let prefix = format!(
                    "spec.{}[{index}]",
                    if *init {
                        "initContainers"
                    } else {
                        "containers"
                    }
                );
                self.start_container(pod, sandbox, container, &prefix, *attempt, fresh)
                    .await;
            }
        }
    }

    async fn start_container(
        &mut self,
        pod: &Pod,
        sandbox: &crate::status::Sandbox,
        container: &Container,
        prefix: &str,
        attempt: u32,
        fresh: &mut HashMap<String, (String, String)>,
    ) {
        let rt = self.ctx.runtime.clone();
        let name = container.name.as_str();
        if let Err(failure) = self.ctx.images.ensure(pod, container).await {
            self.block(name, failure.reason, failure.message, fresh);
            return;
        }
        let (namespace, _) = key_of(pod);
        let pod_ip = sandbox.ip.clone().unwrap_or_default();
        let mut objects = PodObjects::new(self.ctx.api.as_ref(), &namespace);
        let pod_dir = volumes::pod_dir(&self.ctx.data_dir, &self.uid);
        let source = self.source;
        let ca = self.ctx.service_account_ca.clone();
        let api = self.ctx.api.clone();
        let token = &mut self.token;
        let config = async {
            let vols = volumes::prepare(pod, &mut objects, &pod_dir).await?;
            let mut mounts = volumes::mounts(pod, container, &vols)?;
            if let (Source::Api, Some(ca)) = (source, ca) {
                if token.is_none() {
                    *token = service_account::project(api.as_ref(), pod, &pod_dir, &ca).await?;
                }
                if let Some(projected) = token.as_ref() {
                    mounts.extend(service_account::mount(projected, container));
                }
            }
            let env = resolve_env(&mut objects, pod, container, &pod_ip, &self.ctx.host_ip).await?;
            Ok::<_, crate::env::ConfigError>((mounts, env))
        };
        let (mounts, env) = match config.await {
            Ok(v) => v,
            Err(e) => {
                self.block(name, "CreateContainerConfigError", e.to_string(), fresh);
                return;
            }
        };
        let security = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_deref());
        let mut config = match ContainerConfig::from_container(container, prefix, attempt, security)
        {
            Ok(c) => c,
            Err(e) => {
                self.block(name, "CreateContainerConfigError", e.to_string(), fresh);
                return;
            }
        };
        // `$(NAME)` in command and args refers to the container's resolved environment.
        config.command = config
            .command
            .iter()
            .map(|arg| expand_with_env(arg, &env))
            .collect();
        config.args = config
            .args
            .iter()
            .map(|arg| expand_with_env(arg, &env))
            .collect();
        config.env = env;
        config.mounts = mounts;
        let sandbox_config = match SandboxConfig::from_pod(
            pod,
            sandbox.attempt,
            &self.ctx.log_dir,
            &self.ctx.cluster_dns,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.block(name, "CreateContainerConfigError", e.to_string(), fresh);
                return;
            }
        };
        let id = match rt
            .create_container(&sandbox.id, &config, &sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e @ RuntimeError::ImageNotFound { .. }) => {
                self.block(name, "ErrImagePull", e.to_string(), fresh);
                return;
            }
            Err(e) => {
                self.block(name, "CreateContainerError", e.to_string(), fresh);
                return;
            }
        };
        match rt.start_container(&id).await {
            // The container reads exited with StartError; the plan restarts it per policy.
            Ok(()) | Err(RuntimeError::StartFailed { .. }) => {
                self.blocked.remove(name);
                info!(uid = %self.uid, container = name, attempt, id = %id, "container started");
            }
            Err(e) => self.block(name, "RunContainerError", e.to_string(), fresh),
        }
    }

    /// One probe task per running container and probe; others dropped (aborted).
    fn keep_probes(&mut self, pod: &Pod, observed: &Observed) {
        let spec = pod.spec.clone().unwrap_or_default();
        let pod_ip = observed
            .sandbox
            .as_ref()
            .and_then(|s| s.ip.clone())
            .unwrap_or_else(|| self.ctx.host_ip.clone());
        let mut wanted = HashSet::new();
        for c in &spec.containers {
            let Some(latest) = observed
                .containers
                .get(&c.name)
                .and_then(|h| h.first())
                .filter(|s| s.state == ContainerState::Running)
            else {
                continue;
            };
            // Liveness and readiness wait until the startup probe (if any) succeeded.
            let started = c.startup_probe.is_none()
                || self
                    .probes
                    .get(&(latest.id.clone(), ProbeKind::Startup))
                    .is_some_and(|p| p.state().healthy);
            for (kind, probe) in [
                (ProbeKind::Startup, &c.startup_probe),
                (ProbeKind::Liveness, &c.liveness_probe),
                (ProbeKind::Readiness, &c.readiness_probe),
            ] {
                let Some(probe) = probe else { continue };
                if kind != ProbeKind::Startup && !started {
                    continue;
                }
                let key = (latest.id.clone(), kind);
                wanted.insert(key.clone());
                if !self.probes.contains_key(&key) {
                    let target = ProbeTarget {
                        runtime: self.ctx.runtime.clone(),
                        container_id: latest.id.clone(),
                        pod_ip: pod_ip.clone(),
                        ports: c.ports.clone(),
                    };
                    let worker = probes::spawn(kind, (**probe).clone(), target, self.wake.clone());
                    self.probes.insert(key, worker);
                }
            }
        }
        self.probes.retain(|k, _| wanted.contains(k));
    }

    /// Rotates the log of every running container past the size cap, and has the
    /// runtime reopen it.
    async fn rotate_logs(&self, observed: &Observed) {
        let running = observed
            .containers
            .values()
            .filter_map(|history| history.first())
            .filter(|c| c.state == ContainerState::Running && c.log_path.is_absolute());
        for c in running {
            let rotated = log_rotation::rotate_if_needed(
                &c.log_path,
                self.ctx.log_rotation,
                SystemTime::now(),
            )
            .await;
            match rotated {
                Ok(None) => {}
                Ok(Some(aside)) => {
                    debug!(uid = %self.uid, container = %c.name, to = %aside.display(), "container log rotated");
                    if let Err(e) = self.ctx.runtime.reopen_container_log(&c.id).await {
                        warn!(uid = %self.uid, container = %c.name, error = %e, "container log not reopened after rotation");
                    }
                }
                Err(e) => {
                    warn!(uid = %self.uid, container = %c.name, path = %c.log_path.display(), error = %e, "container log not rotated")
                }
            }
        }
    }

    /// Running app containers with a startup probe that has not succeeded yet.
    fn not_started(&self, pod: &Pod, observed: &Observed) -> HashSet<String> {
        let spec = pod.spec.clone().unwrap_or_default();
        spec.containers
            .iter()
            .filter(|c| c.startup_probe.is_some())
            .filter_map(|c| {
                let latest = observed.containers.get(&c.name)?.first()?;
                let started = self
                    .probes
                    .get(&(latest.id.clone(), ProbeKind::Startup))
                    .is_some_and(|p| p.state().healthy);
                (latest.state == ContainerState::Running && !started).then(|| latest.id.clone())
            })
            .collect()
    }

    /// Running app containers that have started (startup probe) and whose readiness
    /// probe passes or that have none.
    fn ready_containers(
        &self,
        pod: &Pod,
        observed: &Observed,
        not_started: &HashSet<String>,
    ) -> HashSet<String> {
        let spec = pod.spec.clone().unwrap_or_default();
        spec.containers
            .iter()
            .filter_map(|c| {
                let latest = observed.containers.get(&c.name)?.first()?;
                if latest.state != ContainerState::Running || not_started.contains(&latest.id) {
                    return None;
                }
                let ready = c.readiness_probe.is_none()
                    || self
                        .probes
                        .get(&(latest.id.clone(), ProbeKind::Readiness))
                        .is_some_and(|p| p.state().healthy);
                ready.then(|| latest.id.clone())
            })
            .collect()
    }

    /// Writes `status` unless the API already has it; false when it could not be written
    /// (to be tried again soon).
    async fn write_status(&mut self, api_pod: &Pod, status: PodStatus) -> bool {
        if self.last_written.as_ref() == Some(&status) || api_pod.status.as_ref() == Some(&status) {
            self.last_written = Some(status);
            return true;
        }
        let (ns, name) = key_of(api_pod);
        let written = match self.source {
            Source::Api => {
                let mut object = api_pod.clone();
                object.status = Some(status.clone());
                match self.ctx.api.update_status(Object::Pod(object)).await {
                    Err(ApiError::Conflict(_)) => {
                        self.write_status_fresh(&ns, &name, &status, true).await
                    }
                    other => other.map(|_| ()),
                }
            }
            Source::Static => self.write_status_fresh(&ns, &name, &status, false).await,
        };
        match written {
            Ok(()) => {
                debug!(pod = %format!("{ns}/{name}"), phase = %status.phase, "pod status written");
                self.last_written = Some(status);
                true
            }
            Err(ApiError::NotFound(_)) => true,
            Err(e) => {
                warn!(pod = %format!("{ns}/{name}"), error = %e, "pod status not written; retrying");
                false
            }
        }
    }

    /// Writes `status` onto the object as it is now (a mirror pod, or after a conflict).
    async fn write_status_fresh(
        &self,
        ns: &str,
        name: &str,
        status: &PodStatus,
        same_uid: bool,
    ) -> Result<(), ApiError> {
        let Object::Pod(mut current) = self.ctx.api.get(Kind::Pod, ns, name).await? else {
            return Err(ApiError::Other("the API returned a non-Pod".into()));
        };
        let meta = current.metadata.clone().unwrap_or_default();
        if same_uid && meta.uid != self.uid {
            return Err(ApiError::NotFound(format!("pod {ns}/{name} was replaced")));
        }
        if !same_uid && !meta.annotations.contains_key(MIRROR_ANNOTATION) {
            return Err(ApiError::NotFound(format!(
                "pod {ns}/{name} is not a mirror pod"
            )));
        }
        current.status = Some(status.clone());
        self.ctx
            .api
            .update_status(Object::Pod(current))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use rafter_proto::v1::{ObjectMeta, PodSpec};

    use super::*;

    fn pod(rv: &str, image: &str, phase: &str) -> Pod {
        Pod {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                resource_version: rv.into(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: "n1".into(),
                containers: vec![Container {
                    name: "app".into(),
                    image: image.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_new_revision_carrying_the_written_status_is_an_echo() {
        let last = pod("5", "busybox", "Pending");
        let written = PodStatus {
            phase: "Running".into(),
            ..Default::default()
        };
        assert!(is_echo(&last, &written, &pod("6", "busybox", "Running")));

        // Someone else's status, a changed spec, changed metadata: all need a sync.
        assert!(!is_echo(&last, &written, &pod("6", "busybox", "Failed")));
        assert!(!is_echo(&last, &written, &pod("6", "nginx", "Running")));
        let mut labelled = pod("6", "busybox", "Running");
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .insert("tier".into(), "web".into());
        assert!(!is_echo(&last, &written, &labelled));
        let mut deleting = pod("6", "busybox", "Running");
        deleting.metadata.as_mut().unwrap().deletion_timestamp =
            Some("2026-12-07T00:00:00Z".into());
        assert!(!is_echo(&last, &written, &deleting));
    }
}
