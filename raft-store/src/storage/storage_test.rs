//! openraft's storage conformance suite over the RocksDB log store and state machine.

use std::sync::Arc;

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;

use super::*;
use crate::types::StorageError;
use crate::types::TypeConfig;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Arc<tempfile::TempDir>> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(Arc<tempfile::TempDir>, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = open_store(dir.path(), Limits::default()).expect("open store");
        Ok((Arc::new(dir), log, sm))
    }
}

#[test]
fn rocks_store_passes_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}
