//! The ordered byte store the key space is kept in.
//!
//! Owns the [`KvBackend`] trait and [`MemBackend`], the in-memory implementation used by unit
//! tests. The RocksDB implementation lives in `storage/`; the same conformance suite runs over
//! both. A backend must apply each write batch atomically and must know nothing of MVCC.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::kv::error::KvError;

/// One change in a write batch: `Some(value)` sets, `None` deletes.
pub type BatchOp = (Vec<u8>, Option<Vec<u8>>);

/// Read side of an ordered byte store.
pub trait KvRead {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// Visit `[start, end)` in ascending key order until `visit` returns `false`.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError>;
}

/// An ordered byte store that applies write batches atomically.
pub trait KvBackend: KvRead + Send + Sync + 'static {
    /// Apply every change of `batch`, all or nothing.
    fn write(&mut self, batch: Vec<BatchOp>) -> Result<(), KvError>;
}

/// A [`KvBackend`] in a `BTreeMap`, for tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvRead for MemBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        if end.is_some_and(|e| e <= start) {
            return Ok(());
        }
        for (k, v) in self.map.range::<[u8], _>((Bound::Included(start), upper)) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl KvBackend for MemBackend {
    fn write(&mut self, batch: Vec<BatchOp>) -> Result<(), KvError> {
        for (k, v) in batch {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
        Ok(())
    }
}

/// Uncommitted writes layered over a backend, so an operation reads its own writes and the
/// whole operation is written as one batch (or not at all).
pub(crate) struct Overlay<'a, B: ?Sized> {
    base: &'a B,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, B> Overlay<'a, B>
where
    B: KvRead + ?Sized,
{
    pub(crate) fn new(base: &'a B) -> Self {
        Overlay {
            base,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    pub(crate) fn into_batch(self) -> Vec<BatchOp> {
        self.writes.into_iter().collect()
    }
}

impl<B> KvRead for Overlay<'_, B>
where
    B: KvRead + ?Sized,
{
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let has_overlay = end.is_none_or(|e| start < e)
            && self
                .writes
                .range::<[u8], _>((Bound::Included(start), upper))
                .next()
                .is_some();
        if !has_overlay {
            return self.base.scan(start, end, visit);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        self.base.scan(start, end, &mut |k, v| {
            merged.insert(k.to_vec(), v.to_vec());
            true
        })?;
        for (k, v) in self
            .writes
            .range::<[u8], _>((Bound::Included(start), upper))
        {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        for (k, v) in &merged {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}
