//! The data disk's free space, held against a reserve.
//!
//! Owns [`DiskReserve`]: a task reads the free space of the member's data directory's
//! filesystem (`statvfs`) every interval.
//! - Below the reserve, a leader refuses new writes with [`KvError::NoSpace`], before
//!   proposing them, so nothing is half-done and the refusal names the member, its free
//!   space and the reserve. Followers go on appending what the leader sends: the reserve is
//!   what they append into.
//! - Below a quarter of the reserve, the member stops (an error naming the free space),
//!   rather than let a log write fail half-way on a full disk. Restarted once space is
//!   back, it catches up from its durable log.
//! - Once space returns above the reserve, writes are taken again.
//!
//! It must not write anything itself, and it never refuses Raft's own traffic (votes,
//! appends from a leader): a refusal there could only cost the cluster its quorum.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::kv::KvError;
use crate::types::NodeId;

/// Free space of a member's data disk against its reserve (0 bytes: never refuses).
#[derive(Debug)]
pub(crate) struct DiskReserve {
    member: NodeId,
    reserve: u64,
    dir: PathBuf,
    /// Free bytes at the last reading (`u64::MAX` before the first).
    free: AtomicU64,
    /// Why the member had to stop for lack of space, once it has.
    exhausted: watch::Sender<Option<String>>,
}

impl DiskReserve {
    pub(crate) fn new(member: NodeId, dir: PathBuf, reserve: u64) -> Arc<DiskReserve> {
        Arc::new(DiskReserve {
            member,
            reserve,
            dir,
            free: AtomicU64::new(u64::MAX),
            exhausted: watch::channel(None).0,
        })
    }

    /// The refusal a new write gets while free space is below the reserve.
    pub(crate) fn refusal(&self) -> Option<KvError> {
        let free = self.free.load(Ordering::Relaxed);
        (free < self.reserve).then_some(KvError::NoSpace {
            member: self.member,
            free,
            reserve: self.reserve,
        })
    }

    /// Resolves with the reason once the member must stop for lack of space.
    pub(crate) async fn exhausted(&self) -> String {
        let mut rx = self.exhausted.subscribe();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        };
        why
    }

    /// Records a reading; says whether the member must now stop.
    fn record(&self, free: u64) -> bool {
        let before = self.free.swap(free, Ordering::Relaxed);
        let short = free < self.reserve;
        if short && before >= self.reserve {
            tracing::warn!(
                member = self.member, free, reserve = self.reserve, dir = %self.dir.display(),
                "the data disk is below its reserve: refusing new writes until space is freed"
            );
        } else if !short && before < self.reserve && before != u64::MAX {
            tracing::info!(
                member = self.member,
                free,
                "the data disk is above its reserve again: taking writes"
            );
        }
        if free < self.reserve / 4 && self.exhausted.borrow().is_none() {
            let why = format!(
                "the data disk at {} has {free} bytes free, below a quarter of the reserve of \
                 {} bytes: stopping this member before a log write finds the disk full",
                self.dir.display(),
                self.reserve
            );
            tracing::error!(member = self.member, "{why}");
            self.exhausted.send_replace(Some(why));
            return true;
        }
        false
    }

    /// Reads the free space every `interval` until the member must stop (then returns) or
    /// `stop` fires. Returns at once when there is no reserve.
    pub(crate) async fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        if self.reserve == 0 {
            return;
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let dir = self.dir.clone();
            let reading = tokio::task::spawn_blocking(move || free_bytes(&dir)).await;
            match reading {
                Ok(Ok(free)) => {
                    if self.record(free) {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the data disk's free space");
                }
                Err(e) => tracing::warn!(error = %e, "the free-space reading task failed"),
            }
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Result<u64, nix::Error> {
    let stat = nix::sys::statvfs::statvfs(dir)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_reserve_writes_are_refused_naming_the_member_and_above_it_taken_again() {
        let reserve = DiskReserve::new(2, PathBuf::from("/data"), 1000);
        assert!(
            reserve.refusal().is_none(),
            "no reading yet: nothing refused"
        );
        assert!(!reserve.record(5000));
        assert!(reserve.refusal().is_none());
        assert!(!reserve.record(600));
        let refusal = reserve.refusal().expect("below the reserve");
        assert_eq!(
            refusal,
            KvError::NoSpace {
                member: 2,
                free: 600,
                reserve: 1000
            }
        );
        assert!(refusal.to_string().contains("member 2"), "{refusal}");
        assert!(!reserve.record(1200));
        assert!(reserve.refusal().is_none(), "space returned");
        assert!(reserve.exhausted.borrow().is_none());
    }

    #[tokio::test]
    async fn below_a_quarter_of_the_reserve_the_member_must_stop_with_the_reason() {
        let reserve = DiskReserve::new(1, PathBuf::from("/data"), 1000);
        assert!(!reserve.record(300));
        assert!(reserve.record(200), "below a quarter: stop");
        let why = reserve.exhausted().await;
        assert!(
            why.contains("200 bytes free") && why.contains("/data"),
            "{why}"
        );
        assert!(!reserve.record(100), "told once");
    }

    #[test]
    fn without_a_reserve_nothing_is_ever_refused() {
        let reserve = DiskReserve::new(1, PathBuf::from("/data"), 0);
        assert!(!reserve.record(0));
        assert!(reserve.refusal().is_none());
    }

    #[test]
    fn the_free_space_of_a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
