//! One master keeps its data on a small filesystem the test makes (an ext4 image,
//! loop-mounted), which then fills up (ENOSPC). That member stops (exits unsuccessfully)
//! rather than accept writes it cannot keep; the other two go on acknowledging. Once space returns it starts,
//! catches up, and no acknowledged write is missing on any master.
//!
//! Needs root and loop devices; without them the test says why and passes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{every_master_holds, library_client};
use chaos_tests::{Cluster, ClusterOptions};

/// The member whose disk fills up (not 1: its data dir holds the PKI).
const VICTIM: u64 = 3;

/// A loop-mounted ext4 image; unmounted and deleted when dropped.
struct SmallDisk {
    image: PathBuf,
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A `megabytes` filesystem, or why one cannot be made here.
    fn make(megabytes: u64) -> Result<SmallDisk, String> {
        if !nix_is_root() {
            return Err("not root: cannot mount a loop device".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(megabytes * 1024 * 1024))
            .map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", path(&image)])?;
        run("mount", &["-o", "loop", path(&image), path(&mount)])?;
        Ok(SmallDisk {
            image,
            mount,
            _dir: dir,
        })
    }
}

/// Writes zeros into a file under `mount` until its filesystem is full; returns that file.
fn fill(mount: &Path) -> PathBuf {
    let filler = mount.join("filler");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&filler)
        .unwrap();
    let chunk = vec![0u8; 1024 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // What is left in a partly written block, too.
    let _ = file.write_all(&[0u8; 4096]);
    let _ = file.sync_all();
    filler
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if run("umount", &[path(&self.mount)]).is_err() {
            let _ = run("umount", &["-l", path(&self.mount)]);
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

fn nix_is_root() -> bool {
    // /proc/self/status: "Uid:\t<real>\t<effective>...".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_a_full_disk_stops_and_recovers_when_space_returns() {
    let disk = match SmallDisk::make(160) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: no small filesystem to fill: {why}");
            return;
        }
    };
    let mut cluster = Cluster::start_with_options(
        3,
        ClusterOptions {
            data_dir_of: [(VICTIM, disk.mount.join("m3"))].into(),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a three-master cluster starts");
    let (client, _config_dir) = library_client(&cluster).await;
    let mut acknowledged = BTreeMap::new();
    crate::support::create_acknowledged(&client, "before", 5, &mut acknowledged).await;
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(20))
        .await
        .unwrap();

    let mount = disk.mount.clone();
    tokio::task::spawn_blocking(move || fill(&mount))
        .await
        .unwrap();
    // RocksDB keeps space it preallocated for its write-ahead log: a restart lets go of it
    // (the old log is flushed and deleted), and the disk is filled again behind it, so
    // the next log write finds no space.
    cluster.restart(VICTIM).unwrap();
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
    let mount = disk.mount.clone();
    let filler = tokio::task::spawn_blocking(move || fill(&mount))
        .await
        .unwrap();

    // Writes go on, large ones, past whatever space RocksDB had preallocated for its log:
    // the member with no space left must stop rather than run on.
    let mut status = None;
    for i in 0..200 {
        let name = format!("big-{i}");
        let object = rafter_proto::parse_object(
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: '{}'}}\n",
                "x".repeat(700 * 1024)
            ),
            "test",
        )
        .unwrap();
        match tokio::time::timeout(Duration::from_secs(20), client.create(object)).await {
            Ok(Ok(created)) => {
                acknowledged.insert(name, created.metadata().uid.clone());
            }
            Ok(Err(rafter_client::ClientError::OutcomeUnknown { .. })) | Err(_) => {}
            Ok(Err(e)) => panic!("create {name}: {e}"),
        }
        if let Ok(exited) = cluster
            .wait_for_exit(VICTIM, Duration::from_millis(10))
            .await
        {
            status = Some(exited);
            break;
        }
    }
    let status = status.unwrap_or_else(|| {
        panic!(
            "master {VICTIM} runs on a full disk after 140 MB of writes:\n{}",
            cluster.log_tail(VICTIM)
        )
    });
    assert!(!status.success());
    // Known gap (docs/chaos.md): RocksDB aborts the process (SIGABRT) on the full disk
    // without a line in the log, so the "clear error" is only the exit status for now.
    eprintln!(
        "master {VICTIM} stopped on the full disk: {status}; its log ends:\n{}",
        cluster.log_tail(VICTIM)
    );

    // Space returns.
    std::fs::remove_file(&filler).unwrap();
    cluster.restart(VICTIM).unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("all three agree on a leader again");
    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
    drop(cluster);
    drop(disk);
}
