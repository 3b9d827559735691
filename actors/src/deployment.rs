//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets,
//! one per template (named `<deployment>-<pod-template-hash>`), and reports progress.
//!
//! ```text
//!  owned ReplicaSets (adopt/release by selector), oldest first
//!     │  new RS = the one whose template equals spec.template (ignoring the hash label)
//!     ▼
//!  deleting ─► status only
//!  paused or replicas changed (desired-replicas annotation differs) ─► proportional scale
//!  Recreate ─► old RSes to 0 ─► wait for their pods to be gone ─► new RS to replicas
//!  RollingUpdate:
//!     new RS up to min(replicas, replicas + maxSurge − Σ spec.replicas)   (then stop)
//!     old RSes down by Σ spec.replicas − (replicas − maxUnavailable) − new RS unavailable,
//!        unhealthy old replicas first, then oldest RS first, never below
//!        replicas − maxUnavailable available                               (then stop)
//!     complete ─► delete old empty RSes beyond revisionHistoryLimit
//!  status: replicas/updated/ready/available/unavailable, conditions Available
//!          (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated,
//!          FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
//!          ProgressDeadlineExceeded, DeploymentPaused/Resumed)
//! ```
//!
//! Each reconcile takes one step (scale up, or scale down, or clean up) and returns; the
//! actor reconciles again when the ReplicaSets' writes or status changes show up in the
//! cache, so the rollout advances as pods become available.
//!
//! Owns ReplicaSets of a Deployment (their `spec.replicas`, revision annotations, creation
//! and history cleanup). It must not touch pods: the ReplicaSet controller does. Rollback
//! is [`rollback_template`] ([`rollback_target`] also names the revision): the caller (CLI `rollout undo`) puts the returned template
//! back into the Deployment, and the rollout proceeds as for any template change.
//!
//! The actor applies an `UpdateStatus` of the Deployment on top of the latest object (the
//! status subresource), since the same reconcile may first `Update` its annotations.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use rafter_proto::v1::{
    self, Condition, DeploymentStatus, LabelSelector, ObjectMeta, PodTemplateSpec,
};
use rafter_proto::{IntOrString, Kind, Object, Selector};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::claim::claim;
use crate::pods::{condition, controller_owner_reference, is_terminal};
use rafter_proto::Timestamp;

/// The component named in the events this controller records.
pub const COMPONENT: &str = "deployment-controller";
/// The revision of a ReplicaSet (and of the Deployment: its newest).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The label telling ReplicaSets (and their pods) of one Deployment apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

const HASH_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-1a (32 bit) over the template's protobuf
/// encoding without the hash label, then the collision count, rendered as Kubernetes does
/// (each decimal digit of the hash mapped into a vowel-free alphabet, so "5d59d67564").
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = without_hash(template).encode_to_vec();
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    for b in bytes {
        feed(b);
    }
    if let Some(count) = collision_count {
        for b in count.to_le_bytes() {
            feed(b);
        }
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(HASH_ALPHABET[usize::from(b) % HASH_ALPHABET.len()]))
        .collect()
}

/// The template without the hash label, and with `resources: {}` written as no resources
/// at all: JSON clients (kubectl's `rollout undo` among them) drop an empty object, so
/// the two spellings must be the same template.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(m) = t.metadata.as_mut() {
        m.labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    if let Some(spec) = t.spec.as_mut() {
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut())
        {
            if container
                .resources
                .as_ref()
                .is_some_and(|r| r.requests.is_empty() && r.limits.is_empty())
            {
                container.resources = None;
            }
        }
    }
    t
}

/// Whether two templates are the same once the hash label is ignored.
fn same_template(a: Option<&PodTemplateSpec>, b: Option<&PodTemplateSpec>) -> bool {
    let norm = |t: Option<&PodTemplateSpec>| {
        let mut t = without_hash(&t.cloned().unwrap_or_default());
        if t.metadata.as_ref() == Some(&ObjectMeta::default()) {
            t.metadata = None;
        }
        t
    };
    norm(a) == norm(b)
}

fn revision_of(meta: Option<&ObjectMeta>) -> i64 {
    meta.and_then(|m| m.annotations.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Why a rollback cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// There is no revision before the current one.
    #[error("no rollout history found for deployment {0:?}")]
    NoHistory(String),
    /// No ReplicaSet of the Deployment carries the asked revision.
    #[error("unable to find the specified revision {0}")]
    RevisionNotFound(i64),
}

/// The template `rollout undo --to-revision` puts back: the template of the ReplicaSet
/// with revision `to_revision`, or with the revision before the newest when it is 0.
/// `replica_sets` are the Deployment's ReplicaSets ([`owned_replica_sets`]).
pub fn rollback_template(
    deployment: &v1::Deployment,
    replica_sets: &[&v1::ReplicaSet],
    to_revision: i64,
) -> Result<PodTemplateSpec, RollbackError> {
    rollback_target(deployment, replica_sets, to_revision).map(|(_, template)| template)
}

/// [`rollback_template`] with the revision it chose: `to_revision`, or when it is 0 the
/// revision before the newest (ReplicaSets sharing a revision count once).
pub fn rollback_target(
    deployment: &v1::Deployment,
    replica_sets: &[&v1::ReplicaSet],
    to_revision: i64,
) -> Result<(i64, PodTemplateSpec), RollbackError> {
    let target = if to_revision > 0 {
        to_revision
    } else {
        let mut revisions: Vec<i64> = replica_sets
            .iter()
            .map(|rs| revision_of(rs.metadata.as_ref()))
            .filter(|r| *r > 0)
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        match revisions.len() {
            0 | 1 => {
                let name = deployment
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                return Err(RollbackError::NoHistory(name));
            }
            n => revisions[n - 2],
        }
    };
    replica_sets
        .iter()
        .find(|rs| revision_of(rs.metadata.as_ref()) == target)
        .and_then(|rs| rs.spec.as_ref()?.template.as_ref())
        .map(|template| (target, without_hash(template)))
        .ok_or(RollbackError::RevisionNotFound(target))
}

/// The ReplicaSets a Deployment controls, oldest first.
pub fn owned_replica_sets<'a>(cache: &'a Cache, deployment_uid: &str) -> Vec<&'a v1::ReplicaSet> {
    let mut out: Vec<&v1::ReplicaSet> = cache
        .controlled_by(deployment_uid)
        .filter_map(|o| match o.as_ref() {
            Object::ReplicaSet(rs) => Some(rs),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| by_age(a, b));
    out
}

fn by_age(a: &v1::ReplicaSet, b: &v1::ReplicaSet) -> Ordering {
    let key = |rs: &v1::ReplicaSet| {
        let m = rs.metadata.clone().unwrap_or_default();
        (
            m.creation_timestamp.is_none(),
            Timestamp::parse_opt(m.creation_timestamp.as_ref()),
            m.name,
        )
    };
    key(a).cmp(&key(b))
}

/// Reconciles one Deployment at `now`.
pub fn reconcile(cache: &Cache, key: &ObjectKey, now: Timestamp) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::Deployment(d) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let spec = d.spec.clone().unwrap_or_default();
    let warn = |reason: &str, message: String| {
        let mut out = Reconciled::nothing();
        out.actions.push(Action::RecordEvent(EventRecord::about(
            object,
            EventType::Warning,
            reason,
            message,
            COMPONENT,
        )));
        out
    };
    let selector = match Selector::from_optional_label_selector(spec.selector.as_ref()) {
        Ok(s) if s.is_empty() => {
            return warn(
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required."
                    .to_owned(),
            )
        }
        Ok(s) => s,
        Err(e) => return warn("InvalidSelector", format!("invalid selector: {e}")),
    };
    let mut out = Reconciled::nothing();
    let mut rses: Vec<Working> =
        claim(cache, object, Kind::ReplicaSet, &selector, &mut out.actions)
            .into_iter()
            .filter_map(|o| match o {
                Object::ReplicaSet(rs) => Some(Working {
                    rs: rs.clone(),
                    original: Some(rs.clone()),
                }),
                _ => None,
            })
            .collect();
    rses.sort_by(|a, b| by_age(&a.rs, &b.rs));
    let status = d.status.clone().unwrap_or_default();
    let mut rollout = Rollout {
        cache,
        object,
        d,
        spec,
        now,
        rses,
        out,
        revision: d
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.get(REVISION_ANNOTATION).cloned()),
        conditions: status.conditions.clone(),
        collision_count: status.collision_count,
        stop: false,
    };
    rollout.run();
    rollout.finish()
}

/// A ReplicaSet as this reconcile would leave it.
struct Working {
    rs: v1::ReplicaSet,
    /// As read from the cache; `None` for one this reconcile creates.
    original: Option<v1::ReplicaSet>,
}

impl Working {
    fn name(&self) -> &str {
        self.rs.metadata.as_ref().map_or("", |m| m.name.as_str())
    }
    fn replicas(&self) -> i32 {
        self.rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn status(&self) -> v1::ReplicaSetStatus {
        self.rs.status.clone().unwrap_or_default()
    }
    fn available(&self) -> i32 {
        self.rs.status.as_ref().map_or(0, |s| s.available_replicas)
    }
    fn annotation(&self, key: &str) -> Option<i32> {
        self.rs
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.get(key))
            .and_then(|v| v.parse().ok())
    }
    fn revision(&self) -> i64 {
        revision_of(self.rs.metadata.as_ref())
    }
    fn set_annotation(&mut self, key: &str, value: String) {
        self.rs
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .annotations
            .insert(key.to_owned(), value);
    }
}

struct Rollout<'a> {
    cache: &'a Cache,
    object: &'a Object,
    d: &'a v1::Deployment,
    spec: v1::DeploymentSpec,
    now: Timestamp,
    rses: Vec<Working>,
    out: Reconciled,
    revision: Option<String>,
    conditions: Vec<Condition>,
    collision_count: Option<i32>,
    /// Set when a hash collision stops this reconcile.
    stop: bool,
}

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";

impl Rollout<'_> {
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    fn is_rolling(&self) -> bool {
        self.spec
            .strategy
            .as_ref()
            .is_none_or(|s| s.r#type != "Recreate")
    }

    /// maxSurge (rounded up) and maxUnavailable (rounded down), never both zero.
    fn fenceposts(&self) -> (i32, i32) {
        let rolling = self
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.clone())
            .unwrap_or_default();
        let quarter = IntOrString::String("25%".to_owned());
        let resolve = |v: Option<IntOrString>, up: bool| {
            v.unwrap_or_else(|| quarter.clone())
                .scaled_value(self.replicas(), up)
                .unwrap_or(0)
                .max(0)
        };
        let surge = resolve(rolling.max_surge, true);
        let unavailable = resolve(rolling.max_unavailable, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }

    fn max_surge(&self) -> i32 {
        if self.is_rolling() {
            self.fenceposts().0
        } else {
            0
        }
    }

    fn max_unavailable(&self) -> i32 {
        if !self.is_rolling() || self.replicas() == 0 {
            0
        } else {
            self.fenceposts().1.min(self.replicas())
        }
    }

    fn event(&mut self, event_type: EventType, reason: &str, message: String) {
        self.out
            .actions
            .push(Action::RecordEvent(EventRecord::about(
                self.object,
                event_type,
                reason,
                message,
                COMPONENT,
            )));
    }

    fn run(&mut self) {
        let progressing_reason = condition(&self.conditions, PROGRESSING).map(|c| c.reason.clone());
        if self.spec.paused && progressing_reason.as_deref() != Some("DeploymentPaused") {
            self.set_condition(
                PROGRESSING,
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
            );
        } else if !self.spec.paused && progressing_reason.as_deref() == Some("DeploymentPaused") {
            self.set_condition(
                PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
            );
        }
        if self.object.metadata().deletion_timestamp.is_some() {
            self.sync_status(None);
            return;
        }
        if self.spec.paused || self.is_scaling_event() {
            let new = self.sync_revision(false);
            self.scale_proportionally(new);
            if self.spec.paused {
                self.cleanup(new);
            }
            self.sync_status(new);
            return;
        }
        if self.is_rolling() {
            self.rolling();
        } else {
            self.recreate();
        }
    }

    fn find_new(&self) -> Option<usize> {
        self.rses.iter().position(|w| {
            same_template(
                w.rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                self.spec.template.as_ref(),
            )
        })
    }

    fn is_scaling_event(&self) -> bool {
        let replicas = self.replicas();
        self.rses.iter().filter(|w| w.replicas() > 0).any(|w| {
            w.annotation(DESIRED_REPLICAS_ANNOTATION)
                .is_some_and(|d| d != replicas)
        })
    }

    /// Finds (or with `create`, creates) the new ReplicaSet and brings revisions up to
    /// date: the new one gets the highest revision, the Deployment carries it too.
    fn sync_revision(&mut self, create: bool) -> Option<usize> {
        let new = self.find_new();
        let max_old = self
            .rses
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new)
            .map(|(_, w)| w.revision())
            .max()
            .unwrap_or(0);
        let next = max_old + 1;
        if let Some(i) = new {
            if self.rses[i].revision() < next {
                self.rses[i].set_annotation(REVISION_ANNOTATION, next.to_string());
            }
            let min_ready = self.spec.min_ready_seconds;
            if let Some(s) = self.rses[i].rs.spec.as_mut() {
                s.min_ready_seconds = min_ready;
            }
            self.revision = Some(self.rses[i].revision().to_string());
            if condition(&self.conditions, PROGRESSING).is_none() {
                let msg = format!("Found new replica set {:?}", self.rses[i].name());
                self.set_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg);
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let template = self.spec.template.clone().unwrap_or_default();
        let hash = pod_template_hash(&template, self.collision_count);
        let meta = self.object.metadata();
        let name = format!("{}-{}", meta.name, hash);
        if self
            .cache
            .get(&ObjectKey::new(
                Kind::ReplicaSet,
                meta.namespace.clone(),
                name.clone(),
            ))
            .is_some()
        {
            // A ReplicaSet of that name exists but is not this template's: count the
            // collision so the next reconcile hashes differently.
            self.collision_count = Some(self.collision_count.unwrap_or(0) + 1);
            self.out.requeue_within(Duration::ZERO);
            self.stop = true;
            return None;
        }
        let mut template = template;
        let tmeta = template.metadata.get_or_insert_with(ObjectMeta::default);
        tmeta
            .labels
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        let labels = tmeta.labels.clone();
        let mut selector: LabelSelector = self.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash);
        let mut annotations = rafter_proto::StringMap::new();
        annotations.insert(REVISION_ANNOTATION.to_owned(), next.to_string());
        let rs = v1::ReplicaSet {
            api_version: "apps/v1".to_owned(),
            kind: "ReplicaSet".to_owned(),
            metadata: Some(ObjectMeta {
                name: name.clone(),
                namespace: meta.namespace.clone(),
                labels,
                annotations,
                owner_references: vec![controller_owner_reference(self.object)],
                ..Default::default()
            }),
            spec: Some(v1::ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector: Some(selector),
                template: Some(template),
            }),
            status: None,
        };
        self.rses.push(Working { rs, original: None });
        let i = self.rses.len() - 1;
        let replicas = self.new_rs_new_replicas(i);
        self.scale(i, replicas);
        self.revision = Some(next.to_string());
        self.set_condition(
            PROGRESSING,
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set {name:?}"),
        );
        Some(i)
    }

    /// What the new ReplicaSet should be scaled to now.
    fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let replicas = self.replicas();
        if !self.is_rolling() {
            return replicas;
        }
        let current: i32 = self.rses.iter().map(Working::replicas).sum();
        let max_total = replicas + self.max_surge();
        let new_replicas = self.rses[new].replicas();
        if current >= max_total {
            return new_replicas;
        }
        let up = (max_total - current).min((replicas - new_replicas).max(0));
        new_replicas + up
    }

    /// Sets a ReplicaSet's replicas and its desired/max annotations, with an event when the
    /// size changes.
    fn scale(&mut self, i: usize, to: i32) {
        let desired = self.replicas();
        let max = desired + self.max_surge();
        let w = &mut self.rses[i];
        let from = if w.original.is_some() {
            w.replicas()
        } else {
            0
        };
        w.rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        w.set_annotation(DESIRED_REPLICAS_ANNOTATION, desired.to_string());
        w.set_annotation(MAX_REPLICAS_ANNOTATION, max.to_string());
        let name = w.name().to_owned();
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {from} to {to}"),
            );
        }
    }

    /// Like `scale`, but the event compares with this reconcile's earlier size.
    fn rescale(&mut self, i: usize, to: i32) {
        if self.rses[i].replicas() != to {
            self.scale(i, to);
        }
    }

    fn old_indices(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rses.len()).filter(|i| Some(*i) != new).collect()
    }

    fn rolling(&mut self) {
        let Some(new) = self.sync_revision(true) else {
            if !self.stop {
                self.sync_rollout_status(None);
            }
            return;
        };
        if self.reconcile_new(new) || self.reconcile_old(new) {
            self.sync_rollout_status(Some(new));
            return;
        }
        if self.is_complete(&self.calculate_status(Some(new))) {
            self.cleanup(Some(new));
        }
        self.sync_rollout_status(Some(new));
    }

    fn reconcile_new(&mut self, new: usize) -> bool {
        let replicas = self.replicas();
        let current = self.rses[new].replicas();
        match current.cmp(&replicas) {
            Ordering::Equal => false,
            Ordering::Greater => {
                self.rescale(new, replicas);
                true
            }
            Ordering::Less => {
                let to = self.new_rs_new_replicas(new);
                let changed = to != current;
                self.rescale(new, to);
                changed
            }
        }
    }

    fn reconcile_old(&mut self, new: usize) -> bool {
        let old = self.old_indices(Some(new));
        let old_count: i32 = old.iter().map(|&i| self.rses[i].replicas()).sum();
        if old_count == 0 {
            return false;
        }
        let all_count: i32 = self.rses.iter().map(Working::replicas).sum();
        let min_available = self.replicas() - self.max_unavailable();
        let new_unavailable = (self.rses[new].replicas() - self.rses[new].available()).max(0);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy old replicas first: they cost no availability.
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let (replicas, available) = (self.rses[i].replicas(), self.rses[i].available());
            if replicas == 0 || available >= replicas {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(replicas - available);
            self.rescale(i, replicas - down);
            cleaned += down;
        }
        // Then healthy ones, oldest first, keeping minAvailable available.
        let available: i32 = self.rses.iter().map(Working::available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &old {
                if scaled >= total {
                    break;
                }
                let replicas = self.rses[i].replicas();
                if replicas == 0 {
                    continue;
                }
                let down = replicas.min(total - scaled);
                self.rescale(i, replicas - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    fn recreate(&mut self) {
        let new = self.sync_revision(false);
        let active_old: Vec<usize> = self
            .old_indices(new)
            .into_iter()
            .filter(|&i| self.rses[i].replicas() > 0)
            .collect();
        if !active_old.is_empty() {
            for i in active_old {
                self.rescale(i, 0);
            }
            self.sync_rollout_status(new);
            return;
        }
        if self.old_pods_running(new) {
            self.sync_rollout_status(new);
            return;
        }
        let new = match new {
            Some(i) => Some(i),
            None => self.sync_revision(true),
        };
        let Some(new) = new else {
            if !self.stop {
                self.sync_rollout_status(None);
            }
            return;
        };
        let replicas = self.replicas();
        self.rescale(new, replicas);
        if self.is_complete(&self.calculate_status(Some(new))) {
            self.cleanup(Some(new));
        }
        self.sync_rollout_status(Some(new));
    }

    fn old_pods_running(&self, new: Option<usize>) -> bool {
        self.old_indices(new).into_iter().any(|i| {
            let w = &self.rses[i];
            if w.status().replicas > 0 {
                return true;
            }
            let uid = w.rs.metadata.as_ref().map_or("", |m| m.uid.as_str());
            !uid.is_empty()
                && self.cache.controlled_by(uid).any(|o| match o.as_ref() {
                    Object::Pod(p) => !is_terminal(p),
                    _ => false,
                })
        })
    }

    /// Scales when `spec.replicas` changed mid-rollout (or while paused): one active
    /// ReplicaSet takes it all, otherwise the change is shared in proportion to sizes.
    fn scale_proportionally(&mut self, new: Option<usize>) {
        let replicas = self.replicas();
        let active: Vec<usize> = (0..self.rses.len())
            .filter(|&i| self.rses[i].replicas() > 0)
            .collect();
        let target = match active.len() {
            1 => Some(active[0]),
            0 => new.or_else(|| self.rses.len().checked_sub(1)),
            _ => None,
        };
        if let Some(i) = target {
            self.rescale(i, replicas);
            return;
        }
        if let Some(n) = new {
            let w = &self.rses[n];
            let saturated = w.replicas() == replicas
                && w.annotation(DESIRED_REPLICAS_ANNOTATION) == Some(replicas)
                && w.available() == replicas;
            if saturated {
                for i in self.old_indices(new) {
                    self.rescale(i, 0);
                }
                return;
            }
        }
        if !self.is_rolling() {
            return;
        }
        let surge = self.max_surge();
        let total: i32 = active.iter().map(|&i| self.rses[i].replicas()).sum();
        let allowed = if replicas > 0 { replicas + surge } else { 0 };
        let to_add = allowed - total;
        let mut order = active;
        // Largest first; among equals the newest when growing, the oldest when shrinking.
        order.sort_by(|&a, &b| {
            let size = self.rses[b].replicas().cmp(&self.rses[a].replicas());
            let age = a.cmp(&b);
            size.then(if to_add > 0 { age.reverse() } else { age })
        });
        let status_replicas = self.d.status.as_ref().map_or(0, |s| s.replicas);
        let mut sizes: HashMap<usize, i32> = HashMap::new();
        let mut added = 0;
        for &i in &order {
            let current = self.rses[i].replicas();
            let proportion = if current == 0 || to_add == 0 || to_add == added {
                0
            } else {
                let fraction = if replicas == 0 {
                    -current
                } else {
                    let annotated = self.rses[i]
                        .annotation(MAX_REPLICAS_ANNOTATION)
                        .unwrap_or(status_replicas);
                    if annotated <= 0 {
                        0
                    } else {
                        let size =
                            f64::from(current) * f64::from(replicas + surge) / f64::from(annotated);
                        size.round() as i32 - current
                    }
                };
                let allowed = to_add - added;
                if to_add > 0 {
                    fraction.min(allowed)
                } else {
                    fraction.max(allowed)
                }
            };
            sizes.insert(i, current + proportion);
            added += proportion;
        }
        if let Some(&first) = order.first() {
            let leftover = to_add - added;
            if let Some(size) = sizes.get_mut(&first) {
                *size = (*size + leftover).max(0);
            }
        }
        for i in order {
            let to = sizes.get(&i).copied().unwrap_or(0);
            self.rescale(i, to);
        }
    }

    /// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit`, oldest revision first.
    fn cleanup(&mut self, new: Option<usize>) {
        let Some(limit) = self.spec.revision_history_limit else {
            return;
        };
        let mut alive: Vec<usize> = self
            .old_indices(new)
            .into_iter()
            .filter(|&i| {
                self.rses[i]
                    .rs
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.deletion_timestamp.is_none())
            })
            .collect();
        let excess = alive.len() as i64 - i64::from(limit.max(0));
        if excess <= 0 {
            return;
        }
        alive.sort_by_key(|&i| (self.rses[i].revision(), i));
        for &i in alive.iter().take(usize::try_from(excess).unwrap_or(0)) {
            let w = &self.rses[i];
            let status = w.status();
            let generation = w.rs.metadata.as_ref().map_or(0, |m| m.generation);
            if status.replicas != 0 || w.replicas() != 0 || generation > status.observed_generation
            {
                continue;
            }
            if let Some(original) = &w.original {
                self.out
                    .actions
                    .push(Action::delete_of(&Object::ReplicaSet(original.clone())));
            }
        }
    }

    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let available: i32 = self.rses.iter().map(Working::available).sum();
        let total_spec: i32 = self.rses.iter().map(Working::replicas).sum();
        let mut status = DeploymentStatus {
            observed_generation: self.object.metadata().generation,
            replicas: self.rses.iter().map(|w| w.status().replicas).sum(),
            updated_replicas: new.map_or(0, |i| self.rses[i].status().replicas),
            ready_replicas: self.rses.iter().map(|w| w.status().ready_replicas).sum(),
            available_replicas: available,
            unavailable_replicas: (total_spec - available).max(0),
            conditions: self.conditions.clone(),
            collision_count: self.collision_count,
        };
        let (state, reason, message) = if available >= self.replicas() - self.max_unavailable() {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        set_deployment_condition(
            &mut status.conditions,
            AVAILABLE,
            state,
            reason,
            message.into(),
            self.now,
        );
        status
    }

    fn is_complete(&self, status: &DeploymentStatus) -> bool {
        let replicas = self.replicas();
        status.updated_replicas == replicas
            && status.replicas == replicas
            && status.available_replicas == replicas
            && status.observed_generation >= self.object.metadata().generation
    }

    fn set_condition(&mut self, kind: &str, state: &str, reason: &str, message: String) {
        set_deployment_condition(&mut self.conditions, kind, state, reason, message, self.now);
    }

    /// Status without progress accounting (paused, scaling, deleting).
    fn sync_status(&mut self, new: Option<usize>) {
        let status = self.calculate_status(new);
        self.conditions = status.conditions.clone();
    }

    /// Status with the Progressing condition and the progress deadline.
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut status = self.calculate_status(new);
        let deadline = self
            .spec
            .progress_deadline_seconds
            .filter(|s| *s != i32::MAX);
        let Some(deadline) = deadline else {
            status.conditions.retain(|c| c.r#type != PROGRESSING);
            self.conditions = status.conditions;
            return;
        };
        let current = condition(&status.conditions, PROGRESSING).cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason == "NewReplicaSetAvailable");
        let rs_name = new.map(|i| self.rses[i].name().to_owned());
        if !complete_already {
            let old = self.d.status.clone().unwrap_or_default();
            let progressed = status.updated_replicas > old.updated_replicas
                || (status.replicas - status.updated_replicas)
                    < (old.replicas - old.updated_replicas)
                || status.ready_replicas > old.ready_replicas
                || status.available_replicas > old.available_replicas;
            if self.is_complete(&status) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                    None => "Deployment has successfully progressed.".to_owned(),
                };
                set_deployment_condition(
                    &mut status.conditions,
                    PROGRESSING,
                    "True",
                    "NewReplicaSetAvailable",
                    msg,
                    self.now,
                );
            } else if progressed {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => "Deployment is progressing.".to_owned(),
                };
                let mut cond = Condition {
                    r#type: PROGRESSING.to_owned(),
                    status: "True".to_owned(),
                    reason: "ReplicaSetUpdated".to_owned(),
                    message: msg,
                    last_update_time: Some(self.now.to_rfc3339()),
                    last_transition_time: Some(self.now.to_rfc3339()),
                    ..Default::default()
                };
                if let Some(c) = current.as_ref().filter(|c| c.status == "True") {
                    cond.last_transition_time = c.last_transition_time.clone();
                }
                status.conditions.retain(|c| c.r#type != PROGRESSING);
                status.conditions.push(cond);
            } else if let Some(c) = &current {
                let timed_out = match c.reason.as_str() {
                    "ProgressDeadlineExceeded" => true,
                    "NewReplicaSetAvailable" => false,
                    _ => {
                        let from =
                            Timestamp::parse_opt(c.last_update_time.as_ref()).unwrap_or(self.now);
                        let until = from.plus_seconds(i64::from(deadline));
                        if until < self.now {
                            true
                        } else {
                            self.out
                                .requeue_within(until.since(self.now) + Duration::from_secs(1));
                            false
                        }
                    }
                };
                if timed_out {
                    let msg = match &rs_name {
                        Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                        None => "Deployment has timed out progressing.".to_owned(),
                    };
                    set_deployment_condition(
                        &mut status.conditions,
                        PROGRESSING,
                        "False",
                        "ProgressDeadlineExceeded",
                        msg,
                        self.now,
                    );
                }
            }
        }
        if !self.is_complete(&status)
            && condition(&status.conditions, PROGRESSING).is_some_and(|c| {
                c.reason == "ReplicaSetUpdated"
                    || c.reason == "NewReplicaSetCreated"
                    || c.reason == "FoundNewReplicaSet"
            })
        {
            self.out.requeue_within(Duration::from_secs(
                u64::try_from(deadline.max(0)).unwrap_or(0) + 1,
            ));
        }
        self.conditions = status.conditions;
    }

    fn finish(mut self) -> Reconciled {
        if self.stop {
            // Only the collision count changes; the rest waits for the next reconcile.
            let mut d = self.d.clone();
            let status = d.status.get_or_insert_with(Default::default);
            status.collision_count = self.collision_count;
            self.out
                .actions
                .push(Action::UpdateStatus(Object::Deployment(d)));
            return self.out;
        }
        let mut writes = Vec::new();
        for w in &self.rses {
            match &w.original {
                None => writes.push(Action::Create(Object::ReplicaSet(w.rs.clone()))),
                Some(original) if *original != w.rs => {
                    writes.push(Action::Update(Object::ReplicaSet(w.rs.clone())))
                }
                Some(_) => {}
            }
        }
        let current_revision = self
            .d
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.get(REVISION_ANNOTATION).cloned());
        if let Some(revision) = self
            .revision
            .clone()
            .filter(|r| Some(r) != current_revision.as_ref())
        {
            let mut d = self.d.clone();
            d.metadata
                .get_or_insert_with(ObjectMeta::default)
                .annotations
                .insert(REVISION_ANNOTATION.to_owned(), revision);
            writes.push(Action::Update(Object::Deployment(d)));
        }
        let new = self.find_new();
        let mut status = self.calculate_status(new);
        status.conditions = self.conditions.clone();
        if self.d.status.as_ref() != Some(&status) {
            let mut d = self.d.clone();
            d.status = Some(status);
            writes.push(Action::UpdateStatus(Object::Deployment(d)));
        }
        // Writes first, then the events (and deletes) gathered on the way, in order.
        let mut actions = writes;
        actions.append(&mut self.out.actions);
        Reconciled {
            actions,
            requeue_after: self.out.requeue_after,
        }
    }
}

/// Sets a deployment condition: nothing changes when status and reason are the same;
/// otherwise both times are now, keeping the transition time when the status is unchanged.
fn set_deployment_condition(
    conditions: &mut Vec<Condition>,
    kind: &str,
    state: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let current = conditions.iter().position(|c| c.r#type == kind);
    let mut cond = Condition {
        r#type: kind.to_owned(),
        status: state.to_owned(),
        reason: reason.to_owned(),
        message,
        last_update_time: Some(now.to_rfc3339()),
        last_transition_time: Some(now.to_rfc3339()),
        ..Default::default()
    };
    match current {
        Some(i) => {
            let c = &conditions[i];
            if c.status == cond.status && c.reason == cond.reason {
                return;
            }
            if c.status == cond.status {
                cond.last_transition_time = c.last_transition_time.clone();
            }
            conditions[i] = cond;
        }
        None => conditions.push(cond),
    }
}

#[cfg(test)]
#[path = "deployment_test.rs"]
mod tests;
