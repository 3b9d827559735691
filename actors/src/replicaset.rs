//! The ReplicaSet controller: keeps `spec.replicas` pods that match the selector and are
//! controlled by the ReplicaSet, and reports how many exist, are ready and are available.
//!
//! ```text
//!  pods matching selector ─┬─ controlled by us ───────────────┐
//!                          ├─ no controller → adopt (Update) ─┤ active (not finished,
//!                          └─ someone else's → ignore          │ not being deleted)
//!  controlled, no longer matching → release (Update)           ▼
//!                                         too few → Create from the template
//!                                         too many → Delete: unscheduled, Pending,
//!                                                    not ready, restarts, newest first
//!                                         status: replicas / fullyLabeled / ready /
//!                                                 available (minReadySeconds)
//! ```
//!
//! Owns the replica count of one ReplicaSet. It must not look at Deployments (the
//! deployment controller scales ReplicaSets through `spec.replicas`) nor wait on its own
//! writes: the actor must not reconcile a key again before the cache shows the writes of
//! the previous reconcile (Kubernetes' "expectations"), or it would create twice.

use std::cmp::Reverse;
use std::time::Duration;

use rafter_proto::v1::{self, ObjectMeta, ReplicaSetStatus};
use rafter_proto::{Kind, Object, Selector};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::claim::claim;
use crate::pods::{
    self, available_in, controller_owner_reference, is_active, is_ready, name_suffix, node_name,
    phase, seed_with,
};
use rafter_proto::Timestamp;

/// The component named in the events this controller records.
pub const COMPONENT: &str = "replicaset-controller";

/// The most pods created or deleted in one reconcile, as Kubernetes' burstReplicas.
pub const BURST_REPLICAS: usize = 500;

/// Reconciles one ReplicaSet. `seed` names the pods it creates.
pub fn reconcile(cache: &Cache, key: &ObjectKey, now: Timestamp, seed: u64) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::ReplicaSet(rs) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let spec = rs.spec.clone().unwrap_or_default();
    let meta = object.metadata();
    let selector = match Selector::from_optional_label_selector(spec.selector.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            let mut out = Reconciled::nothing();
            out.actions.push(Action::RecordEvent(EventRecord::about(
                object,
                EventType::Warning,
                "InvalidSelector",
                format!("invalid selector: {e}"),
                COMPONENT,
            )));
            return out;
        }
    };
    let mut out = Reconciled::nothing();
    let owned = claim(cache, object, Kind::Pod, &selector, &mut out.actions);
    let active: Vec<&v1::Pod> = owned
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) if is_active(p) => Some(p),
            _ => None,
        })
        .collect();

    let status = compute_status(rs, &active, spec.min_ready_seconds, now, &mut out);

    if meta.deletion_timestamp.is_none() {
        let want = usize::try_from(spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if active.len() < want {
            let count = (want - active.len()).min(BURST_REPLICAS);
            create_pods(cache, object, &spec, count, seed, &mut out.actions);
        } else if active.len() > want {
            let count = (active.len() - want).min(BURST_REPLICAS);
            for pod in pods_to_delete(active.clone(), count) {
                let pod_object = Object::Pod(pod.clone());
                out.actions.push(Action::delete_of(&pod_object));
                out.actions.push(Action::RecordEvent(EventRecord::about(
                    object,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pods::meta(pod).name),
                    COMPONENT,
                )));
            }
        }
    }

    if rs.status.as_ref() != Some(&status) {
        let mut updated = rs.clone();
        updated.status = Some(status);
        out.actions
            .push(Action::UpdateStatus(Object::ReplicaSet(updated)));
    }
    out
}

fn compute_status(
    rs: &v1::ReplicaSet,
    active: &[&v1::Pod],
    min_ready_seconds: i32,
    now: Timestamp,
    out: &mut Reconciled,
) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .map(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    status.replicas = count(active.len());
    status.fully_labeled_replicas = count(
        active
            .iter()
            .filter(|p| {
                let labels = &pods::meta(p).labels;
                template_labels
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .count(),
    );
    status.ready_replicas = count(active.iter().filter(|p| is_ready(p)).count());
    let mut available = 0;
    for pod in active {
        match available_in(pod, min_ready_seconds, now) {
            Some(Duration::ZERO) => available += 1,
            Some(later) => out.requeue_within(later),
            None => {}
        }
    }
    status.available_replicas = count(available);
    status.observed_generation = rs.metadata.as_ref().map_or(0, |m| m.generation);
    status
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn create_pods(
    cache: &Cache,
    owner: &Object,
    spec: &v1::ReplicaSetSpec,
    count: usize,
    seed: u64,
    actions: &mut Vec<Action>,
) {
    let meta = owner.metadata();
    let template = spec.template.clone().unwrap_or_default();
    let mut stream = seed_with(seed, &meta.uid);
    let mut taken = std::collections::HashSet::new();
    for _ in 0..count {
        let name = loop {
            stream = stream.wrapping_add(1);
            let candidate = format!("{}-{}", meta.name, name_suffix(stream));
            if cache.pod(&meta.namespace, &candidate).is_none() && taken.insert(candidate.clone()) {
                break candidate;
            }
        };
        let pod = pod_from_template(owner, &template, name.clone());
        actions.push(Action::Create(Object::Pod(pod)));
        actions.push(Action::RecordEvent(EventRecord::about(
            owner,
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {name}"),
            COMPONENT,
        )));
    }
}

/// A pod built from `template`, named `name`, controlled by `owner`.
pub(crate) fn pod_from_template(
    owner: &Object,
    template: &v1::PodTemplateSpec,
    name: String,
) -> v1::Pod {
    let meta = owner.metadata();
    let tmeta = template.metadata.clone().unwrap_or_default();
    v1::Pod {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        metadata: Some(ObjectMeta {
            name,
            generate_name: format!("{}-", meta.name),
            namespace: meta.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            owner_references: vec![controller_owner_reference(owner)],
            finalizers: tmeta.finalizers,
            ..Default::default()
        }),
        spec: template.spec.as_deref().cloned(),
        status: None,
    }
}

/// The `count` pods to delete first: unscheduled before scheduled, Pending before Unknown
/// before Running, not ready before ready, more restarts first, newest first.
fn pods_to_delete(mut candidates: Vec<&v1::Pod>, count: usize) -> Vec<&v1::Pod> {
    candidates.sort_by_key(|p| {
        let phase_rank = match phase(p) {
            "Pending" | "" => 0,
            "Unknown" => 1,
            _ => 2,
        };
        let restarts: i32 = p.status.as_ref().map_or(0, |s| {
            s.container_statuses.iter().map(|c| c.restart_count).sum()
        });
        let m = pods::meta(p);
        (
            !node_name(p).is_empty(),
            phase_rank,
            is_ready(p),
            Reverse(restarts),
            Reverse(Timestamp::parse_opt(m.creation_timestamp.as_ref())),
            m.name.clone(),
        )
    });
    candidates.truncate(count);
    candidates
}

#[cfg(test)]
#[path = "replicaset_test.rs"]
mod tests;
