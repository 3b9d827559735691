//! The pure core of pod sync: from the pod (desired) and what the runtime shows
//! (observed), decide what to do next ([`plan`]) and what the pod's status is
//! ([`pod_status`]). No I/O and no clock: the time comes in as an argument.
//!
//! ```text
//!   Pod ─┐                     ┌─► actions: run sandbox, start container (attempt n),
//!        ├─► plan(now, policy) ┤            stop (liveness), remove old attempts, stop sandbox
//!   Observed (sandbox,         └─► decisions per container + phase + when to look again
//!   containers by name,                 │
//!   newest attempt first) ──────────────┴─► pod_status(...) ─► PodStatus
//! ```
//!
//! Rules, as the seeds describe them:
//! - init containers run one at a time, in order; a failing one is restarted (with
//!   back-off) unless `restartPolicy` is Never, which fails the pod;
//! - app containers all start once init is done; an exited one restarts per
//!   `restartPolicy` (Always; OnFailure when its exit code is not 0; Never) after a back-off
//!   of 0 for the first restart, then `base`, doubling up to `max` (CrashLoopBackOff). The
//!   restart count is the container's attempt number, so it survives agent restarts;
//! - a container whose liveness probe failed, or whose startup probe gave up, is
//!   stopped (and then restarts per policy);
//! - a pod whose status says Succeeded or Failed never starts anything again.
//!
//! This module must not call the runtime or the API; [`crate::pod_worker`] carries out
//! the plan.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use rafter_proto::v1::{
    self, Condition, Container, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, Pod, PodIp, PodStatus,
};
use rafter_proto::Timestamp;

use crate::status::{ContainerState, ContainerStatus, Sandbox, SandboxState};

/// Restart back-off settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The delay before the second restart (the first is immediate); doubles after.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The delay before restart number `restarts + 1`.
    pub(crate) fn delay(&self, restarts: u32) -> Duration {
        if restarts == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(restarts - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What the runtime shows for one pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    /// The newest sandbox (ready or not), with its IP.
    pub(crate) sandbox: Option<Sandbox>,
    /// Older sandboxes of the pod, to remove.
    pub(crate) old_sandboxes: Vec<String>,
    /// Containers of the newest sandbox by name, newest attempt first.
    pub(crate) containers: HashMap<String, Vec<ContainerStatus>>,
}

/// Why a container cannot be started for now (set by the worker after a failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blocked {
    /// `ErrImagePull`, `CreateContainerConfigError`, `RunContainerError` ...
    pub(crate) reason: String,
    /// Detail.
    pub(crate) message: String,
    /// Failures in a row.
    pub(crate) failures: u32,
    /// Not before this time.
    pub(crate) until: SystemTime,
}

/// What the agent decided for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Earlier init containers have not finished.
    NotYet,
    /// Start this attempt now.
    Start {
        /// The attempt (restart count) to create.
        attempt: u32,
    },
    /// Created or running; nothing to do.
    Running,
    /// Exited; restarts at `until` (CrashLoopBackOff).
    BackOff {
        /// When it may restart.
        until: SystemTime,
        /// The delay being waited.
        delay: Duration,
    },
    /// Cannot start yet (image, config); retried at `until`.
    Blocked {
        /// Waiting reason.
        reason: String,
        /// Detail.
        message: String,
        /// Retry time.
        until: SystemTime,
    },
    /// Terminated and stays so.
    Done,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Run a new sandbox with this attempt number.
    RunSandbox {
        /// Attempt number.
        attempt: u32,
    },
    /// Stop and remove a sandbox that is not the current one (or not ready).
    RemoveSandbox {
        /// Its id.
        id: String,
    },
    /// Stop the current sandbox: the pod is finished.
    StopSandbox {
        /// Its id.
        id: String,
    },
    /// Create and start a container.
    StartContainer {
        /// An init container?
        init: bool,
        /// Index in `initContainers` or `containers`.
        index: usize,
        /// Attempt number.
        attempt: u32,
    },
    /// Stop a running container (liveness failure, finished pod).
    StopContainer {
        /// Its id.
        id: String,
        /// Why, for the log.
        reason: &'static str,
    },
    /// Remove an exited container attempt older than the previous one.
    RemoveContainer {
        /// Its id.
        id: String,
    },
}

/// The result of [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// What to do now, in order.
    pub(crate) actions: Vec<Action>,
    /// Decision per init container, by name.
    pub(crate) init: HashMap<String, Decision>,
    /// Decision per app container, by name.
    pub(crate) app: HashMap<String, Decision>,
    /// The pod's phase.
    pub(crate) phase: &'static str,
    /// All init containers completed.
    pub(crate) initialized: bool,
    /// The earliest time something is due (a back-off ends).
    pub(crate) wake_at: Option<SystemTime>,
}

fn restart_policy(pod: &Pod) -> &str {
    match pod.spec.as_ref().map(|s| s.restart_policy.as_str()) {
        Some("Never") => "Never",
        Some("OnFailure") => "OnFailure",
        _ => "Always",
    }
}

fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

/// Exited for good. `Unknown` is not: containerd reports it for a moment while a
/// container starts, so the agent waits and looks again.
fn exited(c: &ContainerStatus) -> bool {
    c.state == ContainerState::Exited
}

/// Decides for one container from its history (newest first).
fn decide(
    history: &[ContainerStatus],
    restart: bool,
    blocked: Option<&Blocked>,
    policy: &BackoffPolicy,
    now: SystemTime,
) -> Decision {
    let blocked_decision = |b: &Blocked| Decision::Blocked {
        reason: if b.reason == "ErrImagePull" {
            "ImagePullBackOff".to_owned()
        } else {
            b.reason.clone()
        },
        message: b.message.clone(),
        until: b.until,
    };
    let Some(latest) = history.first() else {
        return match blocked {
            Some(b) if b.until > now => blocked_decision(b),
            _ => Decision::Start { attempt: 0 },
        };
    };
    if !exited(latest) {
        return Decision::Running;
    }
    if !restart {
        return Decision::Done;
    }
    let delay = policy.delay(latest.attempt);
    let until = latest.finished_at.unwrap_or(latest.created_at) + delay;
    if until > now {
        return Decision::BackOff { until, delay };
    }
    match blocked {
        Some(b) if b.until > now => blocked_decision(b),
        _ => Decision::Start {
            attempt: latest.attempt + 1,
        },
    }
}

fn until_of(d: &Decision) -> Option<SystemTime> {
    match d {
        Decision::BackOff { until, .. } | Decision::Blocked { until, .. } => Some(*until),
        _ => None,
    }
}

/// What to do for `pod` given `observed`. `unhealthy` maps ids of containers whose
/// liveness or startup probe failed to why (`liveness probe failed`); `blocked` holds
/// the containers that cannot start for now.
pub(crate) fn plan(
    pod: &Pod,
    observed: &Observed,
    unhealthy: &HashMap<String, &'static str>,
    blocked: &HashMap<String, Blocked>,
    policy: &BackoffPolicy,
    now: SystemTime,
) -> Plan {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy_name = restart_policy(pod);
    let previous_phase = pod.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    let mut out = Plan {
        actions: Vec::new(),
        init: HashMap::new(),
        app: HashMap::new(),
        phase: "Pending",
        initialized: spec.init_containers.is_empty(),
        wake_at: None,
    };
    for id in &observed.old_sandboxes {
        out.actions.push(Action::RemoveSandbox { id: id.clone() });
    }
    let empty = Vec::new();
    let history = |name: &str| observed.containers.get(name).unwrap_or(&empty);

    // Old attempts beyond the previous one go (the previous one stays for --previous).
    for list in observed.containers.values() {
        for old in list.iter().skip(2).filter(|c| exited(c)) {
            out.actions
                .push(Action::RemoveContainer { id: old.id.clone() });
        }
    }

    if is_terminal(previous_phase) {
        out.phase = if previous_phase == "Succeeded" {
            "Succeeded"
        } else {
            "Failed"
        };
        out.initialized = spec.init_containers.iter().all(|c| {
            history(&c.name)
                .first()
                .is_some_and(|s| exited(s) && s.exit_code == Some(0))
        });
        for c in spec.init_containers.iter() {
            out.init.insert(c.name.clone(), Decision::Done);
        }
        for c in spec.containers.iter() {
            out.app.insert(c.name.clone(), Decision::Done);
            for running in history(&c.name).iter().filter(|s| !exited(s)) {
                out.actions.push(Action::StopContainer {
                    id: running.id.clone(),
                    reason: "pod finished",
                });
            }
        }
        if let Some(sb) = observed
            .sandbox
            .as_ref()
            .filter(|s| s.state == SandboxState::Ready)
        {
            out.actions.push(Action::StopSandbox { id: sb.id.clone() });
        }
        return out;
    }

    let sandbox_ready = observed
        .sandbox
        .as_ref()
        .is_some_and(|s| s.state == SandboxState::Ready);

    // Init containers, one at a time.
    let mut init_failed = false;
    let mut blocked_on_init = false;
    for (index, c) in spec.init_containers.iter().enumerate() {
        if blocked_on_init {
            out.init.insert(c.name.clone(), Decision::NotYet);
            continue;
        }
        let h = history(&c.name);
        let succeeded = h
            .first()
            .is_some_and(|s| exited(s) && s.exit_code == Some(0));
        if succeeded {
            out.init.insert(c.name.clone(), Decision::Done);
            continue;
        }
        blocked_on_init = true;
        let d = decide(h, policy_name != "Never", blocked.get(&c.name), policy, now);
        if d == Decision::Done {
            init_failed = true;
        }
        if let Decision::Start { attempt } = d {
            if sandbox_ready {
                out.actions.push(Action::StartContainer {
                    init: true,
                    index,
                    attempt,
                });
            }
        }
        if let Some(id) = h.first().filter(|s| !exited(s)).map(|s| s.id.clone()) {
            if let Some(reason) = unhealthy.get(&id) {
                out.actions.push(Action::StopContainer { id, reason });
            }
        }
        out.init.insert(c.name.clone(), d);
    }
    out.initialized = !blocked_on_init;

    for (index, c) in spec.containers.iter().enumerate() {
        if !out.initialized {
            out.app.insert(c.name.clone(), Decision::NotYet);
            continue;
        }
        let h = history(&c.name);
        let restart = match policy_name {
            "Never" => false,
            "OnFailure" => h.first().is_none_or(|s| s.exit_code != Some(0)),
            _ => true,
        };
        let d = decide(h, restart, blocked.get(&c.name), policy, now);
        if let Decision::Start { attempt } = d {
            if sandbox_ready {
                out.actions.push(Action::StartContainer {
                    init: false,
                    index,
                    attempt,
                });
            }
        }
        if let Some(id) = h.first().filter(|s| !exited(s)).map(|s| s.id.clone()) {
            if let Some(reason) = unhealthy.get(&id) {
                out.actions.push(Action::StopContainer { id, reason });
            }
        }
        out.app.insert(c.name.clone(), d);
    }

    let all_app_done = !spec.containers.is_empty()
        && spec
            .containers
            .iter()
            .all(|c| out.app.get(&c.name) == Some(&Decision::Done));
    let any_started = spec.containers.iter().any(|c| !history(&c.name).is_empty());
    out.phase = if init_failed {
        "Failed"
    } else if !out.initialized {
        "Pending"
    } else if all_app_done {
        let failed = spec.containers.iter().any(|c| {
            history(&c.name)
                .first()
                .is_some_and(|s| s.exit_code != Some(0))
        });
        if failed {
            "Failed"
        } else {
            "Succeeded"
        }
    } else if any_started {
        "Running"
    } else {
        "Pending"
    };

    if is_terminal(out.phase) {
        out.actions
            .retain(|a| !matches!(a, Action::StartContainer { .. }));
        if let Some(sb) = observed
            .sandbox
            .as_ref()
            .filter(|s| s.state == SandboxState::Ready)
        {
            out.actions.push(Action::StopSandbox { id: sb.id.clone() });
        }
    } else if !sandbox_ready {
        let attempt = observed
            .sandbox
            .as_ref()
            .map(|s| s.attempt + 1)
            .unwrap_or(0);
        if let Some(sb) = &observed.sandbox {
            out.actions
                .push(Action::RemoveSandbox { id: sb.id.clone() });
        }
        out.actions.push(Action::RunSandbox { attempt });
    }
    out.wake_at = out
        .init
        .values()
        .chain(out.app.values())
        .filter_map(until_of)
        .min();
    out
}

/// Everything [`pod_status`] needs besides the plan.
pub(crate) struct StatusInputs<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) observed: &'a Observed,
    pub(crate) plan: &'a Plan,
    /// Failures of this sync, by container name: (reason, message).
    pub(crate) fresh: &'a HashMap<String, (String, String)>,
    /// Ids of running containers whose readiness probe passes (or that have none).
    pub(crate) ready: &'a HashSet<String>,
    /// Ids of running containers whose startup probe has not succeeded yet.
    pub(crate) not_started: &'a HashSet<String>,
    /// The runtime backend name, for `containerID` (`containerd://...`).
    pub(crate) backend: &'a str,
    pub(crate) host_ip: &'a str,
    pub(crate) now: SystemTime,
}

fn terminated(c: &ContainerStatus, backend: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: c.exit_code.unwrap_or(0),
        signal: 0,
        reason: c.reason.clone(),
        message: c.message.clone(),
        started_at: c.started_at.map(|t| Timestamp::from(t).to_rfc3339_micros()),
        finished_at: c
            .finished_at
            .map(|t| Timestamp::from(t).to_rfc3339_micros()),
        container_id: format!("{backend}://{}", c.id),
    }
}

fn waiting(reason: &str, message: String) -> v1::ContainerState {
    v1::ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.to_owned(),
            message,
        }),
        ..Default::default()
    }
}

fn container_status(
    spec: &Container,
    history: &[ContainerStatus],
    decision: &Decision,
    inputs: &StatusInputs<'_>,
    pod_name: &str,
) -> v1::ContainerStatus {
    let latest = history.first();
    let backend = inputs.backend;
    let term = |c: &ContainerStatus| v1::ContainerState {
        terminated: Some(Box::new(terminated(c, backend))),
        ..Default::default()
    };
    let (state, last) = if let Some((reason, message)) = inputs.fresh.get(&spec.name) {
        (
            waiting(reason, message.clone()),
            latest.filter(|c| exited(c)).map(term),
        )
    } else {
        match (decision, latest) {
            (Decision::BackOff { delay, .. }, Some(l)) if exited(l) => (
                waiting(
                    "CrashLoopBackOff",
                    format!(
                        "back-off {} restarting failed container={} pod={pod_name}",
                        humantime::format_duration(*delay),
                        spec.name
                    ),
                ),
                Some(term(l)),
            ),
            (
                Decision::Blocked {
                    reason, message, ..
                },
                l,
            ) => (
                waiting(reason, message.clone()),
                l.filter(|c| exited(c)).map(term),
            ),
            (Decision::Start { .. }, Some(l)) if exited(l) => {
                (waiting("ContainerCreating", String::new()), Some(term(l)))
            }
            (Decision::NotYet, None) => (waiting("PodInitializing", String::new()), None),
            (_, None) => (waiting("ContainerCreating", String::new()), None),
            (_, Some(l)) => {
                let prev = history.get(1).filter(|c| exited(c)).map(term);
                match l.state {
                    ContainerState::Running => (
                        v1::ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: l
                                    .started_at
                                    .map(|t| Timestamp::from(t).to_rfc3339_micros()),
                            }),
                            ..Default::default()
                        },
                        prev,
                    ),
                    ContainerState::Created | ContainerState::Unknown => {
                        (waiting("ContainerCreating", String::new()), prev)
                    }
                    _ => (term(l), prev),
                }
            }
        }
    };
    let running = latest.is_some_and(|l| l.state == ContainerState::Running);
    v1::ContainerStatus {
        name: spec.name.clone(),
        ready: running
            && latest.is_some_and(|l| inputs.ready.contains(&l.id))
            && state.running.is_some(),
        restart_count: latest.map(|l| l.attempt as i32).unwrap_or(0),
        image: spec.image.clone(),
        image_id: latest.map(|l| l.image_id.clone()).unwrap_or_default(),
        container_id: latest
            .map(|l| format!("{backend}://{}", l.id))
            .unwrap_or_default(),
        started: Some(
            state.running.is_some() && latest.is_none_or(|l| !inputs.not_started.contains(&l.id)),
        ),
        state: Some(state),
        last_state: Some(Box::new(last.unwrap_or_default())),
    }
}

/// The pod's status: phase, conditions, IPs, start time and container statuses.
pub(crate) fn pod_status(inputs: &StatusInputs<'_>) -> PodStatus {
    let pod = inputs.pod;
    let previous = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let pod_name = pod.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or("");
    let now = Timestamp::from(inputs.now).to_rfc3339_micros();
    let empty = Vec::new();
    let history = |name: &str| inputs.observed.containers.get(name).unwrap_or(&empty);
    let statuses =
        |list: &[Container], decisions: &HashMap<String, Decision>| -> Vec<v1::ContainerStatus> {
            list.iter()
                .map(|c| {
                    let d = decisions.get(&c.name).cloned().unwrap_or(Decision::NotYet);
                    container_status(c, history(&c.name), &d, inputs, pod_name)
                })
                .collect()
        };
    let init_statuses = statuses(&spec.init_containers, &inputs.plan.init);
    let app_statuses = statuses(&spec.containers, &inputs.plan.app);
    let all_ready = !app_statuses.is_empty() && app_statuses.iter().all(|c| c.ready);
    let finished = is_terminal(inputs.plan.phase);
    let condition = |kind: &str, ok: bool, reason: &str| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .conditions
            .iter()
            .find(|c| c.r#type == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            r#type: kind.to_owned(),
            status: status.to_owned(),
            last_transition_time: Some(since),
            reason: if ok { String::new() } else { reason.to_owned() },
            ..Condition::default()
        }
    };
    let not_ready_reason = if finished {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let conditions = vec![
        condition("PodScheduled", true, ""),
        condition(
            "Initialized",
            inputs.plan.initialized,
            if finished {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            },
        ),
        condition("ContainersReady", all_ready && !finished, not_ready_reason),
        condition("Ready", all_ready && !finished, not_ready_reason),
    ];
    let pod_ip = inputs
        .observed
        .sandbox
        .as_ref()
        .and_then(|s| s.ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or(previous.pod_ip.clone());
    PodStatus {
        phase: inputs.plan.phase.to_owned(),
        conditions,
        message: String::new(),
        reason: String::new(),
        host_ip: inputs.host_ip.to_owned(),
        pod_ips: if pod_ip.is_empty() {
            Vec::new()
        } else {
            vec![PodIp { ip: pod_ip.clone() }]
        },
        pod_ip,
        start_time: previous.start_time.clone().or(Some(now)),
        init_container_statuses: init_statuses,
        container_statuses: app_statuses,
        qos_class: previous.qos_class.clone(),
        nominated_node_name: previous.nominated_node_name.clone(),
    }
}

#[cfg(test)]
#[path = "pod_sync_test.rs"]
mod tests;
