//! # Layout
//!
//! The kubelet role of Rafter. This first layer is the container runtimes: everything
//! the agent will use to run a pod's containers, with no API server involved.
//!
//! ```text
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
//! | `runtime` | the [`ContainerRuntime`] trait: the contract every backend keeps |
//! | `spec` | [`SandboxConfig`] / [`ContainerConfig`] and their translation from the API types |
//! | `status` | [`Sandbox`], [`ContainerStatus`], exit reasons, images, versions |
//! | `error` | [`RuntimeError`] with `is_retryable()` |
//! | `containerd` | [`ContainerdRuntime`]: the real backend over CRI |
//! | `process` | [`ProcessRuntime`]: host processes, for machines without containerd |
//! | `hollow` | [`HollowRuntime`]: no processes, for scale tests |
//! | `cri_log` | the CRI log line format (write and parse) |
//! | `image` | image name normalisation and OCI tarball names |
//!
//! This crate must not talk to the API server yet, and the runtimes must not hold pod
//! policy (restart back-off, probes, phase): they run what they are told and report what
//! they see. No backend blocks an async thread: file work that may block runs in
//! `spawn_blocking`, processes through `tokio::process`.

mod containerd;
mod cri_log;
mod error;
mod hollow;
mod image;
mod process;
mod runtime;
mod spec;
mod status;

pub use containerd::{ContainerdConfig, ContainerdRuntime};
pub use cri_log::{encode_line, messages as log_messages, parse_line, LogRecord, LogStream};
pub use error::{Result, RuntimeError};
pub use hollow::{HollowConfig, HollowRuntime};
pub use image::normalize_image;
pub use process::{ProcessConfig, ProcessRuntime};
pub use runtime::ContainerRuntime;
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
