//! A three-member KV cluster of separate processes on loopback, whichever the system.
//!
//! Owns the [`KvCluster`] trait (leader, clients, kill -9, restart) and the process helpers
//! both implementations share: ephemeral ports and children that are killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::process::Child;
use std::time::Duration;

use anyhow::Context;

use crate::kv_client::KvClients;

/// A cluster the store benchmark can drive and fail.
pub(crate) trait KvCluster {
    /// The system's name in the report.
    fn name(&self) -> &'static str;
    /// Number of members.
    fn len(&self) -> usize;
    /// Waits until every running member names the same running leader; its index.
    async fn wait_for_leader(&self, within: Duration) -> anyhow::Result<usize>;
    /// A pool of `conns` connections to member `index`.
    async fn clients(&self, index: usize, conns: usize) -> anyhow::Result<KvClients>;
    /// Kills member `index` with SIGKILL and reaps it.
    fn kill(&mut self, index: usize) -> anyhow::Result<()>;
    /// Starts a killed member again on its data directory.
    fn restart(&mut self, index: usize) -> anyhow::Result<()>;
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is acceptable here).
pub(crate) fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// A child process that is killed with SIGKILL when dropped or killed.
#[derive(Default)]
pub(crate) struct Proc(Option<Child>);

impl Proc {
    /// Holds `child`.
    pub fn new(child: Child) -> Proc {
        Proc(Some(child))
    }

    /// Whether the process was started and not killed.
    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    /// SIGKILL, then wait until it is gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.0.take() {
            child.kill().context("kill -9")?;
            child.wait().context("reaping a killed member")?;
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Polls `probe` every 50 ms until it yields a value or `within` passes.
pub(crate) async fn poll<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
