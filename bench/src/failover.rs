//! Leader failover timing: from kill -9 of the leader to the first acknowledged write.
//!
//! Owns [`first_ack`] and the store version of the measurement, [`kv_failover`]. Right
//! after the kill, a new write attempt is sent to every survivor every 20 ms (attempts
//! overlap, each bounded by [`ATTEMPT_TIMEOUT`]), so a request stuck on the dead leader
//! does not hide the moment the new leader starts acknowledging. The resolution is about
//! 20 ms.

use std::future::Future;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::cluster::KvCluster;

/// How long one write attempt may take during a failover.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts launched per target before waiting for some to finish.
const MAX_IN_FLIGHT: usize = 200;

/// The time from `t0` until one `attempt(target, n)` (for `targets` targets) succeeds.
pub(crate) async fn first_ack<F, Fut>(
    t0: Instant,
    targets: usize,
    attempt: F,
    within: Duration,
) -> anyhow::Result<Duration>
where
    F: Fn(usize, u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut inflight = FuturesUnordered::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0u64;
    let mut last_error = String::from("no attempt finished");
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if t0.elapsed() > within {
                    anyhow::bail!("no write acknowledged {within:?} after the kill: {last_error}");
                }
                if inflight.len() < MAX_IN_FLIGHT {
                    for target in 0..targets {
                        inflight.push(tokio::time::timeout(ATTEMPT_TIMEOUT, attempt(target, n)));
                        n += 1;
                    }
                }
            }
            Some(result) = inflight.next() => match result {
                Ok(Ok(())) => return Ok(t0.elapsed()),
                Ok(Err(e)) => last_error = format!("{e:#}"),
                Err(_) => last_error = format!("an attempt timed out after {ATTEMPT_TIMEOUT:?}"),
            }
        }
    }
}

/// Retries `op` every 50 ms until it succeeds or `within` passes (for set-up steps such as
/// warming a connection, which an election still settling may refuse).
pub(crate) async fn retry<F, Fut>(within: Duration, mut op: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let deadline = Instant::now() + within;
    loop {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Kill the leader `rounds` times; each time, the time to the first acknowledged put
/// through a survivor (which forwards to, or is, the new leader). The killed member is
/// restarted and the cluster settles before the next round.
pub(crate) async fn kv_failover<C>(
    cluster: &mut C,
    rounds: usize,
    value: &[u8],
) -> anyhow::Result<Vec<Duration>>
where
    C: KvCluster,
{
    let mut samples = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
        let survivors: Vec<usize> = (0..cluster.len()).filter(|i| *i != leader).collect();
        let mut clients = Vec::new();
        for &s in &survivors {
            let c = cluster.clients(s, 1).await?;
            // Connections are open and warm before the kill.
            retry(Duration::from_secs(10), || {
                c.put(
                    0,
                    format!("failover/{round}/warm").into_bytes(),
                    value.to_vec(),
                )
            })
            .await?;
            clients.push(c);
        }
        let t0 = Instant::now();
        cluster.kill(leader)?;
        let elapsed = first_ack(
            t0,
            clients.len(),
            |target, n| {
                let client = clients[target].clone();
                let key = format!("failover/{round}/{n}").into_bytes();
                let value = value.to_vec();
                async move { client.put(0, key, value).await }
            },
            Duration::from_secs(30),
        )
        .await?;
        samples.push(elapsed);
        cluster.restart(leader)?;
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
    }
    Ok(samples)
}
