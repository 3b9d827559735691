//! The data-version header of a data directory.
//!
//! Owns the version number written when a store is created and the check made at every open.
//! A future format change bumps [`DATA_VERSION`] and adds its upgrade in its own file next to
//! this one; it must never silently reinterpret old data.

use rocksdb::DB;

use crate::storage::error::StoreError;
use crate::storage::rocks::CF_DATA;
use crate::storage::rocks::CF_LOG;
use crate::storage::rocks::CF_META;

/// The on-disk format this build writes.
pub(crate) const DATA_VERSION: u32 = 1;

const KEY: &[u8] = b"data_version";

/// Write the header into a new store, or check the header of an existing one.
pub(crate) fn check_or_init(db: &DB) -> Result<(), StoreError> {
    let meta = db
        .cf_handle(CF_META)
        .ok_or_else(|| StoreError::Corrupt("missing meta column family".into()))?;
    match db.get_cf(meta, KEY)? {
        Some(raw) => {
            let arr: [u8; 4] = raw
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("bad data version header".into()))?;
            let found = u32::from_be_bytes(arr);
            if found != DATA_VERSION {
                return Err(StoreError::DataVersion {
                    found,
                    expected: DATA_VERSION,
                });
            }
            Ok(())
        }
        None => {
            for cf in [CF_LOG, CF_DATA, CF_META] {
                let handle = db
                    .cf_handle(cf)
                    .ok_or_else(|| StoreError::Corrupt(format!("missing {cf}")))?;
                if db
                    .iterator_cf(handle, rocksdb::IteratorMode::Start)
                    .next()
                    .is_some()
                {
                    return Err(StoreError::Corrupt(format!(
                        "column family {cf} holds data but the data version header is missing"
                    )));
                }
            }
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(meta, KEY, DATA_VERSION.to_be_bytes());
            db.write_opt(batch, &opts)?;
            Ok(())
        }
    }
}
