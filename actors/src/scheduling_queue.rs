//! [`SchedulingQueue`]: which pending pods the scheduler's next pass tries, as
//! kube-scheduler's queue decides it.
//!
//! ```text
//!  pod created, or its spec or labels changed ─► active ─► next pass (Changes)
//!                                                             │ fits no node
//!                                                             ▼
//!  unschedulable ◄────────────────────────────────────────────┘
//!     │ a node added or changed in what filters read, a bound pod deleted or finished,
//!     │ a claim changed ─► Everything (every pending pod, the pool emptied)
//!     └ waited UNSCHEDULABLE_RETRY ─► the next pass (Changes) tries it again
//! ```
//!
//! Without it every pass tried every pending pod: a thousand pods that fit nowhere cost a
//! thousand failed placements and events on each pass, and each new pod brought a pass.
//!
//! A pass takes at most a given number of pods, the longest active first, so what one pass
//! decides (and holds until its Bindings are written) stays bounded however many pods wait.
//!
//! Owns bookkeeping only: it reads the change it is given and nothing else, keeps no clock
//! (callers pass `now`) and decides no placement.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rafter_proto::v1;
use rafter_proto::{Kind, Object};

use crate::pods::{self, condition, is_terminal};
use crate::runtime::Change;
use crate::scheduler::{wants_scheduling, UNSCHEDULABLE_RETRY};
use rafter_proto::Timestamp;

/// A pod's namespace and name.
pub type PodName = (String, String);

/// Which pods a scheduling pass tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulingPass {
    /// The active pods, and the unschedulable ones whose wait is over.
    Changes,
    /// Every pending pod (after a change that may let unschedulable pods fit, on a
    /// resync, when leadership starts).
    Everything,
}

/// The scheduler's queue of pending pods.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    active: HashSet<PodName>,
    /// The active pods in the order they became active. An entry whose pod left `active`
    /// since (taken, failed, gone) is skipped when it reaches the front.
    active_order: VecDeque<PodName>,
    unschedulable: HashMap<PodName, Timestamp>,
    /// The unschedulable pods in the order they failed, so a pass finds those whose wait
    /// is over without looking at the others. An entry whose pod left the pool, or
    /// failed again since, is skipped when it reaches the front.
    retry_order: VecDeque<(Timestamp, PodName)>,
}

impl SchedulingQueue {
    /// Files a change and says which pass it needs, if any.
    pub fn observe(&mut self, change: &Change) -> Option<SchedulingPass> {
        match change.key.kind {
            Kind::Pod => self.observe_pod(change),
            Kind::Node if self.any_unschedulable() => {
                node_may_fit_more(node(&change.old), node(&change.new))
                    .then_some(SchedulingPass::Everything)
            }
            Kind::PersistentVolumeClaim if self.any_unschedulable() => {
                Some(SchedulingPass::Everything)
            }
            _ => None,
        }
    }

    fn observe_pod(&mut self, change: &Change) -> Option<SchedulingPass> {
        let name = (change.key.namespace.clone(), change.key.name.clone());
        let old = pod(&change.old);
        match pod(&change.new) {
            Some(new) if wants_scheduling(new) => {
                let changed = old.is_none_or(|old| {
                    old.spec != new.spec || pods::meta(old).labels != pods::meta(new).labels
                });
                // A pod that waits among the unschedulable stays there through changes of
                // its status or other metadata (nothing a filter reads).
                if !changed && self.unschedulable.contains_key(&name) {
                    return None;
                }
                self.unschedulable.remove(&name);
                self.activate(name);
                Some(SchedulingPass::Changes)
            }
            new => {
                self.forget(&name);
                // A bound pod that is gone or finished gives its node's share back.
                let frees = old.is_some_and(|old| {
                    old.spec.as_ref().is_some_and(|s| !s.node_name.is_empty())
                        && !is_terminal(old)
                        && new.is_none_or(is_terminal)
                });
                (frees && self.any_unschedulable()).then_some(SchedulingPass::Everything)
            }
        }
    }

    /// The pods a [`SchedulingPass::Changes`] pass tries: every active pod and every
    /// unschedulable pod that has waited [`UNSCHEDULABLE_RETRY`] by `now`. They leave the
    /// queue; those that fit no node again come back through [`SchedulingQueue::failed`].
    pub fn take(&mut self, now: Timestamp) -> Vec<PodName> {
        self.take_up_to(now, usize::MAX)
    }

    /// As [`SchedulingQueue::take`], but at most `limit` pods: the unschedulable ones whose
    /// wait is over join the active ones, and those active longest go first. The rest stay
    /// active for the next pass.
    pub fn take_up_to(&mut self, now: Timestamp, limit: usize) -> Vec<PodName> {
        self.activate_retries(now);
        let mut names = Vec::new();
        while names.len() < limit {
            let Some(name) = self.active_order.pop_front() else {
                break;
            };
            if self.active.remove(&name) {
                names.push(name);
            }
        }
        if self.active.is_empty() {
            self.active_order.clear();
        }
        names
    }

    /// Makes every pod of `names` active (in that order), as a pass over every pending pod
    /// needs: a pod already active keeps its place.
    pub fn activate_all(&mut self, names: impl IntoIterator<Item = PodName>) {
        for name in names {
            self.unschedulable.remove(&name);
            self.activate(name);
        }
    }

    /// Pods waiting for a pass.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    fn activate(&mut self, name: PodName) {
        if self.active.insert(name.clone()) {
            self.active_order.push_back(name);
        }
        // Entries of pods that left `active` pile up only under churn; drop them once they
        // outnumber the live ones.
        if self.active_order.len() > 2 * self.active.len() + 64 {
            let mut seen = HashSet::with_capacity(self.active.len());
            let active = &self.active;
            self.active_order
                .retain(|n| active.contains(n) && seen.insert(n.clone()));
        }
    }

    /// The unschedulable pods whose wait is over by `now` become active.
    fn activate_retries(&mut self, now: Timestamp) {
        while let Some((since, _)) = self.retry_order.front() {
            if waited(*since, now) < UNSCHEDULABLE_RETRY {
                break;
            }
            let Some((since, name)) = self.retry_order.pop_front() else {
                break;
            };
            if self.unschedulable.get(&name) == Some(&since) {
                self.unschedulable.remove(&name);
                self.activate(name);
            }
        }
    }

    /// Empties the queue for a [`SchedulingPass::Everything`] pass, which tries every
    /// pending pod.
    pub fn take_everything(&mut self) {
        self.clear();
    }

    /// `names` fit no node at `now`: they wait for a change or for the retry.
    pub fn failed(&mut self, names: impl IntoIterator<Item = PodName>, now: Timestamp) {
        for name in names {
            self.active.remove(&name);
            self.unschedulable.insert(name.clone(), now);
            self.retry_order.push_back((now, name));
        }
    }

    /// The pod is pending again and is tried at the next pass (its Binding failed).
    pub fn retry(&mut self, namespace: &str, name: &str) {
        let name = (namespace.to_owned(), name.to_owned());
        self.unschedulable.remove(&name);
        self.activate(name);
    }

    /// How long until the first unschedulable pod's wait is over (`None`: none waits).
    pub fn next_retry(&mut self, now: Timestamp) -> Option<Duration> {
        while let Some((since, name)) = self.retry_order.front() {
            if self.unschedulable.get(name) == Some(since) {
                return Some(UNSCHEDULABLE_RETRY.saturating_sub(waited(*since, now)));
            }
            self.retry_order.pop_front();
        }
        None
    }

    /// Pods that fit no node at their last try.
    pub fn unschedulable_len(&self) -> usize {
        self.unschedulable.len()
    }

    /// Forgets everything (a new term starts from the cache alone).
    pub fn clear(&mut self) {
        self.active.clear();
        self.active_order.clear();
        self.unschedulable.clear();
        self.retry_order.clear();
    }

    fn any_unschedulable(&self) -> bool {
        !self.unschedulable.is_empty()
    }

    fn forget(&mut self, name: &PodName) {
        self.active.remove(name);
        self.unschedulable.remove(name);
    }
}

fn waited(since: Timestamp, now: Timestamp) -> Duration {
    let millis = now.unix_millis().saturating_sub(since.unix_millis());
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

fn pod(object: &Option<std::sync::Arc<Object>>) -> Option<&v1::Pod> {
    match object.as_deref() {
        Some(Object::Pod(pod)) => Some(pod),
        _ => None,
    }
}

fn node(object: &Option<std::sync::Arc<Object>>) -> Option<&v1::Node> {
    match object.as_deref() {
        Some(Object::Node(node)) => Some(node),
        _ => None,
    }
}

/// Whether a node change may let a pod fit that did not: a new node, or a change of what
/// the filters read (labels, spec: taints and unschedulable, allocatable, Ready). A node's
/// heartbeats change none of these.
fn node_may_fit_more(old: Option<&v1::Node>, new: Option<&v1::Node>) -> bool {
    let Some(new) = new else {
        return false;
    };
    let Some(old) = old else {
        return true;
    };
    fn labels(n: &v1::Node) -> Option<&rafter_proto::StringMap> {
        n.metadata.as_ref().map(|m| &m.labels)
    }
    fn allocatable(n: &v1::Node) -> Option<&rafter_proto::StringMap> {
        n.status.as_ref().map(|s| &s.allocatable)
    }
    fn ready(n: &v1::Node) -> Option<&str> {
        n.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Ready"))
            .map(|c| c.status.as_str())
    }
    labels(old) != labels(new)
        || old.spec != new.spec
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

#[cfg(test)]
#[path = "scheduling_queue_test.rs"]
mod tests;
