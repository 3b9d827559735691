//! `rafter master`: run one master (store member + API gateway) in the foreground until
//! Ctrl-C or SIGTERM, then stop cleanly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rafter_master::{AuditConfig, Master, MasterConfig, DEFAULT_HISTORY_RETENTION};

/// `rafter master`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
  # the first of three masters creates the cluster\n  \
  rafter master --id 1 --data-dir /var/lib/rafter/m1 --init \\\n    \
  --listen-client 127.0.0.1:6443 --listen-peer 127.0.0.1:2380 \\\n    \
  --initial-cluster 1=127.0.0.1:2380,2=127.0.0.1:2381,3=127.0.0.1:2382\n  \
  # the others start with the CA (ca.crt, ca.key) and sa.key copied into their --pki-dir\n  \
  rafter master --id 2 --data-dir /var/lib/rafter/m2 --pki-dir /var/lib/rafter/m1/pki \\\n    \
  --listen-client 127.0.0.1:6444 --listen-peer 127.0.0.1:2381")]
pub struct MasterArgs {
    /// This master's member id (non-zero, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Where the store keeps its data.
    #[arg(long)]
    data_dir: PathBuf,
    /// Where the cluster CA and certificates live [default: DATA_DIR/pki].
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// The API (client) listener.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen_client: SocketAddr,
    /// The address clients reach the API at [default: the listener's address].
    #[arg(long)]
    advertise_client: Option<String>,
    /// Also serve the Kubernetes REST API (stock kubectl, client libraries) on this
    /// listener, with the same TLS, credentials and authorization as the gRPC API
    /// [default: none; `rafter up` gives every master one, from port 8443 up].
    #[arg(long)]
    listen_rest: Option<SocketAddr>,
    /// The Raft (peer) listener.
    #[arg(long, default_value = "127.0.0.1:2380")]
    listen_peer: SocketAddr,
    /// The address peers reach this master at [default: the listener's address].
    #[arg(long)]
    advertise_peer: Option<String>,
    /// The first members: ID=PEER_ADDRESS,... (used with --init).
    #[arg(long, value_delimiter = ',')]
    initial_cluster: Vec<String>,
    /// Reach a member advertised at one peer address at another: ADVERTISED=DIALLED,...
    /// (a member behind a proxy or tunnel from this master only). TLS still checks the
    /// advertised host.
    #[arg(long, value_delimiter = ',')]
    peer_route: Vec<String>,
    /// Create the cluster: the CA, admin credentials and the first membership.
    #[arg(long)]
    init: bool,
    /// Serve the API without TLS (local development only).
    #[arg(long)]
    insecure: bool,
    /// Static bearer tokens, CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Threads of the async runtime; 0: one per CPU. Masters that share a machine can be
    /// given their share of its CPUs: fewer wake-ups from one thread to another per request
    /// (the store benchmark runs its members so).
    #[arg(long, default_value_t = 0)]
    worker_threads: usize,
    /// Raft heartbeat interval in milliseconds (elections time out after 3-6 heartbeats).
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Wait out the leader's lease even when its peer port refuses connections (its process
    /// is gone); by default a new leader is elected at once then.
    #[arg(long)]
    no_fast_failover: bool,
    /// Revisions of history to keep; older ones are compacted automatically, and watches
    /// from before them are told so (they list again). 0 keeps all history.
    #[arg(long, default_value_t = DEFAULT_HISTORY_RETENTION)]
    history_retention: u64,
    /// Megabytes kept free on the data disk: while it has less, this master refuses writes
    /// as leader (naming itself and its free space), until space is freed; below a quarter
    /// of it, the master exits rather than let a log write find the disk full. 0 disables.
    #[arg(long, default_value_t = 64)]
    disk_reserve_mb: u64,
    /// At most this many `Scheduled` events per second from the scheduler, on average
    /// (0: one per pod bound, as Kubernetes writes them). Binding many pods at once then
    /// costs fewer writes; events over the budget are counted in the log, not written.
    #[arg(long, default_value_t = 0.0)]
    scheduled_events_per_second: f64,
    /// How many `Scheduled` events may be written at once before the rate applies.
    #[arg(long, default_value_t = 100)]
    scheduled_events_burst: u32,
    /// Writes (Bindings and their Scheduled events) the scheduler keeps in flight at once.
    #[arg(long, default_value_t = rafter_master::DEFAULT_SCHEDULER_WRITES_IN_FLIGHT)]
    scheduler_writes_in_flight: usize,
    /// Serve every list and watch from the store, not from this master's watch cache.
    #[arg(long)]
    no_watch_cache: bool,
    /// Megabytes of recent changes the watch cache holds for watches (raw and decoded);
    /// a watch from an older revision reads the store.
    #[arg(long, default_value_t = 64)]
    watch_cache_history_mb: usize,
    /// Hold Events in the watch cache too. Off by default, as in kube-apiserver: Events'
    /// lists and watches read the store, and each master keeps one copy fewer of them.
    #[arg(long)]
    watch_cache_events: bool,
    /// Mutating requests this master serves at once (kube-apiserver's flag); the others
    /// wait in a queue per user, served in turn. 0: no limit. Members of system:masters
    /// are never queued.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Mutating requests of one user that may wait for a seat; more are answered 429.
    #[arg(long, default_value_t = 512)]
    max_queued_requests_per_user: usize,
    /// The range nodes' pod CIDRs (spec.podCIDR) are allocated from; "" allocates none.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// The range Services' ClusterIPs are allocated from; its first address is the
    /// `kubernetes` Service's. Every master of a cluster must be given the same.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// The range of ports NodePort and LoadBalancer Services get on every node (LOW-HIGH).
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// The ClusterIP of the cluster DNS Service (kube-system/kube-dns) the masters create
    /// [default: the tenth address of --service-cluster-ip-range, 10.96.0.10].
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster domain the cluster DNS serves (recorded on the kube-dns Service).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// An EncryptionConfiguration (apiserver.config.k8s.io/v1) file: which resources are
    /// encrypted at rest, and with which keys (mode 0600; the first provider encrypts).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Record every API call in this file, one audit.k8s.io/v1 Event per line (created
    /// 0600; its directory must exist). Without it nothing is recorded.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// An audit.k8s.io/v1 Policy file: which calls are recorded at which level (None,
    /// Metadata, Request) [default: every call at level Metadata]. Secret and ConfigMap
    /// bodies are never recorded.
    #[arg(long, requires = "audit_log_path")]
    audit_policy_file: Option<PathBuf>,
    /// The size in megabytes past which the audit log is rotated.
    #[arg(long, default_value_t = 100, requires = "audit_log_path")]
    audit_log_maxsize: u64,
    /// How many rotated audit logs are kept (FILE.1 is the newest).
    #[arg(long, default_value_t = 10, requires = "audit_log_path")]
    audit_log_maxbackup: usize,
}

fn parse_initial_cluster(entries: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut members = BTreeMap::new();
    for entry in entries.iter().filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('=')
            .with_context(|| format!("--initial-cluster entry {entry:?} is not ID=PEER_ADDRESS"))?;
        let id: u64 = id.parse().with_context(|| {
            format!("--initial-cluster entry {entry:?}: {id:?} is not a member id")
        })?;
        if id == 0 || members.insert(id, addr.to_owned()).is_some() {
            bail!("--initial-cluster: member id {id} is zero or listed twice");
        }
    }
    Ok(members)
}

fn parse_peer_routes(entries: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut routes = BTreeMap::new();
    for entry in entries.iter().filter(|e| !e.is_empty()) {
        let (advertised, dialled) = entry
            .split_once('=')
            .with_context(|| format!("--peer-route entry {entry:?} is not ADVERTISED=DIALLED"))?;
        for addr in [advertised, dialled] {
            if addr
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                bail!("--peer-route entry {entry:?}: {addr:?} is not HOST:PORT");
            }
        }
        if routes
            .insert(advertised.to_owned(), dialled.to_owned())
            .is_some()
        {
            bail!("--peer-route: {advertised} is routed twice");
        }
    }
    Ok(routes)
}

/// Runs `rafter master`.
pub fn run(args: MasterArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    // Everything a master writes holds cluster data or keys: files RocksDB creates get
    // 0600 in 0700 directories too (the files Rafter creates set their mode explicitly).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if args.id == 0 {
        bail!("--id must be a non-zero member id");
    }
    if raft_store::FAILPOINTS_COMPILED {
        tracing::warn!("failpoints compiled in: a test build, not for real clusters");
    }
    let initial_cluster = parse_initial_cluster(&args.initial_cluster)?;
    let peer_routes = parse_peer_routes(&args.peer_route)?;
    let config = MasterConfig {
        id: args.id,
        pki_dir: args
            .pki_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("pki")),
        data_dir: args.data_dir,
        client_addr: args.listen_client,
        advertise_client: args.advertise_client,
        rest_addr: args.listen_rest,
        peer_addr: args.listen_peer,
        advertise_peer: args.advertise_peer,
        initial_cluster,
        peer_routes,
        init: args.init,
        insecure: args.insecure,
        token_file: args.token_auth_file,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(10)),
        fast_failover: !args.no_fast_failover,
        history_retention: (args.history_retention > 0).then_some(args.history_retention),
        disk_reserve_bytes: args.disk_reserve_mb.saturating_mul(1024 * 1024),
        scheduled_events: (args.scheduled_events_per_second > 0.0).then_some(actors::EventRate {
            per_second: args.scheduled_events_per_second,
            burst: args.scheduled_events_burst,
        }),
        scheduler_writes_in_flight: args.scheduler_writes_in_flight.max(1),
        watch_cache: (!args.no_watch_cache).then(|| rafter_master::WatchCacheConfig {
            ring_bytes: args.watch_cache_history_mb.max(1) << 20,
            events: args.watch_cache_events,
            ..rafter_master::WatchCacheConfig::default()
        }),
        flow_control: Some(rafter_master::FlowControlConfig {
            seats: args.max_mutating_requests_inflight,
            queue_length: args.max_queued_requests_per_user,
            ..rafter_master::FlowControlConfig::default()
        }),
        encryption_config: args.encryption_provider_config,
        audit: args.audit_log_path.map(|log_path| AuditConfig {
            log_path,
            policy_file: args.audit_policy_file,
            max_size_mb: args.audit_log_maxsize,
            max_backups: args.audit_log_maxbackup,
        }),
        cluster_dns: rafter_master::ClusterDnsConfig {
            ip: args.cluster_dns,
            domain: args.cluster_domain,
        },
        service_ranges: rafter_master::ServiceRanges::parse(
            &args.service_cluster_ip_range,
            &args.service_node_port_range,
        )?,
        cluster_cidr: if args.cluster_cidr.is_empty() {
            None
        } else {
            Some(
                actors::ClusterCidr::new(&args.cluster_cidr, args.node_cidr_mask_size)
                    .context("--cluster-cidr / --node-cidr-mask-size")?,
            )
        },
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        runtime.worker_threads(args.worker_threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let master = Master::start(config).await?;
        println!(
            "master {} serving the API on {}",
            args.id,
            master.client_addr()
        );
        if let Some(rest) = master.rest_addr() {
            println!(
                "master {} serving the Kubernetes REST API on https://{rest}",
                args.id
            );
        }
        tokio::select! {
            () = crate::logging::wait_for_shutdown_signal() => {}
            fatal = master.store_failed() => {
                // Serving on without a store would only refuse every call: exit, so a
                // supervisor restarts the member on its (durable) log.
                tracing::error!(error = %fatal, "the store stopped; exiting");
                bail!("the store stopped: {fatal}");
            }
        }
        tracing::info!("stopping");
        master.shutdown().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_routes_are_checked() {
        let routes = parse_peer_routes(&["127.0.0.1:2380=127.0.0.1:4380".into()]).unwrap();
        assert_eq!(routes["127.0.0.1:2380"], "127.0.0.1:4380");
        assert!(parse_peer_routes(&["127.0.0.1:2380".into()]).is_err());
        assert!(parse_peer_routes(&["127.0.0.1:2380=nowhere".into()]).is_err());
        assert!(parse_peer_routes(&["a:1=b:2".into(), "a:1=c:3".into()]).is_err());
    }

    #[test]
    fn initial_cluster_lists_are_checked() {
        let members =
            parse_initial_cluster(&["1=127.0.0.1:2380".into(), "2=127.0.0.1:2381".into()]).unwrap();
        assert_eq!(members[&2], "127.0.0.1:2381");
        assert!(parse_initial_cluster(&["x=1".into()]).is_err());
        assert!(parse_initial_cluster(&["1=a".into(), "1=b".into()]).is_err());
        assert!(parse_initial_cluster(&["1".into()]).is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        master: MasterArgs,
    }

    fn parse(extra: &[&str]) -> Result<MasterArgs, clap::Error> {
        use clap::Parser;
        let args = ["master", "--id", "1", "--data-dir", "/d"]
            .iter()
            .chain(extra);
        Command::try_parse_from(args).map(|c| c.master)
    }

    #[test]
    fn audit_flags_need_a_log_path_and_default_to_100_mb() {
        let plain = parse(&[]).unwrap();
        assert_eq!(plain.audit_log_path, None);
        let audited = parse(&[
            "--audit-log-path",
            "/a.log",
            "--audit-policy-file",
            "/p.yaml",
        ])
        .unwrap();
        assert_eq!(
            audited.audit_log_path.as_deref(),
            Some(std::path::Path::new("/a.log"))
        );
        assert_eq!(audited.audit_log_maxsize, 100);
        assert!(parse(&["--audit-policy-file", "/p.yaml"]).is_err());
        assert!(parse(&["--audit-log-maxsize", "5"]).is_err());
    }

    #[test]
    fn service_ranges_default_as_kubernetes_and_bad_ones_name_their_flag() {
        let plain = parse(&[]).unwrap();
        let ranges = rafter_master::ServiceRanges::parse(
            &plain.service_cluster_ip_range,
            &plain.service_node_port_range,
        )
        .unwrap();
        assert_eq!(ranges, rafter_master::ServiceRanges::default());
        let narrow = parse(&["--service-node-port-range", "32767-30000"]).unwrap();
        let err = rafter_master::ServiceRanges::parse(
            &narrow.service_cluster_ip_range,
            &narrow.service_node_port_range,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--service-node-port-range"), "{err}");
    }
}
