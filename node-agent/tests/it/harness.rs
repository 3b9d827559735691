//! Shared fixtures: the backends under test, a throwaway pod, and waiting on conditions
//! with a deadline (never sleeping to synchronise).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use node_agent::{
    ContainerConfig, ContainerRuntime, ContainerState, ContainerStatus, ContainerdConfig,
    ContainerdRuntime, ProcessConfig, ProcessRuntime, Sandbox, SandboxConfig,
};

/// Image every lifecycle test runs (imported by scripts/containerd-setup.sh; known to the
/// process backend by default).
pub const BUSYBOX: &str = "docker.io/local/busybox:1";
/// Namespace of every test pod (so leftovers can be found).
pub const TEST_NAMESPACE: &str = "rafter-test";
/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How long a deleted pod may take to go: containerd has been seen (in CI) to hold a
/// StopContainer for 30 s when it raced an exec probe's ExecSync on the same container, and
/// the agent deletes the pod object only once its containers are stopped.
pub const DELETION_DEADLINE: Duration = Duration::from_secs(90);

pub type Runtime = Arc<dyn ContainerRuntime>;

/// Sends the agent's log lines to the test's captured output, so a failing test shows
/// what the agent did (`RUST_LOG` overrides the default of info for the agent).
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,node_agent=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub fn process() -> Runtime {
    capture_logs();
    Arc::new(ProcessRuntime::new(ProcessConfig::default()))
}

/// The containerd backend when `RAFTER_CONTAINERD_SOCK` is set; `None` (with a notice)
/// when it is not. A socket that is set but does not answer fails the test: CI sets the
/// variable only after starting containerd, so silence would hide a broken setup.
pub async fn containerd() -> Option<Arc<ContainerdRuntime>> {
    capture_logs();
    let Some(sock) = std::env::var_os("RAFTER_CONTAINERD_SOCK") else {
        println!(
            "SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set; run \
             `export RAFTER_CONTAINERD_SOCK=$(scripts/containerd-setup.sh /tmp/rafter-containerd | tail -1)`"
        );
        return None;
    };
    let rt = ContainerdRuntime::connect(ContainerdConfig::new(PathBuf::from(&sock)))
        .await
        .unwrap_or_else(|e| panic!("RAFTER_CONTAINERD_SOCK={sock:?} does not answer: {e}"));
    Some(Arc::new(rt))
}

/// A unique pod (uid, name) with its own log directory; removed by [`TestPod::cleanup`],
/// or on drop when a failing test skipped that (containerd pods outlive the test process
/// otherwise; the process backend kills its processes when dropped).
pub struct TestPod {
    pub config: SandboxConfig,
    pub sandbox: Sandbox,
    containerd_sock: Option<std::ffi::OsString>,
    cleaned: bool,
    _logs: tempfile::TempDir,
}

impl Drop for TestPod {
    fn drop(&mut self) {
        let Some(sock) = self.containerd_sock.clone().filter(|_| !self.cleaned) else {
            return;
        };
        let id = self.sandbox.id.clone();
        // The test's own runtime no longer runs here (we may be unwinding out of it), so
        // a fresh client on a fresh runtime in its own thread removes the pod.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = ContainerdRuntime::new(ContainerdConfig::new(sock)).unwrap();
                let _ = client.stop_sandbox(&id).await;
                let _ = client.remove_sandbox(&id).await;
            });
        })
        .join();
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

pub fn sandbox_config(test: &str, log_dir: PathBuf) -> SandboxConfig {
    let name = unique(&test.replace('_', "-").chars().take(30).collect::<String>());
    SandboxConfig {
        pod_uid: unique("uid"),
        pod_name: name.clone(),
        namespace: TEST_NAMESPACE.into(),
        attempt: 0,
        hostname: "testpod".into(),
        log_dir,
        host_network: false,
        labels: BTreeMap::from([("test".to_string(), test.to_string())]),
        dns: None,
    }
}

impl TestPod {
    pub async fn start(rt: &Runtime, test: &str) -> TestPod {
        let logs = tempfile::tempdir().unwrap();
        let config = sandbox_config(test, logs.path().join("pod"));
        TestPod::start_with(rt, config, logs).await
    }

    /// Runs a sandbox of `config`, whose log dir lies inside `logs`.
    pub async fn start_with(
        rt: &Runtime,
        config: SandboxConfig,
        logs: tempfile::TempDir,
    ) -> TestPod {
        let sandbox = rt.run_sandbox(&config).await.unwrap();
        let containerd_sock = (rt.backend() == "containerd")
            .then(|| std::env::var_os("RAFTER_CONTAINERD_SOCK"))
            .flatten();
        TestPod {
            config,
            sandbox,
            containerd_sock,
            cleaned: false,
            _logs: logs,
        }
    }

    /// Creates and starts a container running `command` in busybox.
    pub async fn run(&self, rt: &Runtime, config: ContainerConfig) -> String {
        let id = rt
            .create_container(&self.sandbox.id, &config, &self.config)
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        id
    }

    pub async fn cleanup(mut self, rt: &Runtime) {
        rt.stop_sandbox(&self.sandbox.id).await.unwrap();
        rt.remove_sandbox(&self.sandbox.id).await.unwrap();
        self.cleaned = true;
    }
}

pub fn shell(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: BUSYBOX.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..ContainerConfig::default()
    }
}

/// Polls `check` until it yields `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, || what.to_owned(), check).await
}

/// Polls `check` until it yields `Some`, failing after `deadline` with the message `what`
/// gives at that moment (so it can name the last thing seen).
pub async fn eventually_within<T, W, F, Fut>(deadline: Duration, what: W, mut check: F) -> T
where
    W: Fn() -> String,
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out waiting for {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_state(rt: &Runtime, id: &str, state: ContainerState) -> ContainerStatus {
    eventually(&format!("container {id} to be {state:?}"), || async {
        let st = rt.container_status(id).await.unwrap();
        (st.state == state).then_some(st)
    })
    .await
}

/// The messages of the container's log, once `pred` holds for them.
pub async fn wait_log(rt: &Runtime, id: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let path = rt.log_path(id).await.unwrap();
    eventually(&format!("log {} to match", path.display()), || async {
        let bytes = tokio::fs::read(&path).await.ok()?;
        let lines: Vec<String> = node_agent::log_messages(&bytes)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        pred(&lines).then_some(lines)
    })
    .await
}

/// Whether `ip` lies in the network `cidr`.
pub fn in_cidr(ip: &str, cidr: &str) -> bool {
    rafter_proto::Ipv4Cidr::parse(cidr)
        .unwrap()
        .contains(ip.parse().unwrap())
}

/// A containerd a test started with a CNI conf template (its pod network takes the first
/// pod CIDR an agent tells it) on bridge `bridge`, in network namespace `netns` if given;
/// killed, with its bridge removed, when dropped.
pub struct PrivateContainerd {
    dir: tempfile::TempDir,
    bridge: String,
}

impl PrivateContainerd {
    /// Starts it; returns it and its socket.
    pub fn start(bridge: &str, netns: Option<&str>) -> (PrivateContainerd, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd-setup.sh");
        let mut command = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("bash");
                c
            }
            None => std::process::Command::new("bash"),
        };
        let out = command
            .arg(&script)
            .arg(dir.path())
            .env("RAFTER_CNI_TEMPLATE", "1")
            .env("RAFTER_CNI_BRIDGE", bridge)
            .output()
            .unwrap();
        let guard = PrivateContainerd {
            dir,
            bridge: bridge.to_owned(),
        };
        assert!(
            out.status.success(),
            "containerd-setup.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_owned();
        (guard, PathBuf::from(sock))
    }
}

impl PrivateContainerd {
    /// Its registry `config_path`, where `hosts.toml` files per registry go.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The image archives the setup script built (busybox.tar, pause.tar).
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("containerd.pid"));
        if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}
