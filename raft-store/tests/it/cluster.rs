//! A test cluster of in-process members on ephemeral loopback ports, with helpers that wait
//! on conditions (never sleep to synchronise).

use raft_store::WatchReceiver;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

use raft_store::Consistency;
use raft_store::NetworkFaults;
use raft_store::Node;
use raft_store::NodeConfig;
use raft_store::NodeId;
use raft_store::PutRequest;
use raft_store::PutResponse;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Poll `check` until it returns `Some`, failing the test after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct TestCluster {
    pub dirs: BTreeMap<NodeId, tempfile::TempDir>,
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub faults: NetworkFaults,
    /// This cluster's name, unique among the tests of this process (they run side by side
    /// and reuse each other's freed ports).
    pub name: String,
    tweak: fn(&mut NodeConfig),
}

/// A cluster name no other test cluster of this process has.
pub fn unique_cluster_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("test-{}-{n}", std::process::id())
}

impl TestCluster {
    /// Start `n` members (ids 1..=n) and bootstrap them as one cluster.
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, |_| {}).await
    }

    pub async fn start_with(n: u64, tweak: fn(&mut NodeConfig)) -> Self {
        init_tracing();
        let mut c = TestCluster {
            dirs: BTreeMap::new(),
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            faults: NetworkFaults::default(),
            name: unique_cluster_name(),
            tweak,
        };
        for id in 1..=n {
            c.dirs.insert(id, tempfile::tempdir().expect("tempdir"));
            c.start_member(id, "127.0.0.1:0".parse().expect("addr"))
                .await;
        }
        let members = c.addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
        c.nodes[&1].initialize(members).await.expect("initialize");
        c.wait_for_agreed_leader().await;
        c
    }

    /// A leader that every running member follows, with its first-term entry applied.
    pub async fn wait_for_agreed_leader(&self) -> Node {
        eventually("a leader every running member agrees on", || async {
            let leader = self.wait_for_leader().await;
            let m = leader.metrics().borrow_watched().clone();
            let agreed = self.nodes.values().all(|n| {
                let nm = n.metrics().borrow_watched().clone();
                nm.current_leader == Some(leader.id()) && nm.current_term == m.current_term
            });
            let settled = m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term);
            (agreed && settled).then_some(leader)
        })
        .await
    }

    pub fn config(&self, id: NodeId, listen: SocketAddr) -> NodeConfig {
        let mut cfg = NodeConfig::new(id, self.dirs[&id].path());
        cfg.listen_addr = listen;
        cfg.cluster_name = self.name.clone();
        cfg.request_timeout = Duration::from_secs(3);
        cfg.faults = self.faults.clone();
        (self.tweak)(&mut cfg);
        cfg
    }

    pub async fn start_member(&mut self, id: NodeId, listen: SocketAddr) -> Node {
        let node = Node::start(self.config(id, listen))
            .await
            .expect("start member");
        self.addrs.insert(id, node.addr().parse().expect("addr"));
        self.nodes.insert(id, node.clone());
        node
    }

    /// Shut member `id` down; its directory stays.
    pub async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("running member");
        node.shutdown().await.expect("shutdown");
    }

    /// Start member `id` again from its directory, on its old address.
    pub async fn restart(&mut self, id: NodeId) -> Node {
        let addr = self.addrs[&id];
        self.start_member(id, addr).await
    }

    /// The running member that leads in the highest term (a stale, cut-off leader loses).
    pub async fn wait_for_leader(&self) -> Node {
        eventually("a leader among the running members", || async {
            self.nodes
                .values()
                .filter(|n| {
                    let m = n.metrics().borrow_watched().clone();
                    m.state == openraft::ServerState::Leader && m.current_leader == Some(n.id())
                })
                .max_by_key(|n| n.metrics().borrow_watched().current_term)
                .cloned()
        })
        .await
    }

    /// Put through whichever member leads, retrying while leadership moves.
    pub async fn put(&self, key: &str, value: &str) -> PutResponse {
        self.put_req(PutRequest::new(key, value)).await
    }

    /// [`TestCluster::put`] for any put request. Only retries answers that say the write was
    /// not applied (`ForwardToLeader`) or may be retried safely in these tests (unique keys).
    pub async fn put_req(&self, req: PutRequest) -> PutResponse {
        let key = String::from_utf8_lossy(&req.key).into_owned();
        eventually(&format!("put {key}"), || async {
            let leader = self.wait_for_leader().await;
            match leader.put(req.clone()).await {
                Ok(r) => Some(r),
                Err(e) if e.is_retryable() => None,
                Err(e) => panic!("put {key}: {e}"),
            }
        })
        .await
    }

    /// Wait until every running member has applied up to the leader's last applied index.
    pub async fn wait_applied_everywhere(&self) {
        let leader = self.wait_for_leader().await;
        let target = leader
            .metrics()
            .borrow_watched()
            .last_log_index
            .unwrap_or(0);
        for node in self.nodes.values() {
            node.raft()
                .wait(Some(DEADLINE))
                .applied_index_at_least(Some(target), "catch up")
                .await
                .expect("member catches up");
        }
    }

    pub async fn value_on(&self, id: NodeId, key: &str) -> Option<String> {
        let node = &self.nodes[&id];
        node.get(key, Consistency::Serializable)
            .await
            .expect("serializable read")
            .map(|kv| String::from_utf8(kv.value).expect("utf8"))
    }

    pub fn follower_ids(&self, leader: NodeId) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|id| *id != leader)
            .collect()
    }

    pub async fn shutdown_all(mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}
