//! Granting a vote before the leader lease runs out, when the leader is known dead.
//!
//! Owns [`lease_stands_in_the_way`], the pure half of the decision the vote handler makes:
//! whether a vote request is one the leader lease alone would refuse, and for which leader.
//! The handler then probes that leader and, only on a refused connect, marks the request
//! as a leadership transfer so openraft skips the lease. Every other rule (the candidate's
//! log must be as up to date as ours, one vote per term) is still openraft's. It must not
//! do I/O.

use openraft::vote::RaftLeaderId;
use openraft::RaftMetrics;

use crate::types::NodeId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// The leader whose lease would make this member refuse `candidate_vote`: our vote is
/// committed to a leader other than us and the candidate, and the candidate asks in a
/// higher term. `None` when the lease is not what decides (no leader, we lead, the
/// candidate is the leader, or its term is not newer).
pub(crate) fn lease_stands_in_the_way(
    me: NodeId,
    ours: &RaftMetrics<TypeConfig>,
    candidate_vote: &Vote,
) -> Option<NodeId> {
    if !ours.vote.is_committed() {
        return None;
    }
    let (ours, theirs) = (ours.vote.leader_id(), candidate_vote.leader_id());
    let (leader, candidate) = (*ours.node_id(), *theirs.node_id());
    if leader == me || leader == candidate || theirs.term() <= ours.term() {
        return None;
    }
    Some(leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower_of(leader: NodeId, term: u64, committed: bool) -> RaftMetrics<TypeConfig> {
        let mut m = RaftMetrics::new_initial(2);
        m.current_term = term;
        m.vote = if committed {
            Vote::new_committed(term, leader)
        } else {
            Vote::new(term, leader)
        };
        m.current_leader = committed.then_some(leader);
        m
    }

    #[test]
    fn a_newer_candidate_against_a_committed_leader_meets_the_lease() {
        let ours = follower_of(1, 4, true);
        let candidate = Vote::new(5, 3);
        assert_eq!(lease_stands_in_the_way(2, &ours, &candidate), Some(1));
    }

    #[test]
    fn no_committed_leader_means_no_lease() {
        let ours = follower_of(1, 4, false);
        let candidate = Vote::new(5, 3);
        assert_eq!(lease_stands_in_the_way(2, &ours, &candidate), None);
    }

    #[test]
    fn a_candidate_in_the_same_term_is_not_helped() {
        let ours = follower_of(1, 5, true);
        let candidate = Vote::new(5, 3);
        assert_eq!(lease_stands_in_the_way(2, &ours, &candidate), None);
    }

    #[test]
    fn the_leader_itself_never_bypasses_its_own_lease() {
        let ours = follower_of(2, 4, true);
        let candidate = Vote::new(5, 3);
        assert_eq!(lease_stands_in_the_way(2, &ours, &candidate), None);
    }

    #[test]
    fn the_leader_asking_again_is_not_a_lease_question() {
        let ours = follower_of(1, 4, true);
        let candidate = Vote::new(5, 1);
        assert_eq!(lease_stands_in_the_way(2, &ours, &candidate), None);
    }
}
