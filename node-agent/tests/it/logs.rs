//! `rafter logs` end to end below the CLI: a gateway over the in-memory store relays
//! pods/log from the agent's log endpoint (process backend), as `Client::logs` reads it.

use std::time::Duration;

use futures::StreamExt;
use rafter_client::{ClientError, LogParams};
use rafter_proto::v1::Pod;
use rafter_proto::well_known::AGENT_LOGS_ENDPOINT_ANNOTATION;
use rafter_proto::{Kind, Object};

use crate::agent::sh;
use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, process};

/// A pod of busybox containers, each given as (name, shell script).
fn pod(name: &str, node: &str, containers: &[(&str, &str)]) -> Pod {
    let containers = containers.iter().map(|(c, script)| sh(c, script)).collect();
    crate::agent::pod(name, node, containers)
}

/// The whole log of a non-follow read, or its error.
async fn read(cluster: &Cluster, name: &str, params: LogParams) -> Result<String, ClientError> {
    let mut stream = std::pin::pin!(cluster.client.logs("default", name, params));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk?);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Waits until a read with `params` gives text that `check` accepts.
async fn wait_read(
    cluster: &Cluster,
    name: &str,
    params: LogParams,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    eventually(what, || async {
        let text = read(cluster, name, params.clone()).await.ok()?;
        check(&text).then_some(text)
    })
    .await
}

async fn stop(mut node: TestNode, cluster: &Cluster, pods: &[&str]) {
    for name in pods {
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
    for name in pods {
        cluster.wait_gone(name).await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_log_is_read_through_the_gateway_whole_by_tail_and_followed() {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, process()).await;
    let endpoint = eventually("the node to advertise its log endpoint", || async {
        match cluster.client.get(Kind::Node, "", &node.name).await {
            Ok(Object::Node(n)) => n
                .metadata?
                .annotations
                .get(AGENT_LOGS_ENDPOINT_ANNOTATION)
                .cloned(),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        Some(endpoint.as_str()),
        node.agent.as_ref().and_then(|a| a.logs_endpoint())
    );

    let script = "for i in 1 2 3 4 5; do echo line$i; done; exec sleep 3600";
    cluster
        .create_pod(pod("echo", &node.name, &[("app", script)]))
        .await;
    let all = "line1\nline2\nline3\nline4\nline5\n";
    wait_read(
        &cluster,
        "echo",
        LogParams::default(),
        "the whole log",
        |t| t == all,
    )
    .await;
    let tail = LogParams {
        tail_lines: Some(2),
        container: Some("app".into()),
        ..LogParams::default()
    };
    assert_eq!(
        read(&cluster, "echo", tail).await.unwrap(),
        "line4\nline5\n"
    );

    let ticks = "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.1; done";
    cluster
        .create_pod(pod("ticker", &node.name, &[("app", ticks)]))
        .await;
    wait_read(
        &cluster,
        "ticker",
        LogParams::default(),
        "the ticker to have written",
        |t| t.contains("tick2\n"),
    )
    .await;
    let follow = LogParams {
        follow: true,
        tail_lines: Some(1),
        ..LogParams::default()
    };
    let mut stream = Box::pin(cluster.client.logs("default", "ticker", follow));
    let tick = |text: &str| -> u64 {
        text.lines()
            .last()
            .and_then(|l| l.strip_prefix("tick"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let first = String::from_utf8(stream.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(first.lines().count(), 1, "{first:?}");
    let start = tick(&first);
    assert!(start >= 2, "{first:?}");
    let mut later = start;
    while later < start + 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("follow delivers new lines")
            .unwrap()
            .unwrap();
        later = tick(&String::from_utf8(chunk).unwrap());
    }
    drop(stream);
    stop(node, &cluster, &["echo", "ticker"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_instances_log_is_read_after_a_restart() {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, process()).await;
    cluster
        .create_pod(pod(
            "crasher",
            &node.name,
            // `$$$$`: the agent turns `$$` into `$` in commands (Kubernetes' `$(VAR)`
            // escaping), so the shell sees `$$`, its pid, different in every run.
            &[("app", "echo run-$$$$; sleep 0.3; exit 1")],
        ))
        .await;
    let previous = LogParams {
        previous: true,
        ..LogParams::default()
    };
    let (old, new) = eventually("a previous and a current log of different runs", || async {
        let old = read(&cluster, "crasher", previous.clone()).await.ok()?;
        let new = read(&cluster, "crasher", LogParams::default()).await.ok()?;
        (old.starts_with("run-") && new.starts_with("run-") && old != new).then_some((old, new))
    })
    .await;
    assert_eq!(old.lines().count(), 1, "{old:?}");
    assert_eq!(new.lines().count(), 1, "{new:?}");
    stop(node, &cluster, &["crasher"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_missing_unbound_or_unreachable_pod_fail_with_an_actionable_error() {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, process()).await;
    let err = read(&cluster, "nope", LogParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotFound", "{err}");

    cluster
        .create_pod(pod("pending", "", &[("app", "true")]))
        .await;
    let err = read(&cluster, "pending", LogParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::FailedPrecondition { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not bound"), "{err}");

    cluster
        .create_pod(pod(
            "two",
            &node.name,
            &[("a", "exec sleep 3600"), ("b", "exec sleep 3600")],
        ))
        .await;
    let err = read(&cluster, "two", LogParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Invalid", "{err}");
    assert!(err.to_string().contains("a, b"), "{err}");

    // Bound to a node with no agent: answered at once, not retried across masters.
    cluster
        .create_pod(pod("ghostly", "ghost", &[("app", "true")]))
        .await;
    let started = std::time::Instant::now();
    let err = read(&cluster, "ghostly", LogParams::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    stop(node, &cluster, &["two"]).await;
    for name in ["pending", "ghostly"] {
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
}
