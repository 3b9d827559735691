//! The [`ContainerRuntime`] trait: the operations a kubelet needs from a container
//! runtime, at the level of CRI (sandboxes, containers, images, exec, logs).
//!
//! ```text
//!   agent (pod workers, probes, status)
//!        │  Arc<dyn ContainerRuntime>
//!        ├──► ContainerdRuntime ── CRI v1 gRPC ──► containerd ──► runc
//!        ├──► ProcessRuntime   ── host processes in their own process groups
//!        └──► HollowRuntime    ── nothing at all (scale tests)
//! ```
//!
//! **Object safe, through `async_trait`.** The agent picks its backend at start-up from a
//! flag (`--runtime containerd|process|hollow`), and the scale tests run thousands of
//! hollow agents next to real ones, so the pod workers hold an `Arc<dyn ContainerRuntime>`
//! rather than being generic over it (which would make every agent type generic and
//! monomorphise the whole agent three times). The cost is one boxed future per call,
//! nothing next to a gRPC round trip or a process spawn.
//!
//! This module owns the contract only; it must not hold policy (restart back-off, probes,
//! pod phase), which belongs to the agent above it. Every method is cancel-safe in the
//! sense that dropping its future leaves the runtime consistent (a later `list_*` shows
//! what exists).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::exec::{AttachSpec, ExecSession, ExecSpec};
use crate::image_gc::FsUsage;
use crate::metrics::ContainerUsage;
use crate::port_forward::PortForwardSession;
use crate::pull_secrets::PullAuth;
use crate::spec::{ContainerConfig, SandboxConfig};
use crate::status::{
    ContainerStatus, ContainerSummary, ExecOutput, ImageInfo, RuntimeVersion, Sandbox,
};

/// A container runtime as the node agent drives it.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Short backend name (`containerd`, `process`, `hollow`), for logs and node info.
    fn backend(&self) -> &'static str;

    /// The runtime's name and version; also a liveness check.
    async fn version(&self) -> Result<RuntimeVersion>;

    /// The image if present on the node, `None` if not. Never contacts a registry.
    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>>;

    /// Makes sure the image is present: checks [`image_status`](Self::image_status) first
    /// and only then pulls, where the backend is allowed to. A missing image is
    /// [`RuntimeError::ImageNotFound`](crate::RuntimeError::ImageNotFound).
    async fn ensure_image(&self, image: &str) -> Result<ImageInfo>;

    /// Fetches `image` from its registry with `auth` (or anonymously), even when it is
    /// present (a tag may have moved); returns it as now present. Pull policy is the
    /// caller's. A registry's refusal (unauthorized, not found, TLS) is
    /// [`RuntimeError::PullFailed`](crate::RuntimeError::PullFailed) with its message.
    /// Backends that cannot pull (process, hollow) report a missing image as
    /// [`RuntimeError::ImageNotFound`](crate::RuntimeError::ImageNotFound) and a present one
    /// as pulled.
    async fn pull_image(&self, image: &str, auth: Option<&PullAuth>) -> Result<ImageInfo>;

    /// Imports an OCI layout tarball; returns the image names it held.
    async fn import_image(&self, tarball: &Path) -> Result<Vec<String>>;

    /// Creates and starts a pod sandbox; returns it with its IP where there is one.
    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox>;

    /// The current state of a sandbox.
    async fn sandbox_status(&self, sandbox_id: &str) -> Result<Sandbox>;

    /// Stops a sandbox and kills whatever still runs in it. Idempotent.
    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()>;

    /// Removes a stopped sandbox, its containers and its cgroup. Idempotent: an unknown id
    /// is not an error.
    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()>;

    /// All sandboxes this agent created (carrying the pod uid label). Listings may
    /// leave `ip` empty (CRI lists carry none); ask [`sandbox_status`](Self::sandbox_status).
    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>>;

    /// The sandboxes of the pod `pod_uid`: [`list_sandboxes`](Self::list_sandboxes) of that
    /// pod only (a backend that can filter in the runtime does, so a pod's look at its own
    /// sandboxes costs the same however many pods the node runs).
    async fn list_pod_sandboxes(&self, pod_uid: &str) -> Result<Vec<Sandbox>> {
        Ok(self
            .list_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.pod_uid == pod_uid)
            .collect())
    }

    /// Creates a container in a ready sandbox; returns its id. `sandbox` is the config the
    /// sandbox was run with (it names the log directory).
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String>;

    /// Starts a created container. A process that cannot start is
    /// [`RuntimeError::StartFailed`](crate::RuntimeError::StartFailed), and its status then
    /// reads exited with reason `StartError`.
    async fn start_container(&self, container_id: &str) -> Result<()>;

    /// Sends SIGTERM, then SIGKILL once `grace` has passed; returns when it has exited.
    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()>;

    /// Removes a stopped container. Idempotent.
    async fn remove_container(&self, container_id: &str) -> Result<()>;

    /// State, exit code, reason and times of one container.
    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus>;

    /// Containers this agent created, all or those of one sandbox.
    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerSummary>>;

    /// Runs `command` inside a running container (exec probes); a command still running
    /// at `timeout` is killed and reported as [`RuntimeError::Timeout`](crate::RuntimeError::Timeout).
    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput>;

    /// Starts `spec.command` inside a running container with its stdio streamed
    /// (`kubectl exec`); the session's output ends with the exit. Backends that run
    /// nothing answer [`RuntimeError::Unsupported`](crate::RuntimeError::Unsupported).
    async fn exec(&self, _container_id: &str, _spec: &ExecSpec) -> Result<ExecSession> {
        Err(crate::RuntimeError::Unsupported {
            operation: "Exec",
            backend: self.backend(),
        })
    }

    /// Attaches to the stdio of a running container's own process (`kubectl attach`):
    /// its output from now on, and its stdin where it was started with one; the
    /// session's output ends with an exit (code 0) when the container ends. Backends
    /// that run nothing answer [`RuntimeError::Unsupported`](crate::RuntimeError::Unsupported).
    async fn attach(&self, _container_id: &str, _spec: &AttachSpec) -> Result<ExecSession> {
        Err(crate::RuntimeError::Unsupported {
            operation: "Attach",
            backend: self.backend(),
        })
    }

    /// Opens one TCP connection to `port` in the network namespace of a ready sandbox
    /// (`kubectl port-forward`). A connection that cannot be made is an error here or
    /// the session's one failure event (`crate::port_forward`). Backends that run
    /// nothing answer [`RuntimeError::Unsupported`](crate::RuntimeError::Unsupported).
    async fn port_forward(&self, _sandbox_id: &str, _port: u16) -> Result<PortForwardSession> {
        Err(crate::RuntimeError::Unsupported {
            operation: "PortForward",
            backend: self.backend(),
        })
    }

    /// Every image the runtime holds. Backends without images of their own list none.
    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        Ok(Vec::new())
    }

    /// The ids and names of the images any container of the runtime was made from (whoever
    /// made it: agents may share a runtime), for image garbage collection.
    async fn images_in_use(&self) -> Result<std::collections::HashSet<String>> {
        Ok(std::collections::HashSet::new())
    }

    /// How full the filesystem holding the images is; `None` where there is none to watch.
    async fn image_fs_usage(&self) -> Result<Option<FsUsage>> {
        Ok(None)
    }

    /// Removes an image (by id or name). Idempotent.
    async fn remove_image(&self, _image: &str) -> Result<()> {
        Err(crate::RuntimeError::Unsupported {
            operation: "RemoveImage",
            backend: self.backend(),
        })
    }

    /// The node's pod CIDR, for the runtime's pod network (CRI UpdateRuntimeConfig: a CNI
    /// conf template gets it). Backends without a pod network ignore it.
    async fn update_pod_cidr(&self, _cidr: &str) -> Result<()> {
        Ok(())
    }

    /// Cumulative CPU time and current memory working set of every running container
    /// this agent created, for `rafter top`. Backends that run nothing (hollow) measure
    /// nothing and return an empty list.
    async fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        Ok(Vec::new())
    }

    /// Makes the container's log writer open its log path afresh, after the agent moved
    /// the file aside (log rotation; CRI `ReopenContainerLog`). A container that is not
    /// running has no writer: an error the caller may ignore.
    async fn reopen_container_log(&self, _container_id: &str) -> Result<()> {
        Ok(())
    }

    /// The absolute path of the container's CRI-format log file.
    async fn log_path(&self, container_id: &str) -> Result<PathBuf> {
        Ok(self.container_status(container_id).await?.log_path)
    }
}
