//! `rafter agent`: run one node agent in the foreground until Ctrl-C or SIGTERM — it
//! registers its Node, renews its Lease, runs the pods bound to it through containerd,
//! host processes or nothing (hollow), and runs static pods from `--manifest-dir`.
//!
//! Owns the flags and turning them into an [`AgentConfig`], a runtime and an API client.
//! With `--bootstrap-token`, `--bootstrap-kubeconfig` or `--cert-dir` the agent
//! authenticates with the node's client certificate (TLS bootstrap, `node_agent`'s
//! `bootstrap` module) instead of the config's credentials, and its log endpoint serves
//! TLS with a kubelet-serving certificate (`serving` module).
//! It must not hold agent logic; that is the `node-agent` crate's. Stopping the agent
//! leaves its containers running: the next agent on this node adopts them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use node_agent::{
    client_certificate, rotate_client_cert, Agent, AgentConfig, ApiClient, BackoffPolicy,
    CertRotation, ContainerRuntime, ContainerdConfig, ContainerdRuntime, HollowConfig,
    HollowRuntime, LogRotation, ProcessConfig, ProcessRuntime, ProxyMode, Registries,
    RotatingClient, ServingTls, TlsBootstrapConfig,
};
use rafter_client::Client;
use rafter_client::ResolvedConfig;

use crate::session::GlobalArgs;

/// The container runtime an agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// containerd through its CRI API (real containers, pod networking).
    Containerd,
    /// Host processes (no isolation; for machines without containerd).
    Process,
    /// Nothing runs; pods are reported Running (scale tests).
    Hollow,
}

/// How an agent proxies Services (`--proxy-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyModeArg {
    /// nftables rules (ClusterIP, NodePort, LoadBalancer addresses) in the agent's own
    /// table; needs `nft` and a pod network (containerd).
    Nftables,
    /// TCP listeners on NodePorts and this node's LoadBalancer addresses, round-robin to
    /// the endpoints; no ClusterIPs (the process runtime's pods share the host network).
    Userspace,
    /// No Service proxy on this node.
    Off,
}

/// `rafter agent`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
  # with the client config `rafter up` or an admin wrote\n  \
  rafter agent --name w1 --kubeconfig ~/.rafter/config --runtime containerd \\\n    \
  --containerd-socket /run/containerd/containerd.sock --pod-cidr 10.88.1.0/24\n  \
  # join with a bootstrap token (`rafter token create`); the node's client certificate\n  \
  # is kept in DATA_DIR/pki and used from then on\n  \
  rafter agent --name w1 --server https://10.0.0.1:6443,https://10.0.0.2:6443 \\\n    \
  --ca /etc/rafter/ca.crt --bootstrap-token abcdef.0123456789abcdef --runtime process\n  \
  # with explicit masters, CA and token\n  \
  rafter agent --name w1 --server https://10.0.0.1:6443,https://10.0.0.2:6443 \\\n    \
  --ca /etc/rafter/ca.crt --token-file /etc/rafter/token --runtime process")]
pub struct AgentArgs {
    /// The node's name.
    #[arg(long)]
    name: String,
    /// Master endpoints, comma-separated (overrides the client config's).
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    /// A bearer token (overrides the client config's).
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM) to verify masters with.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Talk plaintext to the masters (local development only).
    #[arg(long)]
    insecure: bool,
    /// The container runtime.
    #[arg(long, value_enum, default_value = "containerd")]
    runtime: RuntimeKind,
    /// The containerd socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// How Services are proxied on this node [default: nftables with containerd, userspace
    /// with the process runtime, off when hollow].
    #[arg(long, value_enum)]
    proxy_mode: Option<ProxyModeArg>,
    /// The nftables table of the proxy (`table ip NAME`); agents sharing a machine need
    /// one each. Removed when the agent stops.
    #[arg(long, default_value = node_agent::PROXY_DEFAULT_TABLE)]
    proxy_table: String,
    /// How often the node's Lease is renewed (node status: on change and every 6 intervals).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    lease_interval: Duration,
    /// The node's pod CIDR (spec.podCIDR).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// A directory of static pod manifests.
    #[arg(long)]
    manifest_dir: Option<PathBuf>,
    /// Registry mirrors, TLS settings (CA, client certificate, skip verify) and logins,
    /// as k3s's registries.yaml [default: /etc/rafter/registries.yaml when it exists].
    #[arg(long)]
    registries_config: Option<PathBuf>,
    /// Image archives (`*.tar`: OCI layout or docker) imported at start and never
    /// garbage-collected: an airgapped node's images [default: DATA_DIR/images].
    #[arg(long)]
    images_dir: Option<PathBuf>,
    /// Remove unused images when the image filesystem is used at or past this percentage.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    image_gc_high_threshold: u8,
    /// ... down to this percentage (below the high threshold).
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=99))]
    image_gc_low_threshold: u8,
    /// The pod sandbox (pause) image containerd is configured with: never collected.
    #[arg(long, default_value = "docker.io/local/pause:1")]
    sandbox_image: String,
    /// containerd's registry `config_path` (its CRI `registry.config_path`): the agent
    /// writes a `<registry>/hosts.toml` there for each registry of --registries-config.
    #[arg(long, default_value = "/etc/containerd/certs.d")]
    containerd_certs_dir: PathBuf,
    /// Where the agent keeps volumes, logs and state.
    #[arg(long, default_value = "/var/lib/rafter/agent")]
    data_dir: PathBuf,
    /// The node's InternalIP [default: the address of the route to the first master].
    #[arg(long)]
    node_ip: Option<String>,
    /// The cluster DNS server addresses pods with dnsPolicy ClusterFirst resolve with
    /// (the kube-dns Service's ClusterIP); none: such pods use the host's resolvers.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster domain, searched by pods after their namespace.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Serve cluster DNS here (UDP and TCP; port 0 picks a free one) from the agent's
    /// watch of Services and Endpoints; the masters list it in the kube-dns Endpoints.
    #[arg(long)]
    dns_listen: Option<std::net::SocketAddr>,
    /// The address the DNS server is advertised at, one pods can reach (such as the pod
    /// bridge's address) [default: the node's InternalIP].
    #[arg(long, requires = "dns_listen")]
    dns_advertise_address: Option<std::net::IpAddr>,
    /// Do not keep host routes to the other nodes' pod CIDRs via their InternalIPs (kept
    /// by default with the containerd runtime; leave them to another network plugin).
    #[arg(long)]
    no_pod_routes: bool,
    /// Where the log endpoint the masters call for `rafter logs` and `rafter top` listens.
    /// With a node certificate (TLS bootstrap) it serves TLS with a kubelet-serving
    /// certificate; otherwise it is plaintext: keep it on loopback or a trusted network.
    #[arg(long, default_value = "127.0.0.1:0")]
    logs_listen: std::net::SocketAddr,
    /// Rotate a container's log once it is larger than this (a quantity: 10Mi, 512Ki).
    #[arg(long, default_value = "10Mi", value_parser = parse_log_size)]
    container_log_max_size: u64,
    /// Log files kept per container, the current one included (at least 2).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..))]
    container_log_max_files: u16,
    /// The first restart back-off after a crash (doubles up to 5 min).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, hide = true)]
    backoff_base: Duration,
    /// Join with this bootstrap token (`<id>.<secret>`, from `rafter token create`): the
    /// agent files a certificate request for system:node:<name> with it and talks to
    /// the masters with the issued client certificate from then on.
    #[arg(long, conflicts_with_all = ["token", "token_file", "bootstrap_kubeconfig"])]
    bootstrap_token: Option<String>,
    /// A client config (masters, CA, a bootstrap token) to join with, as
    /// --bootstrap-token; used only while the cert dir holds no usable certificate.
    #[arg(long, conflicts_with_all = ["token", "token_file"])]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// Where the node's client certificate and key are kept [default: DATA_DIR/pki].
    /// A usable certificate there is used without any token.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// The client certificate lifetime to ask for, in seconds (at least 600) [default:
    /// the signer's, a year].
    #[arg(long, hide = true)]
    cert_expiration_seconds: Option<i32>,
    /// Renew the client certificate when less than this is left [default: a fifth of its
    /// lifetime].
    #[arg(long, value_parser = humantime::parse_duration, hide = true)]
    cert_renew_before: Option<Duration>,
}

impl AgentArgs {
    /// Whether the agent authenticates with a node client certificate of its cert dir
    /// (got through TLS bootstrap) rather than the client config's credentials.
    fn tls_bootstrap(&self) -> bool {
        self.bootstrap_token.is_some()
            || self.bootstrap_kubeconfig.is_some()
            || self.cert_dir.is_some()
    }

    fn cert_dir(&self) -> PathBuf {
        self.cert_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki"))
    }
}

/// A log size cap from a quantity (`10Mi`, `4096`).
/// Where the registries config is read from when --registries-config is not given.
const DEFAULT_REGISTRIES_CONFIG: &str = "/etc/rafter/registries.yaml";

fn parse_log_size(text: &str) -> Result<u64, String> {
    let q: rafter_proto::Quantity = text.parse().map_err(|e| format!("{e}"))?;
    u64::try_from(q.value())
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{text} is not a positive size in bytes"))
}

/// The client config: the file's (when present or named; the bootstrap kubeconfig
/// when given), with flags over it.
fn client_config(args: &AgentArgs, globals: &GlobalArgs) -> anyhow::Result<ResolvedConfig> {
    let from_file = if let Some(path) = &args.bootstrap_kubeconfig {
        Some(
            ResolvedConfig::load(Some(path), None)
                .with_context(|| format!("reading --bootstrap-kubeconfig {}", path.display()))?,
        )
    } else if args.server.is_empty() || globals.kubeconfig.is_some() {
        Some(
            ResolvedConfig::load(globals.kubeconfig.as_deref(), globals.context.as_deref())
                .context("reading the client config (or pass --server, --ca and --token)")?,
        )
    } else {
        None
    };
    let mut config = from_file.unwrap_or_else(|| ResolvedConfig {
        context: String::new(),
        endpoints: Vec::new(),
        ca_pem: None,
        identity: None,
        token: None,
        namespace: "default".to_owned(),
        insecure: false,
    });
    if !args.server.is_empty() {
        config.endpoints = args.server.clone();
    }
    if let Some(token) = &args.token {
        config.token = Some(token.clone());
    }
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("reading --token-file {}", path.display()))?;
        config.token = Some(token.trim().to_owned());
    }
    if let Some(path) = &args.ca {
        config.ca_pem = Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --ca {}", path.display()))?,
        );
    }
    if args.insecure {
        config.insecure = true;
    }
    if config.endpoints.is_empty() {
        bail!("no master endpoints: pass --server or a client config with a cluster");
    }
    Ok(config)
}

/// TLS bootstrap: the node's client certificate from the cert dir, or got with the
/// bootstrap token; a client presenting it (and no token), renewed before it runs out;
/// and what the log endpoint needs to get its serving certificate the same way.
async fn join_with_certificate(
    args: &AgentArgs,
    cluster: ResolvedConfig,
) -> anyhow::Result<(Arc<RotatingClient>, CertRotation, ServingTls)> {
    let bootstrap_token = args
        .bootstrap_token
        .clone()
        .or_else(|| cluster.token.clone());
    let mut tls = TlsBootstrapConfig::new(args.name.clone(), args.cert_dir(), cluster);
    tls.bootstrap_token = bootstrap_token;
    tls.expiration_seconds = args.cert_expiration_seconds;
    tls.renew_before = args.cert_renew_before;
    let (identity, renew_at) = client_certificate(&tls)
        .await
        .context("getting the node's client certificate")?;
    let mut config = tls.cluster.clone();
    config.identity = Some(identity);
    config.token = None;
    let client = Client::connect(config)
        .await
        .context("setting up the API client with the node's certificate")?;
    let client = Arc::new(RotatingClient::new(client));
    let serving = ServingTls::new(tls.clone(), client.clone());
    let rotation = rotate_client_cert(tls, client.clone(), renew_at);
    Ok((client, rotation, serving))
}

/// The host part of the first endpoint (to pick the InternalIP's interface).
fn api_host(endpoint: &str) -> Option<String> {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let authority = rest.split('/').next()?;
    Some(authority.to_owned()).filter(|a| !a.is_empty())
}

async fn runtime_of(args: &AgentArgs) -> anyhow::Result<Arc<dyn ContainerRuntime>> {
    Ok(match args.runtime {
        RuntimeKind::Containerd => {
            let rt = ContainerdRuntime::new(ContainerdConfig::new(&args.containerd_socket))
                .with_context(|| format!("containerd at {}", args.containerd_socket.display()))?;
            Arc::new(rt)
        }
        RuntimeKind::Process => {
            let rt = ProcessRuntime::new(ProcessConfig {
                state_dir: Some(args.data_dir.join("process")),
                ..ProcessConfig::default()
            });
            let reaped = rt
                .reap_orphans()
                .await
                .context("reaping orphaned processes")?;
            if reaped > 0 {
                tracing::info!(reaped, "killed processes a previous agent left running");
            }
            Arc::new(rt)
        }
        RuntimeKind::Hollow => Arc::new(HollowRuntime::new(HollowConfig::default())),
    })
}

/// The proxy mode of the flags, or the runtime's default.
fn proxy_mode(args: &AgentArgs) -> ProxyMode {
    let chosen = args.proxy_mode.unwrap_or(match args.runtime {
        RuntimeKind::Containerd => ProxyModeArg::Nftables,
        RuntimeKind::Process => ProxyModeArg::Userspace,
        RuntimeKind::Hollow => ProxyModeArg::Off,
    });
    match chosen {
        ProxyModeArg::Nftables => ProxyMode::Nftables {
            table: args.proxy_table.clone(),
            command: vec!["nft".to_owned()],
        },
        ProxyModeArg::Userspace => ProxyMode::Userspace,
        ProxyModeArg::Off => ProxyMode::Off,
    }
}

/// Runs `rafter agent`.
pub fn run(args: AgentArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    if args.name.is_empty() {
        bail!("--name must not be empty");
    }
    let client_config = client_config(&args, globals)?;
    let mut config = AgentConfig::new(args.name.clone(), args.data_dir.clone());
    config.manifest_dir = args.manifest_dir.clone();
    config.lease_interval = args.lease_interval.max(Duration::from_millis(100));
    config.pod_cidr = args.pod_cidr.clone();
    config.node_ip = args.node_ip.clone();
    config.cluster_dns = node_agent::dns::ClusterDns {
        servers: args.cluster_dns.iter().map(ToString::to_string).collect(),
        domain: args.cluster_domain.clone(),
        ..Default::default()
    };
    config.dns_listen = args.dns_listen;
    config.dns_advertise = args.dns_advertise_address;
    config.pod_routes = matches!(args.runtime, RuntimeKind::Containerd) && !args.no_pod_routes;
    config.api_host = client_config.endpoints.first().and_then(|e| api_host(e));
    // Pods get a ServiceAccount token volume where containers mount volumes: the process
    // and hollow backends mount nothing, so they are spared the token requests.
    config.service_account_ca = client_config
        .ca_pem
        .clone()
        .filter(|_| matches!(args.runtime, RuntimeKind::Containerd));
    config.logs_listen = Some(args.logs_listen);
    config.log_rotation = LogRotation {
        max_size: args.container_log_max_size,
        max_files: usize::from(args.container_log_max_files),
    };
    config.proxy = proxy_mode(&args);
    config.backoff = BackoffPolicy {
        base: args.backoff_base,
        ..BackoffPolicy::default()
    };
    config.images_dir = Some(
        args.images_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("images")),
    );
    let gc = node_agent::ImageGcPolicy {
        high_percent: args.image_gc_high_threshold,
        low_percent: args.image_gc_low_threshold,
        pinned: vec![args.sandbox_image.clone()],
        ..node_agent::ImageGcPolicy::default()
    };
    gc.validate()?;
    config.image_gc = Some(gc);
    let registries_file = args.registries_config.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_REGISTRIES_CONFIG);
        default.exists().then_some(default)
    });
    if let Some(path) = registries_file {
        config.registries = Registries::load(&path)?;
        if matches!(args.runtime, RuntimeKind::Containerd) {
            config.registry_hosts_dir = Some(args.containerd_certs_dir.clone());
        }
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    tokio.block_on(async move {
        let runtime = runtime_of(&args).await?;
        let (api, rotation): (Arc<dyn ApiClient>, _) = if args.tls_bootstrap() {
            let (client, rotation, serving) = join_with_certificate(&args, client_config).await?;
            config.serving_tls = Some(serving);
            (client, Some(rotation))
        } else {
            let client = Client::connect(client_config)
                .await
                .context("setting up the API client")?;
            (Arc::new(client), None)
        };
        let backend = runtime.backend();
        let proxy_name = config.proxy.name();
        let agent = Agent::start(config, runtime, api)
            .await
            .context("starting the agent")?;
        println!(
            "agent {} running ({backend} runtime, {} service proxy)",
            args.name, proxy_name
        );
        crate::logging::wait_for_shutdown_signal().await;
        tracing::info!("stopping (containers keep running)");
        agent.shutdown().await;
        drop(rotation);
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_host_is_the_first_endpoints_authority() {
        assert_eq!(
            api_host("https://10.0.0.1:6443").as_deref(),
            Some("10.0.0.1:6443")
        );
        assert_eq!(api_host("https://m1:6443/x").as_deref(), Some("m1:6443"));
    }

    #[test]
    fn log_size_caps_are_quantities_of_bytes() {
        assert_eq!(parse_log_size("10Mi"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_log_size("4096"), Ok(4096));
        assert!(parse_log_size("0").is_err());
        assert!(parse_log_size("lots").is_err());
    }
}
