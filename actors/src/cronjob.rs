//! The CronJob controller: creates a Job from the template at each tick of the schedule,
//! honouring `concurrencyPolicy`, `startingDeadlineSeconds` and `suspend`, and prunes
//! finished Jobs beyond the history limits.
//!
//! ```text
//!  Jobs controlled by the CronJob ─┬─ running ─► status.active
//!                                  └─ finished ─► lastSuccessfulTime; beyond the history
//!                                                 limits (oldest first) ─► Delete
//!  suspend? ─► stop here
//!  ticks of the schedule in (lastScheduleTime or creation, now]  (not before
//!  now - startingDeadlineSeconds) ─► the newest one, T
//!     Job "<name>-<T>" exists already ─► done (a re-decision after a failover)
//!     Forbid and a Job runs ─► wait; Replace ─► delete the running Jobs
//!     ─► Create Job "<name>-<T>" (annotation: T), lastScheduleTime = T
//!  requeue at the next tick after now
//! ```
//!
//! Owns the Jobs of one CronJob. Every decision is judged on the `now` the leader passes in
//! and the Job of a tick is named after the tick (as Kubernetes does: minutes since the
//! epoch, or seconds for a schedule with a seconds field), so a leader that decides again
//! after a failover finds the Job the previous leader created, or creates it under the same
//! name: a tick is neither skipped nor run twice. It must not manage the pods of those
//! Jobs (the Job controller does).

use std::time::Duration;

use rafter_proto::v1::{self, CronJobStatus, ObjectMeta};
use rafter_proto::{CronSchedule, Object, Propagation, Timestamp};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::pods::{self, controller_owner_reference};

/// The component named in the events this controller records.
pub const COMPONENT: &str = "cronjob-controller";
/// The annotation on a Job with the tick it was scheduled for (RFC 3339).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Ticks looked back over at most; more missed ticks than this are reported.
const MAX_MISSED: usize = 100;

/// Reconciles one CronJob at `now`.
pub fn reconcile(cache: &Cache, key: &ObjectKey, now: Timestamp) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::CronJob(cron) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let meta = object.metadata();
    let spec = cron.spec.clone().unwrap_or_default();
    let old = cron.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut out = Reconciled::nothing();

    let jobs: Vec<&v1::Job> = cache
        .controlled_by(&meta.uid)
        .filter_map(|o| match o.as_ref() {
            Object::Job(j) => Some(j),
            _ => None,
        })
        .collect();
    let (finished, mut running): (Vec<&v1::Job>, Vec<&v1::Job>) =
        jobs.iter().partition(|j| finish(j).is_some());
    running.sort_by(|a, b| job_meta(a).name.cmp(&job_meta(b).name));
    if let Some(latest) = finished
        .iter()
        .filter(|j| finish(j) == Some(true))
        .filter_map(|j| Timestamp::parse_opt(j.status.as_ref()?.completion_time.as_ref()))
        .max()
    {
        status.last_successful_time = Some(latest.to_rfc3339());
    }
    prune_history(&finished, &spec, &mut out);

    if meta.deletion_timestamp.is_some() {
        status.active = references(&running);
        push_status(cron, &old, status, &mut out);
        return out;
    }
    let schedule = match CronSchedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            out.actions.push(event(
                object,
                EventType::Warning,
                "UnparseableSchedule",
                e.to_string(),
            ));
            status.active = references(&running);
            push_status(cron, &old, status, &mut out);
            return out;
        }
    };
    if spec.suspend == Some(true) {
        status.active = references(&running);
        push_status(cron, &old, status, &mut out);
        return out;
    }

    // The newest tick due and not yet run.
    let created = Timestamp::parse_opt(meta.creation_timestamp.as_ref()).unwrap_or(now);
    let mut earliest = Timestamp::parse_opt(old.last_schedule_time.as_ref()).unwrap_or(created);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now.plus_seconds(-deadline));
    }
    let (ticks, missed) = schedule.ticks_between(earliest, now, 1);
    if missed > MAX_MISSED {
        out.actions.push(event(
            object,
            EventType::Warning,
            "TooManyMissedTimes",
            format!("too many missed start times: {missed}; check clock skew or set startingDeadlineSeconds"),
        ));
    }
    if let Some(&tick) = ticks.last() {
        let name = job_name(&meta.name, tick);
        let exists = cache
            .get(&ObjectKey::new(
                rafter_proto::Kind::Job,
                meta.namespace.clone(),
                name.clone(),
            ))
            .is_some();
        let blocked = spec.concurrency_policy == "Forbid" && !running.is_empty();
        if exists {
            // Decided before (possibly by an earlier leader): only the status lags.
            if Timestamp::parse_opt(status.last_schedule_time.as_ref()) < Some(tick) {
                status.last_schedule_time = Some(tick.to_rfc3339());
            }
        } else if blocked {
            out.actions.push(event(
                object,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".to_owned(),
            ));
        } else {
            if spec.concurrency_policy == "Replace" {
                for job in running.drain(..) {
                    out.actions.push(Action::Delete {
                        key: ObjectKey::new(
                            rafter_proto::Kind::Job,
                            meta.namespace.clone(),
                            job_meta(job).name.clone(),
                        ),
                        uid: Some(job_meta(job).uid.clone()),
                        grace_period_seconds: None,
                        propagation: Some(Propagation::Background),
                    });
                    out.actions.push(event(
                        object,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted job {}", job_meta(job).name),
                    ));
                }
            }
            let job = job_for_tick(object, &spec, name.clone(), tick);
            out.actions.push(Action::Create(Object::Job(job)));
            out.actions.push(event(
                object,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {name}"),
            ));
            status.last_schedule_time = Some(tick.to_rfc3339());
            let mut active = references(&running);
            active.push(v1::ObjectReference {
                kind: "Job".to_owned(),
                namespace: meta.namespace.clone(),
                name,
                api_version: "batch/v1".to_owned(),
                ..Default::default()
            });
            status.active = active;
            push_status(cron, &old, status, &mut out);
            requeue_at_next_tick(&schedule, now, &mut out);
            return out;
        }
    }
    status.active = references(&running);
    push_status(cron, &old, status, &mut out);
    requeue_at_next_tick(&schedule, now, &mut out);
    out
}

/// The name of the Job of `tick`: minutes since the epoch, or seconds when the tick is not
/// on a whole minute (a schedule with a seconds field).
pub fn job_name(cron_job: &str, tick: Timestamp) -> String {
    let seconds = tick.unix_seconds();
    if seconds % 60 == 0 {
        format!("{cron_job}-{}", seconds / 60)
    } else {
        format!("{cron_job}-{seconds}")
    }
}

/// A Job of the CronJob for `tick`, from its template; owned by the CronJob.
pub fn job_for_tick(
    owner: &Object,
    spec: &v1::CronJobSpec,
    name: String,
    tick: Timestamp,
) -> v1::Job {
    let meta = owner.metadata();
    let template = spec.job_template.as_deref().cloned().unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations;
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.to_owned(), tick.to_rfc3339());
    v1::Job {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        metadata: Some(ObjectMeta {
            name,
            namespace: meta.namespace.clone(),
            labels: tmeta.labels,
            annotations,
            owner_references: vec![controller_owner_reference(owner)],
            ..Default::default()
        }),
        spec: template.spec,
        status: None,
    }
}

fn requeue_at_next_tick(schedule: &CronSchedule, now: Timestamp, out: &mut Reconciled) {
    if let Some(next) = schedule.next_after(now) {
        // A little past the tick, so the reconcile that wakes finds it due.
        out.requeue_within(next.since(now) + Duration::from_millis(1));
    }
}

fn job_meta(job: &v1::Job) -> &ObjectMeta {
    static EMPTY: std::sync::OnceLock<ObjectMeta> = std::sync::OnceLock::new();
    job.metadata
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(ObjectMeta::default))
}

/// `Some(true)` for a Complete Job, `Some(false)` for a Failed one, `None` while it runs.
fn finish(job: &v1::Job) -> Option<bool> {
    let conditions = &job.status.as_ref()?.conditions;
    let is = |kind| pods::condition(conditions, kind).is_some_and(|c| c.status == "True");
    if is("Complete") {
        Some(true)
    } else if is("Failed") {
        Some(false)
    } else {
        None
    }
}

fn references(jobs: &[&v1::Job]) -> Vec<v1::ObjectReference> {
    jobs.iter()
        .map(|j| {
            let m = job_meta(j);
            v1::ObjectReference {
                kind: "Job".to_owned(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                uid: m.uid.clone(),
                api_version: "batch/v1".to_owned(),
                ..Default::default()
            }
        })
        .collect()
}

/// Deletes the oldest finished Jobs beyond the history limits.
fn prune_history(finished: &[&v1::Job], spec: &v1::CronJobSpec, out: &mut Reconciled) {
    for (succeeded, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut these: Vec<&&v1::Job> = finished
            .iter()
            .filter(|j| finish(j) == Some(succeeded))
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if these.len() <= keep {
            continue;
        }
        these.sort_by_key(|j| {
            let m = job_meta(j);
            let start = j
                .status
                .as_ref()
                .and_then(|s| Timestamp::parse_opt(s.start_time.as_ref()));
            (
                start.or_else(|| Timestamp::parse_opt(m.creation_timestamp.as_ref())),
                m.name.clone(),
            )
        });
        let excess = these.len() - keep;
        for job in these.into_iter().take(excess) {
            out.actions.push(Action::Delete {
                key: ObjectKey::of(&Object::Job((*job).clone())),
                uid: Some(job_meta(job).uid.clone()).filter(|u| !u.is_empty()),
                grace_period_seconds: None,
                propagation: Some(Propagation::Background),
            });
        }
    }
}

fn push_status(
    cron: &v1::CronJob,
    old: &CronJobStatus,
    status: CronJobStatus,
    out: &mut Reconciled,
) {
    if *old == status {
        return;
    }
    let mut updated = cron.clone();
    updated.status = Some(status);
    out.actions
        .push(Action::UpdateStatus(Object::CronJob(updated)));
}

fn event(object: &Object, kind: EventType, reason: &str, message: String) -> Action {
    Action::RecordEvent(EventRecord::about(object, kind, reason, message, COMPONENT))
}

#[cfg(test)]
#[path = "cronjob_test.rs"]
mod tests;
