//! The DaemonSet controller: one pod per eligible node.
//!
//! ```text
//!  for each node:  eligible = nodeSelector + required affinity match
//!                             and every NoSchedule/NoExecute taint tolerated
//!                  keep     = no untolerated NoExecute taint (a NoSchedule taint added
//!                             later does not evict a running daemon pod)
//!     eligible, no pod        → Create, bound to the node (spec.nodeName)
//!     several pods            → Delete all but the oldest
//!     failed pod              → Delete (recreated on the next reconcile)
//!     not keep / node gone    → Delete
//!  RollingUpdate: pods of an older template (label controller-revision-hash) are deleted,
//!     unavailable ones first, while at most maxUnavailable daemon pods are unavailable
//! ```
//!
//! Placement: created pods carry `spec.nodeName` and skip the scheduler, as the DaemonSet
//! controller did before Kubernetes 1.12. (Modern Kubernetes sets a node affinity on
//! `metadata.name` and lets the scheduler bind; doing it here saves a round trip and keeps
//! daemon pods off the scheduler's queue. The price: a daemon pod does not wait for room on
//! its node; requests are still counted by the scheduler for other pods.)
//!
//! Daemon pods get the tolerations Kubernetes adds automatically, so they run on nodes
//! that are not ready, unreachable, under pressure or cordoned, and are never evicted by
//! node lifecycle for being not-ready or unreachable.
//!
//! Owns the daemon pods of one DaemonSet. It must not schedule other pods or look at
//! resources.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rafter_proto::v1::{self, DaemonSetStatus, PodSpec, PodTemplateSpec, Toleration};
use rafter_proto::{IntOrString, Kind, Object, Selector};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::claim::claim;
use crate::deployment::pod_template_hash;
use crate::placement::{
    first_untolerated, matches_node_selector_and_affinity, node_parts, NO_EXECUTE, NO_SCHEDULE,
};
use crate::pods::{self, available_in, is_ready, name_suffix, phase, seed_with};
use crate::replicaset::pod_from_template;
use rafter_proto::Timestamp;

/// The component named in the events this controller records.
pub const COMPONENT: &str = "daemonset-controller";

/// The label carrying the hash of the template a daemon pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The tolerations every daemon pod gets: (key, effect).
const AUTOMATIC_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
];

/// A pod spec with the automatic daemon tolerations added (those already present are
/// kept as written).
pub fn with_daemon_tolerations(spec: &PodSpec) -> PodSpec {
    let mut spec = spec.clone();
    let mut wanted: Vec<(&str, &str)> = AUTOMATIC_TOLERATIONS.to_vec();
    if spec.host_network {
        wanted.push(("node.kubernetes.io/network-unavailable", NO_SCHEDULE));
    }
    for (key, effect) in wanted {
        if !spec
            .tolerations
            .iter()
            .any(|t| t.key == key && t.effect == effect)
        {
            spec.tolerations.push(Toleration {
                key: key.to_owned(),
                operator: "Exists".to_owned(),
                value: String::new(),
                effect: effect.to_owned(),
                toleration_seconds: None,
            });
        }
    }
    spec
}

/// Whether a daemon pod with `spec` should be created on `node`, and whether one already
/// there may keep running.
pub fn node_should_run(node: &v1::Node, spec: &PodSpec) -> (bool, bool) {
    let (labels, name, taints) = node_parts(node);
    if !matches_node_selector_and_affinity(spec, labels, name) {
        return (false, false);
    }
    let run = first_untolerated(taints, &spec.tolerations, &[NO_SCHEDULE, NO_EXECUTE]).is_none();
    let keep = first_untolerated(taints, &spec.tolerations, &[NO_EXECUTE]).is_none();
    (run, keep)
}

/// Reconciles one DaemonSet. `seed` names the pods it creates.
pub fn reconcile(cache: &Cache, key: &ObjectKey, now: Timestamp, seed: u64) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::DaemonSet(ds) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let spec = ds.spec.clone().unwrap_or_default();
    let mut out = Reconciled::nothing();
    let selector = match Selector::from_optional_label_selector(spec.selector.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            out.actions.push(event(
                object,
                EventType::Warning,
                "InvalidSelector",
                format!("invalid selector: {e}"),
            ));
            return out;
        }
    };
    let deleting = object.metadata().deletion_timestamp.is_some();
    let written = spec.template.clone().unwrap_or_default();
    let hash = pod_template_hash(&written, None);
    let template = PodTemplateSpec {
        metadata: written.metadata.clone(),
        spec: Some(Box::new(with_daemon_tolerations(
            &written.spec.as_deref().cloned().unwrap_or_default(),
        ))),
    };
    let pod_spec = template.spec.clone().unwrap_or_default();

    let mut by_node: BTreeMap<String, Vec<&v1::Pod>> = BTreeMap::new();
    for o in claim(cache, object, Kind::Pod, &selector, &mut out.actions) {
        if let Object::Pod(p) = o {
            by_node
                .entry(pods::node_name(p).to_owned())
                .or_default()
                .push(p);
        }
    }

    let mut status = DaemonSetStatus {
        observed_generation: object.metadata().generation,
        conditions: ds
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut names = NameStream::new(cache, object, seed);
    let mut to_delete: Vec<&v1::Pod> = Vec::new();
    // Daemon pods (one per node that should run one) that are of an older template.
    let mut outdated: Vec<(&v1::Pod, bool)> = Vec::new();
    let mut unavailable = 0;
    for node in cache.nodes() {
        let name = node.metadata.as_ref().map_or("", |m| m.name.as_str());
        let (run, keep) = node_should_run(node, &pod_spec);
        let mut here = by_node.remove(name).unwrap_or_default();
        here.sort_by_key(|p| {
            let m = pods::meta(p);
            (
                Timestamp::parse_opt(m.creation_timestamp.as_ref()),
                m.name.clone(),
            )
        });
        let (failed, alive): (Vec<&v1::Pod>, Vec<&v1::Pod>) = here
            .iter()
            .partition(|p| phase(p) == "Failed" && !pods::is_terminating(p));
        to_delete.extend(failed.iter().copied());
        let active: Vec<&v1::Pod> = alive
            .iter()
            .copied()
            .filter(|p| !pods::is_terminating(p))
            .collect();
        if run {
            status.desired_number_scheduled += 1;
        }
        if !keep {
            to_delete.extend(active.iter().copied());
            if !active.is_empty() && !run {
                status.number_misscheduled += 1;
            }
            continue;
        }
        if !run && !active.is_empty() {
            status.number_misscheduled += 1;
        }
        if run && here.is_empty() && !deleting {
            let pod_name = names.next();
            let mut pod = pod_from_template(object, &template, pod_name.clone());
            let meta = pod.metadata.get_or_insert_with(Default::default);
            meta.labels
                .insert(REVISION_HASH_LABEL.to_owned(), hash.clone());
            pod.spec.get_or_insert_with(Default::default).node_name = name.to_owned();
            out.actions.push(Action::Create(Object::Pod(pod)));
            out.actions.push(event(
                object,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {pod_name}"),
            ));
            unavailable += 1;
            continue;
        }
        let Some((&oldest, extra)) = active.split_first() else {
            if run {
                unavailable += 1;
            }
            continue;
        };
        to_delete.extend(extra.iter().copied());
        if !run {
            continue;
        }
        status.current_number_scheduled += 1;
        if is_ready(oldest) {
            status.number_ready += 1;
        }
        let available = match available_in(oldest, spec.min_ready_seconds, now) {
            Some(Duration::ZERO) => true,
            Some(later) => {
                out.requeue_within(later);
                false
            }
            None => false,
        };
        if available {
            status.number_available += 1;
        } else {
            unavailable += 1;
        }
        if pods::meta(oldest).labels.get(REVISION_HASH_LABEL) == Some(&hash) {
            status.updated_number_scheduled += 1;
        } else {
            outdated.push((oldest, available));
        }
    }
    // Pods on nodes that are gone.
    for pods_left in by_node.into_values() {
        to_delete.extend(pods_left.into_iter().filter(|p| !pods::is_terminating(p)));
    }
    status.number_unavailable = status.desired_number_scheduled - status.number_available;

    if !deleting && is_rolling(&spec) {
        let max_unavailable = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or(IntOrString::Int(1))
            .scaled_value(status.desired_number_scheduled, true)
            .unwrap_or(1)
            .max(1);
        // Outdated pods that are unavailable anyway go first; they cost nothing.
        outdated.sort_by_key(|(_, available)| *available);
        let mut budget = max_unavailable - unavailable;
        for (pod, available) in outdated {
            if !available {
                to_delete.push(pod);
            } else if budget > 0 {
                to_delete.push(pod);
                budget -= 1;
            }
        }
    }

    if deleting {
        // Its pods are the garbage collector's now: deleted, or orphaned and kept.
        to_delete.clear();
    }
    let mut seen = HashSet::new();
    for pod in to_delete {
        let m = pods::meta(pod);
        if !seen.insert(m.name.clone()) {
            continue;
        }
        out.actions
            .push(Action::delete_of(&Object::Pod(pod.clone())));
        out.actions.push(event(
            object,
            EventType::Normal,
            "SuccessfulDelete",
            format!("Deleted pod: {}", m.name),
        ));
    }
    if ds.status.as_ref() != Some(&status) {
        let mut updated = ds.clone();
        updated.status = Some(status);
        out.actions
            .push(Action::UpdateStatus(Object::DaemonSet(updated)));
    }
    out
}

fn is_rolling(spec: &v1::DaemonSetSpec) -> bool {
    spec.update_strategy
        .as_ref()
        .is_none_or(|s| s.r#type != "OnDelete")
}

fn event(object: &Object, event_type: EventType, reason: &str, message: String) -> Action {
    Action::RecordEvent(EventRecord::about(
        object, event_type, reason, message, COMPONENT,
    ))
}

/// Fresh pod names `<daemonset>-<suffix>` no pod in the namespace has.
struct NameStream<'a> {
    cache: &'a Cache,
    prefix: String,
    namespace: String,
    stream: u64,
    taken: HashSet<String>,
}

impl<'a> NameStream<'a> {
    fn new(cache: &'a Cache, owner: &Object, seed: u64) -> NameStream<'a> {
        let meta = owner.metadata();
        NameStream {
            cache,
            prefix: meta.name.clone(),
            namespace: meta.namespace.clone(),
            stream: seed_with(seed, &meta.uid),
            taken: HashSet::new(),
        }
    }

    fn next(&mut self) -> String {
        loop {
            self.stream = self.stream.wrapping_add(1);
            let candidate = format!("{}-{}", self.prefix, name_suffix(self.stream));
            if self.cache.pod(&self.namespace, &candidate).is_none()
                && self.taken.insert(candidate.clone())
            {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
#[path = "daemonset_test.rs"]
mod tests;
