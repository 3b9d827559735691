//! Errors of opening and reading the on-disk store.
//!
//! Owns [`StoreError`]. Errors inside openraft's storage traits are openraft's
//! `StorageError`; this enum covers what happens outside them (open, version check, snapshot
//! files).

/// Why the on-disk store could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed (I/O error, corruption it could not recover, lock held by another process).
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The data directory was written by an incompatible version of Rafter.
    #[error("data directory has data version {found}, this build reads version {expected}")]
    DataVersion {
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        expected: u32,
    },
    /// Stored data does not decode or fails its checksum.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking task was cancelled or panicked.
    #[error("background task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether retrying later may succeed (not for corruption or version mismatches).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_) | StoreError::Task(_))
    }
}
