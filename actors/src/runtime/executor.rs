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

use std::collections::HashMap;
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
#[derive(Debug)]
pub(crate) struct EventFilter {
    window: Duration,
    seen: HashMap<(String, String, String), Instant>,
}

impl EventFilter {
    pub(crate) fn new(window: Duration) -> EventFilter {
        EventFilter {
            window,
            seen: HashMap::new(),
        }
    }

    /// The actions without the events recorded recently.
    pub(crate) fn filter(&mut self, actions: Vec<Action>, now: Instant) -> Vec<Action> {
        if self.seen.len() > 10_000 {
            let window = self.window;
            self.seen.retain(|_, at| now.duration_since(*at) < window);
        }
        actions
            .into_iter()
            .filter(|action| {
                let Action::RecordEvent(event) = action else {
                    return true;
                };
                let id = (
                    format!("{}#{}", event.involved, event.involved_uid),
                    event.reason.clone(),
                    event.message.clone(),
                );
                match self.seen.get(&id) {
                    Some(at) if now.duration_since(*at) < self.window => false,
                    _ => {
                        self.seen.insert(id, now);
                        true
                    }
                }
            })
            .collect()
    }
}
