//! `bench service-ready`: how long after a pod turns Ready its Service serves it — from the
//! watch event that shows the pod Ready to the first request answered by that pod through
//! the Service's ClusterIP, against the first request answered straight at the pod's IP,
//! side by side in each round (issue 16).
//!
//! ```text
//!  bench ─ create Service (selector round=N) + Pod ─► 3 masters ─► bench agent (containerd, proxy)
//!    │ watch: pod Ready  ─── t0                         endpoints controller ─► Endpoints
//!    ├─ probe podIP:8080 every 2 ms ───► first answer  t_direct     agent's proxy ─► nft table
//!    └─ probe ClusterIP:80 every 2 ms ─► first answer  t_service    (host traffic: nat output)
//! ```
//!
//! Each round has a Service of its own selecting only that round's pod, so the first
//! answer through the ClusterIP can only come from the new pod, after its Ready status,
//! the Endpoints write, the agent's watch and its proxy sync. The pod has no readiness
//! probe, so it is Ready when its container runs; httpd may answer at its IP a little
//! before the Ready event arrives (the direct figure is then 0). The containerd's pods must
//! be reachable from the host, as on scripts/containerd-setup.sh's bridge. Owns only the
//! workload and its report; masters, agent and the containerd flags are the `pods`
//! benchmark's.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use rafter_client::DeleteOptions;
use rafter_proto::{v1, Kind, Object};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::pods::{spawn_agent, wait_node_ready, wait_torn_down, ContainerdImage};
use crate::report::{ms, Machine};
use crate::stats::percentile;

/// `bench service-ready`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServiceReadyArgs {
    /// Pods (each with its own Service) measured one after the other.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    #[command(flatten)]
    containerd: ContainerdImage,
    /// The masters' Service ClusterIP range (one no other cluster on this host uses).
    #[arg(long, default_value = "10.251.0.0/16")]
    service_range: String,
}

const LABEL: &str = "bench-service-ready";

fn service_object(name: &str) -> Object {
    Object::Service(v1::Service {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(v1::ServiceSpec {
            selector: [(LABEL.to_owned(), name.to_owned())].into(),
            ports: vec![v1::ServicePort {
                port: 80,
                target_port: Some(rafter_proto::IntOrString::Int(8080)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn pod(name: &str, image: &str) -> Object {
    let script =
        format!("mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 8080 -h /www");
    Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".into(),
            labels: [(LABEL.to_owned(), name.to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            containers: vec![v1::Container {
                name: "httpd".into(),
                image: image.to_owned(),
                command: vec!["sh".into(), "-c".into(), script],
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The pod's IP once its Ready condition is True.
fn ready_ip(object: &Object, name: &str) -> Option<String> {
    let Object::Pod(pod) = object else {
        return None;
    };
    if pod.metadata.as_ref()?.name != name {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.r#type == "Ready" && c.status == "True");
    (ready && !status.pod_ip.is_empty()).then(|| status.pod_ip.clone())
}

/// One `GET /` to `addr`; whether the page names `name`.
async fn answers(addr: SocketAddr, name: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut page = Vec::new();
        stream.read_to_end(&mut page).await.ok()?;
        Some(String::from_utf8_lossy(&page).contains(name))
    };
    tokio::time::timeout(Duration::from_millis(200), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Polls `addr` every 2 ms until the page names `name`; the time since `from`.
async fn first_answer(addr: SocketAddr, name: &str, from: Instant) -> anyhow::Result<Duration> {
    let deadline = from + Duration::from_secs(30);
    while Instant::now() < deadline {
        if answers(addr, name).await {
            return Ok(from.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    anyhow::bail!("{addr} did not serve {name} within 30 s of the pod's Ready")
}

/// Runs `bench service-ready`.
pub(crate) async fn run(args: ServiceReadyArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("service-ready: pod Ready → first request served through its Service")
    );
    args.containerd.require().await?;

    println!("starting 3 masters and the agent (with its nftables proxy) ...");
    let cluster =
        chaos_tests::Cluster::start_with(3, &["--service-cluster-ip-range", &args.service_range])
            .await
            .map_err(|e| anyhow::anyhow!("starting 3 masters: {e}"))?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = crate::gateway::library_client(&cluster, leader).await?;
    let dir = tempfile::tempdir()?;
    let node = format!("bench-svc-node-{}", std::process::id());
    let table = format!("rafter-bench-svc-{}", std::process::id());
    let agent = spawn_agent(
        &cluster,
        dir.path(),
        &node,
        &args.containerd.containerd_socket,
        8,
        Some(&table),
    )?;
    let result = rounds(&args, &client, &node).await;
    // The pods went with grace 0: the agent stops once it has removed their containers.
    if let Err(e) = wait_torn_down(&args.containerd.containerd_socket, &node).await {
        println!("warning: {e:#}; containers may be left in containerd");
    }
    drop(agent);
    let _ = tokio::process::Command::new("nft")
        .args(["delete", "table", "ip", &table])
        .output()
        .await;
    let (direct, service) = result?;
    drop(cluster);

    let row = |label: &str, samples: &[Duration]| {
        let mut sorted = samples.to_vec();
        sorted.sort();
        format!(
            "| {label} | {} | {} | {} | {} |",
            sorted.len(),
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default()),
        )
    };
    println!();
    println!("| pod Ready (watch event) → first answer | rounds | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!("{}", row("straight at the pod IP", &direct));
    println!("{}", row("through the Service's ClusterIP", &service));
    print!("{}", machine.footer());
    Ok(())
}

/// The measured rounds: per round the time to the first direct and the first Service answer.
async fn rounds(
    args: &ServiceReadyArgs,
    client: &rafter_client::Client,
    node: &str,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    wait_node_ready(client, node).await?;
    let mut direct = Vec::with_capacity(args.rounds);
    let mut service = Vec::with_capacity(args.rounds);
    // Round 0 warms the image's snapshot and the paths up; it is not counted.
    for round in 0..=args.rounds {
        let name = format!("svc-ready-{round}");
        let created = client.create(service_object(&name)).await?;
        let cluster_ip = match &created {
            Object::Service(s) => s.spec.as_ref().map(|s| s.cluster_ip.clone()),
            _ => None,
        }
        .filter(|ip| !ip.is_empty())
        .context("the Service got no ClusterIP")?;
        let listed = client
            .list(Kind::Pod, Some("default"), &Default::default())
            .await?;
        let mut events = Box::pin(client.watch(
            Kind::Pod,
            Some("default"),
            &Default::default(),
            Some(&listed.resource_version),
        ));
        client.create(pod(&name, &args.containerd.image)).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let (ready_at, pod_ip) = loop {
            let event = tokio::time::timeout_at(deadline, events.next())
                .await
                .map_err(|_| anyhow::anyhow!("{name} not Ready within 120 s"))?
                .context("the watch ended")??;
            if let Some(ip) = event.object.as_ref().and_then(|o| ready_ip(o, &name)) {
                break (Instant::now(), ip);
            }
        };
        let pod_addr: SocketAddr = format!("{pod_ip}:8080").parse()?;
        let service_addr: SocketAddr = format!("{cluster_ip}:80").parse()?;
        let (d, s) = tokio::join!(
            first_answer(pod_addr, &name, ready_at),
            first_answer(service_addr, &name, ready_at)
        );
        let (d, s) = (d?, s?);
        if round > 0 {
            println!("round {round}: direct {} ms, service {} ms", ms(d), ms(s));
            direct.push(d);
            service.push(s);
        }
        let gone = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        client.delete(Kind::Pod, "default", &name, &gone).await?;
        client
            .delete(Kind::Service, "default", &name, &DeleteOptions::default())
            .await?;
    }
    Ok((direct, service))
}
