//! A rough throughput probe (ignored by default; the benchmark proper lives elsewhere):
//! `cargo test -p raft-store --test it throughput -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use raft_store::PutRequest;

use crate::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn concurrent_puts_share_log_appends() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_agreed_leader().await;
    for clients in [1usize, 16, 64] {
        let per_client = 2000 / clients;
        let started = Instant::now();
        let leader = Arc::new(leader.clone());
        let tasks: Vec<_> = (0..clients)
            .map(|cl| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        leader
                            .put(PutRequest::new(format!("t/{cl}/{i}"), vec![b'v'; 256]))
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client");
        }
        let n = clients * per_client;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{clients:>3} clients: {n} puts in {secs:.2}s = {:.0} puts/s",
            n as f64 / secs
        );
    }
    for clients in [1usize, 16, 64] {
        let per_client = 2000 / clients;
        let started = Instant::now();
        let leader = Arc::new(leader.clone());
        let tasks: Vec<_> = (0..clients)
            .map(|cl| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        leader
                            .get(format!("t/{cl}/{i}"), raft_store::Consistency::Linearizable)
                            .await
                            .expect("get");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client");
        }
        let n = clients * per_client;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{clients:>3} clients: {n} linearizable gets in {secs:.2}s = {:.0} gets/s",
            n as f64 / secs
        );
    }
    c.shutdown_all().await;
}
