//! The registry: Kubernetes object semantics on the key-value store.
//!
//! ```text
//!  create ─► admit ─► uid, creationTimestamp, generation ─► txn(create_revision == 0) put
//!  update ─► read ─► resourceVersion check ─► spec/status split ─► admit ─► txn(mod_revision) put
//!  delete ─► read ─► preconditions ─► finalizers / grace? ─► mark deletionTimestamp : txn delete
//!  list   ─► range at one revision ─► selectors ─► page (continue token)
//!  watch  ─► [list as ADDED] ─► store watch from revision ─► selector transitions
//! ```
//!
//! With a [`WatchCache`] (every master has one), list pages and watches are read from it
//! where it can answer them, and from the store where it cannot; the answers are the same.
//!
//! A Service's ClusterIP and NodePorts are reserved (and released) by keys of the
//! `allocator` written in the Service's own transaction, so a create, update or delete
//! that is refused leaves nothing reserved, and one that succeeds holds its values alone.
//!
//! Owns the key layout (`/registry/<group>/<plural>/[<namespace>/]<name>`), the
//! `resourceVersion` = store `mod_revision` rule and optimistic concurrency, the status
//! subresource split, `generation`, `generateName`, finalizers and graceful deletion,
//! pagination and watch event types. Admission (defaults, validation, namespaces, quota)
//! is delegated to `admission`; who may call is decided before the registry is reached.
//!
//! Every value goes through the registry's [`Transformer`] on its way to and from the store
//! (`encode`/`decode`), so objects the encryption configuration names (Secrets) are
//! ciphertext in the store, its log, snapshots and backups. A value that cannot be
//! decrypted is an `Internal` error naming the missing key, never data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use base64::Engine;
use futures::StreamExt;
use raft_store::kv::{
    Compare, CompareOp, CompareTarget, DeleteRequest, EventKind, KeyRange, KeyValue, KvError,
    KvResponse, Op, PutRequest, RangeRequest, TxnOp, TxnOpResponse, TxnRequest,
};
use rafter_proto::api::EncodedItem;
use rafter_proto::{
    DeleteOptions, Kind, ListOptions, Object, OptionError, Propagation, ReadConsistency, Timestamp,
    WatchEvent, WatchEventType,
};
use serde_json::Value;

use crate::admission::{self, AdmissionError, AdmissionReader};
use crate::allocator::{self, AllocationError, Plan, RepairReport, ServiceRanges};
use crate::encryption::Transformer;
use crate::managed_fields::{self, ManagedFieldsError, Writer};
use crate::store::{KvStore, StoreError};
use crate::watch_cache::{shared_changes, CachedEvent, CachedRange, Decoded, WatchCache};

/// The largest object the registry stores (as etcd's default request limit).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

pub use rafter_proto::well_known::SYSTEM_NAMESPACES;

/// Why a registry call failed, with the Kubernetes reason a caller acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The object does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind.
        kind: Kind,
        /// `namespace/name` or `name`.
        name: String,
    },
    /// An object with this name exists already.
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// The kind.
        kind: Kind,
        /// `namespace/name` or `name`.
        name: String,
    },
    /// The object changed since the caller read it (stale resourceVersion or precondition).
    #[error("Operation cannot be fulfilled on {kind} {name:?}: {detail}")]
    Conflict {
        /// The kind.
        kind: Kind,
        /// `namespace/name` or `name`.
        name: String,
        /// What differed.
        detail: String,
    },
    /// The object is invalid: every field error, with its path.
    #[error("{kind} {name:?} is invalid: {}", errors.join("; "))]
    Invalid {
        /// The kind.
        kind: Kind,
        /// The object's name.
        name: String,
        /// Field errors, `path: message`.
        errors: Vec<String>,
    },
    /// The request itself is malformed (bad selector, bad patch, bad continue token ...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is understood and refused (system namespace, quota exceeded, namespace
    /// terminating ...).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The object or request is larger than the store accepts; nothing was written.
    #[error("request entity too large: {0}")]
    TooLarge(String),
    /// A resourceVersion or continue token is older than the store's history.
    #[error("{0}: the resourceVersion is too old; list again to get a fresh one")]
    Gone(String),
    /// A fenced write lost its term: leadership moved on since the caller decided it.
    #[error("the write was decided in an earlier leadership term and was not applied: {0}")]
    Fenced(String),
    /// The store could not serve the call (no quorum, no leader, timeout).
    #[error(transparent)]
    Store(StoreError),
    /// Stored bytes could not be decoded: a bug or corruption, reported, never ignored.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    /// Whether the same call may succeed when retried (elsewhere or later).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Store(e) if e.is_retryable())
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> RegistryError {
        match e {
            StoreError::Kv(KvError::Compacted {
                requested,
                compacted,
            }) => RegistryError::Gone(format!(
                "revision {requested} is compacted (history starts at {compacted})"
            )),
            StoreError::Kv(
                KvError::ValueTooLarge { size, limit } | KvError::RequestTooLarge { size, limit },
            ) => RegistryError::TooLarge(format!("{size} bytes, the limit is {limit}")),
            StoreError::Kv(KvError::FutureRevision { requested, current }) => {
                RegistryError::BadRequest(format!(
                    "resourceVersion {requested} is newer than the store ({current})"
                ))
            }
            StoreError::Kv(fenced @ KvError::Fenced { .. }) => {
                RegistryError::Fenced(fenced.to_string())
            }
            other => RegistryError::Store(other),
        }
    }
}

/// Which part of an object an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// Everything but status.
    Main,
    /// Status only.
    Status,
}

impl Subresource {
    /// Parses the API's subresource field ("" or "status").
    pub fn parse(text: &str) -> Result<Subresource, RegistryError> {
        match text {
            "" => Ok(Subresource::Main),
            "status" => Ok(Subresource::Status),
            other => Err(RegistryError::BadRequest(format!(
                "subresource {other:?} cannot be written this way; use \"\" or \"status\" (scale and binding have their own calls)"
            ))),
        }
    }
}

/// Which parts of the caller's object an update takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeMode {
    /// Everything but status.
    Main,
    /// Status only.
    Status,
    /// Spec and status together: only the registry's own subresources (binding) use it.
    Whole,
}

impl From<OptionError> for RegistryError {
    fn from(e: OptionError) -> RegistryError {
        RegistryError::BadRequest(e.to_string())
    }
}

impl From<AdmissionError<RegistryError>> for RegistryError {
    fn from(e: AdmissionError<RegistryError>) -> RegistryError {
        match e {
            AdmissionError::Invalid { kind, name, errors } => {
                RegistryError::Invalid { kind, name, errors }
            }
            AdmissionError::Forbidden(why) => RegistryError::Forbidden(why),
            AdmissionError::Read(e) => e,
        }
    }
}

#[async_trait::async_trait]
impl<S: KvStore> AdmissionReader for Registry<S> {
    type Error = RegistryError;

    async fn get_object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<Option<Object>, RegistryError> {
        if consistency == ReadConsistency::Serializable {
            // From the watch cache, as Kubernetes' admission reads its informers: no store
            // read (and no hand-off to the blocking pool) per create. Admission confirms a
            // miss linearizably where a miss refuses.
            let key = object_key(kind, &effective_namespace(kind, namespace), name);
            let page = self
                .range_page(RangeRequest::new(KeyRange::key(key)), consistency)
                .await?;
            return page
                .kvs
                .first()
                .map(|kv| decode(&self.transformer, kind, kv))
                .transpose();
        }
        match self.get(kind, namespace, name, consistency).await {
            Ok(object) => Ok(Some(object)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_objects(&self, options: &ListOptions) -> Result<Vec<Object>, RegistryError> {
        Ok(self.list(options).await?.items)
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage<T = Object> {
    /// The objects, in key order.
    pub items: Vec<T>,
    /// The revision the list was read at.
    pub revision: u64,
    /// The token for the next page, when more items remain.
    pub continue_token: Option<String>,
    /// How many keys remain after this page (before selectors), when known.
    pub remaining: u64,
}

/// Kubernetes object semantics over a [`KvStore`].
pub struct Registry<S> {
    store: Arc<S>,
    /// The Raft term every write of this handle must be logged in (controllers), if any.
    fence: Option<u64>,
    /// What stored values go through (encryption at rest).
    transformer: Arc<Transformer>,
    /// Where Services' ClusterIPs and NodePorts come from.
    ranges: ServiceRanges,
    /// Where lists and watches are read from, when it can answer them.
    cache: Option<WatchCache>,
    /// The revision of this master's latest write of what admission reads (shared by
    /// every clone): serializable reads from the cache wait until it holds that revision.
    admission_written: Arc<AtomicU64>,
}

impl<S> Clone for Registry<S> {
    fn clone(&self) -> Self {
        Registry {
            store: self.store.clone(),
            fence: self.fence,
            transformer: self.transformer.clone(),
            ranges: self.ranges,
            cache: self.cache.clone(),
            admission_written: self.admission_written.clone(),
        }
    }
}

/// The store key of one object.
pub fn object_key(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.info().namespaced {
        format!("{}{namespace}/{name}", kind_prefix(kind))
    } else {
        format!("{}{name}", kind_prefix(kind))
    }
}

/// The key prefix of every object of a kind.
pub fn kind_prefix(kind: Kind) -> String {
    let info = kind.info();
    let group = if info.group.is_empty() {
        "core"
    } else {
        info.group
    };
    format!("/registry/{group}/{}/", info.plural)
}

/// The key prefix of a kind's objects in one namespace, or all of them.
pub(crate) fn list_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.info().namespaced => format!("{}{ns}/", kind_prefix(kind)),
        _ => kind_prefix(kind),
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects, for messages.
fn display_name(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.info().namespaced {
        format!("{namespace}/{name}")
    } else {
        name.to_owned()
    }
}

/// The current time as Kubernetes writes it: RFC 3339, whole seconds, UTC.
/// Who a write's fields are recorded for in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldManager {
    /// The manager's name (`kubectl-edit`, a user's name).
    pub name: String,
    /// Whether the caller named it. Writes by an unnamed manager are recorded only on
    /// objects that already have managed fields, so objects no one manages with field
    /// ownership (most of what controllers write) pay nothing for it.
    pub explicit: bool,
}

impl FieldManager {
    /// Whether a write by this manager is recorded on an object with `entries`.
    fn records(&self, entries: &[rafter_proto::v1::ManagedFieldsEntry]) -> bool {
        self.explicit || !entries.is_empty()
    }
}

/// The managed fields after `manager` changed `old` into `new` (an update or a create,
/// `old` then `None`).
fn tracked_fields(
    old: Option<&Object>,
    new: &Object,
    manager: &FieldManager,
) -> Result<Vec<rafter_proto::v1::ManagedFieldsEntry>, RegistryError> {
    let json = |object: &Object| {
        object
            .to_json_value()
            .map_err(|e| RegistryError::Internal(format!("encoding for managed fields: {e}")))
    };
    let time = now_rfc3339();
    let api_version = new.kind().info().api_version();
    let writer = Writer {
        manager: &manager.name,
        api_version: &api_version,
        time: &time,
    };
    let new_json = json(new)?;
    match old {
        None => Ok(managed_fields::track_create(&new_json, &writer)),
        Some(old) => managed_fields::track_update(
            &json(old)?,
            &new_json,
            &old.metadata().managed_fields,
            &writer,
        )
        .map_err(|e| match e {
            ManagedFieldsError::BadFields { .. } => RegistryError::BadRequest(e.to_string()),
            other => RegistryError::Internal(other.to_string()),
        }),
    }
}

pub fn now_rfc3339() -> String {
    Timestamp::now().to_rfc3339()
}

fn rfc3339_after(seconds: i64) -> String {
    Timestamp::now().plus_seconds(seconds).to_rfc3339()
}

/// Decrypts and decodes a stored object and gives it its resourceVersion.
pub fn decode(
    transformer: &Transformer,
    kind: Kind,
    kv: &KeyValue,
) -> Result<Object, RegistryError> {
    let plain = transformer
        .decrypt(kind, &kv.key, &kv.value)
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    decode_plain(kind, kv, &plain)
}

/// [`decode`] of a value already decrypted (`plain`, read from `kv`).
fn decode_plain(kind: Kind, kv: &KeyValue, plain: &[u8]) -> Result<Object, RegistryError> {
    let mut object = Object::decode(kind, plain).map_err(|e| {
        RegistryError::Internal(format!(
            "{} holds an undecodable {kind}: {e}",
            String::from_utf8_lossy(&kv.key)
        ))
    })?;
    object.set_type_meta();
    object.metadata_mut().resource_version = kv.mod_revision.to_string();
    Ok(object)
}

/// The bytes stored for an object at `key`: without its resourceVersion, which the store
/// keeps, and encrypted when the configuration says so.
pub(crate) fn encode(
    transformer: &Transformer,
    key: &str,
    object: &Object,
) -> Result<Vec<u8>, RegistryError> {
    let mut stored = object.clone();
    stored.metadata_mut().resource_version.clear();
    let bytes = stored.encode_to_vec();
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(RegistryError::TooLarge(format!(
            "{} {:?} is {} bytes; objects are limited to {MAX_OBJECT_BYTES} bytes",
            object.kind(),
            object.metadata().name,
            bytes.len()
        )));
    }
    transformer
        .encrypt(object.kind(), key.as_bytes(), bytes)
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

fn parse_revision(text: &str) -> Result<u64, RegistryError> {
    text.parse().map_err(|_| {
        RegistryError::BadRequest(format!("resourceVersion {text:?} is not a store revision"))
    })
}

fn random_suffix() -> String {
    // Kubernetes' alphabet for generated names: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// The object as JSON with `status` taken out, and the status.
fn split_status(object: &Object) -> Result<(Value, Value), RegistryError> {
    let mut value = object
        .to_json_value()
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let status = value
        .as_object_mut()
        .and_then(|m| m.remove("status"))
        .unwrap_or(Value::Null);
    Ok((value, status))
}

fn with_status(kind: Kind, mut body: Value, status: Value) -> Result<Object, RegistryError> {
    if let Some(map) = body.as_object_mut() {
        if !status.is_null() {
            map.insert("status".to_owned(), status);
        }
    }
    Object::from_json_value(kind, body).map_err(RegistryError::Internal)
}

/// Whether anything but metadata and status differs (what bumps `generation`).
fn spec_changed(old: &Object, new: &Object) -> Result<bool, RegistryError> {
    let strip = |o: &Object| -> Result<Value, RegistryError> {
        let (mut body, _) = split_status(o)?;
        if let Some(map) = body.as_object_mut() {
            map.remove("metadata");
        }
        Ok(body)
    };
    Ok(strip(old)? != strip(new)?)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    /// The revision the first page was read at.
    rev: u64,
    /// The key to start the next page at.
    start: String,
}

impl<S: KvStore> Registry<S> {
    /// A registry over `store`.
    pub fn new(store: Arc<S>) -> Registry<S> {
        Registry {
            store,
            fence: None,
            transformer: Arc::new(Transformer::identity()),
            ranges: ServiceRanges::default(),
            cache: None,
            admission_written: Arc::new(AtomicU64::new(0)),
        }
    }

    /// This registry with lists and watches read from `cache` where it can answer them.
    pub fn with_watch_cache(mut self, cache: WatchCache) -> Registry<S> {
        self.cache = Some(cache);
        self
    }

    /// The watch cache lists and watches are read from, if any.
    pub fn watch_cache(&self) -> Option<&WatchCache> {
        self.cache.as_ref()
    }

    /// This registry with Services' ClusterIPs and NodePorts allocated from `ranges`.
    pub fn with_service_ranges(mut self, ranges: ServiceRanges) -> Registry<S> {
        self.ranges = ranges;
        self
    }

    /// Where Services' ClusterIPs and NodePorts come from.
    pub fn service_ranges(&self) -> &ServiceRanges {
        &self.ranges
    }

    /// This registry with stored values going through `transformer` (encryption at rest).
    pub fn with_transformer(mut self, transformer: Arc<Transformer>) -> Registry<S> {
        self.transformer = transformer;
        self
    }

    /// What stored values go through: decode store values read elsewhere with it.
    pub fn transformer(&self) -> &Arc<Transformer> {
        &self.transformer
    }

    /// A handle whose writes apply only if logged in Raft term `term`: what a controller
    /// deciding as leader in `term` writes through, so it can never act once leadership
    /// has moved on (its writes then fail with a store `Fenced` error).
    pub fn fenced(&self, term: u64) -> Registry<S> {
        Registry {
            store: self.store.clone(),
            fence: Some(term),
            transformer: self.transformer.clone(),
            ranges: self.ranges,
            cache: self.cache.clone(),
            admission_written: self.admission_written.clone(),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    async fn read(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<Option<(Object, KeyValue)>, RegistryError> {
        let key = object_key(kind, namespace, name);
        let response = self
            .store
            .range(RangeRequest::new(KeyRange::key(key)), consistency)
            .await?;
        match response.kvs.into_iter().next() {
            Some(kv) => Ok(Some((decode(&self.transformer, kind, &kv)?, kv))),
            None => Ok(None),
        }
    }

    /// Reads one object.
    pub async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<Object, RegistryError> {
        let namespace = effective_namespace(kind, namespace);
        self.read(kind, &namespace, name, consistency)
            .await?
            .map(|(object, _)| object)
            .ok_or_else(|| RegistryError::NotFound {
                kind,
                name: display_name(kind, &namespace, name),
            })
    }

    /// Creates an object. Returns it as stored, with uid, creationTimestamp and
    /// resourceVersion. With `dry_run` everything is checked and nothing is written.
    pub async fn create(&self, object: Object, dry_run: bool) -> Result<Object, RegistryError> {
        self.create_as(object, dry_run, None).await
    }

    /// `create`, recording the object's fields for `manager` when it is named (unless the
    /// object carries its own managed fields, as a server-side apply's create does).
    pub async fn create_as(
        &self,
        mut object: Object,
        dry_run: bool,
        manager: Option<&FieldManager>,
    ) -> Result<Object, RegistryError> {
        let kind = object.kind();
        object.set_type_meta();
        {
            let meta = object.metadata_mut();
            if kind.info().namespaced && meta.namespace.is_empty() {
                meta.namespace = "default".to_owned();
            }
            if meta.name.is_empty() && !meta.generate_name.is_empty() {
                meta.name = format!("{}{}", meta.generate_name, random_suffix());
            }
            meta.uid = uuid::Uuid::new_v4().to_string();
            meta.creation_timestamp = Some(now_rfc3339());
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            meta.resource_version.clear();
            meta.generation = 1;
            meta.self_link.clear();
        }
        if let Object::CertificateSigningRequest(csr) = &mut object {
            // As Kubernetes' CSR strategy: a request is filed, never filed approved. Its
            // conditions come only through the approval subresource, its certificate only
            // from the signer.
            csr.status = None;
        }
        if let Object::Service(service) = &mut object {
            allocator::normalize(service);
        }
        admission::admit(self, &mut object, None).await?;
        if let Some(manager) = manager.filter(|m| m.explicit) {
            if object.metadata().managed_fields.is_empty() {
                object.metadata_mut().managed_fields = tracked_fields(None, &object, manager)?;
            }
        }
        let (namespace, name) = (
            object.metadata().namespace.clone(),
            object.metadata().name.clone(),
        );
        let key = object_key(kind, &namespace, &name);
        let exists = || RegistryError::AlreadyExists {
            kind,
            name: display_name(kind, &namespace, &name),
        };
        // A Service's values are chosen per attempt, and quotas charged per attempt: a
        // value another master took in between, or a quota another write charged, fails
        // the transaction's compare, and the next attempt chooses and charges again.
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 1 {
                contention_pause(attempt).await;
            }
            let consistency = read_for_write(attempt);
            let mut candidate = object.clone();
            let plan = match self
                .plan_allocation(None, &mut candidate, consistency)
                .await
            {
                // A Service of that name exists: that is the answer, not its values
                // being taken (by itself).
                Err(RegistryError::Invalid { .. })
                    if self
                        .read(kind, &namespace, &name, ReadConsistency::Linearizable)
                        .await?
                        .is_some() =>
                {
                    return Err(exists())
                }
                other => other?,
            };
            let charged = self.plan_quota(None, &candidate, consistency).await?;
            let value = encode(&self.transformer, &key, &candidate)?;
            if dry_run {
                return Ok(candidate);
            }
            let mut compare = vec![Compare::new(
                key.clone(),
                CompareOp::Equal,
                CompareTarget::CreateRevision(0),
            )];
            let mut success = vec![TxnOp::Put(PutRequest::new(key.clone(), value))];
            let reserves = !plan.is_empty() || !charged.is_empty();
            compare.extend(plan.compares);
            success.extend(plan.ops);
            compare.extend(charged.compares);
            success.extend(charged.ops);
            let (ok, revision, _) = self
                .txn(TxnRequest {
                    compare,
                    success,
                    failure: vec![],
                })
                .await?;
            if ok {
                candidate.metadata_mut().resource_version = revision.to_string();
                return Ok(candidate);
            }
            let taken = self
                .read(kind, &namespace, &name, ReadConsistency::Linearizable)
                .await?
                .is_some();
            if !reserves || taken {
                return Err(exists());
            }
        }
        Err(RegistryError::Conflict {
            kind,
            name: display_name(kind, &namespace, &name),
            detail: "its ClusterIP or NodePorts kept being taken, or its namespace's quota kept being charged, by others; try again".to_owned(),
        })
    }

    /// The reservation writes of a Service's create (`current = None`) or update; other
    /// kinds reserve nothing.
    async fn plan_allocation(
        &self,
        current: Option<&Object>,
        next: &mut Object,
        consistency: ReadConsistency,
    ) -> Result<Plan, RegistryError> {
        let Object::Service(service) = next else {
            return Ok(Plan::default());
        };
        let current = match current {
            Some(Object::Service(current)) => Some(current),
            _ => None,
        };
        let name = service
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.ranges
            .plan(&*self.store, current, service, consistency)
            .await
            .map_err(|e| allocation_error(e, name))
    }

    /// The releases of what `object` (a Service) holds, for its deletion.
    async fn plan_release(
        &self,
        object: &Object,
        consistency: ReadConsistency,
    ) -> Result<Plan, RegistryError> {
        let Object::Service(service) = object else {
            return Ok(Plan::default());
        };
        let name = object.metadata().name.clone();
        self.ranges
            .release_all(&*self.store, service, consistency)
            .await
            .map_err(|e| allocation_error(e, name))
    }

    async fn txn(&self, txn: TxnRequest) -> Result<(bool, u64, Vec<TxnOpResponse>), RegistryError> {
        let admission_input = writes_admission_input(&txn);
        match self.store.write(Op::Txn(txn), self.fence).await? {
            KvResponse::Txn(response) => {
                if admission_input && response.succeeded {
                    self.admission_written
                        .fetch_max(response.revision, Ordering::Relaxed);
                }
                Ok((response.succeeded, response.revision, response.responses))
            }
            other => Err(RegistryError::Internal(format!(
                "a transaction was answered with {other:?}"
            ))),
        }
    }

    /// Updates an object (everything but status, or status only). A set resourceVersion
    /// must be current, else `Conflict`; an empty one means "whatever is current".
    pub async fn update(
        &self,
        object: Object,
        subresource: Subresource,
        dry_run: bool,
    ) -> Result<Object, RegistryError> {
        self.update_as(object, subresource, dry_run, None).await
    }

    /// `update`, recording the fields it changes for `manager` (see `FieldManager`). An
    /// object sent with managed fields keeps those (a server-side apply sets them); one
    /// sent without keeps the stored ones.
    pub async fn update_as(
        &self,
        object: Object,
        subresource: Subresource,
        dry_run: bool,
        manager: Option<&FieldManager>,
    ) -> Result<Object, RegistryError> {
        let mode = match subresource {
            Subresource::Main => MergeMode::Main,
            Subresource::Status => MergeMode::Status,
        };
        self.update_with(object, mode, dry_run, manager).await
    }

    async fn update_with(
        &self,
        mut object: Object,
        mode: MergeMode,
        dry_run: bool,
        manager: Option<&FieldManager>,
    ) -> Result<Object, RegistryError> {
        let kind = object.kind();
        let sent_fields = object.metadata().managed_fields.clone();
        object.set_type_meta();
        let namespace = effective_namespace(kind, &object.metadata().namespace);
        let name = object.metadata().name.clone();
        let expected = object.metadata().resource_version.clone();
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 1 {
                contention_pause(attempt).await;
            }
            let consistency = read_for_write(attempt);
            let Some((current, kv)) = self.read(kind, &namespace, &name, consistency).await? else {
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Err(RegistryError::NotFound {
                    kind,
                    name: display_name(kind, &namespace, &name),
                });
            };
            if !expected.is_empty() && parse_revision(&expected)? != kv.mod_revision {
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Err(RegistryError::Conflict {
                    kind,
                    name: display_name(kind, &namespace, &name),
                    detail: "the object has been modified; please apply your changes to the latest version and try again"
                        .to_owned(),
                });
            }
            let mut next = merge_update(&current, &object, mode)?;
            if let (Object::Service(before), Object::Service(after)) = (&current, &mut next) {
                if mode != MergeMode::Status {
                    allocator::carry_over(before, after);
                    allocator::normalize(after);
                }
            }
            if mode != MergeMode::Status {
                admission::admit(self, &mut next, Some(&current)).await?;
                // Fields sent other than the stored ones are the caller's own account.
                let stored = &current.metadata().managed_fields;
                let supplied = !sent_fields.is_empty() && sent_fields != *stored;
                match manager {
                    Some(manager) if !supplied && manager.records(stored) => {
                        next.metadata_mut().managed_fields =
                            tracked_fields(Some(&current), &next, manager)?;
                    }
                    _ => {}
                }
            }
            let changed = spec_changed(&current, &next)?;
            {
                let meta = next.metadata_mut();
                meta.generation = current.metadata().generation + i64::from(changed);
                meta.resource_version.clear();
            }
            // An update that changes nothing writes nothing (no new resourceVersion), unless
            // the stored value is not under the first provider's key: rewriting it is how
            // `rafter secrets reencrypt` rotates keys, as in Kubernetes. That is only known
            // from the current state: a stale local read is confirmed first.
            let mut unchanged = current.clone();
            unchanged.metadata_mut().resource_version.clear();
            if unchanged == next && !self.transformer.is_stale(kind, &kv.value) {
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Ok(current);
            }
            let key = object_key(kind, &namespace, &name);
            let finished = next.metadata().deletion_timestamp.is_some()
                && next.metadata().finalizers.is_empty();
            let plan = if finished {
                self.plan_release(&current, consistency).await?
            } else if mode == MergeMode::Status {
                Plan::default()
            } else {
                let mut plan = self
                    .plan_allocation(Some(&current), &mut next, consistency)
                    .await?;
                let charged = self.plan_quota(Some(&current), &next, consistency).await?;
                plan.compares.extend(charged.compares);
                plan.ops.extend(charged.ops);
                plan
            };
            if dry_run {
                return Ok(next);
            }
            let guard = Compare::new(
                key.clone(),
                CompareOp::Equal,
                CompareTarget::ModRevision(kv.mod_revision),
            );
            let op = if finished {
                TxnOp::Delete(DeleteRequest::new(KeyRange::key(key)))
            } else {
                TxnOp::Put(PutRequest::new(
                    key.clone(),
                    encode(&self.transformer, &key, &next)?,
                ))
            };
            let mut compare = vec![guard];
            let mut success = vec![op];
            let reserves = !plan.is_empty();
            compare.extend(plan.compares);
            success.extend(plan.ops);
            let (succeeded, revision, _) = self
                .txn(TxnRequest {
                    compare,
                    success,
                    failure: vec![],
                })
                .await?;
            if succeeded {
                next.metadata_mut().resource_version = revision.to_string();
                return Ok(next);
            }
            // A reservation taken in between (not the object) failed it: plan again.
            let object_moved = !reserves
                || self
                    .read(kind, &namespace, &name, ReadConsistency::Linearizable)
                    .await?
                    .is_none_or(|(_, now)| now.mod_revision != kv.mod_revision);
            if !expected.is_empty() && object_moved {
                return Err(RegistryError::Conflict {
                    kind,
                    name: display_name(kind, &namespace, &name),
                    detail: "the object has been modified; please apply your changes to the latest version and try again"
                        .to_owned(),
                });
            }
        }
        Err(RegistryError::Conflict {
            kind,
            name: display_name(kind, &namespace, &name),
            detail: "the object kept changing; try again".to_owned(),
        })
    }

    /// Reads the object, applies `change` to a copy and writes it back with the read
    /// resourceVersion, retrying when someone else wrote in between. `change` returns
    /// `Ok(false)` to leave the object as it is.
    pub async fn modify<F>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        subresource: Subresource,
        change: F,
    ) -> Result<Object, RegistryError>
    where
        F: FnMut(&mut Object) -> Result<bool, RegistryError>,
    {
        self.modify_as(kind, namespace, name, subresource, None, change)
            .await
    }

    /// `modify`, recording the fields it changes for `manager` (see `update_as`).
    pub async fn modify_as<F>(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        subresource: Subresource,
        manager: Option<&FieldManager>,
        mut change: F,
    ) -> Result<Object, RegistryError>
    where
        F: FnMut(&mut Object) -> Result<bool, RegistryError>,
    {
        let namespace = effective_namespace(kind, namespace);
        for attempt in 0..16 {
            let consistency = read_for_write(attempt);
            let mut object = match self.get(kind, &namespace, name, consistency).await {
                Err(RegistryError::NotFound { .. })
                    if consistency == ReadConsistency::Serializable =>
                {
                    continue
                }
                other => other?,
            };
            if !change(&mut object)? {
                // "Nothing to change" is only trusted from the current state.
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Ok(object);
            }
            match self.update_as(object, subresource, false, manager).await {
                Err(RegistryError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(RegistryError::Conflict {
            kind,
            name: display_name(kind, &namespace, name),
            detail: "the object kept changing; try again".to_owned(),
        })
    }

    /// Binds a pending pod to a node (the pods/binding subresource): sets `spec.nodeName`
    /// and the PodScheduled condition in one write. A pod bound elsewhere is a Conflict.
    pub async fn bind(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        uid: Option<&str>,
    ) -> Result<Object, RegistryError> {
        if node.is_empty() {
            return Err(RegistryError::BadRequest(
                "the binding names no node (target.name)".to_owned(),
            ));
        }
        let namespace = effective_namespace(Kind::Pod, namespace);
        for attempt in 0..16 {
            let consistency = read_for_write(attempt);
            let mut object = match self.get(Kind::Pod, &namespace, name, consistency).await {
                Err(RegistryError::NotFound { .. })
                    if consistency == ReadConsistency::Serializable =>
                {
                    continue
                }
                other => other?,
            };
            let conflict = |detail: String| RegistryError::Conflict {
                kind: Kind::Pod,
                name: display_name(Kind::Pod, &namespace, name),
                detail,
            };
            let refusal = if uid.is_some_and(|u| !u.is_empty() && u != object.metadata().uid) {
                Some("the pod was replaced (uid differs)".to_owned())
            } else if object.metadata().deletion_timestamp.is_some() {
                Some("the pod is being deleted".to_owned())
            } else {
                None
            };
            if let Some(detail) = refusal {
                // A refusal is only trusted from the current state.
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Err(conflict(detail));
            }
            let Object::Pod(pod) = &mut object else {
                return Err(RegistryError::Internal(
                    "a pod key holds another kind".to_owned(),
                ));
            };
            let spec = pod.spec.get_or_insert_with(Default::default);
            if !spec.node_name.is_empty() {
                return Err(conflict(format!(
                    "pod {name} is already assigned to node {:?}",
                    spec.node_name
                )));
            }
            spec.node_name = node.to_owned();
            let status = pod.status.get_or_insert_with(Default::default);
            status.conditions.retain(|c| c.r#type != "PodScheduled");
            status.conditions.push(rafter_proto::v1::Condition {
                r#type: "PodScheduled".to_owned(),
                status: "True".to_owned(),
                last_transition_time: Some(now_rfc3339()),
                ..Default::default()
            });
            match self
                .update_with(object, MergeMode::Whole, false, None)
                .await
            {
                Err(RegistryError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(RegistryError::Conflict {
            kind: Kind::Pod,
            name: display_name(Kind::Pod, &namespace, name),
            detail: "the pod kept changing; try again".to_owned(),
        })
    }

    /// Deletes an object, or marks it for deletion when finalizers or a grace period
    /// must run first. Returns the object and whether it is gone.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<(Object, bool), RegistryError> {
        let namespace = effective_namespace(kind, namespace);
        if kind == Kind::Namespace && SYSTEM_NAMESPACES.contains(&name) {
            return Err(RegistryError::Forbidden(format!(
                "namespace {name:?} is a system namespace and cannot be deleted"
            )));
        }
        for attempt in 0..16 {
            let consistency = read_for_write(attempt);
            let Some((current, kv)) = self.read(kind, &namespace, name, consistency).await? else {
                if consistency == ReadConsistency::Serializable {
                    continue;
                }
                return Err(RegistryError::NotFound {
                    kind,
                    name: display_name(kind, &namespace, name),
                });
            };
            let meta = current.metadata();
            // A precondition judged on the local member's possibly stale state is
            // confirmed with a linearizable read before it fails the call.
            let stale_read = consistency == ReadConsistency::Serializable;
            let conflict = |detail: String| RegistryError::Conflict {
                kind,
                name: display_name(kind, &namespace, name),
                detail,
            };
            if let Some(uid) = &options.precondition_uid {
                if *uid != meta.uid {
                    if stale_read {
                        continue;
                    }
                    return Err(conflict(format!(
                        "precondition failed: uid is {}, not {uid}",
                        meta.uid
                    )));
                }
            }
            if let Some(rv) = &options.precondition_resource_version {
                if parse_revision(rv)? != kv.mod_revision {
                    if stale_read {
                        continue;
                    }
                    return Err(conflict(format!(
                        "precondition failed: resourceVersion is {}, not {rv}",
                        kv.mod_revision
                    )));
                }
            }
            let key = object_key(kind, &namespace, name);
            let guard = Compare::new(
                key.clone(),
                CompareOp::Equal,
                CompareTarget::ModRevision(kv.mod_revision),
            );

            let mut marked = current.clone();
            let mut finalizers = meta.finalizers.clone();
            match options.propagation {
                Some(Propagation::Foreground)
                    if !finalizers.iter().any(|f| f == "foregroundDeletion") =>
                {
                    finalizers.push("foregroundDeletion".to_owned())
                }
                Some(Propagation::Orphan) if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".to_owned())
                }
                _ => {}
            }
            let grace = graceful_period(&current, options.grace_period_seconds);
            let already_marked = meta.deletion_timestamp.is_some();
            let wait = !finalizers.is_empty() || grace > 0;

            if dry_run {
                return Ok((current, !wait));
            }
            if wait {
                if already_marked
                    && finalizers == meta.finalizers
                    && grace >= meta.deletion_grace_period_seconds.unwrap_or(0)
                {
                    return Ok((current, false));
                }
                {
                    let m = marked.metadata_mut();
                    m.finalizers = finalizers;
                    m.deletion_grace_period_seconds = Some(grace);
                    if m.deletion_timestamp.is_none() || grace == 0 {
                        m.deletion_timestamp = Some(rfc3339_after(grace));
                    }
                    m.resource_version.clear();
                }
                let value = encode(&self.transformer, &key, &marked)?;
                let put = TxnOp::Put(PutRequest::new(key, value));
                let (ok, revision, _) = self
                    .txn(TxnRequest {
                        compare: vec![guard],
                        success: vec![put],
                        failure: vec![],
                    })
                    .await?;
                if ok {
                    marked.metadata_mut().resource_version = revision.to_string();
                    return Ok((marked, false));
                }
                continue;
            }
            let mut success = vec![TxnOp::Delete(DeleteRequest::new(KeyRange::key(key)))];
            let mut compare = vec![guard];
            let release = self.plan_release(&current, consistency).await?;
            compare.extend(release.compares);
            success.extend(release.ops);
            if kind == Kind::Namespace {
                // Its Services' values are released with them; a Service created in it
                // after this read leaves its values to the repair pass.
                let mut services = ListOptions::all(Kind::Service, Some(name));
                services.consistency = consistency;
                for service in self.list(&services).await?.items {
                    let release = self.plan_release(&service, consistency).await?;
                    compare.extend(release.compares);
                    success.extend(release.ops);
                }
                // Everything inside goes with the namespace, in the same transaction.
                for inner in Kind::all().filter(|k| k.info().namespaced) {
                    success.push(TxnOp::Delete(DeleteRequest::new(KeyRange::prefix(
                        list_prefix(inner, Some(name)),
                    ))));
                }
            }
            let (ok, _, _) = self
                .txn(TxnRequest {
                    compare,
                    success,
                    failure: vec![],
                })
                .await?;
            if ok {
                return Ok((current, true));
            }
        }
        Err(RegistryError::Conflict {
            kind,
            name: display_name(kind, &namespace, name),
            detail: "the object kept changing; try again".to_owned(),
        })
    }

    /// One repair pass over Services' ClusterIP and NodePort reservations, as Kubernetes'
    /// allocator repair loop: reservations whose Service is gone without releasing them
    /// (one created in a namespace while the namespace's delete was decided) or holds the
    /// value no longer are released, values of Services
    /// with no reservation are reserved for them and reported. Judged on the Services and
    /// reservations read at one revision; each write applies only if what it judged on is
    /// unchanged, so a live allocation is never released. The leader's controllers run it.
    pub async fn repair_service_allocations(&self) -> Result<RepairReport, RegistryError> {
        let services_read = self
            .store
            .range(
                RangeRequest::new(KeyRange::prefix(kind_prefix(Kind::Service))),
                ReadConsistency::Linearizable,
            )
            .await?;
        let revision = services_read.revision;
        let mut services = Vec::new();
        for kv in &services_read.kvs {
            if let Object::Service(service) = decode(&self.transformer, Kind::Service, kv)? {
                services.push(allocator::StoredService {
                    service,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    mod_revision: kv.mod_revision,
                });
            }
        }
        let mut request = RangeRequest::new(KeyRange::prefix(allocator::ALLOCATIONS_PREFIX));
        request.revision = revision;
        let reservations = self
            .store
            .range(request, ReadConsistency::Serializable)
            .await?
            .kvs;
        let plan = allocator::plan_repair(&self.ranges, &services, &reservations);
        let mut report = RepairReport {
            revision,
            problems: plan.problems,
            ..RepairReport::default()
        };
        for release in &plan.releases {
            if self.txn(release.txn()).await?.0 {
                report.released.push(release.description.clone());
            }
        }
        for restore in &plan.restores {
            if self.txn(restore.txn()).await?.0 {
                report.restored.push(restore.description());
            }
        }
        Ok(report)
    }

    /// One page of keys: from the watch cache when it can answer, else from the store.
    /// A serializable read from the cache first waits until the cache holds this master's
    /// own latest write of what admission reads (see [`writes_admission_input`]), so a
    /// quota, LimitRange, namespace or ServiceAccount written through this master is seen
    /// by the next create through it.
    pub(crate) async fn range_page(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<CachedRange, RegistryError> {
        if let Some(cache) = &self.cache {
            let written = self.admission_written.load(Ordering::Relaxed);
            // A cache that is not loaded has nothing to wait for: the store is read.
            let fresh = consistency == ReadConsistency::Linearizable
                || written == 0
                || (cache.is_loaded()
                    && cache
                        .wait_for_revision(written, ADMISSION_FRESHNESS_WAIT)
                        .await);
            if fresh {
                if let Some(page) = cache.range(&request, consistency).await? {
                    return Ok(page);
                }
            }
        }
        self.store_page(request, consistency).await
    }

    /// One page of keys from the store itself, in the watch cache's shape.
    pub(crate) async fn store_page(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<CachedRange, RegistryError> {
        let response = self.store.range(request, consistency).await?;
        Ok(CachedRange {
            kvs: response.kvs.into_iter().map(Arc::new).collect(),
            count: response.count,
            more: response.more,
            revision: response.revision,
        })
    }

    /// Lists objects, one page at a time, all pages at one revision.
    pub async fn list(&self, options: &ListOptions) -> Result<ListPage, RegistryError> {
        let kind = options.kind;
        self.list_with(options, |kv| {
            let object = decode(&self.transformer, kind, kv)?;
            Ok(options.matches(&object).then_some(object))
        })
        .await
    }

    /// [`Registry::list`] with each item in its wire form ([`EncodedItem`]): the stored
    /// bytes (decrypted) with the type meta and resourceVersion appended, so a list
    /// without selectors decodes nothing and encodes nothing per item. With selectors,
    /// each object is decoded to test them and still sent as its stored bytes.
    pub async fn list_encoded(
        &self,
        options: &ListOptions,
    ) -> Result<ListPage<EncodedItem>, RegistryError> {
        let kind = options.kind;
        let everything = options.labels.is_empty() && options.fields.is_empty();
        self.list_with(options, |kv| {
            let plain = self
                .transformer
                .decrypt(kind, &kv.key, &kv.value)
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
            if !everything && !options.matches(&decode_plain(kind, kv, &plain)?) {
                return Ok(None);
            }
            Ok(Some(EncodedItem::new(
                kind,
                &plain,
                &kv.mod_revision.to_string(),
            )))
        })
        .await
    }

    /// The paging of [`Registry::list`]: `item` turns each key in range into the page's
    /// item, or `None` when the list's selectors leave it out.
    async fn list_with<T>(
        &self,
        options: &ListOptions,
        mut item: impl FnMut(&KeyValue) -> Result<Option<T>, RegistryError>,
    ) -> Result<ListPage<T>, RegistryError> {
        let prefix = list_prefix(options.kind, options.namespace.as_deref());
        let end = KeyRange::prefix(prefix.clone());
        let (mut start, mut revision) = match &options.continue_token {
            Some(token) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .map_err(|_| {
                        RegistryError::BadRequest("the continue token is not valid".to_owned())
                    })?;
                let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| {
                    RegistryError::BadRequest("the continue token is not valid".to_owned())
                })?;
                if !token.start.starts_with(&prefix) {
                    return Err(RegistryError::BadRequest(
                        "the continue token belongs to another list".to_owned(),
                    ));
                }
                (token.start, token.rev)
            }
            None => (prefix.clone(), 0),
        };
        let end_key = match &end {
            KeyRange::Range { end, .. } => end.clone(),
            KeyRange::Key(_) => None,
        };
        let mut items = Vec::new();
        let page = if options.limit == 0 {
            0
        } else {
            (options.limit as u64).max(32)
        };
        loop {
            let range = match &end_key {
                Some(end) => KeyRange::range(start.clone().into_bytes(), end.clone()),
                None => KeyRange::prefix(start.clone().into_bytes()),
            };
            let mut request = RangeRequest::new(range);
            request.revision = revision;
            request.limit = page;
            let response = self.range_page(request, options.consistency).await?;
            if revision == 0 {
                revision = response.revision;
            }
            let fetched = response.kvs.len();
            for (i, kv) in response.kvs.iter().enumerate() {
                let Some(found) = item(kv)? else {
                    continue;
                };
                items.push(found);
                if options.limit > 0 && items.len() == options.limit {
                    let more = i + 1 < fetched || response.more;
                    if !more {
                        return Ok(ListPage {
                            items,
                            revision,
                            continue_token: None,
                            remaining: 0,
                        });
                    }
                    let mut next = kv.key.clone();
                    next.push(0);
                    let token = ContinueToken {
                        rev: revision,
                        start: String::from_utf8_lossy(&next).into_owned(),
                    };
                    let json = serde_json::to_vec(&token)
                        .map_err(|e| RegistryError::Internal(e.to_string()))?;
                    let remaining = response.count.saturating_sub(i as u64 + 1);
                    return Ok(ListPage {
                        items,
                        revision,
                        continue_token: Some(
                            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
                        ),
                        remaining,
                    });
                }
            }
            if !response.more || fetched == 0 {
                return Ok(ListPage {
                    items,
                    revision,
                    continue_token: None,
                    remaining: 0,
                });
            }
            let mut next = response.kvs[fetched - 1].key.clone();
            next.push(0);
            start = String::from_utf8_lossy(&next).into_owned();
        }
    }

    /// Every object `options` selects, at one revision (returned), each handed to `each`
    /// as it is decoded and dropped after: for a kind too large to hold decoded at once
    /// (150,000 pods are ~750 MB decoded, ~100 MB encoded). Reads one unpaged range, so
    /// `limit` and `continue_token` are ignored.
    pub async fn list_each(
        &self,
        options: &ListOptions,
        mut each: impl FnMut(Object),
    ) -> Result<u64, RegistryError> {
        let kind = options.kind;
        let prefix = list_prefix(kind, options.namespace.as_deref());
        let response = self
            .range_page(
                RangeRequest::new(KeyRange::prefix(prefix)),
                options.consistency,
            )
            .await?;
        for kv in &response.kvs {
            let object = decode(&self.transformer, kind, kv)?;
            if options.matches(&object) {
                each(object);
            }
        }
        Ok(response.revision)
    }

    /// Watches objects of a kind: from `resource_version` (exclusive) when given, else the
    /// current state as ADDED events first. Objects that start or stop matching the
    /// selectors arrive as ADDED and DELETED.
    pub async fn watch(
        &self,
        options: ListOptions,
        resource_version: Option<&str>,
    ) -> Result<futures::stream::BoxStream<'static, Result<WatchEvent, RegistryError>>, RegistryError>
    {
        let kind = options.kind;
        let prefix = list_prefix(kind, options.namespace.as_deref());
        let (initial, from) = match resource_version.filter(|rv| !rv.is_empty() && *rv != "0") {
            Some(rv) => (Vec::new(), parse_revision(rv)? + 1),
            None => {
                let mut all = options.clone();
                all.limit = 0;
                all.continue_token = None;
                let page = self.list(&all).await?;
                let events = page
                    .items
                    .into_iter()
                    .map(|object| {
                        let revision = object
                            .metadata()
                            .resource_version
                            .parse()
                            .unwrap_or(page.revision);
                        Ok(WatchEvent {
                            event_type: WatchEventType::Added,
                            object: Some(object),
                            revision,
                        })
                    })
                    .collect::<Vec<_>>();
                (events, page.revision + 1)
            }
        };
        let range = KeyRange::prefix(prefix);
        let changes = match &self.cache {
            Some(cache) => cache.watch(range.clone(), from).await?,
            None => shared_changes(self.store.watch(range.clone(), from).await?),
        };
        let transformer = self.transformer.clone();
        let changes = changes.flat_map(move |batch| {
            let events: Vec<Result<WatchEvent, RegistryError>> = match batch {
                Err(e) => vec![Err(RegistryError::from(e))],
                Ok(batch) => batch
                    .events()
                    .iter()
                    .filter(|event| range.contains(&event.kv().key))
                    .filter_map(|event| {
                        translate(&transformer, kind, &options, event, batch.revision()).transpose()
                    })
                    .collect(),
            };
            futures::stream::iter(events)
        });
        Ok(futures::stream::iter(initial).chain(changes).boxed())
    }
}

/// A shared change as one watcher sees it: its objects are decoded once for all watchers
/// of the master (the first one to need them decodes them), then cloned for this one.
fn translate(
    transformer: &Transformer,
    kind: Kind,
    options: &ListOptions,
    event: &CachedEvent,
    revision: u64,
) -> Result<Option<WatchEvent>, RegistryError> {
    let shared_decode = |kv: &KeyValue| -> Decoded {
        decode(transformer, kind, kv)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    match event.kind() {
        EventKind::Put => {
            let new = event
                .object(shared_decode)
                .map_err(RegistryError::Internal)?;
            // A watch of every object (the authorizer's, most clients') needs no previous
            // object for a put: the key existing before makes it Modified. Only a selector
            // decodes it, to tell an object entering or leaving its set.
            let old_matches = if options.labels.is_empty() && options.fields.is_empty() {
                event.existed_before()
            } else {
                match event.prev_object(shared_decode) {
                    Some(old) => options.matches(&*old.map_err(RegistryError::Internal)?),
                    None => false,
                }
            };
            let event_type = match (old_matches, options.matches(&new)) {
                (false, true) => WatchEventType::Added,
                (true, true) => WatchEventType::Modified,
                (true, false) => WatchEventType::Deleted,
                (false, false) => return Ok(None),
            };
            let mut object = Object::clone(&new);
            if event_type == WatchEventType::Deleted {
                // The object as the watcher last knew it, at the revision it left the set.
                object.metadata_mut().resource_version = revision.to_string();
            }
            Ok(Some(WatchEvent {
                event_type,
                object: Some(object),
                revision,
            }))
        }
        EventKind::Delete => {
            let Some(old) = event.prev_object(shared_decode) else {
                return Ok(None);
            };
            let old = old.map_err(RegistryError::Internal)?;
            if !options.matches(&old) {
                return Ok(None);
            }
            let mut object = Object::clone(&old);
            object.metadata_mut().resource_version = revision.to_string();
            Ok(Some(WatchEvent {
                event_type: WatchEventType::Deleted,
                object: Some(object),
                revision,
            }))
        }
    }
}

/// An allocation refusal as the registry answers it: the Service's field errors.
fn allocation_error(e: AllocationError, name: String) -> RegistryError {
    match e {
        AllocationError::Invalid(errors) => RegistryError::Invalid {
            kind: Kind::Service,
            name,
            errors,
        },
        AllocationError::Store(e) => e.into(),
    }
}

/// How a read-modify-write reads on its `attempt`-th try: the local member's state first
/// (no round trip to the leader; the write's compare-and-swap on mod_revision catches a
/// stale read), then linearizably, so an answer that fails the call (missing, changed,
/// precondition) is never based on stale state.
/// How many times a create or update plans and tries its transaction before giving up
/// with `Conflict`: enough for dozens of writers charging one quota at once.
const WRITE_ATTEMPTS: usize = 32;

/// A short random pause before attempt `attempt` (from the third on), growing with it, so
/// writers that keep failing each other's compares spread out instead of colliding again.
async fn contention_pause(attempt: usize) {
    let cap_ms = 2u64 << attempt.min(6);
    let ms = rand::random::<u64>() % cap_ms;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// How long a serializable read waits for the watch cache to hold this master's own
/// latest write of an admission input before it reads the store instead.
const ADMISSION_FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The key prefixes of what admission reads: namespaces, ServiceAccounts, LimitRanges and
/// ResourceQuotas.
static ADMISSION_INPUTS: LazyLock<[String; 4]> = LazyLock::new(|| {
    [
        kind_prefix(Kind::Namespace),
        kind_prefix(Kind::ServiceAccount),
        kind_prefix(Kind::LimitRange),
        kind_prefix(Kind::ResourceQuota),
    ]
});

/// Whether `txn`, when it succeeds, writes what admission reads.
fn writes_admission_input(txn: &TxnRequest) -> bool {
    txn.success.iter().any(|op| {
        let key = match op {
            TxnOp::Put(put) => &put.key,
            TxnOp::Delete(delete) => match &delete.range {
                KeyRange::Key(key) => key,
                KeyRange::Range { start, .. } => start,
            },
            _ => return false,
        };
        ADMISSION_INPUTS
            .iter()
            .any(|prefix| key.starts_with(prefix.as_bytes()))
    })
}

fn read_for_write(attempt: usize) -> ReadConsistency {
    if attempt == 0 {
        ReadConsistency::Serializable
    } else {
        ReadConsistency::Linearizable
    }
}

fn effective_namespace(kind: Kind, namespace: &str) -> String {
    if !kind.info().namespaced {
        String::new()
    } else if namespace.is_empty() {
        "default".to_owned()
    } else {
        namespace.to_owned()
    }
}

/// Seconds a deletion waits: pods bound to a node get their grace period so the agent can
/// stop them; everything else goes at once.
fn graceful_period(object: &Object, requested: Option<i64>) -> i64 {
    match object {
        Object::Pod(pod) => {
            let bound = pod.spec.as_ref().is_some_and(|s| !s.node_name.is_empty());
            let finished = pod
                .status
                .as_ref()
                .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed");
            if !bound || finished {
                return 0;
            }
            let default = pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30);
            requested.unwrap_or(default).max(0)
        }
        _ => 0,
    }
}

/// The object an update writes: the caller's object with what it may not change kept from
/// `current` (status for the main resource; everything but status for the status one;
/// identity and deletion fields always).
fn merge_update(
    current: &Object,
    incoming: &Object,
    mode: MergeMode,
) -> Result<Object, RegistryError> {
    let kind = current.kind();
    let mut next = match mode {
        MergeMode::Whole => incoming.clone(),
        MergeMode::Main => {
            let (body, _) = split_status(incoming)?;
            let (_, status) = split_status(current)?;
            with_status(kind, body, status)?
        }
        MergeMode::Status => {
            let (body, _) = split_status(current)?;
            let (_, status) = split_status(incoming)?;
            with_status(kind, body, status)?
        }
    };
    let old = current.metadata();
    let meta = next.metadata_mut();
    meta.uid = old.uid.clone();
    meta.creation_timestamp = old.creation_timestamp.clone();
    meta.deletion_timestamp = old.deletion_timestamp.clone();
    meta.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    meta.namespace = old.namespace.clone();
    meta.generate_name = old.generate_name.clone();
    if meta.managed_fields.is_empty() || mode == MergeMode::Status {
        meta.managed_fields = old.managed_fields.clone();
    }
    if mode == MergeMode::Status {
        meta.labels = old.labels.clone();
        meta.annotations = old.annotations.clone();
        meta.finalizers = old.finalizers.clone();
        meta.owner_references = old.owner_references.clone();
    }
    Ok(next)
}

#[cfg(test)]
#[path = "registry_test.rs"]
mod registry_test;
