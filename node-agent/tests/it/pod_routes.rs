//! Pods on two nodes reach each other through the routes the agents keep (host-gw). Two
//! network namespaces the test makes stand in for two hosts, linked by a veth pair (the
//! nodes' network, 10.203.N.0/24); each runs its own containerd (its bridge, and the pod
//! CIDR its Node carries, through the CNI conf template) and its own agent, whose threads
//! live in that namespace. A second veth per host links it to the test's gateway (the API),
//! which listens on every address. Only when `RAFTER_CONTAINERD_SOCK` says containerd is
//! usable here (and as root, which it takes).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use node_agent::{Agent, AgentConfig, ContainerRuntime, ContainerdConfig, ContainerdRuntime};
use node_agent::{LABEL_NODE_NAME, ROUTE_PROTOCOL};
use rafter_proto::v1::{Container, ObjectMeta, Pod, PodSpec};
use rafter_proto::{Kind, Object};

use crate::cluster::{admin_client, Cluster};
use crate::harness::{capture_logs, eventually, in_cidr, PrivateContainerd, BUSYBOX};

/// Runs `script` with bash; panics with its output if it fails.
fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euc", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with the veths in it) when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// One stand-in host: a namespace, a containerd in it, and an agent whose threads are in it.
struct Host {
    // Fields drop in this order: containerd stops before its namespace goes.
    _containerd: PrivateContainerd,
    netns: Netns,
    node: String,
    sock: PathBuf,
    _data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    /// Makes namespace `ns` with a link to the test's namespace on `api_net`.0/24 (.254
    /// here, .1 there) and starts containerd in it with a bridge of its own.
    fn new(ns: &str, api_net: &str) -> Host {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        let netns = Netns(ns.to_owned());
        let up = format!("{ns}u");
        sh(&format!(
            "ip link add {up} type veth peer name {up}0 netns {ns}
             ip addr add {api_net}.254/24 dev {up} && ip link set {up} up
             ip -n {ns} addr add {api_net}.1/24 dev {up}0 && ip -n {ns} link set {up}0 up"
        ));
        let (containerd, sock) = PrivateContainerd::start(&format!("{ns}br"), Some(ns));
        Host {
            _containerd: containerd,
            netns,
            node: ns.to_owned(),
            sock,
            _data: tempfile::tempdir().unwrap(),
            stop: None,
            thread: None,
        }
    }

    /// Starts the agent of node `self.node` (InternalIP `node_ip`, `pod_cidr`) on a thread
    /// in the namespace, talking to the gateway at `api`.
    fn start_agent(&mut self, api: String, node_ip: &str, pod_cidr: &str) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut config = AgentConfig::new(self.node.clone(), self._data.path());
        config.lease_interval = Duration::from_millis(300);
        config.resync = Duration::from_millis(300);
        config.node_ip = Some(node_ip.to_owned());
        config.pod_cidr = Some(pod_cidr.to_owned());
        config.logs_listen = None;
        config.pod_routes = true;
        let (netns, sock) = (format!("/run/netns/{}", self.netns.0), self.sock.clone());
        self.thread = Some(std::thread::spawn(move || {
            // This thread, the runtime's threads it starts and the processes they run
            // (`ip`, CNI through containerd) are all in the host's namespace.
            let file = std::fs::File::open(&netns).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = admin_client(&api).await;
                let runtime = ContainerdRuntime::connect(ContainerdConfig::new(sock))
                    .await
                    .unwrap();
                let agent = Agent::start(config, Arc::new(runtime), Arc::new(client))
                    .await
                    .unwrap();
                let _ = stopped.await;
                agent.shutdown().await;
            });
        }));
        self.stop = Some(stop);
    }

    fn stop_agent(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The routes the agent owns in this namespace: (destination, gateway).
    fn routes(&self) -> Vec<(String, String)> {
        let text = sh(&format!(
            "ip -n {} -json -4 route show proto {ROUTE_PROTOCOL}",
            self.netns.0
        ));
        let routes: Vec<serde_json::Value> = if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&text).unwrap()
        };
        routes
            .iter()
            .map(|r| {
                (
                    r["dst"].as_str().unwrap_or_default().to_owned(),
                    r["gateway"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Host {
    /// Stops the agent and removes the node's pods from containerd (their shims would
    /// outlive it); containerd, then the namespace, go with the fields.
    fn drop(&mut self) {
        self.stop_agent();
        let (sock, node) = (self.sock.clone(), self.node.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(client) = ContainerdRuntime::new(ContainerdConfig::new(sock)) else {
                    return;
                };
                for sb in client.list_sandboxes().await.unwrap_or_default() {
                    if sb.labels.get(LABEL_NODE_NAME) == Some(&node) {
                        let _ = client.stop_sandbox(&sb.id).await;
                        let _ = client.remove_sandbox(&sb.id).await;
                    }
                }
            });
        })
        .join();
    }
}

fn pod(name: &str, node: &str, script: &str, restart: &str) -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_name: node.into(),
            restart_policy: restart.into(),
            containers: vec![Container {
                name: "app".into(),
                image: BUSYBOX.into(),
                command: vec!["sh".into(), "-c".into(), script.into()],
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_nodes_reach_each_other_through_the_agents_routes() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    capture_logs();
    let n = std::process::id() % 100 + 20;
    let (ns_a, ns_b) = (format!("rta{n}"), format!("rtb{n}"));
    let (ip_a, ip_b) = (format!("10.203.{n}.1"), format!("10.203.{n}.2"));
    let (cidr_a, cidr_b) = (
        format!("10.252.{}.0/24", 2 * n),
        format!("10.252.{}.0/24", 2 * n + 1),
    );
    let mut a = Host::new(&ns_a, &format!("10.204.{n}"));
    let mut b = Host::new(&ns_b, &format!("10.205.{n}"));
    // The nodes' network: one link between the two hosts.
    sh(&format!(
        "ip link add rtl{n} netns {ns_a} type veth peer name rtl{n} netns {ns_b}
         ip -n {ns_a} addr add {ip_a}/24 dev rtl{n} && ip -n {ns_a} link set rtl{n} up
         ip -n {ns_b} addr add {ip_b}/24 dev rtl{n} && ip -n {ns_b} link set rtl{n} up"
    ));

    let cluster = Cluster::start_on("0.0.0.0").await;
    a.start_agent(
        format!("http://10.204.{n}.254:{}", cluster.port),
        &ip_a,
        &cidr_a,
    );
    b.start_agent(
        format!("http://10.205.{n}.254:{}", cluster.port),
        &ip_b,
        &cidr_b,
    );

    // Each host routes the other's pod CIDR through the other's InternalIP, and nothing else.
    eventually("the routes between the two nodes", || async {
        (a.routes() == vec![(cidr_b.clone(), ip_b.clone())]
            && b.routes() == vec![(cidr_a.clone(), ip_a.clone())])
        .then_some(())
    })
    .await;

    let server = pod(
        "web-b",
        &b.node,
        "mkdir -p /www && echo served-from-b > /www/index.html && exec httpd -f -p 8080 -h /www",
        "Always",
    );
    cluster.client.create(Object::Pod(server)).await.unwrap();
    let server_ip = cluster
        .wait_pod("web-b", "a pod IP", |p| {
            let s = p.status.as_ref()?;
            (!s.pod_ip.is_empty() && s.phase == "Running").then(|| s.pod_ip.clone())
        })
        .await;
    assert!(
        in_cidr(&server_ip, &cidr_b),
        "{server_ip} is not in {cidr_b}"
    );
    let client = pod(
        "client-a",
        &a.node,
        &format!(
            "for i in 1 2 3 4 5; do timeout 3 wget -O - http://{server_ip}:8080/ && exit 0; sleep 1; done; exit 1"
        ),
        "Never",
    );
    cluster.client.create(Object::Pod(client)).await.unwrap();
    let (phase, client_ip) = cluster
        .wait_pod("client-a", "to finish", |p| {
            let s = p.status.as_ref()?;
            matches!(s.phase.as_str(), "Succeeded" | "Failed")
                .then(|| (s.phase.clone(), s.pod_ip.clone()))
        })
        .await;
    assert_eq!(
        phase, "Succeeded",
        "a pod on node A could not fetch from {server_ip} on node B"
    );
    if !client_ip.is_empty() {
        assert!(
            in_cidr(&client_ip, &cidr_a),
            "{client_ip} is not in {cidr_a}"
        );
    }
    for name in ["client-a", "web-b"] {
        cluster
            .client
            .delete(Kind::Pod, "default", name, &Default::default())
            .await
            .unwrap();
        cluster.wait_gone(name).await;
    }

    // Node B goes away: A drops its route to B's pods and keeps nothing else.
    b.stop_agent();
    cluster
        .client
        .delete(Kind::Node, "", &b.node, &Default::default())
        .await
        .unwrap();
    eventually("node A to drop its route to node B's pods", || async {
        a.routes().is_empty().then_some(())
    })
    .await;
}
