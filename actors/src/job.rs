//! The Job controller: runs a Job's pods to completion, `parallelism` at a time, retries
//! failures with exponential back-off up to `backoffLimit`, and writes the outcome
//! (`Complete` or `Failed`) and the counts into the Job's status.
//!
//! ```text
//!  pods controlled by the Job (ownerReference uid)
//!    ├─ Succeeded ─► succeeded (NonIndexed: a count; Indexed: completedIndexes ∪ pod indexes)
//!    ├─ Failed ────► podFailurePolicy: FailJob → Failed now │ Ignore → not counted │ Count
//!    └─ running (not finished; terminating ones still hold their slot and index)
//!  finished (Complete/Failed condition)? ─► delete leftovers; ttlSecondsAfterFinished → Delete Job
//!  suspend ─► delete active pods, Suspended=True; resume ─► Suspended=False, startTime = now
//!  failed > backoffLimit │ FailJob │ now ≥ startTime + activeDeadlineSeconds ─► Failed
//!  all completions done ─► Complete (completionTime = now)
//!  otherwise: back-off since the last failure elapsed? ─► create pods up to parallelism
//!             (Indexed: the lowest indexes neither done nor running)
//! ```
//!
//! Owns the pods of one Job and its status. Time is the `now` the leader passes in (back-off,
//! deadlines, TTL are all judged on it; the answer says when to look again). Pod names are
//! derived from the Job's uid and the pods the cache holds, not from randomness, so two
//! decisions taken on the same cache (a new leader re-deciding) name the same pods and the
//! second create fails as AlreadyExists instead of running a pod twice; the runtime's
//! expectations and term fencing keep a leader from deciding on a cache that lacks its own
//! or an earlier term's writes. Finished pods are counted from the cache and never fewer
//! than the status already says, so a finished pod deleted by hand does not run again.
//! Pods are not adopted by selector: a Job's pods are the ones it created (Kubernetes'
//! generated `controller-uid` selector has the same effect). Deleting the Job deletes its
//! pods through the garbage collector.

use std::collections::BTreeSet;
use std::time::Duration;

use rafter_proto::v1::{self, Condition, JobSpec, JobStatus};
use rafter_proto::{Object, Propagation, Timestamp};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::pods::{self, is_ready, is_terminating, name_suffix, phase, seed_with};
use crate::replicaset::pod_from_template;

/// The component named in the events this controller records.
pub const COMPONENT: &str = "job-controller";
/// The label naming a pod's Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The label carrying the uid of a pod's Job.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The annotation (and label) carrying an Indexed Job pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job pod's containers find their index in.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The most pods created in one reconcile.
const BURST: usize = 500;

/// The back-off between a failed pod and its replacement: `base · 2^(failures-1)`, at
/// most `max` (Kubernetes: 10 s, 6 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBackoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for JobBackoff {
    fn default() -> Self {
        JobBackoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

impl JobBackoff {
    /// The delay after `failures` counted failures (none for 0).
    pub fn delay(&self, failures: i32) -> Duration {
        if failures <= 0 {
            return Duration::ZERO;
        }
        let shift = u32::try_from(failures - 1).unwrap_or(0).min(20);
        self.base.saturating_mul(1 << shift).min(self.max)
    }
}

/// What the pods of a Job amount to, read from the cache.
struct Census<'a> {
    /// Pods not finished (terminating ones included: they still hold a slot).
    running: Vec<&'a v1::Pod>,
    /// Running pods not being deleted.
    active: Vec<&'a v1::Pod>,
    succeeded: Vec<&'a v1::Pod>,
    failed: Vec<&'a v1::Pod>,
}

impl<'a> Census<'a> {
    fn of(cache: &'a Cache, uid: &str) -> Census<'a> {
        let mut census = Census {
            running: Vec::new(),
            active: Vec::new(),
            succeeded: Vec::new(),
            failed: Vec::new(),
        };
        for object in cache.controlled_by(uid) {
            let Object::Pod(pod) = object.as_ref() else {
                continue;
            };
            match phase(pod) {
                "Succeeded" => census.succeeded.push(pod),
                "Failed" => census.failed.push(pod),
                _ => {
                    census.running.push(pod);
                    if !is_terminating(pod) {
                        census.active.push(pod);
                    }
                }
            }
        }
        census
    }

    fn total(&self) -> usize {
        self.running.len() + self.succeeded.len() + self.failed.len()
    }
}

/// Reconciles one Job at `now`.
pub fn reconcile(
    cache: &Cache,
    key: &ObjectKey,
    now: Timestamp,
    backoff: JobBackoff,
) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::Job(job) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let meta = object.metadata();
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let census = Census::of(cache, &meta.uid);
    let mut out = Reconciled::nothing();

    if let Some(finished_at) = finished_at(&old) {
        // Leftovers of the reconcile that finished it (a delete that failed) go now.
        for pod in &census.active {
            out.actions
                .push(Action::delete_of(&Object::Pod((*pod).clone())));
        }
        count_pods(&mut status, &census, 0, census.active.len());
        expire(object, &spec, finished_at, now, &mut out);
        push_status(job, &old, status, &mut out);
        return out;
    }
    if meta.deletion_timestamp.is_some() {
        return out;
    }

    let indexed = spec.completion_mode == "Indexed";
    let completions = spec.completions.map(|c| c.max(0));
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1).max(0)).unwrap_or(0);
    let suspended = spec.suspend == Some(true);

    // What finished.
    let mut fail_job = None;
    let mut counted_failures = 0;
    for pod in &census.failed {
        match failure_action(&spec, pod) {
            Verdict::FailJob(message) => {
                fail_job.get_or_insert(message);
                counted_failures += 1;
            }
            Verdict::Ignore => {}
            Verdict::Count => counted_failures += 1,
        }
    }
    status.failed = old.failed.max(count(counted_failures));
    let completed: BTreeSet<i32> = if indexed {
        let limit = completions.unwrap_or(0);
        let mut done = parse_indexes(&old.completed_indexes);
        done.extend(census.succeeded.iter().filter_map(|p| pod_index(p)));
        done.retain(|i| *i < limit);
        status.completed_indexes = format_indexes(&done);
        done
    } else {
        BTreeSet::new()
    };
    status.succeeded = if indexed {
        count(completed.len())
    } else {
        old.succeeded.max(count(census.succeeded.len()))
    };

    // Suspension and the clock of activeDeadlineSeconds.
    let was_suspended =
        pods::condition(&old.conditions, "Suspended").is_some_and(|c| c.status == "True");
    if suspended {
        for pod in &census.active {
            out.actions
                .push(Action::delete_of(&Object::Pod((*pod).clone())));
        }
        if !was_suspended {
            set_condition(
                &mut status.conditions,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
            out.actions.push(event(
                object,
                EventType::Normal,
                "Suspended",
                "Job suspended".to_owned(),
            ));
        }
        count_pods(&mut status, &census, 0, census.active.len());
        push_status(job, &old, status, &mut out);
        return out;
    }
    if was_suspended {
        set_condition(
            &mut status.conditions,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
        status.start_time = Some(now.to_rfc3339());
        out.actions.push(event(
            object,
            EventType::Normal,
            "Resumed",
            "Job resumed".to_owned(),
        ));
    }
    if status.start_time.is_none() {
        status.start_time = Some(now.to_rfc3339());
    }
    let started = Timestamp::parse_opt(status.start_time.as_ref()).unwrap_or(now);

    // Failure.
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0);
    let failure = if let Some(message) = fail_job {
        Some(("PodFailurePolicy", message))
    } else if status.failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_owned(),
        ))
    } else {
        match spec.active_deadline_seconds {
            Some(deadline) if now >= started.plus_seconds(deadline) => Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_owned(),
            )),
            Some(deadline) => {
                out.requeue_within(started.plus_seconds(deadline).since(now));
                None
            }
            None => None,
        }
    };
    if let Some((reason, message)) = failure {
        for pod in &census.active {
            out.actions
                .push(Action::delete_of(&Object::Pod((*pod).clone())));
        }
        set_condition(
            &mut status.conditions,
            "Failed",
            "True",
            reason,
            &message,
            now,
        );
        out.actions
            .push(event(object, EventType::Warning, reason, message));
        count_pods(&mut status, &census, 0, census.active.len());
        expire(object, &spec, now, now, &mut out);
        push_status(job, &old, status, &mut out);
        return out;
    }

    // Completion.
    let complete = match (indexed, completions) {
        (true, Some(c)) => count(completed.len()) >= c,
        (false, Some(c)) => status.succeeded >= c,
        (_, None) => status.succeeded > 0 && census.active.is_empty(),
    };
    if complete {
        for pod in &census.active {
            out.actions
                .push(Action::delete_of(&Object::Pod((*pod).clone())));
        }
        set_condition(&mut status.conditions, "Complete", "True", "", "", now);
        status.completion_time = Some(now.to_rfc3339());
        out.actions.push(event(
            object,
            EventType::Normal,
            "Completed",
            "Job completed".to_owned(),
        ));
        count_pods(&mut status, &census, 0, census.active.len());
        expire(object, &spec, now, now, &mut out);
        push_status(job, &old, status, &mut out);
        return out;
    }

    // Pods to start (after the back-off of the last failure) or to stop.
    let ready_at = last_failure(&census.failed).map(|at| at.plus(backoff.delay(status.failed)));
    let backing_off = ready_at.is_some_and(|at| at > now);
    if let (true, Some(at)) = (backing_off, ready_at) {
        out.requeue_within(at.since(now));
    }
    let mut created = 0;
    let mut deleted = 0;
    let template = spec.template.clone().unwrap_or_default();
    let mut names = NameStream::new(cache, &meta.namespace, &meta.uid, census.total());
    if indexed {
        let limit = completions.unwrap_or(0);
        let mut held = BTreeSet::new();
        for pod in &census.running {
            match pod_index(pod) {
                Some(i) if i < limit && !completed.contains(&i) && held.insert(i) => {}
                // A duplicate, finished or out-of-range index: stop it.
                _ if !is_terminating(pod) => {
                    out.actions
                        .push(Action::delete_of(&Object::Pod((*pod).clone())));
                    deleted += 1;
                }
                _ => {}
            }
        }
        let room = parallelism
            .saturating_sub(census.running.len() - deleted)
            .min(BURST);
        if !backing_off {
            let pending = (0..limit).filter(|i| !completed.contains(i) && !held.contains(i));
            for index in pending.take(room) {
                let name = names.next(&format!("{}-{index}", meta.name));
                let pod = job_pod(object, &template, name, Some(index));
                push_create(object, pod, &mut out);
                created += 1;
            }
        }
    } else {
        let want = match completions {
            Some(c) => usize::try_from(c - status.succeeded)
                .unwrap_or(0)
                .min(parallelism),
            None if status.succeeded > 0 => 0,
            None => parallelism,
        };
        if census.active.len() > want {
            let mut extra = census.active.clone();
            extra.sort_by_key(|p| {
                (
                    is_ready(p),
                    std::cmp::Reverse(created_at(p)),
                    pods::meta(p).name.clone(),
                )
            });
            for pod in extra.into_iter().take(census.active.len() - want) {
                out.actions
                    .push(Action::delete_of(&Object::Pod(pod.clone())));
                deleted += 1;
            }
        } else if !backing_off {
            let room = want.saturating_sub(census.running.len()).min(BURST);
            for _ in 0..room {
                let name = names.next(&meta.name);
                let pod = job_pod(object, &template, name, None);
                push_create(object, pod, &mut out);
                created += 1;
            }
        }
    }
    count_pods(&mut status, &census, created, deleted);
    push_status(job, &old, status, &mut out);
    out
}

/// What a pod failure policy says of one failed pod.
enum Verdict {
    FailJob(String),
    Ignore,
    Count,
}

fn exit_codes(pod: &v1::Pod, container: Option<&str>) -> Vec<(String, i32)> {
    let statuses = pod.status.iter().flat_map(|s| s.container_statuses.iter());
    statuses
        .filter(|c| container.is_none_or(|name| c.name == name))
        .filter_map(|c| {
            let terminated = c.state.as_ref().and_then(|s| s.terminated.as_ref())?;
            Some((c.name.clone(), terminated.exit_code))
        })
        .collect()
}

fn failure_action(spec: &JobSpec, pod: &v1::Pod) -> Verdict {
    let Some(policy) = &spec.pod_failure_policy else {
        return Verdict::Count;
    };
    let pod_name = &pods::meta(pod).name;
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            exit_codes(pod, codes.container_name.as_deref())
                .into_iter()
                .find(|(_, code)| match codes.operator.as_str() {
                    "In" => codes.values.contains(code),
                    "NotIn" => *code != 0 && !codes.values.contains(code),
                    _ => false,
                })
                .map(|(container, code)| {
                    format!("Container {container} for pod {pod_name} failed with exit code {code} matching {} rule at index {i}", rule.action)
                })
        } else {
            let conditions = pod.status.iter().flat_map(|s| s.conditions.iter());
            let mut found = None;
            for condition in conditions {
                let hit = rule.on_pod_conditions.iter().any(|p| {
                    p.r#type == condition.r#type
                        && (if p.status.is_empty() {
                            "True"
                        } else {
                            p.status.as_str()
                        }) == condition.status
                });
                if hit {
                    found = Some(format!(
                        "Pod {pod_name} has condition {} matching {} rule at index {i}",
                        condition.r#type, rule.action
                    ));
                    break;
                }
            }
            found
        };
        if let Some(message) = matched {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(message),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

/// When the newest failure happened: its containers' finish, else the pod's creation.
fn last_failure(failed: &[&v1::Pod]) -> Option<Timestamp> {
    failed
        .iter()
        .filter_map(|pod| {
            let finished = pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter())
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
                .filter_map(|t| Timestamp::parse(t))
                .max();
            finished.or_else(|| created_at(pod))
        })
        .max()
}

fn created_at(pod: &v1::Pod) -> Option<Timestamp> {
    Timestamp::parse_opt(pods::meta(pod).creation_timestamp.as_ref())
}

/// The completion index of an Indexed Job's pod.
pub fn pod_index(pod: &v1::Pod) -> Option<i32> {
    pods::meta(pod)
        .annotations
        .get(COMPLETION_INDEX_ANNOTATION)?
        .parse()
        .ok()
}

/// `"0-2,5"` into `{0, 1, 2, 5}`; malformed parts are skipped.
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<i32>().ok()),
        }
    }
    out
}

/// `{0, 1, 2, 5}` as `"0-2,5"`.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((start, end)) if i == end + 1 => Some((start, i)),
            Some((start, end)) => {
                parts.push(range(start, end));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((start, end)) = run {
        parts.push(range(start, end));
    }
    parts.join(",")
}

fn range(start: i32, end: i32) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// When the Job finished (Complete or Failed), if it has.
fn finished_at(status: &JobStatus) -> Option<Timestamp> {
    ["Complete", "Failed"].iter().find_map(|kind| {
        let c = pods::condition(&status.conditions, kind).filter(|c| c.status == "True")?;
        let at = if *kind == "Complete" {
            status.completion_time.as_ref()
        } else {
            c.last_transition_time.as_ref()
        };
        Some(Timestamp::parse_opt(at).unwrap_or_default())
    })
}

/// ttlSecondsAfterFinished: delete the Job once it has been finished that long.
fn expire(
    object: &Object,
    spec: &JobSpec,
    finished: Timestamp,
    now: Timestamp,
    out: &mut Reconciled,
) {
    let Some(ttl) = spec.ttl_seconds_after_finished else {
        return;
    };
    let at = finished.plus_seconds(i64::from(ttl));
    if now >= at {
        if object.metadata().deletion_timestamp.is_none() {
            out.actions.push(Action::Delete {
                key: ObjectKey::of(object),
                uid: Some(object.metadata().uid.clone()),
                grace_period_seconds: None,
                propagation: Some(Propagation::Foreground),
            });
        }
    } else {
        out.requeue_within(at.since(now));
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Active, ready and terminating counts once `created` pods are added and `deleted`
/// active ones are being deleted.
fn count_pods(status: &mut JobStatus, census: &Census<'_>, created: usize, deleted: usize) {
    let active = (census.active.len() + created).saturating_sub(deleted);
    status.active = count(active);
    let ready = census.active.iter().filter(|p| is_ready(p)).count();
    status.ready = Some(count(ready.min(active)));
    status.terminating = Some(count(census.running.len() - census.active.len() + deleted));
}

fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: &str,
    state: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let at = Some(now.to_rfc3339());
    if let Some(c) = conditions.iter_mut().find(|c| c.r#type == kind) {
        if c.status != state {
            c.status = state.to_owned();
            c.last_transition_time.clone_from(&at);
        }
        c.last_probe_time = at;
        reason.clone_into(&mut c.reason);
        message.clone_into(&mut c.message);
        return;
    }
    conditions.push(Condition {
        r#type: kind.to_owned(),
        status: state.to_owned(),
        last_probe_time: at.clone(),
        last_transition_time: at,
        reason: reason.to_owned(),
        message: message.to_owned(),
        ..Default::default()
    });
}

fn push_status(job: &v1::Job, old: &JobStatus, status: JobStatus, out: &mut Reconciled) {
    if job.status.is_some() && *old == status {
        return;
    }
    let mut updated = job.clone();
    updated.status = Some(status);
    out.actions.push(Action::UpdateStatus(Object::Job(updated)));
}

fn event(object: &Object, kind: EventType, reason: &str, message: String) -> Action {
    Action::RecordEvent(EventRecord::about(object, kind, reason, message, COMPONENT))
}

fn push_create(owner: &Object, pod: v1::Pod, out: &mut Reconciled) {
    let name = pods::meta(&pod).name.clone();
    out.actions.push(Action::Create(Object::Pod(pod)));
    out.actions.push(event(
        owner,
        EventType::Normal,
        "SuccessfulCreate",
        format!("Created pod: {name}"),
    ));
}

/// Pod names derived from the Job's uid and how many pods it has had, skipping names in
/// use: the same cache always gives the same names.
struct NameStream<'a> {
    cache: &'a Cache,
    namespace: &'a str,
    uid: &'a str,
    counter: u64,
    taken: BTreeSet<String>,
}

impl<'a> NameStream<'a> {
    fn new(cache: &'a Cache, namespace: &'a str, uid: &'a str, pods: usize) -> NameStream<'a> {
        NameStream {
            cache,
            namespace,
            uid,
            counter: u64::try_from(pods).unwrap_or(0),
            taken: BTreeSet::new(),
        }
    }

    fn next(&mut self, prefix: &str) -> String {
        loop {
            self.counter += 1;
            let candidate = format!(
                "{prefix}-{}",
                name_suffix(seed_with(self.counter, self.uid))
            );
            if self.cache.pod(self.namespace, &candidate).is_none()
                && self.taken.insert(candidate.clone())
            {
                return candidate;
            }
        }
    }
}

/// A pod of the Job from its template: the Job's labels, and for Indexed Jobs the index
/// as annotation, label, environment variable and hostname.
fn job_pod(
    owner: &Object,
    template: &v1::PodTemplateSpec,
    name: String,
    index: Option<i32>,
) -> v1::Pod {
    let meta = owner.metadata();
    let mut pod = pod_from_template(owner, template, name);
    if let Some(m) = pod.metadata.as_mut() {
        for (label, value) in [
            (JOB_NAME_LABEL, &meta.name),
            ("job-name", &meta.name),
            (CONTROLLER_UID_LABEL, &meta.uid),
            ("controller-uid", &meta.uid),
        ] {
            m.labels
                .entry(label.to_owned())
                .or_insert_with(|| value.clone());
        }
        if let Some(i) = index {
            m.annotations
                .insert(COMPLETION_INDEX_ANNOTATION.to_owned(), i.to_string());
            m.labels
                .insert(COMPLETION_INDEX_ANNOTATION.to_owned(), i.to_string());
        }
    }
    if let (Some(i), Some(spec)) = (index, pod.spec.as_mut()) {
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut())
        {
            container.env.retain(|e| e.name != COMPLETION_INDEX_ENV);
            container.env.push(v1::EnvVar {
                name: COMPLETION_INDEX_ENV.to_owned(),
                value: i.to_string(),
                ..Default::default()
            });
        }
        if spec.hostname.is_empty() {
            spec.hostname = format!("{}-{i}", meta.name);
        }
    }
    pod
}

#[cfg(test)]
#[path = "job_test.rs"]
mod tests;
