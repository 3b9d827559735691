//! Three masters with an encryption configuration: 1,000 Secrets holding a canary string
//! are created through the client library; no file under the masters' directories (data,
//! Raft log, snapshots, pki, logs) nor a fresh `rafter store snapshot save` backup holds the
//! canary, in clear or base64; every Secret reads back through every master; and every
//! file under the data and pki dirs has no group or other permission bits. A ConfigMap
//! canary, which the configuration leaves in clear, is found: the scan sees the data.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use chaos_tests::{rafter_binary, Cluster};
use futures::StreamExt;
use rafter_proto::{parse_object, Object};

use crate::support::{create_settled, library_client, list_default};

const SECRETS: usize = 1000;

/// An encryption configuration for Secrets with one key, written 0600.
pub fn write_encryption_config(path: &Path, keys: &[(&str, [u8; 32])]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n".to_owned();
    for (name, secret) in keys {
        text.push_str(&format!(
            "            - name: {name}\n              secret: {}\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        ));
    }
    text.push_str("      - identity: {}\n");
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A fresh canary: unique to this run.
pub fn canary() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cnry{nanos:x}{:x}", std::process::id())
}

/// Secret `i`: the canary in an annotation and (base64 once stored) in its data.
pub fn secret(canary: &str, i: usize) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-{i}\n  namespace: default\n  annotations: {{note: {canary}-{i}}}\nstringData:\n  password: {canary}-{i}\n"
        ),
        "test",
    )
    .unwrap()
}

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// The files among `files` that hold any of `needles`.
pub fn files_holding(files: &[PathBuf], needles: &[Vec<u8>]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        })
        .cloned()
        .collect()
}

/// A Secret's canary in clear (`<canary>-<i>`) and the base64 its data value starts with.
pub fn needles(canary: &str) -> Vec<Vec<u8>> {
    let aligned = &canary.as_bytes()[..canary.len() / 3 * 3];
    vec![
        format!("{canary}-").into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(aligned)
            .into_bytes(),
    ]
}

pub fn save_backup(cluster: &Cluster, work: &Path) -> PathBuf {
    let config = work.join("config");
    cluster.write_client_config(&config).unwrap();
    let backup = work.join("backup.db");
    let saved = Command::new(rafter_binary())
        .args(["--kubeconfig", config.to_str().unwrap()])
        .args(["store", "snapshot", "save", backup.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "save failed: {}",
        String::from_utf8_lossy(&saved.stderr)
    );
    backup
}

/// Every master lists exactly the `SECRETS` Secrets with their canary values. A master
/// that was just restarted may not answer at once (it is catching up with the leader): it
/// is asked again until it answers, for at most 30 s.
pub async fn every_master_reads_back(cluster: &Cluster, canary: &str, count: usize) {
    for master in cluster.masters() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let secrets = loop {
            let listed = match cluster.client(master.id).await {
                Ok(mut client) => list_default(&mut client, "Secret").await,
                Err(_) => None,
            };
            match listed {
                Some(secrets) => break secrets,
                None if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                None => panic!("master {} never listed the secrets", master.id),
            }
        };
        assert_eq!(secrets.len(), count, "master {}", master.id);
        for object in secrets {
            let Object::Secret(s) = object else {
                panic!("not a secret")
            };
            let name = s.metadata.as_ref().unwrap().name.clone();
            let i = name.trim_start_matches("s-");
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{canary}-{i}"));
            assert_eq!(
                s.data.get("password"),
                Some(&expected),
                "{name} on master {}",
                master.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_ciphertext_in_every_file_and_backup() {
    let work = tempfile::tempdir().unwrap();
    let encryption = work.path().join("encryption.yaml");
    write_encryption_config(&encryption, &[("k1", [0x5a; 32])]);
    let cluster = Cluster::start_with(
        3,
        &["--encryption-provider-config", encryption.to_str().unwrap()],
    )
    .await
    .expect("a three-master cluster starts");
    let (client, _config) = library_client(&cluster).await;

    let canary = canary();
    futures::stream::iter(0..SECRETS)
        .map(|i| {
            let client = &client;
            let object = secret(&canary, i);
            create_settled(client, object)
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let control = format!("{canary}ctl");
    client
        .create(
            parse_object(
                &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: control, namespace: default}}\ndata: {{v: {control}}}\n"),
                "test",
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let backup = save_backup(&cluster, work.path());
    every_master_reads_back(&cluster, &canary, SECRETS).await;

    let mut files = files_under(cluster.dir());
    files.push(backup.clone());
    let hits = files_holding(&files, &needles(&canary));
    // The control (a ConfigMap, in clear by configuration) shows the scan sees the data.
    let control_hits = files_holding(&files, &[control.into_bytes()]);
    assert!(
        control_hits.contains(&backup),
        "the scan does not see the backup's data"
    );
    assert!(
        control_hits.iter().any(|f| f.starts_with(cluster.dir())),
        "the scan does not see the masters' data"
    );
    assert!(hits.is_empty(), "the canary is in clear in {hits:?}");

    let mut open = Vec::new();
    for master in cluster.masters() {
        for file in files_under(&cluster.dir().join(format!("m{}", master.id))) {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                open.push(format!("{} {mode:o}", file.display()));
            }
        }
    }
    assert!(open.is_empty(), "files others may read: {open:?}");
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
