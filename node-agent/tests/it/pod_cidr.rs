//! The node's pod CIDR reaches containerd: with a CNI conf template (the setup script's
//! `RAFTER_CNI_TEMPLATE=1`), the agent tells containerd its Node's `spec.podCIDR`
//! (CRI UpdateRuntimeConfig) and pods get addresses from that range. Runs a private
//! containerd of its own (the template is rendered once per containerd), so only when
//! `RAFTER_CONTAINERD_SOCK` says containerd is usable on this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use node_agent::{ContainerdConfig, ContainerdRuntime};
use rafter_client::PatchType;
use rafter_proto::v1::{Container, ObjectMeta, Pod, PodSpec};
use rafter_proto::Kind;

use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, in_cidr, BUSYBOX};

/// A containerd this test started, killed (with its bridge removed) when dropped.
struct PrivateContainerd {
    dir: tempfile::TempDir,
    bridge: String,
}

impl PrivateContainerd {
    fn start(bridge: &str) -> (PrivateContainerd, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd-setup.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .env("RAFTER_CNI_TEMPLATE", "1")
            .env("RAFTER_CNI_BRIDGE", bridge)
            .output()
            .unwrap();
        let guard = PrivateContainerd {
            dir,
            bridge: bridge.to_owned(),
        };
        assert!(
            out.status.success(),
            "containerd-setup.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_owned();
        (guard, PathBuf::from(sock))
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("containerd.pid"));
        if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_gives_pods_addresses_from_their_nodes_pod_cidr() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    let n = std::process::id() % 200 + 20;
    let bridge = format!("rcidr{n}");
    let cidr = format!("10.251.{n}.0/24");
    let (_containerd, sock) = PrivateContainerd::start(&bridge);
    let rt = Arc::new(
        ContainerdRuntime::connect(ContainerdConfig::new(sock))
            .await
            .unwrap(),
    );
    let cluster = Cluster::start().await;
    let mut node = TestNode::start(&cluster, rt).await;
    // What the IPAM controller does on a master: give the registered node its subnet.
    eventually("the node to register", || async {
        cluster.client.get(Kind::Node, "", &node.name).await.ok()
    })
    .await;
    cluster
        .client
        .patch(
            Kind::Node,
            "",
            &node.name,
            PatchType::Merge,
            &serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}),
        )
        .await
        .unwrap();
    let pod = Pod {
        metadata: Some(ObjectMeta {
            name: "addressed".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            node_name: node.name.clone(),
            containers: vec![Container {
                name: "app".into(),
                image: BUSYBOX.into(),
                command: vec!["sh".into(), "-c".into(), "exec sleep 3600".into()],
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    cluster.create_pod(pod).await;
    let ip = cluster
        .wait_pod("addressed", "a pod IP", |p| {
            let ip = p.status.as_ref()?.pod_ip.clone();
            (!ip.is_empty()).then_some(ip)
        })
        .await;
    assert!(
        in_cidr(&ip, &cidr),
        "pod IP {ip} is not in the node's {cidr}"
    );
    let _ = cluster
        .client
        .delete(
            Kind::Pod,
            "default",
            "addressed",
            &rafter_client::DeleteOptions::default(),
        )
        .await;
    cluster.wait_gone("addressed").await;
    node.stop().await;
}
