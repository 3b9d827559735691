//! Carrying out a reconcile's actions through [`ClusterApi`], in order, under one term.
//!
//! ```text
//!  [Create pod, Event, Create pod, ...] ─► concurrent batch (up to 16 at once)
//!  Update(obj) ─► rv' ─► UpdateStatus(obj) written onto rv' (the latest object)
//!  first real failure ─► stop; the key is retried with back-off
//! ```
//!
//! Owns the order and concurrency of writes and which failures are harmless (creating
//! what exists, deleting what is gone, a lost event). It must not decide anything: the
//! actions come from a pure core. [`EventFilter`] drops an event identical to one recorded
//! recently, so a pod that stays unschedulable does not flood the Event list.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rafter_proto::Kind;

use crate::action::{Action, ObjectKey};
use crate::runtime::api::{ApiError, ClusterApi};

/// Independent writes in flight at once for one reconcile.
const CONCURRENT_WRITES: usize = 16;

/// What carrying out a reconcile's actions did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The revision from which every write is visible (`None`: nothing written).
    pub visible_at: Option<u64>,
    /// The failure that stopped the actions, if any.
    pub error: Option<ApiError>,
    /// Writes that succeeded.
    pub writes: usize,
}

impl Report {
    fn saw(&mut self, revision: u64) {
        if revision > 0 {
            self.visible_at = Some(self.visible_at.map_or(revision, |r| r.max(revision)));
        }
        self.writes += 1;
    }
}

/// Whether an action may run concurrently with its neighbours: pod creations, bindings,
/// pod deletions and events, which the cores emit in bulk and never depend on each other.
fn independent(action: &Action) -> bool {
    match action {
        Action::Create(object) => object.kind() == Kind::Pod,
        Action::Delete { key, .. } => key.kind == Kind::Pod,
        Action::Bind { .. } | Action::Evict { .. } | Action::RecordEvent(_) => true,
        Action::Update(_) | Action::UpdateStatus(_) => false,
    }
}

/// Whether a failure means the action's goal holds anyway.
pub(crate) fn harmless(action: &Action, error: &ApiError) -> bool {
    matches!(
        (action, error),
        (Action::Create(_), ApiError::AlreadyExists(_))
            | (Action::Delete { .. }, ApiError::NotFound(_))
            | (Action::Evict { .. }, ApiError::NotFound(_))
            | (Action::RecordEvent(_), _)
    )
}

pub(crate) fn describe(action: &Action) -> String {
    match action {
        Action::Create(o) => format!("create {}", ObjectKey::of(o)),
        Action::Update(o) => format!("update {}", ObjectKey::of(o)),
        Action::UpdateStatus(o) => format!("update status of {}", ObjectKey::of(o)),
        Action::Delete { key, .. } => format!("delete {key}"),
        Action::Bind {
            namespace,
            name,
            node,
            ..
        } => format!("bind pod {namespace}/{name} to {node}"),
        Action::Evict {
            namespace, name, ..
        } => format!("evict pod {namespace}/{name}"),
        Action::RecordEvent(e) => format!("record event {} about {}", e.reason, e.involved),
    }
}

/// Carries out `actions` under `term`, stopping at the first failure that matters.
pub(crate) async fn execute_all(
    api: Arc<dyn ClusterApi>,
    term: u64,
    actions: Vec<Action>,
    controller: &'static str,
) -> Report {
    let mut report = Report::default();
    let mut updated: HashMap<ObjectKey, u64> = HashMap::new();
    let mut actions = actions.into_iter().peekable();
    while let Some(action) = actions.next() {
        if independent(&action) {
            let mut batch = vec![action];
            while let Some(next) = actions.next_if(independent) {
                batch.push(next);
            }
            let results: Vec<(Action, Result<u64, ApiError>)> = futures::stream::iter(batch)
                .map(|action| {
                    let api = Arc::clone(&api);
                    async move {
                        let result = api.execute(controller, action.clone(), term).await;
                        (action, result.map(|o| o.revision))
                    }
                })
                .buffer_unordered(CONCURRENT_WRITES)
                .collect()
                .await;
            for (action, result) in results {
                match result {
                    Ok(revision) => report.saw(revision),
                    Err(e) if harmless(&action, &e) => {
                        tracing::debug!(controller, action = %describe(&action), error = %e, "harmless failure");
                    }
                    Err(e) => {
                        tracing::debug!(controller, action = %describe(&action), error = %e, "write failed");
                        report.error.get_or_insert(e);
                    }
                }
            }
            if report.error.is_some() {
                return report;
            }
            continue;
        }
        let mut action = action;
        if let Action::UpdateStatus(object) = &mut action {
            if let Some(revision) = updated.get(&ObjectKey::of(object)) {
                object.metadata_mut().resource_version = revision.to_string();
            }
        }
        let key = match &action {
            Action::Update(object) => Some(ObjectKey::of(object)),
            _ => None,
        };
        match api.execute(controller, action.clone(), term).await {
            Ok(outcome) => {
                report.saw(outcome.revision);
                if let Some(key) = key {
                    updated.insert(key, outcome.revision);
                }
            }
            Err(e) if harmless(&action, &e) => {
                tracing::debug!(controller, action = %describe(&action), error = %e, "harmless failure");
            }
            Err(e) => {
                tracing::debug!(controller, action = %describe(&action), error = %e, "write failed");
                report.error = Some(e);
                return report;
            }
        }
    }
    report
}

/// Drops events identical (object, reason, message) to one let through within `window`.
/// Each event is remembered by a hash of those four strings, and forgotten in the order
/// it was let through once its window has passed, so a filter call costs the events it
/// is given, whatever the number remembered.
#[derive(Debug)]
pub(crate) struct EventFilter {
    window: Duration,
    hasher: RandomState,
    seen: HashMap<u64, Instant>,
    /// When each remembered event was let through, oldest first.
    order: VecDeque<(Instant, u64)>,
}

impl EventFilter {
    pub(crate) fn new(window: Duration) -> EventFilter {
        EventFilter {
            window,
            hasher: RandomState::new(),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The actions without the events recorded recently.
    pub(crate) fn filter(&mut self, actions: Vec<Action>, now: Instant) -> Vec<Action> {
        while let Some(&(at, id)) = self.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&id) == Some(&at) {
                self.seen.remove(&id);
            }
        }
        actions
            .into_iter()
            .filter(|action| {
                let Action::RecordEvent(event) = action else {
                    return true;
                };
                let id = self.hasher.hash_one((
                    &event.involved,
                    &event.involved_uid,
                    &event.reason,
                    &event.message,
                ));
                match self.seen.get(&id) {
                    Some(at) if now.saturating_duration_since(*at) < self.window => false,
                    _ => {
                        self.seen.insert(id, now);
                        self.order.push_back((now, id));
                        true
                    }
                }
            })
            .collect()
    }

    /// Events remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{EventRecord, EventType};

    fn event(pod: &str, message: &str) -> Action {
        Action::RecordEvent(EventRecord {
            involved: ObjectKey::new(Kind::Pod, "default", pod),
            involved_uid: format!("uid-{pod}"),
            event_type: EventType::Warning,
            reason: "FailedScheduling".to_owned(),
            message: message.to_owned(),
            component: "default-scheduler",
        })
    }

    #[test]
    fn an_identical_event_is_dropped_within_the_window_and_let_through_after_it() {
        let mut filter = EventFilter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let first = filter.filter(vec![event("web", "no nodes"), event("db", "no nodes")], t0);
        assert_eq!(first.len(), 2);
        let again = filter.filter(
            vec![
                event("web", "no nodes"),
                event("web", "0/1 nodes are available"),
            ],
            t0 + Duration::from_secs(59),
        );
        assert_eq!(
            again,
            vec![event("web", "0/1 nodes are available")],
            "the same object, reason and message within the window is dropped; another message is not"
        );
        let later = filter.filter(vec![event("web", "no nodes")], t0 + Duration::from_secs(60));
        assert_eq!(later.len(), 1, "the window has passed");
    }

    #[test]
    fn events_are_forgotten_once_their_window_has_passed() {
        let mut filter = EventFilter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let many: Vec<Action> = (0..1_000).map(|i| event(&format!("p{i}"), "m")).collect();
        assert_eq!(filter.filter(many, t0).len(), 1_000);
        assert_eq!(filter.remembered(), 1_000);
        filter.filter(Vec::new(), t0 + Duration::from_secs(30));
        assert_eq!(filter.remembered(), 1_000, "still within the window");
        filter.filter(vec![event("new", "m")], t0 + Duration::from_secs(61));
        assert_eq!(filter.remembered(), 1, "only the event let through last");
    }
}
