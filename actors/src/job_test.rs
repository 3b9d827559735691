use super::*;
use crate::testing::*;
use rafter_proto::v1::{ObjectMeta, PodSpec, PodTemplateSpec};
use rafter_proto::Kind;

fn job(name: &str, completions: Option<i32>, parallelism: i32) -> v1::Job {
    v1::Job {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        metadata: Some(ObjectMeta {
            namespace: "default".to_owned(),
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            creation_timestamp: ts(0),
            ..Default::default()
        }),
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(6),
            completion_mode: "NonIndexed".to_owned(),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta::default()),
                spec: Some(Box::new(PodSpec {
                    restart_policy: "Never".to_owned(),
                    containers: vec![container("", "")],
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", name)
}

fn created(r: &Reconciled) -> Vec<v1::Pod> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::Pod(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn deleted(r: &Reconciled) -> Vec<ObjectKey> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn new_status(r: &Reconciled) -> Option<JobStatus> {
    r.actions.iter().find_map(|a| match a {
        Action::UpdateStatus(Object::Job(j)) => j.status.clone(),
        _ => None,
    })
}

fn has_condition(status: &JobStatus, kind: &str) -> bool {
    pods::condition(&status.conditions, kind).is_some_and(|c| c.status == "True")
}

/// A pod as the agent reports it once its one container exited with `code` at `at`.
fn exited(mut pod: v1::Pod, code: i32, at: i64) -> v1::Pod {
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = if code == 0 { "Succeeded" } else { "Failed" }.to_owned();
    status.container_statuses = vec![v1::ContainerStatus {
        name: "c".to_owned(),
        state: Some(v1::ContainerState {
            terminated: Some(Box::new(v1::ContainerStateTerminated {
                exit_code: code,
                finished_at: ts(at),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }];
    pod
}

/// Carries out a reconcile's writes on the cache as the store and the actor would.
fn apply(cache: &mut Cache, r: &Reconciled, now: i64) {
    for action in &r.actions {
        match action {
            Action::Create(Object::Pod(p)) => {
                let mut p = p.clone();
                let m = p.metadata.get_or_insert_with(Default::default);
                m.uid = format!("uid-{}", m.name);
                m.creation_timestamp = ts(now);
                p.status = Some(v1::PodStatus {
                    phase: "Running".to_owned(),
                    ..Default::default()
                });
                cache.upsert(Object::Pod(p));
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

fn pods_of<'a>(cache: &'a Cache, uid: &str) -> Vec<&'a v1::Pod> {
    cache
        .controlled_by(uid)
        .filter_map(|o| match o.as_ref() {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn five_completions_two_at_a_time_run_exactly_five_pods_and_complete() {
    let mut cache = Cache::from_objects([Object::Job(job("pi", Some(5), 2))]);
    let mut finished = 0;
    for t in 1..40 {
        let r = reconcile(&cache, &key("pi"), at(t), JobBackoff::default());
        apply(&mut cache, &r, t);
        let running: Vec<v1::Pod> = pods_of(&cache, "uid-pi")
            .into_iter()
            .filter(|p| phase(p) == "Running")
            .cloned()
            .collect();
        assert!(running.len() <= 2, "at most parallelism pods run at once");
        // One running pod finishes each second.
        if let Some(p) = running.first() {
            cache.upsert(Object::Pod(exited(p.clone(), 0, t)));
            finished += 1;
        }
        let Some(Object::Job(j)) = cache.get(&key("pi")).map(|o| o.as_ref().clone()) else {
            panic!("job gone");
        };
        if j.status
            .as_ref()
            .is_some_and(|s| has_condition(s, "Complete"))
        {
            break;
        }
    }
    let pods = pods_of(&cache, "uid-pi");
    assert_eq!(pods.len(), 5, "exactly five pods were ever created");
    assert_eq!(finished, 5);
    let Some(Object::Job(j)) = cache.get(&key("pi")).map(|o| o.as_ref().clone()) else {
        panic!("job gone");
    };
    let status = j.status.unwrap();
    assert!(has_condition(&status, "Complete"));
    assert_eq!((status.succeeded, status.active, status.failed), (5, 0, 0));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
}

#[test]
fn created_pods_are_owned_and_labelled_with_their_job() {
    let j = job("pi", Some(1), 1);
    let cache = Cache::from_objects([Object::Job(j)]);
    let r = reconcile(&cache, &key("pi"), at(1), JobBackoff::default());
    let pods = created(&r);
    assert_eq!(pods.len(), 1);
    let m = pods[0].metadata.as_ref().unwrap();
    assert!(m.name.starts_with("pi-"));
    assert_eq!(m.owner_references[0].uid, "uid-pi");
    assert_eq!(m.owner_references[0].kind, "Job");
    assert_eq!(m.owner_references[0].controller, Some(true));
    assert_eq!(m.labels.get(JOB_NAME_LABEL).map(String::as_str), Some("pi"));
    assert_eq!(
        m.labels.get(CONTROLLER_UID_LABEL).map(String::as_str),
        Some("uid-pi")
    );
}

#[test]
fn the_same_cache_names_the_same_pods_so_a_second_decision_cannot_duplicate() {
    let cache = Cache::from_objects([Object::Job(job("pi", Some(4), 3))]);
    let names = |r: &Reconciled| -> Vec<String> {
        created(r)
            .iter()
            .map(|p| p.metadata.as_ref().unwrap().name.clone())
            .collect()
    };
    let first = reconcile(&cache, &key("pi"), at(1), JobBackoff::default());
    let again = reconcile(&cache, &key("pi"), at(7), JobBackoff::default());
    assert_eq!(names(&first).len(), 3);
    assert_eq!(names(&first), names(&again));
}

#[test]
fn failures_back_off_exponentially_then_fail_the_job_past_the_backoff_limit() {
    let mut j = job("crash", Some(1), 1);
    j.spec.as_mut().unwrap().backoff_limit = Some(2);
    let job_object = Object::Job(j.clone());
    let backoff = JobBackoff::default();
    let failed = |name: &str, at: i64| {
        exited(
            pod("default", name).owner(&job_object, true).build_pod(),
            1,
            at,
        )
    };
    // One failure at t=100: the replacement waits 10 s.
    let cache = Cache::from_objects([job_object.clone(), Object::Pod(failed("crash-a", 100))]);
    let r = reconcile(&cache, &key("crash"), at(105), backoff);
    assert!(created(&r).is_empty(), "no replacement during the back-off");
    assert_eq!(r.requeue_after, Some(Duration::from_secs(5)));
    assert_eq!(new_status(&r).unwrap().failed, 1);
    let r = reconcile(&cache, &key("crash"), at(110), backoff);
    assert_eq!(created(&r).len(), 1, "replaced once the back-off elapsed");
    // Two failures: 20 s.
    let cache = Cache::from_objects([
        job_object.clone(),
        Object::Pod(failed("crash-a", 100)),
        Object::Pod(failed("crash-b", 120)),
    ]);
    let r = reconcile(&cache, &key("crash"), at(130), backoff);
    assert!(created(&r).is_empty());
    assert_eq!(r.requeue_after, Some(Duration::from_secs(10)));
    // Three failures > backoffLimit 2: Failed, nothing more created.
    let cache = Cache::from_objects([
        job_object.clone(),
        Object::Pod(failed("crash-a", 100)),
        Object::Pod(failed("crash-b", 120)),
        Object::Pod(failed("crash-c", 160)),
    ]);
    let r = reconcile(&cache, &key("crash"), at(500), backoff);
    assert!(created(&r).is_empty());
    let status = new_status(&r).unwrap();
    assert!(has_condition(&status, "Failed"));
    let c = pods::condition(&status.conditions, "Failed").unwrap();
    assert_eq!(c.reason, "BackoffLimitExceeded");
    assert_eq!(status.failed, 3);
}

#[test]
fn an_indexed_job_gives_each_pod_its_own_index_and_records_completed_indexes() {
    let mut j = job("idx", Some(3), 3);
    j.spec.as_mut().unwrap().completion_mode = "Indexed".to_owned();
    let job_object = Object::Job(j);
    let cache = Cache::from_objects([job_object.clone()]);
    let r = reconcile(&cache, &key("idx"), at(1), JobBackoff::default());
    let pods = created(&r);
    let mut indexes: Vec<i32> = pods.iter().filter_map(pod_index).collect();
    indexes.sort();
    assert_eq!(indexes, vec![0, 1, 2]);
    for p in &pods {
        let i = pod_index(p).unwrap().to_string();
        let m = p.metadata.as_ref().unwrap();
        assert!(m.name.starts_with(&format!("idx-{i}-")), "{}", m.name);
        let env = &p.spec.as_ref().unwrap().containers[0].env;
        assert!(env
            .iter()
            .any(|e| e.name == COMPLETION_INDEX_ENV && e.value == i));
        assert_eq!(p.spec.as_ref().unwrap().hostname, format!("idx-{i}"));
    }
    // Index 1 succeeded, index 0 failed, index 2 runs: only index 0 is started again.
    let with = |i: i32, name: &str| {
        pod("default", name)
            .owner(&job_object, true)
            .annotation(COMPLETION_INDEX_ANNOTATION, &i.to_string())
            .build_pod()
    };
    let cache = Cache::from_objects([
        job_object.clone(),
        Object::Pod(exited(with(0, "idx-0-a"), 1, 1)),
        Object::Pod(exited(with(1, "idx-1-a"), 0, 1)),
        Object::Pod(with(2, "idx-2-a")),
    ]);
    let r = reconcile(&cache, &key("idx"), at(100), JobBackoff::default());
    let again: Vec<i32> = created(&r).iter().filter_map(pod_index).collect();
    assert_eq!(again, vec![0]);
    let status = new_status(&r).unwrap();
    assert_eq!(status.completed_indexes, "1");
    assert_eq!((status.succeeded, status.failed), (1, 1));
}

#[test]
fn a_finished_job_is_deleted_once_its_ttl_has_passed() {
    let mut j = job("short", Some(1), 1);
    j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(30);
    let job_object = Object::Job(j);
    let done = exited(
        pod("default", "short-a")
            .owner(&job_object, true)
            .build_pod(),
        0,
        10,
    );
    let mut cache = Cache::from_objects([job_object, Object::Pod(done)]);
    let r = reconcile(&cache, &key("short"), at(10), JobBackoff::default());
    assert!(has_condition(&new_status(&r).unwrap(), "Complete"));
    assert_eq!(r.requeue_after, Some(Duration::from_secs(30)));
    apply(&mut cache, &r, 10);
    let r = reconcile(&cache, &key("short"), at(25), JobBackoff::default());
    assert!(deleted(&r).is_empty());
    assert_eq!(r.requeue_after, Some(Duration::from_secs(15)));
    let r = reconcile(&cache, &key("short"), at(40), JobBackoff::default());
    assert_eq!(deleted(&r), vec![key("short")]);
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::Delete {
            propagation: Some(Propagation::Foreground),
            ..
        }
    )));
}

#[test]
fn suspending_stops_the_pods_and_resuming_restarts_the_clock() {
    let mut j = job("s", Some(2), 2);
    j.spec.as_mut().unwrap().suspend = Some(true);
    let job_object = Object::Job(j.clone());
    let running = pod("default", "s-a")
        .owner(&job_object, true)
        .running()
        .build();
    let mut cache = Cache::from_objects([job_object, running]);
    let r = reconcile(&cache, &key("s"), at(5), JobBackoff::default());
    assert!(created(&r).is_empty());
    assert_eq!(deleted(&r).len(), 1);
    assert!(has_condition(&new_status(&r).unwrap(), "Suspended"));
    apply(&mut cache, &r, 5);
    let Some(Object::Job(mut resumed)) = cache.get(&key("s")).map(|o| o.as_ref().clone()) else {
        panic!()
    };
    resumed.spec.as_mut().unwrap().suspend = Some(false);
    cache.upsert(Object::Job(resumed));
    let r = reconcile(&cache, &key("s"), at(50), JobBackoff::default());
    assert_eq!(created(&r).len(), 2);
    let status = new_status(&r).unwrap();
    assert!(!has_condition(&status, "Suspended"));
    assert_eq!(status.start_time, ts(50));
}

#[test]
fn the_active_deadline_fails_the_job_and_stops_its_pods() {
    let mut j = job("slow", Some(1), 1);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
    j.status = Some(JobStatus {
        start_time: ts(0),
        ..Default::default()
    });
    let job_object = Object::Job(j);
    let running = pod("default", "slow-a")
        .owner(&job_object, true)
        .running()
        .build();
    let cache = Cache::from_objects([job_object, running]);
    let r = reconcile(&cache, &key("slow"), at(20), JobBackoff::default());
    assert_eq!(r.requeue_after, Some(Duration::from_secs(40)));
    assert!(deleted(&r).is_empty());
    let r = reconcile(&cache, &key("slow"), at(60), JobBackoff::default());
    assert_eq!(deleted(&r).len(), 1);
    let status = new_status(&r).unwrap();
    let c = pods::condition(&status.conditions, "Failed").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "DeadlineExceeded")
    );
}

#[test]
fn a_pod_failure_policy_fails_the_job_on_an_exit_code_or_ignores_the_failure() {
    let mut j = job("p", Some(1), 1);
    j.spec.as_mut().unwrap().pod_failure_policy = Some(v1::PodFailurePolicy {
        rules: vec![
            v1::PodFailurePolicyRule {
                action: "FailJob".to_owned(),
                on_exit_codes: Some(v1::PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: "In".to_owned(),
                    values: vec![42],
                }),
                on_pod_conditions: vec![],
            },
            v1::PodFailurePolicyRule {
                action: "Ignore".to_owned(),
                on_exit_codes: Some(v1::PodFailurePolicyOnExitCodesRequirement {
                    container_name: None,
                    operator: "In".to_owned(),
                    values: vec![137],
                }),
                on_pod_conditions: vec![],
            },
        ],
    });
    let job_object = Object::Job(j);
    let failed = |code| {
        exited(
            pod("default", "p-a").owner(&job_object, true).build_pod(),
            code,
            1,
        )
    };

    let cache = Cache::from_objects([job_object.clone(), Object::Pod(failed(42))]);
    let r = reconcile(&cache, &key("p"), at(2), JobBackoff::default());
    let status = new_status(&r).unwrap();
    let c = pods::condition(&status.conditions, "Failed").unwrap();
    assert_eq!(c.reason, "PodFailurePolicy");
    assert!(c.message.contains("exit code 42"), "{}", c.message);

    let cache = Cache::from_objects([job_object.clone(), Object::Pod(failed(137))]);
    let r = reconcile(&cache, &key("p"), at(2), JobBackoff::default());
    assert_eq!(
        created(&r).len(),
        1,
        "an ignored failure is replaced at once"
    );
    assert_eq!(new_status(&r).unwrap().failed, 0);
}

#[test]
fn a_work_queue_job_completes_when_one_pod_succeeded_and_none_run() {
    let job_object = Object::Job(job("q", None, 3));
    let one = |name: &str| pod("default", name).owner(&job_object, true);
    let cache = Cache::from_objects([
        job_object.clone(),
        Object::Pod(exited(one("q-a").build_pod(), 0, 5)),
        one("q-b").running().build(),
    ]);
    let r = reconcile(&cache, &key("q"), at(6), JobBackoff::default());
    assert!(created(&r).is_empty(), "no new pods once one succeeded");
    assert!(!has_condition(&new_status(&r).unwrap(), "Complete"));
    let cache = Cache::from_objects([
        job_object.clone(),
        Object::Pod(exited(one("q-a").build_pod(), 0, 5)),
        Object::Pod(exited(one("q-b").build_pod(), 0, 6)),
    ]);
    let r = reconcile(&cache, &key("q"), at(7), JobBackoff::default());
    assert!(has_condition(&new_status(&r).unwrap(), "Complete"));
}

#[test]
fn index_ranges_round_trip() {
    let set = parse_indexes("0-2,5,7-8");
    assert_eq!(
        set.iter().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 5, 7, 8]
    );
    assert_eq!(format_indexes(&set), "0-2,5,7-8");
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}
