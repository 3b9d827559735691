//! Opening the RocksDB database and the [`KvBackend`] over its data column family.
//!
//! Owns the column family layout (`log`, `meta`, `data`) and the open options. It must not
//! be called from async threads: every function here blocks on disk I/O.

use std::path::Path;
use std::sync::Arc;

use rocksdb::BlockBasedOptions;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::IteratorMode;
use rocksdb::Options;
use rocksdb::WriteBatch;
use rocksdb::DB;

use crate::kv::BatchOp;
use crate::kv::KvBackend;
use crate::kv::KvError;
use crate::kv::KvRead;
use crate::storage::data_version;
use crate::storage::error::StoreError;

/// Raft log entries, keyed by big-endian index.
pub(crate) const CF_LOG: &str = "log";
/// Vote, committed id, purge point, snapshot meta and the data version header.
pub(crate) const CF_META: &str = "meta";
/// The key space (see `kv::state`), including the Raft applied state.
pub(crate) const CF_DATA: &str = "data";

/// The write-ahead log's size beyond which column families are flushed to free it.
const MAX_TOTAL_WAL_BYTES: u64 = 128 << 20;

/// Memtable bytes, all column families together, beyond which the largest is flushed.
/// Without it each column family keeps up to two 64 MiB memtables; the key space's, which
/// skips the WAL, is not bounded by [`MAX_TOTAL_WAL_BYTES`] either.
const MAX_MEMTABLE_BYTES: usize = 64 << 20;

/// The share of a data memtable's size given to its Bloom filter (RocksDB's suggested
/// starting point is 0.1; a 64 MiB memtable's filter at 0.02 is 1.3 MiB).
const MEMTABLE_BLOOM_RATIO: f64 = 0.02;

/// What the database holds in memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Memtables of every column family: active, immutable and pinned.
    pub memtables: u64,
    /// SST index and filter blocks, held outside the block caches.
    pub table_readers: u64,
    /// Data blocks in the block caches.
    pub block_cache: u64,
}

/// The database's memory, from its properties (read from memory, no I/O).
pub(crate) fn memory(db: &DB) -> StoreMemory {
    let mut memory = StoreMemory::default();
    for name in [CF_LOG, CF_META, CF_DATA] {
        let Some(cf) = db.cf_handle(name) else {
            continue;
        };
        let property = |p: &str| db.property_int_value_cf(cf, p).ok().flatten().unwrap_or(0);
        memory.memtables += property("rocksdb.size-all-mem-tables");
        memory.table_readers += property("rocksdb.estimate-table-readers-mem");
        // Each column family's table options made their own cache (RocksDB's default).
        memory.block_cache += property("rocksdb.block-cache-usage");
    }
    memory
}

/// Open (or create) the database in `dir` and check its data version.
pub(crate) fn open_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    super::private_files::create_dir(dir)?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // A torn (incomplete) record at the end of the WAL, left by kill -9 or power loss in the
    // middle of a write that was never acknowledged, is dropped; corruption anywhere else
    // makes open fail and is reported, never skipped.
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    opts.set_paranoid_checks(true);
    // A WAL file is deleted only once every column family that wrote to it has flushed;
    // the meta column family's few small writes would keep them all. Past this total,
    // RocksDB flushes the column families holding the oldest file back, so the WAL stays
    // near this size instead of RocksDB's default of ~1.5 GiB for these column families.
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    opts.set_db_write_buffer_size(MAX_MEMTABLE_BYTES);
    let cfs = [CF_LOG, CF_META, CF_DATA].map(|name| {
        let mut cf = Options::default();
        if name == CF_DATA {
            cf.set_block_based_table_factory(&data_table_options());
            // The memtables get a Bloom filter of whole keys too: every create reads its new
            // key (the compare, then the put) before writing it, and without the filter
            // each read searches every memtable's skip list to find nothing.
            cf.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO);
            cf.set_memtable_whole_key_filtering(true);
        }
        ColumnFamilyDescriptor::new(name, cf)
    });
    let db = DB::open_cf_descriptors(&opts, dir.join("db"), cfs)?;
    data_version::check_or_init(&db)?;
    Ok(Arc::new(db))
}

/// The data column family's tables: each file carries a Bloom filter of its keys, so a
/// point read of a key a file does not hold (every create's, as the key is new) skips that
/// file instead of searching its index and reading a block. Files written before the
/// filter was set have none and are read as before.
fn data_table_options() -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table
}

/// The key space's [`KvBackend`] on the `data` column family.
///
/// Writes skip RocksDB's write-ahead log: the Raft log is the durable record. The applied
/// state is stored in the same batch as each entry's changes, so after a crash the column
/// family is as of some applied entry, and openraft applies the logged entries after it
/// again. A snapshot flushes the column family to disk before it is recorded, because the
/// log below it may be purged then; closing the database flushes it too.
#[derive(Clone)]
pub struct RocksBackend {
    db: Arc<DB>,
}

impl std::fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksBackend").finish_non_exhaustive()
    }
}

fn kv_err(e: rocksdb::Error) -> KvError {
    KvError::Storage(e.to_string())
}

impl RocksBackend {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        RocksBackend { db }
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, KvError> {
        self.db
            .cf_handle(CF_DATA)
            .ok_or_else(|| KvError::Storage("missing data column family".into()))
    }
}

impl KvRead for RocksBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get_cf(self.cf()?, key).map_err(kv_err)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        let iter = self.db.iterator_cf(
            self.cf()?,
            IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(kv_err)?;
            if end.is_some_and(|e| &*k >= e) || !visit(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}

impl KvBackend for RocksBackend {
    fn write(&mut self, batch: Vec<BatchOp>) -> Result<(), KvError> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        for (k, v) in batch {
            match v {
                Some(v) => wb.put_cf(cf, k, v),
                None => wb.delete_cf(cf, k),
            }
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.disable_wal(true);
        self.db.write_opt(wb, &opts).map_err(kv_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RocksDB backend in a temporary directory removed when the last clone is dropped.
    #[derive(Clone)]
    struct TempRocks {
        backend: RocksBackend,
        _dir: Arc<tempfile::TempDir>,
    }

    impl KvRead for TempRocks {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
            self.backend.get(key)
        }

        fn scan(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), KvError> {
            self.backend.scan(start, end, visit)
        }
    }

    impl KvBackend for TempRocks {
        fn write(&mut self, batch: Vec<BatchOp>) -> Result<(), KvError> {
            self.backend.write(batch)
        }
    }

    fn temp_backend() -> TempRocks {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path()).expect("open");
        TempRocks {
            backend: RocksBackend::new(db),
            _dir: Arc::new(dir),
        }
    }

    mod rocks {
        crate::kv::state::state_test::kv_conformance_suite!(super::temp_backend());
    }

    fn newest_wal(dir: &Path) -> std::path::PathBuf {
        let mut wals: Vec<_> = std::fs::read_dir(dir.join("db"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        wals.sort();
        wals.pop().expect("a WAL file")
    }

    fn synced_put(db: &DB, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::default();
        batch.put_cf(db.cf_handle(CF_DATA).unwrap(), key, value);
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts).unwrap();
    }

    #[test]
    fn torn_wal_tail_recovers_to_the_last_complete_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path()).unwrap();
        synced_put(&db, b"first", b"1");
        synced_put(&db, b"second", &[9u8; 4096]);
        let wal = newest_wal(dir.path());
        // Copy the WAL while the database is open (as after a crash), then tear its tail.
        let mut bytes = std::fs::read(&wal).unwrap();
        drop(db);
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&wal, &bytes).unwrap();
        let db = open_db(dir.path()).expect("a torn tail is recovered");
        let cf = db.cf_handle(CF_DATA).unwrap();
        assert_eq!(db.get_cf(cf, b"first").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            db.get_cf(cf, b"second").unwrap(),
            None,
            "the torn write is dropped"
        );
    }

    #[test]
    fn corruption_before_the_wal_tail_is_reported_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path()).unwrap();
        synced_put(&db, b"first", &[1u8; 4096]);
        synced_put(&db, b"second", &[2u8; 4096]);
        let wal = newest_wal(dir.path());
        let mut bytes = std::fs::read(&wal).unwrap();
        drop(db);
        let len = bytes.len();
        // Damage the middle of the first record's value, leaving later records intact.
        for b in &mut bytes[len / 4..len / 4 + 16] {
            *b ^= 0xff;
        }
        std::fs::write(&wal, &bytes).unwrap();
        assert!(matches!(open_db(dir.path()), Err(StoreError::Rocks(_))));
    }

    #[test]
    fn reopening_checks_the_data_version_header() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_db(dir.path()).unwrap());
        let db = open_db(dir.path()).unwrap();
        let meta = db.cf_handle(CF_META).unwrap();
        db.put_cf(meta, b"data_version", 99u32.to_be_bytes())
            .unwrap();
        drop(db);
        match open_db(dir.path()) {
            Err(StoreError::DataVersion {
                found: 99,
                expected: 1,
            }) => {}
            other => panic!("expected a data version error, got {other:?}"),
        }
    }
}
