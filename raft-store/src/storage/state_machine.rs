//! The replicated state machine on RocksDB: openraft's `RaftStateMachine` (storage-v2).
//!
//! Owns the `data` column family through [`KvState`], the Raft applied state stored in the
//! same write batch as each entry's changes, snapshot files, and the broadcast of applied
//! revisions. Every RocksDB call runs on tokio's blocking pool. It must not decide anything:
//! the pure `kv::apply` does, from the entry alone.
//!
//! ```text
//!  openraft ── apply(entries) ──► [blocking pool] kv::apply per entry ─► data CF (one batch each)
//!                                                     └─► broadcast RevisionEvents ─► watches
//!  snapshot: flush WAL ─► RocksDB snapshot ─► records ─► <dir>/snapshots/<id>.snap (fsynced)
//! ```

use std::fmt::Debug;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Seek;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;

use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::Snapshot;
use openraft::StorageIOError;
use rocksdb::WriteBatch;
use rocksdb::DB;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::kv::state::apply_with_meta;
use crate::kv::state::decode;
use crate::kv::state::encode;
use crate::kv::state::META_RAFT;
use crate::kv::KvState;
use crate::kv::Limits;
use crate::kv::RevisionEvents;
use crate::storage::error::StoreError;
use crate::storage::log_store::blocking;
use crate::storage::rocks::RocksBackend;
use crate::storage::rocks::CF_DATA;
use crate::storage::rocks::CF_META;
use crate::storage::snapshot_file::read_records;
use crate::storage::snapshot_file::SnapshotWriter;
use crate::types::ApplyResult;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StorageError;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

const KEY_SNAPSHOT: &[u8] = b"snapshot";
const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Raft bookkeeping stored in the data column family with every applied entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

pub(crate) struct SmInner {
    pub(crate) kv: KvState<RocksBackend>,
    pub(crate) applied: AppliedState,
}

/// A shared, read-only view of a member's state machine, plus its applied-revision feed.
#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<RwLock<SmInner>>,
    events: broadcast::Sender<Arc<RevisionEvents>>,
}

impl Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateHandle").finish_non_exhaustive()
    }
}

impl StateHandle {
    /// Run `f` on the key space on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&KvState<RocksBackend>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let guard = inner
                .read()
                .map_err(|_| StoreError::Task("state lock poisoned".into()))?;
            Ok(f(&guard.kv))
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Receive every revision applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RevisionEvents>> {
        self.events.subscribe()
    }
}

/// The state machine of one member.
pub struct StateMachine {
    handle: StateHandle,
    db: Arc<DB>,
    snap_dir: PathBuf,
}

impl Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("snap_dir", &self.snap_dir)
            .finish_non_exhaustive()
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn read_applied(kv: &KvState<RocksBackend>) -> Result<AppliedState, StoreError> {
    match kv
        .raft_meta()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
    {
        None => Ok(AppliedState::default()),
        Some(raw) => decode(&raw).map_err(|e| StoreError::Corrupt(e.to_string())),
    }
}

impl StateMachine {
    /// Open the state machine kept in `db`, with snapshot files under `dir/snapshots`.
    pub(crate) fn open(db: Arc<DB>, dir: &Path, limits: Limits) -> Result<Self, StoreError> {
        let snap_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snap_dir)?;
        // Leftovers of builds or transfers interrupted by a crash.
        for entry in std::fs::read_dir(&snap_dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp" || e == "part") {
                std::fs::remove_file(&path)?;
            }
        }
        let kv = KvState::open(RocksBackend::new(db.clone()), limits)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let applied = read_applied(&kv)?;
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let handle = StateHandle {
            inner: Arc::new(RwLock::new(SmInner { kv, applied })),
            events,
        };
        Ok(StateMachine {
            handle,
            db,
            snap_dir,
        })
    }

    /// A read handle that stays valid after the state machine moves into openraft.
    pub fn handle(&self) -> StateHandle {
        self.handle.clone()
    }

    fn load_snapshot_meta(db: &DB) -> Result<Option<(SnapshotMeta, String)>, std::io::Error> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| io_err("missing meta cf"))?;
        match db.get_cf(cf, KEY_SNAPSHOT).map_err(io_err)? {
            None => Ok(None),
            Some(raw) => decode(&raw).map(Some).map_err(io_err),
        }
    }

    /// Record `file` as the current snapshot and remove older snapshot files.
    fn save_snapshot_meta(
        db: &DB,
        snap_dir: &Path,
        meta: &SnapshotMeta,
        file: &str,
    ) -> Result<(), std::io::Error> {
        let cf = db
            .cf_handle(CF_META)
            .ok_or_else(|| io_err("missing meta cf"))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf,
            KEY_SNAPSHOT,
            encode(&(meta.clone(), file.to_string())).map_err(io_err)?,
        );
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts).map_err(io_err)?;
        // Only finished snapshots are removed here: a `.tmp` being built or a `.part` being
        // received may belong to a concurrent build or install.
        for entry in std::fs::read_dir(snap_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != file && name.ends_with(".snap") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Builds snapshot files from a consistent RocksDB snapshot of the data column family.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    snap_dir: PathBuf,
}

fn build_snapshot_file(
    db: &DB,
    snap_dir: &Path,
) -> Result<(SnapshotMeta, PathBuf), std::io::Error> {
    // Everything in the snapshot must also be durable in the data CF: the log below the
    // snapshot may be purged once it exists.
    db.flush_wal(true).map_err(io_err)?;
    let cf = db
        .cf_handle(CF_DATA)
        .ok_or_else(|| io_err("missing data cf"))?;
    let snap = db.snapshot();
    let applied: AppliedState = match snap.get_cf(cf, META_RAFT).map_err(io_err)? {
        None => AppliedState::default(),
        Some(raw) => decode(&raw).map_err(io_err)?,
    };
    let index = applied.last_applied.map_or(0, |l| l.index);
    let snapshot_id = format!("{index}-{}", now_nanos());
    let file_name = format!("{snapshot_id}.snap");
    let tmp = snap_dir.join(format!("{snapshot_id}.tmp"));
    let mut writer =
        SnapshotWriter::new(BufWriter::new(std::fs::File::create(&tmp)?)).map_err(io_err)?;
    for item in snap.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item.map_err(io_err)?;
        writer.record(&k, &v).map_err(io_err)?;
    }
    let file = writer
        .finish()
        .map_err(io_err)?
        .into_inner()
        .map_err(io_err)?;
    file.sync_all()?;
    let path = snap_dir.join(&file_name);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(snap_dir)?.sync_all()?;
    let meta = SnapshotMeta {
        last_log_id: applied.last_applied,
        last_membership: applied.membership,
        snapshot_id,
    };
    StateMachine::save_snapshot_meta(db, snap_dir, &meta, &file_name)?;
    tracing::info!(snapshot_id = %meta.snapshot_id, "built snapshot");
    Ok((meta, path))
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (db, dir) = (self.db.clone(), self.snap_dir.clone());
        let (meta, path) = blocking(move || build_snapshot_file(&db, &dir))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let guard = self
            .handle
            .inner
            .read()
            .map_err(|_| StorageIOError::read_state_machine(&io_err("poisoned")))?;
        Ok((guard.applied.last_applied, guard.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let handle = self.handle.clone();
        let result =
            tokio::task::spawn_blocking(move || -> Result<Vec<ApplyResult>, Box<StorageError>> {
                let mut guard = handle.inner.write().map_err(|_| {
                    Box::new(StorageIOError::write_state_machine(&io_err("poisoned")).into())
                })?;
                let inner = &mut *guard;
                let mut out = Vec::with_capacity(entries.len());
                for entry in &entries {
                    inner.applied.last_applied = Some(entry.log_id);
                    let cmd = match &entry.payload {
                        EntryPayload::Blank => None,
                        EntryPayload::Normal(cmd) => Some((cmd, entry.log_id.leader_id.term)),
                        EntryPayload::Membership(m) => {
                            inner.applied.membership =
                                StoredMembership::new(Some(entry.log_id), m.clone());
                            None
                        }
                    };
                    let meta = encode(&inner.applied)
                        .map_err(|e| Box::new(StorageIOError::apply(entry.log_id, &e).into()))?;
                    let applied =
                        apply_with_meta(&mut inner.kv, cmd, vec![(META_RAFT.to_vec(), Some(meta))])
                            .map_err(|e| {
                                Box::new(StorageIOError::apply(entry.log_id, &e).into())
                            })?;
                    for change in applied.changes {
                        let _ = handle.events.send(Arc::new(change));
                    }
                    out.push(applied.result);
                }
                Ok(out)
            })
            .await
            .map_err(|e| StorageIOError::write_state_machine(&io_err(e)))?;
        result.map_err(|e| *e)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snap_dir: self.snap_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.snap_dir.join(format!("incoming-{}.part", now_nanos()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        tracing::info!(snapshot_id = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "install snapshot");
        let mut file = snapshot.into_std().await;
        let (db, snap_dir, handle, meta) = (
            self.db.clone(),
            self.snap_dir.clone(),
            self.handle.clone(),
            meta.clone(),
        );
        let signature = meta.signature();
        blocking(move || {
            let mut guard = handle.inner.write().map_err(|_| io_err("poisoned"))?;
            let cf = db
                .cf_handle(CF_DATA)
                .ok_or_else(|| io_err("missing data cf"))?;
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, &b""[..], &[0xffu8; 8][..]);
            file.rewind()?;
            read_records(BufReader::new(&mut file), |k, v| {
                batch.put_cf(cf, k, v);
                Ok(())
            })
            .map_err(io_err)?;
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts).map_err(io_err)?;
            guard.kv.reload().map_err(io_err)?;
            let mut applied = read_applied(&guard.kv).map_err(io_err)?;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            guard.applied = applied;
            // Keep the received file as the current snapshot.
            let file_name = format!("{}.snap", meta.snapshot_id);
            let tmp = snap_dir.join(format!("{}.tmp", meta.snapshot_id));
            file.rewind()?;
            let mut out = std::fs::File::create(&tmp)?;
            std::io::copy(&mut file, &mut out)?;
            out.sync_all()?;
            std::fs::rename(&tmp, snap_dir.join(&file_name))?;
            StateMachine::save_snapshot_meta(&db, &snap_dir, &meta, &file_name)?;
            // The received transfer file (openraft receives one snapshot at a time) is no
            // longer needed: it was copied above.
            for entry in std::fs::read_dir(&snap_dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "part") {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let (db, dir) = (self.db.clone(), self.snap_dir.clone());
        let found = blocking(move || {
            Ok(Self::load_snapshot_meta(&db)?.map(|(meta, file)| (meta, dir.join(file))))
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let Some((meta, path)) = found else {
            return Ok(None);
        };
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageIOError::read_snapshot(Some(meta.signature()), &e).into()),
        }
    }
}
