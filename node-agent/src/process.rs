//! [`ProcessRuntime`]: runs each container's command as a plain host process, for
//! machines without containerd.
//!
//! ```text
//!  create_container ─► record (config, log path)
//!  start_container  ─► spawn `command + args` in a new process group (setsid-like:
//!                      process_group(0)), env cleared then set, working dir
//!                      ├─ stdout reader ─┐
//!                      ├─ stderr reader ─┴─► <log_dir>/<name>/<attempt>.log (CRI format;
//!                      │                     reopen_container_log swaps the file after rotation)
//!                      └─ waiter ─► exit code / signal → status (Completed | Error)
//!  stop_container   ─► SIGTERM to the group, SIGKILL to the group after the grace period
//!  attach           ─► the output pumps' lines as they are logged, from now on (and the
//!                      process's stdin pipe when the container has `stdin`)
//!  port_forward     ─► a TCP connection to <host ip>:port (the pods share the host's
//!                      network)
//! ```
//!
//! Attaching sees output line by line (a partial line shows when its newline comes, as
//! in the log), and `tty` is not given to a container's own process (it gets pipes);
//! with `stdinOnce`, stdin is closed when the first attached client that sent some
//! closes it or detaches.
//!
//! **What this backend does not isolate — by design, it is a fallback:**
//! - no networking: every sandbox's IP is the host IP (`127.0.0.1` by default), so two
//!   pods listening on one port collide;
//! - no filesystem: the image is only a name checked against the imported list; the
//!   command runs from the host's filesystem (`sh` is the host's), and mounts are ignored;
//! - no cgroups: memory and CPU limits are not enforced, so `OOMKilled` never appears;
//!   usage for `rafter top` is read from `/proc` per process group (CPU time of the live
//!   members and of the children they reaped, and their RSS as the working set);
//! - capabilities are ignored; `runAsUser`/`runAsGroup` are applied only when the agent
//!   runs as root (otherwise asking for another user is an error).
//!
//! Owns child processes, their log files and their in-memory records. Records are not
//! persisted, so a restarted agent cannot adopt what its predecessor ran (exit codes of
//! non-children are unknowable); with `state_dir` set, each running container's process
//! group is noted on disk and [`ProcessRuntime::reap_orphans`] kills those a crashed
//! agent left behind, after which the agent simply starts the pods again. Dropping the
//! last handle kills every group still running. It must never signal a process group it
//! did not create (notes are checked against the process start time).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::cri_log::{encode_line, LogStream, MAX_RECORD_BYTES};
use crate::error::{Result, RuntimeError};
use crate::exec::{AttachSpec, ExecEvent, ExecInput, ExecSession, ExecSpec};
use crate::image::{listed_image, names_in_oci_tarball, normalize_image, require_image};
use crate::metrics::{process_groups, ContainerUsage};
use crate::port_forward::{tcp_session, PortForwardSession};
use crate::pull_secrets::PullAuth;
use crate::runtime::ContainerRuntime;
use crate::spec::{ContainerConfig, SandboxConfig, LABEL_POD_UID};
use crate::status::{
    exit_reason, ContainerState, ContainerStatus, ContainerSummary, ExecOutput, ImageInfo,
    RuntimeVersion, Sandbox, SandboxState, REASON_START_ERROR,
};

/// `PATH` given to every process (the environment is cleared first).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exit code reported for a container that could not start (as containerd does).
const START_ERROR_EXIT_CODE: i32 = 128;

/// Settings of the process backend.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The IP reported for every sandbox (there is no pod network).
    pub host_ip: String,
    /// Image names treated as present before any import (normalised on use).
    pub images: Vec<String>,
    /// Where to note the process group of each running container, so that
    /// [`ProcessRuntime::reap_orphans`] can kill what a crashed agent left running.
    /// `None`: no notes, no reaping.
    pub state_dir: Option<PathBuf>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            host_ip: "127.0.0.1".to_owned(),
            images: vec![
                "docker.io/local/busybox:1".to_owned(),
                "docker.io/local/pause:1".to_owned(),
            ],
            state_dir: None,
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit {
    code: i32,
    at: SystemTime,
}

#[derive(Debug)]
struct SandboxRecord {
    config: SandboxConfig,
    id: String,
    state: SandboxState,
    created_at: SystemTime,
}

#[derive(Debug)]
struct ContainerRecord {
    id: String,
    sandbox_id: String,
    config: ContainerConfig,
    labels: BTreeMap<String, String>,
    log_path: PathBuf,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    /// Process group id (= pid of the leader) while it may run.
    pgid: Option<i32>,
    /// Becomes `Some` when the process has exited.
    exit: watch::Receiver<Option<Exit>>,
    /// The log file the output pumps write to, once started (swapped on reopen).
    log: Option<Arc<tokio::sync::Mutex<tokio::fs::File>>>,
    start_error: Option<String>,
    /// What attaching clients see and write to, once started.
    attach: Option<Arc<Attachable>>,
}

/// A started container's stdio as attaching clients reach it.
#[derive(Debug)]
struct Attachable {
    /// Each line the pumps log, as stdout or stderr events.
    output: tokio::sync::broadcast::Sender<ExecEvent>,
    /// The process's stdin while open (with `stdin`).
    stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    /// `stdinOnce`: the first client's close of stdin closes it for good.
    stdin_once: bool,
}

/// How many output events wait for a slow attached client before it misses some.
const ATTACH_BACKLOG: usize = 256;

#[derive(Debug)]
struct State {
    sandboxes: HashMap<String, SandboxRecord>,
    containers: HashMap<String, ContainerRecord>,
    images: HashSet<String>,
}

/// The host-process backend. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    config: Arc<ProcessConfig>,
    state: Arc<Mutex<State>>,
    next_id: Arc<AtomicU64>,
}

impl ProcessRuntime {
    /// A runtime with no sandboxes yet.
    pub fn new(config: ProcessConfig) -> ProcessRuntime {
        let images = config.images.iter().map(|i| normalize_image(i)).collect();
        ProcessRuntime {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(State {
                sandboxes: HashMap::new(),
                containers: HashMap::new(),
                images,
            })),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id())
    }

    fn sandbox_view(&self, rec: &SandboxRecord) -> Sandbox {
        Sandbox {
            id: rec.id.clone(),
            pod_uid: rec.config.pod_uid.clone(),
            pod_name: rec.config.pod_name.clone(),
            namespace: rec.config.namespace.clone(),
            attempt: rec.config.attempt,
            state: rec.state,
            ip: (rec.state == SandboxState::Ready).then(|| self.config.host_ip.clone()),
            created_at: rec.created_at,
            labels: rec.config.identity_labels(),
        }
    }

    /// Kills a container's process group: SIGTERM, then SIGKILL after `grace`.
    async fn terminate(&self, container_id: &str, grace: Duration) -> Result<()> {
        let (pgid, mut exit) = {
            let state = self.lock();
            let rec = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            (rec.pgid, rec.exit.clone())
        };
        let Some(pgid) = pgid else {
            return Ok(());
        };
        if exit.borrow().is_some() {
            return Ok(());
        }
        signal_group(pgid, Signal::SIGTERM);
        let exited = tokio::time::timeout(grace, exit.wait_for(Option::is_some))
            .await
            .is_ok();
        if !exited {
            debug!(container_id, "grace period over; SIGKILL");
            signal_group(pgid, Signal::SIGKILL);
            // The waiter reports the exit once the kernel has reaped the leader.
            let _ = exit.wait_for(Option::is_some).await;
        }
        // Orphans of the leader that stayed in the group go too.
        signal_group(pgid, Signal::SIGKILL);
        Ok(())
    }
}

impl ProcessRuntime {
    /// Kills the process groups that a previous agent process (same `state_dir`) started
    /// and left running when it died; returns how many. The process backend does not
    /// adopt them: it cannot learn their exit codes, so the agent starts the pods again.
    /// A note whose pid now belongs to another process (pid reuse) is only discarded.
    pub async fn reap_orphans(&self) -> Result<usize> {
        let Some(dir) = self.config.state_dir.clone() else {
            return Ok(0);
        };
        let mine: HashSet<i32> = self
            .lock()
            .containers
            .values()
            .filter_map(|c| c.pgid)
            .collect();
        tokio::task::spawn_blocking(move || reap_notes(&dir, &mine))
            .await
            .map_err(|e| {
                RuntimeError::io("reaping orphans", PathBuf::new(), std::io::Error::other(e))
            })?
    }
}

/// `<pgid> <start time in clock ticks>` of a running container, in `<dir>/<id>.pgid`.
async fn write_pgid_note(dir: &Path, container_id: &str, pgid: i32) -> Option<PathBuf> {
    let start = tokio::fs::read_to_string(format!("/proc/{pgid}/stat"))
        .await
        .ok()
        .and_then(|stat| proc_start_time(&stat))?;
    let path = dir.join(format!("{container_id}.pgid"));
    let written = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&path, format!("{pgid} {start}\n")).await
    };
    match written.await {
        Ok(()) => Some(path),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "could not note container process group");
            None
        }
    }
}

/// Field 22 (starttime) of `/proc/<pid>/stat`; the command name may hold spaces.
fn proc_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn reap_notes(dir: &Path, mine: &HashSet<i32>) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(RuntimeError::io("reading state dir", dir, e)),
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pgid") {
            continue;
        }
        let note = std::fs::read_to_string(&path).unwrap_or_default();
        let mut fields = note.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(pgid)), Some(Ok(start))) = (fields.next(), fields.next()) {
            let pgid = i32::try_from(pgid).unwrap_or(0);
            if mine.contains(&pgid) {
                continue;
            }
            let alive_start = std::fs::read_to_string(format!("/proc/{pgid}/stat"))
                .ok()
                .and_then(|stat| proc_start_time(&stat));
            if alive_start == Some(start) {
                debug!(pgid, "killing orphaned container process group");
                signal_group(pgid, Signal::SIGKILL);
                reaped += 1;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    Ok(reaped)
}

fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pgid, %signal, error = %e, "could not signal process group"),
    }
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

/// Builds the command line the process backend runs for a container.
fn argv(config: &ContainerConfig) -> Result<Vec<String>> {
    let argv: Vec<String> = config
        .command
        .iter()
        .chain(config.args.iter())
        .cloned()
        .collect();
    if argv.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            field: format!("container {:?} command", config.name),
            message: "the process backend has no image entrypoint; give a command".to_owned(),
        });
    }
    Ok(argv)
}

fn build_command(config: &ContainerConfig, argv: &[String]) -> Result<tokio::process::Command> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(dir) = &config.working_dir {
        cmd.current_dir(dir);
    }
    let me = nix::unistd::geteuid().as_raw();
    if let Some(uid) = config.run_as_user {
        let uid = u32::try_from(uid).map_err(|_| RuntimeError::InvalidSpec {
            field: "securityContext.runAsUser".to_owned(),
            message: format!("{uid} is not a valid uid"),
        })?;
        if uid != me {
            if me != 0 {
                return Err(RuntimeError::InvalidSpec {
                    field: "securityContext.runAsUser".to_owned(),
                    message: format!("the agent runs as uid {me}, not root; cannot run as {uid}"),
                });
            }
            cmd.uid(uid);
        }
    }
    if let Some(gid) = config.run_as_group {
        let gid = u32::try_from(gid).map_err(|_| RuntimeError::InvalidSpec {
            field: "securityContext.runAsGroup".to_owned(),
            message: format!("{gid} is not a valid gid"),
        })?;
        if me == 0 {
            cmd.gid(gid);
        }
    }
    Ok(cmd)
}

/// Copies one output stream into the shared log file, line by line, in CRI format, and
/// to attached clients.
async fn pump<R>(
    reader: R,
    stream: LogStream,
    log: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    attached: tokio::sync::broadcast::Sender<ExecEvent>,
) where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_RECORD_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .await;
        match read {
            Ok(0) => return,
            Ok(_) => {
                let complete = buf.last() == Some(&b'\n');
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let record = encode_line(SystemTime::now(), stream, line, complete);
                {
                    let mut file = log.lock().await;
                    if let Err(e) = file.write_all(&record).await {
                        warn!(error = %e, "container log write failed");
                        return;
                    }
                }
                // No client attached is no error.
                let _ = attached.send(match stream {
                    LogStream::Stderr => ExecEvent::Stderr(buf.clone()),
                    _ => ExecEvent::Stdout(buf.clone()),
                });
            }
            Err(e) => {
                debug!(error = %e, "container output closed");
                return;
            }
        }
    }
}

#[async_trait]
impl ContainerRuntime for ProcessRuntime {
    fn backend(&self) -> &'static str {
        "process"
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        Ok(RuntimeVersion::built_in("rafter-process"))
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(listed_image(image, |name| {
            self.lock().images.contains(name)
        }))
    }

    async fn ensure_image(&self, image: &str) -> Result<ImageInfo> {
        require_image(
            image,
            self.image_status(image).await?,
            "not imported on this node (process runtime)",
        )
    }

    async fn pull_image(&self, image: &str, _auth: Option<&PullAuth>) -> Result<ImageInfo> {
        require_image(
            image,
            self.image_status(image).await?,
            "the process runtime cannot pull from registries; only imported images run",
        )
    }

    async fn import_image(&self, tarball: &Path) -> Result<Vec<String>> {
        let path = tarball.to_owned();
        let names = tokio::task::spawn_blocking(move || names_in_oci_tarball(&path))
            .await
            .map_err(|e| {
                RuntimeError::io("reading OCI tarball", tarball, std::io::Error::other(e))
            })??;
        self.lock().images.extend(names.iter().cloned());
        Ok(names)
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox> {
        tokio::fs::create_dir_all(&config.log_dir)
            .await
            .map_err(|e| RuntimeError::io("creating log dir", &config.log_dir, e))?;
        let rec = SandboxRecord {
            id: self.new_id("sb"),
            config: config.clone(),
            state: SandboxState::Ready,
            created_at: SystemTime::now(),
        };
        let view = self.sandbox_view(&rec);
        self.lock().sandboxes.insert(rec.id.clone(), rec);
        Ok(view)
    }

    async fn sandbox_status(&self, sandbox_id: &str) -> Result<Sandbox> {
        let state = self.lock();
        let rec = state
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| not_found("sandbox", sandbox_id))?;
        Ok(self.sandbox_view(rec))
    }

    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let ids: Vec<String> = {
            let mut state = self.lock();
            match state.sandboxes.get_mut(sandbox_id) {
                Some(rec) => rec.state = SandboxState::NotReady,
                None => return Ok(()),
            }
            state
                .containers
                .values()
                .filter(|c| c.sandbox_id == sandbox_id)
                .map(|c| c.id.clone())
                .collect()
        };
        for id in ids {
            self.terminate(&id, Duration::ZERO).await?;
        }
        Ok(())
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        self.stop_sandbox(sandbox_id).await?;
        let mut state = self.lock();
        state.containers.retain(|_, c| c.sandbox_id != sandbox_id);
        state.sandboxes.remove(sandbox_id);
        Ok(())
    }

    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let state = self.lock();
        Ok(state
            .sandboxes
            .values()
            .map(|rec| self.sandbox_view(rec))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<String> {
        argv(config)?;
        self.ensure_image(&config.image).await?;
        let log_path = sandbox.log_path(&config.name, config.attempt);
        if let Some(dir) = log_path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| RuntimeError::io("creating log dir", dir, e))?;
        }
        let (_tx, exit) = watch::channel(None);
        let id = self.new_id("ctr");
        let mut state = self.lock();
        match state.sandboxes.get(sandbox_id) {
            Some(sb) if sb.state == SandboxState::Ready => {}
            Some(_) => {
                return Err(RuntimeError::InvalidSpec {
                    field: "sandbox".to_owned(),
                    message: format!("sandbox {sandbox_id} is not ready"),
                })
            }
            None => return Err(not_found("sandbox", sandbox_id)),
        }
        state.containers.insert(
            id.clone(),
            ContainerRecord {
                id: id.clone(),
                sandbox_id: sandbox_id.to_owned(),
                labels: config.identity_labels(sandbox),
                config: config.clone(),
                log_path,
                created_at: SystemTime::now(),
                started_at: None,
                pgid: None,
                exit,
                log: None,
                start_error: None,
                attach: None,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let (config, log_path) = {
            let state = self.lock();
            let rec = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            if rec.started_at.is_some() || rec.start_error.is_some() {
                return Err(RuntimeError::StartFailed {
                    id: container_id.to_owned(),
                    message: "container was already started".to_owned(),
                });
            }
            (rec.config.clone(), rec.log_path.clone())
        };
        let (tx, rx) = watch::channel(None);
        let fail = |message: String| {
            let mut state = self.lock();
            if let Some(rec) = state.containers.get_mut(container_id) {
                rec.start_error = Some(message.clone());
                rec.exit = rx.clone();
            }
            let _ = tx.send(Some(Exit {
                code: START_ERROR_EXIT_CODE,
                at: SystemTime::now(),
            }));
            RuntimeError::StartFailed {
                id: container_id.to_owned(),
                message,
            }
        };
        let argv = argv(&config)?;
        let mut command = match build_command(&config, &argv) {
            Ok(c) => c,
            Err(e) => return Err(fail(e.to_string())),
        };
        let log = match tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .await
        {
            Ok(f) => Arc::new(tokio::sync::Mutex::new(f)),
            Err(e) => return Err(fail(format!("opening log {}: {e}", log_path.display()))),
        };
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if config.stdin {
            command.stdin(Stdio::piped());
        }
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return Err(fail(format!("exec {:?}: {e}", argv[0]))),
        };
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let started = SystemTime::now();
        let attachable = Arc::new(Attachable {
            output: tokio::sync::broadcast::channel(ATTACH_BACKLOG).0,
            stdin: tokio::sync::Mutex::new(child.stdin.take()),
            stdin_once: config.stdin_once,
        });
        {
            let mut state = self.lock();
            if let Some(rec) = state.containers.get_mut(container_id) {
                rec.pgid = pgid;
                rec.started_at = Some(started);
                rec.exit = rx;
                rec.log = Some(log.clone());
                rec.attach = Some(attachable.clone());
            }
        }
        let out = child.stdout.take().map(|s| {
            tokio::spawn(pump(
                s,
                LogStream::Stdout,
                log.clone(),
                attachable.output.clone(),
            ))
        });
        let err = child.stderr.take().map(|s| {
            tokio::spawn(pump(
                s,
                LogStream::Stderr,
                log.clone(),
                attachable.output.clone(),
            ))
        });
        let note = match (&self.config.state_dir, pgid) {
            (Some(dir), Some(pgid)) => write_pgid_note(dir, container_id, pgid).await,
            _ => None,
        };
        let id = container_id.to_owned();
        tokio::spawn(async move {
            let status = child.wait().await;
            // Let the readers drain what the process wrote before reporting the exit, so
            // a caller that sees Exited also sees the whole log. Grandchildren holding the
            // pipes open are not waited for beyond a short moment.
            for reader in [out, err].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            }
            let code = match status {
                Ok(s) => exit_code(s),
                Err(e) => {
                    warn!(container_id = %id, error = %e, "waiting for container failed");
                    -1
                }
            };
            debug!(container_id = %id, code, "container exited");
            if let Some(note) = note {
                let _ = tokio::fs::remove_file(note).await;
            }
            let _ = tx.send(Some(Exit {
                code,
                at: SystemTime::now(),
            }));
        });
        Ok(())
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let (log, path) = {
            let state = self.lock();
            let rec = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            (rec.log.clone(), rec.log_path.clone())
        };
        let Some(log) = log else {
            return Err(RuntimeError::InvalidSpec {
                field: "container".to_owned(),
                message: format!("container {container_id} was never started"),
            });
        };
        let fresh = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| RuntimeError::io("reopening log", &path, e))?;
        // Holding the pumps' lock: no record is split between the two files.
        *log.lock().await = fresh;
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        match self.terminate(container_id, grace).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let running = {
            let state = self.lock();
            match state.containers.get(container_id) {
                None => return Ok(()),
                Some(rec) => rec.pgid.is_some() && rec.exit.borrow().is_none(),
            }
        };
        if running {
            return Err(RuntimeError::InvalidSpec {
                field: "container".to_owned(),
                message: format!("container {container_id} is running; stop it first"),
            });
        }
        self.lock().containers.remove(container_id);
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<ContainerStatus> {
        let state = self.lock();
        let rec = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let exit = *rec.exit.borrow();
        let (st, exit_code, reason, message) = match (&rec.start_error, exit) {
            (Some(msg), _) => (
                ContainerState::Exited,
                Some(START_ERROR_EXIT_CODE),
                REASON_START_ERROR.to_owned(),
                msg.clone(),
            ),
            (None, Some(exit)) => (
                ContainerState::Exited,
                Some(exit.code),
                exit_reason(exit.code).to_owned(),
                String::new(),
            ),
            (None, None) if rec.started_at.is_some() => {
                (ContainerState::Running, None, String::new(), String::new())
            }
            (None, None) => (ContainerState::Created, None, String::new(), String::new()),
        };
        Ok(ContainerStatus {
            id: rec.id.clone(),
            name: rec.config.name.clone(),
            attempt: rec.config.attempt,
            image: rec.config.image.clone(),
            image_id: normalize_image(&rec.config.image),
            state: st,
            exit_code,
            reason,
            message,
            created_at: rec.created_at,
            started_at: rec.started_at,
            finished_at: exit.map(|e| e.at),
            log_path: rec.log_path.clone(),
            labels: rec.labels.clone(),
        })
    }

    async fn list_containers(&self, sandbox_id: Option<&str>) -> Result<Vec<ContainerSummary>> {
        let state = self.lock();
        Ok(state
            .containers
            .values()
            .filter(|c| sandbox_id.is_none_or(|s| s == c.sandbox_id))
            .map(|c| {
                let exited = c.exit.borrow().is_some() || c.start_error.is_some();
                ContainerSummary {
                    id: c.id.clone(),
                    sandbox_id: c.sandbox_id.clone(),
                    name: c.config.name.clone(),
                    attempt: c.config.attempt,
                    state: if exited {
                        ContainerState::Exited
                    } else if c.started_at.is_some() {
                        ContainerState::Running
                    } else {
                        ContainerState::Created
                    },
                    created_at: c.created_at,
                    labels: c.labels.clone(),
                }
            })
            .filter(|c| c.labels.contains_key(LABEL_POD_UID))
            .collect())
    }

    async fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        let running: Vec<(String, i32, BTreeMap<String, String>)> = {
            let state = self.lock();
            state
                .containers
                .values()
                .filter(|c| c.exit.borrow().is_none())
                .filter_map(|c| Some((c.id.clone(), c.pgid?, c.labels.clone())))
                .collect()
        };
        let groups: Vec<i32> = running.iter().map(|(_, g, _)| *g).collect();
        let measured = tokio::task::spawn_blocking(move || process_groups(&groups))
            .await
            .map_err(|e| RuntimeError::Io {
                context: "measuring process groups in",
                path: PathBuf::from("/proc"),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(running
            .into_iter()
            .filter_map(|(id, group, labels)| {
                let (cpu, rss) = measured.get(&group)?;
                Some(ContainerUsage {
                    container_id: id,
                    labels,
                    cpu_usage_nanos: *cpu,
                    memory_working_set_bytes: *rss,
                })
            })
            .collect())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let config = self.running_config(container_id, command)?;
        let mut cmd = build_command(&config, command)?;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| RuntimeError::io("exec in container", PathBuf::from(&command[0]), e))?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(ExecOutput {
                exit_code: exit_code(out.status),
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Ok(Err(e)) => Err(RuntimeError::io(
                "exec in container",
                PathBuf::from(&command[0]),
                e,
            )),
            Err(_) => {
                if let Some(pgid) = pgid {
                    signal_group(pgid, Signal::SIGKILL);
                }
                Err(RuntimeError::Timeout {
                    operation: "ExecSync",
                    seconds: timeout.as_secs(),
                })
            }
        }
    }
    /// The command runs as exec probes do (the container's environment, working
    /// directory and user, in a process group of its own) with piped stdio; with `tty`,
    /// on a new pseudo-terminal instead (see [`exec_on_terminal`]).
    async fn exec(&self, container_id: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let config = self.running_config(container_id, &spec.command)?;
        let mut cmd = build_command(&config, &spec.command)?;
        if spec.tty {
            return exec_on_terminal(cmd, &spec.command[0]);
        }
        cmd.stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            RuntimeError::io("exec in container", PathBuf::from(&spec.command[0]), e)
        })?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let (input, mut input_rx) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
        let (output_tx, output) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
        let mut stdin = child.stdin.take();
        let feeder = tokio::spawn(async move {
            while let Some(msg) = input_rx.recv().await {
                match msg {
                    ExecInput::Stdin(data) => {
                        if let Some(pipe) = stdin.as_mut() {
                            if pipe.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    ExecInput::CloseStdin => stdin = None,
                    ExecInput::Resize { .. } => {}
                }
            }
        });
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(relay_output(out, false, output_tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(relay_output(err, true, output_tx.clone())));
        }
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = output_tx.closed() => {
                    // The caller went away: the command goes with it.
                    if let Some(pgid) = pgid {
                        signal_group(pgid, Signal::SIGKILL);
                    }
                    feeder.abort();
                    return;
                }
            };
            feeder.abort();
            // What the command wrote before it ended is sent before its exit; a
            // background child still holding the pipes is not waited for long.
            for reader in readers {
                let stop = reader.abort_handle();
                if tokio::time::timeout(EXEC_OUTPUT_GRACE, reader)
                    .await
                    .is_err()
                {
                    stop.abort();
                }
            }
            let (code, message) = match status {
                Ok(status) => (exit_code(status), String::new()),
                Err(e) => (1, format!("waiting for the command: {e}")),
            };
            debug!(code, "exec ended");
            let _ = output_tx.send(ExecEvent::Exit { code, message }).await;
        });
        Ok(ExecSession { input, output })
    }

    /// The output pumps' lines from now on; stdin to the process's pipe when both the
    /// container and `spec` have one. The session ends (exit 0) when the process does.
    async fn attach(&self, container_id: &str, spec: &AttachSpec) -> Result<ExecSession> {
        let (attachable, mut exit) = {
            let state = self.lock();
            let rec = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            match &rec.attach {
                Some(attachable) if rec.exit.borrow().is_none() => {
                    (attachable.clone(), rec.exit.clone())
                }
                _ => {
                    return Err(RuntimeError::InvalidSpec {
                        field: "container".to_owned(),
                        message: format!("container {container_id} is not running"),
                    })
                }
            }
        };
        let mut events = attachable.output.subscribe();
        let (input, mut input_rx) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
        let (output_tx, output) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
        let with_stdin = spec.stdin;
        let feeding = attachable.clone();
        let feeder = tokio::spawn(async move {
            while let Some(msg) = input_rx.recv().await {
                let mut pipe = feeding.stdin.lock().await;
                match msg {
                    ExecInput::Stdin(data) if with_stdin => {
                        if let Some(stdin) = pipe.as_mut() {
                            if stdin.write_all(&data).await.is_err() {
                                *pipe = None;
                            }
                        }
                    }
                    ExecInput::CloseStdin if with_stdin && feeding.stdin_once => *pipe = None,
                    _ => {}
                }
            }
        });
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) => {
                            if output_tx.send(event).await.is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            debug!(missed, "an attached client missed output");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            let _ = exit.wait_for(Option::is_some).await.map(|_| ());
                            let _ = output_tx.send(attach_ended()).await;
                            break;
                        }
                    },
                    _ = async { exit.wait_for(Option::is_some).await.map(|_| ()) } => {
                        // The pumps drained before the exit was told: what is still
                        // queued came before it.
                        while let Ok(event) = events.try_recv() {
                            if output_tx.send(event).await.is_err() {
                                break;
                            }
                        }
                        let _ = output_tx.send(attach_ended()).await;
                        break;
                    }
                    () = output_tx.closed() => break,
                }
            }
            // Detached (or the process ended): with stdinOnce, an attach that had stdin
            // closes the process's stdin for good.
            feeder.abort();
            if with_stdin && attachable.stdin_once {
                *attachable.stdin.lock().await = None;
            }
        });
        Ok(ExecSession { input, output })
    }

    /// Connects to `port` on the host IP: the process shares the host's network.
    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<PortForwardSession> {
        {
            let state = self.lock();
            match state.sandboxes.get(sandbox_id) {
                Some(sb) if sb.state == SandboxState::Ready => {}
                Some(_) => {
                    return Err(RuntimeError::InvalidSpec {
                        field: "sandbox".to_owned(),
                        message: format!("sandbox {sandbox_id} is not ready"),
                    })
                }
                None => return Err(not_found("sandbox", sandbox_id)),
            }
        }
        let stream = tokio::net::TcpStream::connect((self.config.host_ip.as_str(), port))
            .await
            .map_err(|e| RuntimeError::Rpc {
                operation: "PortForward",
                code: "Unavailable".to_owned(),
                message: format!("connecting to {}:{port}: {e}", self.config.host_ip),
                retryable: false,
            })?;
        Ok(tcp_session(stream))
    }
}

impl ProcessRuntime {
    /// The config of a running container, for a non-empty command to run in it.
    fn running_config(&self, container_id: &str, command: &[String]) -> Result<ContainerConfig> {
        let config = {
            let state = self.lock();
            let rec = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            if rec.started_at.is_none() || rec.exit.borrow().is_some() {
                return Err(RuntimeError::InvalidSpec {
                    field: "container".to_owned(),
                    message: format!("container {container_id} is not running"),
                });
            }
            rec.config.clone()
        };
        if command.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                field: "exec command".to_owned(),
                message: "empty".to_owned(),
            });
        }
        Ok(config)
    }
}

/// Runs `cmd` with a new pseudo-terminal as its stdin, stdout and stderr: what it writes
/// comes back as stdout, input is written to the terminal (so it is echoed, as on any
/// terminal), resizes set the terminal's size, and the close of stdin is an end-of-file
/// character. The terminal is not the command's controlling terminal (that needs
/// `setsid` in the child, which this backend cannot do without `unsafe`), so `^C`
/// typed in it sends no signal; ending the session kills the process group.
fn exec_on_terminal(mut cmd: tokio::process::Command, program: &str) -> Result<ExecSession> {
    let io = |e: std::io::Error| RuntimeError::io("exec on a terminal", PathBuf::from(program), e);
    let pty = nix::pty::openpty(None, None).map_err(|e| io(e.into()))?;
    let slave = std::fs::File::from(pty.slave);
    cmd.stdin(Stdio::from(slave.try_clone().map_err(io)?))
        .stdout(Stdio::from(slave.try_clone().map_err(io)?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(io)?;
    // The parent's copies of the terminal's child side go with `cmd`: once the command
    // and its children exit, reading the parent side ends.
    drop(cmd);
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let master = std::fs::File::from(pty.master);
    let resizer = master.try_clone().map_err(io)?;
    let mut writer = tokio::fs::File::from_std(master.try_clone().map_err(io)?);
    let reader = tokio::fs::File::from_std(master);
    let (input, mut input_rx) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
    let (output_tx, output) = tokio::sync::mpsc::channel(crate::exec::CHANNEL_DEPTH);
    let feeder = tokio::spawn(async move {
        while let Some(msg) = input_rx.recv().await {
            let written = match msg {
                ExecInput::Stdin(data) => writer.write_all(&data).await,
                // End of file at the start of a line (VEOF, ^D by default).
                ExecInput::CloseStdin => writer.write_all(&[4]).await,
                ExecInput::Resize { width, height } => {
                    let size = rustix::termios::Winsize {
                        ws_row: height,
                        ws_col: width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    rustix::termios::tcsetwinsize(&resizer, size).map_err(std::io::Error::from)
                }
            };
            if written.and(writer.flush().await).is_err() {
                return;
            }
        }
    });
    // A read of the parent side after the child side closed fails (EIO): the end.
    let relay = tokio::spawn(relay_output(reader, false, output_tx.clone()));
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status,
            () = output_tx.closed() => {
                if let Some(pgid) = pgid {
                    signal_group(pgid, Signal::SIGKILL);
                }
                feeder.abort();
                relay.abort();
                return;
            }
        };
        feeder.abort();
        let stop_relay = relay.abort_handle();
        if tokio::time::timeout(EXEC_OUTPUT_GRACE, relay)
            .await
            .is_err()
        {
            debug!("a child of the exec still holds its terminal; its output is cut");
            stop_relay.abort();
        }
        let (code, message) = match status {
            Ok(status) => (exit_code(status), String::new()),
            Err(e) => (1, format!("waiting for the command: {e}")),
        };
        let _ = output_tx.send(ExecEvent::Exit { code, message }).await;
    });
    Ok(ExecSession { input, output })
}

/// The last event of an attach: it ended without an error of its own.
fn attach_ended() -> ExecEvent {
    ExecEvent::Exit {
        code: 0,
        message: String::new(),
    }
}

/// How long an exec's output is still read after its command ended.
const EXEC_OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Sends what `pipe` yields as stdout (or stderr) events until its end.
async fn relay_output<R>(mut pipe: R, stderr: bool, to: tokio::sync::mpsc::Sender<ExecEvent>)
where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let data = buf[..n].to_vec();
                let event = if stderr {
                    ExecEvent::Stderr(data)
                } else {
                    ExecEvent::Stdout(data)
                };
                if to.send(event).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // The last handle is gone: no process of ours may outlive the runtime.
        for rec in self.containers.values() {
            if let Some(pgid) = rec.pgid {
                if rec.exit.borrow().is_none() {
                    signal_group(pgid, Signal::SIGKILL);
                }
            }
        }
    }
}
