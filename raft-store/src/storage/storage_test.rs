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
