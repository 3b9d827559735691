//! Early election: a follower whose leader went silent and is known dead campaigns at once.
//!
//! Owns [`LeaderContact`] (when the last append arrived, and whether the leader's
//! replication stream has just ended), [`Turn`] (the pure rule of when this follower may
//! start) and [`watch_leader`], the task that carries it out.
//!
//! ```text
//!  append / heartbeat ──► LeaderContact.touch()
//!  stream from leader ends ──► LeaderContact.hint()
//!                                   │
//!  watch_leader: silent at = min(last append + (2 + rank) × heartbeat,
//!                                stream end  +      rank  × heartbeat)
//!                then every heartbeat: probe leader
//!                  ── refused since R, and now ≥ R + rank × heartbeat ──► raft.trigger().elect(false)
//!                  └─ anything else ──► nothing (openraft's own timer)
//! ```
//!
//! `rank` is this member's place among the voters other than the leader, lowest id first:
//! the followers of a dead leader do not all campaign at once and split the vote. A follower
//! that has seen a new leader or a newer term meanwhile (it voted for the first
//! candidate) does nothing. It must not touch the vote rules: the candidate still needs its
//! peers' votes, which [`super::grant`] helps past the leader lease.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::vote::RaftLeaderId;
use openraft::ServerState;
use tokio::time::Instant;

use crate::failover::Failover;
use crate::types::NodeId;
use crate::types::Raft;

/// When this follower last heard its leader, written by the Raft server's append handlers.
#[derive(Debug)]
pub(crate) struct LeaderContact {
    inner: Mutex<Contact>,
    wake: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct Contact {
    last_append: Instant,
    /// When a replication stream last ended, if no append came after it.
    stream_ended: Option<Instant>,
}

impl LeaderContact {
    pub(crate) fn new() -> Self {
        LeaderContact {
            inner: Mutex::new(Contact {
                last_append: Instant::now(),
                stream_ended: None,
            }),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// An append or heartbeat arrived.
    pub(crate) fn touch(&self) {
        let mut c = self.lock();
        c.last_append = Instant::now();
        c.stream_ended = None;
    }

    /// A replication stream from the leader ended: look at the leader at once.
    pub(crate) fn hint(&self) {
        self.lock().stream_ended = Some(Instant::now());
        self.wake.notify_one();
    }

    fn get(&self) -> Contact {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Contact> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Follower `me`'s place in line to campaign against the silent `leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    /// Its place among the voters other than the leader, lowest id first.
    rank: u32,
    /// When the leader has been silent long enough for `me`: two heartbeats after the last
    /// append for the first in rank, one more per rank after it; a replication stream that
    /// ended after the last append brings that forward to the end plus one heartbeat per
    /// rank.
    silent_at: Instant,
}

impl Turn {
    /// When `me` may campaign, the leader's port having refused connections since
    /// `refused_since`: not before its silence is long enough, nor before one heartbeat per
    /// rank has passed since death was first seen (a leader that stayed silent for long
    /// before its port closed must not set every follower off at once).
    pub(crate) fn campaign_at(self, refused_since: Instant, heartbeat: Duration) -> Instant {
        self.silent_at
            .max(refused_since + heartbeat.saturating_mul(self.rank))
    }
}

/// `me`'s [`Turn`] against `leader`; `None` when `me` is not a voter or is the leader.
pub(crate) fn election_turn(
    me: NodeId,
    leader: NodeId,
    voters: &BTreeSet<NodeId>,
    last_append: Instant,
    stream_ended: Option<Instant>,
    heartbeat: Duration,
) -> Option<Turn> {
    let rank = voters
        .iter()
        .filter(|v| **v != leader)
        .position(|v| *v == me)?;
    let rank = u32::try_from(rank).unwrap_or(u32::MAX);
    let silent = last_append + heartbeat.saturating_mul(rank.saturating_add(2));
    let silent_at = match stream_ended {
        Some(ended) if ended >= last_append => silent.min(ended + heartbeat.saturating_mul(rank)),
        _ => silent,
    };
    Some(Turn { rank, silent_at })
}

/// The leader this member follows now, in which term, with its address and the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Following {
    leader: NodeId,
    term: u64,
    addr: String,
    voters: BTreeSet<NodeId>,
}

fn following(me: NodeId, raft: &Raft) -> Option<Following> {
    let metrics = raft.metrics();
    let m = metrics.borrow_watched();
    if m.state != ServerState::Follower || !m.vote.is_committed() {
        return None;
    }
    let leader = *m.vote.leader_id().node_id();
    if leader == me || m.current_leader != Some(leader) {
        return None;
    }
    let membership = m.membership_config.membership();
    Some(Following {
        leader,
        term: m.vote.leader_id().term(),
        addr: membership.get_node(&leader)?.addr.clone(),
        voters: membership.voter_ids().collect(),
    })
}

/// Watches the leader's silence and starts an election once it is due and the leader's
/// host refuses connections; ends when `shutdown` turns true.
pub(crate) async fn watch_leader(
    me: NodeId,
    raft: Raft,
    failover: Arc<Failover>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let heartbeat = failover.heartbeat;
    // The (term, leader) this member has already campaigned against.
    let mut campaigned: Option<(u64, NodeId)> = None;
    // Since when the leader followed (term, leader) has refused connections.
    let mut refused: Option<((u64, NodeId), Instant)> = None;
    loop {
        let mut next = Instant::now() + heartbeat;
        let now = Instant::now();
        let followed = following(me, &raft).filter(|f| campaigned != Some((f.term, f.leader)));
        if let Some(f) = followed {
            let key = (f.term, f.leader);
            let contact = failover.contact.get();
            let turn = election_turn(
                me,
                f.leader,
                &f.voters,
                contact.last_append,
                contact.stream_ended,
                heartbeat,
            );
            match turn {
                Some(turn) if now < turn.silent_at => {
                    refused = None;
                    next = turn.silent_at;
                }
                Some(turn) => {
                    let probe = failover.probe.probe(&f.addr).await;
                    if !probe.confirms_death() {
                        refused = None;
                        tracing::debug!(member = me, leader = f.leader, %probe, "leader silent, not known dead");
                    } else {
                        let since = match refused {
                            Some((k, since)) if k == key => since,
                            _ => now,
                        };
                        refused = Some((key, since));
                        let at = turn.campaign_at(since, heartbeat);
                        let still = following(me, &raft);
                        let unheard = failover.contact.get().last_append == contact.last_append;
                        if Instant::now() < at {
                            next = at;
                        } else if still.as_ref() == Some(&f) && unheard {
                            tracing::info!(
                                member = me,
                                leader = f.leader,
                                term = f.term,
                                %probe,
                                "leader silent and its port refuses connections: starting an election"
                            );
                            campaigned = Some(key);
                            match raft.trigger().elect(false).await {
                                Ok(()) => failover.stats.early_election(),
                                Err(e) => tracing::warn!(error = %e, "could not start an election"),
                            }
                        }
                    }
                }
                None => {}
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = failover.contact.wake.notified() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_millis(50);

    fn voters() -> BTreeSet<NodeId> {
        BTreeSet::from([1, 2, 3])
    }

    #[test]
    fn followers_campaign_in_rank_order_after_two_heartbeats() {
        let t = Instant::now();
        let at = |me, leader| {
            election_turn(me, leader, &voters(), t, None, HB).map(|turn| turn.campaign_at(t, HB))
        };
        assert_eq!(at(2, 1), Some(t + HB * 2));
        assert_eq!(at(3, 1), Some(t + HB * 3));
        assert_eq!(at(1, 2), Some(t + HB * 2));
        assert_eq!(at(3, 2), Some(t + HB * 3));
    }

    #[test]
    fn the_leader_and_non_voters_never_campaign() {
        let t = Instant::now();
        assert_eq!(election_turn(1, 1, &voters(), t, None, HB), None);
        assert_eq!(election_turn(4, 1, &voters(), t, None, HB), None);
    }

    #[test]
    fn a_stream_that_ended_after_the_last_append_brings_the_election_forward() {
        let t = Instant::now();
        let ended = t + Duration::from_millis(10);
        let turn = |me| election_turn(me, 1, &voters(), t, Some(ended), HB).map(|x| x.silent_at);
        assert_eq!(turn(2), Some(ended));
        assert_eq!(turn(3), Some(ended + HB));
    }

    #[test]
    fn a_stream_end_before_the_last_append_is_forgotten() {
        let ended = Instant::now();
        let t = ended + Duration::from_millis(10);
        let turn = election_turn(2, 1, &voters(), t, Some(ended), HB).map(|x| x.silent_at);
        assert_eq!(turn, Some(t + HB * 2));
    }

    #[test]
    fn a_leader_long_silent_before_its_port_closed_still_staggers_its_followers() {
        let t = Instant::now();
        let refused = t + Duration::from_secs(5);
        let at =
            |me| election_turn(me, 1, &voters(), t, None, HB).map(|x| x.campaign_at(refused, HB));
        assert_eq!(at(2), Some(refused));
        assert_eq!(at(3), Some(refused + HB));
    }
}
