//! Jobs and CronJobs on a `rafter up` cluster (three masters) with one agent running
//! busybox through containerd (`RAFTER_CONTAINERD_SOCK`; skipped without it): the verbs
//! a user types (`create job`, `create cronjob`, `wait`, `logs job/…`, `get jobs`) and
//! what the controllers make of them, checked from the pods' own records.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(120);

const JOBS: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: five}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: docker.io/local/busybox:1
        command: [sh, -c, 'sleep 1; echo five done']
        resources: {requests: {cpu: 10m, memory: 8Mi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: crash}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: docker.io/local/busybox:1
        command: [sh, -c, 'echo failing; exit 1']
        resources: {requests: {cpu: 10m, memory: 8Mi}}
";

/// Applied once the others are checked: its TTL starts when it completes.
const INDEXED: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  ttlSecondsAfterFinished: 15
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: docker.io/local/busybox:1
        command: [sh, -c, 'echo index=$JOB_COMPLETION_INDEX']
        resources: {requests: {cpu: 10m, memory: 8Mi}}
";

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The pods of a Job (by the label the controller puts on them).
fn pods_of(cluster: &Cluster, job: &str) -> Vec<Value> {
    items(&cluster.json(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/job-name={job}"),
    ]))
}

/// When the pod's container ran, [started, finished), as RFC 3339 text (comparable).
fn ran(pod: &Value) -> (String, String) {
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    (
        text(&pod["metadata"]["creationTimestamp"]),
        text(&terminated["finishedAt"]),
    )
}

fn containerd_cluster(name: &str) -> Option<Cluster> {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return None;
    };
    Some(Cluster::start_with(
        name,
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &socket,
        ],
    ))
}

#[test]
fn jobs_run_their_completions_in_parallel_retry_with_back_off_index_their_pods_and_expire() {
    let Some(cluster) = containerd_cluster("jobs") else {
        return;
    };
    let file = cluster.file("jobs.yaml", JOBS);
    cluster.ok(&["apply", "-f", &file]);

    // completions 5, parallelism 2: five successful pods, never more than two at once.
    let waited = cluster.ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=120s",
    ]);
    assert_eq!(waited.trim(), "job.batch/five condition met");
    let pods = pods_of(&cluster, "five");
    assert_eq!(pods.len(), 5, "exactly five pods ran");
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Succeeded"));
    let spans: Vec<(String, String)> = pods.iter().map(ran).collect();
    for (start, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, f)| s <= start && start < f)
            .count();
        assert!(running <= 2, "more than two pods at {start}: {spans:?}");
    }
    let five = cluster.json(&["get", "job", "five"]);
    assert_eq!(five["status"]["succeeded"], 5, "{five}");
    let table = cluster.ok(&["get", "jobs"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("five "))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..3], ["five", "Complete", "5/5"], "{table}");
    let log = cluster.ok(&["logs", "job/five"]);
    assert_eq!(log, "five done\n");

    // exit 1 with backoffLimit 1: two pods, the second after the back-off, then Failed.
    cluster.ok(&[
        "wait",
        "--for=condition=failed",
        "job/crash",
        "--timeout=120s",
    ]);
    let crash = cluster.json(&["get", "job", "crash"]);
    let failed = crash["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{crash}");
    let mut spans: Vec<(String, String)> = pods_of(&cluster, "crash").iter().map(ran).collect();
    spans.sort();
    assert_eq!(spans.len(), 2, "one run and one retry: {spans:?}");
    let first_failed =
        time::OffsetDateTime::parse(&spans[0].1, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let retried =
        time::OffsetDateTime::parse(&spans[1].0, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        retried - first_failed >= time::Duration::seconds(9),
        "the retry waited the 10 s back-off: {spans:?}"
    );

    // Indexed: each pod sees its own index; the Job goes 15 s after it finished.
    let file = cluster.file("indexed.yaml", INDEXED);
    cluster.ok(&["apply", "-f", &file]);
    let mut seen = BTreeMap::new();
    eventually("three indexed pods done", LIMIT, || {
        let pods = pods_of(&cluster, "idx");
        (pods.len() == 3 && pods.iter().all(|p| p["status"]["phase"] == "Succeeded")).then_some(())
    });
    for pod in pods_of(&cluster, "idx") {
        let index =
            text(&pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]);
        let name = text(&pod["metadata"]["name"]);
        let log = cluster.ok(&["logs", &name]);
        seen.insert(index.clone(), log.clone());
        assert_eq!(log, format!("index={index}\n"), "{name}");
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        ["0", "1", "2"].map(String::from).into()
    );
    cluster.ok(&["wait", "--for=delete", "job/idx", "--timeout=60s"]);
    eventually(
        "the garbage collector removes the expired Job's pods",
        LIMIT,
        || pods_of(&cluster, "idx").is_empty().then_some(()),
    );
}

#[test]
fn a_cron_job_runs_once_per_tick_and_forbid_never_overlaps_its_runs() {
    let Some(cluster) = containerd_cluster("cronjobs") else {
        return;
    };
    // Every 5 s, each run taking 7 s: under Forbid the next tick waits for the run.
    cluster.ok(&[
        "create",
        "cronjob",
        "tick",
        "--image",
        "docker.io/local/busybox:1",
        "--schedule",
        "*/5 * * * * *",
        "--",
        "sh",
        "-c",
        "echo tick; sleep 7",
    ]);
    let file = cluster.file(
        "forbid.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tick}\nspec:\n  schedule: '*/5 * * * * *'\n  concurrencyPolicy: Forbid\n  successfulJobsHistoryLimit: 10\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - {name: tick, image: docker.io/local/busybox:1, command: [sh, -c, 'echo tick; sleep 7'], resources: {requests: {cpu: 10m, memory: 8Mi}}}\n",
    );
    cluster.ok(&["apply", "-f", &file]);
    let jobs = eventually("three finished runs", LIMIT, || {
        let jobs = items(&cluster.json(&["get", "jobs"]));
        let done = jobs
            .iter()
            .filter(|j| j["status"]["succeeded"] == 1)
            .count();
        (done >= 3).then_some(jobs)
    });
    // Forbid is about runs: no Job is created before the one before it completed. (A run's
    // pods may be more than one: a pod that failed to start is retried within its Job.)
    let mut spans = Vec::new();
    let mut ticks = BTreeSet::new();
    for job in &jobs {
        assert!(
            ticks.insert(text(
                &job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            )),
            "two Jobs for one tick"
        );
        // A run begins when its Job is created (Forbid holds the create back); a Job just
        // created may not have its status yet.
        let started = text(&job["metadata"]["creationTimestamp"]);
        assert!(
            !started.is_empty(),
            "a Job without a creationTimestamp: {job}"
        );
        let completed = text(&job["status"]["completionTime"]);
        spans.push((
            started,
            if completed.is_empty() {
                "~".to_owned()
            } else {
                completed
            },
            text(&job["metadata"]["name"]),
        ));
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[0].1 > pair[1].0 {
            let pods: Vec<String> = spans
                .iter()
                .flat_map(|(_, _, job)| pods_of(&cluster, job))
                .map(|pod| {
                    format!(
                        "{} {} {:?}",
                        text(&pod["metadata"]["name"]),
                        pod["status"]["phase"],
                        ran(&pod)
                    )
                })
                .collect();
            panic!("Forbid let two runs overlap: {spans:?}\npods: {pods:#?}");
        }
    }
    let table = cluster.ok(&["get", "cronjobs"]);
    assert!(table.contains("*/5 * * * * *"), "{table}");
    let manual = cluster.ok(&["create", "job", "tick-now", "--from=cronjob/tick"]);
    assert!(manual.contains("job.batch/tick-now created"), "{manual}");
    let job = cluster.json(&["get", "job", "tick-now"]);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
}
