//! Three of our store members, each a `bench member` process (this same binary).
//!
//! Owns [`RafterCluster`]. Member 1 creates the cluster on its first start; a restarted
//! member rejoins from its data directory. The members share the machine, so each runtime
//! gets its share of the CPUs ([`worker_threads_each`]), as `rafter master --worker-threads`
//! can give a master. Logs go to `m<ID>.log` in the cluster's temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::cluster::{free_addr, poll, KvCluster, Proc};
use crate::kv_client::KvClients;
use crate::pb::bench_kv_client::BenchKvClient;

struct Member {
    id: u64,
    raft_addr: SocketAddr,
    kv_addr: SocketAddr,
    proc: Proc,
}

/// Runtime threads of each of `members` processes sharing this machine's CPUs (at least 1).
pub(crate) fn worker_threads_each(members: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / members.max(1)).max(1)
}

/// A running three-member cluster of our store.
pub(crate) struct RafterCluster {
    dir: tempfile::TempDir,
    exe: PathBuf,
    members: Vec<Member>,
    /// Flags every member is started with, besides the cluster's own.
    flags: Vec<String>,
}

impl RafterCluster {
    /// Starts `size` members under `root` and waits for a leader.
    /// With `keep`, the data and logs stay on disk afterwards.
    pub async fn start(root: &Path, size: u64, keep: bool) -> anyhow::Result<RafterCluster> {
        Self::start_with(root, size, keep, &[]).await
    }

    /// [`RafterCluster::start`], every member also given `flags` (`bench member` flags).
    pub async fn start_with(
        root: &Path,
        size: u64,
        keep: bool,
        flags: &[&str],
    ) -> anyhow::Result<RafterCluster> {
        let dir = tempfile::Builder::new()
            .prefix("rafter-bench-")
            .disable_cleanup(keep)
            .tempdir_in(root)?;
        if keep {
            println!("rafter data and logs kept in {}", dir.path().display());
        }
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut members = Vec::new();
        for id in 1..=size {
            members.push(Member {
                id,
                raft_addr: free_addr()?,
                kv_addr: free_addr()?,
                proc: Proc::default(),
            });
        }
        let flags = flags.iter().map(|f| (*f).to_owned()).collect();
        let mut cluster = RafterCluster {
            dir,
            exe,
            members,
            flags,
        };
        for index in 0..cluster.members.len() {
            cluster.spawn(index, index == 0)?;
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize, init: bool) -> anyhow::Result<()> {
        let voters: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.id, m.raft_addr))
            .collect();
        let member = &self.members[index];
        let log = std::fs::File::create(self.dir.path().join(format!("m{}.log", member.id)))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("member")
            .arg("--id")
            .arg(member.id.to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("m{}", member.id)))
            .arg("--raft-addr")
            .arg(member.raft_addr.to_string())
            .arg("--kv-addr")
            .arg(member.kv_addr.to_string())
            .arg("--worker-threads")
            .arg(worker_threads_each(self.members.len()).to_string())
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if init {
            command.arg("--init").arg(voters.join(","));
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.members[index].proc = Proc::new(child);
        Ok(())
    }

    async fn status(&self, index: usize) -> Option<crate::pb::StatusReply> {
        let member = &self.members[index];
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", member.kv_addr))
            .ok()?
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(1))
            .connect()
            .await
            .ok()?;
        let reply = BenchKvClient::new(channel)
            .status(crate::pb::StatusRequest {})
            .await
            .ok()?;
        Some(reply.into_inner())
    }
}

impl KvCluster for RafterCluster {
    fn name(&self) -> &'static str {
        "rafter"
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    async fn wait_for_leader(&self, within: Duration) -> anyhow::Result<usize> {
        poll(within, "a leader all rafter members agree on", || async {
            let mut leader = None;
            for (index, member) in self.members.iter().enumerate() {
                if !member.proc.is_running() {
                    continue;
                }
                let seen = self.status(index).await?.leader_id;
                if seen == 0 || leader.is_some_and(|l| l != seen) {
                    return None;
                }
                leader = Some(seen);
            }
            let id = leader?;
            self.members
                .iter()
                .position(|m| m.id == id && m.proc.is_running())
        })
        .await
    }

    async fn clients(&self, index: usize, conns: usize) -> anyhow::Result<KvClients> {
        KvClients::rafter(&self.members[index].kv_addr.to_string(), conns).await
    }

    fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        self.members[index].proc.kill()
    }

    fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index)?;
        self.spawn(index, false)
    }
}
