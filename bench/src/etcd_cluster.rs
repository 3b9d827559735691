//! Three etcd members on loopback, started and stopped by the benchmark.
//!
//! Owns [`EtcdCluster`]. Each member has its own data directory in a temporary directory
//! and runs with etcd's default settings (WAL fsync on, heartbeat 100 ms, election timeout
//! 1000 ms) unless `--etcd-arg` adds flags. Logs go to `e<N>.log` beside the data.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::cluster::{free_addr, poll, KvCluster, Proc};
use crate::kv_client::KvClients;

struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    proc: Proc,
}

/// A running three-member etcd cluster.
pub(crate) struct EtcdCluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    extra_args: Vec<String>,
    members: Vec<Member>,
}

/// The version line `etcd --version` prints, or why it could not run.
pub(crate) fn etcd_version(binary: &Path) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "running {} (install it with `apt-get install -y etcd-server`)",
                binary.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("unknown").trim().to_owned())
}

impl EtcdCluster {
    /// Starts `size` etcd members under `root` and waits for a leader. With `keep`, the
    /// data and logs stay on disk afterwards.
    pub async fn start(
        root: &Path,
        binary: &Path,
        size: usize,
        extra_args: &[String],
        keep: bool,
    ) -> anyhow::Result<EtcdCluster> {
        let dir = tempfile::Builder::new()
            .prefix("etcd-bench-")
            .disable_cleanup(keep)
            .tempdir_in(root)?;
        if keep {
            println!("etcd data and logs kept in {}", dir.path().display());
        }
        let mut members = Vec::new();
        for i in 1..=size {
            members.push(Member {
                name: format!("e{i}"),
                client_url: format!("http://{}", free_addr()?),
                peer_url: format!("http://{}", free_addr()?),
                proc: Proc::default(),
            });
        }
        let mut cluster = EtcdCluster {
            dir,
            binary: binary.to_owned(),
            extra_args: extra_args.to_vec(),
            members,
        };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        let member = &self.members[index];
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", member.name)))?;
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&member.name))
            .arg("--listen-client-urls")
            .arg(&member.client_url)
            .arg("--advertise-client-urls")
            .arg(&member.client_url)
            .arg("--listen-peer-urls")
            .arg(&member.peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&member.peer_url)
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg("rafter-bench")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.members[index].proc = Proc::new(child);
        Ok(())
    }

    /// (this member's id, the leader's id) as member `index` sees them.
    async fn status(&self, index: usize) -> Option<(u64, u64)> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_secs(1));
        let mut client =
            etcd_client::Client::connect([&self.members[index].client_url], Some(options))
                .await
                .ok()?;
        let status = client.status().await.ok()?;
        Some((status.header()?.member_id(), status.leader()))
    }
}

impl KvCluster for EtcdCluster {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    async fn wait_for_leader(&self, within: Duration) -> anyhow::Result<usize> {
        poll(within, "a leader all etcd members agree on", || async {
            let mut leader = None;
            let mut leader_index = None;
            for (index, member) in self.members.iter().enumerate() {
                if !member.proc.is_running() {
                    continue;
                }
                let (own, seen) = self.status(index).await?;
                if seen == 0 || leader.is_some_and(|l| l != seen) {
                    return None;
                }
                leader = Some(seen);
                if own == seen {
                    leader_index = Some(index);
                }
            }
            leader_index
        })
        .await
    }

    async fn clients(&self, index: usize, conns: usize) -> anyhow::Result<KvClients> {
        KvClients::etcd(&self.members[index].client_url, conns).await
    }

    fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        self.members[index].proc.kill()
    }

    fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index)?;
        self.spawn(index)
    }
}
