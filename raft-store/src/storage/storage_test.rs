//! openraft's storage conformance suite over the RocksDB log store and state machine.

use std::sync::Arc;

use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;

use super::*;
use crate::types::TypeConfig;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Arc<tempfile::TempDir>> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(Arc<tempfile::TempDir>, LogStore, StateMachine), openraft::StorageError<TypeConfig>>
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = open_store(dir.path(), Limits::default()).expect("open store");
        Ok((Arc::new(dir), log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocks_store_passes_openraft_storage_suite() {
    Suite::test_all(RocksBuilder)
        .await
        .expect("openraft storage suite");
}

fn blank(index: u64) -> crate::types::Entry {
    crate::types::Entry {
        log_id: crate::types::LogId {
            leader_id: openraft::impls::leader_id_adv::LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        },
        payload: openraft::EntryPayload::Blank,
    }
}

fn indexes(entries: &[crate::types::Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

/// Appends return before their entries are on disk. Reads older than the in-memory tail,
/// truncation and purging queue behind them, so each sees the log exactly as appended
/// before it; and what was reported flushed is there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_jobs_see_every_append_queued_before_them() {
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::RaftLogReader;

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, sm) = open_store(dir.path(), Limits::default()).expect("open store");
    // More entries than the in-memory tail holds, in appends not awaited for flushing.
    let mut flushed = Vec::new();
    for chunk in (1..=3000u64).collect::<Vec<_>>().chunks(500) {
        let (tx, rx) = TypeConfig::oneshot();
        log.append(chunk.iter().map(|&i| blank(i)), IOFlushed::signal(tx))
            .await
            .expect("append");
        flushed.push(rx);
    }
    let all = log.try_get_log_entries(1..).await.expect("read");
    assert_eq!(indexes(&all), (1..=3000).collect::<Vec<_>>());

    log.truncate_after(Some(blank(2500).log_id))
        .await
        .expect("truncate");
    log.purge(blank(100).log_id).await.expect("purge");
    let left = log.try_get_log_entries(0..).await.expect("read");
    assert_eq!(indexes(&left), (101..=2500).collect::<Vec<_>>());
    for rx in flushed {
        rx.await.expect("flush reported").expect("flushed");
    }
    drop(log);
    drop(sm);

    let (mut log, _sm) = open_store(dir.path(), Limits::default()).expect("reopen store");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id.map(|l| l.index), Some(2500));
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(100));
    let reread = log.try_get_log_entries(0..).await.expect("read");
    assert_eq!(indexes(&reread), (101..=2500).collect::<Vec<_>>());
}

/// Entry `index` carrying `op`, logged at the leader's clock `now_ms`.
fn normal(index: u64, now_ms: u64, op: crate::kv::Op) -> crate::types::Entry {
    let mut entry = blank(index);
    entry.payload = openraft::EntryPayload::Normal(crate::kv::Command {
        now_ms,
        fence_term: None,
        op,
    });
    entry
}

fn put(index: u64) -> crate::types::Entry {
    let request = crate::kv::PutRequest::new(format!("key/{index:04}"), vec![7u8; 256]);
    normal(index, 0, crate::kv::Op::Put(request))
}

/// What a crash would leave: a copy of the data directory taken while the store is open.
fn crash_image(dir: &std::path::Path) -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy(&entry.path(), &target);
            } else if entry.file_name() != "LOCK" {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let image = tempfile::tempdir().expect("tempdir");
    copy(dir, image.path());
    image
}

/// The applied index of the store in `dir`, and the indexes its log holds.
async fn recovered(dir: &std::path::Path) -> (u64, Vec<u64>) {
    use openraft::storage::RaftStateMachine;
    use openraft::RaftLogReader;

    let (mut log, mut sm) = open_store(dir, Limits::default()).expect("open crash image");
    let (applied, _) = sm.applied_state().await.expect("applied state");
    let entries = log.try_get_log_entries(0..).await.expect("read log");
    (applied.map_or(0, |l| l.index), indexes(&entries))
}

/// The data column family's writes skip RocksDB's WAL, so a crash may lose applied entries
/// from it; the log must then still hold every entry after the applied point, to be applied
/// again. A snapshot makes the data durable up to its point before the log below it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_applied_entry_the_log_cannot_replay() {
    use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
    use openraft::type_config::TypeConfigExt;
    use openraft::RaftSnapshotBuilder;

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = open_store(dir.path(), Limits::default()).expect("open store");
    let entries: Vec<_> = (1..=300).map(put).collect();
    let (tx, rx) = TypeConfig::oneshot();
    log.append(entries.clone(), IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flush reported").expect("flushed");
    sm.apply(futures::stream::iter(
        entries.into_iter().map(|e| Ok((e, None))),
    ))
    .await
    .expect("apply");

    // A crash now: whatever of the data survived, the log covers the rest.
    let image = crash_image(dir.path());
    let (applied, logged) = recovered(image.path()).await;
    assert!(applied <= 300);
    assert_eq!(logged, (1..=300).collect::<Vec<_>>());

    // A snapshot at 300, then the log purged below it (as openraft does): a crash now must
    // find the data applied at least that far.
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");
    let snapshot_index = snapshot.meta.last_log_id.map(|l| l.index);
    assert_eq!(snapshot_index, Some(300));
    log.purge(blank(300).log_id).await.expect("purge");
    let image = crash_image(dir.path());
    let (applied, logged) = recovered(image.path()).await;
    assert_eq!(applied, 300, "the data below the purged log is durable");
    assert!(logged.is_empty());
}

/// Reads answered from memory agree with RocksDB after any mix of puts, deletes,
/// transactions, leases and a snapshot install, in every read shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_memory_agree_with_the_key_space() {
    use crate::kv::{
        Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, Op, PutRequest, RangeRequest,
        TxnOp, TxnRequest,
    };
    use openraft::storage::RaftStateMachine;
    use openraft::RaftSnapshotBuilder;
    use rand::{Rng, SeedableRng};

    let dir = tempfile::tempdir().expect("tempdir");
    let (_log, mut sm) = open_store(dir.path(), Limits::default()).expect("open store");
    let handle = sm.handle();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let key = |i: u64| format!("k/{i:02}").into_bytes();
    let mut index = 0;
    let mut snapshot = None;
    for round in 0..4u64 {
        let mut entries = Vec::new();
        for _ in 0..200 {
            index += 1;
            let k = key(rng.gen_range(0..30));
            let op = match rng.gen_range(0..7) {
                0..=2 => Op::Put(PutRequest::new(k, vec![rng.gen::<u8>(); 8])),
                3 => Op::Delete(DeleteRequest::new(KeyRange::key(k))),
                4 => Op::Delete(DeleteRequest::new(KeyRange::prefix("k/1"))),
                5 => Op::Txn(TxnRequest {
                    compare: vec![Compare::new(
                        k.clone(),
                        CompareOp::Greater,
                        CompareTarget::Version(1),
                    )],
                    success: vec![TxnOp::Delete(DeleteRequest::new(KeyRange::key(k.clone())))],
                    failure: vec![TxnOp::Put(PutRequest::new(k, b"txn".to_vec()))],
                }),
                _ => {
                    // A leased key; the lease expires at the next round's clock.
                    let id = index;
                    entries.push(normal(
                        index,
                        round * 1_000,
                        Op::LeaseGrant { id, ttl_ms: 500 },
                    ));
                    index += 1;
                    let mut put = PutRequest::new(k, b"leased".to_vec());
                    put.lease = id;
                    Op::Put(put)
                }
            };
            entries.push(normal(index, round * 1_000, op));
        }
        index += 1;
        entries.push(normal(index, round * 1_000 + 900, Op::LeaseExpire));
        sm.apply(futures::stream::iter(
            entries.into_iter().map(|e| Ok((e, None))),
        ))
        .await
        .expect("apply");
        if round == 1 {
            snapshot = Some(
                sm.get_snapshot_builder()
                    .await
                    .build_snapshot()
                    .await
                    .expect("snapshot"),
            );
        }
        if round == 2 {
            // The key space goes back to round 1's: what memory held of round 2 must go.
            let snap = snapshot.take().expect("snapshot of round 1");
            sm.install_snapshot(&snap.meta, snap.snapshot)
                .await
                .expect("install");
        }

        let mut from_memory = 0;
        for i in 0..30 {
            for (keys_only, count_only) in [(false, false), (true, false), (false, true)] {
                let mut req = RangeRequest::new(KeyRange::key(key(i)));
                req.keys_only = keys_only;
                req.count_only = count_only;
                let stored = {
                    let req = req.clone();
                    handle.read(move |kv| kv.range(&req)).await.expect("read")
                }
                .expect("range");
                if let Some(answer) = handle.range_in_memory(&req) {
                    from_memory += 1;
                    assert_eq!(answer, stored, "round {round}, key {i}, {req:?}");
                }
                assert_eq!(
                    handle.range(req).await.expect("read").expect("range"),
                    stored
                );
            }
        }
        if round == 2 {
            assert_eq!(
                from_memory, 0,
                "memory forgets a key space that was replaced"
            );
        } else {
            assert!(
                from_memory > 0,
                "round {round}: no read was answered from memory"
            );
        }
    }
}

/// The store's data hold every object of the cluster: the directories it creates are 0700
/// and the snapshot and backup files 0600, whatever the umask (RocksDB's own files take the
/// umask, which the master sets to 0077).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_directories_snapshots_and_backups_are_private() {
    use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
    use openraft::type_config::TypeConfigExt;
    use openraft::RaftSnapshotBuilder;
    use std::os::unix::fs::PermissionsExt;

    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("data/store");
    let (mut log, mut sm) = open_store(&dir, Limits::default()).expect("open store");
    let entries: Vec<_> = (1..=10).map(put).collect();
    let (tx, rx) = TypeConfig::oneshot();
    log.append(entries.clone(), IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flush reported").expect("flushed");
    sm.apply(futures::stream::iter(
        entries.into_iter().map(|e| Ok((e, None))),
    ))
    .await
    .expect("apply");
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("snapshot");

    assert_eq!(mode(&root.path().join("data")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let snapshots = dir.join("snapshots");
    assert_eq!(mode(&snapshots), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&snapshots).expect("read dir") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files > 0, "the snapshot was written to a file");
    drop((log, sm));

    let db = rocks::open_db(&dir).expect("reopen");
    let backup = root.path().join("backup.snap");
    write_backup(&db, &backup).expect("backup");
    assert_eq!(mode(&backup), 0o600);
}
