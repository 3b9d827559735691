//! The node's pod CIDR reaches containerd: with a CNI conf template (the setup script's
//! `RAFTER_CNI_TEMPLATE=1`), the agent tells containerd its Node's `spec.podCIDR`
//! (CRI UpdateRuntimeConfig) and pods get addresses from that range. Runs a private
//! containerd of its own (the template is rendered once per containerd), so only when
//! `RAFTER_CONTAINERD_SOCK` says containerd is usable on this machine.

use std::sync::Arc;

use node_agent::{ContainerdConfig, ContainerdRuntime};
use rafter_client::PatchType;
use rafter_proto::v1::{Container, ObjectMeta, Pod, PodSpec};
use rafter_proto::Kind;

use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, in_cidr, PrivateContainerd, BUSYBOX};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_gives_pods_addresses_from_their_nodes_pod_cidr() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    let n = std::process::id() % 200 + 20;
    let bridge = format!("rcidr{n}");
    let cidr = format!("10.251.{n}.0/24");
    let (_containerd, sock) = PrivateContainerd::start(&bridge, None);
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
