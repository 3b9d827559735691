//! `rafter store snapshot save` against a running three-master cluster, then `restore`
//! into an empty data directory: a new master started on it with `--init` serves every
//! object the snapshot held. A damaged snapshot is refused and writes nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{config_map, list_default};
use chaos_tests::{free_port, rafter_binary, BearerToken, Cluster};
use rafter_proto::api;
use rafter_proto::api::resources_client::ResourcesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn rafter(args: &[&str]) -> std::process::Output {
    Command::new(rafter_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("rafter runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_a_running_cluster_seeds_a_new_one_and_a_damaged_one_is_refused() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let mut client = cluster.client(2).await.unwrap();
    for i in 0..20 {
        client
            .create(api::CreateRequest {
                object: Some(config_map(&format!("cm-{i}"))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let snapshot = work.path().join("snap.db");
    let saved = rafter(&[
        "--kubeconfig",
        config.to_str().unwrap(),
        "store",
        "snapshot",
        "save",
        snapshot.to_str().unwrap(),
    ]);
    assert!(
        saved.status.success(),
        "save failed: {}",
        String::from_utf8_lossy(&saved.stderr)
    );

    // A damaged copy is refused and leaves no store behind.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let damaged = work.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let refused_dir = work.path().join("refused");
    let refused = rafter(&[
        "store",
        "snapshot",
        "restore",
        damaged.to_str().unwrap(),
        "--data-dir",
        refused_dir.to_str().unwrap(),
    ]);
    assert!(!refused.status.success(), "a damaged snapshot was restored");
    assert!(
        !refused_dir.join("store").join("db").exists(),
        "a refused restore left a store behind"
    );

    // The good one seeds a new single-master cluster holding every object.
    let seeded = work.path().join("seeded");
    let restored = rafter(&[
        "store",
        "snapshot",
        "restore",
        snapshot.to_str().unwrap(),
        "--data-dir",
        seeded.to_str().unwrap(),
    ]);
    assert!(
        restored.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let (client_port, peer_port) = (free_port().unwrap(), free_port().unwrap());
    let mut master = Command::new(rafter_binary())
        .args([
            "master",
            "--id",
            "1",
            "--init",
            "--data-dir",
            seeded.to_str().unwrap(),
        ])
        .arg("--pki-dir")
        .arg(cluster.pki_path())
        .args([
            "--listen-client",
            &format!("127.0.0.1:{client_port}"),
            "--listen-peer",
            &format!("127.0.0.1:{peer_port}"),
        ])
        .args(["--initial-cluster", &format!("1=127.0.0.1:{peer_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cluster.ca_pem().unwrap()))
        .domain_name("localhost");
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let attempt = async {
            let channel = Channel::from_shared(format!("https://localhost:{client_port}"))
                .ok()?
                .tls_config(tls.clone())
                .ok()?
                .connect()
                .await
                .ok()?;
            let mut client = ResourcesClient::with_interceptor(
                channel,
                BearerToken::new(cluster.admin_token().ok()?),
            );
            let objects = list_default(&mut client, "ConfigMap").await?;
            Some(
                objects
                    .iter()
                    .map(|o| o.metadata().name.clone())
                    .collect::<Vec<_>>(),
            )
        };
        if let Some(names) = attempt.await.filter(|n| n.len() >= 20) {
            break names;
        }
        assert!(
            Instant::now() < deadline,
            "the restored master did not serve the snapshot's objects"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = master.kill();
    let _ = master.wait();
    for i in 0..20 {
        assert!(
            names.contains(&format!("cm-{i}")),
            "cm-{i} is missing after restore"
        );
    }
}
