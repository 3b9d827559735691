//! The MVCC key space and the pure function that applies a [`Command`] to it.
//!
//! Owns the on-backend layout of keys, history, leases and counters, the read paths
//! (`range`, `events_from`) and [`apply`]. `apply` reads no clock, no randomness and nothing
//! outside the backend and the command (a caller's [`KnownValues`] are a copy of the
//! backend's latest records, read first): time comes from `Command::now_ms`, which the
//! leader wrote into the entry. Everything one command changes is written as one batch, so a
//! rejected command changes nothing.
//!
//! ```text
//!  backend key            value
//!  l/<key>                KeyValue          latest version of each live key
//!  e/<rev:8><sub:4>       Event             history: every change, with the previous value
//!  s/<lease:8>            Lease             leases and their attached keys
//!  m/revision|compact|next_lease|raft       counters and the Raft applied state
//! ```
//!
//! A read at a past revision `R` starts from the latest values and undoes, per key, the
//! first change after `R` (each event keeps the previous value). Compaction deletes history
//! below the compaction point, after which such reads and watches fail with `Compacted`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kv::backend::BatchOp;
use crate::kv::backend::KvBackend;
use crate::kv::backend::KvRead;
use crate::kv::backend::Overlay;
use crate::kv::error::KvError;
use crate::kv::types::*;

const LATEST: &[u8] = b"l/";
const LATEST_END: &[u8] = b"l0";
const EVENTS: &[u8] = b"e/";
const EVENTS_END: &[u8] = b"e0";
const LEASES: &[u8] = b"s/";
const LEASES_END: &[u8] = b"s0";
pub(crate) const META_REVISION: &[u8] = b"m/revision";
const META_COMPACT: &[u8] = b"m/compact";
const META_NEXT_LEASE: &[u8] = b"m/next_lease";
/// The key of the Raft applied state kept with the data (written by `storage`).
#[cfg(feature = "node")]
pub(crate) const META_RAFT: &[u8] = b"m/raft";

/// The changes of one revision, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevisionEvents {
    /// The revision.
    pub revision: u64,
    /// Its changes.
    pub events: Vec<Event>,
}

/// What applying one command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The answer to the caller: logical errors are answers too.
    pub result: Result<KvResponse, KvError>,
    /// The store revision after the command.
    pub revision: u64,
    /// Changes made, one group per revision the command moved the store through: none when
    /// the revision did not move, one for a single command, one per changing command of a
    /// batch.
    pub changes: Vec<RevisionEvents>,
}

/// The key space over a backend, with its counters cached.
#[derive(Debug)]
pub struct KvState<B> {
    backend: B,
    revision: u64,
    compact: u64,
    next_lease: u64,
    limits: Limits,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, KvError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| KvError::Storage(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, KvError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| KvError::Storage(format!("corrupt record: {e}")))
}

fn read_u64<R: KvRead + ?Sized>(r: &R, key: &[u8]) -> Result<u64, KvError> {
    match r.get(key)? {
        None => Ok(0),
        Some(b) => {
            let arr: [u8; 8] = b
                .as_slice()
                .try_into()
                .map_err(|_| KvError::Storage("corrupt counter".into()))?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

fn latest_key(key: &[u8]) -> Vec<u8> {
    let mut k = LATEST.to_vec();
    k.extend_from_slice(key);
    k
}

fn event_key(rev: u64, sub: u32) -> Vec<u8> {
    let mut k = EVENTS.to_vec();
    k.extend_from_slice(&rev.to_be_bytes());
    k.extend_from_slice(&sub.to_be_bytes());
    k
}

fn lease_key(id: u64) -> Vec<u8> {
    let mut k = LEASES.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn event_revision(key: &[u8]) -> u64 {
    key.get(2..10)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Backend bounds of the latest values of `range`.
fn latest_bounds(range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = range.bounds();
    let end = match end {
        Some(e) => latest_key(&e),
        None => LATEST_END.to_vec(),
    };
    (latest_key(&start), end)
}

fn scan_latest<R: KvRead + ?Sized>(r: &R, range: &KeyRange) -> Result<Vec<KeyValue>, KvError> {
    let (start, end) = latest_bounds(range);
    let mut out = Vec::new();
    let mut err = None;
    r.scan(
        &start,
        Some(&end),
        &mut |_, v| match decode::<KeyValue>(v) {
            Ok(kv) => {
                out.push(kv);
                true
            }
            Err(e) => {
                err = Some(e);
                false
            }
        },
    )?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

fn scan_events<R: KvRead + ?Sized>(
    r: &R,
    from_rev: u64,
    visit: &mut dyn FnMut(u64, Event) -> bool,
) -> Result<(), KvError> {
    let mut err = None;
    r.scan(
        &event_key(from_rev, 0),
        Some(EVENTS_END),
        &mut |k, v| match decode::<Event>(v) {
            Ok(ev) => visit(event_revision(k), ev),
            Err(e) => {
                err = Some(e);
                false
            }
        },
    )?;
    err.map_or(Ok(()), Err)
}

/// Read `req` from `r`, whose current revision is `current` and compaction point `compact`.
fn read_range<R: KvRead + ?Sized>(
    r: &R,
    req: &RangeRequest,
    current: u64,
    compact: u64,
) -> Result<RangeResponse, KvError> {
    let at = if req.revision == 0 {
        current
    } else {
        req.revision
    };
    if at > current {
        return Err(KvError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compact {
        return Err(KvError::Compacted {
            requested: at,
            compacted: compact,
        });
    }
    let limit = if req.limit == 0 {
        usize::MAX
    } else {
        req.limit as usize
    };
    // The keys changed since `at` are read as they were then from the history (the first
    // change of each after `at` holds its value at `at`); every other key is as its latest
    // value says (at the current revision, every key). The two are merged in key order, and
    // only the keys returned are decoded: a page of a large range costs its page and a
    // walk of the keys, whatever the revision (the later pages of a list read a past one).
    let mut then: BTreeMap<Vec<u8>, Option<KeyValue>> = BTreeMap::new();
    if at < current {
        scan_events(r, at + 1, &mut |_, ev| {
            if req.range.contains(&ev.kv.key) {
                then.entry(ev.kv.key).or_insert(ev.prev_kv);
            }
            true
        })?;
    }
    let mut page = Page {
        wanted: if req.count_only { 0 } else { limit },
        keys_only: req.keys_only,
        count: 0,
        kvs: Vec::new(),
    };
    let mut changed = then.into_iter().peekable();
    let (start, end) = latest_bounds(&req.range);
    let mut err = None;
    r.scan(&start, Some(&end), &mut |k, v| {
        let key = k.get(LATEST.len()..).unwrap_or_default();
        while let Some((_, was)) = changed.next_if(|(c, _)| c.as_slice() < key) {
            page.keep(was);
        }
        if let Some((_, was)) = changed.next_if(|(c, _)| c.as_slice() == key) {
            page.keep(was);
            return true;
        }
        page.count += 1;
        if page.kvs.len() < page.wanted {
            match decode::<KeyValue>(v) {
                Ok(kv) => page.push(kv),
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    for (_, was) in changed {
        page.keep(was);
    }
    Ok(RangeResponse {
        more: !req.count_only && page.count > page.kvs.len() as u64,
        count: page.count,
        kvs: page.kvs,
        revision: current,
    })
}

/// A range's answer as it is gathered in key order: every key counted, the first
/// `wanted` kept.
struct Page {
    wanted: usize,
    keys_only: bool,
    count: u64,
    kvs: Vec<KeyValue>,
}

impl Page {
    /// Counts a key that existed (`Some`) and keeps it while the page has room.
    fn keep(&mut self, kv: Option<KeyValue>) {
        if let Some(kv) = kv {
            self.count += 1;
            if self.kvs.len() < self.wanted {
                self.push(kv);
            }
        }
    }

    fn push(&mut self, mut kv: KeyValue) {
        if self.keys_only {
            kv.value.clear();
        }
        self.kvs.push(kv);
    }
}

impl<B: KvBackend> KvState<B> {
    /// Open the key space kept in `backend`, loading its counters.
    pub fn open(backend: B, limits: Limits) -> Result<Self, KvError> {
        let revision = read_u64(&backend, META_REVISION)?;
        let compact = read_u64(&backend, META_COMPACT)?;
        let next_lease = read_u64(&backend, META_NEXT_LEASE)?.max(1);
        Ok(KvState {
            backend,
            revision,
            compact,
            next_lease,
            limits,
        })
    }

    /// The current revision (0 before the first change).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The compaction point: history below it is gone.
    pub fn compact_revision(&self) -> u64 {
        self.compact
    }

    /// The size limits enforced by `apply`.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The backend the key space is kept in.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Read keys at the current or a past revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        read_range(&self.backend, req, self.revision, self.compact)
    }

    /// Changes with revision `>= from_rev` touching `range` (all keys when `None`), grouped by
    /// revision, at most `max_revisions` revisions.
    pub fn events_from(
        &self,
        from_rev: u64,
        range: Option<&KeyRange>,
        max_revisions: usize,
    ) -> Result<Vec<RevisionEvents>, KvError> {
        if from_rev < self.compact {
            return Err(KvError::Compacted {
                requested: from_rev,
                compacted: self.compact,
            });
        }
        let mut out: Vec<RevisionEvents> = Vec::new();
        scan_events(&self.backend, from_rev, &mut |rev, ev| {
            if range.is_some_and(|r| !r.contains(&ev.kv.key)) {
                return true;
            }
            match out.last_mut() {
                Some(last) if last.revision == rev => last.events.push(ev),
                _ => {
                    if out.len() >= max_revisions {
                        return false;
                    }
                    out.push(RevisionEvents {
                        revision: rev,
                        events: vec![ev],
                    });
                }
            }
            true
        })?;
        Ok(out)
    }

    /// One lease, if it exists.
    pub fn lease(&self, id: u64) -> Result<Option<Lease>, KvError> {
        self.backend
            .get(&lease_key(id))?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Every lease.
    pub fn leases(&self) -> Result<Vec<Lease>, KvError> {
        let mut out = Vec::new();
        let mut err = None;
        self.backend
            .scan(LEASES, Some(LEASES_END), &mut |_, v| match decode(v) {
                Ok(l) => {
                    out.push(l);
                    true
                }
                Err(e) => {
                    err = Some(e);
                    false
                }
            })?;
        err.map_or(Ok(out), Err)
    }

    /// The opaque Raft applied state stored with the data, if any.
    #[cfg(feature = "node")]
    pub(crate) fn raft_meta(&self) -> Result<Option<Vec<u8>>, KvError> {
        self.backend.get(META_RAFT)
    }

    /// Reload counters after the backend content was replaced (snapshot install).
    #[cfg(feature = "node")]
    pub(crate) fn reload(&mut self) -> Result<(), KvError> {
        self.revision = read_u64(&self.backend, META_REVISION)?;
        self.compact = read_u64(&self.backend, META_COMPACT)?;
        self.next_lease = read_u64(&self.backend, META_NEXT_LEASE)?.max(1);
        Ok(())
    }
}

/// Apply `cmd` to `state`: the whole state transition of one log entry.
///
/// Returns `Err` only when the backend fails; logical failures are in [`Applied::result`] and
/// leave the key space unchanged.
///
/// `term` is the Raft term of the entry carrying `cmd` (from its log id); it only decides
/// whether a fenced command applies.
pub fn apply<B: KvBackend>(
    state: &mut KvState<B>,
    cmd: &Command,
    term: u64,
) -> Result<Applied, KvError> {
    apply_with_meta(state, Some((cmd, term)), Vec::new(), &NothingKnown)
}

/// Latest versions of keys that a caller keeps in memory beside the backend, which
/// [`apply_with_meta`] reads before the backend: a put or compare of a recently written
/// key then costs a map lookup instead of a backend read.
///
/// An implementation must answer only with exactly what the backend holds under the key's
/// `l/` record when the apply starts (it is updated from every applied change, as the
/// state machine's latest values are); `None` means "not known", never "absent".
pub(crate) trait KnownValues {
    /// The key's latest version, if known.
    fn known(&self, key: &[u8]) -> Option<&KeyValue>;
}

/// Knows nothing: every read goes to the backend.
pub(crate) struct NothingKnown;

impl KnownValues for NothingKnown {
    fn known(&self, _key: &[u8]) -> Option<&KeyValue> {
        None
    }
}

/// The backend as an apply reads it: a key's `l/` record comes from `known` when it is
/// there, everything else from `base`.
struct KnownFirst<'a, B: ?Sized> {
    base: &'a B,
    known: &'a dyn KnownValues,
}

impl<B: KvRead + ?Sized> KvRead for KnownFirst<'_, B> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(kv) = key.strip_prefix(LATEST).and_then(|k| self.known.known(k)) {
            return encode(kv).map(Some);
        }
        self.base.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        self.base.scan(start, end, visit)
    }
}

/// The counters a command moves, cached in [`KvState`] and stored under `m/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    revision: u64,
    compact: u64,
    next_lease: u64,
}

/// One command executed over a read view: its answer and the writes that make it happen,
/// not yet written anywhere.
struct Executed {
    result: Result<KvResponse, KvError>,
    writes: Vec<BatchOp>,
    events: Vec<Event>,
    counters: Counters,
}

/// [`apply`], also writing `extra` (Raft bookkeeping) in the same batch. `cmd = None` writes
/// only `extra` (blank and membership entries).
///
/// An [`Op::Batch`] applies its commands one after the other, each at its own revision and
/// with its own fence, and all of them in one backend write with `extra`: a crash never
/// leaves half an entry applied.
///
/// `known` answers for keys whose latest version the caller holds, before the backend.
pub(crate) fn apply_with_meta<B: KvBackend>(
    state: &mut KvState<B>,
    cmd: Option<(&Command, u64)>,
    extra: Vec<BatchOp>,
    known: &dyn KnownValues,
) -> Result<Applied, KvError> {
    let start = Counters {
        revision: state.revision,
        compact: state.compact,
        next_lease: state.next_lease,
    };
    let Some((cmd, term)) = cmd else {
        state.backend.write(extra)?;
        return Ok(Applied {
            result: Ok(KvResponse::Empty),
            revision: state.revision,
            changes: Vec::new(),
        });
    };
    let base = KnownFirst {
        base: &state.backend,
        known,
    };
    let (result, mut batch, changes, end) = match &cmd.op {
        Op::Batch(cmds) => {
            let mut merged = Overlay::new(&base);
            let mut counters = start;
            let mut results = Vec::with_capacity(cmds.len());
            let mut changes = Vec::new();
            for inner in cmds {
                let done = execute(&merged, counters, state.limits, inner, term)?;
                for (key, value) in done.writes {
                    match value {
                        Some(v) => merged.put(key, v),
                        None => merged.delete(key),
                    }
                }
                if !done.events.is_empty() {
                    changes.push(RevisionEvents {
                        revision: done.counters.revision,
                        events: done.events,
                    });
                }
                counters = done.counters;
                results.push(done.result);
            }
            (
                Ok(KvResponse::Batch(results)),
                merged.into_batch(),
                changes,
                counters,
            )
        }
        _ => {
            let done = execute(&base, start, state.limits, cmd, term)?;
            let changes = if done.events.is_empty() {
                Vec::new()
            } else {
                vec![RevisionEvents {
                    revision: done.counters.revision,
                    events: done.events,
                }]
            };
            (done.result, done.writes, changes, done.counters)
        }
    };
    batch.extend(extra);
    state.backend.write(batch)?;
    state.revision = end.revision;
    state.compact = end.compact;
    state.next_lease = end.next_lease;
    Ok(Applied {
        result,
        revision: end.revision,
        changes,
    })
}

/// Execute one command over `base` starting from `counters`. A logical failure is an answer
/// with no writes; only a backend failure is `Err`.
fn execute<R: KvRead + ?Sized>(
    base: &R,
    counters: Counters,
    limits: Limits,
    cmd: &Command,
    term: u64,
) -> Result<Executed, KvError> {
    let mut exec = Exec {
        ov: Overlay::new(base),
        rev: counters.revision + 1,
        sub: 0,
        events: Vec::new(),
        compact: counters.compact,
        next_lease: counters.next_lease,
        current: counters.revision,
        now_ms: cmd.now_ms,
        limits,
    };
    let outcome = match cmd.fence_term {
        Some(decided_in) if decided_in != term => Err(KvError::Fenced {
            decided_in,
            entry_term: term,
        }),
        _ => exec.run(&cmd.op),
    };
    match outcome {
        Ok(mut resp) => {
            let bumped = !exec.events.is_empty();
            let revision = if bumped { exec.rev } else { counters.revision };
            set_revision(&mut resp, revision);
            if bumped {
                exec.ov
                    .put(META_REVISION.to_vec(), revision.to_be_bytes().to_vec());
            }
            if exec.compact != counters.compact {
                exec.ov
                    .put(META_COMPACT.to_vec(), exec.compact.to_be_bytes().to_vec());
            }
            if exec.next_lease != counters.next_lease {
                exec.ov.put(
                    META_NEXT_LEASE.to_vec(),
                    exec.next_lease.to_be_bytes().to_vec(),
                );
            }
            let after = Counters {
                revision,
                compact: exec.compact,
                next_lease: exec.next_lease,
            };
            let events = std::mem::take(&mut exec.events);
            Ok(Executed {
                result: Ok(resp),
                writes: exec.ov.into_batch(),
                events,
                counters: after,
            })
        }
        Err(e) if matches!(e, KvError::Storage(_)) => Err(e),
        Err(e) => Ok(Executed {
            result: Err(e),
            writes: Vec::new(),
            events: Vec::new(),
            counters,
        }),
    }
}

fn set_revision(resp: &mut KvResponse, rev: u64) {
    match resp {
        KvResponse::Put(r) => r.revision = rev,
        KvResponse::Delete(r) => r.revision = rev,
        KvResponse::Txn(t) => {
            t.revision = rev;
            for r in &mut t.responses {
                match r {
                    TxnOpResponse::Put(p) => p.revision = rev,
                    TxnOpResponse::Delete(d) => d.revision = rev,
                    TxnOpResponse::Range(_) => {}
                }
            }
        }
        KvResponse::Compact { revision }
        | KvResponse::LeaseRevoke { revision }
        | KvResponse::LeaseExpire { revision, .. } => *revision = rev,
        KvResponse::LeaseGrant { .. } | KvResponse::LeaseKeepAlive { .. } | KvResponse::Empty => {}
        // Each command of a batch got its own revision when it was executed.
        KvResponse::Batch(_) => {}
    }
}

/// The in-progress execution of one command.
struct Exec<'a, B: ?Sized> {
    ov: Overlay<'a, B>,
    /// The revision this command's changes get.
    rev: u64,
    sub: u32,
    events: Vec<Event>,
    compact: u64,
    next_lease: u64,
    /// The revision before this command.
    current: u64,
    now_ms: u64,
    limits: Limits,
}

/// Bytes of keys and values `op` carries: what the request size limit measures.
pub(crate) fn op_bytes(op: &Op) -> usize {
    fn txn_op(op: &TxnOp) -> usize {
        match op {
            TxnOp::Range(r) => r.range.byte_len(),
            TxnOp::Put(p) => p.key.len() + p.value.len(),
            TxnOp::Delete(d) => d.range.byte_len(),
        }
    }
    match op {
        Op::Put(p) => p.key.len() + p.value.len(),
        Op::Delete(d) => d.range.byte_len(),
        Op::Txn(t) => {
            t.compare
                .iter()
                .map(|c| {
                    c.key.len()
                        + if let CompareTarget::Value(v) = &c.target {
                            v.len()
                        } else {
                            8
                        }
                })
                .sum::<usize>()
                + t.success.iter().map(txn_op).sum::<usize>()
                + t.failure.iter().map(txn_op).sum::<usize>()
        }
        _ => 0,
    }
}

/// Check `op` against the size limits: the same check `apply` makes, so a member can refuse
/// an oversized request before it reaches the log.
pub fn check_limits(op: &Op, limits: &Limits) -> Result<(), KvError> {
    let size = op_bytes(op);
    if size > limits.max_request_bytes {
        return Err(KvError::RequestTooLarge {
            size,
            limit: limits.max_request_bytes,
        });
    }
    let puts: Vec<&PutRequest> = match op {
        Op::Put(p) => vec![p],
        Op::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .filter_map(|o| match o {
                TxnOp::Put(p) => Some(p),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for p in puts {
        if p.value.len() > limits.max_value_bytes {
            return Err(KvError::ValueTooLarge {
                size: p.value.len(),
                limit: limits.max_value_bytes,
            });
        }
    }
    Ok(())
}

impl<B: KvRead + ?Sized> Exec<'_, B> {
    fn run(&mut self, op: &Op) -> Result<KvResponse, KvError> {
        check_limits(op, &self.limits)?;
        match op {
            Op::Put(p) => self.put(p).map(KvResponse::Put),
            Op::Delete(d) => self.delete(d).map(KvResponse::Delete),
            Op::Txn(t) => self.txn(t).map(KvResponse::Txn),
            Op::Compact { revision } => self.compact(*revision),
            Op::LeaseGrant { id, ttl_ms } => self.lease_grant(*id, *ttl_ms),
            Op::LeaseRevoke { id } => {
                self.lease_revoke(*id)?;
                Ok(KvResponse::LeaseRevoke { revision: 0 })
            }
            Op::LeaseKeepAlive { id } => {
                let mut lease = self.get_lease(*id)?.ok_or(KvError::LeaseNotFound(*id))?;
                lease.expires_at_ms = self.now_ms.saturating_add(lease.ttl_ms);
                self.ov.put(lease_key(*id), encode(&lease)?);
                Ok(KvResponse::LeaseKeepAlive {
                    id: *id,
                    ttl_ms: lease.ttl_ms,
                })
            }
            Op::LeaseExpire => {
                let mut expired = Vec::new();
                for lease in self.all_leases()? {
                    if lease.expires_at_ms <= self.now_ms {
                        expired.push(lease.id);
                    }
                }
                for id in &expired {
                    self.lease_revoke(*id)?;
                }
                Ok(KvResponse::LeaseExpire {
                    expired,
                    revision: 0,
                })
            }
            Op::LeaseExtendAll => {
                for mut lease in self.all_leases()? {
                    lease.expires_at_ms = self
                        .now_ms
                        .saturating_add(lease.ttl_ms)
                        .max(lease.expires_at_ms);
                    self.ov.put(lease_key(lease.id), encode(&lease)?);
                }
                Ok(KvResponse::Empty)
            }
            Op::Noop => Ok(KvResponse::Empty),
            Op::Batch(_) => Err(KvError::Invalid("a batch cannot hold a batch".into())),
        }
    }

    fn get_kv(&self, key: &[u8]) -> Result<Option<KeyValue>, KvError> {
        self.ov
            .get(&latest_key(key))?
            .map(|b| decode(&b))
            .transpose()
    }

    fn get_lease(&self, id: u64) -> Result<Option<Lease>, KvError> {
        self.ov.get(&lease_key(id))?.map(|b| decode(&b)).transpose()
    }

    fn all_leases(&self) -> Result<Vec<Lease>, KvError> {
        let mut raw = Vec::new();
        self.ov.scan(LEASES, Some(LEASES_END), &mut |_, v| {
            raw.push(v.to_vec());
            true
        })?;
        raw.iter().map(|b| decode(b)).collect()
    }

    fn push_event(&mut self, ev: Event) -> Result<(), KvError> {
        self.ov.put(event_key(self.rev, self.sub), encode(&ev)?);
        self.sub += 1;
        self.events.push(ev);
        Ok(())
    }

    fn detach(&mut self, lease_id: u64, key: &[u8]) -> Result<(), KvError> {
        if lease_id == 0 {
            return Ok(());
        }
        if let Some(mut lease) = self.get_lease(lease_id)? {
            lease.keys.retain(|k| k.as_slice() != key);
            self.ov.put(lease_key(lease_id), encode(&lease)?);
        }
        Ok(())
    }

    fn put(&mut self, req: &PutRequest) -> Result<PutResponse, KvError> {
        if req.key.is_empty() {
            return Err(KvError::Invalid("key is empty".into()));
        }
        if req.value.len() > self.limits.max_value_bytes {
            return Err(KvError::ValueTooLarge {
                size: req.value.len(),
                limit: self.limits.max_value_bytes,
            });
        }
        let new_lease = if req.lease != 0 {
            Some(
                self.get_lease(req.lease)?
                    .ok_or(KvError::LeaseNotFound(req.lease))?,
            )
        } else {
            None
        };
        let prev = self.get_kv(&req.key)?;
        let kv = KeyValue {
            key: req.key.clone(),
            value: req.value.clone(),
            create_revision: prev.as_ref().map_or(self.rev, |p| p.create_revision),
            mod_revision: self.rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease: req.lease,
        };
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != req.lease {
            self.detach(old_lease, &req.key)?;
            if let Some(mut lease) = new_lease {
                lease.keys.push(req.key.clone());
                self.ov.put(lease_key(lease.id), encode(&lease)?);
            }
        }
        self.ov.put(latest_key(&req.key), encode(&kv)?);
        self.push_event(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        })?;
        Ok(PutResponse {
            revision: 0,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn delete(&mut self, req: &DeleteRequest) -> Result<DeleteResponse, KvError> {
        let victims = scan_latest(&self.ov, &req.range)?;
        let mut resp = DeleteResponse {
            deleted: victims.len() as u64,
            ..Default::default()
        };
        for prev in victims {
            self.ov.delete(latest_key(&prev.key));
            self.detach(prev.lease, &prev.key)?;
            let kv = KeyValue {
                key: prev.key.clone(),
                mod_revision: self.rev,
                ..Default::default()
            };
            if req.prev_kv {
                resp.prev_kvs.push(prev.clone());
            }
            self.push_event(Event {
                kind: EventKind::Delete,
                kv,
                prev_kv: Some(prev),
            })?;
        }
        Ok(resp)
    }

    fn compare(&self, c: &Compare) -> Result<bool, KvError> {
        let kv = self.get_kv(&c.key)?;
        let ord = match (&c.target, &kv) {
            (CompareTarget::Value(_), None) => return Ok(false),
            (CompareTarget::Value(v), Some(kv)) => kv.value.as_slice().cmp(v.as_slice()),
            (CompareTarget::Version(v), kv) => kv.as_ref().map_or(0, |k| k.version).cmp(v),
            (CompareTarget::ModRevision(v), kv) => kv.as_ref().map_or(0, |k| k.mod_revision).cmp(v),
            (CompareTarget::CreateRevision(v), kv) => {
                kv.as_ref().map_or(0, |k| k.create_revision).cmp(v)
            }
            (CompareTarget::Lease(v), kv) => kv.as_ref().map_or(0, |k| k.lease).cmp(v),
        };
        Ok(match c.op {
            CompareOp::Equal => ord.is_eq(),
            CompareOp::NotEqual => ord.is_ne(),
            CompareOp::Less => ord.is_lt(),
            CompareOp::Greater => ord.is_gt(),
        })
    }

    fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                TxnOp::Range(r) => {
                    let current = if self.events.is_empty() {
                        self.current
                    } else {
                        self.rev
                    };
                    TxnOpResponse::Range(read_range(&self.ov, r, current, self.compact)?)
                }
                TxnOp::Put(p) => TxnOpResponse::Put(self.put(p)?),
                TxnOp::Delete(d) => TxnOpResponse::Delete(self.delete(d)?),
            });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
            revision: 0,
        })
    }

    fn compact(&mut self, revision: u64) -> Result<KvResponse, KvError> {
        if revision <= self.compact {
            return Err(KvError::Compacted {
                requested: revision,
                compacted: self.compact,
            });
        }
        if revision > self.current {
            return Err(KvError::FutureRevision {
                requested: revision,
                current: self.current,
            });
        }
        // History below the previous compaction point is gone already: start there, not at
        // the first event, so the scan does not walk what earlier compactions deleted.
        let mut doomed = Vec::new();
        self.ov.scan(
            &event_key(self.compact, 0),
            Some(&event_key(revision, 0)),
            &mut |k, _| {
                doomed.push(k.to_vec());
                true
            },
        )?;
        for k in doomed {
            self.ov.delete(k);
        }
        self.compact = revision;
        Ok(KvResponse::Compact { revision: 0 })
    }

    fn lease_grant(&mut self, id: u64, ttl_ms: u64) -> Result<KvResponse, KvError> {
        if ttl_ms == 0 {
            return Err(KvError::Invalid("lease TTL must be positive".into()));
        }
        let id = if id == 0 {
            let mut candidate = self.next_lease;
            while self.get_lease(candidate)?.is_some() {
                candidate += 1;
            }
            candidate
        } else {
            if self.get_lease(id)?.is_some() {
                return Err(KvError::LeaseExists(id));
            }
            id
        };
        self.next_lease = self.next_lease.max(id.saturating_add(1));
        let lease = Lease {
            id,
            ttl_ms,
            expires_at_ms: self.now_ms.saturating_add(ttl_ms),
            keys: Vec::new(),
        };
        self.ov.put(lease_key(id), encode(&lease)?);
        Ok(KvResponse::LeaseGrant { id, ttl_ms })
    }

    fn lease_revoke(&mut self, id: u64) -> Result<(), KvError> {
        let lease = self.get_lease(id)?.ok_or(KvError::LeaseNotFound(id))?;
        for key in &lease.keys {
            if let Some(prev) = self.get_kv(key)? {
                self.ov.delete(latest_key(key));
                let kv = KeyValue {
                    key: key.clone(),
                    mod_revision: self.rev,
                    ..Default::default()
                };
                self.push_event(Event {
                    kind: EventKind::Delete,
                    kv,
                    prev_kv: Some(prev),
                })?;
            }
        }
        self.ov.delete(lease_key(id));
        Ok(())
    }
}

#[cfg(test)]
#[path = "state_test.rs"]
pub(crate) mod state_test;
