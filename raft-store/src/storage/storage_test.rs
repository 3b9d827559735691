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
