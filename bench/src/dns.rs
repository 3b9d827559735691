//! `bench dns`: the node agent's cluster DNS server — queries/s and latency for A lookups
//! of Service names with a zone of many Services (issue 17: 1,000) against the same server
//! with a small zone, side by side, and how long building the large zone takes (the agent
//! rebuilds it after every Service or Endpoints change).
//!
//! ```text
//!   clients (UDP, one query in flight each) ──► DnsServer 127.0.0.1:A  zone of 1,000 Services
//!                                           └─► DnsServer 127.0.0.1:B  zone of 10 Services
//! ```
//!
//! Both servers are `node_agent`'s own [`DnsServer`], started in this process on loopback
//! with no upstream; the phases take turns, and the figure is the median of the per-round
//! ratios. Each query asks for a random existing Service's full name, and an answer counts
//! only if it is NOERROR with the Service's address. The clients run in the benchmark
//! process, not in a pod: a pod's query crosses its veth and the proxy's DNAT to the same
//! server, which `bench proxy` measures separately. Owns only the workload and its report.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use node_agent::dns::{ClusterZone, DnsServer, Upstream, ZoneHandle};
use rafter_proto::v1::{ObjectMeta, Service, ServicePort, ServiceSpec};
use tokio::net::UdpSocket;

use crate::report::Machine;
use crate::stats::{percentile, Summary};

/// `bench dns`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DnsArgs {
    /// Services in the large zone.
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Services in the small zone it is compared with.
    #[arg(long, default_value_t = 10)]
    pub baseline_services: usize,
    /// Concurrent clients, each with one query in flight.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Phases per zone (the two zones alternate).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Zone builds measured.
    #[arg(long, default_value_t = 20)]
    pub builds: usize,
}

const DOMAIN: &str = "cluster.local";
/// Namespaces the Services are spread over.
const NAMESPACES: usize = 10;

/// Service `i`: `svc-<i>` in namespace `ns-<i mod 10>`, ClusterIP 10.96.x.y.
fn service(i: usize) -> (Service, String, Ipv4Addr) {
    let namespace = format!("ns-{}", i % NAMESPACES);
    let name = format!("svc-{i}");
    let n = u32::try_from(i).unwrap_or(u32::MAX);
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + n);
    let fqdn = format!("{name}.{namespace}.svc.{DOMAIN}.");
    let svc = Service {
        metadata: Some(ObjectMeta {
            name,
            namespace,
            ..Default::default()
        }),
        spec: Some(ServiceSpec {
            cluster_ip: ip.to_string(),
            r#type: "ClusterIP".into(),
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
    (svc, fqdn, ip)
}

/// A zone of `count` Services and the (name, address) pairs to ask for.
fn zone(count: usize) -> anyhow::Result<(ClusterZone, Vec<(Name, Ipv4Addr)>)> {
    let mut services = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let (svc, fqdn, ip) = service(i);
        services.push(svc);
        names.push((Name::from_ascii(&fqdn).context("a Service name")?, ip));
    }
    let zone = ClusterZone::build(DOMAIN, &services, &BTreeMap::new())?;
    Ok((zone, names))
}

/// Whether `reply` is NOERROR with `ip` among its A records.
fn answers(reply: &Message, id: u16, ip: Ipv4Addr) -> bool {
    reply.metadata.id == id
        && reply.metadata.response_code == ResponseCode::NoError
        && reply
            .answers
            .iter()
            .any(|r| matches!(&r.data, RData::A(a) if a.0 == ip))
}

/// One client: queries `names` round-robin from a seed until `stop`.
async fn client(
    server: SocketAddr,
    names: Arc<Vec<(Name, Ipv4Addr)>>,
    seed: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<Duration>, u64, Option<String>)> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut buf = vec![0u8; 4096];
    let mut i = seed.wrapping_mul(7919);
    let mut id: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        i = i.wrapping_add(104_729);
        id = id.wrapping_add(1);
        let (name, ip) = &names[i % names.len()];
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name.clone(), RecordType::A));
        let packet = message.to_vec()?;
        let start = Instant::now();
        socket.send(&packet).await?;
        let outcome = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
        let error = match outcome {
            Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                Ok(reply) if answers(&reply, id, *ip) => {
                    latencies.push(start.elapsed());
                    None
                }
                Ok(reply) => Some(format!(
                    "{name}: {:?} with {} answers",
                    reply.metadata.response_code,
                    reply.answers.len()
                )),
                Err(e) => Some(format!("{name}: unparsable reply: {e}")),
            },
            Ok(Err(e)) => Some(format!("{name}: {e}")),
            Err(_) => Some(format!("{name}: no reply within 1 s")),
        };
        if let Some(error) = error {
            errors += 1;
            first_error.get_or_insert(error);
        }
    }
    Ok((latencies, errors, first_error))
}

/// One measured phase against `server`.
async fn phase(
    server: SocketAddr,
    names: &Arc<Vec<(Name, Ipv4Addr)>>,
    clients: usize,
    length: Duration,
) -> anyhow::Result<Summary> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|seed| tokio::spawn(client(server, names.clone(), seed, stop.clone())))
        .collect();
    let start = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (l, e, f) = task.await??;
        latencies.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    Ok(Summary::new(latencies, errors, first_error, elapsed))
}

fn line(label: &str, s: &Summary) -> String {
    let mut out = format!(
        "{label:<22} {:>9.0} q/s  p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  errors {}",
        s.per_sec(),
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.max.as_secs_f64() * 1e6,
        s.errors
    );
    if let Some(e) = &s.first_error {
        out.push_str(&format!(" (first: {e})"));
    }
    out
}

/// Runs `bench dns`.
pub(crate) async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("dns: cluster DNS queries/s and latency, large zone vs small zone")
    );

    let mut builds = Vec::with_capacity(args.builds);
    let (large, large_names) = zone(args.services)?;
    for _ in 0..args.builds {
        let start = Instant::now();
        let (zone, _) = zone(args.services)?;
        builds.push(start.elapsed());
        drop(zone);
    }
    builds.sort_unstable();
    println!(
        "zone build, {} Services: p50 {:.2} ms, max {:.2} ms ({} builds, Service objects included)",
        args.services,
        percentile(&builds, 0.5).as_secs_f64() * 1e3,
        builds.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        args.builds
    );

    let (small, small_names) = zone(args.baseline_services)?;
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let large_server = DnsServer::start(loopback, ZoneHandle::new(large), &Upstream::None).await?;
    let small_server = DnsServer::start(loopback, ZoneHandle::new(small), &Upstream::None).await?;
    let large_names = Arc::new(large_names);
    let small_names = Arc::new(small_names);
    let length = Duration::from_secs(args.seconds);

    let large_label = format!("{} Services", args.services);
    let small_label = format!("{} Services", args.baseline_services);
    let mut ratios = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let small = phase(small_server.addr(), &small_names, args.clients, length).await?;
        let large = phase(large_server.addr(), &large_names, args.clients, length).await?;
        println!("round {round}");
        println!("  {}", line(&small_label, &small));
        println!("  {}", line(&large_label, &large));
        if small.per_sec() > 0.0 {
            ratios.push(large.per_sec() / small.per_sec());
        }
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!(
            "queries/s with {} Services ÷ with {}: median {:.3} over {} rounds",
            args.services,
            args.baseline_services,
            median,
            ratios.len()
        );
    }
    large_server.shutdown().await;
    small_server.shutdown().await;
    print!("{}", machine.footer());
    Ok(())
}
