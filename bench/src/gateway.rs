//! `bench gateway`: Pod creates through the API gateway of three masters, TLS on.
//!
//! Owns [`GatewayArgs`], [`MasterArgs`] (the hidden `bench master`, which runs
//! `api_gateway::Master` like `rafter master` does) and the gateway failover measurement.
//! The masters are started by chaos-tests' multi-process harness with this binary as the
//! master program (`RAFTER_BIN`, set in `main`), so the gateway measured is built with the
//! same profile as the benchmark. Clients use the admin bearer token and the cluster CA.
//!
//! ```text
//!  bench ─TLS gRPC Resources.Create─► leader master (gateway + store member) ══Raft══► 2 masters
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use api_gateway::{Master, MasterConfig};
use chaos_tests::{AdminClient, Cluster};
use rafter_proto::api::{CreateRequest, TypedObject};
use rafter_proto::{v1, Object};
use tokio::time::Instant;

use crate::failover::first_ack;
use crate::report::{failover_line, ms, rate, Machine};
use crate::store::{report_phase, LoadArgs};
use crate::workload::drive;

/// `bench gateway`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GatewayArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `bench master` (hidden): the flags chaos-tests' harness passes to `rafter master`.
#[derive(Debug, clap::Args)]
pub(crate) struct MasterArgs {
    #[arg(long)]
    id: u64,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    pki_dir: PathBuf,
    #[arg(long)]
    listen_client: SocketAddr,
    #[arg(long)]
    listen_peer: SocketAddr,
    #[arg(long, value_delimiter = ',')]
    initial_cluster: Vec<String>,
    #[arg(long)]
    init: bool,
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
}

/// Runs one master until SIGTERM/Ctrl-C (or until killed).
pub(crate) fn run_master(args: MasterArgs) -> anyhow::Result<()> {
    crate::init_logging();
    let mut initial_cluster = BTreeMap::new();
    for entry in &args.initial_cluster {
        let (id, addr) = entry
            .split_once('=')
            .with_context(|| format!("{entry:?} is not ID=ADDR"))?;
        initial_cluster.insert(id.parse::<u64>()?, addr.to_owned());
    }
    let config = MasterConfig {
        id: args.id,
        data_dir: args.data_dir,
        pki_dir: args.pki_dir,
        client_addr: args.listen_client,
        advertise_client: None,
        peer_addr: args.listen_peer,
        advertise_peer: None,
        initial_cluster,
        init: args.init,
        insecure: false,
        token_file: None,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(10)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let master = Master::start(config).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        master.shutdown().await?;
        Ok(())
    })
}

/// A small valid Pod.
fn pod(name: String) -> TypedObject {
    TypedObject::from(Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name,
            namespace: "default".into(),
            labels: [("app".to_owned(), "bench".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            containers: vec![v1::Container {
                name: "web".into(),
                image: "nginx:1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }))
}

async fn create(mut client: AdminClient, name: String) -> anyhow::Result<()> {
    client
        .create(CreateRequest {
            object: Some(pod(name)),
            dry_run: false,
        })
        .await
        .map_err(|s| anyhow::anyhow!("create: {:?} {}", s.code(), s.message()))?;
    Ok(())
}

/// Starts three masters; fails with the harness's message if they do not come up.
pub(crate) async fn start_cluster() -> anyhow::Result<Cluster> {
    Cluster::start(3)
        .await
        .map_err(|e| anyhow::anyhow!("starting 3 masters: {e}"))
}

/// Runs the gateway benchmark and prints the report.
pub(crate) async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("gateway: Pod creates through 3 masters")
    );
    println!(
        "workload: 3 masters on 127.0.0.1 (separate processes), TLS on, bearer token, \
         Resources.Create of a one-container Pod, clients {:?}; all clients on the leader's API",
        args.load.clients
    );
    println!("{}", args.load.describe());
    println!();
    println!("starting 3 masters ...");
    let mut cluster = start_cluster().await?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pool = Vec::new();
    for _ in 0..args.load.conns.max(1) {
        pool.push(
            cluster
                .client(leader)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    let mut rows = Vec::new();
    for &level in &args.load.clients {
        let pool = pool.clone();
        let summary = drive(args.load.plan(level), move |client, seq| {
            let c = pool[client % pool.len()].clone();
            create(c, format!("bench-{level}-{client}-{seq}"))
        })
        .await?;
        report_phase("gateway", "create", level, &summary);
        rows.push((level, summary));
    }
    let failover = if args.load.failover_rounds > 0 {
        gateway_failover(&mut cluster, args.load.failover_rounds).await?
    } else {
        Vec::new()
    };
    drop(cluster);

    println!();
    println!("| clients | creates/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (level, s) in &rows {
        println!(
            "| {level} | {} | {} | {} | {} | {} |",
            rate(s.per_sec()),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.errors
        );
    }
    println!();
    println!(
        "leader master failover (kill -9 of the leader → first successful create): {}",
        failover_line(&failover)
    );
    println!();
    print!("{}", machine.footer());
    if rows.iter().any(|(_, s)| s.ops == 0) {
        anyhow::bail!("a phase acknowledged no create");
    }
    Ok(())
}

/// Kill the leader master `rounds` times: the time to the first create acknowledged through
/// a surviving master, whose connection was open before the kill.
pub(crate) async fn gateway_failover(
    cluster: &mut Cluster,
    rounds: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for round in 0..rounds {
        let leader = cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let survivors: Vec<u64> = cluster
            .masters()
            .iter()
            .map(|m| m.id)
            .filter(|id| *id != leader)
            .collect();
        let mut clients = Vec::new();
        for &id in &survivors {
            let client = cluster
                .client(id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            create(client.clone(), format!("failover-{round}-warm-{id}")).await?;
            clients.push(client);
        }
        let t0 = Instant::now();
        cluster.kill(leader).map_err(|e| anyhow::anyhow!("{e}"))?;
        let elapsed = first_ack(
            t0,
            clients.len(),
            |target, n| create(clients[target].clone(), format!("failover-{round}-{n}")),
            Duration::from_secs(30),
        )
        .await?;
        println!(
            "gateway: leader failover round {}: {} ms",
            round + 1,
            elapsed.as_millis()
        );
        samples.push(elapsed);
        cluster
            .restart(leader)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(samples)
}
