use super::*;
use crate::testing::*;
use rafter_proto::v1::{Condition, JobSpec, JobStatus, PodSpec, PodTemplateSpec};
use rafter_proto::Kind;

/// A CronJob created at `created` seconds.
fn cron_job(name: &str, schedule: &str, policy: &str, created: i64) -> v1::CronJob {
    v1::CronJob {
        api_version: "batch/v1".to_owned(),
        kind: "CronJob".to_owned(),
        metadata: Some(ObjectMeta {
            namespace: "default".to_owned(),
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            creation_timestamp: ts(created),
            ..Default::default()
        }),
        spec: Some(v1::CronJobSpec {
            schedule: schedule.to_owned(),
            concurrency_policy: policy.to_owned(),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: Some(Box::new(v1::JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: [("app".to_owned(), "report".to_owned())].into(),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    template: Some(PodTemplateSpec {
                        metadata: None,
                        spec: Some(Box::new(PodSpec {
                            restart_policy: "Never".to_owned(),
                            containers: vec![container("", "")],
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        }),
        status: None,
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::CronJob, "default", name)
}

fn created_jobs(r: &Reconciled) -> Vec<v1::Job> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::Job(j)) => Some(j.clone()),
            _ => None,
        })
        .collect()
}

fn deleted(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect()
}

/// Carries out the writes: `upto` of them (a leader killed after that many).
fn apply(cache: &mut Cache, r: &Reconciled, now: i64, upto: usize) {
    for action in r
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::RecordEvent(_)))
        .take(upto)
    {
        match action {
            Action::Create(Object::Job(j)) => {
                let mut j = j.clone();
                let m = j.metadata.get_or_insert_with(Default::default);
                m.uid = format!("uid-{}", m.name);
                m.creation_timestamp = ts(now);
                cache.upsert(Object::Job(j));
            }
            Action::UpdateStatus(o) => {
                cache.upsert(o.clone());
            }
            Action::Delete { key, .. } => {
                cache.remove(key);
            }
            _ => {}
        }
    }
}

fn finish_job(cache: &mut Cache, name: &str, condition: &str, at: i64) {
    let k = ObjectKey::new(Kind::Job, "default", name);
    let Some(Object::Job(mut j)) = cache.get(&k).map(|o| o.as_ref().clone()) else {
        panic!("no job {name}");
    };
    j.status = Some(JobStatus {
        start_time: ts(at - 1),
        completion_time: (condition == "Complete").then(|| ts(at)).flatten(),
        conditions: vec![Condition {
            r#type: condition.to_owned(),
            status: "True".to_owned(),
            last_transition_time: ts(at),
            ..Default::default()
        }],
        ..Default::default()
    });
    cache.upsert(Object::Job(j));
}

fn jobs(cache: &Cache) -> Vec<String> {
    let mut names: Vec<String> = cache
        .list(Kind::Job)
        .map(|o| o.metadata().name.clone())
        .collect();
    names.sort();
    names
}

// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600;

#[test]
fn a_job_is_created_at_each_tick_named_and_annotated_after_it() {
    let mut cache = Cache::from_objects([Object::CronJob(cron_job(
        "report",
        "*/1 * * * *",
        "Allow",
        T0 + 5,
    ))]);
    let r = reconcile(&cache, &key("report"), at(T0 + 30));
    assert!(created_jobs(&r).is_empty(), "no tick has come yet");
    assert_eq!(r.requeue_after.map(|d| d.as_secs()), Some(30));
    let r = reconcile(&cache, &key("report"), at(T0 + 61));
    let made = created_jobs(&r);
    assert_eq!(made.len(), 1);
    let m = made[0].metadata.as_ref().unwrap();
    assert_eq!(m.name, format!("report-{}", (T0 + 60) / 60));
    assert_eq!(
        m.annotations[SCHEDULED_TIMESTAMP_ANNOTATION],
        at(T0 + 60).to_rfc3339()
    );
    assert_eq!(m.labels["app"], "report");
    assert_eq!(m.owner_references[0].uid, "uid-report");
    apply(&mut cache, &r, T0 + 61, usize::MAX);
    let Some(Object::CronJob(c)) = cache.get(&key("report")).map(|o| o.as_ref().clone()) else {
        panic!()
    };
    let status = c.status.unwrap();
    assert_eq!(status.last_schedule_time, Some(at(T0 + 60).to_rfc3339()));
    assert_eq!(status.active.len(), 1);
    let r = reconcile(&cache, &key("report"), at(T0 + 62));
    assert!(created_jobs(&r).is_empty(), "the tick ran already");
}

#[test]
fn a_leader_killed_between_create_and_status_neither_skips_nor_doubles_a_tick() {
    // A scripted clock over 10 minutes; every other decision the leader dies after its
    // first write (the Job) and the next leader decides again on what the log holds.
    let mut cache =
        Cache::from_objects([Object::CronJob(cron_job("tick", "* * * * *", "Allow", T0))]);
    let mut decisions = 0;
    let mut made = Vec::new();
    for now in (T0 + 1..=T0 + 610).step_by(7) {
        let r = reconcile(&cache, &key("tick"), at(now));
        made.extend(
            created_jobs(&r)
                .into_iter()
                .map(|j| j.metadata.unwrap().name),
        );
        decisions += 1;
        let upto = if decisions % 2 == 0 { 1 } else { usize::MAX };
        apply(&mut cache, &r, now, upto);
        // A second decision on the same log (the new leader) finds the work done.
        let again = reconcile(&cache, &key("tick"), at(now));
        assert!(created_jobs(&again).is_empty(), "decided twice at {now}");
        apply(&mut cache, &again, now, usize::MAX);
        for name in jobs(&cache) {
            finish_job(&mut cache, &name, "Complete", now);
        }
    }
    // Ticks T0+60 .. T0+600: ten of them, each created once; the history keeps 3.
    let every: Vec<String> = (1..=10).map(|m| format!("tick-{}", T0 / 60 + m)).collect();
    assert_eq!(made, every);
    let Some(Object::CronJob(c)) = cache.get(&key("tick")).map(|o| o.as_ref().clone()) else {
        panic!()
    };
    assert_eq!(
        c.status.unwrap().last_schedule_time,
        Some(at(T0 + 600).to_rfc3339())
    );
    let names = jobs(&cache);
    let want: Vec<String> = (8..=10).map(|m| format!("tick-{}", T0 / 60 + m)).collect();
    assert_eq!(names, want);
}

#[test]
fn every_tick_runs_exactly_once_under_a_scripted_clock() {
    let mut cache = Cache::from_objects([Object::CronJob(cron_job(
        "each",
        "*/5 * * * * *",
        "Allow",
        T0,
    ))]);
    let mut made = Vec::new();
    for now in T0 + 1..=T0 + 60 {
        for _ in 0..2 {
            let r = reconcile(&cache, &key("each"), at(now));
            made.extend(
                created_jobs(&r)
                    .into_iter()
                    .map(|j| j.metadata.unwrap().name),
            );
            apply(&mut cache, &r, now, usize::MAX);
        }
    }
    let want: Vec<String> = (1..=12).map(|i| job_name("each", at(T0 + 5 * i))).collect();
    assert_eq!(
        made, want,
        "one Job per five-second tick, in order, none twice"
    );
}

#[test]
fn forbid_waits_for_the_running_job_and_replace_deletes_it() {
    let mut cache =
        Cache::from_objects([Object::CronJob(cron_job("f", "* * * * *", "Forbid", T0))]);
    let r = reconcile(&cache, &key("f"), at(T0 + 60));
    apply(&mut cache, &r, T0 + 60, usize::MAX);
    let r = reconcile(&cache, &key("f"), at(T0 + 120));
    assert!(
        created_jobs(&r).is_empty(),
        "Forbid: the first Job still runs"
    );
    finish_job(
        &mut cache,
        &job_name("f", at(T0 + 60)),
        "Complete",
        T0 + 125,
    );
    let r = reconcile(&cache, &key("f"), at(T0 + 130));
    assert_eq!(
        created_jobs(&r).len(),
        1,
        "runs once the previous one finished"
    );

    let mut cache =
        Cache::from_objects([Object::CronJob(cron_job("r", "* * * * *", "Replace", T0))]);
    let r = reconcile(&cache, &key("r"), at(T0 + 60));
    apply(&mut cache, &r, T0 + 60, usize::MAX);
    let r = reconcile(&cache, &key("r"), at(T0 + 120));
    assert_eq!(deleted(&r), vec![job_name("r", at(T0 + 60))]);
    assert_eq!(created_jobs(&r).len(), 1);
}

#[test]
fn a_tick_missed_by_more_than_the_starting_deadline_is_not_run() {
    let mut c = cron_job("late", "0 * * * *", "Allow", T0 + 1);
    c.spec.as_mut().unwrap().starting_deadline_seconds = Some(100);
    let cache = Cache::from_objects([Object::CronJob(c)]);
    // The 01:00 tick, 200 s late.
    let r = reconcile(&cache, &key("late"), at(T0 + 3600 + 200));
    assert!(created_jobs(&r).is_empty());
    let r = reconcile(&cache, &key("late"), at(T0 + 3600 + 50));
    assert_eq!(created_jobs(&r).len(), 1);
}

#[test]
fn a_suspended_cron_job_starts_nothing() {
    let mut c = cron_job("s", "* * * * *", "Allow", T0);
    c.spec.as_mut().unwrap().suspend = Some(true);
    let cache = Cache::from_objects([Object::CronJob(c)]);
    let r = reconcile(&cache, &key("s"), at(T0 + 600));
    assert!(created_jobs(&r).is_empty());
}

#[test]
fn finished_jobs_beyond_the_history_limits_are_deleted_oldest_first() {
    let mut cache = Cache::from_objects([Object::CronJob(cron_job("h", "0 0 1 1 *", "Allow", T0))]);
    let owner = cache.get(&key("h")).unwrap().as_ref().clone();
    for (i, outcome) in [
        "Complete", "Complete", "Failed", "Complete", "Failed", "Complete",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("h-{i}");
        let spec = match &owner {
            Object::CronJob(c) => c.spec.clone().unwrap(),
            _ => unreachable!(),
        };
        let mut j = job_for_tick(&owner, &spec, name.clone(), at(T0 + i as i64));
        j.metadata.as_mut().unwrap().uid = format!("uid-{name}");
        cache.upsert(Object::Job(j));
        finish_job(&mut cache, &name, outcome, T0 + 10 * i as i64 + 10);
    }
    let r = reconcile(&cache, &key("h"), at(T0 + 100));
    let mut gone = deleted(&r);
    gone.sort();
    assert_eq!(gone, vec!["h-0", "h-2"], "keeps 3 successful and 1 failed");
}
