//! A CronJob with `concurrencyPolicy: Forbid` ticking every two seconds, whose runs take
//! four (real containers, through a node agent on containerd), while the leader is killed
//! with SIGKILL during a run: no Job is created before the one before it completed, before or
//! after the failover, and each tick gets at most one Job. The new leader's CronJob
//! controller learns of the running Job from its fresh list, not from memory, so a
//! failover must not let a tick through that the old leader would have held back.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{library_client, Agents};
use chaos_tests::{rafter_binary, Cluster};
use rafter_client::{Client, ListParams};
use rafter_proto::{parse_object, v1, Kind, Object};

const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

const CRON_JOB: &str = "apiVersion: batch/v1
kind: CronJob
metadata: {name: slow}
spec:
  schedule: '*/2 * * * * *'
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 100
  failedJobsHistoryLimit: 100
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: work
            image: docker.io/local/busybox:1
            command: [sh, -c, 'sleep 4']
            resources: {requests: {cpu: 10m, memory: 8Mi}}
";

async fn jobs(client: &Client) -> Option<Vec<v1::Job>> {
    let list = client
        .list(Kind::Job, Some("default"), &ListParams::default())
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter_map(|o| match o {
                Object::Job(j) => Some(j),
                _ => None,
            })
            .collect(),
    )
}

fn completion(job: &v1::Job) -> Option<String> {
    job.status.as_ref()?.completion_time.clone()
}

/// Polls the Jobs until `done` says they are what the test waits for.
async fn wait_for_jobs(
    client: &Client,
    what: &str,
    within: Duration,
    done: impl Fn(&[v1::Job]) -> bool,
) -> Vec<v1::Job> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = jobs(client).await {
            if done(&found) {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbid_cron_job_never_overlaps_its_runs_across_a_leader_kill() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let agent = Command::new(rafter_binary())
        .args(["agent", "--name", "forbid-node", "--runtime", "containerd"])
        .args(["--containerd-socket", &socket, "--lease-interval", "2s"])
        .arg("--kubeconfig")
        .arg(&config)
        .arg("--data-dir")
        .arg(work.path().join("agent"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _agents = Agents(vec![agent]);
    let (client, _config) = library_client(&cluster).await;
    client
        .create(parse_object(CRON_JOB, "test").unwrap())
        .await
        .expect("the CronJob is created");

    // Two runs done, and a third running: the leader dies during that run.
    wait_for_jobs(
        &client,
        "two runs done, a third running",
        Duration::from_secs(90),
        |jobs| {
            jobs.iter().filter(|j| completion(j).is_some()).count() >= 2
                && jobs.iter().any(|j| completion(j).is_none())
        },
    )
    .await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    cluster.kill(leader).expect("kill -9 the leader");
    eprintln!("killed leader {leader} during a run");
    let found = wait_for_jobs(
        &client,
        "three more runs done after the kill",
        Duration::from_secs(90),
        |jobs| jobs.iter().filter(|j| completion(j).is_some()).count() >= 5,
    )
    .await;

    let mut ticks = std::collections::BTreeSet::new();
    let mut runs = Vec::new();
    for job in &found {
        let meta = job.metadata.clone().unwrap_or_default();
        let tick = meta.annotations.get(SCHEDULED).cloned().unwrap_or_default();
        assert!(ticks.insert(tick.clone()), "two Jobs for the tick {tick}");
        // A run begins when its Job is created (Forbid holds the create back); a Job just
        // created may not have its status yet.
        let created = meta
            .creation_timestamp
            .clone()
            .unwrap_or_else(|| panic!("{} has no creationTimestamp", meta.name));
        runs.push((
            created,
            completion(job).unwrap_or_else(|| "~".to_owned()),
            meta.name,
        ));
    }
    runs.sort();
    for pair in runs.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "Forbid let two runs overlap (leader {leader} killed): {runs:?}"
        );
    }
}
