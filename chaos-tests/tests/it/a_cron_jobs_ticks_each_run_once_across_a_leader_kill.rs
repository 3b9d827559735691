//! A CronJob ticking every three seconds runs while the leader, whose CronJob controller
//! judges the schedule on its clock, is killed with SIGKILL: the ticks before, during and
//! after the failover each get exactly one Job (named and annotated after its tick), with
//! no tick between the first and the last skipped. The failover must take under the
//! three seconds between ticks for that (Kubernetes, like Rafter, starts only the newest
//! of several missed ticks).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::library_client;
use chaos_tests::Cluster;
use rafter_client::ListParams;
use rafter_proto::{v1, Kind, Object, Timestamp};

const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn cron_job() -> Object {
    Object::CronJob(v1::CronJob {
        metadata: Some(v1::ObjectMeta {
            name: "tick".to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::CronJobSpec {
            schedule: "*/3 * * * * *".to_owned(),
            successful_jobs_history_limit: Some(100),
            failed_jobs_history_limit: Some(100),
            job_template: Some(Box::new(v1::JobTemplateSpec {
                metadata: None,
                spec: Some(v1::JobSpec {
                    template: Some(v1::PodTemplateSpec {
                        metadata: None,
                        spec: Some(Box::new(v1::PodSpec {
                            restart_policy: "Never".to_owned(),
                            containers: vec![v1::Container {
                                name: "work".to_owned(),
                                image: "busybox".to_owned(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_jobs_ticks_each_run_once_across_a_leader_kill() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    let (client, _config) = library_client(&cluster).await;
    client
        .create(cron_job())
        .await
        .expect("the CronJob is created");

    let jobs = || async {
        let list = client
            .list(Kind::Job, Some("default"), &ListParams::default())
            .await
            .ok()?;
        Some(
            list.items
                .into_iter()
                .filter_map(|o| match o {
                    Object::Job(j) => j.metadata,
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    };
    let wait_for = |count: usize, within: Duration| {
        let jobs = &jobs;
        async move {
            let deadline = Instant::now() + within;
            loop {
                if let Some(found) = jobs().await {
                    if found.len() >= count {
                        return found;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "fewer than {count} Jobs after {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(3, Duration::from_secs(30)).await;
    cluster.kill(leader).expect("kill -9 the leader");
    let killed = Timestamp::now();
    eprintln!("killed leader {leader}");
    let found = wait_for(7, Duration::from_secs(40)).await;

    let mut ticks = BTreeSet::new();
    for meta in &found {
        let tick = meta
            .annotations
            .get(SCHEDULED)
            .and_then(|t| Timestamp::parse(t));
        let tick = tick.unwrap_or_else(|| panic!("{} has no scheduled time", meta.name));
        assert!(ticks.insert(tick), "two Jobs for the tick {tick}");
    }
    let ticks: Vec<Timestamp> = ticks.into_iter().collect();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1].unix_seconds() - pair[0].unix_seconds(),
            3,
            "a tick was skipped between {} and {} (leader killed at {killed}): {ticks:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        ticks.iter().any(|t| *t > killed),
        "ticks after the kill ran: {ticks:?}"
    );
}
