//! `rafter attach` on a `rafter up` cluster with one agent: the output a running
//! container writes after the attach (of a pod, and of `deploy/NAME`'s pod), stdin (`-i`) fed to a container started with
//! `stdin: true` and echoed back by its `cat`, and a user without pods/attach refused by
//! name; on host processes always, and through containerd's streaming server when
//! `RAFTER_CONTAINERD_SOCK` is set. (Stock kubectl's `attach` is in `kubectl`.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(90);

const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done']
---
apiVersion: v1
kind: Pod
metadata:
  name: echo
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [cat]
    stdin: true
    stdinOnce: true
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: talkers
spec:
  replicas: 1
  selector:
    matchLabels:
      app: talkers
  template:
    metadata:
      labels:
        app: talkers
    spec:
      containers:
      - name: app
        image: docker.io/local/busybox:1
        command: [sh, -c, 'while true; do echo from-deployment; sleep 1; done']
";

/// A running `rafter attach`, killed when dropped.
struct Attached(Child);

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rafter attach ARGS` (its stdin piped); returns it and its stdout's lines.
fn attach(cluster: &Cluster, args: &[&str]) -> (Attached, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .arg("attach")
        .args(args)
        .env("RAFTERCONFIG", &cluster.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Attached(child), rx)
}

/// The checks every runtime passes, on a cluster where `PODS` were applied.
fn attach_sees_output_and_feeds_stdin(cluster: &Cluster) {
    for pod in ["talker", "echo"] {
        eventually(&format!("pod {pod} Running"), LIMIT, || {
            let pod = cluster.json(&["get", "pod", pod]);
            (pod["status"]["phase"] == "Running").then_some(())
        });
    }
    let (_talker, lines) = attach(cluster, &["talker"]);
    let first = lines.recv_timeout(LIMIT).expect("the running pod's output");
    let tick = |line: &str| -> u64 {
        line.strip_prefix("tick-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not the pod's line: {line:?}"))
    };
    let next = lines.recv_timeout(LIMIT).expect("more output as it comes");
    assert_eq!(tick(&next), tick(&first) + 1, "in order, none missed");

    let (mut echo, lines) = attach(cluster, &["-i", "pod/echo", "-c", "app"]);
    let mut stdin = echo.0.stdin.take().unwrap();
    stdin.write_all(b"hello through attach\n").unwrap();
    stdin.flush().unwrap();
    let echoed = lines.recv_timeout(LIMIT).expect("cat echoes stdin");
    assert_eq!(echoed, "hello through attach");
    stdin.write_all(b"and again\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.recv_timeout(LIMIT).unwrap(), "and again");
    drop(stdin);
    drop(echo);

    // deploy/NAME: one of its running pods.
    eventually("deployment talkers available", LIMIT, || {
        let deploy = cluster.json(&["get", "deployment", "talkers"]);
        (deploy["status"]["availableReplicas"] == 1).then_some(())
    });
    let (_deployed, lines) = attach(cluster, &["deploy/talkers"]);
    assert_eq!(
        lines
            .recv_timeout(LIMIT)
            .expect("the deployment pod's output"),
        "from-deployment"
    );

    let refused = cluster.run(&["attach", "talker", "--as", "bob"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("bob") && refused.stderr.contains("pods/attach"),
        "the refusal names the user and pods/attach: {}",
        refused.stderr
    );
    let missing = cluster.fails(&["attach", "talker", "-c", "db"]);
    assert!(missing.contains("\"db\""), "{missing}");
}

#[test]
fn rafter_attach_streams_a_host_process_containers_output_and_stdin() {
    let cluster = Cluster::start_with("attach", &["--agents", "1", "--runtime", "process"]);
    let manifest = cluster.file("pods.yaml", PODS);
    cluster.ok(&["apply", "-f", &manifest]);
    attach_sees_output_and_feeds_stdin(&cluster);
}

#[test]
fn rafter_attach_reaches_containerd_containers_through_its_streaming_server() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let cluster = Cluster::start_with(
        "attach-containerd",
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &socket,
        ],
    );
    let manifest = cluster.file("pods.yaml", PODS);
    cluster.ok(&["apply", "-f", &manifest]);
    attach_sees_output_and_feeds_stdin(&cluster);
}
