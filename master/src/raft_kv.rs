//! The gateway's store on a master: the local raft-store member.
//!
//! Owns the translation from [`KvStore`] and [`ClusterControl`] calls to
//! [`raft_store::Node`] calls and of its errors to [`StoreError`]. Writes reaching a
//! follower are forwarded to the leader by the member itself (`forward_writes`), so the
//! registry above never needs to know who leads. Member client addresses (for the Cluster
//! service) are kept in the store under `/rafter/members/<id>`.

use raft_store::WatchReceiver;
use std::collections::BTreeSet;

use futures::stream;
use raft_store::kv::{KeyRange, KvResponse, Op, PutRequest, RangeRequest, RangeResponse};
use raft_store::{Consistency, Node, NodeError, WatchRequest};
use rafter_proto::api::{self, ClusterStatus};

use api_gateway::{ClusterControl, EventStream, KvStore, StoreError};
use rafter_proto::ReadConsistency;

/// Where member client addresses are kept.
const MEMBERS_PREFIX: &str = "/rafter/members/";

/// The local raft-store member as the gateway's store.
#[derive(Clone)]
pub struct RaftKv {
    node: Node,
}

impl RaftKv {
    /// Wraps a started member.
    pub fn new(node: Node) -> RaftKv {
        RaftKv { node }
    }

    /// The member underneath.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Records the client (API) address of member `id`, so every master can list it.
    pub async fn register_client_address(
        &self,
        id: u64,
        client_address: &str,
    ) -> Result<(), StoreError> {
        let key = format!("{MEMBERS_PREFIX}{id}");
        self.node
            .put(PutRequest::new(key, client_address.as_bytes().to_vec()))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn client_addresses(
        &self,
    ) -> Result<std::collections::BTreeMap<u64, String>, StoreError> {
        self.client_addresses_read(Consistency::Serializable).await
    }

    /// Every master's registered API address, by member id, read with `consistency`.
    pub(crate) async fn client_addresses_read(
        &self,
        consistency: Consistency,
    ) -> Result<std::collections::BTreeMap<u64, String>, StoreError> {
        let response = self
            .node
            .range(
                RangeRequest::new(KeyRange::prefix(MEMBERS_PREFIX)),
                consistency,
            )
            .await
            .map_err(store_error)?;
        Ok(response
            .kvs
            .into_iter()
            .filter_map(|kv| {
                let key = String::from_utf8_lossy(&kv.key);
                let id = key.strip_prefix(MEMBERS_PREFIX)?.parse().ok()?;
                Some((id, String::from_utf8_lossy(&kv.value).into_owned()))
            })
            .collect())
    }
}

/// Maps a member error to what the gateway tells its caller.
///
/// ```text
///   NodeError                          StoreError        gRPC (api_gateway::status_of)
///   Kv(e)                              Kv(e)             the Kubernetes reason
///   OutcomeUnknown (entry discarded,   OutcomeUnknown    DEADLINE_EXCEEDED + marker
///     forwarded reply lost)
///   Timeout                            Timeout           DEADLINE_EXCEEDED
///   ForwardToLeader, Transport,        Unavailable       UNAVAILABLE (not proposed)
///     Stopped, Membership, ...
/// ```
///
/// Writes go through [`write_error`], which is stricter about what "not proposed" means.
pub fn store_error(error: NodeError) -> StoreError {
    match error {
        NodeError::Kv(e) => StoreError::Kv(e),
        NodeError::OutcomeUnknown(why) => StoreError::OutcomeUnknown(why),
        NodeError::Timeout { after } => {
            StoreError::Timeout(format!("no quorum answered within {after:?}"))
        }
        NodeError::ForwardToLeader {
            leader_id: None, ..
        } => StoreError::Unavailable(
            "no leader is elected right now; retry shortly or on another master".to_owned(),
        ),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Maps a member error of a write to what the gateway tells its caller. Only errors the
/// member raises before it proposes the write (no leader to forward to, the leader could
/// not be connected to, the key space refused it) may say "not applied"; anything after
/// the proposal (no quorum in time, the entry discarded, the forwarded reply lost, Raft
/// stopping under it) is [`StoreError::OutcomeUnknown`], which clients never send again
/// as if it was not sent.
pub(crate) fn write_error(error: NodeError) -> StoreError {
    match error {
        NodeError::Timeout { after } => StoreError::OutcomeUnknown(format!(
            "no quorum answered within {after:?} after the write was proposed"
        )),
        NodeError::Stopped(why) => StoreError::OutcomeUnknown(format!(
            "the store stopped while the write was in flight: {why}"
        )),
        other => store_error(other),
    }
}

#[async_trait::async_trait]
impl KvStore for RaftKv {
    async fn range(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse, StoreError> {
        let consistency = match consistency {
            ReadConsistency::Linearizable => Consistency::Linearizable,
            ReadConsistency::Serializable => Consistency::Serializable,
        };
        self.node
            .range(request, consistency)
            .await
            .map_err(store_error)
    }

    async fn write(&self, op: Op, fence: Option<u64>) -> Result<KvResponse, StoreError> {
        match op {
            Op::Put(_) | Op::Delete(_) | Op::Txn(_) => {
                self.node.submit(op, fence).await.map_err(write_error)
            }
            other => Err(StoreError::Kv(raft_store::kv::KvError::Invalid(format!(
                "the gateway does not issue {other:?} writes"
            )))),
        }
    }

    async fn watch(&self, range: KeyRange, from: u64) -> Result<EventStream, StoreError> {
        let request = WatchRequest {
            range,
            start_revision: from.max(1),
            prev_kv: true,
        };
        let watch = self.node.watch(request).await.map_err(store_error)?;
        let events = stream::unfold(watch, |mut watch| async move {
            let next = watch.next().await?;
            Some((next.map_err(store_error), watch))
        });
        Ok(Box::pin(events))
    }

    fn metrics_text(&self) -> String {
        let memory = self.node.store_memory();
        api_gateway::prometheus_text(
            "rafter_store",
            &[
                (
                    "memtable_bytes",
                    "bytes in the store's memtables, every column family",
                    memory.memtables,
                ),
                (
                    "table_reader_bytes",
                    "bytes of SST index and filter blocks held outside the block caches",
                    memory.table_readers,
                ),
                (
                    "block_cache_bytes",
                    "bytes of data blocks in the store's block caches",
                    memory.block_cache,
                ),
            ],
        )
    }
}

#[async_trait::async_trait]
impl ClusterControl for RaftKv {
    async fn status(&self) -> Result<ClusterStatus, StoreError> {
        let metrics = self.node.metrics().borrow_watched().clone();
        let addresses = self.client_addresses().await.unwrap_or_default();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.clone();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let healthy = match (&replication, metrics.current_leader) {
                    // The leader knows who replicates; followers only know the leader is alive.
                    (Some(progress), Some(leader)) if leader == metrics.id => {
                        *id == leader || progress.get(id).is_some_and(|matched| matched.is_some())
                    }
                    (_, Some(leader)) => *id == leader || *id == metrics.id,
                    _ => *id == metrics.id,
                };
                api::Member {
                    id: *id,
                    client_address: addresses.get(id).cloned().unwrap_or_default(),
                    peer_address: node.addr.clone(),
                    role: if voters.contains(id) {
                        "Voter"
                    } else {
                        "Learner"
                    }
                    .to_owned(),
                    healthy,
                }
            })
            .collect();
        let applied = metrics.last_applied.map(|l| l.index).unwrap_or(0);
        let committed = metrics.last_log_index.unwrap_or(0);
        let revision = self.node.revision().await.map_err(store_error)?;
        Ok(ClusterStatus {
            member_id: metrics.id,
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            applied_index: applied,
            commit_index: committed,
            revision: i64::try_from(revision).unwrap_or(i64::MAX),
            members,
            ready: metrics.current_leader.is_some(),
        })
    }

    async fn add_member(
        &self,
        request: api::AddMemberRequest,
    ) -> Result<ClusterStatus, StoreError> {
        if request.id == 0 {
            return Err(StoreError::refused("member id 0 is not valid"));
        }
        if request.peer_address.is_empty() {
            return Err(StoreError::refused(format!(
                "member {} needs the peer address the others reach it at",
                request.id
            )));
        }
        // openraft keeps a known member's address as it was, so a different one would be
        // silently ignored; a member moves by being removed and added again.
        let metrics = self.node.metrics().borrow_watched().clone();
        let known = metrics
            .membership_config
            .membership()
            .nodes()
            .find(|(id, _)| **id == request.id)
            .map(|(_, node)| node.addr.clone());
        if let Some(addr) = known.filter(|addr| *addr != request.peer_address) {
            return Err(StoreError::refused(format!(
                "member {} is already in the cluster with peer address {addr}; remove it \
                 before adding it with another",
                request.id
            )));
        }
        self.node
            .add_learner(request.id, request.peer_address.clone())
            .await
            .map_err(store_error)?;
        if !request.client_address.is_empty() {
            self.register_client_address(request.id, &request.client_address)
                .await?;
        }
        if request.promote {
            let metrics = self.node.metrics().borrow_watched().clone();
            let mut voters: BTreeSet<u64> =
                metrics.membership_config.membership().voter_ids().collect();
            voters.insert(request.id);
            self.node
                .change_membership(voters)
                .await
                .map_err(store_error)?;
        }
        self.status().await
    }

    async fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        let dir = tempfile::tempdir()
            .map_err(|e| StoreError::Unavailable(format!("a temporary directory: {e}")))?;
        let path = dir.path().join("snapshot.db");
        let info = self
            .node
            .backup(&path, Consistency::Linearizable)
            .await
            .map_err(store_error)?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading the snapshot: {e}")))?;
        tracing::info!(
            revision = info.revision,
            records = info.records,
            bytes = bytes.len(),
            "snapshot taken"
        );
        Ok(bytes)
    }

    async fn remove_member(&self, id: u64) -> Result<ClusterStatus, StoreError> {
        let metrics = self.node.metrics().borrow_watched().clone();
        let mut voters: BTreeSet<u64> =
            metrics.membership_config.membership().voter_ids().collect();
        if !voters.remove(&id) {
            return Err(StoreError::refused(format!(
                "member {id} is not a voter of this cluster"
            )));
        }
        if voters.is_empty() {
            return Err(StoreError::refused(
                "the last member cannot be removed".to_owned(),
            ));
        }
        self.node
            .change_membership(voters)
            .await
            .map_err(store_error)?;
        self.status().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_the_store_may_have_applied_are_of_unknown_outcome() {
        let unknown = [
            NodeError::OutcomeUnknown("discarded".into()),
            NodeError::Timeout {
                after: Duration::from_secs(5),
            },
            NodeError::Stopped("fatal".into()),
        ];
        for error in unknown {
            let text = error.to_string();
            assert!(
                matches!(write_error(error), StoreError::OutcomeUnknown(_)),
                "{text}"
            );
        }
        let not_proposed = [
            NodeError::ForwardToLeader {
                leader_id: None,
                addr: None,
            },
            NodeError::Transport("connection refused".into()),
        ];
        for error in not_proposed {
            let text = error.to_string();
            assert!(
                matches!(write_error(error), StoreError::Unavailable(_)),
                "{text}"
            );
        }
        assert!(matches!(
            store_error(NodeError::Timeout {
                after: Duration::from_secs(1)
            }),
            StoreError::Timeout(_)
        ));
    }
}
