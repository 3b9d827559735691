//! Randomized: concurrent clients put / get / compare-and-swap / delete while members are
//! stopped and restarted or cut off by a partition; the recorded history must be
//! linearizable and every acknowledged write must be accounted for. The seed is printed; rerun with `RAFT_STORE_SEED=<seed>`.

use raft_store::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use raft_store::Compare;
use raft_store::CompareOp;
use raft_store::CompareTarget;
use raft_store::Consistency;
use raft_store::DeleteRequest;
use raft_store::KeyRange;
use raft_store::Node;
use raft_store::NodeError;
use raft_store::PutRequest;
use raft_store::TxnOp;
use raft_store::TxnRequest;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use crate::cluster::*;
use chaos_tests::linearizability::linearizable;
use chaos_tests::linearizability::Input;
use chaos_tests::linearizability::Operation;
use chaos_tests::linearizability::Output;

const KEYS: [&str; 3] = ["lin/a", "lin/b", "lin/c"];
const CLIENTS: u64 = 4;
const OPS_PER_CLIENT: u64 = 60;

type History = Arc<Mutex<Vec<(&'static str, Operation)>>>;

/// The current leader among running members, without waiting.
async fn current_leader(cluster: &tokio::sync::Mutex<TestCluster>) -> Option<Node> {
    let c = cluster.lock().await;
    c.nodes
        .values()
        .filter(|n| n.metrics().borrow_watched().state == openraft::ServerState::Leader)
        .max_by_key(|n| n.metrics().borrow_watched().current_term)
        .cloned()
}

fn parse(v: &[u8]) -> u64 {
    String::from_utf8_lossy(v).parse().expect("numeric value")
}

/// Run one operation; `None` when it certainly had no effect and observed nothing.
async fn run(node: &Node, input: &Input, key: &str) -> Option<Output> {
    let outcome: Result<Output, NodeError> = match input {
        Input::Put(v) => node
            .put(PutRequest::new(key, v.to_string()))
            .await
            .map(|_| Output::Done),
        Input::Delete => node
            .delete(DeleteRequest::new(KeyRange::key(key)))
            .await
            .map(|_| Output::Done),
        Input::Get => node
            .get(key, Consistency::Linearizable)
            .await
            .map(|kv| Output::Value(kv.map(|kv| parse(&kv.value)))),
        Input::Cas { expect, new } => {
            let compare = match expect {
                Some(v) => Compare::new(
                    key,
                    CompareOp::Equal,
                    CompareTarget::Value(v.to_string().into_bytes()),
                ),
                None => Compare::new(key, CompareOp::Equal, CompareTarget::CreateRevision(0)),
            };
            let txn = TxnRequest {
                compare: vec![compare],
                success: vec![TxnOp::Put(PutRequest::new(key, new.to_string()))],
                failure: vec![],
            };
            node.txn(txn).await.map(|t| Output::Swapped(t.succeeded))
        }
    };
    match outcome {
        Ok(out) => Some(out),
        // Not the leader when asked, or the entry was truncated: no effect.
        Err(NodeError::ForwardToLeader { .. }) => None,
        Err(NodeError::Kv(e)) => panic!("unexpected key-space error: {e}"),
        Err(_) if *input == Input::Get => None,
        // Timeout, member stopped, transport: the write may or may not have committed.
        Err(_) => Some(Output::Unknown),
    }
}

async fn client(
    id: u64,
    seed: u64,
    cluster: Arc<tokio::sync::Mutex<TestCluster>>,
    history: History,
    t0: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(id));
    let mut last_value: BTreeMap<&str, u64> = BTreeMap::new();
    for seq in 0..OPS_PER_CLIENT {
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        let fresh = id * 1_000_000 + seq + 1;
        let input = match rng.gen_range(0..10) {
            0..=3 => Input::Put(fresh),
            4..=6 => Input::Get,
            7..=8 => {
                let expect = if rng.gen_bool(0.2) {
                    None
                } else {
                    last_value.get(key).copied()
                };
                Input::Cas { expect, new: fresh }
            }
            _ => Input::Delete,
        };
        let node = loop {
            if let Some(n) = current_leader(&cluster).await {
                break n;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no leader for too long"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let call = t0.elapsed().as_nanos() as u64;
        let output = run(&node, &input, key).await;
        let ret = t0.elapsed().as_nanos() as u64;
        if let Some(output) = output {
            if let Output::Value(Some(v)) = output {
                last_value.insert(key, v);
            }
            history.lock().expect("history").push((
                key,
                Operation {
                    call,
                    ret,
                    input,
                    output,
                },
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_with_restarts_and_partitions_see_a_linearizable_history() {
    let seed: u64 = std::env::var("RAFT_STORE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("linearizability test seed: {seed} (rerun with RAFT_STORE_SEED={seed})");
    let cluster = Arc::new(tokio::sync::Mutex::new(
        TestCluster::start_with(3, |cfg| cfg.request_timeout = Duration::from_secs(2)).await,
    ));
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, seed, cluster.clone(), history.clone(), t0)))
        .collect();
    let chaos = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            for _ in 0..4 {
                // Pacing of the fault schedule, not synchronisation.
                tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
                let victim = if rng.gen_bool(0.5) {
                    match current_leader(&cluster).await {
                        Some(n) => n.id(),
                        None => continue,
                    }
                } else {
                    rng.gen_range(1..=3)
                };
                if rng.gen_bool(0.5) {
                    cluster.lock().await.stop(victim).await;
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
                    cluster.lock().await.restart(victim).await;
                } else {
                    // A partition: an isolated leader keeps believing it leads for a while;
                    // it must neither acknowledge writes nor serve linearizable reads.
                    let faults = cluster.lock().await.faults.clone();
                    faults.isolate(victim);
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(200..600))).await;
                    faults.heal(victim);
                }
            }
        })
    };
    for c in clients {
        c.await.expect("client");
    }
    chaos.await.expect("chaos");
    // Final reads, after every client finished: they pin down the end state of each key.
    for key in KEYS {
        let c = cluster.lock().await;
        let leader = c.wait_for_leader().await;
        drop(c);
        let call = t0.elapsed().as_nanos() as u64;
        let value = eventually("final linearizable read", || async {
            match leader.get(key, Consistency::Linearizable).await {
                Ok(kv) => Some(kv.map(|kv| parse(&kv.value))),
                Err(e) if e.is_retryable() => None,
                Err(e) => panic!("final read: {e}"),
            }
        })
        .await;
        let ret = t0.elapsed().as_nanos() as u64;
        history.lock().expect("history").push((
            key,
            Operation {
                call,
                ret,
                input: Input::Get,
                output: Output::Value(value),
            },
        ));
    }
    let history = history.lock().expect("history").clone();
    let acknowledged = history
        .iter()
        .filter(|(_, op)| op.output != Output::Unknown)
        .count();
    eprintln!(
        "history: {acknowledged} acknowledged operations, {} with unknown outcome (seed {seed})",
        history.len() - acknowledged
    );
    assert!(
        acknowledged >= (CLIENTS * OPS_PER_CLIENT / 4) as usize,
        "too little progress: {acknowledged} ops"
    );
    for key in KEYS {
        let ops: Vec<Operation> = history
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, op)| op.clone())
            .collect();
        assert!(
            linearizable(None, &ops).expect("the history can be checked"),
            "history of {key} is not linearizable (seed {seed}):\n{ops:#?}"
        );
    }
    let c = Arc::try_unwrap(cluster)
        .map_err(|_| "cluster still shared")
        .expect("sole owner")
        .into_inner();
    c.shutdown_all().await;
}
