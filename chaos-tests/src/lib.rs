//! # Layout
//!
//! Multi-process fault tests: real `rafter master` processes started by the tests
//! themselves on ephemeral loopback ports, killed with SIGKILL, stopped with SIGSTOP,
//! restarted, cut off from each other through fault-injecting proxies ([`proxy`]) and
//! given failing disks (the log writer's failpoints). The crate holds the harness
//! ([`Cluster`], [`proxy::Proxy`], the seeded schedule in [`schedule`]); the tests, one
//! property per file, live under `tests/it/`.
//!
//! ```text
//!  client ──► client proxy(m) ──► master m's API
//!  master a ──(--peer-route)──► peer proxy(a→b) ──► master b's Raft port
//!             replication, votes, forwarded writes, read-index: all through it
//! ```
//!
//! The harness runs the `rafter` binary the workspace build produced
//! (`target/debug/rafter`, or `$RAFTER_BIN`): run
//! `cargo build --bin rafter --features rafter/failpoints` first, as `make test` does (the
//! disk-fault tests need the failpoints; the others run on any build).

pub mod linearizability;
pub mod proxy;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rafter_proto::api::cluster_client::ClusterClient;
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{ClusterStatus, Empty};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Status};

use crate::proxy::{Direction, Fault, Proxy};

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A process could not be started or signalled.
    #[error("process: {0}")]
    Process(String),
    /// A file the cluster wrote could not be read.
    #[error("file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
}

/// One master process.
pub struct MasterProcess {
    /// Its member id.
    pub id: u64,
    /// Its API port on 127.0.0.1.
    pub client_port: u16,
    /// Its Raft port on 127.0.0.1.
    pub peer_port: u16,
    child: Option<Child>,
}

impl MasterProcess {
    /// Whether the process is running (not killed by the test).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The API endpoint.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.client_port)
    }

    /// The process id, while it runs (for reading its memory from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A disk fault of the log writer (raft-store's `failpoints` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// Every WAL sync fails with EIO.
    WalSyncEio,
    /// The deliberately broken member: log entries acknowledged before they are durable
    /// (written without the WAL).
    AckBeforeSync,
}

/// How to start a [`Cluster`] beyond its size.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `rafter master` flags every master gets after the harness's own.
    pub flags: Vec<String>,
    /// Put a [`Proxy`] on every peer link (each direction its own) and in front of every
    /// master's API for the clients [`Cluster::write_client_config`] configures.
    pub proxied: bool,
    /// Members that may join later ([`Cluster::add_master`]): with `proxied`, their
    /// links are proxied too, and the first members are started knowing the routes.
    pub spares: u64,
    /// Environment every master is started with.
    pub env: Vec<(String, String)>,
    /// Environment only some masters are started with (id → variables), after `env`.
    pub env_of: BTreeMap<u64, Vec<(String, String)>>,
    /// Data dirs elsewhere than the cluster's directory (id → dir), e.g. on a small
    /// filesystem; not for master 1, whose data dir holds the PKI.
    pub data_dir_of: BTreeMap<u64, PathBuf>,
    /// Seeds the proxies' random drops.
    pub seed: u64,
}

/// A cluster of `rafter master` processes in a temporary directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    masters: Vec<MasterProcess>,
    /// Ports of members not started yet (id → client port, peer port).
    planned: BTreeMap<u64, (u16, u16)>,
    heartbeat_ms: u64,
    /// Flags every master is started with, after the harness's own.
    extra_flags: Vec<String>,
    env: Vec<(String, String)>,
    env_of: BTreeMap<u64, Vec<(String, String)>>,
    data_dir_of: BTreeMap<u64, PathBuf>,
    /// (from, to) → the proxy `from` reaches `to`'s Raft port through.
    peer_links: BTreeMap<(u64, u64), Proxy>,
    /// id → the proxy clients reach master `id`'s API through.
    client_links: BTreeMap<u64, Proxy>,
}

/// A client with the admin token of the cluster.
pub type AdminClient = ResourcesClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// An interceptor sending `token`.
    pub fn new(token: String) -> BearerToken {
        BearerToken(token)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value: MetadataValue<_> = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| Status::internal("the token is not a header value"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// Ports this process has handed out, so that no two masters of concurrent tests get one.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The lowest port the kernel picks for outgoing connections (Linux's default otherwise).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free port for a master to listen on later. It is taken below the kernel's ephemeral
/// range: a port there (what binding port 0 gives) may meanwhile become the local end of
/// any outgoing connection of another test, and the master would then fail to bind it.
pub fn free_port() -> Result<u16, HarnessError> {
    const FIRST: u16 = 10_000;
    let end = ephemeral_low();
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    if end > FIRST {
        let span = u32::from(end - FIRST);
        // Test processes run one after another; starting each at its own offset keeps a
        // port of a process that just ended (in TIME_WAIT, say) out of the way.
        let start = std::process::id() % span;
        for step in 0..span {
            let port = FIRST + ((start + step) % span) as u16;
            if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed.insert(port);
                return Ok(port);
            }
        }
    }
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::Process(e.to_string()))?;
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::Process(e.to_string()))?;
    handed.insert(port);
    Ok(port)
}

/// The `rafter` binary of this workspace build.
pub fn rafter_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RAFTER_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/rafter")
}

impl Cluster {
    /// Starts `size` masters (the first with `--init`) and waits until all agree on a leader.
    pub async fn start(size: u64) -> Result<Cluster, HarnessError> {
        Cluster::start_with(size, &[]).await
    }

    /// [`Cluster::start`], every master also given `flags` (`rafter master` flags).
    pub async fn start_with(size: u64, flags: &[&str]) -> Result<Cluster, HarnessError> {
        Cluster::start_with_options(
            size,
            ClusterOptions {
                flags: flags.iter().map(|f| (*f).to_owned()).collect(),
                ..ClusterOptions::default()
            },
        )
        .await
    }

    /// [`Cluster::start`] as `options` say.
    pub async fn start_with_options(
        size: u64,
        options: ClusterOptions,
    ) -> Result<Cluster, HarnessError> {
        let binary = rafter_binary();
        if !binary.exists() {
            return Err(HarnessError::Process(format!(
                "{} does not exist: run `cargo build --bin rafter` first",
                binary.display()
            )));
        }
        let dir = tempfile::tempdir().map_err(|e| HarnessError::Process(e.to_string()))?;
        let mut masters = Vec::new();
        for id in 1..=size {
            masters.push(MasterProcess {
                id,
                client_port: free_port()?,
                peer_port: free_port()?,
                child: None,
            });
        }
        let mut planned = BTreeMap::new();
        for id in size + 1..=size + options.spares {
            planned.insert(id, (free_port()?, free_port()?));
        }
        let mut peer_links = BTreeMap::new();
        let mut client_links = BTreeMap::new();
        if options.proxied {
            let ports: BTreeMap<u64, (u16, u16)> = masters
                .iter()
                .map(|m| (m.id, (m.client_port, m.peer_port)))
                .chain(planned.clone())
                .collect();
            for (&to, &(client_port, peer_port)) in &ports {
                let seed = options.seed ^ to.wrapping_mul(0x9e37_79b9);
                client_links.insert(
                    to,
                    Proxy::start(free_port()?, ([127, 0, 0, 1], client_port).into(), seed).await?,
                );
                for &from in ports.keys().filter(|from| **from != to) {
                    let seed = seed ^ from.wrapping_mul(0x85eb_ca6b);
                    peer_links.insert(
                        (from, to),
                        Proxy::start(free_port()?, ([127, 0, 0, 1], peer_port).into(), seed)
                            .await?,
                    );
                }
            }
        }
        let mut cluster = Cluster {
            dir,
            binary,
            masters,
            planned,
            heartbeat_ms: 50,
            extra_flags: options.flags,
            env: options.env,
            env_of: options.env_of,
            data_dir_of: options.data_dir_of,
            peer_links,
            client_links,
        };
        for id in 1..=size {
            cluster.spawn(id)?;
            if id == 1 {
                // The others read the CA the first one writes.
                let ca = cluster.pki_dir().join("ca.key");
                wait_until(
                    Duration::from_secs(20),
                    "the first master to write the CA",
                    || ca.exists(),
                )
                .await?;
            }
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("m1/pki")
    }

    fn spawn(&mut self, id: u64) -> Result<(), HarnessError> {
        let initial: Vec<String> = self
            .masters
            .iter()
            .map(|m| format!("{}=127.0.0.1:{}", m.id, m.peer_port))
            .collect();
        let index = self.index(id)?;
        let master = &self.masters[index];
        let data_dir = self
            .data_dir_of
            .get(&id)
            .cloned()
            .unwrap_or_else(|| self.dir.path().join(format!("m{id}")));
        let log = std::fs::File::create(self.dir.path().join(format!("m{id}.log")))
            .map_err(|e| HarnessError::Process(e.to_string()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("master")
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--pki-dir")
            .arg(self.pki_dir())
            .arg("--listen-client")
            .arg(format!("127.0.0.1:{}", master.client_port))
            .arg("--listen-peer")
            .arg(format!("127.0.0.1:{}", master.peer_port))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--heartbeat-ms")
            .arg(self.heartbeat_ms.to_string())
            .args(&self.extra_flags)
            .args(self.peer_routes(id))
            .env(
                "RAFTER_FAILPOINT_WAL_SYNC_EIO",
                self.failpoint_file(id, Failpoint::WalSyncEio),
            )
            .env(
                "RAFTER_FAILPOINT_ACK_BEFORE_SYNC",
                self.failpoint_file(id, Failpoint::AckBeforeSync),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(
                self.env_of
                    .get(&id)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k, v)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if id == 1 {
            command.arg("--init");
        }
        let child = command
            .spawn()
            .map_err(|e| HarnessError::Process(format!("{}: {e}", self.binary.display())))?;
        self.masters[index].child = Some(child);
        Ok(())
    }

    /// The `--peer-route` flags that send master `from`'s peer traffic through its proxies.
    fn peer_routes(&self, from: u64) -> Vec<String> {
        let mut routes = Vec::new();
        for ((_, to), proxy) in self.peer_links.range((from, 0)..=(from, u64::MAX)) {
            let peer_port = match self.index(*to) {
                Ok(index) => self.masters[index].peer_port,
                Err(_) => match self.planned.get(to) {
                    Some((_, peer_port)) => *peer_port,
                    None => continue,
                },
            };
            routes.push("--peer-route".to_owned());
            routes.push(format!("127.0.0.1:{peer_port}={}", proxy.addr()));
        }
        routes
    }

    /// The file whose existence arms `failpoint` in master `id` (with the failpoints
    /// compiled in).
    fn failpoint_file(&self, id: u64, failpoint: Failpoint) -> PathBuf {
        let name = match failpoint {
            Failpoint::WalSyncEio => "wal-sync-eio",
            Failpoint::AckBeforeSync => "ack-before-sync",
        };
        self.dir.path().join(format!("m{id}.{name}"))
    }

    fn index(&self, id: u64) -> Result<usize, HarnessError> {
        self.masters
            .iter()
            .position(|m| m.id == id)
            .ok_or_else(|| HarnessError::Process(format!("no master {id}")))
    }

    /// The cluster's directory: each master's data dir `m<id>` (with the pki under `m1`) and
    /// the masters' logs `m<id>.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The masters.
    pub fn masters(&self) -> &[MasterProcess] {
        &self.masters
    }

    /// Every master's API endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.masters.iter().map(MasterProcess::endpoint).collect()
    }

    /// A master's whole log.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("m{id}.log"))).unwrap_or_default()
    }

    /// The last lines of a master's log, for failure messages.
    pub fn log_tail(&self, id: u64) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join(format!("m{id}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kills a master with SIGKILL: no clean shutdown, nothing flushed that was not synced.
    pub fn kill(&mut self, id: u64) -> Result<(), HarnessError> {
        let index = self.index(id)?;
        if let Some(mut child) = self.masters[index].child.take() {
            child
                .kill()
                .map_err(|e| HarnessError::Process(e.to_string()))?;
            child
                .wait()
                .map_err(|e| HarnessError::Process(e.to_string()))?;
        }
        Ok(())
    }

    /// Kills every master with SIGKILL at once (a power cut).
    pub fn kill_all(&mut self) -> Result<(), HarnessError> {
        // Signal all before reaping any, so none runs on alone meanwhile.
        for master in self.masters.iter().filter(|m| m.is_running()) {
            if let Some(pid) = master.pid().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let ids: Vec<u64> = self.masters.iter().map(|m| m.id).collect();
        for id in ids {
            self.kill(id)?;
        }
        Ok(())
    }

    /// Starts every master that is not running, on its data dir.
    pub fn start_stopped(&mut self) -> Result<(), HarnessError> {
        let stopped: Vec<u64> = self
            .masters
            .iter()
            .filter(|m| !m.is_running())
            .map(|m| m.id)
            .collect();
        for id in stopped {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// Waits until master `id` exits on its own, and returns how it ended.
    pub async fn wait_for_exit(
        &mut self,
        id: u64,
        within: Duration,
    ) -> Result<ExitStatus, HarnessError> {
        let index = self.index(id)?;
        let deadline = Instant::now() + within;
        loop {
            let child = self.masters[index]
                .child
                .as_mut()
                .ok_or_else(|| HarnessError::Process(format!("master {id} is not running")))?;
            if let Some(status) = child
                .try_wait()
                .map_err(|e| HarnessError::Process(e.to_string()))?
            {
                self.masters[index].child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: format!("master {id} to exit"),
                    after: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Arms (`true`) or disarms `failpoint` in master `id`, running or not; only a
    /// `rafter` built with `--features failpoints` honours it
    /// ([`Cluster::failpoints_compiled`]).
    pub fn set_failpoint(
        &self,
        id: u64,
        failpoint: Failpoint,
        armed: bool,
    ) -> Result<(), HarnessError> {
        let path = self.failpoint_file(id, failpoint);
        let result = if armed {
            std::fs::write(&path, b"EIO\n")
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        result.map_err(|e| HarnessError::File {
            path,
            detail: e.to_string(),
        })
    }

    /// Whether master `id`'s binary has the failpoints compiled in (it says so at start).
    pub fn failpoints_compiled(&self, id: u64) -> bool {
        self.log(id).contains("failpoints compiled in")
    }

    /// The proxy master `from` reaches master `to`'s Raft port through (proxied clusters).
    pub fn peer_link(&self, from: u64, to: u64) -> Option<&Proxy> {
        self.peer_links.get(&(from, to))
    }

    /// The proxy clients reach master `id`'s API through (proxied clusters).
    pub fn client_link(&self, id: u64) -> Option<&Proxy> {
        self.client_links.get(&id)
    }

    /// Cuts master `id` off from every other member, both ways, by black-holing its peer
    /// links: connections stay open and silent. Its API stays reachable.
    pub fn isolate(&self, id: u64) -> Result<(), HarnessError> {
        let mut found = false;
        for ((from, to), proxy) in &self.peer_links {
            if *from == id || *to == id {
                proxy.set(Direction::Both, Fault::BlackHole);
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err(HarnessError::Process(format!(
                "master {id} has no proxied links (start the cluster with `proxied`)"
            )))
        }
    }

    /// Ends every network fault on every proxy.
    pub fn heal_network(&self) {
        for proxy in self.peer_links.values().chain(self.client_links.values()) {
            proxy.heal();
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) a master.
    pub fn pause(&self, id: u64, paused: bool) -> Result<(), HarnessError> {
        let index = self.index(id)?;
        let child = self.masters[index]
            .child
            .as_ref()
            .ok_or_else(|| HarnessError::Process(format!("master {id} is not running")))?;
        let pid = i32::try_from(child.id()).map_err(|e| HarnessError::Process(e.to_string()))?;
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        kill(Pid::from_raw(pid), signal)
            .map_err(|e| HarnessError::Process(format!("kill({pid}, {signal}) failed: {e}")))
    }

    /// Starts one more master (the next id, an empty data dir, the cluster's CA) without
    /// `--init`: it waits to be added to the membership. Returns its id. A spare planned
    /// at start keeps its ports (and proxies).
    pub fn add_master(&mut self) -> Result<u64, HarnessError> {
        let id = self.masters.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let (client_port, peer_port) = match self.planned.remove(&id) {
            Some(ports) => ports,
            None => (free_port()?, free_port()?),
        };
        self.masters.push(MasterProcess {
            id,
            client_port,
            peer_port,
            child: None,
        });
        self.spawn(id)?;
        Ok(id)
    }

    /// The flags masters started from now on get instead of the ones given to
    /// [`Cluster::start_with`] (a restart with another configuration).
    pub fn set_extra_flags(&mut self, flags: &[&str]) {
        self.extra_flags = flags.iter().map(|f| (*f).to_owned()).collect();
    }

    /// Starts a killed master again on its data dir.
    pub fn restart(&mut self, id: u64) -> Result<(), HarnessError> {
        self.kill(id)?;
        self.spawn(id)
    }

    /// The CA certificate clients trust.
    pub fn ca_pem(&self) -> Result<String, HarnessError> {
        let path = self.pki_dir().join("ca.crt");
        std::fs::read_to_string(&path).map_err(|e| HarnessError::File {
            path,
            detail: e.to_string(),
        })
    }

    /// The PKI directory the masters share (CA, admin credentials, token file).
    pub fn pki_path(&self) -> PathBuf {
        self.pki_dir()
    }

    /// Writes a client config for the `rafter` CLI with every master and the admin token
    /// (through the client proxies on a proxied cluster).
    pub fn write_client_config(&self, path: &Path) -> Result<(), HarnessError> {
        let servers: Vec<String> = self
            .masters
            .iter()
            .map(|m| {
                let port = self
                    .client_links
                    .get(&m.id)
                    .map_or(m.client_port, Proxy::port);
                format!("      - https://127.0.0.1:{port}")
            })
            .collect();
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: admin\nclusters:\n- name: test\n  cluster:\n    servers:\n{}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: admin\n  context: {{cluster: test, user: admin}}\n",
            servers.join("\n"),
            self.pki_dir().join("ca.crt").display(),
            self.admin_token()?
        );
        std::fs::write(path, text).map_err(|e| HarnessError::File {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// The admin token written at `--init`.
    pub fn admin_token(&self) -> Result<String, HarnessError> {
        let path = self.pki_dir().join("tokens.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::File {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        text.split(',')
            .next()
            .map(str::to_owned)
            .ok_or(HarnessError::File {
                path,
                detail: "empty".into(),
            })
    }

    /// A channel to one master's API.
    pub async fn channel(&self, id: u64) -> Result<Channel, HarnessError> {
        let index = self.index(id)?;
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca_pem()?))
            .domain_name("localhost");
        Channel::from_shared(self.masters[index].endpoint())
            .map_err(|e| HarnessError::Process(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| HarnessError::Process(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| HarnessError::Process(format!("connect to master {id}: {e}")))
    }

    /// An admin client of one master's API. It takes answers as large as the gateway
    /// sends (64 MiB), not tonic's default 4 MiB: a list of a few large objects (the
    /// full-disk test's 700 KiB ConfigMaps) is larger than that.
    pub async fn client(&self, id: u64) -> Result<AdminClient, HarnessError> {
        Ok(ResourcesClient::with_interceptor(
            self.channel(id).await?,
            BearerToken(self.admin_token()?),
        )
        .max_decoding_message_size(64 * 1024 * 1024))
    }

    /// One master's view of the cluster.
    pub async fn status(&self, id: u64) -> Result<ClusterStatus, HarnessError> {
        let mut client = ClusterClient::with_interceptor(
            self.channel(id).await?,
            BearerToken(self.admin_token()?),
        );
        client
            .status(Empty {})
            .await
            .map(|r| r.into_inner())
            .map_err(|e| HarnessError::Process(e.to_string()))
    }

    /// Waits until every running master names the same leader, and returns it.
    pub async fn wait_for_leader(&self, within: Duration) -> Result<u64, HarnessError> {
        let deadline = Instant::now() + within;
        loop {
            // (master, the leader it names or 0) for every running master.
            let mut seen = Vec::new();
            for master in self.masters.iter().filter(|m| m.is_running()) {
                let leader = match self.status(master.id).await {
                    Ok(status) => status.leader_id,
                    Err(_) => 0,
                };
                seen.push((master.id, leader));
            }
            if let Some(&(_, first)) = seen.first() {
                let leader_alive = seen.iter().any(|(id, _)| *id == first);
                if first != 0 && leader_alive && seen.iter().all(|(_, l)| *l == first) {
                    return Ok(first);
                }
            }
            if Instant::now() > deadline {
                let lost = seen.iter().find(|(_, leader)| *leader == 0);
                return Err(HarnessError::Timeout {
                    what: match lost {
                        Some((id, _)) => format!(
                            "one leader (masters and the leaders they name: {seen:?}); master {id}'s log ends:\n{}",
                            self.log_tail(*id)
                        ),
                        None => format!("one leader (masters and the leaders they name: {seen:?})"),
                    },
                    after: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for master in &mut self.masters {
            if let Some(mut child) = master.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Where Debian's libfaketime is (package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The environment that runs a process with its clock `offset_seconds` off (libfaketime),
/// or `None` (with the reason) when libfaketime is not installed.
pub fn skewed_clock(offset_seconds: i64) -> Result<Vec<(String, String)>, String> {
    if !Path::new(LIBFAKETIME).exists() {
        return Err(format!(
            "{LIBFAKETIME} is missing: install Debian's faketime (scripts/install-deps.sh)"
        ));
    }
    Ok(vec![
        ("LD_PRELOAD".to_owned(), LIBFAKETIME.to_owned()),
        ("FAKETIME".to_owned(), format!("{offset_seconds:+}s")),
        // The monotonic clock (timers, timeouts) runs true; only the wall clock is off.
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ])
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
pub async fn wait_until(
    within: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let deadline = Instant::now() + within;
    while !condition() {
        if Instant::now() > deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                after: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
