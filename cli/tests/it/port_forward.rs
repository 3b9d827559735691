//! `rafter port-forward` on a `rafter up` cluster with one agent: a local port (picked
//! free with `:REMOTE`) reaches a pod's HTTP server, once per connection, twice, and
//! through `svc/NAME` (the Service's port mapped to its target port); a user
//! who may read pods but not pods/portforward is refused by name; a port nothing listens
//! on ends the command with an error naming the port. On host processes always (the
//! agent dials the port on the host), and through containerd's streaming server when
//! `RAFTER_CONTAINERD_SOCK` is set.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(90);

/// A busybox HTTP server on `port` serving `dir`, Ready once it listens.
fn web_pod(port: u16, dir: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'mkdir -p {dir} && echo hello-from-pod > {dir}/index.html && exec busybox httpd -f -p {port} -h {dir}']
    readinessProbe:
      tcpSocket:
        port: {port}
      periodSeconds: 1
"
    )
}

/// A running `rafter port-forward`, killed when dropped.
struct Forwarding(Child);

impl Drop for Forwarding {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rafter port-forward ARGS`; returns it and its stdout's lines.
fn port_forward(cluster: &Cluster, args: &[&str]) -> (Forwarding, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .arg("port-forward")
        .args(args)
        .env("RAFTERCONFIG", &cluster.config)
        .stdin(Stdio::null())
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
    (Forwarding(child), rx)
}

/// `GET /` through `127.0.0.1:port`: the whole answer.
fn get(port: u16) -> String {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    socket
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}

/// The checks every runtime passes, on a cluster whose pod `web` serves on `port`.
fn port_forward_reaches_the_pod_and_refuses_what_it_must(cluster: &Cluster, port: u16) {
    eventually("pod web Ready", LIMIT, || {
        let pod = cluster.json(&["get", "pod", "web"]);
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });
    let remote = port.to_string();
    let (mut forwarding, lines) = port_forward(cluster, &["pod/web", &format!(":{remote}")]);
    let first = lines
        .recv_timeout(LIMIT)
        .expect("port-forward prints where it forwards from");
    assert!(first.ends_with(&format!(" -> {remote}")), "{first}");
    let local = local_port(&first);
    for round in 0..2 {
        let answer = get(local);
        assert!(
            answer.starts_with("HTTP/1.") && answer.contains("hello-from-pod"),
            "connection {round}: {answer:?}"
        );
    }
    assert!(
        forwarding.0.try_wait().unwrap().is_none(),
        "port-forward still runs after its connections closed"
    );
    drop(forwarding);

    // Through a Service: its port 80 is the pod's target port.
    cluster.ok(&[
        "expose",
        "pod",
        "web",
        "--port",
        "80",
        "--target-port",
        &remote,
    ]);
    let (_through_service, lines) = port_forward(cluster, &["svc/web", ":80"]);
    let first = lines.recv_timeout(LIMIT).expect("it listens");
    assert!(first.ends_with(&format!(" -> {remote}")), "{first}");
    let answer = get(local_port(&first));
    assert!(
        answer.contains("hello-from-pod"),
        "through svc/web: {answer:?}"
    );

    // bob may read pods, not forward to them.
    cluster.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb",
        "get,list",
        "--resource",
        "pods",
    ]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "bob-reads",
        "--role",
        "pod-reader",
        "--user",
        "bob",
    ]);
    let output = failure_on_a_connection(cluster, &["web", &format!(":{remote}"), "--as", "bob"]);
    assert!(
        output.contains("bob") && output.contains("pods/portforward"),
        "the refusal names the user and pods/portforward: {output}"
    );

    // Nothing listens on port 1 in the pod.
    let output = failure_on_a_connection(cluster, &["web", ":1"]);
    assert!(
        output.contains("port 1") && output.contains("web"),
        "the error names the port and the pod: {output}"
    );
}

/// Runs `rafter port-forward ARGS`, makes one connection through it, which must be
/// closed without an answer, and waits for the command to fail: its stderr.
fn failure_on_a_connection(cluster: &Cluster, args: &[&str]) -> String {
    let (mut forwarding, lines) = port_forward(cluster, args);
    let first = lines.recv_timeout(LIMIT).expect("it listens first");
    let local = local_port(&first);
    let mut socket = TcpStream::connect(("127.0.0.1", local)).unwrap();
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    let mut nothing = Vec::new();
    let _ = socket.read_to_end(&mut nothing);
    assert!(nothing.is_empty(), "{}", String::from_utf8_lossy(&nothing));
    let status = eventually("port-forward to end by itself", LIMIT, || {
        forwarding.0.try_wait().unwrap()
    });
    assert!(!status.success(), "it fails");
    let mut stderr = String::new();
    forwarding
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    println!("port-forward {}: {stderr}", args.join(" "));
    stderr
}

/// The local port of kubectl's `Forwarding from 127.0.0.1:PORT -> REMOTE` line.
fn local_port(line: &str) -> u16 {
    line.strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("not kubectl's line: {line:?}"))
}

/// A port free on the host now (the process runtime's pods share the host's network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn port_forward_reaches_a_host_process_pods_port_on_each_connection() {
    let cluster = Cluster::start_with("port-forward", &["--agents", "1", "--runtime", "process"]);
    let port = free_port();
    let dir = cluster.dir.join("www").display().to_string();
    let manifest = cluster.file("web.yaml", &web_pod(port, &dir));
    cluster.ok(&["apply", "-f", &manifest]);
    port_forward_reaches_the_pod_and_refuses_what_it_must(&cluster, port);
}

#[test]
fn port_forward_reaches_a_containerd_pods_port_through_its_streaming_server() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let cluster = Cluster::start_with(
        "port-forward-containerd",
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &socket,
        ],
    );
    let manifest = cluster.file("web.yaml", &web_pod(8080, "/www"));
    cluster.ok(&["apply", "-f", &manifest]);
    port_forward_reaches_the_pod_and_refuses_what_it_must(&cluster, 8080);
}
