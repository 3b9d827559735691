//! The Service allocation repair loop (Kubernetes' ClusterIP and NodePort repair
//! controllers): while this master leads, one pass over the reservations now and then
//! every interval, through [`ClusterApi::repair_service_allocations`].
//!
//! ```text
//!  Lead{Some(t)} ─► pass(t) now ─► every interval: pass(t)   (one pass at a time)
//!                     │ released / restored / problems ─► log
//!                     │ problems new in this leadership ─► Warning Event about the Service (fenced by t)
//!                     │ the pass failed, or an event was not written ─► another pass after a
//!                     │   back-off (0.5 s, doubling, at most the interval), not a whole interval
//!  Lead{None} ─► no more passes; a pass in flight finds its writes fenced
//! ```
//!
//! The back-off matters to a new leader: its first writes may be refused while the
//! cluster settles (a store catching up, the controllers' RBAC roles still being created
//! after a restart), and a minute-long interval would hold its findings back that long.
//!
//! What a pass releases or restores is decided where the reservations live (the
//! registry, judged at one store revision); this actor only schedules passes and reports.
//! It must not touch Services or reservations itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rafter_proto::Kind;

use crate::action::{Action, EventRecord, EventType, ObjectKey};
use crate::runtime::api::{AllocationProblem, AllocationRepair, ApiError, ClusterApi};
use crate::runtime::controller::Lead;
use crate::runtime::queue::Backoff;

const COMPONENT: &str = "service-allocation-repair";

/// The first delay before a failed pass (or an unwritten event) is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// The repair loop's actor.
pub(crate) struct AllocationRepairer {
    api: Arc<dyn ClusterApi>,
    interval: Duration,
    term: Option<u64>,
    /// Bumped on every change of leadership: a pass of an earlier one reports nothing.
    epoch: u64,
    running: bool,
    /// Problems already recorded as events in this leadership (uid, reason, message): a
    /// problem that stays is logged every pass and recorded once.
    recorded: HashSet<(String, String, String)>,
    /// Passes in a row that failed or left an event unwritten.
    failures: u32,
    /// The pass scheduled after a failure, before the next interval.
    retry: Option<SpawnHandle>,
}

impl AllocationRepairer {
    pub(crate) fn new(api: Arc<dyn ClusterApi>, interval: Duration) -> AllocationRepairer {
        AllocationRepairer {
            api,
            interval,
            term: None,
            epoch: 0,
            running: false,
            recorded: HashSet::new(),
            failures: 0,
            retry: None,
        }
    }

    /// Schedules another pass after the back-off of one more failure in a row.
    fn retry_soon(&mut self, ctx: &mut Context<Self>) {
        self.failures = self.failures.saturating_add(1);
        let backoff = Backoff {
            base: RETRY_FIRST.min(self.interval),
            max: self.interval,
        };
        let delay = backoff.delay(self.failures);
        if let Some(previous) = self.retry.take() {
            ctx.cancel_future(previous);
        }
        let epoch = self.epoch;
        self.retry = Some(ctx.run_later(delay, move |act, ctx| {
            act.retry = None;
            if act.epoch == epoch {
                act.pass(ctx);
            }
        }));
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        let Some(term) = self.term else { return };
        if self.running {
            return;
        }
        self.running = true;
        let api = Arc::clone(&self.api);
        let epoch = self.epoch;
        let work = async move { api.repair_service_allocations(term).await };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            if act.epoch != epoch {
                return;
            }
            act.running = false;
            let report = match result {
                Ok(report) => report,
                Err(ApiError::Fenced(_)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "service allocation repair failed; trying again soon");
                    act.retry_soon(ctx);
                    return;
                }
            };
            let fresh = act.log_and_keep_new(report);
            if fresh.is_empty() {
                act.failures = 0;
                return;
            }
            // A problem whose event could not be written is forgotten, so the next pass,
            // made soon, records it again (a new leader's first writes may be refused).
            let writes = record(Arc::clone(&act.api), term, fresh);
            ctx.spawn(writes.into_actor(act).map(move |failed, act, ctx| {
                if act.epoch != epoch {
                    return;
                }
                if failed.is_empty() {
                    act.failures = 0;
                    return;
                }
                for problem in &failed {
                    act.recorded.remove(&problem_key(problem));
                }
                act.retry_soon(ctx);
            }));
        }));
    }

    /// Logs a pass's findings and returns the problems not yet recorded as events.
    fn log_and_keep_new(&mut self, report: AllocationRepair) -> Vec<AllocationProblem> {
        for released in &report.released {
            tracing::info!(%released, "service allocation repair: released");
        }
        for restored in &report.restored {
            tracing::warn!(%restored, "service allocation repair: restored a missing reservation");
        }
        let mut fresh = Vec::new();
        for problem in report.problems {
            tracing::warn!(
                service = %format!("{}/{}", problem.namespace, problem.name),
                reason = %problem.reason,
                message = %problem.message,
                "service allocation repair"
            );
            if self.recorded.insert(problem_key(&problem)) {
                fresh.push(problem);
            }
        }
        fresh
    }
}

/// What identifies a problem across passes: the Service's uid, the reason, the message.
fn problem_key(problem: &AllocationProblem) -> (String, String, String) {
    (
        problem.uid.clone(),
        problem.reason.clone(),
        problem.message.clone(),
    )
}

/// Records `problems` as Warning events about their Services, fenced by `term`; the ones
/// whose event was not written.
async fn record(
    api: Arc<dyn ClusterApi>,
    term: u64,
    problems: Vec<AllocationProblem>,
) -> Vec<AllocationProblem> {
    let mut failed = Vec::new();
    for problem in problems {
        let record = EventRecord {
            involved: ObjectKey::new(
                Kind::Service,
                problem.namespace.clone(),
                problem.name.clone(),
            ),
            involved_uid: problem.uid.clone(),
            event_type: EventType::Warning,
            reason: problem.reason.clone(),
            message: problem.message.clone(),
            component: COMPONENT,
        };
        if let Err(e) = api
            .execute(COMPONENT, Action::RecordEvent(record), term)
            .await
        {
            tracing::warn!(error = %e, "service allocation repair: event not recorded; trying again soon");
            failed.push(problem);
        }
    }
    failed
}

impl Actor for AllocationRepairer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.pass(ctx));
    }
}

impl Handler<Lead> for AllocationRepairer {
    type Result = ();

    fn handle(&mut self, lead: Lead, ctx: &mut Self::Context) {
        if lead.term == self.term {
            return;
        }
        self.term = lead.term;
        self.epoch += 1;
        self.running = false;
        self.recorded.clear();
        self.failures = 0;
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
        self.pass(ctx);
    }
}
