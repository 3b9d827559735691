//! The Service allocation repair loop (Kubernetes' ClusterIP and NodePort repair
//! controllers): while this master leads, one pass over the reservations now and then
//! every interval, through [`ClusterApi::repair_service_allocations`].
//!
//! ```text
//!  Lead{Some(t)} ─► pass(t) now ─► every interval: pass(t)   (one pass at a time)
//!                     │ released / restored ─► log
//!                     │ problems ─► Warning Event about the Service (fenced by t)
//!  Lead{None} ─► no more passes; a pass in flight finds its writes fenced
//! ```
//!
//! What a pass releases or restores is decided where the reservations live (the
//! registry, judged at one store revision); this actor only schedules passes and reports.
//! It must not touch Services or reservations itself.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rafter_proto::Kind;

use crate::action::{Action, EventRecord, EventType, ObjectKey};
use crate::runtime::api::{ApiError, ClusterApi};
use crate::runtime::controller::Lead;

const COMPONENT: &str = "service-allocation-repair";

/// The repair loop's actor.
pub(crate) struct AllocationRepairer {
    api: Arc<dyn ClusterApi>,
    interval: Duration,
    term: Option<u64>,
    /// Bumped on every change of leadership: a pass of an earlier one reports nothing.
    epoch: u64,
    running: bool,
}

impl AllocationRepairer {
    pub(crate) fn new(api: Arc<dyn ClusterApi>, interval: Duration) -> AllocationRepairer {
        AllocationRepairer {
            api,
            interval,
            term: None,
            epoch: 0,
            running: false,
        }
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        let Some(term) = self.term else { return };
        if self.running {
            return;
        }
        self.running = true;
        let api = Arc::clone(&self.api);
        let epoch = self.epoch;
        let work = async move { run_pass(api, term).await };
        ctx.spawn(work.into_actor(self).map(move |(), act, _| {
            if act.epoch == epoch {
                act.running = false;
            }
        }));
    }
}

async fn run_pass(api: Arc<dyn ClusterApi>, term: u64) {
    let report = match api.repair_service_allocations(term).await {
        Ok(report) => report,
        Err(ApiError::Fenced(_)) => return,
        Err(e) => {
            tracing::warn!(error = %e, "service allocation repair failed; trying again next interval");
            return;
        }
    };
    for released in &report.released {
        tracing::info!(%released, "service allocation repair: released");
    }
    for restored in &report.restored {
        tracing::warn!(%restored, "service allocation repair: restored a missing reservation");
    }
    for problem in report.problems {
        tracing::warn!(
            service = %format!("{}/{}", problem.namespace, problem.name),
            reason = %problem.reason,
            message = %problem.message,
            "service allocation repair"
        );
        let record = EventRecord {
            involved: ObjectKey::new(Kind::Service, problem.namespace, problem.name),
            involved_uid: problem.uid,
            event_type: EventType::Warning,
            reason: problem.reason,
            message: problem.message,
            component: COMPONENT,
        };
        if let Err(e) = api.execute(Action::RecordEvent(record), term).await {
            tracing::debug!(error = %e, "service allocation repair: event not recorded");
        }
    }
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
        self.pass(ctx);
    }
}
