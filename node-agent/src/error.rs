//! [`RuntimeError`]: what can go wrong talking to a container runtime, classified so the
//! agent can act on it (retry, report `ErrImagePull`, report `StartError`, give up).
//!
//! Owns the classification of backend failures (gRPC statuses, spawn errors) into
//! variants; it must not decide policy (back-off, pod status), which is the agent's.

use std::path::PathBuf;

/// A failure of a [`ContainerRuntime`](crate::ContainerRuntime) call.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not present on the node and cannot be obtained; the agent reports
    /// `ErrImagePull` / `ImagePullBackOff`.
    #[error("image {image:?} not found: {message}")]
    ImageNotFound {
        /// The image reference as asked for.
        image: String,
        /// Why, as the backend said it.
        message: String,
    },
    /// The registry refused or failed the pull (unauthorized, no such image or tag, an
    /// untrusted certificate, unreachable); the agent reports `ErrImagePull` with the
    /// message, and tries again after a back-off.
    #[error("pulling image {image:?} failed: {message}")]
    PullFailed {
        /// The image reference as asked for.
        image: String,
        /// The runtime's message, carrying the registry's reason.
        message: String,
    },
    /// A sandbox or container with this id does not exist (any more).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `"sandbox"` or `"container"`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The sandbox or container name is still reserved by an earlier attempt; retry with
    /// a higher attempt number or after removing the old one.
    #[error("name {name:?} is already in use: {message}")]
    NameInUse {
        /// The name the runtime refused.
        name: String,
        /// The backend's message.
        message: String,
    },
    /// The container was created but its process could not be started (binary missing,
    /// bad working dir ...); its status reads exited with reason `StartError`.
    #[error("container {id:?} failed to start: {message}")]
    StartFailed {
        /// The container id.
        id: String,
        /// The backend's message (e.g. `exec: "/nope": no such file or directory`).
        message: String,
    },
    /// The pod or container spec cannot be expressed to this runtime (bad quantity,
    /// empty command on the process backend ...). Retrying does not help.
    #[error("invalid {field}: {message}")]
    InvalidSpec {
        /// Field path, e.g. `spec.containers[0].resources.limits.memory`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The runtime cannot be reached (socket missing, containerd down); retry later.
    #[error("runtime unavailable: {message}")]
    Unavailable {
        /// Connection error text.
        message: String,
    },
    /// A call did not finish in time.
    #[error("{operation} timed out after {seconds} s")]
    Timeout {
        /// The call, e.g. `StopContainer`.
        operation: &'static str,
        /// The deadline that passed.
        seconds: u64,
    },
    /// Any other error the runtime answered with.
    #[error("{operation} failed ({code}): {message}")]
    Rpc {
        /// The call, e.g. `CreateContainer`.
        operation: &'static str,
        /// The gRPC status code name (`Internal`, `Unknown` ...).
        code: String,
        /// The runtime's message.
        message: String,
        /// True for codes that are worth retrying (Unavailable, DeadlineExceeded,
        /// ResourceExhausted, Aborted).
        retryable: bool,
    },
    /// Local file or process I/O failed (log files, state dir, spawning `ctr`).
    #[error("{context} {path:?}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path involved (may be empty).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The backend does not implement this operation.
    #[error("{operation} is not supported by the {backend} runtime")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The backend name.
        backend: &'static str,
    },
}

impl RuntimeError {
    /// True when the same call may succeed later without any change to the request.
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Unavailable { .. }
            | RuntimeError::Timeout { .. }
            | RuntimeError::NameInUse { .. } => true,
            RuntimeError::Rpc { retryable, .. } => *retryable,
            RuntimeError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            ),
            RuntimeError::ImageNotFound { .. }
            | RuntimeError::PullFailed { .. }
            | RuntimeError::NotFound { .. }
            | RuntimeError::StartFailed { .. }
            | RuntimeError::InvalidSpec { .. }
            | RuntimeError::Unsupported { .. } => false,
        }
    }

    /// True for [`RuntimeError::NotFound`] (an already removed object is often fine).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results of runtime calls.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
