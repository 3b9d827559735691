//! `rafter top` below the CLI: a gateway over the in-memory store asks the agent's
//! metrics endpoint for measured usage (`Client::metrics`), on the process backend and,
//! when `RAFTER_CONTAINERD_SOCK` is set, on containerd.

use std::sync::Mutex;
use std::time::Duration;

use rafter_proto::api::{NodeMetrics, PodMetrics};
use rafter_proto::v1::{Node, ObjectMeta, Pod};
use rafter_proto::well_known::AGENT_LOGS_ENDPOINT_ANNOTATION;
use rafter_proto::{Kind, Object};

use crate::agent::sh;
use crate::cluster::{Cluster, TestNode};
use crate::harness::{containerd, eventually_within, process, Runtime};

const MI: u64 = 1024 * 1024;

fn pod(name: &str, node: &str, script: &str) -> Pod {
    crate::agent::pod(name, node, vec![sh("app", script)])
}

fn find<'a>(figures: &'a NodeMetrics, name: &str) -> Option<&'a PodMetrics> {
    figures.pods.iter().find(|p| p.name == name)
}

fn cpu(p: &PodMetrics) -> u64 {
    p.containers.iter().map(|c| c.cpu_nano_cores).sum()
}

fn memory(p: &PodMetrics) -> u64 {
    p.containers
        .iter()
        .map(|c| c.memory_working_set_bytes)
        .sum()
}

/// A pod burning CPU and one holding 64 MiB show more than an idle pod; a Node whose
/// agent does not answer carries an error without failing the answer.
async fn busy_pods_measure_above_an_idle_one(runtime: Runtime) {
    let cluster = Cluster::start().await;
    let mut node = TestNode::start(&cluster, runtime).await;
    let pods = [
        ("idle", "exec sleep 3600"),
        ("burner", "while :; do :; done"),
        // The shell keeps 64 MiB in a variable, then waits. Its last command is a loop,
        // not `sleep`: busybox sh execs a script's last simple command, and the exec
        // would free the variable.
        (
            "hog",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo held; while :; do sleep 3600; done",
        ),
    ];
    for (name, script) in pods {
        cluster.create_pod(pod(name, &node.name, script)).await;
    }
    // Three containers start and one shell fills 64 MiB on a possibly loaded machine: give
    // it longer than the usual deadline, and say what was measured last if it runs out.
    let last_seen = Mutex::new(String::from("no answer yet"));
    let figures = eventually_within(
        Duration::from_secs(90),
        || {
            format!(
                "the busy pods to measure above the idle one; last seen: {}",
                last_seen.lock().map(|s| s.clone()).unwrap_or_default()
            )
        },
        || async {
            let answer = match cluster.client.metrics(Some(&node.name)).await {
                Ok(answer) => answer,
                Err(e) => {
                    *last_seen.lock().unwrap() = format!("error {e}");
                    return None;
                }
            };
            let figures = answer.nodes.into_iter().next()?;
            assert!(figures.error.is_empty(), "{}", figures.error);
            *last_seen.lock().unwrap() = figures
                .pods
                .iter()
                .map(|p| format!("{}: cpu {} n, memory {} B", p.name, cpu(p), memory(p)))
                .collect::<Vec<_>>()
                .join("; ");
            let idle = find(&figures, "idle")?;
            let burner = find(&figures, "burner")?;
            let hog = find(&figures, "hog")?;
            // The machine is shared: ask for a clear margin, not for a whole core.
            (cpu(burner) > cpu(idle) + 50_000_000
                && memory(hog) > 48 * MI
                && memory(hog) > memory(idle) + 40 * MI)
                .then_some(figures.clone())
        },
    )
    .await;
    assert!(figures.cpu_nano_cores >= cpu(find(&figures, "burner").unwrap()));
    assert!(figures.memory_working_set_bytes > 64 * MI);
    assert!(figures.window_ms > 0 && !figures.timestamp.is_empty());
    let burner = find(&figures, "burner").unwrap();
    assert_eq!(burner.namespace, "default");
    assert_eq!(burner.containers[0].name, "app");
    let uid = cluster
        .pod("burner")
        .await
        .and_then(|p| p.metadata)
        .map(|m| m.uid);
    assert_eq!(Some(burner.uid.clone()), uid);

    // A registered node whose agent is gone: the listing still answers, with its error.
    let ghost = Node {
        metadata: Some(ObjectMeta {
            name: format!("{}-ghost", node.name),
            annotations: [(
                AGENT_LOGS_ENDPOINT_ANNOTATION.to_owned(),
                "http://127.0.0.1:9".to_owned(),
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    cluster.client.create(Object::Node(ghost)).await.unwrap();
    let all = cluster.client.metrics(None).await.unwrap();
    let mine = all.nodes.iter().find(|n| n.node == node.name).unwrap();
    assert!(mine.error.is_empty(), "{}", mine.error);
    assert!(find(mine, "burner").is_some());
    let lost = all
        .nodes
        .iter()
        .find(|n| n.node.ends_with("-ghost"))
        .unwrap();
    assert!(lost.error.contains("cannot be reached"), "{}", lost.error);

    for (name, _) in pods {
        let _ = cluster
            .client
            .delete(
                Kind::Pod,
                "default",
                name,
                &rafter_client::DeleteOptions::default(),
            )
            .await;
    }
    for (name, _) in pods {
        cluster.wait_gone(name).await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_backend_busy_pods_measure_above_an_idle_one() {
    busy_pods_measure_above_an_idle_one(process()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_backend_busy_pods_measure_above_an_idle_one() {
    if let Some(rt) = containerd().await {
        busy_pods_measure_above_an_idle_one(rt).await;
    }
}
