//! The on-disk store: openraft's log storage and state machine on one RocksDB database.
//!
//! Owns the RocksDB database of a member (`<dir>/db`), its snapshot files
//! (`<dir>/snapshots`) and the data-version header. It must not do networking or decide
//! anything about the key space (that is `kv::apply`).

mod backup;
mod data_version;
mod error;
mod failpoints;
mod latest_values;
mod log_store;
mod private_files;
mod recent_log;
mod rocks;
mod snapshot_file;
mod state_machine;

use std::path::Path;

pub use backup::restore_backup;
pub(crate) use backup::write_backup;
pub use backup::BackupInfo;
pub use error::StoreError;
pub use failpoints::FAILPOINTS_COMPILED;
pub use log_store::LogStore;
pub(crate) use rocks::memory;
pub use rocks::StoreMemory;
pub(crate) use state_machine::incoming_snapshot_file;
pub use state_machine::StateHandle;
pub use state_machine::StateMachine;

use crate::kv::Limits;

/// Open (or create) the log store and state machine of one member in `dir`.
///
/// Blocks on disk I/O: call it from a blocking context.
pub fn open_store(dir: &Path, limits: Limits) -> Result<(LogStore, StateMachine), StoreError> {
    let db = rocks::open_db(dir)?;
    let sm = StateMachine::open(db.clone(), dir, limits)?;
    Ok((LogStore::new(db)?, sm))
}

#[cfg(test)]
mod storage_test;
