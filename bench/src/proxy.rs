//! `bench proxy`: the node proxy's nftables mode — how long a sync of many Services takes
//! (rule generation, then `nft -f` of the whole table and of an in-place update), and
//! requests/s through a ClusterIP against straight to the endpoint, side by side
//! (issue 16's target: ≥ 90%).
//!
//! ```text
//!   netns "client" (v1 10.201.0.2) ══veth══ netns "node" (v0 10.201.0.1, lo 10.200.0.2)
//!     clients ── direct ──────────────────────► 10.200.0.2:8080  server
//!     clients ── 10.96.0.10:80 ── prerouting DNAT (the proxy's table) ──┘
//! ```
//!
//! Everything runs in two network namespaces the benchmark makes and deletes (loopback
//! and a veth pair), so the host's rules are never touched. The client and server threads
//! enter their namespace with `setns` and run their own tokio runtime there. Each request
//! is a new TCP connection (connect, `GET /`, read to the end), so every one of them goes
//! through connection tracking and, for the ClusterIP, one DNAT decision. The proxy table
//! is present in both phases, so conntrack costs the same in both. Owns only the
//! workload and its report; the rules are `node_agent`'s.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use node_agent::{service_rules, NftTable, Ruleset, ServiceState};
use rafter_proto::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta, Service, ServicePort,
    ServiceSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::Machine;
use crate::stats::percentile;

/// `bench proxy`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProxyArgs {
    /// Services in the sync measurement.
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Endpoints of each Service.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Syncs measured (each: generation, a whole-table apply, an in-place update).
    #[arg(long, default_value_t = 5)]
    pub syncs: usize,
    /// Concurrent clients in the request phases.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Length of each request phase, in seconds.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Request phases per target (direct and ClusterIP alternate).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

const TABLE: &str = "rafter-bench";
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The two namespaces; deleted on drop.
struct Namespaces {
    node: String,
    client: String,
}

impl Namespaces {
    fn create() -> anyhow::Result<Namespaces> {
        let pid = std::process::id();
        let ns = Namespaces {
            node: format!("rafter-bench-node-{pid}"),
            client: format!("rafter-bench-client-{pid}"),
        };
        ip(&["netns", "add", &ns.node])?;
        ip(&["netns", "add", &ns.client])?;
        let (n, c) = (ns.node.as_str(), ns.client.as_str());
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", c, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", c,
        ])?;
        ip(&["-n", n, "addr", "add", "10.201.0.1/24", "dev", "v0"])?;
        ip(&["-n", c, "addr", "add", "10.201.0.2/24", "dev", "v1"])?;
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{ENDPOINT}/32"),
            "dev",
            "lo",
        ])?;
        ip(&["-n", n, "link", "set", "v0", "up"])?;
        ip(&["-n", c, "link", "set", "v1", "up"])?;
        ip(&["-n", c, "route", "add", "default", "via", "10.201.0.1"])?;
        // Many short connections: a wide port range and TIME_WAIT reuse on the client;
        // closed connections leave connection tracking after 1 s in both namespaces (the
        // same for both targets), so the table does not grow over the run.
        for (ns, setting) in [
            (c, "net.ipv4.ip_local_port_range=1024 65000"),
            (c, "net.ipv4.tcp_tw_reuse=1"),
            (c, "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1"),
            (n, "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1"),
        ] {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw", setting])
                .output()
                .context("running sysctl")?;
            if !out.status.success() {
                bail!("sysctl {setting}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok(ns)
    }

    fn nft(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.node, "nft"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.node, &self.client] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .output();
        }
    }
}

fn meta(name: String) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name,
        namespace: "bench".into(),
        ..Default::default()
    })
}

/// `services` ClusterIP Services of `endpoints` endpoints each; `shift` moves every
/// endpoint address (a changed state for the update sync).
fn synthetic(services: usize, endpoints: usize, shift: u32) -> ServiceState {
    let mut state = ServiceState::default();
    for i in 0..services {
        let name = format!("svc-{i}");
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let cluster_ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i);
        let service = Service {
            metadata: meta(name.clone()),
            spec: Some(ServiceSpec {
                r#type: "NodePort".into(),
                cluster_ip: cluster_ip.to_string(),
                ports: vec![ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                    node_port: 30000 + i32::try_from(i % 2700).unwrap_or(0),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let addresses = (0..endpoints)
            .map(|e| {
                let e = u32::try_from(e).unwrap_or(0);
                let ip = u32::from(Ipv4Addr::new(10, 244, 0, 0)) + i * 16 + e + shift;
                EndpointAddress {
                    ip: Ipv4Addr::from(ip).to_string(),
                    ..Default::default()
                }
            })
            .collect();
        let eps = Endpoints {
            metadata: meta(name.clone()),
            subsets: vec![EndpointSubset {
                addresses,
                ports: vec![EndpointPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: "TCP".into(),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let key = ("bench".to_owned(), name);
        state.services.insert(key.clone(), service);
        state.endpoints.insert(key, eps);
    }
    state
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn line(label: &str, mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    format!(
        "| {label} | {} | {} | {} |",
        ms(percentile(&samples, 0.5)),
        ms(*samples.first().unwrap_or(&Duration::ZERO)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    )
}

async fn sync_times(args: &ProxyArgs, ns: &Namespaces) -> anyhow::Result<()> {
    let states = [
        synthetic(args.services, args.endpoints, 0),
        synthetic(args.services, args.endpoints, 1),
    ];
    let (mut generate, mut full, mut update) = (Vec::new(), Vec::new(), Vec::new());
    let mut rules = 0;
    for round in 0..args.syncs.max(1) {
        let started = Instant::now();
        let model = service_rules(&states[round % 2], "bench");
        let ruleset = Ruleset::build(TABLE, &model);
        let text = ruleset.full();
        generate.push(started.elapsed());
        rules = ruleset.rule_count();
        // A fresh table object applies the whole table; the same one then updates in place.
        let mut table = NftTable::new(TABLE, ns.nft());
        let started = Instant::now();
        table.apply(&ruleset).await.context("whole-table sync")?;
        full.push(started.elapsed());
        let changed = Ruleset::build(TABLE, &service_rules(&states[(round + 1) % 2], "bench"));
        let started = Instant::now();
        table.apply(&changed).await.context("in-place sync")?;
        update.push(started.elapsed());
        drop(text);
    }
    println!(
        "\n## sync: {} Services × {} endpoints ({} rules), {} syncs\n",
        args.services,
        args.endpoints,
        rules,
        args.syncs.max(1)
    );
    println!("| step | p50 | min | max |\n|---|---|---|---|");
    println!("{}", line("rule generation (model + text)", generate));
    println!("{}", line("`nft -f`, whole table", full));
    println!(
        "{}",
        line("`nft -f`, in-place update (every endpoint moved)", update)
    );
    NftTable::new(TABLE, ns.nft()).remove().await?;
    Ok(())
}

/// Runs `work` on a new thread inside network namespace `ns`, on its own runtime.
fn in_netns<T, F, Fut>(ns: &str, work: F) -> std::thread::JoinHandle<anyhow::Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering {path}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(work())
    })
}

const RESPONSE: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

async fn serve(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((ENDPOINT, 8080)).await?;
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        let Ok(Ok((mut stream, _))) = accepted else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(RESPONSE).await;
            // The client closes first (its TIME_WAIT is reused), so wait for its end.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        });
    }
    Ok(())
}

/// `clients` loops of connect + GET + read for `length`; (requests, errors).
async fn load(target: SocketAddr, clients: usize, length: Duration) -> anyhow::Result<(u64, u64)> {
    let deadline = tokio::time::Instant::now() + length;
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        tasks.push(tokio::task::spawn_local(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while tokio::time::Instant::now() < deadline {
                let one = async {
                    let mut stream = tokio::net::TcpStream::connect(target).await?;
                    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
                    // Read the whole response (its length is known), then close first.
                    let mut body = vec![0u8; RESPONSE.len()];
                    stream.read_exact(&mut body).await?;
                    Ok::<bool, std::io::Error>(body == RESPONSE)
                };
                match tokio::time::timeout(Duration::from_secs(2), one).await {
                    Ok(Ok(true)) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (o, f) = task.await?;
        ok += o;
        failed += f;
    }
    Ok((ok, failed))
}

async fn throughput(args: &ProxyArgs, ns: &Namespaces) -> anyhow::Result<()> {
    let service = Service {
        metadata: meta("web".into()),
        spec: Some(ServiceSpec {
            cluster_ip: CLUSTER_IP.to_string(),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let endpoints = Endpoints {
        metadata: meta("web".into()),
        subsets: vec![EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: ENDPOINT.to_string(),
                ..Default::default()
            }],
            ports: vec![EndpointPort {
                name: "http".into(),
                port: 8080,
                protocol: "TCP".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut state = ServiceState::default();
    let key = ("bench".to_owned(), "web".to_owned());
    state.services.insert(key.clone(), service);
    state.endpoints.insert(key, endpoints);
    let mut table = NftTable::new(TABLE, ns.nft());
    table
        .apply(&Ruleset::build(TABLE, &service_rules(&state, "bench")))
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let server_stop = stop.clone();
    let server = in_netns(&ns.node, move || serve(server_stop));
    let (clients, length, rounds) = (
        args.clients,
        Duration::from_secs(args.seconds.max(1)),
        args.rounds.max(1),
    );
    let results = in_netns(&ns.client, move || async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let direct = SocketAddr::from((ENDPOINT, 8080));
                let via_service = SocketAddr::from((CLUSTER_IP, 80));
                // Wait for the server, then warm both paths up.
                let ready = Instant::now() + Duration::from_secs(10);
                while load(direct, 1, Duration::from_millis(50)).await?.0 == 0 {
                    if Instant::now() > ready {
                        bail!("the server in the node namespace does not answer");
                    }
                }
                load(via_service, clients, Duration::from_millis(500)).await?;
                let mut rows: BTreeMap<&str, Vec<(f64, u64)>> = BTreeMap::new();
                for _ in 0..rounds {
                    for (label, target) in [("direct", direct), ("clusterip", via_service)] {
                        let (ok, failed) = load(target, clients, length).await?;
                        rows.entry(label)
                            .or_default()
                            .push((ok as f64 / length.as_secs_f64(), failed));
                    }
                }
                Ok(rows)
            })
            .await
    });
    let rows = results
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
    stop.store(true, Ordering::Relaxed);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    table.remove().await?;

    let direct = rows.get("direct").cloned().unwrap_or_default();
    let service = rows.get("clusterip").cloned().unwrap_or_default();
    println!(
        "\n## requests/s: a new TCP connection per request, {} clients, {} s per phase, the two taking turns\n",
        args.clients,
        args.seconds.max(1)
    );
    println!("| round | pod IP direct (10.200.0.2:8080) | ClusterIP (10.96.0.10:80, DNAT) | ClusterIP ÷ direct |\n|---|---|---|---|");
    let mut ratios = Vec::new();
    for (round, (d, c)) in direct.iter().zip(&service).enumerate() {
        let ratio = c.0 / d.0.max(1.0);
        ratios.push(ratio);
        println!(
            "| {} | {:.0}/s | {:.0}/s | {ratio:.3} |",
            round + 1,
            d.0,
            c.0
        );
    }
    let errors: u64 = direct.iter().chain(&service).map(|x| x.1).sum();
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
    println!("\nMedian ClusterIP ÷ direct: {median:.3} (target ≥ 0.90); failed requests: {errors}");
    Ok(())
}

/// Runs `bench proxy`.
pub(crate) async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header(
            "node proxy: nftables sync time, requests/s through a ClusterIP against direct"
        )
    );
    let ns = Namespaces::create()?;
    sync_times(&args, &ns).await?;
    throughput(&args, &ns).await?;
    print!("{}", machine.footer());
    Ok(())
}
