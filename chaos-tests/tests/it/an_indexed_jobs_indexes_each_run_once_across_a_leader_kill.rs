//! An Indexed Job (8 completions, 2 at a time) runs while the leader, whose Job controller
//! is creating its pods, is killed with SIGKILL: the new leader's controller finishes the
//! Job and no index ever gets a second pod (no pod failed, so none is explained). The
//! test plays the kubelet: it marks each pod Succeeded a moment after it appears (the
//! masters run no agents; pods stay unscheduled, which the Job controller does not mind).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::support::library_client;
use chaos_tests::Cluster;
use rafter_client::{Client, ListParams};
use rafter_proto::{v1, Kind, Object};

const INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn indexed_job() -> Object {
    Object::Job(v1::Job {
        metadata: Some(v1::ObjectMeta {
            name: "idx".to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::JobSpec {
            completions: Some(8),
            parallelism: Some(2),
            completion_mode: "Indexed".to_owned(),
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
        ..Default::default()
    })
}

async fn job_pods(client: &Client) -> Option<Vec<v1::Pod>> {
    let params = ListParams {
        label_selector: "batch.kubernetes.io/job-name=idx".to_owned(),
        ..Default::default()
    };
    let list = client
        .list(Kind::Pod, Some("default"), &params)
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            })
            .collect(),
    )
}

/// The kubelet's report of a container that exited 0.
fn succeeded(mut pod: v1::Pod) -> Object {
    let status = pod.status.get_or_insert_with(Default::default);
    status.phase = "Succeeded".to_owned();
    status.container_statuses = vec![v1::ContainerStatus {
        name: "work".to_owned(),
        state: Some(v1::ContainerState {
            terminated: Some(Box::new(v1::ContainerStateTerminated {
                exit_code: 0,
                reason: "Completed".to_owned(),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }];
    Object::Pod(pod)
}

fn complete(job: &Object) -> bool {
    let Object::Job(j) = job else { return false };
    j.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Complete" && c.status == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_jobs_indexes_each_run_once_across_a_leader_kill() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader");
    let (client, _config) = library_client(&cluster).await;
    client
        .create(indexed_job())
        .await
        .expect("the Job is created");

    let mut seen: HashMap<String, Instant> = HashMap::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "the Job did not complete; pods: {:?}",
            job_pods(&client).await.map(|p| p.len())
        );
        if let Ok(job) = client.get(Kind::Job, "default", "idx").await {
            if complete(&job) {
                break;
            }
        }
        let Some(pods) = job_pods(&client).await else {
            continue;
        };
        let done = pods
            .iter()
            .filter(|p| p.status.as_ref().is_some_and(|s| s.phase == "Succeeded"))
            .count();
        if done >= 3 && !killed {
            cluster.kill(leader).expect("kill -9 the leader");
            eprintln!("killed leader {leader} with {done} indexes done");
            killed = true;
        }
        for pod in pods {
            let name = pod
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let first = *seen.entry(name).or_insert_with(Instant::now);
            let running = pod.status.as_ref().is_none_or(|s| s.phase != "Succeeded");
            // Each pod "runs" 300 ms.
            if running && first.elapsed() > Duration::from_millis(300) {
                let _ = client.update_status(succeeded(pod)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed, "the leader was killed while the Job ran");
    let pods = job_pods(&client).await.expect("the pods are listed");
    let mut per_index: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in &pods {
        let m = pod.metadata.as_ref().expect("metadata");
        per_index
            .entry(m.annotations.get(INDEX).cloned().unwrap_or_default())
            .or_default()
            .push(m.name.clone());
    }
    let want: Vec<String> = (0..8).map(|i| i.to_string()).collect();
    assert_eq!(
        per_index.keys().cloned().collect::<Vec<_>>(),
        want,
        "{per_index:?}"
    );
    assert!(
        per_index.values().all(|names| names.len() == 1),
        "an index ran twice with no failure to explain it: {per_index:?}"
    );
    let Ok(Object::Job(job)) = client.get(Kind::Job, "default", "idx").await else {
        panic!("the Job is gone");
    };
    let status = job.status.expect("a status");
    assert_eq!(
        (status.succeeded, status.completed_indexes.as_str()),
        (8, "0-7")
    );
}
