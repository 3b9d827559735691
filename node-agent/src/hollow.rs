//! [`HollowRuntime`]: a runtime that runs nothing, for scale tests with thousands of
//! simulated nodes in one process.
//!
//! A started container reports `Created` until `start_delay` has passed and `Running`
//! after; it never exits unless [`HollowRuntime::exit_container`] says so, or it is
//! stopped (exit 143, reason `Error`, as a real process killed by SIGTERM). Sandboxes get
//! made-up IPs from `ip_prefix` (distinct per sandbox, not routable). Exec always
//! answers `exec_exit_code`. No log file is written; `log_path` names where it would be.
//!
//! Owns only in-memory records: no processes, no files, no timers (states are computed
//! from timestamps when asked), so a hollow node costs a few hundred bytes per pod.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Result, RuntimeError};
use crate::image::{listed_image, normalize_image, require_image};
use crate::pull_secrets::PullAuth;
use crate::runtime::ContainerRuntime;
use crate::spec::{ContainerConfig, SandboxConfig};
use crate::status::{
    exit_reason, ContainerState, ContainerStatus, ContainerSummary, ExecOutput, ImageInfo,
    RuntimeVersion, Sandbox, SandboxState,
};

/// Exit code of a hollow container that was stopped (SIGTERM).
const STOPPED_EXIT_CODE: i32 = 143;

/// Settings of the hollow backend.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// How long a started container stays `Created` before it reports `Running`.
    pub start_delay: Duration,
    /// First three octets of the made-up pod IPs (`10.244.0` → `10.244.0.1` ...; the
    /// counter carries into the third octet past 254).
    pub ip_prefix: [u8; 2],
    /// Exit code of every exec (probe).
    pub exec_exit_code: i32,
    /// Image names reported missing (to test ErrImagePull at scale); all others exist.
    pub missing_images: Vec<String>,
}

impl Default for HollowConfig {
    fn default() -> Self {
        HollowConfig {
            start_delay: Duration::from_millis(100),
            ip_prefix: [10, 244],
            exec_exit_code: 0,
            missing_images: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct HollowSandbox {
    config: SandboxConfig,
    state: SandboxState,
    ip: String,
    created_at: SystemTime,
}

#[derive(Debug)]
struct HollowContainer {
    sandbox_id: String,
    config: ContainerConfig,
    labels: BTreeMap<String, String>,
    log_path: PathBuf,
    created_at: SystemTime,
    start_requested: Option<SystemTime>,
    exit: Option<(i32, SystemTime)>,
}

#[derive(Debug, Default)]
struct State {
    sandboxes: HashMap<String, HollowSandbox>,
    containers: HashMap<String, HollowContainer>,
}

/// The hollow backend. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct HollowRuntime {
    config: Arc<HollowConfig>,
    missing: Arc<HashSet<String>>,
    state: Arc<Mutex<State>>,
    next: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
}

impl HollowRuntime {
    /// An empty hollow node.
    pub fn new(config: HollowConfig) -> HollowRuntime {
        let missing = config
            .missing_images
            .iter()
            .map(|i| normalize_image(i))
            .collect();
        HollowRuntime {
            config: Arc::new(config),
            missing: Arc::new(missing),
            state: Arc::new(Mutex::new(State::default())),
            next: Arc::new(AtomicU64::new(1)),
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Makes a running hollow container exit with `code` (to test restarts).
    pub fn exit_container(&self, container_id: &str, code: i32) -> Result<()> {
        let mut state = self.lock();
        let c = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        if c.exit.is_none() {
            c.exit = Some((code, SystemTime::now()));
        }
        Ok(())
    }

    /// How many status and listing calls (sandboxes and containers) it has answered: what
    /// looking at the node costs a real runtime.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn state_of(&self, c: &HollowContainer, now: SystemTime) -> ContainerState {
        match (c.exit, c.start_requested) {
            (Some(_), _) => ContainerState::Exited,
            (None, Some(at)) if now >= at + self.config.start_delay => ContainerState::Running,
            _ => ContainerState::Created,
        }
    }
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn sandbox_view(id: &str, s: &HollowSandbox) -> Sandbox {
    Sandbox {
        id: id.to_owned(),
        pod_uid: s.config.pod_uid.clone(),
        pod_name: s.config.pod_name.clone(),
        namespace: s.config.namespace.clone(),
        attempt: s.config.attempt,
        state: s.state,
        ip: (s.state == SandboxState::Ready).then(|| s.ip.clone()),
        created_at: s.created_at,
        labels: s.config.identity_labels(),
    }
}

#[async_trait]
impl ContainerRuntime for HollowRuntime {
    fn backend(&self) -> &'static str {
        "hollow"
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        Ok(RuntimeVersion::built_in("rafter-hollow"))
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(listed_image(image, |name| !self.missing.contains(name)))
    }

    async fn ensure_image(&self, image: &str) -> Result<ImageInfo> {
        require_image(
            image,
            self.image_status(image).await?,
            "configured as missing on this hollow node",
        )
    }

    async fn pull_image(&self, image: &str, _auth: Option<&PullAuth>) -> Result<ImageInfo> {
        require_image(
            image,
            self.image_status(image).await?,
            "the hollow runtime cannot pull from registries; only imported images run",
        )
    }

    async fn import_image(&self, _tarball: &Path) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox> {
        let n = self.next();
        let [a, b] = self.config.ip_prefix;
        let ip = format!("{a}.{b}.{}.{}", (n / 254) % 256, n % 254 + 1);
        let id = format!("hollow-sb-{n}");
        let sb = HollowSandbox {
            config: config.clone(),
            state: SandboxState::Ready,
            ip,
            created_at: SystemTime::now(),
        };
        let view = sandbox_view(&id, &sb);
        self.lock().sandboxes.insert(id, sb);
        Ok(view)
    }

    async fn sandbox_status(&self, sandbox_id: &str) -> Result<Sandbox> {
        self.read();
        let state = self.lock();
        let sb = state
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| not_found("sandbox", sandbox_id))?;
        Ok(sandbox_view(sandbox_id, sb))
    }

    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut state = self.lock();
        let now = SystemTime::now();
        if let Some(sb) = state.sandboxes.get_mut(sandbox_id) {
            sb.state = SandboxState::NotReady;
        }
        for c in state.containers.values_mut() {
            if c.sandbox_id == sandbox_id && c.exit.is_none() && c.start_requested.is_some() {
                c.exit = Some((STOPPED_EXIT_CODE, now));
            }
        }
        Ok(())
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let mut state = self.lock();
        state.sandboxes.remove(sandbox_id);
        state.containers.retain(|_, c| c.sandbox_id != sandbox_id);
        Ok(())
    }

    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        self.read();
        let state = self.lock();
        Ok(state
            .sandboxes
            .iter()
            .map(|(id, sb)| sandbox_view(id, sb))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String> {
        self.ensure_image(&config.image).await?;
        let id = format!("hollow-ctr-{}", self.next());
        let mut state = self.lock();
        if !state.sandboxes.contains_key(sandbox_id) {
            return Err(not_found("sandbox", sandbox_id));
        }
        state.containers.insert(
            id.clone(),
            HollowContainer {
                sandbox_id: sandbox_id.to_owned(),
                labels: config.identity_labels(sandbox),
                log_path: sandbox.log_path(&config.name, config.attempt),
                config: config.clone(),
                created_at: SystemTime::now(),
                start_requested: None,
                exit: None,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let mut state = self.lock();
        let c = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        c.start_requested.get_or_insert_with(SystemTime::now);
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, _grace: Duration) -> Result<()> {
        let mut state = self.lock();
        if let Some(c) = state.containers.get_mut(container_id) {
            if c.exit.is_none() {
                c.exit = Some((STOPPED_EXIT_CODE, SystemTime::now()));
            }
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        self.lock().containers.remove(container_id);
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        self.read();
        let state = self.lock();
        let c = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let now = SystemTime::now();
        let st = self.state_of(c, now);
        let started_at = match st {
            ContainerState::Running | ContainerState::Exited => {
                c.start_requested.map(|at| at + self.config.start_delay)
            }
            _ => None,
        };
        Ok(ContainerStatus {
            id: container_id.to_owned(),
            name: c.config.name.clone(),
            attempt: c.config.attempt,
            image: c.config.image.clone(),
            image_id: normalize_image(&c.config.image),
            state: st,
            exit_code: c.exit.map(|(code, _)| code),
            reason: c
                .exit
                .map(|(code, _)| exit_reason(code).to_owned())
                .unwrap_or_default(),
            message: String::new(),
            created_at: c.created_at,
            started_at,
            finished_at: c.exit.map(|(_, at)| at),
            log_path: c.log_path.clone(),
            labels: c.labels.clone(),
        })
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerSummary>> {
        self.read();
        let state = self.lock();
        let now = SystemTime::now();
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| sandbox_id.is_none_or(|s| s == c.sandbox_id))
            .map(|(id, c)| ContainerSummary {
                id: id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                name: c.config.name.clone(),
                attempt: c.config.attempt,
                state: self.state_of(c, now),
                created_at: c.created_at,
                labels: c.labels.clone(),
            })
            .collect())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput> {
        let state = self.lock();
        if !state.containers.contains_key(container_id) {
            return Err(not_found("container", container_id));
        }
        Ok(ExecOutput {
            exit_code: self.config.exec_exit_code,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> SandboxConfig {
        SandboxConfig {
            pod_uid: "u".into(),
            pod_name: "p".into(),
            namespace: "default".into(),
            attempt: 0,
            hostname: "p".into(),
            log_dir: PathBuf::from("/nonexistent"),
            host_network: false,
            labels: BTreeMap::new(),
            dns: None,
        }
    }

    #[tokio::test]
    async fn a_hollow_container_runs_after_its_delay_and_exits_only_when_told() {
        let rt = HollowRuntime::new(HollowConfig {
            start_delay: Duration::ZERO,
            ..HollowConfig::default()
        });
        let sb = rt.run_sandbox(&sandbox()).await.unwrap();
        let cfg = ContainerConfig {
            name: "c".into(),
            image: "busybox".into(),
            ..ContainerConfig::default()
        };
        let id = rt.create_container(&sb.id, &cfg, &sandbox()).await.unwrap();
        assert_eq!(
            rt.container_status(&id).await.unwrap().state,
            ContainerState::Created
        );
        rt.start_container(&id).await.unwrap();
        assert_eq!(
            rt.container_status(&id).await.unwrap().state,
            ContainerState::Running
        );
        rt.exit_container(&id, 3).unwrap();
        let st = rt.container_status(&id).await.unwrap();
        assert_eq!(
            (st.state, st.exit_code, st.reason.as_str()),
            (ContainerState::Exited, Some(3), "Error")
        );
    }

    #[tokio::test]
    async fn hollow_sandboxes_get_distinct_ips_and_missing_images_fail() {
        let rt = HollowRuntime::new(HollowConfig {
            missing_images: vec!["nope:1".into()],
            ..HollowConfig::default()
        });
        let a = rt.run_sandbox(&sandbox()).await.unwrap();
        let b = rt.run_sandbox(&sandbox()).await.unwrap();
        assert_ne!(a.ip, b.ip);
        let err = rt
            .ensure_image("docker.io/library/nope:1")
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::ImageNotFound { .. }));
    }
}
