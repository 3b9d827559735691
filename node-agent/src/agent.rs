//! [`Agent`]: the node agent as a whole — node registration and lease
//! ([`crate::node`]), the pod manager below, static pods, and the log endpoint
//! ([`crate::log_server`], advertised on the Node as `rafter.io/agent-logs-endpoint`),
//! which also serves the metrics endpoint ([`crate::metrics_server`]), with TLS when the
//! agent has a serving certificate ([`crate::serving`]).
//!
//! ```text
//!            ┌───────────── NodeReporter task (Node, Lease) ──────────────┐
//!   Agent ───┤                                                            ├──► API
//!            └── Manager task: list pods spec.nodeName=N ─► watch from rv ┘
//!                 │  (error / Expired ─► list again after a pause)
//!                 │  static manifests (every resync, 2 s at most) ─► mirrors (own task)
//!                 │  Relister task: runtime listed every `relist` ─► changed uids ─► wake
//!                 ▼
//!            uid → PodWorker task (watch::Sender<Desired>, Notify)
//!                 ├─ sandboxes in the runtime that belong to no pod ─► a worker that removes them
//!                 └─ secret tmpfs mounts of pods with neither ─► unmounted, directory removed
//! ```
//!
//! The manager is the only writer of the worker table: it starts a worker per pod uid,
//! feeds it each new version of its pod, and tells it `Gone` when the pod left the API.
//! Shutdown ([`Agent::shutdown`], or dropping the agent) stops every task and leaves the
//! containers running, so the next agent adopts them. This module must not run
//! containers or build statuses itself.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::v1::Pod;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::{ApiClient, PodEvent, PodEventStream};
use crate::dns::{ClusterDns, ClusterZone, DnsServer, DnsSettings, Upstream, ZoneFeed, ZoneHandle};
use crate::events::PodEvents;
use crate::host::HostInfo;
use crate::image_gc::ImageGcPolicy;
use crate::image_pull::ImagePuller;
use crate::image_server::ImageServer;
use crate::log_rotation::LogRotation;
use crate::log_server;
use crate::metrics_server::MetricsServer;
use crate::node::NodeReporter;
use crate::pinned_images::{PinnedImages, PinnedImagesError, PINNED_IMAGES_FILE};
use crate::pod_sync::BackoffPolicy;
use crate::pod_worker::{Desired, PodWorker, Source, WorkerContext, LABEL_AGENT, LABEL_NODE_NAME};
use crate::proxy::{ProxyLoop, ProxyMode, DEFAULT_DEBOUNCE};
use crate::registries::Registries;
use crate::relist::Relister;
use crate::runtime::ContainerRuntime;
use crate::service_watch;
use crate::serving::{keep_serving_cert, ServingTls};
use crate::static_pods;
use crate::{routes, tmpfs, volumes};

/// How soon after a Service or endpoint change the DNS zone is rebuilt.
const DNS_DEBOUNCE: Duration = Duration::from_millis(50);

/// How often the pod routes are checked against the Nodes even without a change.
const ROUTES_RESYNC: Duration = Duration::from_secs(30);

/// Settings of an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's name.
    pub node_name: String,
    /// Where the agent keeps pod volumes (`pods/<uid>`) and logs (`logs/`).
    pub data_dir: PathBuf,
    /// Static pod manifests, if any.
    pub manifest_dir: Option<PathBuf>,
    /// How often the lease is renewed (node status is written on change and every 6×).
    pub lease_interval: Duration,
    /// The node's pod CIDR, written to `spec.podCIDR`.
    pub pod_cidr: Option<String>,
    /// The node's InternalIP; detected from the route toward `api_host` when `None`.
    pub node_ip: Option<String>,
    /// A host (or host:port) of the API, to pick the interface of the InternalIP.
    pub api_host: Option<String>,
    /// The cluster CA, projected with each pod's ServiceAccount token at
    /// `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`; `None`: pods get no token
    /// volume (an agent that knows no cluster CA).
    pub service_account_ca: Option<String>,
    /// Container restart back-off.
    pub backoff: BackoffPolicy,
    /// How often every pod is reconciled even when nothing woke its worker (changes to
    /// the pod, probe verdicts, back-offs and the runtime listing below all do); also
    /// how often running containers' logs are checked against the cap.
    pub resync: Duration,
    /// How often the runtime's sandboxes and containers are listed node-wide (two calls)
    /// to wake the workers of pods whose containers changed on their own.
    pub relist: Duration,
    /// Size cap and number of files of each container's log (checked at every sync).
    pub log_rotation: LogRotation,
    /// Where the log endpoint the gateways call listens (TLS with `serving_tls`, else
    /// plaintext: keep it on loopback then); `None`: no endpoint, `rafter logs` cannot
    /// reach this node's pods.
    pub logs_listen: Option<SocketAddr>,
    /// Pod sandboxes created at once (a burst of pods waits its turn in arrival order).
    pub sandbox_parallelism: usize,
    /// Serve the log endpoint with TLS, with a kubelet-serving certificate got and renewed
    /// through these; `None`: plaintext (agents without a client certificate).
    pub serving_tls: Option<ServingTls>,
    /// Keep host routes to the other nodes' pod CIDRs ([`crate::routes`]); for runtimes
    /// whose pods have their own addresses on this node's pod CIDR (containerd with CNI).
    pub pod_routes: bool,
    /// Cluster DNS (`--cluster-dns`, `--cluster-domain`) for the pods' resolv.conf; the
    /// host's own configuration is read from `/etc/resolv.conf` at start.
    pub cluster_dns: ClusterDns,
    /// How the node proxy forwards Service traffic (nftables, userspace, or not at all).
    pub proxy: ProxyMode,
    /// How long the proxy coalesces changes before a sync.
    pub proxy_debounce: Duration,
    /// Serve cluster DNS here (UDP and TCP; port 0: any free port) from the agent's own
    /// watch of Services and Endpoints, and advertise it on the Node (annotation
    /// `rafter.io/cluster-dns-endpoint`) at `dns_advertise` (default: the InternalIP) with
    /// the bound port.
    pub dns_listen: Option<SocketAddr>,
    /// The address the DNS server is advertised at (one pods can reach).
    pub dns_advertise: Option<std::net::IpAddr>,
    /// Registry mirrors, TLS settings and logins (`--registries-config`).
    pub registries: Registries,
    /// Image garbage collection by disk usage; `None`: never.
    pub image_gc: Option<ImageGcPolicy>,
    /// Image archives (`*.tar`, OCI layout or docker) imported into the runtime at start
    /// and pinned (`--images-dir`, k3s's `agent/images`): an airgapped node's images.
    pub images_dir: Option<PathBuf>,
    /// containerd's registry `config_path` (`--containerd-certs-dir`): the agent writes
    /// `<dir>/<registry>/hosts.toml` from `registries` at start. `None`: none written.
    pub registry_hosts_dir: Option<PathBuf>,
}

impl AgentConfig {
    /// Defaults for node `name` keeping its files under `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            node_name: name.into(),
            data_dir: data_dir.into(),
            manifest_dir: None,
            lease_interval: Duration::from_secs(10),
            pod_cidr: None,
            node_ip: None,
            api_host: None,
            service_account_ca: None,
            backoff: BackoffPolicy::default(),
            resync: Duration::from_secs(10),
            relist: Duration::from_secs(1),
            log_rotation: LogRotation::default(),
            logs_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            sandbox_parallelism: 8,
            serving_tls: None,
            pod_routes: false,
            cluster_dns: ClusterDns::default(),
            proxy: ProxyMode::Off,
            proxy_debounce: DEFAULT_DEBOUNCE,
            dns_listen: None,
            dns_advertise: None,
            registries: Registries::default(),
            registry_hosts_dir: None,
            image_gc: Some(ImageGcPolicy::default()),
            images_dir: None,
        }
    }

    /// The root of the containers' log files (`<ns>_<pod>_<uid>/<container>/<n>.log`).
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory cannot be created.
    #[error("data directory {path:?}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node name is empty.
    #[error("the node needs a name")]
    NoName,
    /// The cluster domain is not a DNS name.
    #[error(transparent)]
    Dns(#[from] crate::dns::DomainError),
    /// The DNS server cannot serve on its address.
    #[error(transparent)]
    DnsServer(#[from] crate::dns::DnsError),
    /// The registries' `hosts.toml` files cannot be written.
    #[error(transparent)]
    Registries(#[from] crate::registries::RegistriesError),
    /// An image archive of `--images-dir` cannot be read or imported.
    #[error("importing {path:?} from the images directory: {source}")]
    ImportImage {
        /// The archive (or the directory).
        path: PathBuf,
        /// What the runtime said.
        #[source]
        source: crate::error::RuntimeError,
    },
    /// The image garbage collection thresholds are wrong.
    #[error(transparent)]
    ImageGc(#[from] crate::image_gc::ImageGcError),
    /// The list of imported (pinned) images cannot be read.
    #[error(transparent)]
    PinnedImages(#[from] PinnedImagesError),
    /// The log endpoint cannot listen on its address.
    #[error("log endpoint on {addr}: {source}")]
    LogsListen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Imports every `*.tar` of `dir` (in name order) into the runtime; the names they held.
async fn import_images_dir(
    runtime: &dyn ContainerRuntime,
    dir: &std::path::Path,
) -> Result<Vec<String>, AgentError> {
    let io = |source: std::io::Error| AgentError::ImportImage {
        path: dir.to_owned(),
        source: crate::error::RuntimeError::io("reading", dir, source),
    };
    let mut archives = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tar") {
            archives.push(path);
        }
    }
    archives.sort();
    let mut names = Vec::new();
    for path in archives {
        let held = runtime
            .import_image(&path)
            .await
            .map_err(|source| AgentError::ImportImage {
                path: path.clone(),
                source,
            })?;
        info!(archive = %path.display(), images = ?held, "images imported from the images directory");
        names.extend(held);
    }
    Ok(names)
}

/// The names a serving certificate is for: the node's name and the addresses its Node
/// reports (what the masters' auto-approval accepts).
fn serving_hosts(config: &AgentConfig, host: &HostInfo) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for name in [&config.node_name, &host.internal_ip, &host.hostname] {
        if !name.is_empty() && !hosts.contains(name) {
            hosts.push(name.clone());
        }
    }
    hosts
}

/// The host's resolver configuration (`/etc/resolv.conf`); empty if unreadable.
async fn host_resolver() -> DnsSettings {
    match tokio::fs::read_to_string("/etc/resolv.conf").await {
        Ok(text) => DnsSettings::parse(&text),
        Err(e) => {
            warn!(error = %e, "/etc/resolv.conf unreadable; pods with dnsPolicy Default get the runtime's");
            DnsSettings::default()
        }
    }
}

/// A running node agent. Dropping it stops its tasks (containers keep running).
pub struct Agent {
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    config: AgentConfig,
    logs_endpoint: Option<String>,
}

impl Agent {
    /// Starts the agent: node registration and heartbeat, the pod manager, static pods.
    pub async fn start(
        config: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
        api: Arc<dyn ApiClient>,
    ) -> Result<Agent, AgentError> {
        if config.node_name.is_empty() {
            return Err(AgentError::NoName);
        }
        for dir in [config.data_dir.join("pods"), config.log_dir()] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|source| AgentError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        if let Some(dir) = config.registry_hosts_dir.clone() {
            let registries = config.registries.clone();
            let written = tokio::task::spawn_blocking(move || registries.write_hosts(&dir)).await;
            match written {
                Ok(result) => result?,
                Err(e) => warn!(error = %e, "writing the registries' hosts.toml files failed"),
            }
        }
        let imported = match &config.images_dir {
            Some(dir) => import_images_dir(runtime.as_ref(), dir).await?,
            None => Vec::new(),
        };
        // Configured, from the images directory, and imported earlier (`rafter image import`).
        let configured = config
            .image_gc
            .as_ref()
            .map(|gc| gc.pinned.clone())
            .unwrap_or_default();
        let pinned = Arc::new(
            PinnedImages::load(
                config.data_dir.join(PINNED_IMAGES_FILE),
                configured.into_iter().chain(imported),
            )
            .await?,
        );
        let host = HostInfo::detect(config.node_ip.clone(), config.api_host.clone()).await;
        info!(node = %config.node_name, runtime = runtime.backend(), ip = %host.internal_ip, "agent starting");
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut annotations = rafter_proto::StringMap::new();
        let mut logs_endpoint = None;
        if let Some(addr) = config.logs_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::LogsListen { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| AgentError::LogsListen { addr, source })?;
            let certs = config.serving_tls.clone().map(|tls| {
                let (certs, renewal) = keep_serving_cert(tls, serving_hosts(&config, &host));
                tasks.push(renewal);
                certs
            });
            let url = log_server::advertised(bound, &host.internal_ip, certs.is_some());
            info!(node = %config.node_name, endpoint = %url, "log endpoint listening");
            annotations.insert(
                rafter_proto::well_known::AGENT_LOGS_ENDPOINT_ANNOTATION.to_owned(),
                url.clone(),
            );
            logs_endpoint = Some(url);
            tasks.push(tokio::spawn(log_server::serve(
                listener,
                config.log_dir(),
                MetricsServer::new(config.node_name.clone(), runtime.clone()),
                ImageServer::new(
                    config.node_name.clone(),
                    runtime.clone(),
                    pinned.clone(),
                    &config.data_dir,
                ),
                crate::exec_server::ExecServer::new(runtime.clone()),
                certs,
                rx.clone(),
            )));
        }
        if let Some(addr) = config.dns_listen {
            let zone = ZoneHandle::new(
                ClusterZone::empty(&config.cluster_dns.domain).map_err(AgentError::Dns)?,
            );
            let server = DnsServer::start(addr, zone.clone(), &Upstream::System).await?;
            let advertised = SocketAddr::new(
                config
                    .dns_advertise
                    .or_else(|| host.internal_ip.parse().ok())
                    .unwrap_or(server.addr().ip()),
                server.addr().port(),
            );
            info!(node = %config.node_name, listen = %server.addr(), advertised = %advertised, "cluster DNS serving");
            annotations.insert(
                rafter_proto::well_known::CLUSTER_DNS_ENDPOINT_ANNOTATION.to_owned(),
                advertised.to_string(),
            );
            let mut feed = ZoneFeed {
                domain: config.cluster_dns.domain.clone(),
                zone,
            };
            let (api, stop) = (api.clone(), rx.clone());
            tasks.push(tokio::spawn(async move {
                service_watch::follow(api, DNS_DEBOUNCE, &mut feed, stop).await;
                server.shutdown().await;
            }));
        }
        let reporter = NodeReporter {
            name: config.node_name.clone(),
            host: host.clone(),
            pod_cidr: config.pod_cidr.clone(),
            annotations,
            interval: config.lease_interval,
            api: api.clone(),
            runtime: runtime.clone(),
        };
        if let Some(policy) = config.image_gc.clone() {
            policy.validate()?;
            tasks.push(tokio::spawn(crate::image_gc::run(
                runtime.clone(),
                policy,
                pinned.clone(),
                rx.clone(),
            )));
        }
        let (events, writer) = PodEvents::start(api.clone(), config.node_name.clone(), rx.clone());
        tasks.push(writer);
        let images = ImagePuller {
            runtime: runtime.clone(),
            api: api.clone(),
            registries: Arc::new(config.registries.clone()),
            events,
        };
        let owner = agent_owner(&config.data_dir).await;
        let ctx = Arc::new(WorkerContext {
            owner,
            images,
            sandbox_slots: Arc::new(tokio::sync::Semaphore::new(
                config.sandbox_parallelism.max(1),
            )),
            node_name: config.node_name.clone(),
            runtime,
            api: api.clone(),
            host_ip: host.internal_ip.clone(),
            service_account_ca: config.service_account_ca.clone(),
            data_dir: config.data_dir.clone(),
            log_dir: config.log_dir(),
            backoff: config.backoff,
            resync: config.resync,
            log_rotation: config.log_rotation,
            cluster_dns: ClusterDns {
                host: host_resolver().await,
                ..config.cluster_dns.clone()
            },
        });
        let manager = Manager {
            ctx,
            relist: config.relist,
            node: config.node_name.clone(),
            manifest_dir: config.manifest_dir.clone(),
            workers: HashMap::new(),
            static_pods: BTreeMap::new(),
        };
        let node_ip = host.internal_ip.parse().ok();
        if let Some(proxy) = ProxyLoop::new(
            &config.proxy,
            api.clone(),
            config.node_name.clone(),
            node_ip,
            config.proxy_debounce,
        ) {
            match &config.proxy {
                ProxyMode::Userspace => info!(
                    node = %config.node_name,
                    "service proxy: userspace mode (pods share the host network): NodePorts and this node's LoadBalancer addresses, TCP only, no ClusterIPs"
                ),
                mode => {
                    info!(node = %config.node_name, mode = mode.name(), "service proxy starting")
                }
            }
            tasks.push(tokio::spawn(proxy.run(rx.clone())));
        }
        tasks.push(tokio::spawn(reporter.run(rx.clone())));
        if config.pod_routes {
            tasks.push(tokio::spawn(routes::run(
                api.clone(),
                config.node_name.clone(),
                ROUTES_RESYNC,
                rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(manager.run(rx)));
        Ok(Agent {
            shutdown,
            tasks,
            config,
            logs_endpoint,
        })
    }

    /// The agent's settings.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The URL of the log endpoint (`http://IP:PORT`), as written on the Node.
    pub fn logs_endpoint(&self) -> Option<&str> {
        self.logs_endpoint.as_deref()
    }

    /// Stops every task of the agent and waits for them; containers keep running.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct WorkerEntry {
    tx: watch::Sender<Desired>,
    /// Wakes the worker to look at the runtime again.
    wake: Arc<Notify>,
    task: JoinHandle<()>,
    source: Source,
}

/// How often the static manifests are read again and mirror pods checked, at most.
const MANIFEST_PERIOD: Duration = Duration::from_secs(2);

/// The pod manager: one worker per pod uid.
struct Manager {
    ctx: Arc<WorkerContext>,
    /// The period of the node-wide runtime listing ([`Relister`]).
    relist: Duration,
    node: String,
    manifest_dir: Option<PathBuf>,
    workers: HashMap<String, WorkerEntry>,
    static_pods: BTreeMap<String, Pod>,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata
        .as_ref()
        .map(|m| m.uid.clone())
        .unwrap_or_default()
}

impl Manager {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Some(dir) = self.manifest_dir.clone() {
            let pods = static_pods::load(&dir, &self.node).await;
            self.set_static(pods);
        }
        let mirrors = self.manifest_dir.clone().map(|dir| {
            let api = self.ctx.api.clone();
            let node = self.node.clone();
            let every = self
                .ctx
                .resync
                .clamp(Duration::from_secs(1), MANIFEST_PERIOD);
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let pods = static_pods::load(&dir, &node).await;
                    if let Err(e) = static_pods::sync_mirrors(api.as_ref(), &pods).await {
                        warn!(error = %e, "mirror pods not synced; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        });
        let (changes_tx, mut changes) = mpsc::channel::<Vec<String>>(16);
        let node = self.node.clone();
        let owner = self.ctx.owner.clone();
        let relister = Relister::new(self.ctx.runtime.clone(), move |labels| {
            is_ours(labels, &node, &owner)
        });
        let relister = tokio::spawn(relister.run(self.relist, changes_tx, shutdown.clone()));
        let mut stream: Option<PodEventStream> = None;
        let mut relist_at = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(
            self.ctx
                .resync
                .clamp(Duration::from_millis(200), MANIFEST_PERIOD),
        );
        loop {
            if stream.is_none() && tokio::time::Instant::now() >= relist_at {
                match self.ctx.api.list_pods(&self.node).await {
                    Ok((pods, rv)) => {
                        self.set_api_pods(pods);
                        self.remove_orphans().await;
                        stream = Some(self.ctx.api.watch_pods(&self.node, &rv));
                    }
                    Err(e) => {
                        warn!(node = %self.node, error = %e, "cannot list pods; retrying");
                        relist_at = tokio::time::Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                event = next_event(&mut stream), if stream.is_some() => match event {
                    Some(Ok(PodEvent::Upsert(pod))) => self.upsert(*pod, Source::Api),
                    Some(Ok(PodEvent::Deleted(pod))) => self.gone(&uid_of(&pod)),
                    Some(Err(e)) => {
                        warn!(node = %self.node, error = %e, "pod watch ended; listing again");
                        stream = None;
                        relist_at = tokio::time::Instant::now() + Duration::from_millis(500);
                    }
                    None => {
                        stream = None;
                        relist_at = tokio::time::Instant::now() + Duration::from_millis(500);
                    }
                },
                _ = tick.tick() => {
                    self.workers.retain(|_, w| !w.task.is_finished());
                    if let Some(dir) = self.manifest_dir.clone() {
                        let pods = static_pods::load(&dir, &self.node).await;
                        self.set_static(pods);
                    }
                }
                Some(uids) = changes.recv() => {
                    for uid in uids {
                        if let Some(w) = self.workers.get(&uid) {
                            w.wake.notify_one();
                        }
                    }
                }
                _ = tokio::time::sleep_until(relist_at), if stream.is_none() => {}
            }
        }
        relister.abort();
        if let Some(task) = mirrors {
            task.abort();
        }
        // Dropping the senders stops the workers; containers keep running.
        let tasks: Vec<_> = self.workers.drain().map(|(_, w)| w.task).collect();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    fn spawn(&mut self, uid: String, desired: Desired, source: Source) {
        let (tx, rx) = watch::channel(desired);
        let wake = Arc::new(Notify::new());
        let worker = PodWorker::new(self.ctx.clone(), uid.clone(), source, rx, wake.clone());
        let task = tokio::spawn(worker.run());
        self.workers.insert(
            uid,
            WorkerEntry {
                tx,
                wake,
                task,
                source,
            },
        );
    }

    fn upsert(&mut self, pod: Pod, source: Source) {
        if source == Source::Api && static_pods::is_mirror(&pod) {
            return;
        }
        let uid = uid_of(&pod);
        if uid.is_empty() {
            return;
        }
        match self.workers.get(&uid) {
            Some(w) if !w.task.is_finished() => {
                w.tx.send_replace(Desired::Pod(Box::new(pod)));
            }
            _ => self.spawn(uid, Desired::Pod(Box::new(pod)), source),
        }
    }

    fn gone(&mut self, uid: &str) {
        if let Some(w) = self.workers.get(uid) {
            w.tx.send_replace(Desired::Gone);
        }
    }

    /// The API's pods after a list: new ones start, missing ones go.
    fn set_api_pods(&mut self, pods: Vec<Pod>) {
        let listed: Vec<String> = pods.iter().map(uid_of).collect();
        let missing: Vec<String> = self
            .workers
            .iter()
            .filter(|(uid, w)| w.source == Source::Api && !listed.contains(uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in missing {
            self.gone(&uid);
        }
        for pod in pods {
            self.upsert(pod, Source::Api);
        }
    }

    fn set_static(&mut self, pods: BTreeMap<String, Pod>) {
        let removed: Vec<String> = self
            .static_pods
            .keys()
            .filter(|uid| !pods.contains_key(*uid))
            .cloned()
            .collect();
        for uid in removed {
            self.gone(&uid);
        }
        for (uid, pod) in &pods {
            if self.static_pods.get(uid) != Some(pod) || !self.workers.contains_key(uid) {
                self.upsert(pod.clone(), Source::Static);
            }
        }
        self.static_pods = pods;
    }

    /// Sandboxes of this node whose pods this agent does not know are removed (after a
    /// restart: pods deleted or moved while the agent was away).
    async fn remove_orphans(&mut self) {
        let sandboxes = match self.ctx.runtime.list_sandboxes().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot list sandboxes to find orphans");
                return;
            }
        };
        for sb in sandboxes {
            let ours = is_ours(&sb.labels, &self.node, &self.ctx.owner);
            if ours && !sb.pod_uid.is_empty() && !self.workers.contains_key(&sb.pod_uid) {
                info!(uid = %sb.pod_uid, pod = %format!("{}/{}", sb.namespace, sb.pod_name), "removing containers of a pod no longer bound here");
                self.spawn(sb.pod_uid.clone(), Desired::Gone, Source::Api);
            }
        }
        // Secret tmpfs mounts of pods that have neither a pod nor a sandbox here any more
        // (the agent was away when they went).
        let pods_dir = self.ctx.data_dir.join("pods");
        match tmpfs::mounted_pod_uids(&pods_dir).await {
            Ok(uids) => {
                for uid in uids.iter().filter(|u| !self.workers.contains_key(*u)) {
                    info!(uid = %uid, "unmounting the secret volumes of a pod that is gone");
                    volumes::remove_pod_dir(&volumes::pod_dir(&self.ctx.data_dir, uid)).await;
                }
            }
            Err(e) => warn!(error = %e, "cannot look for the mounts of pods that are gone"),
        }
    }
}

/// This agent's [`LABEL_AGENT`] value: `rafter-node-agent.` and the first 16 hex digits of
/// the SHA-256 of its data directory's canonical path (the path as given when it cannot
/// be resolved).
async fn agent_owner(data_dir: &std::path::Path) -> String {
    use sha2::Digest;
    let path = tokio::fs::canonicalize(data_dir)
        .await
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("rafter-node-agent.{hex}")
}

/// Whether a sandbox with `labels` is this agent's: made for its node, by it (or by an
/// agent from before the owner label, which only its node name tells).
fn is_ours(labels: &BTreeMap<String, String>, node: &str, owner: &str) -> bool {
    labels.get(LABEL_NODE_NAME).map(String::as_str) == Some(node)
        && labels
            .get(LABEL_AGENT)
            .is_none_or(|made_by| made_by == owner)
}

async fn next_event(
    stream: &mut Option<PodEventStream>,
) -> Option<Result<PodEvent, crate::api::ApiError>> {
    match stream.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(node: &str, owner: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([(LABEL_NODE_NAME.to_owned(), node.to_owned())]);
        if let Some(owner) = owner {
            labels.insert(LABEL_AGENT.to_owned(), owner.to_owned());
        }
        labels
    }

    #[tokio::test]
    async fn agents_sharing_a_runtime_and_a_node_name_own_only_their_sandboxes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mine, theirs) = (agent_owner(a.path()).await, agent_owner(b.path()).await);
        assert_ne!(mine, theirs);
        assert!(mine.starts_with("rafter-node-agent."), "{mine}");
        assert_eq!(mine, agent_owner(a.path()).await, "stable across restarts");
        assert!(is_ours(&labels("node-1", Some(&mine)), "node-1", &mine));
        assert!(!is_ours(&labels("node-1", Some(&theirs)), "node-1", &mine));
        assert!(!is_ours(&labels("node-2", Some(&mine)), "node-1", &mine));
        assert!(
            is_ours(&labels("node-1", None), "node-1", &mine),
            "a sandbox from before the owner label is told by its node"
        );
    }
}
