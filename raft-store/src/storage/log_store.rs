//! The Raft log and vote on RocksDB: openraft's `RaftLogStorage`.
//!
//! Owns the `log` and `meta` column families. An append puts its entries in the in-memory
//! [`RecentLog`] (readable at once, so the leader replicates them while they are still being
//! written) and queues them for the [`LogWriter`]: one thread that writes every append queued
//! meanwhile, syncs the write-ahead log once for all of them and only then reports them
//! flushed, in order. So openraft's core never waits for the disk, an acknowledged entry
//! survives power loss, and appends that queue up share one fsync. Truncation, purging and
//! reads the memory tail cannot answer go through the same queue, so they see the log exactly
//! as appended before them. Every RocksDB call runs on that thread or tokio's blocking pool,
//! never on an async worker thread. It must not touch the `data` column family (the state
//! machine's). The committed index is not stored: the state machine keeps its applied index
//! with its data, and a restarted member learns what is committed from the leader (storing it
//! would put one more write before every apply).
//!
//! ```text
//!  append ─► RecentLog (readable) ─► return
//!     └─► LogWriter queue: write batches (no sync) ─► sync WAL once ─► flushed callbacks
//!  truncate / purge / read of old entries ─► same queue, in order
//! ```

use std::fmt::Debug;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::mpsc;
use std::sync::Arc;

use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use rocksdb::DB;
use tokio::sync::oneshot;

use crate::kv::state::decode;
use crate::kv::state::encode;
use crate::storage::failpoints;
use crate::storage::recent_log::RecentLog;
use crate::storage::rocks::CF_LOG;
use crate::storage::rocks::CF_META;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// Newest entries kept in memory for reading back (replication, apply).
const RECENT_ENTRIES: usize = 1024;
const RECENT_BYTES: usize = 64 * 1024 * 1024;

/// The Raft log of one member. Cheap to clone; clones share the database and the writer.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    writer: Arc<LogWriter>,
    recent: Arc<RecentLog>,
}

/// One piece of work for the log writer thread, done in queue order.
enum LogJob {
    /// Write these entries (unsynced); report them flushed once the WAL is synced.
    Append {
        batch: WriteBatch,
        flushed: IOFlushed<TypeConfig>,
    },
    /// Remove entries from this index on.
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), std::io::Error>>,
    },
    /// Remove entries up to and including this log id, and remember it.
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<(), std::io::Error>>,
    },
    /// Read entries `start..end` (`None`: to the end of the log).
    Read {
        start: u64,
        end: Option<u64>,
        done: oneshot::Sender<Result<Vec<Entry>, std::io::Error>>,
    },
}

/// Does the log's disk work off openraft's core: a thread that takes every job queued
/// meanwhile, writes appends unsynced, syncs the write-ahead log once and then completes
/// their flush callbacks in order. The thread ends when the last [`LogStore`] clone (and so
/// the sender) is dropped.
struct LogWriter {
    queue: mpsc::Sender<LogJob>,
}

impl LogWriter {
    fn start(db: Arc<DB>) -> Result<Self, std::io::Error> {
        let (tx, rx) = mpsc::channel::<LogJob>();
        // The thread holds the database only through a weak reference, so that shutting a
        // member down closes it even while the thread waits for work.
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut unsynced = Vec::new();
                    for job in std::iter::once(first).chain(rx.try_iter()) {
                        // Each job lets go of the database before it answers, so whoever
                        // closes the store after an answer finds it closed.
                        match job {
                            LogJob::Append { batch, flushed }
                                if failpoints::acknowledge_before_sync() =>
                            {
                                // The deliberately broken member: durable in name only.
                                flushed.io_completed(Ok(()));
                                let mut no_wal = WriteOptions::default();
                                no_wal.disable_wal(true);
                                let _ = with_db(&weak, |db| {
                                    db.write_opt(batch, &no_wal).map_err(io_err)
                                });
                            }
                            LogJob::Append { batch, flushed } => {
                                match with_db(&weak, |db| db.write(batch).map_err(io_err)) {
                                    Ok(()) => unsynced.push(flushed),
                                    Err(e) => flushed.io_completed(Err(e)),
                                }
                            }
                            LogJob::Truncate { from, done } => {
                                let _ = done.send(with_db(&weak, |db| truncate(db, from)));
                            }
                            LogJob::Purge { upto, done } => {
                                let _ = done.send(with_db(&weak, |db| purge(db, upto)));
                            }
                            LogJob::Read { start, end, done } => {
                                let _ = done.send(with_db(&weak, |db| {
                                    LogStore::read_range(db, start, end)
                                }));
                            }
                        }
                    }
                    if unsynced.is_empty() {
                        continue;
                    }
                    let synced = with_db(&weak, |db| {
                        if let Some(e) = failpoints::wal_sync_error() {
                            return Err(e);
                        }
                        db.flush_wal(true).map_err(io_err)
                    });
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "syncing the Raft log failed");
                    }
                    for flushed in unsynced {
                        flushed.io_completed(match &synced {
                            Ok(()) => Ok(()),
                            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
            })?;
        Ok(LogWriter { queue: tx })
    }

    /// Queue `job`; if the thread has stopped, the job fails at once.
    fn submit(&self, job: LogJob) {
        if let Err(mpsc::SendError(job)) = self.queue.send(job) {
            fail(job, "the log writer has stopped");
        }
    }

    /// Queue the job `make` builds around a reply channel, and wait for the reply.
    async fn run<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, std::io::Error>>) -> LogJob,
    ) -> Result<T, std::io::Error> {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx));
        rx.await
            .map_err(|_| io_err("the log writer stopped before answering"))?
    }
}

/// Runs `f` on the database if it is still open.
fn with_db<T>(
    weak: &std::sync::Weak<DB>,
    f: impl FnOnce(&DB) -> Result<T, std::io::Error>,
) -> Result<T, std::io::Error> {
    let db = weak
        .upgrade()
        .ok_or_else(|| io_err("the log database is closed"))?;
    f(&db)
}

/// Completes `job` with an error.
fn fail(job: LogJob, why: &str) {
    match job {
        LogJob::Append { flushed, .. } => flushed.io_completed(Err(io_err(why))),
        LogJob::Truncate { done, .. } | LogJob::Purge { done, .. } => {
            let _ = done.send(Err(io_err(why)));
        }
        LogJob::Read { done, .. } => {
            let _ = done.send(Err(io_err(why)));
        }
    }
}

fn truncate(db: &DB, from: u64) -> Result<(), std::io::Error> {
    let cf = db
        .cf_handle(CF_LOG)
        .ok_or_else(|| io_err("missing log cf"))?;
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(cf, from.to_be_bytes(), u64::MAX.to_be_bytes());
    batch.delete_cf(cf, u64::MAX.to_be_bytes());
    db.write_opt(batch, &synced()).map_err(io_err)
}

fn purge(db: &DB, upto: LogId) -> Result<(), std::io::Error> {
    let log = db
        .cf_handle(CF_LOG)
        .ok_or_else(|| io_err("missing log cf"))?;
    let meta = db
        .cf_handle(CF_META)
        .ok_or_else(|| io_err("missing meta cf"))?;
    let mut batch = WriteBatch::default();
    batch.put_cf(meta, KEY_LAST_PURGED, encode(&upto).map_err(io_err)?);
    batch.delete_range_cf(
        log,
        0u64.to_be_bytes(),
        upto.index.saturating_add(1).to_be_bytes(),
    );
    db.write_opt(batch, &synced()).map_err(io_err)
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Run a blocking RocksDB closure off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, std::io::Error>
where
    F: FnOnce() -> Result<T, std::io::Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}

fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Result<Self, std::io::Error> {
        let writer = Arc::new(LogWriter::start(db.clone())?);
        Ok(LogStore {
            db,
            writer,
            recent: Arc::new(RecentLog::new(RECENT_ENTRIES, RECENT_BYTES)),
        })
    }

    /// A weak reference to the database, to observe when every user has closed it.
    pub(crate) fn db_weak(&self) -> std::sync::Weak<DB> {
        Arc::downgrade(&self.db)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        db: &DB,
        key: &[u8],
    ) -> Result<Option<T>, std::io::Error> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| io_err("missing meta cf"))?;
        match db.get_cf(cf, key).map_err(io_err)? {
            None => Ok(None),
            Some(raw) => decode(&raw).map(Some).map_err(io_err),
        }
    }

    fn put_meta<T: serde::Serialize>(
        db: &DB,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), std::io::Error> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| io_err("missing meta cf"))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, encode(value).map_err(io_err)?);
        let opts = if sync {
            synced()
        } else {
            WriteOptions::default()
        };
        db.write_opt(batch, &opts).map_err(io_err)
    }

    fn read_range(db: &DB, start: u64, end: Option<u64>) -> Result<Vec<Entry>, std::io::Error> {
        let cf = db
            .cf_handle(CF_LOG)
            .ok_or_else(|| io_err("missing log cf"))?;
        let from = start.to_be_bytes();
        let mut out = Vec::new();
        for item in db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item.map_err(io_err)?;
            let index =
                u64::from_be_bytes(k.as_ref().try_into().map_err(|_| io_err("bad log key"))?);
            if end.is_some_and(|e| index >= e) {
                break;
            }
            let entry: Entry = decode(&v).map_err(io_err)?;
            if entry.log_id.index != index {
                return Err(io_err(format!(
                    "log entry at {index} claims index {}",
                    entry.log_id.index
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, std::io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        if let Some(entries) = self.recent.get(start, end) {
            return Ok(entries);
        }
        // Through the writer's queue: after every append queued before this read.
        self.writer
            .run(|done| LogJob::Read { start, end, done })
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, std::io::Error> {
        let db = self.db.clone();
        blocking(move || Self::get_meta(&db, KEY_VOTE)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, std::io::Error> {
        let db = self.db.clone();
        blocking(move || {
            let last_purged_log_id: Option<LogId> = Self::get_meta(&db, KEY_LAST_PURGED)?;
            let cf = db
                .cf_handle(CF_LOG)
                .ok_or_else(|| io_err("missing log cf"))?;
            let last = match db.iterator_cf(cf, rocksdb::IteratorMode::End).next() {
                None => None,
                Some(item) => {
                    let (_, v) = item.map_err(io_err)?;
                    let entry: Entry = decode(&v).map_err(io_err)?;
                    Some(entry.log_id)
                }
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id: last.or(last_purged_log_id),
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), std::io::Error> {
        let db = self.db.clone();
        let vote = *vote;
        blocking(move || Self::put_meta(&db, KEY_VOTE, &vote, true)).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), std::io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut recent = Vec::new();
        {
            let cf = self
                .db
                .cf_handle(CF_LOG)
                .ok_or_else(|| io_err("missing log cf"))?;
            for entry in entries {
                let bytes = encode(&entry).map_err(io_err)?;
                batch.put_cf(cf, entry.log_id.index.to_be_bytes(), &bytes);
                recent.push((entry, bytes.len()));
            }
        }
        // Readable from memory now; written and made durable by the writer thread.
        self.recent.appended(recent);
        self.writer.submit(LogJob::Append {
            batch,
            flushed: callback,
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), std::io::Error> {
        tracing::debug!(?last_log_id, "truncate log");
        let from = last_log_id.map_or(0, |l| l.index.saturating_add(1));
        self.recent.truncated_from(from);
        self.writer
            .run(|done| LogJob::Truncate { from, done })
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), std::io::Error> {
        tracing::debug!(%log_id, "purge log");
        self.recent.purged_through(log_id.index);
        self.writer
            .run(|done| LogJob::Purge { upto: log_id, done })
            .await
    }
}
