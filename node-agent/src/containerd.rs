//! [`ContainerdRuntime`]: the real backend, containerd's CRI v1 gRPC API over its unix
//! socket (protos from the `k8s-cri` crate).
//!
//! ```text
//!  ContainerdRuntime ──(tonic, lazy channel, reconnects)──► unix:<socket>
//!      RuntimeService: RunPodSandbox, CreateContainer, StartContainer, ContainerStatus ...
//!      ImageService:   ImageStatus, PullImage (with the pod's registry login)
//!  `ctr images import` for OCI tarballs (CRI has no import call)
//! ```
//!
//! Follows what was measured on containerd 1.6 (shared/RUNTIME-NOTES.md): ImageStatus
//! before PullImage, and by default no PullImage at all, since images are imported and a
//! pull always contacts a registry; never a negative `oom_score_adj`; pid namespace
//! CONTAINER; absolute `cgroup_parent` `/kubepods/pod<uid>`, removed by us after
//! RemovePodSandbox; sandbox attempt bumped when the name is still reserved; logs at
//! `<log_dir>/<container>/<attempt>.log`. containerd 1.6 has no container events, so
//! callers poll [`container_status`](crate::ContainerRuntime::container_status).
//!
//! Owns the translation between [`crate::spec`]/[`crate::status`] and CRI messages. It must
//! not keep state of its own: containerd is the source of truth, so a restarted agent
//! sees everything through `list_*`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;
use tracing::{debug, warn};

use crate::error::{Result, RuntimeError};
use crate::exec::{AttachSpec, ExecSession, ExecSpec};
use crate::image::names_in_oci_tarball;
use crate::image_gc::FsUsage;
use crate::metrics::ContainerUsage;
use crate::port_forward::PortForwardSession;
use crate::pull_secrets::PullAuth;
use crate::runtime::ContainerRuntime;
use crate::spec::{
    container_log_relative_path, ContainerConfig, SandboxConfig, LABEL_MANAGED_BY, LABEL_POD_UID,
    MANAGED_BY_AGENT,
};
use crate::status::{
    ContainerState, ContainerStatus, ContainerSummary, ExecOutput, ImageInfo, RuntimeVersion,
    Sandbox, SandboxState,
};

/// CFS period used with CPU limits, as kubelet does (100 ms).
const CPU_PERIOD_US: i64 = 100_000;
/// Time a pull may take beyond the call deadline (layers of a large image).
const PULL_EXTRA_TIME: Duration = Duration::from_secs(600);
/// How many times run_sandbox bumps the attempt when the name is still reserved.
const SANDBOX_NAME_RETRIES: u32 = 3;

/// How to reach and drive containerd.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    /// The containerd socket (e.g. `/run/containerd/containerd.sock`).
    pub socket: PathBuf,
    /// `ctr` binary used by [`import_image`](ContainerRuntime::import_image).
    pub ctr: PathBuf,
    /// containerd namespace CRI uses (`k8s.io`).
    pub namespace: String,
    /// Whether a missing image may be pulled from a registry. Off by default: Rafter's
    /// images are imported, and a pull always goes out to a registry.
    pub allow_pull: bool,
    /// Where the cgroup hierarchy is mounted (for removing pod cgroups).
    pub cgroup_root: PathBuf,
    /// Deadline for one call (calls that wait, like StopContainer, add their own wait).
    pub call_timeout: Duration,
    /// CRI runtime handler (`""` = containerd's default, runc).
    pub runtime_handler: String,
}

impl ContainerdConfig {
    /// Defaults for a containerd on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> ContainerdConfig {
        ContainerdConfig {
            socket: socket.into(),
            ctr: PathBuf::from("ctr"),
            namespace: "k8s.io".to_owned(),
            allow_pull: false,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            call_timeout: Duration::from_secs(120),
            runtime_handler: String::new(),
        }
    }
}

/// The containerd (CRI) backend. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct ContainerdRuntime {
    config: ContainerdConfig,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl ContainerdRuntime {
    /// A client for containerd on `config.socket`. Connects lazily, so it succeeds while
    /// containerd is down and reconnects when it returns; call
    /// [`version`](ContainerRuntime::version) to check it answers.
    pub fn new(config: ContainerdConfig) -> Result<ContainerdRuntime> {
        let endpoint = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| RuntimeError::Unavailable {
                message: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(5));
        let socket = config.socket.clone();
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }));
        Ok(ContainerdRuntime {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            config,
        })
    }

    /// [`new`](Self::new), then checks containerd answers.
    pub async fn connect(config: ContainerdConfig) -> Result<ContainerdRuntime> {
        let rt = ContainerdRuntime::new(config)?;
        rt.version().await?;
        Ok(rt)
    }

    /// The config this client was made with.
    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    async fn call<T, F>(&self, operation: &'static str, extra: Duration, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = self.config.call_timeout + extra;
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(map_status(operation, status)),
            Err(_) => Err(RuntimeError::Timeout {
                operation,
                seconds: deadline.as_secs(),
            }),
        }
    }

    fn sandbox_config(&self, config: &SandboxConfig, attempt: u32) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: config.pod_name.clone(),
                uid: config.pod_uid.clone(),
                namespace: config.namespace.clone(),
                attempt,
            }),
            hostname: config.hostname.clone(),
            dns_config: config.dns.as_ref().map(|dns| cri::DnsConfig {
                servers: dns.servers.clone(),
                searches: dns.searches.clone(),
                options: dns.options.clone(),
            }),
            log_directory: config.log_dir.display().to_string(),
            labels: to_hash(config.identity_labels()),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: pod_cgroup_parent(&config.pod_uid),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces(config.host_network)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Removes the pod's cgroup directories (`/kubepods/pod<uid>` in every hierarchy),
    /// which containerd leaves behind.
    async fn remove_pod_cgroups(&self, pod_uid: &str) {
        if !is_safe_path_component(pod_uid) {
            warn!(
                pod_uid,
                "not removing cgroups of a pod uid that is not a plain name"
            );
            return;
        }
        let root = self.config.cgroup_root.clone();
        let leaf = format!("kubepods/pod{pod_uid}");
        let result = tokio::task::spawn_blocking(move || remove_cgroup_dirs(&root, &leaf)).await;
        if let Err(e) = result {
            warn!(error = %e, "cgroup cleanup task failed");
        }
    }

    /// The sandboxes whose labels match `selector` (all of them must).
    async fn list_sandboxes_selected(
        &self,
        selector: HashMap<String, String>,
    ) -> Result<Vec<Sandbox>> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "ListPodSandbox",
                Duration::ZERO,
                client.list_pod_sandbox(cri::ListPodSandboxRequest {
                    filter: Some(cri::PodSandboxFilter {
                        label_selector: selector,
                        ..Default::default()
                    }),
                }),
            )
            .await?;
        Ok(resp
            .items
            .into_iter()
            .map(|s| {
                let meta = s.metadata.unwrap_or_default();
                let labels = to_btree(s.labels);
                Sandbox {
                    id: s.id,
                    pod_uid: labels.get(LABEL_POD_UID).cloned().unwrap_or(meta.uid),
                    pod_name: meta.name,
                    namespace: meta.namespace,
                    attempt: meta.attempt,
                    state: sandbox_state(s.state),
                    ip: None,
                    created_at: from_nanos(s.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
                    labels,
                }
            })
            .collect())
    }
}

fn remove_cgroup_dirs(root: &Path, leaf: &str) {
    let mut candidates = vec![root.join(leaf)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                candidates.push(entry.path().join(leaf));
            }
        }
    }
    for dir in candidates {
        // Children first (a sandbox cgroup left by a crashed shim), then the pod's.
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten() {
                if child.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => debug!(dir = %dir.display(), "removed pod cgroup"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(dir = %dir.display(), error = %e, "could not remove pod cgroup"),
        }
    }
}

fn is_safe_path_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The absolute cgroup parent of a pod (cgroupfs driver).
pub(crate) fn pod_cgroup_parent(pod_uid: &str) -> String {
    format!("/kubepods/pod{pod_uid}")
}

fn namespaces(host_network: bool) -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: if host_network {
            cri::NamespaceMode::Node as i32
        } else {
            cri::NamespaceMode::Pod as i32
        },
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn to_hash(map: BTreeMap<String, String>) -> HashMap<String, String> {
    map.into_iter().collect()
}

fn to_btree(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

fn managed_selector() -> HashMap<String, String> {
    HashMap::from([(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_AGENT.to_owned())])
}

fn from_nanos(ns: i64) -> Option<SystemTime> {
    (ns > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs()))
}

fn ceil_secs(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn map_status(operation: &'static str, status: tonic::Status) -> RuntimeError {
    let message = status.message().to_owned();
    match status.code() {
        Code::NotFound => RuntimeError::NotFound {
            kind: if operation.contains("Sandbox") {
                "sandbox"
            } else {
                "container"
            },
            id: message,
        },
        Code::Unavailable => RuntimeError::Unavailable { message },
        Code::DeadlineExceeded => RuntimeError::Timeout {
            operation,
            seconds: 0,
        },
        _ if message.contains("is reserved for") => RuntimeError::NameInUse {
            name: message.split('"').nth(1).unwrap_or_default().to_owned(),
            message,
        },
        code => RuntimeError::Rpc {
            operation,
            code: format!("{code:?}"),
            retryable: matches!(code, Code::ResourceExhausted | Code::Aborted),
            message,
        },
    }
}

fn container_state(state: i32) -> ContainerState {
    match cri::ContainerState::try_from(state) {
        Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(cri::ContainerState::ContainerExited) => ContainerState::Exited,
        _ => ContainerState::Unknown,
    }
}

fn sandbox_state(state: i32) -> SandboxState {
    if state == cri::PodSandboxState::SandboxReady as i32 {
        SandboxState::Ready
    } else {
        SandboxState::NotReady
    }
}

fn image_info(image: cri::Image) -> ImageInfo {
    ImageInfo {
        id: image.id,
        repo_tags: image.repo_tags,
        size: image.size,
        pinned: image.pinned,
    }
}

/// Used and total bytes of the filesystem holding `path`. Blocking.
fn fs_usage(path: &Path) -> std::io::Result<FsUsage> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let fragment = stats.fragment_size();
    let capacity = stats.blocks().saturating_mul(fragment);
    let available = stats.blocks_available().saturating_mul(fragment);
    Ok(FsUsage {
        used_bytes: capacity.saturating_sub(available),
        capacity_bytes: capacity,
    })
}

#[async_trait]
impl ContainerRuntime for ContainerdRuntime {
    fn backend(&self) -> &'static str {
        "containerd"
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "Version",
                Duration::ZERO,
                client.version(cri::VersionRequest {
                    version: "v1".to_owned(),
                }),
            )
            .await?;
        Ok(RuntimeVersion {
            runtime_name: resp.runtime_name,
            runtime_version: resp.runtime_version,
            api_version: resp.runtime_api_version,
        })
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        let mut client = self.images.clone();
        let resp = self
            .call(
                "ImageStatus",
                Duration::ZERO,
                client.image_status(cri::ImageStatusRequest {
                    image: Some(cri::ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                    verbose: false,
                }),
            )
            .await?;
        Ok(resp.image.map(image_info))
    }

    async fn ensure_image(&self, image: &str) -> Result<ImageInfo> {
        if let Some(info) = self.image_status(image).await? {
            return Ok(info);
        }
        if !self.config.allow_pull {
            return Err(RuntimeError::ImageNotFound {
                image: image.to_owned(),
                message: "not present on the node and pulling is disabled (import it)".to_owned(),
            });
        }
        let mut client = self.images.clone();
        let pulled = self
            .call(
                "PullImage",
                Duration::ZERO,
                client.pull_image(cri::PullImageRequest {
                    image: Some(cri::ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            )
            .await;
        match pulled {
            Ok(_) => self
                .image_status(image)
                .await?
                .ok_or_else(|| RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                    message: "pulled but not listed".to_owned(),
                }),
            Err(RuntimeError::Rpc { message, .. })
            | Err(RuntimeError::NotFound { id: message, .. }) => Err(RuntimeError::ImageNotFound {
                image: image.to_owned(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn pull_image(&self, image: &str, auth: Option<&PullAuth>) -> Result<ImageInfo> {
        let mut client = self.images.clone();
        let pulled = self
            .call(
                "PullImage",
                PULL_EXTRA_TIME,
                client.pull_image(cri::PullImageRequest {
                    image: Some(cri::ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                    auth: auth.map(|a| cri::AuthConfig {
                        username: a.username.clone(),
                        password: a.password.clone(),
                        identity_token: a.identity_token.clone(),
                        ..Default::default()
                    }),
                    sandbox_config: None,
                }),
            )
            .await;
        match pulled {
            Ok(resp) => {
                let listed = self.image_status(&resp.image_ref).await?;
                listed.ok_or_else(|| RuntimeError::PullFailed {
                    image: image.to_owned(),
                    message: format!("pulled as {} but not listed", resp.image_ref),
                })
            }
            Err(RuntimeError::Rpc { message, .. })
            | Err(RuntimeError::NotFound { id: message, .. }) => Err(RuntimeError::PullFailed {
                image: image.to_owned(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn import_image(&self, tarball: &Path) -> Result<Vec<String>> {
        let output = tokio::process::Command::new(&self.config.ctr)
            .arg("-a")
            .arg(&self.config.socket)
            .arg("-n")
            .arg(&self.config.namespace)
            .args(["images", "import"])
            .arg(tarball)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| RuntimeError::io("running ctr", &self.config.ctr, e))?;
        if !output.status.success() {
            return Err(RuntimeError::Rpc {
                operation: "ctr images import",
                code: format!("exit {}", output.status.code().unwrap_or(-1)),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                retryable: false,
            });
        }
        let path = tarball.to_owned();
        tokio::task::spawn_blocking(move || names_in_oci_tarball(&path))
            .await
            .map_err(|e| {
                RuntimeError::io("reading OCI tarball", tarball, std::io::Error::other(e))
            })?
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox> {
        tokio::fs::create_dir_all(&config.log_dir)
            .await
            .map_err(|e| RuntimeError::io("creating log dir", &config.log_dir, e))?;
        let mut attempt = config.attempt;
        let mut tries = 0;
        let id = loop {
            let mut client = self.runtime.clone();
            let request = cri::RunPodSandboxRequest {
                config: Some(self.sandbox_config(config, attempt)),
                runtime_handler: self.config.runtime_handler.clone(),
            };
            match self
                .call(
                    "RunPodSandbox",
                    Duration::ZERO,
                    client.run_pod_sandbox(request),
                )
                .await
            {
                Ok(resp) => break resp.pod_sandbox_id,
                Err(RuntimeError::NameInUse { name, .. }) if tries < SANDBOX_NAME_RETRIES => {
                    debug!(name, attempt, "sandbox name reserved; bumping attempt");
                    tries += 1;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        self.sandbox_status(&id).await
    }

    async fn sandbox_status(&self, sandbox_id: &str) -> Result<Sandbox> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "PodSandboxStatus",
                Duration::ZERO,
                client.pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                    verbose: false,
                }),
            )
            .await?;
        let status = resp.status.ok_or_else(|| RuntimeError::NotFound {
            kind: "sandbox",
            id: sandbox_id.to_owned(),
        })?;
        let meta = status.metadata.unwrap_or_default();
        let state = sandbox_state(status.state);
        Ok(Sandbox {
            id: status.id,
            pod_uid: meta.uid,
            pod_name: meta.name,
            namespace: meta.namespace,
            attempt: meta.attempt,
            ip: status
                .network
                .map(|n| n.ip)
                .filter(|ip| !ip.is_empty() && state == SandboxState::Ready),
            state,
            created_at: from_nanos(status.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
            labels: to_btree(status.labels),
        })
    }

    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        match self
            .call(
                "StopPodSandbox",
                Duration::ZERO,
                client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                }),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let pod_uid = match self.sandbox_status(sandbox_id).await {
            Ok(sb) => sb.pod_uid,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut client = self.runtime.clone();
        match self
            .call(
                "RemovePodSandbox",
                Duration::ZERO,
                client.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                }),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        // Another attempt of the same pod may still run in the same pod cgroup.
        if self.list_pod_sandboxes(&pod_uid).await?.is_empty() {
            self.remove_pod_cgroups(&pod_uid).await;
        }
        Ok(())
    }

    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        self.list_sandboxes_selected(managed_selector()).await
    }

    async fn list_pod_sandboxes(&self, pod_uid: &str) -> Result<Vec<Sandbox>> {
        let mut selector = managed_selector();
        selector.insert(LABEL_POD_UID.to_owned(), pod_uid.to_owned());
        let listed = self.list_sandboxes_selected(selector).await?;
        Ok(listed
            .into_iter()
            .filter(|s| s.pod_uid == pod_uid)
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String> {
        let res = &config.resources;
        let cpu_quota = res
            .cpu_limit_millis
            .map(|m| (m * CPU_PERIOD_US / 1000).max(1000));
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_owned(),
            sandbox_config: Some(self.sandbox_config(sandbox, sandbox.attempt)),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: config.name.clone(),
                    attempt: config.attempt,
                }),
                image: Some(cri::ImageSpec {
                    image: config.image.clone(),
                    ..Default::default()
                }),
                command: config.command.clone(),
                args: config.args.clone(),
                working_dir: config.working_dir.clone().unwrap_or_default(),
                envs: config
                    .env
                    .iter()
                    .map(|(key, value)| cri::KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                mounts: config
                    .mounts
                    .iter()
                    .map(|m| cri::Mount {
                        container_path: m.container_path.clone(),
                        host_path: m.host_path.display().to_string(),
                        readonly: m.read_only,
                        ..Default::default()
                    })
                    .collect(),
                labels: to_hash(config.identity_labels(sandbox)),
                log_path: container_log_relative_path(&config.name, config.attempt)
                    .display()
                    .to_string(),
                stdin: config.stdin,
                stdin_once: config.stdin_once,
                tty: config.tty,
                linux: Some(cri::LinuxContainerConfig {
                    resources: Some(cri::LinuxContainerResources {
                        cpu_period: if cpu_quota.is_some() {
                            CPU_PERIOD_US
                        } else {
                            0
                        },
                        cpu_quota: cpu_quota.unwrap_or(0),
                        cpu_shares: res
                            .cpu_request_millis
                            .map(|m| (m * 1024 / 1000).max(2))
                            .unwrap_or(0),
                        memory_limit_in_bytes: res.memory_limit_bytes.unwrap_or(0),
                        // Never negative: root here lacks CAP_SYS_RESOURCE.
                        oom_score_adj: 0,
                        ..Default::default()
                    }),
                    security_context: Some(cri::LinuxContainerSecurityContext {
                        capabilities: Some(cri::Capability {
                            add_capabilities: config.capabilities_add.clone(),
                            drop_capabilities: config.capabilities_drop.clone(),
                            ..Default::default()
                        }),
                        privileged: config.privileged,
                        namespace_options: Some(namespaces(sandbox.host_network)),
                        run_as_user: config.run_as_user.map(|value| cri::Int64Value { value }),
                        run_as_group: config.run_as_group.map(|value| cri::Int64Value { value }),
                        readonly_rootfs: config.read_only_root_fs,
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        };
        let mut client = self.runtime.clone();
        match self
            .call(
                "CreateContainer",
                Duration::ZERO,
                client.create_container(request),
            )
            .await
        {
            Ok(resp) => Ok(resp.container_id),
            Err(e) => {
                // The most common cause the agent must report distinctly: no such image.
                if matches!(e, RuntimeError::Rpc { .. } | RuntimeError::NotFound { .. })
                    && matches!(self.image_status(&config.image).await, Ok(None))
                {
                    return Err(RuntimeError::ImageNotFound {
                        image: config.image.clone(),
                        message: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        match self
            .call(
                "StartContainer",
                Duration::ZERO,
                client.start_container(cri::StartContainerRequest {
                    container_id: container_id.to_owned(),
                }),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(RuntimeError::Rpc { message, .. }) => Err(RuntimeError::StartFailed {
                id: container_id.to_owned(),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        self.call(
            "ReopenContainerLog",
            Duration::ZERO,
            client.reopen_container_log(cri::ReopenContainerLogRequest {
                container_id: container_id.to_owned(),
            }),
        )
        .await
        .map(|_| ())
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let mut client = self.runtime.clone();
        match self
            .call(
                "StopContainer",
                grace,
                client.stop_container(cri::StopContainerRequest {
                    container_id: container_id.to_owned(),
                    timeout: ceil_secs(grace),
                }),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        match self
            .call(
                "RemoveContainer",
                Duration::ZERO,
                client.remove_container(cri::RemoveContainerRequest {
                    container_id: container_id.to_owned(),
                }),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "ContainerStatus",
                Duration::ZERO,
                client.container_status(cri::ContainerStatusRequest {
                    container_id: container_id.to_owned(),
                    verbose: false,
                }),
            )
            .await?;
        let s = resp.status.ok_or_else(|| RuntimeError::NotFound {
            kind: "container",
            id: container_id.to_owned(),
        })?;
        let meta = s.metadata.unwrap_or_default();
        let state = container_state(s.state);
        let labels = to_btree(s.labels);
        Ok(ContainerStatus {
            id: s.id,
            name: meta.name,
            attempt: meta.attempt,
            image: s.image.map(|i| i.image).unwrap_or_default(),
            image_id: s.image_ref,
            state,
            exit_code: (state == ContainerState::Exited).then_some(s.exit_code),
            reason: s.reason,
            message: s.message,
            created_at: from_nanos(s.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
            // containerd stamps started_at when StartContainer returns, which can be after
            // the exit it already recorded for a process that lived a few microseconds.
            started_at: match (from_nanos(s.started_at), from_nanos(s.finished_at)) {
                (Some(start), Some(end)) => Some(start.min(end)),
                (start, _) => start,
            },
            finished_at: from_nanos(s.finished_at),
            log_path: PathBuf::from(s.log_path),
            labels,
        })
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerSummary>> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "ListContainers",
                Duration::ZERO,
                client.list_containers(cri::ListContainersRequest {
                    filter: Some(cri::ContainerFilter {
                        pod_sandbox_id: sandbox_id.unwrap_or_default().to_owned(),
                        label_selector: managed_selector(),
                        ..Default::default()
                    }),
                }),
            )
            .await?;
        Ok(resp
            .containers
            .into_iter()
            .map(|c| {
                let meta = c.metadata.unwrap_or_default();
                ContainerSummary {
                    id: c.id,
                    sandbox_id: c.pod_sandbox_id,
                    name: meta.name,
                    attempt: meta.attempt,
                    state: container_state(c.state),
                    created_at: from_nanos(c.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
                    labels: to_btree(c.labels),
                }
            })
            .collect())
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let mut client = self.images.clone();
        let resp = self
            .call(
                "ListImages",
                Duration::ZERO,
                client.list_images(cri::ListImagesRequest { filter: None }),
            )
            .await?;
        Ok(resp.images.into_iter().map(image_info).collect())
    }

    async fn images_in_use(&self) -> Result<std::collections::HashSet<String>> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "ListContainers",
                Duration::ZERO,
                client.list_containers(cri::ListContainersRequest { filter: None }),
            )
            .await?;
        let mut used = std::collections::HashSet::new();
        for c in resp.containers {
            used.insert(c.image_ref);
            if let Some(spec) = c.image {
                used.insert(crate::image::normalize_image(&spec.image));
                used.insert(spec.image);
            }
        }
        Ok(used)
    }

    async fn image_fs_usage(&self) -> Result<Option<FsUsage>> {
        let mut client = self.images.clone();
        let resp = self
            .call(
                "ImageFsInfo",
                Duration::ZERO,
                client.image_fs_info(cri::ImageFsInfoRequest {}),
            )
            .await?;
        let Some(mountpoint) = resp
            .image_filesystems
            .into_iter()
            .find_map(|fs| fs.fs_id.map(|id| PathBuf::from(id.mountpoint)))
        else {
            return Ok(None);
        };
        let path = mountpoint.clone();
        let usage = tokio::task::spawn_blocking(move || fs_usage(&path))
            .await
            .map_err(|e| RuntimeError::io("measuring", &mountpoint, std::io::Error::other(e)))?
            .map_err(|e| RuntimeError::io("measuring", &mountpoint, e))?;
        Ok(Some(usage))
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let mut client = self.images.clone();
        match self
            .call(
                "RemoveImage",
                Duration::ZERO,
                client.remove_image(cri::RemoveImageRequest {
                    image: Some(cri::ImageSpec {
                        image: image.to_owned(),
                        ..Default::default()
                    }),
                }),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_pod_cidr(&self, cidr: &str) -> Result<()> {
        let mut client = self.runtime.clone();
        self.call(
            "UpdateRuntimeConfig",
            Duration::ZERO,
            client.update_runtime_config(cri::UpdateRuntimeConfigRequest {
                runtime_config: Some(cri::RuntimeConfig {
                    network_config: Some(cri::NetworkConfig {
                        pod_cidr: cidr.to_owned(),
                    }),
                }),
            }),
        )
        .await?;
        Ok(())
    }

    async fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        let mut client = self.runtime.clone();
        let resp = self
            .call(
                "ListContainerStats",
                Duration::ZERO,
                client.list_container_stats(cri::ListContainerStatsRequest {
                    filter: Some(cri::ContainerStatsFilter {
                        label_selector: managed_selector(),
                        ..Default::default()
                    }),
                }),
            )
            .await?;
        Ok(resp
            .stats
            .into_iter()
            .filter_map(|s| {
                let attributes = s.attributes?;
                // Exited containers are listed without CPU figures: not running, not usage.
                let cpu = s.cpu?.usage_core_nano_seconds?.value;
                let memory = s
                    .memory
                    .and_then(|m| m.working_set_bytes)
                    .map_or(0, |v| v.value);
                Some(ContainerUsage {
                    container_id: attributes.id,
                    labels: to_btree(attributes.labels),
                    cpu_usage_nanos: cpu,
                    memory_working_set_bytes: memory,
                })
            })
            .collect())
    }

    /// CRI `Exec` answers a URL of containerd's streaming server (containerd's
    /// `stream_server_address`/`stream_server_port`, loopback and a free port by
    /// default); the session is a WebSocket to it (`crate::exec`).
    async fn exec(&self, container_id: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let mut client = self.runtime.clone();
        let answer = self
            .call(
                "Exec",
                Duration::ZERO,
                client.exec(cri::ExecRequest {
                    container_id: container_id.to_owned(),
                    cmd: spec.command.clone(),
                    tty: spec.tty,
                    stdin: spec.stdin,
                    stdout: true,
                    // With a terminal, stderr is the terminal too.
                    stderr: !spec.tty,
                }),
            )
            .await?;
        crate::exec::ws_session("Exec", &answer.url).await
    }

    /// CRI `Attach` answers a URL of containerd's streaming server, which speaks exec's
    /// channel protocol (`crate::exec`); the output ends when the container does.
    async fn attach(&self, container_id: &str, spec: &AttachSpec) -> Result<ExecSession> {
        let mut client = self.runtime.clone();
        let answer = self
            .call(
                "Attach",
                Duration::ZERO,
                client.attach(cri::AttachRequest {
                    container_id: container_id.to_owned(),
                    tty: spec.tty,
                    stdin: spec.stdin,
                    stdout: true,
                    stderr: !spec.tty,
                }),
            )
            .await?;
        crate::exec::ws_session("Attach", &answer.url).await
    }

    /// CRI `PortForward` answers a URL of containerd's streaming server, which dials the
    /// port inside the sandbox's network namespace; the session is a WebSocket to it
    /// (`crate::port_forward`).
    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<PortForwardSession> {
        let mut client = self.runtime.clone();
        let answer = self
            .call(
                "PortForward",
                Duration::ZERO,
                client.port_forward(cri::PortForwardRequest {
                    pod_sandbox_id: sandbox_id.to_owned(),
                    port: vec![i32::from(port)],
                }),
            )
            .await?;
        crate::port_forward::ws_session(&answer.url, port).await
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let mut client = self.runtime.clone();
        let result = self
            .call(
                "ExecSync",
                timeout,
                client.exec_sync(cri::ExecSyncRequest {
                    container_id: container_id.to_owned(),
                    cmd: command.to_vec(),
                    timeout: ceil_secs(timeout).max(1),
                }),
            )
            .await;
        match result {
            Ok(resp) => Ok(ExecOutput {
                exit_code: resp.exit_code,
                stdout: resp.stdout,
                stderr: resp.stderr,
            }),
            Err(RuntimeError::Rpc { message, .. })
                if message.contains("timeout") && message.contains("exceeded") =>
            {
                Err(RuntimeError::Timeout {
                    operation: "ExecSync",
                    seconds: timeout.as_secs(),
                })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_become_a_retryable_name_in_use_error() {
        let status = tonic::Status::unknown(
            "failed to reserve sandbox name \"web_default_u1_0\": name \"web_default_u1_0\" is reserved for \"abc\"",
        );
        let err = map_status("RunPodSandbox", status);
        assert!(matches!(&err, RuntimeError::NameInUse { name, .. } if name == "web_default_u1_0"));
        assert!(err.is_retryable());
    }

    #[test]
    fn unavailable_is_retryable_and_not_found_names_the_kind() {
        assert!(map_status("Version", tonic::Status::unavailable("down")).is_retryable());
        let err = map_status("PodSandboxStatus", tonic::Status::not_found("x"));
        assert!(matches!(
            err,
            RuntimeError::NotFound {
                kind: "sandbox",
                ..
            }
        ));
    }

    #[test]
    fn only_plain_uids_name_cgroup_paths() {
        assert!(is_safe_path_component(
            "0b6f3c1e-9a4b-4c1d-8f00-1234567890ab"
        ));
        assert!(!is_safe_path_component("../etc"));
        assert!(!is_safe_path_component(".."));
        assert!(!is_safe_path_component(""));
    }

    #[test]
    fn grace_periods_round_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }
}
