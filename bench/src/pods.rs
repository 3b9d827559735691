//! `bench pods`: pod startup latency on containerd — N pods created at once, scheduled
//! onto one node agent, timed from the create call to the watch event that shows them
//! Running; and the agent's memory with them all running.
//!
//! ```text
//!  bench ─creates (16 at a time)─► 3 masters (scheduler binds) ─► bench agent (hidden
//!    ▲                                                         subcommand, its own process)
//!    └──── watch: phase Running ◄── status writes ◄──────────── containerd (CRI) ─► runc
//! ```
//!
//! Owns [`PodsArgs`], [`AgentArgs`] (the hidden `bench agent`, which runs
//! `node_agent::Agent` over containerd as `rafter agent` does, so its RSS is its own) and
//! the report. Around it the floor, before and after: the same pods through raw CRI
//! calls (the agent's CRI client, no masters, no agent) with the agent's sandbox
//! parallelism, and the agent's throughput as a ratio of the two floors' mean. The image must already be in containerd (scripts/containerd-setup.sh
//! imports it): import time is not part of the figure. One warm-up pod runs first, so the
//! image's snapshot is unpacked before the clock starts. The pods are deleted afterwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use node_agent::{
    Agent, AgentConfig, ContainerConfig, ContainerRuntime, ContainerdConfig, ContainerdRuntime,
    ProxyMode, SandboxConfig, LABEL_NODE_NAME,
};
use rafter_client::ResolvedConfig;
use rafter_client::{Client, DeleteOptions};
use rafter_proto::{v1, Kind, Object};
use tokio::time::Instant;

use crate::report::{load_average, ms, Machine};
use crate::stats::percentile;

/// `bench pods`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PodsArgs {
    /// Pods to create at once.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    containerd: ContainerdImage,
    /// Sandboxes the agent creates at once (`AgentConfig::sandbox_parallelism`).
    #[arg(long, default_value_t = 8)]
    sandbox_parallelism: usize,
}

/// The containerd the benchmark's agent uses and the pods' image, which must be imported
/// there already (scripts/containerd-setup.sh does): pull time is no part of a figure.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ContainerdImage {
    /// containerd's socket (the image must be imported already).
    #[arg(
        long,
        env = "RAFTER_CONTAINERD_SOCK",
        default_value = "/tmp/rafter-containerd/containerd.sock"
    )]
    pub containerd_socket: PathBuf,
    /// The pods' image (busybox: `sleep` and `httpd`).
    #[arg(long, default_value = "docker.io/local/busybox:1")]
    pub image: String,
}

impl ContainerdImage {
    /// Fails, saying what to do, unless containerd answers and holds the image.
    pub(crate) async fn require(&self) -> anyhow::Result<()> {
        let runtime = ContainerdRuntime::connect(ContainerdConfig::new(&self.containerd_socket))
            .await
            .context("containerd (start it with scripts/containerd-setup.sh)")?;
        runtime
            .image_status(&self.image)
            .await?
            .with_context(|| format!("{} is not imported into containerd", self.image))?;
        Ok(())
    }
}

/// `bench agent` (hidden): one node agent on containerd.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    #[arg(long)]
    ca_file: PathBuf,
    #[arg(long, env = "BENCH_AGENT_TOKEN")]
    token: String,
    #[arg(long)]
    containerd_socket: PathBuf,
    #[arg(long, default_value_t = 8)]
    sandbox_parallelism: usize,
    /// Run the node proxy with nftables rules in this table (none: no proxy).
    #[arg(long)]
    proxy_table: Option<String>,
    /// Registry TLS settings and logins (`rafter agent --registries-config`); their
    /// `hosts.toml` files go to `--containerd-certs-dir`.
    #[arg(long)]
    registries_config: Option<PathBuf>,
    /// containerd's registry `config_path`.
    #[arg(long)]
    containerd_certs_dir: Option<PathBuf>,
}

/// Runs one agent until SIGTERM (or until killed).
pub(crate) fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    crate::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let config = ResolvedConfig {
            context: String::new(),
            endpoints: args.server.clone(),
            ca_pem: Some(std::fs::read_to_string(&args.ca_file)?),
            identity: None,
            token: Some(args.token.clone()),
            namespace: "default".into(),
            insecure: false,
        };
        let client = Client::connect(config).await?;
        let rt = ContainerdRuntime::new(ContainerdConfig::new(&args.containerd_socket))?;
        let mut agent_config = AgentConfig::new(args.name.clone(), args.data_dir.clone());
        agent_config.node_ip = Some("127.0.0.1".into());
        agent_config.sandbox_parallelism = args.sandbox_parallelism;
        agent_config.proxy = match args.proxy_table {
            Some(table) => ProxyMode::Nftables {
                table,
                command: vec!["nft".into()],
            },
            None => ProxyMode::Off,
        };
        if let Some(path) = &args.registries_config {
            agent_config.registries = node_agent::Registries::load(path)?;
            agent_config.registry_hosts_dir = args.containerd_certs_dir.clone();
        }
        let agent = Agent::start(agent_config, Arc::new(rt), Arc::new(client)).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        agent.shutdown().await;
        Ok(())
    })
}

/// A pod of `image` that sleeps, with small requests so that a hundred fit on one node.
fn pod(name: &str, image: &str) -> Object {
    let small = |cpu: &str, memory: &str| {
        [
            ("cpu".to_owned(), cpu.to_owned()),
            ("memory".to_owned(), memory.to_owned()),
        ]
        .into()
    };
    Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".into(),
            labels: [("app".to_owned(), "bench-pods".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            containers: vec![v1::Container {
                name: "app".into(),
                image: image.to_owned(),
                command: vec!["sleep".into(), "3600".into()],
                resources: Some(v1::ResourceRequirements {
                    requests: small("1m", "4Mi"),
                    limits: small("100m", "32Mi"),
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn running(object: &Object) -> Option<&str> {
    match object {
        Object::Pod(p) if p.status.as_ref().is_some_and(|s| s.phase == "Running") => {
            Some(p.metadata.as_ref()?.name.as_str())
        }
        _ => None,
    }
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An agent process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct AgentProcess(pub(crate) std::process::Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // SIGTERM first: the agent shuts down and leaves its containers for the cleanup.
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bench agent` as node `node` of `cluster` on `containerd`, its data and log under
/// `dir`, with the node proxy in nftables table `proxy_table` when given.
pub(crate) fn spawn_agent(
    cluster: &chaos_tests::Cluster,
    dir: &std::path::Path,
    node: &str,
    containerd: &std::path::Path,
    sandbox_parallelism: usize,
    proxy_table: Option<&str>,
) -> anyhow::Result<AgentProcess> {
    spawn_agent_with(
        cluster,
        dir,
        node,
        containerd,
        sandbox_parallelism,
        proxy_table,
        &[],
    )
}

/// [`spawn_agent`] with more `bench agent` flags (`extra`).
pub(crate) fn spawn_agent_with(
    cluster: &chaos_tests::Cluster,
    dir: &std::path::Path,
    node: &str,
    containerd: &std::path::Path,
    sandbox_parallelism: usize,
    proxy_table: Option<&str>,
    extra: &[std::ffi::OsString],
) -> anyhow::Result<AgentProcess> {
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, cluster.ca_pem().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let endpoints: Vec<String> = cluster.masters().iter().map(|m| m.endpoint()).collect();
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("agent")
        .args(["--name", node])
        .arg("--data-dir")
        .arg(dir.join("agent"))
        .args(["--server", &endpoints.join(",")])
        .arg("--ca-file")
        .arg(&ca)
        .arg("--containerd-socket")
        .arg(containerd)
        .args(["--sandbox-parallelism", &sandbox_parallelism.to_string()]);
    if let Some(table) = proxy_table {
        command.args(["--proxy-table", table]);
    }
    command.args(extra);
    let child = command
        .env(
            "BENCH_AGENT_TOKEN",
            cluster.admin_token().map_err(|e| anyhow::anyhow!("{e}"))?,
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log"))?)
        .spawn()
        .context("starting the agent")?;
    Ok(AgentProcess(child))
}

/// Waits until node `node` is Ready.
pub(crate) async fn wait_node_ready(client: &Client, node: &str) -> anyhow::Result<()> {
    wait_for("the node to be Ready", Duration::from_secs(60), || async {
        match client.get(Kind::Node, "", node).await {
            Ok(Object::Node(n)) => n
                .status?
                .conditions
                .iter()
                .any(|c| c.r#type == "Ready" && c.status == "True")
                .then_some(()),
            _ => None,
        }
    })
    .await
}

/// Waits until `check` gives `Some`, polling every 100 ms, for at most `limit`.
pub(crate) async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            anyhow::bail!("timed out after {} s waiting for {what}", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the pod startup benchmark and prints the report.
pub(crate) async fn run(args: PodsArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header(&format!(
            "pods: {} pods started on one containerd node",
            args.pods
        ))
    );
    println!(
        "workload: 3 masters (separate processes, TLS), one node agent (`bench agent`, its own \
         process) on containerd at {}; {} pods of {} (`sleep 3600`, requests 1m/4Mi) created with \
         {} creates in flight, scheduled by the masters' scheduler; the agent creates {} \
         sandboxes at once; latency = create call → the watch event showing phase Running",
        args.containerd.containerd_socket.display(),
        args.pods,
        args.containerd.image,
        args.concurrency,
        args.sandbox_parallelism
    );
    args.containerd.require().await?;

    // The floor is measured before and after the run through the agent, and the two
    // averaged: whichever goes second finds containerd still tearing down the other's
    // pods, so one floor alone favours one side.
    let floor_dir = tempfile::tempdir()?;
    println!("the floor, before: the same pods through raw CRI calls ...");
    let floor_before = raw_cri(&args, floor_dir.path()).await?;

    println!("starting 3 masters and the agent ...");
    let cluster = crate::gateway::start_cluster().await?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = crate::gateway::library_client(&cluster, leader).await?;
    let dir = tempfile::tempdir()?;
    let node = format!("bench-node-{}", std::process::id());
    let agent = spawn_agent(
        &cluster,
        dir.path(),
        &node,
        &args.containerd.containerd_socket,
        args.sandbox_parallelism,
        None,
    )?;
    let agent_pid = agent.0.id();
    wait_node_ready(&client, &node).await?;
    let (rss_idle, _) = memory_kib(agent_pid);

    // Warm-up: the image's snapshot is unpacked and the paths are hot before timing.
    client
        .create(pod("bench-warmup", &args.containerd.image))
        .await?;
    wait_for(
        "the warm-up pod to run",
        Duration::from_secs(60),
        || async {
            client
                .get(Kind::Pod, "default", "bench-warmup")
                .await
                .ok()
                .and_then(|o| running(&o).map(|_| ()))
        },
    )
    .await?;

    let listed = client
        .list(Kind::Pod, Some("default"), &Default::default())
        .await?;
    let mut events = Box::pin(client.watch(
        Kind::Pod,
        Some("default"),
        &Default::default(),
        Some(&listed.resource_version),
    ));
    let load_before = load_average();
    let started = Instant::now();
    let names: Vec<String> = (0..args.pods)
        .map(|i| format!("bench-pod-{i:03}"))
        .collect();
    let created: HashMap<String, Instant> = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let client = client.clone();
            let image = args.containerd.image.clone();
            async move {
                let at = Instant::now();
                client.create(pod(&name, &image)).await?;
                Ok::<_, anyhow::Error>((name, at))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut latencies: HashMap<String, Duration> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while latencies.len() < args.pods {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "only {} of {} pods Running after 300 s",
                    latencies.len(),
                    args.pods
                )
            })?
            .context("the watch ended")??;
        let now = Instant::now();
        if let Some(name) = event.object.as_ref().and_then(running) {
            if let Some(at) = created.get(name) {
                latencies.entry(name.to_owned()).or_insert(now - *at);
            }
        }
    }
    let through_agent = started.elapsed();
    let load_after = load_average();
    let (rss, hwm) = memory_kib(agent_pid);
    let mut sorted: Vec<Duration> = latencies.values().copied().collect();
    sorted.sort();
    let p50 = percentile(&sorted, 0.5);
    let p99 = percentile(&sorted, 0.99);
    let max = sorted.last().copied().unwrap_or_default();
    let first = sorted.first().copied().unwrap_or_default();

    println!();
    println!("| pods | p50 ms | p99 ms | min ms | max ms | agent RSS idle | agent RSS with pods | agent peak RSS | load avg before → after |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} MiB | {} MiB | {} MiB | {load_before:.2} → {load_after:.2} |",
        args.pods,
        ms(p50),
        ms(p99),
        ms(first),
        ms(max),
        rss_idle / 1024,
        rss / 1024,
        hwm / 1024
    );
    println!(
        "goal p99 < 1 s: {}",
        if p99 < Duration::from_secs(1) {
            "met"
        } else {
            "missed"
        }
    );
    println!();

    println!("deleting the pods ...");
    let mut all = names.clone();
    all.push("bench-warmup".into());
    for name in &all {
        let _ = client
            .delete(Kind::Pod, "default", name, &DeleteOptions::default())
            .await;
    }
    let gone = wait_for("the pods to be gone", Duration::from_secs(120), || async {
        let left = client
            .list(Kind::Pod, Some("default"), &Default::default())
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    if let Err(e) = gone {
        println!("warning: {e:#}; containers may be left in containerd");
    }
    // The objects go at once (grace 0) and the agent tears the containers down after:
    // it is stopped only once containerd holds none of its sandboxes, so no run leaves
    // pods behind to slow the floor and the runs after it.
    if let Err(e) = wait_torn_down(&args.containerd.containerd_socket, &node).await {
        println!("warning: {e:#}; the floor after shares the machine with them");
    }
    drop(agent);
    drop(cluster);

    println!("the floor, after: the same pods through raw CRI calls ...");
    let floor_after = raw_cri(&args, dir.path()).await?;
    let rate = |took: Duration| args.pods as f64 / took.as_secs_f64().max(1e-9);
    let agent_rate = rate(through_agent);
    let floor_rate = (rate(floor_before) + rate(floor_after)) / 2.0;
    println!();
    println!("| path | pods | first create → last Running | pods/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw CRI, {} at once, before | {} | {:.2} s | {:.1} |",
        args.sandbox_parallelism,
        args.pods,
        floor_before.as_secs_f64(),
        rate(floor_before)
    );
    println!(
        "| masters + agent | {} | {:.2} s | {agent_rate:.1} |",
        args.pods,
        through_agent.as_secs_f64()
    );
    println!(
        "| raw CRI, {} at once, after | {} | {:.2} s | {:.1} |",
        args.sandbox_parallelism,
        args.pods,
        floor_after.as_secs_f64(),
        rate(floor_after)
    );
    println!(
        "agent ÷ raw CRI throughput (the floors' mean, {floor_rate:.1} pods/s): {:.3} (goal ≥ 0.8: {})",
        agent_rate / floor_rate,
        if agent_rate / floor_rate >= 0.8 {
            "met"
        } else {
            "missed"
        }
    );
    print!("{}", machine.footer());
    Ok(())
}

/// Waits until containerd at `socket` holds no sandbox of node `node`: pods deleted with
/// grace 0 are gone from the API before their agent has torn them down, and an agent
/// stopped before that leaves them running for every later run to share the machine with.
pub(crate) async fn wait_torn_down(socket: &std::path::Path, node: &str) -> anyhow::Result<()> {
    let runtime = ContainerdRuntime::connect(ContainerdConfig::new(socket))
        .await
        .context("containerd")?;
    wait_for(
        "the agent's sandboxes to be removed",
        Duration::from_secs(120),
        || async {
            let sandboxes = runtime.list_sandboxes().await.ok()?;
            (!sandboxes
                .iter()
                .any(|s| s.labels.get(LABEL_NODE_NAME).map(String::as_str) == Some(node)))
            .then_some(())
        },
    )
    .await
}

/// The floor for the same work: `args.pods` sandboxes, each with one `sleep 3600`
/// container of the image, run, created and started through the agent's CRI client
/// directly (no masters, no agent), `sandbox_parallelism` pods at once as the agent runs
/// them. The time from the first RunPodSandbox to the last StartContainer; everything
/// is removed afterwards.
async fn raw_cri(args: &PodsArgs, log_root: &std::path::Path) -> anyhow::Result<Duration> {
    let runtime = Arc::new(
        ContainerdRuntime::connect(ContainerdConfig::new(&args.containerd.containerd_socket))
            .await
            .context("containerd")?,
    );
    // Unique per call: the floor runs twice in one process.
    let tag = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
    );
    let one = |i: usize| {
        let runtime = Arc::clone(&runtime);
        let image = args.containerd.image.clone();
        let log_dir = log_root.join(format!("raw-{i}"));
        let pod_uid = format!("bench-raw-{tag}-{i}");
        async move {
            let sandbox = SandboxConfig {
                pod_uid,
                pod_name: format!("bench-raw-{i:03}"),
                namespace: "default".into(),
                attempt: 0,
                hostname: format!("bench-raw-{i:03}"),
                log_dir,
                host_network: false,
                labels: Default::default(),
                dns: None,
            };
            let started = runtime.run_sandbox(&sandbox).await?;
            let container = ContainerConfig {
                name: "app".into(),
                image,
                command: vec!["sleep".into(), "3600".into()],
                ..Default::default()
            };
            let id = runtime
                .create_container(&started.id, &container, &sandbox)
                .await?;
            runtime.start_container(&id).await?;
            Ok::<_, anyhow::Error>(started.id)
        }
    };
    let start = Instant::now();
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..args.pods)
        .map(one)
        .buffer_unordered(args.sandbox_parallelism.max(1))
        .collect()
        .await;
    let took = start.elapsed();
    let mut failed = None;
    for result in &results {
        match result {
            Ok(id) => {
                let _ = runtime.stop_sandbox(id).await;
                let _ = runtime.remove_sandbox(id).await;
            }
            Err(e) => failed = Some(format!("{e:#}")),
        }
    }
    match failed {
        Some(e) => anyhow::bail!("a raw CRI pod failed: {e}"),
        None => Ok(took),
    }
}
