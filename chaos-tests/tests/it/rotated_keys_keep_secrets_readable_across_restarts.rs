//! Key rotation on three masters: Secrets written under key 1; key 2 is added first and
//! every master restarted; `rafter secrets reencrypt` rewrites them; key 1 is removed and
//! every master restarted: every Secret still reads back through every master. A master
//! then started without key 2 refuses to serve them, naming the key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos_tests::{rafter_binary, Cluster};
use futures::StreamExt;
use rafter_proto::api;

use crate::secrets_are_ciphertext_in_every_file_and_backup::{
    canary, every_master_reads_back, secret, write_encryption_config,
};
use crate::support::{create_settled, library_client};

const SECRETS: usize = 1000;
const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

async fn restart_all(cluster: &mut Cluster) {
    let ids: Vec<u64> = cluster.masters().iter().map(|m| m.id).collect();
    for id in ids {
        cluster.restart(id).unwrap();
    }
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("the restarted masters elect a leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_keep_secrets_readable_across_restarts() {
    let work = tempfile::tempdir().unwrap();
    let encryption = work.path().join("encryption.yaml");
    write_encryption_config(&encryption, &[("k1", K1)]);
    let mut cluster = Cluster::start_with(
        3,
        &["--encryption-provider-config", encryption.to_str().unwrap()],
    )
    .await
    .expect("a three-master cluster starts");
    let canary = canary();
    {
        let (client, _config) = library_client(&cluster).await;
        futures::stream::iter(0..SECRETS)
            .map(|i| {
                let client = &client;
                let object = secret(&canary, i);
                create_settled(client, object)
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    }

    // Key 2 first, key 1 kept to read what is stored; then rewrite everything.
    write_encryption_config(&encryption, &[("k2", K2), ("k1", K1)]);
    restart_all(&mut cluster).await;
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let reencrypt = Command::new(rafter_binary())
        .args(["--kubeconfig", config.to_str().unwrap()])
        .args(["secrets", "reencrypt"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&reencrypt.stdout);
    assert!(
        reencrypt.status.success(),
        "reencrypt failed: {}\n{out}",
        String::from_utf8_lossy(&reencrypt.stderr)
    );
    assert!(out.contains("rewrote "), "no progress reported: {out}");
    let rewritten: usize = out
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out}"));
    assert!(rewritten >= SECRETS, "{out}");

    // Key 1 gone: everything is under key 2.
    write_encryption_config(&encryption, &[("k2", K2)]);
    restart_all(&mut cluster).await;
    every_master_reads_back(&cluster, &canary, SECRETS).await;

    // A master without key 2 says so instead of serving ciphertext.
    write_encryption_config(&encryption, &[("k1", K1)]);
    cluster.restart(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        let answer = match cluster.client(3).await {
            Ok(mut client) => client
                .list(api::ListRequest {
                    kind: "Secret".to_owned(),
                    namespace: "default".to_owned(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Err(e) => Err(tonic::Status::unavailable(e.to_string())),
        };
        match answer {
            Err(status) if status.message().contains("k2") => break status.message().to_owned(),
            Ok(()) => panic!("master 3 served Secrets it has no key for"),
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "master 3 never refused with the key named: {status}\n{}",
                    cluster.log_tail(3)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(message.contains("configuration"), "{message}");
}
