//! Backup and restore of the key space (`rafter store snapshot save` / `restore`).
//!
//! Owns writing a consistent copy of a member's key space to a file and seeding a new data
//! directory from such a file. The file uses the snapshot format (records plus a checksum
//! trailer), so a damaged file is refused before anything is written. A restore keeps the
//! key space (revisions, history, leases) and drops the old cluster's Raft state: the new
//! members are then bootstrapped as a fresh cluster, as with `etcdctl snapshot restore`.
//! It must not touch a data directory that already holds a store.

use std::io::BufReader;
use std::io::BufWriter;
use std::path::Path;

use rocksdb::WriteBatch;
use rocksdb::DB;

use crate::kv::state::META_RAFT;
use crate::kv::state::META_REVISION;
use crate::storage::error::StoreError;
use crate::storage::rocks::open_db;
use crate::storage::rocks::CF_DATA;
use crate::storage::snapshot_file::read_records;
use crate::storage::snapshot_file::SnapshotWriter;

/// What a backup file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    /// The store revision captured.
    pub revision: u64,
    /// Number of records in the file.
    pub records: u64,
}

fn revision_of(raw: Option<Vec<u8>>) -> u64 {
    raw.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Write a consistent copy of the key space in `db` to `dest` (atomically: a temporary file
/// is synced, then renamed).
pub(crate) fn write_backup(db: &DB, dest: &Path) -> Result<BackupInfo, StoreError> {
    let cf = db
        .cf_handle(CF_DATA)
        .ok_or_else(|| StoreError::Corrupt("missing data column family".into()))?;
    let snap = db.snapshot();
    let revision = revision_of(snap.get_cf(cf, META_REVISION)?);
    let tmp = dest.with_extension("partial");
    let mut writer = SnapshotWriter::new(BufWriter::new(super::private_files::create_file(&tmp)?))?;
    let mut records = 0;
    for item in snap.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        writer.record(&k, &v)?;
        records += 1;
    }
    let file = writer
        .finish()?
        .into_inner()
        .map_err(|e| StoreError::Io(e.into_error()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, dest)?;
    Ok(BackupInfo { revision, records })
}

/// Seed the empty data directory `data_dir` with the key space saved in `backup`.
///
/// Blocks on disk I/O. Fails without writing anything if the file is damaged, and refuses
/// a directory that already holds a store.
pub fn restore_backup(backup: &Path, data_dir: &Path) -> Result<BackupInfo, StoreError> {
    if data_dir.join("db").exists() {
        return Err(StoreError::Corrupt(format!(
            "{} already holds a store; restore needs an empty directory",
            data_dir.display()
        )));
    }
    // Validate the whole file before creating anything.
    read_records(BufReader::new(std::fs::File::open(backup)?), |_, _| Ok(()))?;
    let db = open_db(data_dir)?;
    let cf = db
        .cf_handle(CF_DATA)
        .ok_or_else(|| StoreError::Corrupt("missing data column family".into()))?;
    let mut batch = WriteBatch::default();
    let mut revision = 0;
    let records = read_records(BufReader::new(std::fs::File::open(backup)?), |k, v| {
        if k.as_slice() == META_REVISION {
            revision = revision_of(Some(v.clone()));
        }
        if k.as_slice() != META_RAFT {
            batch.put_cf(cf, k, v);
        }
        Ok(())
    })?;
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    tracing::info!(revision, records, dir = %data_dir.display(), "restored key space from backup");
    Ok(BackupInfo { revision, records })
}
