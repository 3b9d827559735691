//! Node lifecycle: notices nodes whose agent stopped renewing its Lease, taints them, and
//! evicts pods from nodes with NoExecute taints once their tolerations run out.
//!
//! ```text
//!  Lease kube-node-lease/<node>.renewTime (or the Ready heartbeat) not seen to change for
//!  the grace period (40 s) ─► conditions Ready/…Pressure = Unknown (NodeStatusUnknown),
//!                   pods on the node marked not Ready, NodeNotReady event
//!  taints follow:   stale lease      → node.kubernetes.io/unreachable:NoExecute
//!                   Ready=False      → node.kubernetes.io/not-ready:NoExecute
//!                   fresh and not False → neither (a returning node is cleaned)
//!  NoExecute taints (these or a user's) ─► each pod on the node: untolerated → Evict now;
//!     tolerated for tolerationSeconds → Evict at timeAdded + seconds (requeue until then);
//!     no toleration for not-ready/unreachable → the default 300 s Kubernetes' admission
//!     adds; TaintManagerEviction event
//! ```
//!
//! A lease is judged by when this controller saw it change ([`NodeHealth`], Kubernetes'
//! probe timestamps), never by comparing the agent's renewTime with the controller's
//! clock: an agent whose clock is a minute off renews as well as any other. A controller
//! that starts leading gives every node a full grace period from its first look, and
//! keeps an unreachable node's taint until it sees the agent renew.
//!
//! Owns node health conditions written by the control plane, the two lifecycle taints and
//! taint-based eviction. It must not delete nodes or pods directly (eviction goes through
//! the eviction subresource) and must not read the clock: `now` is the leader's time from
//! the log entry, so a new leader judges leases exactly as the old one would.
//! Not done yet: Kubernetes' zone-aware eviction rate limits and "full disruption" mode.

use std::time::Duration;

use rafter_proto::v1::{self, Condition, Taint, Toleration};
use rafter_proto::{Kind, Object};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::placement::{tolerates, NO_EXECUTE};
use crate::pods::{self, condition, is_terminal, is_terminating};
use rafter_proto::Timestamp;

/// The component named in the events this controller records.
pub const COMPONENT: &str = "node-controller";
/// Where node agents keep their Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The taint of a node whose agent is not heard from.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose agent reports Ready=False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

const AGENT_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Timings of node lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How old a Lease may get before the node is Unknown (`--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// tolerationSeconds for not-ready/unreachable when a pod has no toleration of its own
    /// (the pod eviction timeout).
    pub default_toleration_seconds: i64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(40),
            default_toleration_seconds: 300,
        }
    }
}

/// The agent's own record of its last renewal: its Lease's renewTime and its Ready
/// heartbeat, as it wrote them. Compared only with itself (changed or not), never with a
/// clock here.
type Renewal = (Option<String>, Option<String>);

/// What the controller saw of one node's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    renewal: Renewal,
    /// When, by the controller's clock, it saw `renewal` first.
    at: Timestamp,
    /// Whether it has seen the agent renew since it first looked.
    renewed: bool,
}

/// When the controller last saw each node's agent renew, by its own clock (Kubernetes'
/// node health probe timestamps). Held by the controller across reconciles and forgotten
/// when leadership changes.
#[derive(Debug, Clone, Default)]
pub struct NodeHealth {
    nodes: std::collections::HashMap<String, Observed>,
}

/// The verdict of one look at a node's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// When it was last heard from, by the controller's clock.
    pub at: Timestamp,
    /// Whether it has renewed since the controller first looked.
    pub renewed: bool,
}

impl NodeHealth {
    /// Looks at `node`'s agent at `now`: a renewal not seen before counts as heard now.
    pub fn observe(&mut self, cache: &Cache, node: &v1::Node, now: Timestamp) -> Heard {
        let name = node.metadata.as_ref().map_or("", |m| m.name.as_str());
        let renewal = renewal(cache, node);
        let seen = self
            .nodes
            .entry(name.to_owned())
            .or_insert_with(|| Observed {
                renewal: renewal.clone(),
                at: now,
                renewed: false,
            });
        if seen.renewal != renewal {
            *seen = Observed {
                renewal,
                at: now,
                renewed: true,
            };
        }
        Heard {
            at: seen.at,
            renewed: seen.renewed,
        }
    }

    /// Forgets a node that is gone.
    pub fn forget(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Forgets every node (leadership changed: a new term looks afresh).
    pub fn clear(&mut self) {
        self.nodes.clear();
    }
}

/// The agent's last renewal of `node` as it recorded it.
fn renewal(cache: &Cache, node: &v1::Node) -> Renewal {
    let name = node.metadata.as_ref().map_or("", |m| m.name.as_str());
    let lease = match cache
        .get(&ObjectKey::new(Kind::Lease, LEASE_NAMESPACE, name))
        .map(|o| o.as_ref())
    {
        Some(Object::Lease(l)) => l.spec.as_ref().and_then(|s| s.renew_time.clone()),
        _ => None,
    };
    let heartbeat = node
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Ready"))
        .and_then(|c| c.last_heartbeat_time.clone());
    (lease, heartbeat)
}

/// Reconciles one node at `now`, the controller's own clock, with what it has seen of the
/// node's agent so far.
pub fn reconcile(
    cache: &Cache,
    key: &ObjectKey,
    now: Timestamp,
    config: &NodeLifecycleConfig,
    health: &mut NodeHealth,
) -> Reconciled {
    let Some(node) = cache.node(&key.name) else {
        health.forget(&key.name);
        return Reconciled::nothing();
    };
    let node_object = Object::Node(node.clone());
    let name = key.name.as_str();
    let mut out = Reconciled::nothing();
    let heard = health.observe(cache, node, now);
    let silent_for = now.since(heard.at);
    let stale = silent_for > config.grace_period;
    if !stale {
        out.requeue_within(config.grace_period - silent_for + Duration::from_secs(1));
    }

    // Conditions.
    let mut status = node.status.clone().unwrap_or_default();
    let was_ready = ready_status(&status.conditions) == "True";
    let mut status_changed = false;
    if stale {
        if condition(&status.conditions, "Ready").is_none() {
            status.conditions.push(Condition {
                r#type: "Ready".to_owned(),
                status: "Unknown".to_owned(),
                reason: "NodeStatusNeverUpdated".to_owned(),
                message: "Kubelet never posted node status.".to_owned(),
                last_transition_time: Some(now.to_rfc3339()),
                ..Default::default()
            });
            status_changed = true;
        }
        for c in status.conditions.iter_mut() {
            if AGENT_CONDITIONS.contains(&c.r#type.as_str()) && c.status != "Unknown" {
                c.status = "Unknown".to_owned();
                c.reason = "NodeStatusUnknown".to_owned();
                c.message = "Kubelet stopped posting node status.".to_owned();
                c.last_transition_time = Some(now.to_rfc3339());
                status_changed = true;
            }
        }
    }
    let ready = ready_status(&status.conditions).to_owned();

    // Taints.
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .map(|s| s.taints.clone())
        .unwrap_or_default();
    // Tainted unreachable before this controller looked, and not heard from since: the
    // verdict stands until the agent renews or the grace period ends.
    let still_unreachable = !heard.renewed
        && taints
            .iter()
            .any(|t| t.key == UNREACHABLE_TAINT && t.effect == NO_EXECUTE);
    let wanted: Option<&str> = if stale || still_unreachable {
        Some(UNREACHABLE_TAINT)
    } else if ready == "False" {
        Some(NOT_READY_TAINT)
    } else {
        None
    };
    let before = taints.clone();
    taints.retain(|t| {
        let lifecycle =
            (t.key == UNREACHABLE_TAINT || t.key == NOT_READY_TAINT) && t.effect == NO_EXECUTE;
        !lifecycle || Some(t.key.as_str()) == wanted
    });
    if let Some(key) = wanted {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == NO_EXECUTE)
        {
            taints.push(Taint {
                key: key.to_owned(),
                value: String::new(),
                effect: NO_EXECUTE.to_owned(),
                time_added: Some(now.to_rfc3339()),
            });
        }
    }
    let newly_unhealthy = wanted.is_some()
        && !before
            .iter()
            .any(|t| Some(t.key.as_str()) == wanted && t.effect == NO_EXECUTE);
    if taints != before {
        let mut updated = node.clone();
        updated.spec.get_or_insert_with(Default::default).taints = taints.clone();
        out.actions.push(Action::Update(Object::Node(updated)));
    }
    if status_changed {
        let mut updated = node.clone();
        updated.status = Some(status);
        out.actions
            .push(Action::UpdateStatus(Object::Node(updated)));
    }
    if newly_unhealthy || (was_ready && ready != "True") {
        out.actions
            .push(node_event(&node_object, "NodeNotReady", name));
        if stale {
            mark_pods_not_ready(cache, name, now, &mut out.actions);
        }
    } else if wanted.is_none() && before != taints && ready == "True" {
        out.actions
            .push(node_event(&node_object, "NodeReady", name));
    }

    // Taint-based eviction.
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    if no_execute.is_empty() {
        return out;
    }
    for pod in cache.pods_on_node(name) {
        if is_terminal(pod) || is_terminating(pod) {
            continue;
        }
        match eviction_time(pod, &no_execute, now, config) {
            Some(at) if at <= now => {
                let meta = pods::meta(pod);
                out.actions.push(Action::Evict {
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    uid: meta.uid.clone(),
                    grace_period_seconds: None,
                });
                out.actions.push(Action::RecordEvent(EventRecord {
                    involved: ObjectKey::new(Kind::Pod, meta.namespace.clone(), meta.name.clone()),
                    involved_uid: meta.uid.clone(),
                    event_type: EventType::Normal,
                    reason: "TaintManagerEviction".to_owned(),
                    message: format!("Marking for deletion Pod {}/{}", meta.namespace, meta.name),
                    component: COMPONENT,
                }));
            }
            Some(at) => out.requeue_within(at.since(now)),
            None => {}
        }
    }
    out
}

fn ready_status(conditions: &[Condition]) -> &str {
    condition(conditions, "Ready").map_or("Unknown", |c| c.status.as_str())
}

fn node_event(node: &Object, reason: &str, name: &str) -> Action {
    Action::RecordEvent(EventRecord::about(
        node,
        EventType::Normal,
        reason,
        format!("Node {name} status is now: {reason}"),
        COMPONENT,
    ))
}

/// Sets Ready=False on the pods of a node that went silent, so Services and workload
/// controllers stop counting them.
fn mark_pods_not_ready(cache: &Cache, node: &str, now: Timestamp, actions: &mut Vec<Action>) {
    for pod in cache.pods_on_node(node) {
        if is_terminal(pod) || !pods::is_ready(pod) {
            continue;
        }
        let mut updated = pod.clone();
        let status = updated.status.get_or_insert_with(Default::default);
        for c in status.conditions.iter_mut().filter(|c| c.r#type == "Ready") {
            c.status = "False".to_owned();
            c.reason = "NodeUnreachable".to_owned();
            c.last_transition_time = Some(now.to_rfc3339());
        }
        actions.push(Action::UpdateStatus(Object::Pod(updated)));
    }
}

/// The pod's tolerations with Kubernetes' default ones for not-ready and unreachable when
/// it has none of its own for them.
fn effective_tolerations(pod: &v1::Pod, default_seconds: i64) -> Vec<Toleration> {
    let mut tolerations = pod
        .spec
        .as_ref()
        .map(|s| s.tolerations.clone())
        .unwrap_or_default();
    for key in [NOT_READY_TAINT, UNREACHABLE_TAINT] {
        let probe = Taint {
            key: key.to_owned(),
            effect: NO_EXECUTE.to_owned(),
            ..Default::default()
        };
        if !tolerations.iter().any(|t| tolerates(t, &probe)) {
            tolerations.push(Toleration {
                key: key.to_owned(),
                operator: "Exists".to_owned(),
                value: String::new(),
                effect: NO_EXECUTE.to_owned(),
                toleration_seconds: Some(default_seconds),
            });
        }
    }
    tolerations
}

/// When the pod must leave a node with these NoExecute taints: `now` when one is not
/// tolerated, the earliest end of a bounded toleration otherwise, `None` when every taint
/// is tolerated forever.
fn eviction_time(
    pod: &v1::Pod,
    taints: &[&Taint],
    now: Timestamp,
    config: &NodeLifecycleConfig,
) -> Option<Timestamp> {
    let tolerations = effective_tolerations(pod, config.default_toleration_seconds);
    let mut earliest: Option<Timestamp> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(now);
        }
        let bounded = matching.iter().filter_map(|t| t.toleration_seconds).min();
        if let Some(seconds) = bounded {
            let added = Timestamp::parse_opt(taint.time_added.as_ref()).unwrap_or(now);
            let at = added.plus_seconds(seconds.max(0));
            earliest = Some(earliest.map_or(at, |e| e.min(at)));
        }
    }
    earliest
}

#[cfg(test)]
#[path = "node_lifecycle_test.rs"]
mod tests;
