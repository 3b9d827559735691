//! A budget for the scheduler's `Scheduled` events: a token bucket, so that binding tens of
//! thousands of pods is not as many Event writes on top of their Bindings.
//!
//! ```text
//!  actions ─► Scheduled event? ─ no ──────────────► kept
//!                  │ yes
//!                  ▼
//!            a token (rate/s, burst)? ─ yes ─► kept
//!                  │ no
//!                  ▼
//!            dropped, counted; a log line at most every 10 s says how many
//! ```
//!
//! Off by default (every pod gets its `Scheduled` event, as in Kubernetes); the master's
//! `--scheduled-events-per-second` and `--scheduled-events-burst` turn it on. Owns the
//! bucket and the count only: it must not touch any other action (a Binding, a
//! `FailedScheduling` event) nor decide anything about scheduling.

use std::time::{Duration, Instant};

use crate::action::Action;

/// The reason of the events the budget applies to.
pub(crate) const SCHEDULED: &str = "Scheduled";

/// How often the count of dropped events is logged, at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How many `Scheduled` events may be written: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The bucket's size (and its content at the start).
    pub burst: u32,
}

/// The bucket, or no budget at all.
#[derive(Debug)]
pub(crate) struct EventBudget {
    rate: Option<EventRate>,
    tokens: f64,
    last: Option<Instant>,
    dropped: u64,
    reported: Option<Instant>,
}

impl EventBudget {
    pub(crate) fn new(rate: Option<EventRate>) -> EventBudget {
        EventBudget {
            tokens: rate.map_or(0.0, |r| f64::from(r.burst)),
            rate,
            last: None,
            dropped: 0,
            reported: None,
        }
    }

    /// The actions with the `Scheduled` events that find no token left out.
    pub(crate) fn admit(&mut self, actions: Vec<Action>, now: Instant) -> Vec<Action> {
        let Some(rate) = self.rate else {
            return actions;
        };
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * rate.per_second;
            self.tokens = (self.tokens + refill).min(f64::from(rate.burst));
        }
        self.last = Some(now);
        let before = self.dropped;
        let kept = actions
            .into_iter()
            .filter(|action| {
                let Action::RecordEvent(event) = action else {
                    return true;
                };
                if event.reason != SCHEDULED {
                    return true;
                }
                if self.tokens >= 1.0 {
                    self.tokens -= 1.0;
                    true
                } else {
                    self.dropped += 1;
                    false
                }
            })
            .collect();
        let due = self
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if self.dropped > before && due {
            tracing::info!(
                dropped = self.dropped,
                per_second = rate.per_second,
                burst = rate.burst,
                "Scheduled events over their budget are not recorded"
            );
            self.reported = Some(now);
        }
        kept
    }

    /// How many `Scheduled` events were left out so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{EventRecord, EventType, ObjectKey};
    use rafter_proto::Kind;

    fn event(reason: &str, pod: &str) -> Action {
        Action::RecordEvent(EventRecord {
            involved: ObjectKey::new(Kind::Pod, "default", pod),
            involved_uid: pod.to_owned(),
            event_type: EventType::Normal,
            reason: reason.to_owned(),
            message: String::new(),
            component: "default-scheduler",
        })
    }

    fn bind(pod: &str) -> Action {
        Action::Bind {
            namespace: "default".to_owned(),
            name: pod.to_owned(),
            uid: pod.to_owned(),
            node: "n1".to_owned(),
        }
    }

    fn batch(n: usize) -> Vec<Action> {
        (0..n)
            .flat_map(|i| {
                let pod = format!("p{i}");
                [bind(&pod), event(SCHEDULED, &pod)]
            })
            .collect()
    }

    fn scheduled(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::RecordEvent(e) if e.reason == SCHEDULED))
            .count()
    }

    #[test]
    fn without_a_budget_every_event_is_kept() {
        let mut budget = EventBudget::new(None);
        let kept = budget.admit(batch(100), Instant::now());
        assert_eq!(kept.len(), 200);
    }

    #[test]
    fn a_burst_then_the_rate_and_never_a_binding_or_another_event() {
        let mut budget = EventBudget::new(Some(EventRate {
            per_second: 10.0,
            burst: 5,
        }));
        let start = Instant::now();
        let mut first = batch(20);
        first.push(event("FailedScheduling", "stuck"));
        let kept = budget.admit(first, start);
        assert_eq!(scheduled(&kept), 5, "the burst");
        assert_eq!(
            kept.iter()
                .filter(|a| matches!(a, Action::Bind { .. }))
                .count(),
            20,
            "every Binding is kept"
        );
        assert!(kept
            .iter()
            .any(|a| matches!(a, Action::RecordEvent(e) if e.reason == "FailedScheduling")));
        assert_eq!(budget.dropped(), 15);

        // Half a second later: five more tokens at 10/s.
        let kept = budget.admit(batch(20), start + Duration::from_millis(500));
        assert_eq!(scheduled(&kept), 5);
        // A long pause refills only up to the burst.
        let kept = budget.admit(batch(20), start + Duration::from_secs(60));
        assert_eq!(scheduled(&kept), 5);
        assert_eq!(budget.dropped(), 45);
    }
}
