//! The controllers on a master: [`actors::ClusterApi`] over the registry and the local
//! Raft member, [`actors::CertificateSigner`] over the cluster CA, leadership from Raft
//! metrics, and the controller thread ([`start`]).
//!
//! ```text
//!  master tokio runtime                          controller thread (actix System)
//!  ─────────────────────                         ────────────────────────────────
//!  Node::subscribe_applied ─► decode by kind ─► mpsc ─► informer
//!  Node::range (revision R)  ◄── snapshot / revision ── informer, leadership barrier
//!  Registry::fenced(term)    ◄── authorize as system:controller:<name> ◄── execute(name, action, term) ── controllers
//!  Node::metrics ─► leader_term ─► watch<Option<term>> ─► leadership actor
//! ```
//!
//! Every call from the controllers is spawned on the master's runtime through a held
//! `tokio::runtime::Handle` and awaited through its join handle, so tonic and openraft
//! futures only ever run on the runtime they belong to and the actix thread never blocks.
//!
//! Owns the translation between store keys and controller objects and between registry
//! errors and [`ApiError`]. It must not decide anything (the cores in `actors` do) and
//! must not write without the fence of the term the decision was made in.

use raft_store::WatchReceiver;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::runtime::{event_object, ApiError, ChangeStream, INFORMED_KINDS};
use actors::{
    Action, AllocationProblem, AllocationRepair, CacheEvent, CertificateSigner, ClusterApi,
    ObjectKey, Outcome, RequestSubject, RevisionChanges, RuntimeConfig, RuntimeError,
    RuntimeThread, Snapshot, Timestamp,
};
use futures::StreamExt;
use raft_store::kv::{EventKind, KeyRange, KvError, RangeRequest, RevisionEvents};
use raft_store::{Consistency, Node, NodeError};
use rafter_proto::{Kind, Object};
use tokio::sync::{mpsc, watch};

use crate::controller_identity::authorize;
use crate::raft_kv::RaftKv;
use api_gateway::{
    decode, kind_prefix, Authorizer, Registry, RegistryError, StoreError, Subresource, Transformer,
};
use rafter_client::{request_names, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};
use rafter_proto::{DeleteOptions, Propagation};

/// Revisions buffered between the member's feed and the informer.
const FEED_BUFFER: usize = 1024;

/// The cluster as the controllers on this master see it.
#[derive(Clone)]
pub struct MasterCluster {
    registry: Registry<RaftKv>,
    node: Node,
    handle: tokio::runtime::Handle,
    prefixes: Arc<Vec<(String, Kind)>>,
    /// Decides whether a controller's action is within its role (the gateway's chain).
    authorizer: Arc<dyn Authorizer>,
}

impl MasterCluster {
    /// The cluster over `registry` and its member `node`; calls run on `handle`; each
    /// controller's actions are authorized by `authorizer` as its own identity.
    pub fn new(
        registry: Registry<RaftKv>,
        node: Node,
        handle: tokio::runtime::Handle,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        let prefixes = INFORMED_KINDS
            .iter()
            .map(|kind| (kind_prefix(*kind), *kind))
            .collect();
        MasterCluster {
            registry,
            node,
            handle,
            prefixes: Arc::new(prefixes),
            authorizer,
        }
    }

    /// Runs `work` on the master's runtime.
    async fn on_master<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, ApiError>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(work)
            .await
            .map_err(|e| ApiError::Other(format!("the master's task failed: {e}")))?
    }
}

fn node_error(e: NodeError) -> ApiError {
    match e {
        NodeError::Kv(KvError::Compacted { .. }) => ApiError::Gone(e.to_string()),
        NodeError::Kv(KvError::Fenced { .. }) => ApiError::Fenced(e.to_string()),
        e if e.is_retryable() => ApiError::Unavailable(e.to_string()),
        e => ApiError::Other(e.to_string()),
    }
}

fn registry_error(e: RegistryError) -> ApiError {
    let text = e.to_string();
    match e {
        RegistryError::NotFound { .. } => ApiError::NotFound(text),
        RegistryError::AlreadyExists { .. } => ApiError::AlreadyExists(text),
        RegistryError::Conflict { .. } => ApiError::Conflict(text),
        RegistryError::Fenced(_) => ApiError::Fenced(text),
        RegistryError::Gone(_) => ApiError::Gone(text),
        RegistryError::Store(StoreError::Kv(KvError::Fenced { .. })) => ApiError::Fenced(text),
        e if e.is_retryable() => ApiError::Unavailable(text),
        _ => ApiError::Other(text),
    }
}

fn revision_of(object: &Object) -> u64 {
    object.metadata().resource_version.parse().unwrap_or(0)
}

/// The informed kind and key of a store key.
fn key_of(prefixes: &[(String, Kind)], key: &[u8]) -> Option<ObjectKey> {
    let key = std::str::from_utf8(key).ok()?;
    let (prefix, kind) = prefixes.iter().find(|(p, _)| key.starts_with(p.as_str()))?;
    let rest = &key[prefix.len()..];
    if kind.info().namespaced {
        let (namespace, name) = rest.split_once('/')?;
        Some(ObjectKey::new(*kind, namespace, name))
    } else {
        Some(ObjectKey::new(*kind, "", rest))
    }
}

/// The changes of one applied revision to informed objects.
fn translate(
    transformer: &Transformer,
    prefixes: &[(String, Kind)],
    revision: RevisionEvents,
) -> RevisionChanges {
    let mut events = Vec::new();
    for event in &revision.events {
        let Some(key) = key_of(prefixes, &event.kv.key) else {
            continue;
        };
        match event.kind {
            EventKind::Put => match decode(transformer, key.kind, &event.kv) {
                Ok(mut object) => {
                    // The informer keeps it until it changes: without decoding's spare room.
                    object.shrink_to_fit();
                    events.push(CacheEvent::Upsert(object));
                }
                Err(e) => {
                    tracing::error!(%key, error = %e, "controllers: undecodable object skipped")
                }
            },
            EventKind::Delete => events.push(CacheEvent::Delete(key)),
        }
    }
    RevisionChanges {
        revision: revision.revision,
        events,
    }
}

async fn execute(
    registry: Registry<RaftKv>,
    node: Node,
    action: Action,
    term: u64,
) -> Result<Outcome, ApiError> {
    let fenced = registry.fenced(term);
    let written = |object: Object| Outcome {
        revision: revision_of(&object),
    };
    let after_delete = |node: Node| async move {
        // The delete applied on this member (the leader) before it answered, so its current
        // revision shows it.
        Outcome {
            revision: node.revision().await.unwrap_or(0),
        }
    };
    match action {
        Action::Create(object) => fenced.create(object, false).await.map(written),
        Action::Update(object) => fenced
            .update(object, Subresource::Main, false)
            .await
            .map(written),
        Action::UpdateStatus(object) => fenced
            .update(object, Subresource::Status, false)
            .await
            .map(written),
        Action::Bind {
            namespace,
            name,
            uid,
            node: target,
        } => fenced
            .bind(&namespace, &name, &target, Some(&uid))
            .await
            .map(written),
        Action::RecordEvent(record) => {
            let event = event_object(
                &record,
                Timestamp::from_unix_millis(now_millis()),
                rand::random(),
            );
            fenced.create(event, false).await.map(written)
        }
        Action::Delete {
            key,
            uid,
            grace_period_seconds,
            propagation,
        } => {
            let options = DeleteOptions {
                grace_period_seconds,
                propagation: propagation.map(|p| match p {
                    actors::Propagation::Orphan => Propagation::Orphan,
                    actors::Propagation::Background => Propagation::Background,
                    actors::Propagation::Foreground => Propagation::Foreground,
                }),
                precondition_uid: uid,
                precondition_resource_version: None,
            };
            fenced
                .delete(key.kind, &key.namespace, &key.name, &options, false)
                .await
                .map_err(registry_error)?;
            return Ok(after_delete(node).await);
        }
        Action::Evict {
            namespace,
            name,
            uid,
            grace_period_seconds,
        } => {
            let options = DeleteOptions {
                grace_period_seconds,
                precondition_uid: Some(uid).filter(|u| !u.is_empty()),
                ..Default::default()
            };
            fenced
                .delete(Kind::Pod, &namespace, &name, &options, false)
                .await
                .map_err(registry_error)?;
            return Ok(after_delete(node).await);
        }
    }
    .map_err(registry_error)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl ClusterApi for MasterCluster {
    async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let node = self.node.clone();
        let prefixes = Arc::clone(&self.prefixes);
        let transformer = Arc::clone(self.registry.transformer());
        self.on_master(async move {
            let probe = RangeRequest::new(KeyRange::key("/registry/"));
            let revision = node
                .range(probe, Consistency::Linearizable)
                .await
                .map_err(node_error)?
                .revision;
            let mut objects = Vec::new();
            for (prefix, kind) in prefixes.iter() {
                let mut request = RangeRequest::new(KeyRange::prefix(prefix.clone()));
                request.revision = revision;
                let response = node
                    .range(request, Consistency::Serializable)
                    .await
                    .map_err(node_error)?;
                for kv in &response.kvs {
                    match decode(&transformer, *kind, kv) {
                        Ok(mut object) => {
                            object.shrink_to_fit();
                            objects.push(Arc::new(object));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "controllers: undecodable object skipped")
                        }
                    }
                }
            }
            Ok(Snapshot { objects, revision })
        })
        .await
    }

    async fn changes(&self, from: u64) -> Result<ChangeStream, ApiError> {
        let node = self.node.clone();
        let prefixes = Arc::clone(&self.prefixes);
        let transformer = Arc::clone(self.registry.transformer());
        let (tx, rx) = mpsc::channel(FEED_BUFFER);
        self.on_master(async move {
            let mut feed = node.subscribe_applied(from).await.map_err(node_error)?;
            tokio::spawn(async move {
                loop {
                    let item = tokio::select! {
                        item = feed.next() => item,
                        () = tx.closed() => return,
                    };
                    let item = match item {
                        Some(Ok(revision)) => Ok(translate(&transformer, &prefixes, revision)),
                        Some(Err(e)) => Err(node_error(e)),
                        None => Err(ApiError::Gone("the member's feed ended".to_owned())),
                    };
                    let last = item.is_err();
                    if tx.send(item).await.is_err() || last {
                        return;
                    }
                }
            });
            Ok(())
        })
        .await?;
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        Ok(stream.boxed())
    }

    async fn revision(&self) -> Result<u64, ApiError> {
        let node = self.node.clone();
        self.on_master(async move {
            let probe = RangeRequest::new(KeyRange::key("/registry/"));
            Ok(node
                .range(probe, Consistency::Linearizable)
                .await
                .map_err(node_error)?
                .revision)
        })
        .await
    }

    async fn execute(
        &self,
        controller: &'static str,
        action: Action,
        term: u64,
    ) -> Result<Outcome, ApiError> {
        if let Err(reason) = authorize(self.authorizer.as_ref(), controller, &action) {
            tracing::warn!(controller, %reason, "a controller's write is outside its role");
            return Err(ApiError::Other(format!("forbidden: {reason}")));
        }
        let (registry, node) = (self.registry.clone(), self.node.clone());
        self.on_master(execute(registry, node, action, term)).await
    }

    async fn repair_service_allocations(&self, term: u64) -> Result<AllocationRepair, ApiError> {
        let registry = self.registry.fenced(term);
        self.on_master(async move {
            let report = registry
                .repair_service_allocations()
                .await
                .map_err(registry_error)?;
            Ok(AllocationRepair {
                released: report.released,
                restored: report.restored,
                problems: report
                    .problems
                    .into_iter()
                    .map(|p| AllocationProblem {
                        namespace: p.namespace,
                        name: p.name,
                        uid: p.uid,
                        reason: p.reason,
                        message: p.message,
                    })
                    .collect(),
            })
        })
        .await
    }
}

/// The cluster CA as the CSR controller's signer.
pub struct CaSigner {
    ca: ClusterCa,
}

impl CaSigner {
    /// A signer issuing from `ca`.
    pub fn new(ca: ClusterCa) -> CaSigner {
        CaSigner { ca }
    }
}

impl CertificateSigner for CaSigner {
    fn subject(&self, csr_pem: &str) -> Result<RequestSubject, String> {
        let names = request_names(csr_pem).map_err(|e| e.to_string())?;
        Ok(RequestSubject {
            common_name: names.identity.user,
            organizations: names.identity.groups,
            dns_names: names.dns_names,
            ip_addresses: names.ip_addresses,
            emails: names.emails,
            uris: names.others,
        })
    }

    fn sign(
        &self,
        csr_pem: &str,
        _signer_name: &str,
        usages: &[String],
        expiration_seconds: Option<i32>,
    ) -> Result<String, String> {
        let has = |u: &str| usages.iter().any(|x| x == u);
        let usage = match (has("server auth"), has("client auth")) {
            (true, true) => CertUsage::ServerAndClient,
            (true, false) => CertUsage::Server,
            _ => CertUsage::Client,
        };
        // As kube-controller-manager's --cluster-signing-duration: a request may ask for
        // less than the signer's maximum, never more (validation keeps it at 600 s or more).
        let validity = expiration_seconds.map_or(DEFAULT_CERT_VALIDITY, |s| {
            time::Duration::seconds(i64::from(s)).min(DEFAULT_CERT_VALIDITY)
        });
        self.ca
            .sign_request(csr_pem, usage, validity)
            .map_err(|e| e.to_string())
    }
}

/// `Some(term)` while `node` leads, following its Raft metrics, and only while a quorum
/// acknowledged it within six heartbeats: a leader cut off from the others stops its
/// controllers as soon as its followers may elect another one, not when it first hears of
/// the new term (its writes would be fenced anyway; this stops the work). Runs on the
/// caller's runtime until the receiver is dropped.
pub fn leadership(node: Node, heartbeat: Duration) -> watch::Receiver<Option<u64>> {
    let lease = heartbeat * 6;
    let (tx, rx) = watch::channel(None);
    let mut metrics = node.metrics();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut acked_at: Option<Instant> = None;
        let mut refresh = true;
        loop {
            if refresh {
                let since = raft_store::since_quorum_ack(&metrics.borrow_and_update());
                acked_at = since.and_then(|ago| Instant::now().checked_sub(ago));
            }
            let fresh = acked_at.is_some_and(|at| at.elapsed() <= lease);
            let term = node.leader_term().filter(|_| fresh);
            tx.send_if_modified(|current| {
                let changed = *current != term;
                *current = term;
                changed
            });
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        tx.send_replace(None);
                        return;
                    }
                    refresh = true;
                }
                _ = tick.tick() => refresh = false,
                () = tx.closed() => return,
            }
        }
    });
    rx
}

/// Starts the controllers of this master on their own thread, configured by `config`.
/// Call from the master's runtime (it spawns the leadership follower there).
pub fn start(
    registry: Registry<RaftKv>,
    node: Node,
    ca: ClusterCa,
    heartbeat: Duration,
    config: RuntimeConfig,
    authorizer: Arc<dyn Authorizer>,
) -> Result<RuntimeThread, RuntimeError> {
    let handle = tokio::runtime::Handle::current();
    let leadership = leadership(node.clone(), heartbeat);
    let api = Arc::new(MasterCluster::new(registry, node, handle, authorizer));
    RuntimeThread::spawn(api, Arc::new(CaSigner::new(ca)), leadership, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_map_to_informed_objects() {
        let prefixes: Vec<(String, Kind)> = INFORMED_KINDS
            .iter()
            .map(|k| (kind_prefix(*k), *k))
            .collect();
        assert_eq!(
            key_of(&prefixes, b"/registry/core/pods/default/web-1"),
            Some(ObjectKey::new(Kind::Pod, "default", "web-1"))
        );
        assert_eq!(
            key_of(&prefixes, b"/registry/core/nodes/n1"),
            Some(ObjectKey::new(Kind::Node, "", "n1"))
        );
        assert_eq!(
            key_of(&prefixes, b"/registry/core/configmaps/default/x"),
            None
        );
        assert_eq!(key_of(&prefixes, b"/rafter/members/1"), None);
    }

    #[test]
    fn the_ca_signer_issues_kubelet_client_certificates() {
        let ca = ClusterCa::generate("test").unwrap();
        let (csr, _key) =
            rafter_client::new_request("system:node:n1", &["system:nodes".to_owned()]).unwrap();
        let signer = CaSigner::new(ca);
        let subject = signer.subject(&csr).unwrap();
        assert_eq!(subject.common_name, "system:node:n1");
        assert_eq!(subject.organizations, ["system:nodes"]);
        let usages = ["digital signature".to_owned(), "client auth".to_owned()];
        let pem = signer
            .sign(&csr, actors::KUBELET_CLIENT, &usages, Some(3600))
            .unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE"));
        let hour = rafter_client::cert_info(&pem).unwrap();
        // Valid from five minutes back (clock skew) for the hour asked.
        assert!((3890..=3910).contains(&(hour.not_after - hour.not_before)));
        assert!(signer.subject("not pem").is_err());
    }

    #[test]
    fn the_ca_signer_caps_the_requested_lifetime_at_its_maximum() {
        let signer = CaSigner::new(ClusterCa::generate("test").unwrap());
        let (csr, _key) = rafter_client::new_request("jane", &[]).unwrap();
        let usages = ["client auth".to_owned()];
        let pem = signer
            .sign(&csr, actors::KUBE_APISERVER_CLIENT, &usages, Some(i32::MAX))
            .unwrap();
        let info = rafter_client::cert_info(&pem).unwrap();
        let lifetime = info.not_after - info.not_before;
        assert!(
            lifetime <= DEFAULT_CERT_VALIDITY.whole_seconds() + 300,
            "{lifetime} s, asked for {} s",
            i32::MAX
        );
    }
}
