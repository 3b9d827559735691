//! # Layout
//!
//! Rafter's benchmarks, run by hand (never by `cargo test`):
//!
//! ```text
//!  cargo run --release -p bench -- store      our store vs etcd: puts, linearizable gets, failover
//!  cargo run --release -p bench -- gateway    Pod creates through 3 masters (TLS), failover
//!  cargo run --release -p bench -- failover   only the failover timings (kill -9, SIGSTOP; store, library, CLI)
//!  cargo run --release -p bench -- scheduler  pods created at once on hollow nodes → bound/s
//!  cargo run --release -p bench -- secrets    Secret creates with encryption at rest off and on
//!  cargo run --release -p bench -- authz      gets with RBAC (1,000 RoleBindings) against authorization off
//!  cargo run --release -p bench -- rest       Pod creates through the REST API against the gRPC API
//!  cargo run --release -p bench -- proxy      node proxy: nft sync of 1,000 Services × 10 endpoints; ClusterIP vs direct req/s
//!  cargo run --release -p bench -- dns        cluster DNS: queries/s and p99 with 1,000 Services vs 10
//!  cargo run --release -p bench -- service-ready   pod Ready → first request through its Service vs at the pod IP
//!  cargo run --release -p bench -- image-pull      pod create → Running, image pulled from a registry vs present
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `store` | the store comparison: flags, one system's run, the side-by-side table |
//! | `gateway` | the gateway benchmark and the hidden `master` subcommand |
//! | `authz` | what authorization costs: RBAC with many RoleBindings against allow-all, side by side |
//! | `rest` | Pod creates through the Kubernetes REST API against the gRPC API of one gateway, side by side |
//! | `secrets` | Secret creates with encryption at rest off against on, one table |
//! | `proxy` | the node proxy's nftables sync time and ClusterIP against direct requests/s, in network namespaces it makes |
//! | `dns` | the cluster DNS server's queries/s and latency with a large zone against a small one, and zone build time |
//! | `service_ready` | pod Ready → first answer through its Service's ClusterIP against straight at the pod, one pod and Service per round |
//! | `image_pull` | pod create → Running with the image pulled from a local registry (TLS, htpasswd) against present, one pod per round |
//! | `failover` | kill -9 or SIGSTOP of the leader → first acknowledged write (the gateway's rounds are in `gateway`) |
//! | `scheduler` | whole-system scheduling: pods created at once → bound/s, create→bind, master memory |
//! | `hollow_nodes` | Ready Node objects and one task renewing their Leases, for `scheduler` |
//! | `workload` | the closed-loop driver: warm-up, measured window, latencies |
//! | `stats` | percentiles and rates (pure) |
//! | `kv_client` | one client shape over our member's gRPC API and etcd's; keys and values |
//! | `cluster` | the [`cluster::KvCluster`] trait and process helpers |
//! | `rafter_cluster` | three `bench member` processes of our store |
//! | `member` | the hidden `member` subcommand: one store member serving `rafter.bench.v1` |
//! | `etcd_cluster` | three etcd processes |
//! | `report` | machine, command, date, formatting |
//!
//! Every member runs in its own process (this binary re-executed with a hidden
//! subcommand, or `/usr/bin/etcd`), started and killed by the benchmark. No figure is
//! written anywhere in the code: everything printed is measured in the run. The crate must
//! not be a dependency of anything; it only measures.

mod authz;
mod cluster;
mod dns;
mod etcd_cluster;
mod failover;
mod gateway;
mod hollow_nodes;
mod image_pull;
mod kv_client;
mod member;
mod mutation_probe;
mod node_watchers;
mod pods;
mod proxy;
mod rafter_cluster;
mod report;
mod rest;
mod scheduler;
mod secrets;
mod service_ready;
mod stats;
mod store;
mod workload;

/// The benchmark member's KV API (`proto/rafter/bench/v1/bench.proto`).
pub(crate) mod pb {
    tonic::include_proto!("rafter.bench.v1");
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::etcd_cluster::{etcd_version, EtcdCluster};
use crate::failover::kv_failover;
use crate::rafter_cluster::RafterCluster;
use crate::report::{failover_line, Machine};

/// With `--features mimalloc`, every allocation of this process (and of the members and
/// masters it runs as its own subprocesses) goes through mimalloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// By default (the `jemalloc` feature), through jemalloc, as `rafter` has it.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Rafter's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Our store against etcd: puts/s, p50/p99, linearizable gets/s, leader failover.
    Store(store::StoreArgs),
    /// Pod creates/s and p99 through three masters' gateway (TLS), leader failover.
    Gateway(gateway::GatewayArgs),
    /// Secret creates/s through three masters' gateway, encryption at rest off and on.
    Secrets(secrets::SecretsArgs),
    /// Gets/s with RBAC over many RoleBindings against authorization off, side by side.
    Authz(authz::AuthzArgs),
    /// Pod creates/s and p99 through the REST API against the gRPC API, side by side.
    Rest(rest::RestArgs),
    /// The node proxy: nftables sync time for many Services, ClusterIP against direct req/s.
    Proxy(proxy::ProxyArgs),
    /// The cluster DNS server: queries/s and p50/p99 with 1,000 Services against 10.
    Dns(dns::DnsArgs),
    /// Pod Ready → first request served through its Service, against straight at the pod.
    ServiceReady(service_ready::ServiceReadyArgs),
    /// Only the leader failover timings: our store, etcd and the gateway.
    Failover(FailoverArgs),
    /// Pods created at once on hollow nodes: pods bound/s, create→bind p50/p99, master memory.
    Scheduler(scheduler::SchedulerArgs),
    /// Pods started on one containerd node: create → Running p50/p99, agent memory.
    Pods(pods::PodsArgs),
    /// Pod create → Running with its image pulled from a registry, against present.
    ImagePull(image_pull::ImagePullArgs),
    /// One node agent on containerd (started by `pods`).
    #[command(hide = true)]
    Agent(pods::AgentArgs),
    /// One store member (started by `store`).
    #[command(hide = true)]
    Member(member::MemberArgs),
    /// One master (started by `gateway` through the chaos-tests harness).
    #[command(hide = true)]
    Master(gateway::MasterArgs),
}

/// `bench failover`.
#[derive(Debug, clap::Args)]
struct FailoverArgs {
    /// Leader kills per system.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Skip etcd.
    #[arg(long)]
    skip_etcd: bool,
    /// Skip the gateway.
    #[arg(long)]
    skip_gateway: bool,
    /// The etcd binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_bin: PathBuf,
    /// An extra flag for every etcd member (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    etcd_arg: Vec<String>,
    /// Where temporary data directories go [default: the system temp dir].
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Keep the members' data directories and logs (set RUST_LOG for more detail).
    #[arg(long)]
    keep_data: bool,
    /// Skip the store (member processes without the gateway).
    #[arg(long)]
    skip_store: bool,
    /// What is done to the leader master in the gateway rounds (repeatable or
    /// comma-separated): kill (-9) and stop (SIGSTOP, resumed after the round).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "kill,stop")]
    faults: Vec<gateway::Fault>,
    /// The `rafter` CLI timed alongside the client library [default: `rafter` next to
    /// this binary, when it exists].
    #[arg(long)]
    rafter_bin: Option<PathBuf>,
    /// Run the store members and masters with fast failover off (`rafter master
    /// --no-fast-failover`): a dead leader's lease is waited out, for an A/B.
    #[arg(long)]
    no_fast_failover: bool,
}

/// Logs of member and master processes: warnings and errors to stderr (their log file).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Makes the chaos-tests harness start this binary's `master` subcommand.
fn use_this_binary_as_master() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    // Set before any other thread exists (the runtime is built afterwards).
    std::env::set_var("RAFTER_BIN", exe);
    Ok(())
}

async fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("failover: kill -9 / SIGSTOP of the leader → first acknowledged write")
    );
    let root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let value = kv_client::value(256);
    let flags: &[&str] = if args.no_fast_failover {
        println!("fast failover: off (--no-fast-failover)");
        &["--no-fast-failover"]
    } else {
        println!("fast failover: on");
        &[]
    };
    if !args.skip_store {
        let mut cluster = RafterCluster::start_with(&root, 3, args.keep_data, flags).await?;
        let ours = kv_failover(&mut cluster, args.rounds, &value).await?;
        drop(cluster);
        println!("rafter store: {}", failover_line(&ours));
    }
    if !args.skip_etcd {
        println!("etcd: {}", etcd_version(&args.etcd_bin)?);
        let mut cluster =
            EtcdCluster::start(&root, &args.etcd_bin, 3, &args.etcd_arg, args.keep_data).await?;
        let theirs = kv_failover(&mut cluster, args.rounds, &value).await?;
        drop(cluster);
        println!("etcd store:   {}", failover_line(&theirs));
    }
    if !args.skip_gateway {
        let rafter = match &args.rafter_bin {
            Some(path) => Some(path.clone()),
            None => std::env::current_exe()?
                .parent()
                .map(|dir| dir.join("rafter"))
                .filter(|path| path.exists()),
        };
        match &rafter {
            Some(path) => println!("CLI: {}", path.display()),
            None => println!("CLI: not found next to this binary (build it: cargo build --release -p rafter); not measured"),
        }
        let mut results = Vec::new();
        for &fault in &args.faults {
            let mut cluster = gateway::start_cluster_with(flags).await?;
            let samples =
                gateway::gateway_failover(&mut cluster, args.rounds, fault, rafter.as_deref())
                    .await?;
            drop(cluster);
            results.push((fault, samples));
        }
        for (fault, samples) in &results {
            println!(
                "{} of the leader master → first acknowledged create:",
                fault.describe()
            );
            println!("  client library: {}", failover_line(&samples.library));
            println!("  CLI:            {}", failover_line(&samples.cli));
            println!("  raw probes:     {}", failover_line(&samples.probes));
            println!(
                "  controllers acting again (a ReplicaSet created after the fault → its first Pod): {}",
                failover_line(&samples.controllers)
            );
        }
    }
    print!("{}", machine.footer());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Member(args) => member::run(args),
        Command::Master(args) => gateway::run_master(args),
        Command::Store(args) => runtime().and_then(|rt| rt.block_on(store::run(args))),
        Command::Proxy(args) => runtime().and_then(|rt| rt.block_on(proxy::run(args))),
        Command::Dns(args) => runtime().and_then(|rt| rt.block_on(dns::run(args))),
        Command::ServiceReady(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(service_ready::run(args))),
        Command::Gateway(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(gateway::run(args))),
        Command::Secrets(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(secrets::run(args))),
        Command::Authz(args) => authz::run(args),
        Command::Rest(args) => rest::run(args),
        Command::Failover(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(failover(args))),
        Command::Agent(args) => pods::run_agent(args),
        Command::Pods(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(pods::run(args))),
        Command::ImagePull(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(image_pull::run_bench(args))),
        Command::Scheduler(args) => use_this_binary_as_master()
            .and_then(|()| runtime())
            .and_then(|rt| rt.block_on(scheduler::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
