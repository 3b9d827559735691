//! Fast failover: elect a new leader as soon as the old one is *known* dead, instead of
//! after the followers' leader lease has run out.
//!
//! openraft's followers refuse every vote while the lease of the leader they follow lasts
//! (`election_timeout_max` after its last heartbeat), so after a crash the first candidate
//! is usually refused and the election takes about two timeouts. Reads here use read index
//! (a quorum ack per read), so safety never rests on that lease: it only keeps a live
//! leader from being disrupted. This module lifts it when, and only when, the leader's
//! host refuses TCP connections to its Raft port: the process is gone. A paused,
//! partitioned or black-holed leader (connect accepted or unanswered) keeps today's path.
//!
//! | module | owns |
//! |---|---|
//! | `probe` | [`LeaderProbe`]: the connect that tells a dead leader from a silent one |
//! | `watcher` | [`LeaderContact`] and [`watch_leader`]: a follower's early election, staggered by rank |
//! | `grant` | [`lease_stands_in_the_way`]: which vote requests the lease alone would refuse |
//!
//! ```text
//!  follower A (rank 0)                     follower B
//!  no append for 2 heartbeats
//!  probe leader: refused ──► elect ──vote──► lease_stands_in_the_way? probe leader: refused
//!                                            └► leadership_transfer = true ─► openraft grants
//! ```
//!
//! Pre-vote is off (openraft's default, kept by `Node`); it could not be helped anyway, as
//! openraft's pre-vote honours the lease without exception. Switched by
//! `NodeConfig::fast_failover`. It must not change any other rule of the vote.

mod grant;
mod probe;
mod watcher;

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) use grant::lease_stands_in_the_way;
pub(crate) use probe::LeaderProbe;
pub(crate) use watcher::watch_leader;
pub(crate) use watcher::LeaderContact;

/// How often fast failover has acted on this member since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailoverCounts {
    /// Elections this member started because its leader's port refused connections.
    pub early_elections: u64,
    /// Votes this member let past the leader lease because the leader's port refused
    /// connections.
    pub lease_bypasses: u64,
}

#[derive(Debug, Default)]
struct Stats {
    early_elections: AtomicU64,
    lease_bypasses: AtomicU64,
}

impl Stats {
    fn early_election(&self) {
        self.early_elections.fetch_add(1, Ordering::Relaxed);
    }
}

/// One member's fast-failover state, shared by its Raft server and its leader watcher.
#[derive(Debug)]
pub(crate) struct Failover {
    /// Whether to act at all (`NodeConfig::fast_failover`); contact is recorded either way.
    pub(crate) enabled: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) probe: LeaderProbe,
    pub(crate) contact: LeaderContact,
    stats: Stats,
}

impl Failover {
    /// Fast failover for a member with `heartbeat` interval, dialling peers through `routes`.
    pub(crate) fn new(
        enabled: bool,
        heartbeat: Duration,
        routes: std::collections::BTreeMap<String, String>,
    ) -> Self {
        Failover {
            enabled,
            heartbeat,
            // A refused connect on a live network takes a round trip; an answer older than a
            // heartbeat is asked again.
            probe: LeaderProbe::new(routes, heartbeat, heartbeat),
            contact: LeaderContact::new(),
            stats: Stats::default(),
        }
    }

    /// A vote let past the lease.
    pub(crate) fn lease_bypassed(&self) {
        self.stats.lease_bypasses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> FailoverCounts {
        FailoverCounts {
            early_elections: self.stats.early_elections.load(Ordering::Relaxed),
            lease_bypasses: self.stats.lease_bypasses.load(Ordering::Relaxed),
        }
    }
}
