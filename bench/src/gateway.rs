//! `bench gateway`: Pod creates through the API gateway of three masters, TLS on.
//!
//! Owns [`GatewayArgs`], [`MasterArgs`] (the hidden `bench master`, which runs
//! `rafter_master::Master` like `rafter master` does) and the gateway failover measurement.
//! The masters are started by chaos-tests' multi-process harness with this binary as the
//! master program (`RAFTER_BIN`, set in `main`), so the gateway measured is built with the
//! same profile as the benchmark. Clients are the failover-aware client library
//! ([`rafter_client::Client`]) with the admin bearer token and the cluster CA, configured with
//! all three masters, the leader first (so they start on the leader).
//!
//! Failover is timed two ways from the same kill: through the client library (sequential
//! creates, as an application would issue them; the figure the issue asks for), and by
//! raw probes that send a new create to each surviving master every 20 ms (what the
//! masters can do, without the library's choice of master and back-off).
//!
//! ```text
//!  bench ─Client (TLS gRPC Resources.Create)─► leader master (gateway + store) ══Raft══► 2 masters
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chaos_tests::{AdminClient, Cluster};
use rafter_client::{
    CertRequest, CertUsage, Client, ClientIdentity, ClusterCa, ResolvedConfig,
    DEFAULT_CERT_VALIDITY,
};
use rafter_master::{Master, MasterConfig};
use rafter_proto::api::{CreateRequest, TypedObject};
use rafter_proto::{v1, Object};
use tokio::time::Instant;

use crate::failover::{first_ack, retry};
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
    /// As `rafter master --no-fast-failover`.
    #[arg(long)]
    no_fast_failover: bool,
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// The Services' ClusterIP range (as `rafter master --service-cluster-ip-range`).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// As `rafter master --scheduled-events-per-second` (0: an event per pod bound).
    #[arg(long, default_value_t = 0.0)]
    scheduled_events_per_second: f64,
    /// As `rafter master --scheduled-events-burst`.
    #[arg(long, default_value_t = 100)]
    scheduled_events_burst: u32,
    /// As `rafter master --no-watch-cache`.
    #[arg(long)]
    no_watch_cache: bool,
    /// As `rafter master --scheduler-writes-in-flight`.
    #[arg(long, default_value_t = rafter_master::DEFAULT_SCHEDULER_WRITES_IN_FLIGHT)]
    scheduler_writes_in_flight: usize,
    /// As `rafter master --max-mutating-requests-inflight` (0: no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Serve the Kubernetes REST API (and `/metrics`) here too.
    #[arg(long)]
    listen_rest: Option<std::net::SocketAddr>,
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
        rest_addr: args.listen_rest,
        peer_addr: args.listen_peer,
        advertise_peer: None,
        initial_cluster,
        peer_routes: BTreeMap::new(),
        init: args.init,
        insecure: false,
        token_file: None,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(10)),
        history_retention: Some(rafter_master::DEFAULT_HISTORY_RETENTION),
        disk_reserve_bytes: 0,
        scheduled_events: (args.scheduled_events_per_second > 0.0).then_some(actors::EventRate {
            per_second: args.scheduled_events_per_second,
            burst: args.scheduled_events_burst,
        }),
        scheduler_writes_in_flight: args.scheduler_writes_in_flight.max(1),
        watch_cache: (!args.no_watch_cache).then(api_gateway::WatchCacheConfig::default),
        flow_control: Some(api_gateway::FlowControlConfig {
            seats: args.max_mutating_requests_inflight,
            ..api_gateway::FlowControlConfig::default()
        }),
        cluster_cidr: Some(actors::ClusterCidr::default()),
        service_ranges: rafter_master::ServiceRanges::parse(
            &args.service_cluster_ip_range,
            "30000-32767",
        )?,
        cluster_dns: Default::default(),
        encryption_config: args.encryption_provider_config,
        audit: None,
        fast_failover: !args.no_fast_failover,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let master = Master::start(config).await?;
        if let Some(rest) = master.rest_addr() {
            tracing::info!("serving the Kubernetes REST API on https://{rest}");
        }
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
        spec: Some(pod_spec()),
        ..Default::default()
    }))
}

/// The spec of the Pods the benchmark creates: one container.
fn pod_spec() -> v1::PodSpec {
    v1::PodSpec {
        containers: vec![v1::Container {
            name: "web".into(),
            image: "nginx:1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A client library instance for every master of `cluster`, `first` first.
pub(crate) async fn library_client(cluster: &Cluster, first: u64) -> anyhow::Result<Client> {
    let mut masters: Vec<_> = cluster.masters().iter().collect();
    masters.sort_by_key(|m| m.id != first);
    admin_client(cluster, masters.iter().map(|m| m.endpoint()).collect()).await
}

/// A client library instance for master `id` alone (no failover to the others).
pub(crate) async fn single_master_client(cluster: &Cluster, id: u64) -> anyhow::Result<Client> {
    let master = cluster
        .masters()
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| anyhow::anyhow!("no master {id}"))?;
    admin_client(cluster, vec![master.endpoint()]).await
}

/// A client library instance for every master of `cluster`, `first` first, as `user`
/// (a client certificate of the cluster CA, no groups): not a member of system:masters,
/// so its mutating requests take seats and queue like any application's. What it may do
/// is what RBAC grants it.
pub(crate) async fn user_client(
    cluster: &Cluster,
    first: u64,
    user: &str,
) -> anyhow::Result<Client> {
    let pki = cluster.pki_path();
    let read = |name: &str| {
        std::fs::read_to_string(pki.join(name)).with_context(|| format!("reading {name}"))
    };
    let ca_pem = read("ca.crt")?;
    let ca = ClusterCa::from_pem(&ca_pem, &read("ca.key")?)?;
    let issued = ca.issue(&CertRequest {
        common_name: user.to_owned(),
        organizations: Vec::new(),
        subject_alt_names: Vec::new(),
        usage: CertUsage::Client,
        validity: DEFAULT_CERT_VALIDITY,
    })?;
    let mut masters: Vec<_> = cluster.masters().iter().collect();
    masters.sort_by_key(|m| m.id != first);
    let config = ResolvedConfig {
        context: String::new(),
        endpoints: masters.iter().map(|m| m.endpoint()).collect(),
        ca_pem: Some(ca_pem),
        identity: Some(ClientIdentity {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }),
        token: None,
        namespace: "default".into(),
        insecure: false,
    };
    Ok(Client::connect(config).await?)
}

/// The cluster's admin, over `endpoints` in that order.
async fn admin_client(cluster: &Cluster, endpoints: Vec<String>) -> anyhow::Result<Client> {
    let config = ResolvedConfig {
        context: String::new(),
        endpoints,
        ca_pem: Some(cluster.ca_pem().map_err(|e| anyhow::anyhow!("{e}"))?),
        identity: None,
        token: Some(cluster.admin_token().map_err(|e| anyhow::anyhow!("{e}"))?),
        namespace: "default".into(),
        insecure: false,
    };
    Ok(Client::connect(config).await?)
}

/// Creates a Pod through the client library.
async fn library_create(client: Client, name: String) -> anyhow::Result<()> {
    let object = Object::try_from(pod(name)).map_err(|e| anyhow::anyhow!("{e}"))?;
    client.create(object).await?;
    Ok(())
}

/// Creates a Pod through one master's generated gRPC client (no failover).
async fn create(mut client: AdminClient, name: String) -> anyhow::Result<()> {
    client
        .create(CreateRequest {
            object: Some(pod(name)),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("create: {:?} {}", s.code(), s.message()))?;
    Ok(())
}

/// Starts three masters; fails with the harness's message if they do not come up.
pub(crate) async fn start_cluster() -> anyhow::Result<Cluster> {
    start_cluster_with(&[]).await
}

/// Three masters, each run with `flags` (the hidden `master` subcommand's) besides the
/// harness's own.
pub(crate) async fn start_cluster_with(flags: &[&str]) -> anyhow::Result<Cluster> {
    Cluster::start_with(3, flags)
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
        pool.push(library_client(&cluster, leader).await?);
    }
    let mut rows = Vec::new();
    for &level in &args.load.clients {
        let pool = pool.clone();
        let summary = drive(args.load.plan(level), move |client, seq| {
            let c = pool[client % pool.len()].clone();
            library_create(c, format!("bench-{level}-{client}-{seq}"))
        })
        .await?;
        report_phase("gateway", "create", level, &summary);
        rows.push((level, summary));
    }
    let failover = if args.load.failover_rounds > 0 {
        gateway_failover(&mut cluster, args.load.failover_rounds, Fault::Kill, None).await?
    } else {
        GatewayFailover::default()
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
    println!("leader master failover (kill -9 of the leader → first successful create):");
    println!(
        "  through the client library: {}",
        failover_line(&failover.library)
    );
    println!(
        "  raw probes of the survivors: {}",
        failover_line(&failover.probes)
    );
    println!(
        "  controllers acting again (a ReplicaSet created after the kill → its first Pod): {}",
        failover_line(&failover.controllers)
    );
    println!();
    print!("{}", machine.footer());
    if rows.iter().any(|(_, s)| s.ops == 0) {
        anyhow::bail!("a phase acknowledged no create");
    }
    Ok(())
}

/// A fresh number for names of set-up objects (a retried create gets a new name).
fn next() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Gateway failover samples, per round.
#[derive(Debug, Clone, Default)]
pub(crate) struct GatewayFailover {
    /// Through the client library: fault → its first successful create.
    pub library: Vec<Duration>,
    /// Through the CLI (`rafter create configmap`, one process per try), when measured.
    pub cli: Vec<Duration>,
    /// Raw probes: fault → the first create a surviving master acknowledged.
    pub probes: Vec<Duration>,
    /// Controllers acting again: fault → the first Pod the ReplicaSet controller made for a
    /// ReplicaSet created after the fault.
    pub controllers: Vec<Duration>,
}

/// What is done to the leader master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Fault {
    /// kill -9: its connections are reset, new ones refused.
    Kill,
    /// SIGSTOP: a hung process whose sockets stay open and never answer (resumed with
    /// SIGCONT after the round).
    Stop,
}

impl Fault {
    /// How the fault is named in reports.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Stop => "SIGSTOP",
        }
    }
}

/// A client config for the `rafter` CLI naming every master, `first` first (the CLI
/// starts on the leader, as a user's config would when the leader is listed first).
fn write_cli_config(cluster: &Cluster, first: u64, path: &std::path::Path) -> anyhow::Result<()> {
    let mut masters: Vec<_> = cluster.masters().iter().collect();
    masters.sort_by_key(|m| m.id != first);
    let servers: Vec<String> = masters
        .iter()
        .map(|m| format!("      - {}", m.endpoint()))
        .collect();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: admin\nclusters:\n- name: bench\n  cluster:\n    servers:\n{}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: admin\n  context: {{cluster: bench, user: admin}}\n",
        servers.join("\n"),
        cluster.pki_path().join("ca.crt").display(),
        cluster.admin_token().map_err(|e| anyhow::anyhow!("{e}"))?
    );
    std::fs::write(path, text)?;
    Ok(())
}

/// One `rafter create configmap NAME` through the CLI with `config`: Ok when it exits 0.
async fn cli_create(
    rafter: &std::path::Path,
    config: &std::path::Path,
    name: &str,
) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(rafter)
        .args(["create", "configmap", name, "--from-literal", "k=v"])
        .env(rafter_client::CONFIG_ENV, config)
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        anyhow::bail!(
            "rafter create: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    }
}

/// A ReplicaSet of one replica named `name`, its Pods labelled `failover-rs=<name>`.
fn replica_set(name: &str) -> Object {
    let labels: rafter_proto::StringMap = [("failover-rs".to_owned(), name.to_owned())].into();
    Object::ReplicaSet(v1::ReplicaSet {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(v1::ReplicaSetSpec {
            replicas: Some(1),
            min_ready_seconds: 0,
            selector: Some(v1::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            }),
            template: Some(v1::PodTemplateSpec {
                metadata: Some(v1::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(Box::new(pod_spec())),
            }),
        }),
        ..Default::default()
    })
}

/// From `t0`: creates the ReplicaSet `name` through `client` (one try after the other
/// until one is acknowledged; one found already there counts, as a try whose answer was
/// lost), then lists its Pods every 20 ms until the ReplicaSet controller has made one:
/// the time the controllers act again after a fault.
async fn controllers_act(t0: Instant, client: Client, name: String) -> anyhow::Result<Duration> {
    first_success(t0, "the ReplicaSet create", |_| {
        let client = client.clone();
        let object = replica_set(&name);
        async move {
            match client.create(object).await {
                Ok(_) | Err(rafter_client::ClientError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    let params = rafter_client::ListParams {
        label_selector: format!("failover-rs={name}"),
        ..Default::default()
    };
    while t0.elapsed() < Duration::from_secs(60) {
        if let Ok(pods) = client
            .list(rafter_proto::Kind::Pod, Some("default"), &params)
            .await
        {
            if !pods.items.is_empty() {
                return Ok(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("no Pod of ReplicaSet {name} within 60 s of the fault")
}

/// From `t0`, tries `op(n)` for n = 1, 2 ... one after the other until one succeeds:
/// the time it succeeded at.
async fn first_success<F, Fut>(t0: Instant, what: &str, mut op: F) -> anyhow::Result<Duration>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut n = 0u64;
    let mut last_error = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        n += 1;
        match op(n).await {
            Ok(()) => return Ok(t0.elapsed()),
            Err(e) => last_error = format!("{e:#}"),
        }
    }
    anyhow::bail!("{what} created nothing within 60 s: {last_error}")
}

/// Applies `fault` to the leader master `rounds` times and times, from the fault, the
/// first successful create through the client library (started on the leader), through
/// the CLI (`rafter`, when given, its config listing the leader first) and through raw
/// probes of the survivors (connections open before the fault). The leader is restarted
/// (kill) or resumed (stop) and a leader is elected again before the next round.
pub(crate) async fn gateway_failover(
    cluster: &mut Cluster,
    rounds: usize,
    fault: Fault,
    rafter: Option<&std::path::Path>,
) -> anyhow::Result<GatewayFailover> {
    let mut samples = GatewayFailover::default();
    let cli_config = cluster.dir().join("bench-cli-config");
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
        let mut probes = Vec::new();
        for &id in &survivors {
            let client = cluster
                .client(id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            retry(Duration::from_secs(10), || {
                create(
                    client.clone(),
                    format!("failover-{round}-warm-{id}-{}", next()),
                )
            })
            .await?;
            probes.push(client);
        }
        let library = library_client(cluster, leader).await?;
        let watcher = library_client(cluster, leader).await?;
        retry(Duration::from_secs(10), || {
            library_create(
                library.clone(),
                format!("failover-{round}-warm-library-{}", next()),
            )
        })
        .await?;
        if let Some(rafter) = rafter {
            write_cli_config(cluster, leader, &cli_config)?;
            let warm = format!("failover-{round}-warm-cli-{}", next());
            retry(Duration::from_secs(10), || {
                cli_create(rafter, &cli_config, &warm)
            })
            .await?;
        }

        let t0 = Instant::now();
        match fault {
            Fault::Kill => cluster.kill(leader),
            Fault::Stop => cluster.pause(leader, true),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let through_library = first_success(t0, "the client library", |n| {
            library_create(library.clone(), format!("failover-{round}-lib-{n}"))
        });
        let through_cli = async {
            match rafter {
                Some(rafter) => first_success(t0, "the CLI", |n| {
                    let config = cli_config.clone();
                    let name = format!("failover-{round}-cli-{n}");
                    async move { cli_create(rafter, &config, &name).await }
                })
                .await
                .map(Some),
                None => Ok(None),
            }
        };
        let raw = first_ack(
            t0,
            probes.len(),
            |target, n| create(probes[target].clone(), format!("failover-{round}-{n}")),
            Duration::from_secs(30),
        );
        let acting = controllers_act(t0, watcher, format!("failover-{round}-rs-{}", next()));
        let (library_time, cli_time, probe_time, acting_time) =
            tokio::join!(through_library, through_cli, raw, acting);
        let (library_time, cli_time, probe_time, acting_time) =
            (library_time?, cli_time?, probe_time?, acting_time?);
        println!(
            "gateway: {} of the leader, round {}: client library {} ms, CLI {}, raw probes {} ms, controllers acting {} ms",
            fault.describe(),
            round + 1,
            library_time.as_millis(),
            cli_time.map_or("not measured".to_owned(), |t| format!(
                "{} ms",
                t.as_millis()
            )),
            probe_time.as_millis(),
            acting_time.as_millis()
        );
        samples.library.push(library_time);
        samples.cli.extend(cli_time);
        samples.probes.push(probe_time);
        samples.controllers.push(acting_time);
        match fault {
            Fault::Kill => cluster.restart(leader),
            Fault::Stop => cluster.pause(leader, false),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(samples)
}
