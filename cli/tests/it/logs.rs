//! `rafter logs` on a `rafter up` cluster with one agent (host processes): the whole
//! log, `--tail`, `-c`, `--previous` and `-f`, as the seeds' kubectl is used. The agent
//! joined through TLS bootstrap, so the logs come through its TLS endpoint (a
//! kubelet-serving certificate the masters verify).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done']
  - name: side
    image: docker.io/local/busybox:1
    command: [sh, -c, 'echo side up; exec sleep 3600']
";

const LIMIT: Duration = Duration::from_secs(60);

fn tick(line: &str) -> u64 {
    line.strip_prefix("tick")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A `rafter logs -f` that is killed when the test ends, also when it fails.
struct Following(Child);

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn logs_prints_a_containers_lines_its_tail_and_follows_new_ones() {
    let cluster = Cluster::start_with("logs", &["--agents", "1", "--runtime", "process"]);
    let manifest = cluster.file("ticker.yaml", PODS);
    cluster.ok(&["apply", "-f", &manifest]);

    let side = eventually("the side container's log", LIMIT, || {
        let run = cluster.run(&["logs", "ticker", "-c", "side"]);
        (run.code == 0 && !run.stdout.is_empty()).then_some(run.stdout)
    });
    assert_eq!(side, "side up\n");
    let all = eventually("three ticks", LIMIT, || {
        let run = cluster.run(&["logs", "pod/ticker", "-c", "app"]);
        (run.code == 0 && run.stdout.contains("tick3\n")).then_some(run.stdout)
    });
    assert!(all.starts_with("tick1\ntick2\ntick3\n"), "{all}");
    let tail = cluster.ok(&["logs", "ticker", "-c", "app", "--tail", "2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");

    // That went through TLS: the node advertises https, with a serving certificate its
    // agent asked for as itself and the masters approved by themselves.
    let node = cluster.json(&["get", "pod", "ticker"])["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = cluster.json(&["get", "node", &node])["metadata"]["annotations"]
        ["rafter.io/agent-logs-endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let csrs = cluster.json(&["get", "csr"]);
    let serving = csrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["spec"]["signerName"] == "kubernetes.io/kubelet-serving")
        .unwrap_or_else(|| panic!("no serving request: {csrs}"));
    assert_eq!(serving["spec"]["username"], format!("system:node:{node}"));
    let approved = &serving["status"]["conditions"][0];
    assert_eq!(approved["reason"], "AutoApproved", "{serving}");
    assert!(serving["status"]["certificate"].is_string(), "{serving}");

    let error = cluster.fails(&["logs", "ticker"]);
    assert!(error.contains("app, side"), "{error}");
    let error = cluster.fails(&["logs", "ticker", "-c", "app", "--previous"]);
    assert!(error.contains("no previous log"), "{error}");

    let mut follow = Following(
        Command::new(env!("CARGO_BIN_EXE_rafter"))
            .args(["logs", "-f", "ticker", "-c", "app", "--tail", "1"])
            .env("RAFTERCONFIG", &cluster.config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = tick(&rx.recv_timeout(LIMIT).unwrap());
    assert!(first >= 3, "{first}");
    let mut last = first;
    while last < first + 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("-f prints lines written after it started");
        assert_eq!(tick(&line), last + 1, "lines arrive in order, none missed");
        last = tick(&line);
    }
    drop(follow);
}
