//! [`Cache`]: the controllers' in-memory view of the cluster, and its one writer
//! ([`CacheWriter`]) and many readers ([`CacheReader`]).
//!
//! ```text
//!  applied log entries ──► informer ──► CacheWriter::apply(CacheEvent)
//!                                             │ (one writer)
//!                                   Arc<RwLock<Cache>>
//!                                             │ (many readers, cheap to clone)
//!              CacheReader::read() ──► &Cache ──► reconcile(&cache, key, now) -> actions
//! ```
//!
//! Owns the objects (shared as `Arc<Object>`, so a reconcile never copies a pod it does not
//! change) and four indexes kept in step with every write: kind+namespace+name, uid, pods
//! by `spec.nodeName` (plus the set of pods with none), and dependents by owner uid. Label
//! lookups scan one kind in one namespace and match the selector, which is fast enough at
//! the sizes a namespace holds and keeps the writer cheap.
//!
//! The indexes hold the objects' `Arc`s and read their keys from the objects themselves
//! ([`ByName`], [`ByUid`]), so an index entry is a pointer, not its own copy of the
//! namespace, name and uid (~0.4 KB a pod at 150,000 pods), and a lookup allocates
//! nothing. An object's metadata never changes behind its `Arc`, so a key read from it
//! stays valid while the entry lives.
//!
//! It must not read the store or talk to the network: it only holds what it was given.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rafter_proto::v1;
use rafter_proto::{Kind, Object, Selector};

use crate::action::ObjectKey;

/// Namespace and name, the key of an object inside its kind, however it is held.
trait NsName {
    fn ns_name(&self) -> (&str, &str);
}

impl NsName for (&str, &str) {
    fn ns_name(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl PartialEq for dyn NsName + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.ns_name() == other.ns_name()
    }
}

impl Eq for dyn NsName + '_ {}

impl PartialOrd for dyn NsName + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn NsName + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ns_name().cmp(&other.ns_name())
    }
}

/// An object in a set ordered by its namespace and name, read from the object.
#[derive(Clone, Debug)]
struct ByName(Arc<Object>);

impl NsName for ByName {
    fn ns_name(&self) -> (&str, &str) {
        let meta = self.0.metadata();
        (&meta.namespace, &meta.name)
    }
}

impl<'a> Borrow<dyn NsName + 'a> for ByName {
    fn borrow(&self) -> &(dyn NsName + 'a) {
        self
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.ns_name() == other.ns_name()
    }
}

impl Eq for ByName {}

impl PartialOrd for ByName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ns_name().cmp(&other.ns_name())
    }
}

/// An object in a set hashed by its uid, read from the object.
#[derive(Clone, Debug)]
struct ByUid(Arc<Object>);

impl ByUid {
    fn uid(&self) -> &str {
        &self.0.metadata().uid
    }
}

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        self.uid()
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.uid() == other.uid()
    }
}

impl Eq for ByUid {}

impl Hash for ByUid {
    // Hashes as the `str` it borrows as, so lookups by uid find it.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uid().hash(state);
    }
}

/// The entry of `namespace`/`name` in `set`, found without allocating.
fn by_name<'s>(set: &'s BTreeSet<ByName>, namespace: &str, name: &str) -> Option<&'s ByName> {
    set.get(&(namespace, name) as &dyn NsName)
}

/// Takes the entry of `namespace`/`name` out of `set`.
fn take_by_name(set: &mut BTreeSet<ByName>, namespace: &str, name: &str) -> Option<ByName> {
    set.take(&(namespace, name) as &dyn NsName)
}

/// A change to apply to the cache, as the informer decodes it from the log.
///
/// Not boxed: an event is built once and moved into the cache, where the object is put
/// behind an `Arc` anyway.
#[derive(Clone, Debug)]
// reason: boxing the object would add an allocation per event for nothing; see above.
#[allow(clippy::large_enum_variant)]
pub enum CacheEvent {
    /// An object was created or updated.
    Upsert(Object),
    /// An object was deleted.
    Delete(ObjectKey),
    /// A fresh list of one kind replaces everything cached of that kind (after a relist).
    Replace {
        /// The kind listed.
        kind: Kind,
        /// Every object of the kind, each decoded straight into its `Arc` (a relist of
        /// 150,000 pods holds no second, unshared copy of them).
        objects: Vec<Arc<Object>>,
    },
}

/// The indexed objects. Reconcilers take `&Cache`; tests build one directly.
#[derive(Clone, Debug, Default)]
pub struct Cache {
    objects: HashMap<Kind, BTreeSet<ByName>>,
    by_uid: HashSet<ByUid>,
    pods_by_node: HashMap<String, BTreeSet<ByName>>,
    unscheduled_pods: BTreeSet<ByName>,
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// A cache holding `objects`.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Cache {
        let mut cache = Cache::new();
        for object in objects {
            cache.upsert(object);
        }
        cache
    }

    /// Applies one change.
    pub fn apply(&mut self, event: CacheEvent) {
        match event {
            CacheEvent::Upsert(object) => {
                self.upsert(object);
            }
            CacheEvent::Delete(key) => {
                self.remove(&key);
            }
            CacheEvent::Replace { kind, objects } => self.replace_kind(kind, objects),
        }
    }

    /// Inserts or replaces an object; returns the one it replaced.
    pub fn upsert(&mut self, object: Object) -> Option<Arc<Object>> {
        self.upsert_shared(Arc::new(object))
    }

    /// Inserts or replaces an object already shared; returns the one it replaced.
    pub fn upsert_shared(&mut self, object: Arc<Object>) -> Option<Arc<Object>> {
        let key = ObjectKey::of(&object);
        let previous = self.remove(&key);
        self.index(&key, &object);
        self.objects
            .entry(key.kind)
            .or_default()
            .insert(ByName(object));
        previous
    }

    /// Removes an object; returns it.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Object>> {
        let removed = take_by_name(self.objects.get_mut(&key.kind)?, &key.namespace, &key.name)?.0;
        self.unindex(key, &removed);
        Some(removed)
    }

    /// Replaces every object of `kind` with `objects`.
    pub fn replace_kind(&mut self, kind: Kind, objects: Vec<Arc<Object>>) {
        let keys: Vec<ObjectKey> = self
            .objects
            .get(&kind)
            .map(|m| m.iter().map(|entry| ObjectKey::of(&entry.0)).collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(&key);
        }
        for object in objects {
            if object.kind() == kind {
                self.upsert_shared(object);
            }
        }
    }

    fn index(&mut self, key: &ObjectKey, object: &Arc<Object>) {
        let meta = object.metadata();
        if !meta.uid.is_empty() {
            self.by_uid.replace(ByUid(Arc::clone(object)));
        }
        for owner in &meta.owner_references {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Object::Pod(pod) = object.as_ref() {
            let entry = ByName(Arc::clone(object));
            match pod_node_name(pod) {
                "" => {
                    self.unscheduled_pods.insert(entry);
                }
                node => {
                    self.pods_by_node
                        .entry(node.to_owned())
                        .or_default()
                        .insert(entry);
                }
            }
        }
    }

    fn unindex(&mut self, key: &ObjectKey, object: &Object) {
        let meta = object.metadata();
        // Another object may have taken the uid since (an object recreated under another
        // name): only this object's entry goes. The entry is this object's own `Arc`, so a
        // pointer comparison says so without building its key.
        if self
            .by_uid
            .get(meta.uid.as_str())
            .is_some_and(|entry| std::ptr::eq(entry.0.as_ref(), object))
        {
            self.by_uid.remove(meta.uid.as_str());
        }
        for owner in &meta.owner_references {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        if let Object::Pod(pod) = object {
            match pod_node_name(pod) {
                "" => {
                    take_by_name(&mut self.unscheduled_pods, &key.namespace, &key.name);
                }
                node => {
                    if let Some(set) = self.pods_by_node.get_mut(node) {
                        take_by_name(set, &key.namespace, &key.name);
                        if set.is_empty() {
                            self.pods_by_node.remove(node);
                        }
                    }
                }
            }
        }
    }

    /// The object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Arc<Object>> {
        self.get_parts(key.kind, &key.namespace, &key.name)
    }

    fn get_parts(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<Object>> {
        by_name(self.objects.get(&kind)?, namespace, name).map(|entry| &entry.0)
    }

    /// The object with this uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<&Arc<Object>> {
        self.by_uid.get(uid).map(|entry| &entry.0)
    }

    /// Every object of a kind, ordered by namespace and name.
    pub fn list(&self, kind: Kind) -> impl Iterator<Item = &Arc<Object>> {
        self.objects
            .get(&kind)
            .into_iter()
            .flat_map(|m| m.iter().map(|entry| &entry.0))
    }

    /// How many objects of a kind are cached.
    pub fn count(&self, kind: Kind) -> usize {
        self.objects.get(&kind).map_or(0, BTreeSet::len)
    }

    /// The objects of a kind in one namespace, ordered by name.
    pub fn list_namespaced<'a>(
        &'a self,
        kind: Kind,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        self.objects.get(&kind).into_iter().flat_map(move |m| {
            let first = (namespace, "");
            m.range::<dyn NsName, _>((Bound::Included(&first as &dyn NsName), Bound::Unbounded))
                .take_while(move |entry| entry.0.metadata().namespace == namespace)
                .map(|entry| &entry.0)
        })
    }

    /// The objects of a kind in a namespace whose labels match `selector`.
    pub fn select<'a>(
        &'a self,
        kind: Kind,
        namespace: &'a str,
        selector: &'a Selector,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        self.list_namespaced(kind, namespace)
            .filter(move |o| selector.matches(&o.metadata().labels))
    }

    /// The objects that name `owner_uid` in their ownerReferences.
    pub fn dependents_of<'a>(
        &'a self,
        owner_uid: &str,
    ) -> impl Iterator<Item = &'a Arc<Object>> + use<'a> {
        self.dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.get(key))
    }

    /// The objects whose controller (the ownerReference with `controller: true`) has uid
    /// `owner_uid`.
    pub fn controlled_by<'a>(
        &'a self,
        owner_uid: &str,
    ) -> impl Iterator<Item = &'a Arc<Object>> + use<'a> {
        let uid = owner_uid.to_owned();
        self.dependents_of(owner_uid).filter(move |o| {
            crate::pods::controller_ref(o.metadata()).is_some_and(|r| r.uid == uid)
        })
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&v1::Node> {
        match self.get_parts(Kind::Node, "", name)?.as_ref() {
            Object::Node(node) => Some(node),
            _ => None,
        }
    }

    /// Every node, ordered by name.
    pub fn nodes(&self) -> impl Iterator<Item = &v1::Node> {
        self.list(Kind::Node).filter_map(|o| match o.as_ref() {
            Object::Node(node) => Some(node),
            _ => None,
        })
    }

    /// A pod by namespace and name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&v1::Pod> {
        match self.get_parts(Kind::Pod, namespace, name)?.as_ref() {
            Object::Pod(pod) => Some(pod),
            _ => None,
        }
    }

    /// The pods in a namespace, ordered by name.
    pub fn pods_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a v1::Pod> + 'a {
        self.list_namespaced(Kind::Pod, namespace)
            .filter_map(|o| match o.as_ref() {
                Object::Pod(pod) => Some(pod),
                _ => None,
            })
    }

    /// The pods whose `spec.nodeName` is `node`.
    pub fn pods_on_node<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a v1::Pod> + 'a {
        self.pods_by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|entry| as_pod(&entry.0))
    }

    /// The names of the nodes that have at least one pod bound to them.
    pub fn nodes_with_pods(&self) -> impl Iterator<Item = &str> {
        self.pods_by_node.keys().map(String::as_str)
    }

    /// The pods with no `spec.nodeName`, ordered by namespace and name.
    pub fn unscheduled_pods(&self) -> impl Iterator<Item = &v1::Pod> {
        self.unscheduled_pods
            .iter()
            .filter_map(|entry| as_pod(&entry.0))
    }
}

fn as_pod(object: &Object) -> Option<&v1::Pod> {
    match object {
        Object::Pod(pod) => Some(pod),
        _ => None,
    }
}

fn pod_node_name(pod: &v1::Pod) -> &str {
    pod.spec.as_ref().map_or("", |s| s.node_name.as_str())
}

/// The one writer of a shared cache: the informer applies changes through it.
#[derive(Debug, Default)]
pub struct CacheWriter {
    shared: Arc<RwLock<Cache>>,
}

impl CacheWriter {
    /// A writer over an empty cache.
    pub fn new() -> CacheWriter {
        CacheWriter::default()
    }

    /// Applies one change; readers see it on their next `read`.
    pub fn apply(&mut self, event: CacheEvent) {
        let mut cache = self.shared.write().unwrap_or_else(|p| p.into_inner());
        cache.apply(event);
    }

    /// Applies several changes at once, so readers never see half of them.
    pub fn apply_all(&mut self, events: impl IntoIterator<Item = CacheEvent>) {
        let mut cache = self.shared.write().unwrap_or_else(|p| p.into_inner());
        for event in events {
            cache.apply(event);
        }
    }

    /// A read handle on the same cache.
    pub fn reader(&self) -> CacheReader {
        CacheReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A read handle on a shared cache; cheap to clone, one per controller.
#[derive(Clone, Debug)]
pub struct CacheReader {
    shared: Arc<RwLock<Cache>>,
}

impl CacheReader {
    /// A consistent view for one reconcile; the writer waits while it is held, so hold it
    /// only for the reconcile itself.
    pub fn read(&self) -> RwLockReadGuard<'_, Cache> {
        self.shared.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn pods_are_indexed_by_node_and_move_when_bound() {
        let mut cache = Cache::new();
        cache.upsert(pod("default", "a").build());
        assert_eq!(cache.unscheduled_pods().count(), 1);
        cache.upsert(pod("default", "a").node("n1").build());
        assert_eq!(cache.unscheduled_pods().count(), 0);
        assert_eq!(cache.pods_on_node("n1").count(), 1);
        cache.remove(&ObjectKey::new(Kind::Pod, "default", "a"));
        assert_eq!(cache.pods_on_node("n1").count(), 0);
        assert_eq!(cache.nodes_with_pods().count(), 0);
    }

    #[test]
    fn dependents_are_found_by_owner_uid_and_controller_flag() {
        let rs = replica_set("default", "web", 1).uid("rs-1").build();
        let owned = pod("default", "web-1").owner(&rs, true).build();
        let referenced = pod("default", "web-2").owner(&rs, false).build();
        let cache = Cache::from_objects([rs, owned, referenced]);
        assert_eq!(cache.dependents_of("rs-1").count(), 2);
        let controlled: Vec<_> = cache
            .controlled_by("rs-1")
            .map(|o| o.metadata().name.clone())
            .collect();
        assert_eq!(controlled, ["web-1"]);
        assert_eq!(
            cache.get_by_uid("rs-1").map(|o| o.metadata().name.clone()),
            Some("web".to_owned())
        );
    }

    #[test]
    fn label_lookups_stay_inside_the_namespace() {
        let cache = Cache::from_objects([
            pod("a", "p1").label("app", "web").build(),
            pod("a", "p2").label("app", "db").build(),
            pod("b", "p3").label("app", "web").build(),
        ]);
        let selector = Selector::parse("app=web").unwrap();
        let names: Vec<_> = cache
            .select(Kind::Pod, "a", &selector)
            .map(|o| o.metadata().name.clone())
            .collect();
        assert_eq!(names, ["p1"]);
    }

    #[test]
    fn a_relist_replaces_a_whole_kind_and_its_indexes() {
        let mut writer = CacheWriter::new();
        let reader = writer.reader();
        writer.apply(CacheEvent::Upsert(pod("default", "old").node("n1").build()));
        writer.apply(CacheEvent::Replace {
            kind: Kind::Pod,
            objects: vec![Arc::new(pod("default", "new").build())],
        });
        let cache = reader.read();
        assert!(cache.pod("default", "old").is_none());
        assert_eq!(cache.pods_on_node("n1").count(), 0);
        assert_eq!(cache.unscheduled_pods().count(), 1);
    }

    fn labels_of(objects: impl Iterator<Item = impl AsRef<Object>>) -> Vec<String> {
        objects
            .map(|o| {
                o.as_ref()
                    .metadata()
                    .labels
                    .get("v")
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn every_index_gives_the_newest_version_of_an_object() {
        let mut cache = Cache::new();
        cache.upsert(
            pod("default", "a")
                .uid("u-a")
                .node("n1")
                .label("v", "1")
                .build(),
        );
        cache.upsert(
            pod("default", "a")
                .uid("u-a")
                .node("n1")
                .label("v", "2")
                .build(),
        );
        cache.upsert(pod("default", "b").uid("u-b").label("v", "1").build());
        cache.upsert(pod("default", "b").uid("u-b").label("v", "2").build());
        let on_node: Vec<String> = cache
            .pods_on_node("n1")
            .map(|p| p.metadata.as_ref().unwrap().labels["v"].clone())
            .collect();
        assert_eq!(on_node, ["2"]);
        let unscheduled: Vec<String> = cache
            .unscheduled_pods()
            .map(|p| p.metadata.as_ref().unwrap().labels["v"].clone())
            .collect();
        assert_eq!(unscheduled, ["2"]);
        assert_eq!(labels_of(cache.get_by_uid("u-a").into_iter()), ["2"]);
        assert_eq!(labels_of(cache.list(Kind::Pod)), ["2", "2"]);
    }

    #[test]
    fn a_uid_stays_with_the_object_that_holds_it_last() {
        let mut cache = Cache::new();
        cache.upsert(pod("default", "x").uid("u1").label("v", "x").build());
        // The same uid under another name (a copy restored from elsewhere, say).
        cache.upsert(pod("default", "y").uid("u1").label("v", "y").build());
        assert_eq!(labels_of(cache.get_by_uid("u1").into_iter()), ["y"]);
        cache.remove(&ObjectKey::new(Kind::Pod, "default", "x"));
        assert_eq!(labels_of(cache.get_by_uid("u1").into_iter()), ["y"]);
        cache.remove(&ObjectKey::new(Kind::Pod, "default", "y"));
        assert!(cache.get_by_uid("u1").is_none());
    }

    #[test]
    fn a_namespaced_list_stops_at_its_namespace() {
        let cache = Cache::from_objects([
            pod("", "cluster").build(),
            pod("a", "p1").build(),
            pod("a", "p2").build(),
            pod("a-b", "p3").build(),
            pod("ab", "p4").build(),
            pod("b", "p5").build(),
        ]);
        let names = |ns: &str| -> Vec<String> {
            cache
                .list_namespaced(Kind::Pod, ns)
                .map(|o| o.metadata().name.clone())
                .collect()
        };
        assert_eq!(names("a"), ["p1", "p2"]);
        assert_eq!(names("ab"), ["p4"]);
        assert_eq!(names(""), ["cluster"]);
        assert!(names("c").is_empty());
        assert_eq!(cache.count(Kind::Pod), 6);
        assert!(cache.get(&ObjectKey::new(Kind::Pod, "a", "p3")).is_none());
        assert!(cache.get(&ObjectKey::new(Kind::Pod, "a-b", "p3")).is_some());
    }
}
