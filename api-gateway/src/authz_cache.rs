//! The authorizers' view of the cluster, kept in memory on each master: the RBAC
//! [`Policy`] (Roles, ClusterRoles and their bindings) and the [`NodeGraph`] (pods by node
//! and what they reference, claims and their volumes), so no request reads the store to be
//! authorized.
//!
//! ```text
//!   registry ─list (local member)─► replace kind ─► watch from the list's revision ─► put / remove
//!                 ▲                                                   │ error or end
//!                 └────────────── back off (250 ms … 5 s) ◄───────────┘
//!   authorizers ──read──► Arc<Policy>                    (a snapshot, copied when written
//!                         │                               while a reader holds it: small)
//!                         └──► NodeGraph, under a read lock (changed in place: one entry
//!                                                           per pod, too large to copy)
//! ```
//!
//! The policy starts from the built-in default policy (`bootstrap_policy`): a default
//! object the store does not hold (yet) still applies, so a node joining a new cluster is
//! not refused before the defaults are written.
//!
//! Owns the tasks that follow those kinds and the snapshots they write. Like any informer it
//! is eventually consistent: a binding created a moment ago may not be seen yet by another
//! master. It must not decide anything (the `rbac` and `node_authz` modules do), and its
//! locks are never held across an `.await`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::{Kind, ListOptions, Object, ReadConsistency, WatchEventType};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bootstrap_policy::default_policy;
use crate::node_authz::NodeGraph;
use crate::rbac::Policy;
use crate::registry::Registry;
use crate::store::KvStore;

/// The kinds the cache follows.
const FOLLOWED: &[Kind] = &[
    Kind::Role,
    Kind::ClusterRole,
    Kind::RoleBinding,
    Kind::ClusterRoleBinding,
    Kind::Pod,
    Kind::PersistentVolumeClaim,
];

/// The authorizers' snapshots and the tasks that keep them current.
pub struct AuthzCache {
    policy: RwLock<Arc<Policy>>,
    graph: RwLock<NodeGraph>,
    /// How many followed kinds have been listed at least once.
    synced: watch::Sender<usize>,
}

/// Stops the cache's tasks when dropped.
pub struct CacheGuard {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for CacheGuard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl AuthzCache {
    /// Starts following the cluster through `registry`; the cache lives until the guard
    /// is dropped.
    pub fn start<S: KvStore>(registry: Registry<S>) -> (Arc<AuthzCache>, CacheGuard) {
        let (synced, _) = watch::channel(0);
        let cache = Arc::new(AuthzCache {
            policy: RwLock::new(Arc::new(Policy::with_builtins(default_policy()))),
            graph: RwLock::new(NodeGraph::default()),
            synced,
        });
        let tasks = FOLLOWED
            .iter()
            .map(|kind| tokio::spawn(follow(registry.clone(), cache.clone(), *kind)))
            .collect();
        (cache, CacheGuard { tasks })
    }

    /// The RBAC policy as last seen.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// `check`'s answer about the node graph as last seen, read under its lock (held for
    /// the check only; writers wait meanwhile).
    pub fn read_graph(&self, check: &mut dyn FnMut(&NodeGraph) -> bool) -> bool {
        match self.graph.read() {
            Ok(g) => check(&g),
            Err(poisoned) => check(&poisoned.into_inner()),
        }
    }

    /// Waits until every followed kind was listed once, or `timeout` passed; whether it was.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut synced = self.synced.subscribe();
        let all = FOLLOWED.len();
        tokio::time::timeout(timeout, synced.wait_for(|n| *n >= all))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Applies `change` to the snapshot `kind` belongs to.
    fn update(&self, kind: Kind, change: impl FnOnce(&mut dyn Snapshot)) {
        if Policy::holds(kind) {
            write(&self.policy, |policy| change(policy));
        } else {
            change(&mut *write_graph(&self.graph));
        }
    }
}

/// Applies `change` to the snapshot behind `lock` (a copy of it, when readers hold the
/// one there).
fn write<T: Clone>(lock: &RwLock<Arc<T>>, change: impl FnOnce(&mut T)) {
    let mut guard = match lock.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    change(Arc::make_mut(&mut guard));
}

/// The graph behind `lock`, for a change in place.
fn write_graph(lock: &RwLock<NodeGraph>) -> std::sync::RwLockWriteGuard<'_, NodeGraph> {
    match lock.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What the cache writes: one snapshot, object by object.
trait Snapshot {
    fn put(&mut self, object: &Object);
    fn remove(&mut self, object: &Object);
}

impl Snapshot for Policy {
    fn put(&mut self, object: &Object) {
        Policy::put(self, object);
    }
    fn remove(&mut self, object: &Object) {
        Policy::remove(self, object);
    }
}

impl Snapshot for NodeGraph {
    fn put(&mut self, object: &Object) {
        NodeGraph::put(self, object);
    }
    fn remove(&mut self, object: &Object) {
        NodeGraph::remove(self, object);
    }
}

/// Lists `kind`, replaces it in the cache, then follows its changes; again after any break.
async fn follow<S: KvStore>(registry: Registry<S>, cache: Arc<AuthzCache>, kind: Kind) {
    let mut first = true;
    let mut backoff = Duration::from_millis(250);
    loop {
        match follow_once(&registry, &cache, kind, &mut first).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => {
                tracing::debug!(%kind, error = %e, "authorization cache: following again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow_once<S: KvStore>(
    registry: &Registry<S>,
    cache: &AuthzCache,
    kind: Kind,
    first: &mut bool,
) -> Result<(), crate::registry::RegistryError> {
    let mut options = ListOptions::all(kind, None);
    options.consistency = ReadConsistency::Serializable;
    let revision = if NodeGraph::holds(kind) {
        // Pods are a cluster's largest kind: each is put into a graph of its own as it is
        // decoded, then dropped, and that graph's pods replace the live ones at once. The
        // list never holds the kind decoded, and readers never see half of it.
        let mut listed = NodeGraph::default();
        let revision = registry
            .list_each(&options, |object| listed.put(&object))
            .await?;
        write_graph(&cache.graph).adopt(kind, listed);
        revision
    } else {
        let page = registry.list(&options).await?;
        write(&cache.policy, |policy| {
            policy.clear(kind);
            for object in &page.items {
                policy.put(object);
            }
        });
        page.revision
    };
    if std::mem::take(first) {
        cache.synced.send_modify(|n| *n += 1);
    }
    let revision = revision.to_string();
    let mut events = registry
        .watch(ListOptions::all(kind, None), Some(&revision))
        .await?;
    while let Some(event) = events.next().await {
        let event = event?;
        let Some(object) = event.object else { continue };
        cache.update(kind, |snapshot| match event.event_type {
            WatchEventType::Added | WatchEventType::Modified => snapshot.put(&object),
            WatchEventType::Deleted => snapshot.remove(&object),
            WatchEventType::Bookmark => {}
        });
    }
    Ok(())
}
