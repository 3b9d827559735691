//! `rafter up` and `rafter down`: a whole HA cluster on this machine in one command.
//!
//! ```text
//!  rafter up ─► masters 1..N (rafter master, TLS, ports 6443+ / 2380+)
//!            ─► wait for a leader ─► client config DIR/config (admin certificate)
//!            ─► a bootstrap token ─► DIR/bootstrap.conf (masters, CA, the token)
//!            ─► agents 1..M (rafter agent --bootstrap-kubeconfig: each joins with the
//!               token, gets its system:node:<name> certificate through a CSR and
//!               uses it from then on; containerd if it answers, else processes)
//!            ─► wait for the nodes ─► [--demo: apply the demo, wait for its pods]
//!            ─► foreground until Ctrl-C, or --detach
//! ```
//!
//! Owns the processes of a local cluster and the state file `DIR/cluster.json` that lets
//! `rafter down` and a second `rafter up` find them. It reuses the data of an existing DIR.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rafter_client::BootstrapToken;
use rafter_client::{
    Client, ClientConfig, ClusterEntry, ContextEntry, ListParams, NamedCluster, NamedContext,
    NamedUser, ResolvedConfig, UserEntry,
};
use rafter_proto::{parse_manifests, Kind, Object};
use serde::{Deserialize, Serialize};

/// The demo workload `--demo` applies.
const DEMO: &str = include_str!("../../../docs/examples/demo.yaml");

/// Which container runtime the agents use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// containerd through CRI (real containers).
    Containerd,
    /// Host processes (no containerd needed).
    Process,
    /// No processes at all: pods are reported Running (scale tests).
    Hollow,
}

/// `rafter up`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter up --demo\n  rafter up --detach --dir /tmp/rafter && rafter down --dir /tmp/rafter\n  rafter up --masters 3 --agents 4 --runtime process\n\n\
The masters keep no audit log (a local development cluster); a master records API calls\n\
with `rafter master --audit-log-path FILE [--audit-policy-file FILE]`."
)]
pub struct UpArgs {
    /// Where the cluster keeps its data, logs and client config [default: the user's data dir/rafter].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Number of masters.
    #[arg(long, default_value_t = 3)]
    masters: u64,
    /// Number of node agents.
    #[arg(long, default_value_t = 2)]
    agents: u64,
    /// The agents' container runtime [default: containerd when it answers, else process].
    #[arg(long, value_enum)]
    runtime: Option<Runtime>,
    /// The containerd socket to use with --runtime containerd; several (comma-separated):
    /// agent i uses the i-th (round robin), so each agent can have a containerd, a bridge
    /// and a pod CIDR of its own (agent i's pod CIDR is 10.244.i.0/24).
    #[arg(
        long,
        env = "RAFTER_CONTAINERD_SOCK",
        value_delimiter = ',',
        default_value = "/run/containerd/containerd.sock"
    )]
    containerd_socket: Vec<PathBuf>,
    /// Return once the cluster is ready, leaving it running (stop it with `rafter down`).
    #[arg(long)]
    detach: bool,
    /// Also apply a sample Deployment and Service and wait for its pods.
    #[arg(long)]
    demo: bool,
    /// How long to wait for readiness, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Store Secrets unencrypted. By default the first `rafter up` writes DIR/encryption.yaml
    /// with a fresh AES-GCM key, and every master encrypts Secrets at rest with it.
    #[arg(long)]
    no_encryption: bool,
    /// The range Services' ClusterIPs come from (given to every master).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// The range of ports NodePort Services get on every node (given to every master).
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
}

/// `rafter down`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  rafter down --dir /tmp/rafter")]
pub struct DownArgs {
    /// The directory given to `rafter up`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// What `DIR/cluster.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterState {
    masters: Vec<MasterState>,
    agents: Vec<AgentState>,
    runtime: Runtime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MasterState {
    id: u64,
    client_port: u16,
    peer_port: u16,
    /// The Kubernetes REST API's port (0 in state files older than it: picked again).
    #[serde(default)]
    rest_port: u16,
    pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AgentState {
    name: String,
    pid: Option<u32>,
}

fn default_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir),
        None => Ok(dirs::data_dir()
            .context("no data directory for this user: pass --dir")?
            .join("rafter")),
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `count` free ports, preferring `start`, `start+1` … as kubectl users expect.
fn pick_ports(start: u16, count: usize, taken: &[u16]) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    let mut candidate = start;
    while ports.len() < count {
        if candidate == u16::MAX {
            bail!("no free ports from {start}");
        }
        if !taken.contains(&candidate) && port_is_free(candidate) {
            ports.push(candidate);
        }
        candidate += 1;
    }
    Ok(ports)
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

fn containerd_answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(message.to_owned());
    bar
}

/// Ends a step: the spinner shows the result on a terminal; elsewhere (a pipe, a CI log)
/// the result is printed as a plain line so the output still says what happened.
fn finish(bar: &ProgressBar, message: String) {
    if bar.is_hidden() {
        println!("{message}");
    }
    bar.finish_with_message(message);
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = dir.join("logs").join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Runs `rafter up`.
pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    // Refused here, before anything is created or started, rather than in each master's log.
    let service_ranges = rafter_master::ServiceRanges::parse(
        &args.service_cluster_ip_range,
        &args.service_node_port_range,
    )?;
    let dir = default_dir(args.dir.clone())?;
    // The cluster's data, keys and logs: 0700 from creation.
    rafter_client::private_files::create_private_dir(&dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let state_path = dir.join("cluster.json");
    let previous: Option<ClusterState> = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(state) = &previous {
        let running: Vec<u32> = state
            .masters
            .iter()
            .filter_map(|m| m.pid)
            .filter(|p| process_alive(*p))
            .collect();
        if !running.is_empty() {
            bail!("a cluster is already running from {} (pids {running:?}); stop it with `rafter down --dir {}`", dir.display(), dir.display());
        }
    }
    let runtime = match args.runtime {
        Some(runtime) => runtime,
        None if !args.containerd_socket.is_empty()
            && args.containerd_socket.iter().all(|s| containerd_answers(s)) =>
        {
            Runtime::Containerd
        }
        None => Runtime::Process,
    };
    match runtime {
        Runtime::Containerd => println!(
            "agents run containers through containerd at {}",
            sockets_text(&args.containerd_socket)
        ),
        Runtime::Process => println!(
            "agents run containers as host processes (containerd is not answering at {})",
            sockets_text(&args.containerd_socket)
        ),
        Runtime::Hollow => println!("agents are hollow: pods are reported Running, nothing runs"),
    }
    let mut masters = match &previous {
        Some(state) if state.masters.len() as u64 == args.masters => state.masters.clone(),
        _ => {
            let clients = pick_ports(6443, args.masters as usize, &[])?;
            let peers = pick_ports(2380, args.masters as usize, &clients)?;
            (1..=args.masters)
                .zip(clients.into_iter().zip(peers))
                .map(|(id, (client_port, peer_port))| MasterState {
                    id,
                    client_port,
                    peer_port,
                    rest_port: 0,
                    pid: None,
                })
                .collect()
        }
    };
    if masters.iter().any(|m| m.rest_port == 0) {
        let taken: Vec<u16> = masters
            .iter()
            .flat_map(|m| [m.client_port, m.peer_port])
            .collect();
        let rests = pick_ports(REST_PORT_BASE, masters.len(), &taken)?;
        for (master, port) in masters.iter_mut().zip(rests) {
            master.rest_port = port;
        }
    }
    let mut state = ClusterState {
        masters,
        agents: Vec::new(),
        runtime,
    };
    let binary = std::env::current_exe().context("finding the rafter binary")?;
    let pki_dir = dir.join("m1").join("pki");
    let initial: Vec<String> = state
        .masters
        .iter()
        .map(|m| format!("{}=127.0.0.1:{}", m.id, m.peer_port))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);

    let encryption = dir.join("encryption.yaml");
    if !args.no_encryption && !encryption.exists() {
        rafter_master::write_generated_encryption_config(&encryption)
            .context("writing the encryption configuration")?;
        println!(
            "Secrets are encrypted at rest with a new key in {}",
            encryption.display()
        );
    }

    let bar = spinner(&format!("starting {} masters", state.masters.len()));
    for index in 0..state.masters.len() {
        let master = state.masters[index].clone();
        let mut command = Command::new(&binary);
        command
            .arg("master")
            .args(["--id", &master.id.to_string()])
            .arg("--data-dir")
            .arg(dir.join(format!("m{}", master.id)))
            .arg("--pki-dir")
            .arg(&pki_dir)
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", master.client_port),
            ])
            .args(["--listen-peer", &format!("127.0.0.1:{}", master.peer_port)])
            .args(["--listen-rest", &format!("127.0.0.1:{}", master.rest_port)])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--service-cluster-ip-range",
                &args.service_cluster_ip_range,
                "--service-node-port-range",
                &args.service_node_port_range,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&dir, &format!("master-{}", master.id))?);
        if master.id == 1 {
            command.arg("--init");
        }
        if encryption.exists() {
            // Once written, the key stays in use even with --no-encryption: the Secrets
            // stored under it must stay readable.
            command.arg("--encryption-provider-config").arg(&encryption);
        }
        let child = command.spawn().context("starting a master")?;
        state.masters[index].pid = Some(child.id());
        save_state(&state_path, &state)?;
        if master.id == 1 {
            wait_for(
                deadline,
                "the first master to create the cluster CA",
                || pki_dir.join("ca.key").exists() && pki_dir.join("admin.key").exists(),
            )?;
        }
    }
    finish(&bar, format!("started {} masters", state.masters.len()));

    let config_path = dir.join("config");
    write_client_config(&config_path, &state, &pki_dir)?;
    let kubeconfig_path = dir.join("kubeconfig");
    write_kubeconfig(&kubeconfig_path, &config_path)?;
    let resolved = ResolvedConfig::load(Some(&config_path), None)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = tokio.block_on(Client::connect(resolved))?;

    let bar = spinner("waiting for the masters to elect a leader");
    let leader = tokio.block_on(async {
        loop {
            if let Ok(status) = client.cluster_status().await {
                // Ready once a leader is elected and the cluster's namespaces exist.
                let namespaces = client
                    .get(Kind::Namespace, "", "kube-node-lease")
                    .await
                    .is_ok();
                if status.ready && namespaces && status.members.len() == state.masters.len() {
                    return Ok(status.leader_id);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the masters did not elect a leader in time; see {}",
                    dir.join("logs").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    finish(&bar, format!("master {leader} leads"));

    let bar = spinner(&format!("starting {} agents", args.agents));
    let bootstrap_config = dir.join("bootstrap.conf");
    if args.agents > 0 {
        let token = tokio.block_on(create_bootstrap_token(&client))?;
        write_bootstrap_config(&bootstrap_config, &config_path, &token)?;
    }
    for i in 1..=args.agents {
        let name = format!("node-{i}");
        let mut command = Command::new(&binary);
        command
            .arg("agent")
            .args(["--name", &name])
            .arg("--bootstrap-kubeconfig")
            .arg(&bootstrap_config)
            .args(["--runtime", &format!("{runtime:?}").to_ascii_lowercase()])
            .arg("--data-dir")
            .arg(dir.join(&name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&dir, &name)?);
        if runtime == Runtime::Containerd {
            let sockets = &args.containerd_socket;
            if let Some(socket) = sockets.get((i as usize - 1) % sockets.len().max(1)) {
                command.arg("--containerd-socket").arg(socket);
            }
            if i <= 255 {
                // Fixed per agent, so a containerd of its own renders its pod network
                // with the same range on every `rafter up`; the agent serves cluster DNS
                // on the bridge's address (the range's first), which its pods reach.
                command.args(["--pod-cidr", &format!("10.244.{i}.0/24")]);
                command.args(["--dns-listen", "0.0.0.0:0"]);
                command.args(["--dns-advertise-address", &format!("10.244.{i}.1")]);
            }
            if let Some(ip) = service_ranges.service_cidr().nth(10) {
                command.args(["--cluster-dns", &ip.to_string()]);
            }
        }
        // The agents share this machine's network: a proxy table each, named after the
        // cluster's first API port too, so two clusters on one machine never write one
        // table (their NodePort listeners share ports through SO_REUSEPORT).
        let api_port = state.masters.first().map_or(0, |m| m.client_port);
        command.args(["--proxy-table", &format!("rafter-{name}-{api_port}")]);
        let child = command.spawn().context("starting an agent")?;
        state.agents.push(AgentState {
            name,
            pid: Some(child.id()),
        });
        save_state(&state_path, &state)?;
    }
    if args.agents > 0 {
        tokio.block_on(async {
            loop {
                let ready = client
                    .list(Kind::Node, None, &ListParams::default())
                    .await
                    .map(|list| list.items.iter().filter(|n| node_ready(n)).count())
                    .unwrap_or(0);
                bar.set_message(format!("waiting for nodes: {ready}/{} Ready", args.agents));
                if ready as u64 >= args.agents {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "only {ready} of {} nodes became Ready in time; see {}",
                        args.agents,
                        dir.join("logs").display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })?;
    }
    finish(&bar, format!("{} nodes Ready", args.agents));

    if args.demo {
        let bar = spinner("applying the demo Deployment and Service");
        // Host processes share one network: one replica, or three would contend for :8080.
        let replicas: usize = if runtime == Runtime::Process { 1 } else { 3 };
        tokio.block_on(apply_demo(&client, replicas))?;
        tokio.block_on(async {
            loop {
                let pods = client
                    .list(Kind::Pod, Some("default"), &ListParams { label_selector: "app=demo-web".into(), ..Default::default() })
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                let ready = pods.iter().filter(|p| pod_ready(p)).count();
                bar.set_message(format!("demo pods Ready: {ready}/{replicas}"));
                if ready >= replicas {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!("the demo pods did not become Ready in time ({ready}/{replicas}); see `rafter get pods` and {}", dir.join("logs").display());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })?;
        finish(
            &bar,
            format!("demo Deployment demo-web: {replicas}/{replicas} pods Ready"),
        );
    }

    println!(
        "\nThe cluster is up: {} masters, {} agents ({runtime:?} runtime).",
        state.masters.len(),
        args.agents
    );
    println!("Data, logs and state: {}", dir.display());
    println!("To use it:\n  export RAFTERCONFIG={}\n  rafter cluster status\n  rafter get nodes\n  rafter get pods -A", config_path.display());
    let rest_ports: Vec<String> = state
        .masters
        .iter()
        .map(|m| format!("https://127.0.0.1:{}", m.rest_port))
        .collect();
    println!(
        "With stock kubectl (the Kubernetes REST API, served by every master: {}; the kubeconfig names the first):\n  KUBECONFIG={} kubectl get nodes",
        rest_ports.join(", "),
        kubeconfig_path.display()
    );
    if args.demo {
        println!("The demo web app answers on port 30080 of every node address (`rafter get nodes -o wide`):\n  curl http://<node address>:30080/");
    }
    if args.detach {
        println!("Stop it with: rafter down --dir {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("Press Ctrl-C to stop it.");
    tokio.block_on(crate::logging::wait_for_shutdown_signal());
    stop(&state)?;
    let _ = std::fs::remove_file(&state_path);
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Runs `rafter down`.
pub fn down(args: DownArgs) -> anyhow::Result<ExitCode> {
    let dir = default_dir(args.dir)?;
    let state_path = dir.join("cluster.json");
    let bytes = std::fs::read(&state_path).with_context(|| {
        format!(
            "no cluster state at {}: is a cluster running from there?",
            state_path.display()
        )
    })?;
    let state: ClusterState = serde_json::from_slice(&bytes)
        .with_context(|| format!("reading {}", state_path.display()))?;
    stop(&state)?;
    std::fs::remove_file(&state_path)
        .with_context(|| format!("removing {}", state_path.display()))?;
    println!(
        "stopped the cluster of {} (its data stays there)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM to every process, agents first, then waits for them (SIGKILL after 20 s).
fn stop(state: &ClusterState) -> anyhow::Result<()> {
    let pids: Vec<u32> = state
        .agents
        .iter()
        .filter_map(|a| a.pid)
        .chain(state.masters.iter().filter_map(|m| m.pid))
        .filter(|p| process_alive(*p))
        .collect();
    for pid in &pids {
        send_signal(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| process_alive(*p)) {
        if Instant::now() > deadline {
            for pid in pids.iter().filter(|p| process_alive(**p)) {
                // The process ignored SIGTERM for 20 s.
                send_signal(*pid, Signal::SIGKILL);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Sends `signal` to `pid`, which this cluster's state file recorded for a process `up`
/// started. A failure is ignored: the process may have exited since it was checked, and
/// `stop` waits for it anyway. A pid beyond `i32` names no process and is not signalled
/// (kill(2) would read it as a process group).
fn send_signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn save_state(path: &Path, state: &ClusterState) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(state)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn wait_for(
    deadline: Instant,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    while !condition() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The client config of the local cluster: every master's gRPC endpoint, the CA, the
/// admin certificate.
fn write_client_config(path: &Path, state: &ClusterState, pki_dir: &Path) -> anyhow::Result<()> {
    let cluster = ClusterEntry {
        servers: state
            .masters
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m.client_port))
            .collect(),
        rest_servers: state
            .masters
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m.rest_port))
            .collect(),
        ..Default::default()
    };
    write_admin_config(path, cluster, pki_dir)
}

/// A standard kubeconfig for stock kubectl and client libraries: the client config's
/// cluster with the first master's REST endpoint as its server (a kubeconfig cluster
/// holds one), the CA, the admin certificate.
fn write_kubeconfig(path: &Path, client_config: &Path) -> anyhow::Result<()> {
    let mut kubeconfig = ClientConfig::load(client_config)?.to_kubeconfig()?;
    kubeconfig.save(path)?;
    Ok(())
}

/// Writes a config of one context, `admin@rafter-local`: `cluster` (given the CA) and the
/// admin certificate.
fn write_admin_config(
    path: &Path,
    mut cluster: ClusterEntry,
    pki_dir: &Path,
) -> anyhow::Result<()> {
    let read = |name: &str| {
        std::fs::read_to_string(pki_dir.join(name))
            .with_context(|| format!("reading {}", pki_dir.join(name).display()))
    };
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    cluster.certificate_authority_data = Some(b64(read("ca.crt")?));
    let mut config = ClientConfig::default();
    config.current_context = "admin@rafter-local".to_owned();
    config.clusters = vec![NamedCluster {
        name: "rafter-local".to_owned(),
        cluster,
    }];
    config.users = vec![NamedUser {
        name: "admin".to_owned(),
        user: UserEntry {
            client_certificate_data: Some(b64(read("admin.crt")?)),
            client_key_data: Some(b64(read("admin.key")?)),
            ..Default::default()
        },
    }];
    config.contexts = vec![NamedContext {
        name: "admin@rafter-local".to_owned(),
        context: ContextEntry {
            cluster: "rafter-local".to_owned(),
            user: "admin".to_owned(),
            namespace: Some("default".to_owned()),
        },
    }];
    config.save(path)?;
    Ok(())
}

/// The first port `rafter up` tries for the masters' REST APIs (kubectl's).
const REST_PORT_BASE: u16 = 8443;

/// How long the bootstrap token of `rafter up`'s agents is valid.
const BOOTSTRAP_TOKEN_TTL: time::Duration = time::Duration::hours(24);

/// The containerd sockets as printed: comma-separated.
fn sockets_text(sockets: &[PathBuf]) -> String {
    sockets
        .iter()
        .map(|s| s.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A fresh bootstrap token for the agents to join with (`<id>.<secret>`).
async fn create_bootstrap_token(client: &Client) -> anyhow::Result<String> {
    let token = BootstrapToken::generate();
    let at = time::OffsetDateTime::now_utc() + BOOTSTRAP_TOKEN_TTL;
    let at = at.replace_nanosecond(0).unwrap_or(at);
    let expiration = at
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the token's expiration")?;
    client
        .create(Object::Secret(token.to_secret(Some(&expiration), &[])))
        .await
        .context("storing the agents' bootstrap token")?;
    Ok(format!("{}.{}", token.id, token.secret))
}

/// The agents' bootstrap kubeconfig: the admin config's cluster, the bootstrap token as
/// the only credential (saved with mode 0600: it holds the token).
fn write_bootstrap_config(path: &Path, admin: &Path, token: &str) -> anyhow::Result<()> {
    let mut config = ClientConfig::load(admin)?;
    config.current_context = "node-bootstrap@rafter-local".to_owned();
    config.users = vec![NamedUser {
        name: "node-bootstrap".to_owned(),
        user: UserEntry {
            token: Some(token.to_owned()),
            ..Default::default()
        },
    }];
    config.contexts = vec![NamedContext {
        name: "node-bootstrap@rafter-local".to_owned(),
        context: ContextEntry {
            cluster: "rafter-local".to_owned(),
            user: "node-bootstrap".to_owned(),
            namespace: Some("default".to_owned()),
        },
    }];
    config.save(path)?;
    Ok(())
}

async fn apply_demo(client: &Client, replicas: usize) -> anyhow::Result<()> {
    for document in parse_manifests(DEMO, "demo.yaml") {
        let mut object = document?.object;
        if let Object::Deployment(deployment) = &mut object {
            if let Some(spec) = deployment.spec.as_mut() {
                spec.replicas = Some(i32::try_from(replicas).unwrap_or(1));
            }
        }
        match client.create(object).await {
            Ok(_) | Err(rafter_client::ClientError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).context("applying the demo"),
        }
    }
    Ok(())
}

fn node_ready(object: &Object) -> bool {
    let Object::Node(node) = object else {
        return false;
    };
    node.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    })
}

fn pod_ready(object: &Object) -> bool {
    let Object::Pod(pod) = object else {
        return false;
    };
    pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_a_valid_deployment_and_a_node_port_service_on_30080() {
        let mut kinds = Vec::new();
        for document in parse_manifests(DEMO, "demo.yaml") {
            let mut object = document.unwrap().object;
            rafter_proto::apply_defaults(&mut object);
            assert_eq!(rafter_proto::validate(&object), vec![], "{object:?}");
            if let Object::Service(svc) = &object {
                let spec = svc.spec.as_ref().unwrap();
                assert_eq!(
                    (spec.r#type.as_str(), spec.ports[0].node_port),
                    ("NodePort", 30080)
                );
            }
            kinds.push(object.kind());
        }
        assert_eq!(kinds, vec![Kind::Deployment, Kind::Service]);
    }
}
