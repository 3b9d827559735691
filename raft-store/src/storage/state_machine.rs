//! The replicated state machine on RocksDB: openraft's `RaftStateMachine` (storage-v2).
//!
//! Owns the `data` column family through [`KvState`], the Raft applied state stored in the
//! same write batch as each entry's changes, snapshot files, and the broadcast of applied
//! revisions. Every RocksDB call runs on tokio's blocking pool; a read of one recently put
//! key is answered from memory ([`LatestValues`]) instead, and the apply reads such a key's
//! previous version from there rather than from RocksDB. It must not decide anything:
//! the pure `kv::apply` does, from the entry alone.
//!
//! ```text
//!  openraft ── apply(entries) ──► [blocking pool] kv::apply per entry ─► data CF (a batch each, no WAL)
//!                                                     └─► broadcast RevisionEvents ─► watches
//!  snapshot: RocksDB snapshot ─► flush data CF ─► records ─► <dir>/snapshots/<id>.snap (fsynced)
//! ```

use std::fmt::Debug;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Seek;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;

use futures::Stream;
use futures::TryStreamExt;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::EntryPayload;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use rocksdb::WriteBatch;
use rocksdb::DB;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::kv::state::apply_with_meta;
use crate::kv::state::decode;
use crate::kv::state::encode;
use crate::kv::state::META_RAFT;
use crate::kv::KeyRange;
use crate::kv::KeyValue;
use crate::kv::KvError;
use crate::kv::KvState;
use crate::kv::Limits;
use crate::kv::RangeRequest;
use crate::kv::RangeResponse;
use crate::kv::RevisionEvents;
use crate::storage::error::StoreError;
use crate::storage::latest_values::LatestValues;
use crate::storage::latest_values::LATEST_VALUES_BUDGET;
use crate::storage::log_store::blocking;
use crate::storage::rocks::RocksBackend;
use crate::storage::rocks::CF_DATA;
use crate::storage::rocks::CF_META;
use crate::storage::snapshot_file::read_records;
use crate::storage::snapshot_file::SnapshotWriter;
use crate::types::ApplyResult;
use crate::types::LogId;
use crate::types::Snapshot;
use crate::types::SnapshotData;
use crate::types::SnapshotMeta;
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
    /// Recently put keys' latest versions, updated with every applied change.
    latest: LatestValues,
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

    /// Read keys. A read of one key at the current revision is answered on the calling
    /// thread when the key was put recently and no apply holds the state: from memory,
    /// without RocksDB, so without a hand-off to the blocking pool. Any other read runs on
    /// the blocking pool.
    pub async fn range(
        &self,
        req: RangeRequest,
    ) -> Result<Result<RangeResponse, KvError>, StoreError> {
        if let Some(answer) = self.range_in_memory(&req) {
            return Ok(Ok(answer));
        }
        self.read(move |kv| kv.range(&req)).await
    }

    /// The in-memory answer to `req`, when there is one.
    pub(crate) fn range_in_memory(&self, req: &RangeRequest) -> Option<RangeResponse> {
        let KeyRange::Key(key) = &req.range else {
            return None;
        };
        if req.revision != 0 {
            return None;
        }
        let inner = self.inner.try_read().ok()?;
        let latest = inner.latest.get(key)?;
        let kvs = if req.count_only {
            Vec::new()
        } else if req.keys_only {
            vec![KeyValue {
                value: Vec::new(),
                ..latest.clone()
            }]
        } else {
            vec![latest.clone()]
        };
        Some(RangeResponse {
            kvs,
            count: 1,
            more: false,
            revision: inner.kv.revision(),
        })
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
        super::private_files::create_dir(&snap_dir)?;
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
            inner: Arc::new(RwLock::new(SmInner {
                kv,
                applied,
                latest: LatestValues::new(LATEST_VALUES_BUDGET),
            })),
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
    let started = std::time::Instant::now();
    let cf = db
        .cf_handle(CF_DATA)
        .ok_or_else(|| io_err("missing data cf"))?;
    let snap = db.snapshot();
    // Everything in the snapshot must also be durable in the data CF, whose writes skip the
    // WAL: the log below the snapshot may be purged once it exists. The flush comes after
    // the snapshot is taken, so it covers at least what the snapshot holds.
    db.flush_cf(cf).map_err(io_err)?;
    let applied: AppliedState = match snap.get_cf(cf, META_RAFT).map_err(io_err)? {
        None => AppliedState::default(),
        Some(raw) => decode(&raw).map_err(io_err)?,
    };
    let snapshot_id = snapshot_file_id(applied.last_applied.as_ref());
    let file_name = format!("{snapshot_id}.snap");
    let tmp = snap_dir.join(format!("{snapshot_id}.tmp"));
    let mut writer = SnapshotWriter::new(BufWriter::new(super::private_files::create_file(&tmp)?))
        .map_err(io_err)?;
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
    };
    StateMachine::save_snapshot_meta(db, snap_dir, &meta, &file_name)?;
    tracing::info!(
        file = %file_name,
        bytes = std::fs::metadata(&path).map_or(0, |m| m.len()),
        took_ms = started.elapsed().as_millis() as u64,
        "built snapshot"
    );
    Ok((meta, path))
}

/// A unique name for a snapshot file covering the log up to `last_applied`.
fn snapshot_file_id(last_applied: Option<&LogId>) -> String {
    format!("{}-{}", last_applied.map_or(0, |l| l.index), now_nanos())
}

/// A new, empty file in `snap_dir` to receive a snapshot from the leader into; it is
/// removed at the next start if the transfer does not finish.
pub(crate) async fn incoming_snapshot_file(snap_dir: &Path) -> std::io::Result<SnapshotData> {
    let path = snap_dir.join(format!("incoming-{}.part", now_nanos()));
    tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .await
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let (db, dir) = (self.db.clone(), self.snap_dir.clone());
        let (meta, path) = blocking(move || build_snapshot_file(&db, &dir)).await?;
        let file = tokio::fs::File::open(&path).await?;
        Ok(Snapshot {
            meta,
            snapshot: file,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), std::io::Error> {
        let guard = self.handle.inner.read().map_err(|_| io_err("poisoned"))?;
        Ok((guard.applied.last_applied, guard.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), std::io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, std::io::Error>>
            + Unpin
            + OptionalSend,
    {
        let (entries, responders): (Vec<_>, Vec<_>) =
            entries.try_collect::<Vec<_>>().await?.into_iter().unzip();
        let handle = self.handle.clone();
        let results = blocking(move || {
            let mut guard = handle.inner.write().map_err(|_| io_err("poisoned"))?;
            let inner = &mut *guard;
            let mut out: Vec<ApplyResult> = Vec::with_capacity(entries.len());
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
                let meta = encode(&inner.applied).map_err(io_err)?;
                let applied = apply_with_meta(
                    &mut inner.kv,
                    cmd,
                    vec![(META_RAFT.to_vec(), Some(meta))],
                    &inner.latest,
                )
                .map_err(|e| io_err(format!("apply {}: {e}", entry.log_id)))?;
                for change in applied.changes {
                    inner.latest.record(&change);
                    let _ = handle.events.send(Arc::new(change));
                }
                out.push(applied.result);
            }
            Ok(out)
        })
        .await?;
        for (responder, result) in responders.into_iter().zip(results) {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snap_dir: self.snap_dir.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), std::io::Error> {
        tracing::info!(last_log_id = ?meta.last_log_id, "install snapshot");
        let mut file = snapshot.into_std().await;
        let (db, snap_dir, handle, meta) = (
            self.db.clone(),
            self.snap_dir.clone(),
            self.handle.clone(),
            meta.clone(),
        );
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
            guard.latest.clear();
            let mut applied = read_applied(&guard.kv).map_err(io_err)?;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            guard.applied = applied;
            // Keep the received file as the current snapshot.
            let snapshot_id = snapshot_file_id(meta.last_log_id.as_ref());
            let file_name = format!("{snapshot_id}.snap");
            let tmp = snap_dir.join(format!("{snapshot_id}.tmp"));
            file.rewind()?;
            let mut out = super::private_files::create_file(&tmp)?;
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
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, std::io::Error> {
        let (db, dir) = (self.db.clone(), self.snap_dir.clone());
        let found = blocking(move || {
            Ok(Self::load_snapshot_meta(&db)?.map(|(meta, file)| (meta, dir.join(file))))
        })
        .await?;
        let Some((meta, path)) = found else {
            return Ok(None);
        };
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: file,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
