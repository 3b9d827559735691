//! The snapshot file format: a stream of key-value records with a checksum trailer.
//!
//! Owns encoding and decoding of snapshot files. A snapshot is written record by record and
//! read back record by record, never held as one value in memory; openraft sends it to
//! followers in chunks. It must not know what the keys mean.
//!
//! ```text
//!  "RFTSNAP1" | (klen:u32 key vlen:u32 value)* | 0xFFFFFFFF | count:u64 | fnv1a64:u64
//! ```

use std::io::Read;
use std::io::Write;

use crate::storage::error::StoreError;

const MAGIC: &[u8; 8] = b"RFTSNAP1";
const END: u32 = u32::MAX;

/// FNV-1a, 64 bit: a cheap checksum that catches torn or damaged files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Writes records to a snapshot file.
pub(crate) struct SnapshotWriter<W: Write> {
    out: W,
    count: u64,
    hash: Fnv,
}

impl<W: Write> SnapshotWriter<W> {
    pub(crate) fn new(mut out: W) -> Result<Self, StoreError> {
        out.write_all(MAGIC)?;
        Ok(SnapshotWriter {
            out,
            count: 0,
            hash: Fnv::new(),
        })
    }

    pub(crate) fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .map_err(|_| StoreError::Corrupt("record too large".into()))?;
            if len == END {
                return Err(StoreError::Corrupt("record too large".into()));
            }
            let len = len.to_be_bytes();
            self.hash.update(&len);
            self.hash.update(part);
            self.out.write_all(&len)?;
            self.out.write_all(part)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Write the trailer and hand back the output.
    pub(crate) fn finish(mut self) -> Result<W, StoreError> {
        self.out.write_all(&END.to_be_bytes())?;
        self.out.write_all(&self.count.to_be_bytes())?;
        self.out.write_all(&self.hash.finish().to_be_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn read_u32(r: &mut impl Read) -> Result<u32, StoreError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)
        .map_err(|e| StoreError::Corrupt(format!("truncated snapshot: {e}")))?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, StoreError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)
        .map_err(|e| StoreError::Corrupt(format!("truncated snapshot: {e}")))?;
    Ok(u64::from_be_bytes(b))
}

/// Read every record of a snapshot, calling `visit` for each, and verify the trailer.
///
/// Records are handed out before the checksum is verified; callers must stage them (a write
/// batch) and commit only after this returns `Ok`.
pub(crate) fn read_records(
    mut input: impl Read,
    mut visit: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut magic = [0u8; 8];
    input
        .read_exact(&mut magic)
        .map_err(|e| StoreError::Corrupt(format!("truncated snapshot: {e}")))?;
    if &magic != MAGIC {
        return Err(StoreError::Corrupt("not a Rafter snapshot".into()));
    }
    let mut hash = Fnv::new();
    let mut count = 0u64;
    loop {
        let klen = read_u32(&mut input)?;
        if klen == END {
            break;
        }
        let mut parts = Vec::with_capacity(2);
        let mut len = klen;
        for i in 0..2 {
            if i == 1 {
                len = read_u32(&mut input)?;
            }
            let mut buf = Vec::new();
            (&mut input)
                .take(u64::from(len))
                .read_to_end(&mut buf)
                .map_err(|e| StoreError::Corrupt(format!("unreadable snapshot: {e}")))?;
            if buf.len() != len as usize {
                return Err(StoreError::Corrupt("truncated snapshot record".into()));
            }
            hash.update(&len.to_be_bytes());
            hash.update(&buf);
            parts.push(buf);
        }
        let value = parts.pop().unwrap_or_default();
        let key = parts.pop().unwrap_or_default();
        visit(key, value)?;
        count += 1;
    }
    let want_count = read_u64(&mut input)?;
    let want_hash = read_u64(&mut input)?;
    if want_count != count || want_hash != hash.finish() {
        return Err(StoreError::Corrupt("snapshot checksum mismatch".into()));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = SnapshotWriter::new(Vec::new()).unwrap();
        w.record(b"a", b"1").unwrap();
        w.record(b"", b"").unwrap();
        w.record(b"key", &[7u8; 1000]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn records_round_trip_through_a_snapshot_file() {
        let mut seen = Vec::new();
        let n = read_records(sample().as_slice(), |k, v| {
            seen.push((k, v.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            seen,
            vec![(b"a".to_vec(), 1), (Vec::new(), 0), (b"key".to_vec(), 1000)]
        );
    }

    #[test]
    fn damaged_or_truncated_snapshot_is_refused() {
        let mut damaged = sample();
        damaged[20] ^= 0xff;
        assert!(matches!(
            read_records(damaged.as_slice(), |_, _| Ok(())),
            Err(StoreError::Corrupt(_))
        ));
        let full = sample();
        let truncated = &full[..full.len() - 5];
        assert!(matches!(
            read_records(truncated, |_, _| Ok(())),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            read_records(&b"garbage!"[..], |_, _| Ok(())),
            Err(StoreError::Corrupt(_))
        ));
    }
}
