//! What a runtime reports back: [`Sandbox`], [`ContainerStatus`], [`ExecOutput`],
//! [`ImageInfo`], [`RuntimeVersion`], all backend-neutral.
//!
//! Owns the shape of observed state and the exit-reason vocabulary (`Completed`, `Error`,
//! `OOMKilled`, `StartError`). It must not turn these into API `PodStatus` objects; that
//! is the agent's status manager's job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::spec::{LABEL_CONTAINER_NAME, LABEL_POD_UID};

/// Exit reason of a container that exited 0.
pub const REASON_COMPLETED: &str = "Completed";
/// Exit reason of a container that exited non-zero.
pub const REASON_ERROR: &str = "Error";
/// Exit reason of a container killed by the cgroup OOM killer.
pub const REASON_OOM_KILLED: &str = "OOMKilled";
/// Exit reason of a container whose process never started.
pub const REASON_START_ERROR: &str = "StartError";

/// Whether a sandbox can still run containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    /// Running; containers can be created in it.
    Ready,
    /// Stopped or broken; remove it and make a new attempt.
    NotReady,
}

/// An existing pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Runtime id.
    pub id: String,
    /// Pod uid (from metadata or the [`LABEL_POD_UID`] label).
    pub pod_uid: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Attempt number it was created with.
    pub attempt: u32,
    /// Ready or not.
    pub state: SandboxState,
    /// The pod IP, when the runtime has networking and the sandbox is ready.
    pub ip: Option<String>,
    /// When it was created.
    pub created_at: SystemTime,
    /// All its labels, including the `io.rafter.*` ones.
    pub labels: BTreeMap<String, String>,
}

/// The lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started (or starting).
    Created,
    /// Its process runs.
    Running,
    /// Its process exited (or never started: reason `StartError`).
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// Everything the agent needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Runtime id.
    pub id: String,
    /// Name in the pod spec.
    pub name: String,
    /// Restart count it was created with.
    pub attempt: u32,
    /// The image reference it was created from.
    pub image: String,
    /// The resolved image id (digest), when the backend has one.
    pub image_id: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Exit code, once exited.
    pub exit_code: Option<i32>,
    /// CamelCase reason (`Completed`, `Error`, `OOMKilled`, `StartError`), may be empty.
    pub reason: String,
    /// Human-readable detail, may be empty.
    pub message: String,
    /// When it was created.
    pub created_at: SystemTime,
    /// When its process started.
    pub started_at: Option<SystemTime>,
    /// When its process exited.
    pub finished_at: Option<SystemTime>,
    /// Absolute path of its CRI-format log file.
    pub log_path: PathBuf,
    /// All its labels, including the `io.rafter.*` ones.
    pub labels: BTreeMap<String, String>,
}

impl ContainerStatus {
    /// The pod uid label, used to adopt containers after an agent restart.
    pub fn pod_uid(&self) -> Option<&str> {
        self.labels.get(LABEL_POD_UID).map(String::as_str)
    }
}

/// A container as listed (cheap; ask [`ContainerStatus`] for exit details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Runtime id.
    pub id: String,
    /// Id of its sandbox.
    pub sandbox_id: String,
    /// Name in the pod spec.
    pub name: String,
    /// Restart count it was created with.
    pub attempt: u32,
    /// Lifecycle state.
    pub state: ContainerState,
    /// When it was created.
    pub created_at: SystemTime,
    /// All its labels, including the `io.rafter.*` ones.
    pub labels: BTreeMap<String, String>,
}

impl ContainerSummary {
    /// The pod uid label, used to adopt containers after an agent restart.
    pub fn pod_uid(&self) -> Option<&str> {
        self.labels.get(LABEL_POD_UID).map(String::as_str)
    }

    /// The container name label (falls back to the runtime's metadata name).
    pub fn container_name(&self) -> &str {
        self.labels
            .get(LABEL_CONTAINER_NAME)
            .map(String::as_str)
            .unwrap_or(&self.name)
    }
}

/// What an exec (probe) printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i32,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
}

/// An image present on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (config digest, `sha256:...`), or the name where there is none.
    pub id: String,
    /// Names it is known by (`docker.io/local/busybox:1`).
    pub repo_tags: Vec<String>,
    /// Size in bytes (0 when unknown).
    pub size: u64,
    /// The runtime keeps it whatever happens (never garbage-collected).
    pub pinned: bool,
}

/// Name and version of the runtime, for `nodeInfo.containerRuntimeVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// e.g. `containerd`, `rafter-process`, `rafter-hollow`.
    pub runtime_name: String,
    /// e.g. `1.6.20~ds1`.
    pub runtime_version: String,
    /// The API version spoken, e.g. `v1` for CRI.
    pub api_version: String,
}

impl RuntimeVersion {
    /// A backend built into Rafter, `name`, at this crate's version.
    pub(crate) fn built_in(name: &str) -> Self {
        RuntimeVersion {
            runtime_name: name.to_owned(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: "v1".to_owned(),
        }
    }
}

impl RuntimeVersion {
    /// The `nodeInfo.containerRuntimeVersion` form: `containerd://1.6.20`.
    pub fn node_info(&self) -> String {
        format!("{}://{}", self.runtime_name, self.runtime_version)
    }
}

/// The exit reason for a process that exited with `code` (not OOM, not a start failure).
pub fn exit_reason(code: i32) -> &'static str {
    if code == 0 {
        REASON_COMPLETED
    } else {
        REASON_ERROR
    }
}
