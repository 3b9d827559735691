//! The scheduler: picks a node for each pending pod whose `schedulerName` is
//! `default-scheduler`, and explains per node class why none fits when none does.
//!
//! ```text
//!  pending pods (no nodeName, ours) ─► sort: priority ↓, creation ↑
//!        │
//!        ▼  per pod: every persistentVolumeClaim Bound? (else FailedScheduling "pod has
//!        │  unbound immediate PersistentVolumeClaims"), then over per-node facts
//!        ▼  computed once per pass (NodeInfo)
//!  filter: unschedulable ─ Ready ─ taints (NoSchedule, NoExecute) ─ nodeSelector/affinity
//!          ─ cpu, memory, pod count vs allocatable − requested
//!        │ feasible nodes                      │ none
//!        ▼                                     ▼
//!  score: preferred affinity ×2, taints        FailedScheduling event:
//!         (PreferNoSchedule) ×3,               "0/5 nodes are available: 2 node(s) had
//!         least allocated ×1, spread ×2        untolerated taint {k: v}, 3 node(s) ..."
//!        │ best (ties: the caller's seed)
//!        ▼
//!  Bind + Scheduled event; the pass adds the pod to its node's usage before the next pod
//! ```
//!
//! Owns node filtering and scoring. It must not write anything: binding is an action the
//! actor carries out through the pods/binding subresource. Pods naming another scheduler
//! are left alone, so a second scheduler can run beside this one.
//!
//! Like kube-scheduler on large clusters, a pod's search stops once enough feasible nodes
//! are found (all of them under 100 nodes, then 50% minus 1% per 125 nodes, at least 5% and
//! at least 100 nodes), starting where the previous pod's search stopped so the load
//! rotates over the whole cluster. Within one pass, pods of an owner that already failed
//! reuse that failure (capacity only shrinks during a pass), so a large unschedulable
//! ReplicaSet costs one scan, not one per pod.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rafter_proto::v1::{self, PodSpec, Taint};
use rafter_proto::{Kind, Object};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::placement::{
    first_untolerated, matches_node_selector_and_affinity, node_parts, preferred_affinity_weight,
    tolerated, untolerated_prefer_no_schedule, NO_EXECUTE, NO_SCHEDULE,
};
use crate::pods::{
    self, condition, controller_ref, is_terminal, is_terminating, mix, node_allocatable,
    pod_requests, Resources,
};
use crate::scheduling_queue::PodName;
use crate::volume_binder::unbound_claim;

/// The scheduler name pods get by default and this scheduler answers to.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// How long an unschedulable pod waits before it is tried again with nothing changed.
pub const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(60);

/// At most this many pods are placed by one pass. A pass first counts every bound pod on
/// its node, so passes are large to spread that cost; the cap bounds what one pass holds
/// until its Bindings and events are written (a pass over 150,000 pending pods held
/// 300,000 actions, each an object's size) and keeps each pass's view of the nodes fresh.
pub const PODS_PER_PASS: usize = 16_384;

/// Requests assumed for scoring a pod that requests nothing (as kube-scheduler does), so
/// such pods still spread by load.
const NONZERO_CPU_MILLIS: i64 = 100;
const NONZERO_MEMORY: i64 = 200 * 1024 * 1024;

const WEIGHT_AFFINITY: i64 = 2;
const WEIGHT_TAINT: i64 = 3;
const WEIGHT_LEAST_ALLOCATED: i64 = 1;
const WEIGHT_SPREAD: i64 = 2;

/// Schedules one pod: a Bind and a Scheduled event, a FailedScheduling event with a retry,
/// or nothing when the pod is not ours to schedule. `seed` breaks ties between equally
/// good nodes.
pub fn schedule_pod(cache: &Cache, key: &ObjectKey, seed: u64) -> Reconciled {
    let Some(Object::Pod(pod)) = cache.get(key).map(|o| o.as_ref()) else {
        return Reconciled::nothing();
    };
    if !wants_scheduling(pod) {
        return Reconciled::nothing();
    }
    let mut pass = Pass::new(cache, seed);
    pass.schedule(pod);
    pass.finish().0
}

/// Schedules every pending pod of ours in one pass over node facts computed once, each
/// placement counted before the next pod is placed. Pods go by priority (highest first),
/// then age.
pub fn schedule_pending(cache: &Cache, seed: u64) -> Reconciled {
    schedule_pending_assuming(cache, &Assumed::default(), seed)
}

/// A pod this scheduler decided to bind, not yet seen bound in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assumption {
    uid: String,
    node: String,
}

impl Assumption {
    /// Whether `pod` (the cached pod of the assumed name) is still the one assumed and
    /// still shows no node: the Binding is not yet seen.
    fn still_pending(&self, pod: &v1::Pod) -> bool {
        pods::meta(pod).uid == self.uid && pod.spec.as_ref().is_some_and(|s| s.node_name.is_empty())
    }
}

/// Pods whose Binding is written (or being written) but not yet seen in the cache, like
/// kube-scheduler's assumed pods: a pass counts them on their node and does not place
/// them again, so binds need not be finished before the next pass. An assumption ends
/// when the cache shows the pod bound, deleted or replaced ([`Assumed::prune`]), or
/// when its Binding fails ([`Assumed::forget`]): the pod is then pending again.
#[derive(Debug, Clone, Default)]
pub struct Assumed {
    pods: HashMap<(String, String), Assumption>,
}

impl Assumed {
    /// Assumes every pod bound by a Bind among `actions`.
    pub fn assume_binds(&mut self, actions: &[Action]) {
        for action in actions {
            if let Action::Bind {
                namespace,
                name,
                uid,
                node,
            } = action
            {
                self.pods.insert(
                    (namespace.clone(), name.clone()),
                    Assumption {
                        uid: uid.clone(),
                        node: node.clone(),
                    },
                );
            }
        }
    }

    /// Forgets the pod of a Bind that failed (it is pending again).
    pub fn forget(&mut self, namespace: &str, name: &str) {
        self.pods.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Forgets every pod whose fate the cache now shows: bound, deleted or replaced.
    pub fn prune(&mut self, cache: &Cache) {
        self.pods.retain(|(namespace, name), assumed| {
            cache
                .pod(namespace, name)
                .is_some_and(|pod| assumed.still_pending(pod))
        });
        // A burst's table is given back once its pods are seen bound.
        if self.pods.capacity() > 4 * self.pods.len() + 1024 {
            self.pods.shrink_to_fit();
        }
    }

    /// Pods assumed.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is assumed.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Forgets everything (a new term starts from the cache alone).
    pub fn clear(&mut self) {
        self.pods.clear();
    }

    fn node_of(&self, pod: &v1::Pod) -> Option<&str> {
        let meta = pods::meta(pod);
        self.pods
            .get(&(meta.namespace.clone(), meta.name.clone()))
            .filter(|a| a.uid == meta.uid)
            .map(|a| a.node.as_str())
    }
}

/// [`schedule_pending`] with `assumed` pods counted on their nodes and not placed again.
pub fn schedule_pending_assuming(cache: &Cache, assumed: &Assumed, seed: u64) -> Reconciled {
    schedule_pods_assuming(cache, assumed, cache.unscheduled_pods(), seed).0
}

/// Schedules those of `pods` that are pending, ours and not `assumed`, in one pass
/// (priority first, then age), and says which of them fit no node.
pub fn schedule_pods_assuming<'a>(
    cache: &'a Cache,
    assumed: &Assumed,
    pods: impl IntoIterator<Item = &'a v1::Pod>,
    seed: u64,
) -> (Reconciled, Vec<PodName>) {
    let pending = pending_in_order(pods, assumed);
    if pending.is_empty() {
        return (Reconciled::nothing(), Vec::new());
    }
    let mut pass = Pass::new(cache, seed);
    pass.count_assumed(cache, assumed);
    for pod in pending {
        pass.schedule(pod);
    }
    pass.finish()
}

/// Those of `pods` waiting to be placed (pending, ours, not assumed bound), in the order
/// a pass places them: higher priority first, then the oldest.
fn pending_in_order<'a>(
    pods: impl IntoIterator<Item = &'a v1::Pod>,
    assumed: &Assumed,
) -> Vec<&'a v1::Pod> {
    let mut pending: Vec<&v1::Pod> = pods
        .into_iter()
        .filter(|p| wants_scheduling(p) && assumed.node_of(p).is_none())
        .collect();
    pending.sort_by(|a, b| {
        let prio = |p: &v1::Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let (ma, mb) = (pods::meta(a), pods::meta(b));
        prio(b)
            .cmp(&prio(a))
            .then_with(|| ma.creation_timestamp.cmp(&mb.creation_timestamp))
            .then_with(|| ma.namespace.cmp(&mb.namespace))
            .then_with(|| ma.name.cmp(&mb.name))
    });
    pending
}

/// Every pod waiting to be placed (pending, ours, not assumed bound), in the order a pass
/// places them.
pub fn pending_in_queue_order(cache: &Cache, assumed: &Assumed) -> Vec<PodName> {
    pending_in_order(cache.unscheduled_pods(), assumed)
        .into_iter()
        .map(|p| {
            let meta = pods::meta(p);
            (meta.namespace.clone(), meta.name.clone())
        })
        .collect()
}

/// Whether the pod is pending, ours, alive and not yet bound.
pub(crate) fn wants_scheduling(pod: &v1::Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    spec.node_name.is_empty()
        && (spec.scheduler_name == DEFAULT_SCHEDULER || spec.scheduler_name.is_empty())
        && !is_terminating(pod)
        && !is_terminal(pod)
}

/// What the scheduler knows about one node during a pass.
struct NodeInfo<'a> {
    name: &'a str,
    labels: &'a rafter_proto::StringMap,
    taints: &'a [Taint],
    unschedulable: bool,
    ready: bool,
    allocatable: Resources,
    allowed_pods: i64,
    requested: Resources,
    nonzero_requested: Resources,
    pod_count: i64,
    /// Pods per controller uid, for spreading replicas.
    owners: HashMap<&'a str, u32>,
}

impl<'a> NodeInfo<'a> {
    fn new(node: &'a v1::Node) -> NodeInfo<'a> {
        let (labels, name, taints) = node_parts(node);
        let (allocatable, allowed_pods) = node_allocatable(node);
        let ready = node
            .status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Ready"))
            .is_some_and(|c| c.status == "True");
        NodeInfo {
            name,
            labels,
            taints,
            unschedulable: node.spec.as_ref().is_some_and(|s| s.unschedulable),
            ready,
            allocatable,
            allowed_pods,
            requested: Resources::default(),
            nonzero_requested: Resources::default(),
            pod_count: 0,
            owners: HashMap::new(),
        }
    }

    fn add(&mut self, pod: &PodFacts<'a>) {
        self.requested.cpu_millis += pod.requests.cpu_millis;
        self.requested.memory += pod.requests.memory;
        self.nonzero_requested.cpu_millis += pod.nonzero.cpu_millis;
        self.nonzero_requested.memory += pod.nonzero.memory;
        self.pod_count += 1;
        if let Some(owner) = pod.owner {
            *self.owners.entry(owner).or_default() += 1;
        }
    }
}

/// What the filters and scores need of the pod being placed, computed once.
struct PodFacts<'a> {
    spec: &'a PodSpec,
    requests: Resources,
    nonzero: Resources,
    owner: Option<&'a str>,
}

impl<'a> PodFacts<'a> {
    fn new(pod: &'a v1::Pod, spec: &'a PodSpec) -> PodFacts<'a> {
        let requests = pod_requests(spec);
        let nonzero = Resources {
            cpu_millis: if requests.cpu_millis == 0 {
                NONZERO_CPU_MILLIS
            } else {
                requests.cpu_millis
            },
            memory: if requests.memory == 0 {
                NONZERO_MEMORY
            } else {
                requests.memory
            },
        };
        PodFacts {
            spec,
            requests,
            nonzero,
            owner: controller_ref(pods::meta(pod)).map(|r| r.uid.as_str()),
        }
    }
}

/// Why a node was filtered out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unfit {
    Unschedulable,
    NotReady,
    Taint { key: String, value: String },
    Affinity,
    Insufficient { cpu: bool, memory: bool, pods: bool },
}

impl Unfit {
    /// The reasons as kube-scheduler words them (one node may lack several resources).
    fn reasons(&self) -> Vec<String> {
        match self {
            Unfit::Unschedulable => vec!["node(s) were unschedulable".to_owned()],
            Unfit::NotReady => vec!["node(s) were not ready".to_owned()],
            Unfit::Taint { key, value } => {
                vec![format!("node(s) had untolerated taint {{{key}: {value}}}")]
            }
            Unfit::Affinity => vec!["node(s) didn't match Pod's node affinity/selector".to_owned()],
            Unfit::Insufficient { cpu, memory, pods } => {
                let mut out = Vec::new();
                if *cpu {
                    out.push("Insufficient cpu".to_owned());
                }
                if *memory {
                    out.push("Insufficient memory".to_owned());
                }
                if *pods {
                    out.push("Too many pods".to_owned());
                }
                out
            }
        }
    }
}

fn filter(node: &NodeInfo<'_>, pod: &PodFacts<'_>) -> Result<(), Unfit> {
    let tolerations = &pod.spec.tolerations;
    if node.unschedulable {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".to_owned(),
            effect: NO_SCHEDULE.to_owned(),
            ..Default::default()
        };
        if !tolerated(tolerations, &cordon) {
            return Err(Unfit::Unschedulable);
        }
    }
    if !node.ready {
        return Err(Unfit::NotReady);
    }
    if let Some(t) = first_untolerated(node.taints, tolerations, &[NO_SCHEDULE, NO_EXECUTE]) {
        return Err(Unfit::Taint {
            key: t.key.clone(),
            value: t.value.clone(),
        });
    }
    if !matches_node_selector_and_affinity(pod.spec, node.labels, node.name) {
        return Err(Unfit::Affinity);
    }
    let cpu = pod.requests.cpu_millis > 0
        && pod.requests.cpu_millis > node.allocatable.cpu_millis - node.requested.cpu_millis;
    let memory = pod.requests.memory > 0
        && pod.requests.memory > node.allocatable.memory - node.requested.memory;
    let pods = node.pod_count + 1 > node.allowed_pods;
    if cpu || memory || pods {
        return Err(Unfit::Insufficient { cpu, memory, pods });
    }
    Ok(())
}

fn least_allocated(node: &NodeInfo<'_>, pod: &PodFacts<'_>) -> i64 {
    let part = |capacity: i64, used: i64| {
        if capacity <= 0 {
            0
        } else {
            ((capacity - used).max(0) * 100) / capacity
        }
    };
    let cpu = part(
        node.allocatable.cpu_millis,
        node.nonzero_requested.cpu_millis + pod.nonzero.cpu_millis,
    );
    let memory = part(
        node.allocatable.memory,
        node.nonzero_requested.memory + pod.nonzero.memory,
    );
    (cpu + memory) / 2
}

/// How many feasible nodes a pod's search looks for before it stops.
fn feasible_nodes_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(5);
    (all * percent / 100).max(100)
}

/// One scheduling pass: node facts, the actions so far, and where the next search starts.
struct Pass<'a> {
    cache: &'a Cache,
    nodes: Vec<NodeInfo<'a>>,
    next_start: usize,
    seed: u64,
    actions: Vec<Action>,
    failed_owners: HashMap<&'a str, String>,
    /// The pods that fit no node.
    failed: Vec<PodName>,
}

impl<'a> Pass<'a> {
    fn new(cache: &'a Cache, seed: u64) -> Pass<'a> {
        let mut nodes: Vec<NodeInfo<'a>> = cache.nodes().map(NodeInfo::new).collect();
        let index: HashMap<&str, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
        for name in cache.nodes_with_pods() {
            let Some(&i) = index.get(name) else {
                continue;
            };
            for pod in cache.pods_on_node(name) {
                if is_terminal(pod) {
                    continue;
                }
                if let Some(spec) = &pod.spec {
                    let facts = PodFacts::new(pod, spec);
                    nodes[i].add(&facts);
                }
            }
        }
        Pass {
            cache,
            nodes,
            next_start: 0,
            seed,
            actions: Vec::new(),
            failed_owners: HashMap::new(),
            failed: Vec::new(),
        }
    }

    /// Counts the assumed pods on their nodes, as if bound.
    fn count_assumed(&mut self, cache: &'a Cache, assumed: &Assumed) {
        if assumed.is_empty() {
            return;
        }
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name, i))
            .collect();
        // The assumed pods are the few in flight; the pending ones may be many more.
        for ((namespace, name), assumption) in &assumed.pods {
            let Some(pod) = cache.pod(namespace, name) else {
                continue;
            };
            let Some(spec) = pod.spec.as_ref().filter(|_| assumption.still_pending(pod)) else {
                continue;
            };
            if let Some(&i) = index.get(assumption.node.as_str()) {
                let facts = PodFacts::new(pod, spec);
                self.nodes[i].add(&facts);
            }
        }
    }

    fn schedule(&mut self, pod: &'a v1::Pod) {
        let Some(spec) = &pod.spec else {
            return;
        };
        let facts = PodFacts::new(pod, spec);
        let meta = pods::meta(pod);
        let object_key = ObjectKey::new(Kind::Pod, meta.namespace.clone(), meta.name.clone());
        if let Some(message) = facts.owner.and_then(|o| self.failed_owners.get(o)) {
            let message = message.clone();
            self.fail(pod, &object_key, message);
            return;
        }
        // Volumes first: a pod whose claims are not bound fits no node yet.
        if let Some(message) = unbound_claim(self.cache, pod) {
            self.fail(pod, &object_key, message);
            return;
        }
        let total = self.nodes.len();
        let wanted = feasible_nodes_to_find(total);
        let mut feasible: Vec<usize> = Vec::with_capacity(wanted.min(total));
        let mut unfit: BTreeMap<String, usize> = BTreeMap::new();
        let mut examined = 0;
        for i in 0..total {
            let index = (self.next_start + i) % total;
            examined += 1;
            match filter(&self.nodes[index], &facts) {
                Ok(()) => {
                    feasible.push(index);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(why) => {
                    for reason in why.reasons() {
                        *unfit.entry(reason).or_default() += 1;
                    }
                }
            }
        }
        if total > 0 {
            self.next_start = (self.next_start + examined) % total;
        }
        let Some(chosen) = self.best(&feasible, &facts, meta.uid.as_str()) else {
            let message = failure_message(total, &unfit);
            if let Some(owner) = facts.owner {
                self.failed_owners.insert(owner, message.clone());
            }
            self.fail(pod, &object_key, message);
            return;
        };
        let node = &mut self.nodes[chosen];
        node.add(&facts);
        let node_name = node.name.to_owned();
        self.actions.push(Action::Bind {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            node: node_name.clone(),
        });
        self.actions.push(Action::RecordEvent(EventRecord {
            involved: object_key,
            involved_uid: meta.uid.clone(),
            event_type: EventType::Normal,
            reason: "Scheduled".to_owned(),
            message: format!(
                "Successfully assigned {}/{} to {}",
                meta.namespace, meta.name, node_name
            ),
            component: DEFAULT_SCHEDULER,
        }));
    }

    fn fail(&mut self, pod: &v1::Pod, key: &ObjectKey, message: String) {
        self.failed.push((key.namespace.clone(), key.name.clone()));
        self.actions.push(Action::RecordEvent(EventRecord {
            involved: key.clone(),
            involved_uid: pods::meta(pod).uid.clone(),
            event_type: EventType::Warning,
            reason: "FailedScheduling".to_owned(),
            message,
            component: DEFAULT_SCHEDULER,
        }));
    }

    /// The best-scoring feasible node; ties are broken by the seed and the pod's uid.
    fn best(&self, feasible: &[usize], pod: &PodFacts<'_>, uid: &str) -> Option<usize> {
        if feasible.len() <= 1 {
            return feasible.first().copied();
        }
        let raw: Vec<(i64, i64, i64, i64)> = feasible
            .iter()
            .map(|&i| {
                let n = &self.nodes[i];
                (
                    preferred_affinity_weight(pod.spec, n.labels, n.name),
                    untolerated_prefer_no_schedule(n.taints, &pod.spec.tolerations) as i64,
                    least_allocated(n, pod),
                    pod.owner
                        .and_then(|o| n.owners.get(o))
                        .map_or(0, |c| i64::from(*c)),
                )
            })
            .collect();
        let max_affinity = raw.iter().map(|r| r.0).max().unwrap_or(0);
        let max_taints = raw.iter().map(|r| r.1).max().unwrap_or(0);
        let max_spread = raw.iter().map(|r| r.3).max().unwrap_or(0);
        let scores = raw.iter().map(|&(affinity, taints, least, spread)| {
            let affinity = if max_affinity > 0 {
                affinity * 100 / max_affinity
            } else {
                0
            };
            let taints = if max_taints > 0 {
                100 - taints * 100 / max_taints
            } else {
                100
            };
            let spread = if max_spread > 0 {
                (max_spread - spread) * 100 / max_spread
            } else {
                100
            };
            affinity * WEIGHT_AFFINITY
                + taints * WEIGHT_TAINT
                + least * WEIGHT_LEAST_ALLOCATED
                + spread * WEIGHT_SPREAD
        });
        let scored: Vec<i64> = scores.collect();
        let top = scored.iter().copied().max()?;
        let ties: Vec<usize> = feasible
            .iter()
            .zip(&scored)
            .filter(|(_, s)| **s == top)
            .map(|(i, _)| *i)
            .collect();
        let pick = mix(pods::seed_with(self.seed, uid)) % ties.len() as u64;
        ties.get(pick as usize).copied()
    }

    /// The pass's actions, and the pods that fit no node.
    fn finish(self) -> (Reconciled, Vec<PodName>) {
        let requeue_after = (!self.failed.is_empty()).then_some(UNSCHEDULABLE_RETRY);
        let reconciled = Reconciled {
            actions: self.actions,
            requeue_after,
        };
        (reconciled, self.failed)
    }
}

/// "0/5 nodes are available: 2 node(s) had untolerated taint {k: v}, 3 node(s) ...", the
/// parts sorted as kube-scheduler sorts them.
fn failure_message(total: usize, unfit: &BTreeMap<String, usize>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".to_owned();
    }
    let mut parts: Vec<String> = unfit
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
#[path = "scheduler_test.rs"]
mod tests;
