//! # Layout
//!
//! The kubelet role of Rafter: registers its Node and renews its Lease, watches the pods
//! bound to it, and runs them through a container runtime, reporting their status.
//!
//! ```text
//!   API (rafter_client::Client behind the ApiClient trait)
//!     ▲ Node, Lease          ▲ pods/status, delete      │ list + watch spec.nodeName=N
//!     │                      │                          ▼
//!   NodeReporter         PodWorker (one per pod) ◄── Manager (+ static pods, orphans)
//!                            │ plan (pure) ─► actions; pod_status (pure) ─► status
//!                            ▼
//!   Pod / Container (rafter-proto) ──spec──► SandboxConfig, ContainerConfig
//!                                                  │
//!                                   Arc<dyn ContainerRuntime>
//!              ┌──────────────────────────┼──────────────────────────┐
//!      ContainerdRuntime            ProcessRuntime              HollowRuntime
//!      CRI v1 over unix socket      host processes,             nothing runs;
//!      (containerd + runc + CNI)    CRI-format log files        Running after a delay
//!                                                  │
//!                                   Sandbox, ContainerStatus ◄──status
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `agent` | [`Agent`], [`AgentConfig`]: the tasks of one agent and the pod manager (worker per pod uid) |
//! | `bootstrap` | TLS bootstrap: the client certificate for `system:node:<name>` got with a bootstrap token and a CSR, its files, renewal ([`RotatingClient`]) |
//! | `api` | [`ApiClient`]: the API calls the agent makes, implemented over [`rafter_client::Client`] |
//! | `node` | the Node object (capacity, conditions) and the node Lease heartbeat |
//! | `host` | CPUs, memory, addresses and OS of the machine |
//! | `routes` | host routes to the other nodes' pod CIDRs via their InternalIPs (host-gw), marked as the agent's own |
//! | `pod_sync` | the pure core: [`BackoffPolicy`], the plan of actions and the pod status |
//! | `pod_worker` | one pod's worker: observe, carry out the plan, probes, status writes, teardown |
//! | `relist` | the node-wide runtime listing (two calls per period) that wakes the workers of pods whose containers changed |
//! | `probes` | liveness/readiness probe tasks (exec, httpGet, tcpSocket) |
//! | `env` | env / envFrom resolution and the pod's ConfigMaps and Secrets |
//! | `expansion` | `$(VAR)` references in command, args and env values (pure) |
//! | `volumes` | emptyDir, hostPath, configMap and secret volumes and their mounts |
//! | `service_account` | the projected ServiceAccount volume: token (bound to the pod, refreshed at 80% of its life), CA and namespace |
//! | `tmpfs` | secret volumes on tmpfs: mount, unmount at teardown and after a restart, mountinfo parsing |
//! | `static_pods` | manifests in `--manifest-dir` and their mirror pods |
//! | `logs` | [`read_logs`] / [`follow_logs`] over the containers' log files |
//! | `metrics` | usage samples (node from `/proc`, containers from the runtime) and the rates between two |
//! | `metrics_server` | the agent's metrics endpoint (`rafter.agent.v1.AgentMetrics`) the gateways call for `rafter top` |
//! | `exec_server` | the agent's exec, attach and port-forward endpoint (`rafter.agent.v1.AgentStreams`) the gateways call for `rafter exec`/`attach`/`port-forward` and kubectl's: the pod's running container or ready sandbox, the runtime's session relayed |
//! | `exec` | exec and attach sessions' types and the WebSocket client (`v5`/`v4.channel.k8s.io`) of containerd's streaming server |
//! | `port_forward` | port-forward sessions (one TCP connection into a pod): a socket's relay and the WebSocket client of containerd's streaming server |
//! | `log_rotation` | [`LogRotation`]: size caps and rotation of container log files |
//! | `log_server` | the agent's log endpoint (`rafter.agent.v1.AgentLogs`) the gateways call for `rafter logs`; TLS with the serving certificate when there is one |
//! | `service_watch` | Services and Endpoints followed by list + watch and handed to a sink (the proxy, DNS) after each burst of changes |
//! | `serving` | [`ServingTls`]: the kubelet-serving certificate for the node's addresses, its files (`serving.crt`/`serving.key`) and renewal |
//! | `runtime` | the [`ContainerRuntime`] trait: the contract every backend keeps |
//! | `spec` | [`SandboxConfig`] / [`ContainerConfig`] and their translation from the API types |
//! | `status` | [`Sandbox`], [`ContainerStatus`], exit reasons, images, versions |
//! | `error` | [`RuntimeError`] with `is_retryable()` |
//! | `containerd` | [`ContainerdRuntime`]: the real backend over CRI |
//! | `process` | [`ProcessRuntime`]: host processes, for machines without containerd |
//! | `hollow` | [`HollowRuntime`]: no processes, for scale tests |
//! | `cri_log` | the CRI log line format (write and parse) |
//! | `image` | image name normalisation and OCI tarball names |
//! | `pull_secrets` | registry logins in `dockerconfigjson`/`dockercfg` Secrets and which apply to an image (pure) |
//! | `registries` | [`Registries`]: `--registries-config` (mirrors, TLS, logins) and containerd's `hosts.toml` files |
//! | `image_pull` | pull policy (`Always`/`IfNotPresent`/`Never`), the pod's logins, and the Pulling/Pulled/Failed events |
//! | `image_server` | the agent's image endpoint (`rafter.agent.v1.AgentImages`) the gateways call for `rafter image import` and `image ls`: spool, check, import, pin |
//! | `pinned_images` | the images never garbage-collected, and `DATA_DIR/pinned-images` listing the imported ones across restarts |
//! | `image_gc` | [`ImageGcPolicy`]: removing unused, unpinned images past the disk-usage high threshold down to the low one |
//! | `events` | Events about the node's pods, written through the API |
//! | `proxy` | the node proxy: Services and Endpoints to nftables rules (one atomic `nft -f` per sync) or, for the process runtime, userspace TCP listeners |
//!
//! The runtimes must not hold pod policy (restart back-off, probes, phase): they run
//! what they are told and report what they see; policy lives in `pod_sync`. Nothing
//! blocks an async thread: file work runs through `tokio::fs` or `spawn_blocking`,
//! processes through `tokio::process`. The agent learns about pods only through its
//! watch (no side channels), and its shutdown leaves containers running for the next
//! agent to adopt.

mod agent;
mod api;
mod bootstrap;
mod containerd;
mod cri_log;
pub mod dns;
mod env;
mod error;
mod events;
mod exec;
mod exec_server;
mod expansion;
mod hollow;
mod host;
mod image;
mod image_gc;
mod image_pull;
mod image_server;
mod log_rotation;
mod log_server;
mod logs;
mod metrics;
mod metrics_server;
mod node;
mod pinned_images;
mod pod_sync;
mod pod_worker;
mod port_forward;
mod probes;
mod process;
mod proxy;
mod pull_secrets;
mod registries;
mod relist;
mod routes;
mod runtime;
mod service_account;
mod service_watch;
mod serving;
mod spec;
mod static_pods;
mod status;
mod tmpfs;
mod volumes;

pub use agent::{Agent, AgentConfig, AgentError};
pub use api::{ApiClient, ApiError, ObjectEvent, ObjectEventStream, PodEvent, PodEventStream};
pub use bootstrap::{
    client_certificate, rotate as rotate_client_cert, BootstrapError, CertRotation, RotatingClient,
    TlsBootstrapConfig, CLIENT_CERT_FILE, CLIENT_KEY_FILE,
};
pub use containerd::{ContainerdConfig, ContainerdRuntime};
pub use cri_log::{encode_line, messages as log_messages, parse_line, LogRecord, LogStream};
pub use error::{Result, RuntimeError};
pub use exec::{AttachSpec, ExecEvent, ExecInput, ExecSession, ExecSpec};
pub use hollow::{HollowConfig, HollowRuntime};
pub use image::{names_in_oci_tarball as image_archive_names, normalize_image};
pub use image_gc::{FsUsage, ImageGcError, ImageGcPolicy};
pub use log_rotation::LogRotation;
pub use logs::{follow_logs, read_logs, LogError, LogRequest};
pub use metrics::ContainerUsage;
pub use node::{LEASE_DURATION_SECONDS, NODE_LEASE_NAMESPACE};
pub use pinned_images::PinnedImagesError;
pub use pod_sync::BackoffPolicy;
pub use pod_worker::{LABEL_NODE_NAME, MIRROR_ANNOTATION};
pub use port_forward::{PortForwardEvent, PortForwardSession};
pub use process::{ProcessConfig, ProcessRuntime};
pub use proxy::{
    delete_table as nft_delete_table, nft_check, service_rules, Applied, Endpoint, Frontends,
    NftTable, Protocol, ProxyError, ProxyMode, Ruleset, ServicePortRule, ServiceState,
    UserspaceProxy, DEFAULT_DEBOUNCE as PROXY_DEFAULT_DEBOUNCE,
    DEFAULT_TABLE as PROXY_DEFAULT_TABLE,
};
pub use pull_secrets::PullAuth;
pub use registries::{
    Mirror, Registries, RegistriesError, RegistryConfig, RegistryLogin, RegistryTls,
};
pub use routes::ROUTE_PROTOCOL;
pub use runtime::ContainerRuntime;
pub use serving::{ServingTls, SERVING_CERT_FILE, SERVING_KEY_FILE};
pub use spec::{
    container_log_relative_path, ContainerConfig, Mount, Resources, SandboxConfig,
    LABEL_CONTAINER_NAME, LABEL_MANAGED_BY, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    MANAGED_BY_AGENT,
};
pub use status::{
    exit_reason, ContainerState, ContainerStatus, ContainerSummary, ExecOutput, ImageInfo,
    RuntimeVersion, Sandbox, SandboxState, REASON_COMPLETED, REASON_ERROR, REASON_OOM_KILLED,
    REASON_START_ERROR,
};
