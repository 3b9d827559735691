//! The garbage collector: ownerReference cascades.
//!
//! ```text
//!  dependent whose owners are all gone        → Delete (background), uid precondition
//!  dependent with some owners gone            → Update dropping the dangling references
//!  owner being deleted, finalizer "orphan"    → Update each dependent dropping the
//!                                               reference; then drop the finalizer
//!  owner being deleted, "foregroundDeletion"  → Delete each dependent (foreground when
//!                                               it has dependents of its own); drop the
//!                                               finalizer once no dependent with
//!                                               blockOwnerDeletion remains
//! ```
//!
//! An owner counts as gone when no object with its uid is in the cache. That is sound
//! because the cache applies the one log in order and an owner is always written before
//! the dependents naming its uid; the actor must therefore run the collector only on a
//! synced cache (every kind listed at the same revision), never during a partial relist.
//!
//! Owns deletion cascades. It must not decide when an owner is deleted or pick a policy:
//! the gateway turns a delete with `propagationPolicy` into the finalizers read here.

use rafter_proto::v1::OwnerReference;
use rafter_proto::Object;

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use rafter_proto::Propagation;

/// The finalizer of an owner whose dependents are to be orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of an owner waiting for its dependents to be deleted first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Collects garbage around one object: as a dependent (dangling owner references) and as
/// an owner being deleted (orphan and foreground finalizers).
pub fn collect_garbage(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let mut out = Reconciled::nothing();
    as_owner(cache, object, &mut out.actions);
    as_dependent(cache, object, &mut out.actions);
    out
}

fn owner_exists(cache: &Cache, reference: &OwnerReference) -> bool {
    cache
        .get_by_uid(&reference.uid)
        .is_some_and(|o| o.metadata().uid == reference.uid)
}

fn as_dependent(cache: &Cache, object: &Object, actions: &mut Vec<Action>) {
    let meta = object.metadata();
    if meta.owner_references.is_empty() || meta.deletion_timestamp.is_some() {
        return;
    }
    let (alive, dangling): (Vec<&OwnerReference>, Vec<&OwnerReference>) = meta
        .owner_references
        .iter()
        .partition(|r| owner_exists(cache, r));
    if dangling.is_empty() {
        return;
    }
    if alive.is_empty() {
        let mut delete = Action::delete_of(object);
        if let Action::Delete { propagation, .. } = &mut delete {
            *propagation = Some(Propagation::Background);
        }
        actions.push(delete);
        return;
    }
    let mut updated = object.clone();
    updated
        .metadata_mut()
        .owner_references
        .retain(|r| owner_exists(cache, r));
    actions.push(Action::Update(updated));
}

fn as_owner(cache: &Cache, object: &Object, actions: &mut Vec<Action>) {
    let meta = object.metadata();
    if meta.deletion_timestamp.is_none() {
        return;
    }
    let uid = meta.uid.as_str();
    let has = |f: &str| meta.finalizers.iter().any(|x| x == f);
    if has(ORPHAN_FINALIZER) {
        let mut remaining = 0;
        for dependent in cache.dependents_of(uid) {
            remaining += 1;
            let mut updated = dependent.as_ref().clone();
            updated
                .metadata_mut()
                .owner_references
                .retain(|r| r.uid != uid);
            actions.push(Action::Update(updated));
        }
        if remaining == 0 {
            actions.push(Action::Update(without_finalizer(object, ORPHAN_FINALIZER)));
        }
        return;
    }
    if has(FOREGROUND_FINALIZER) {
        let mut blocking = 0;
        for dependent in cache.dependents_of(uid) {
            let dm = dependent.metadata();
            let blocks = dm
                .owner_references
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
            if blocks {
                blocking += 1;
            }
            if dm.deletion_timestamp.is_some() {
                continue;
            }
            let has_own = cache.dependents_of(&dm.uid).next().is_some();
            let mut delete = Action::delete_of(dependent);
            if let Action::Delete { propagation, .. } = &mut delete {
                *propagation = Some(if has_own {
                    Propagation::Foreground
                } else {
                    Propagation::Background
                });
            }
            actions.push(delete);
        }
        if blocking == 0 {
            actions.push(Action::Update(without_finalizer(
                object,
                FOREGROUND_FINALIZER,
            )));
        }
    }
}

fn without_finalizer(object: &Object, finalizer: &str) -> Object {
    let mut updated = object.clone();
    updated.metadata_mut().finalizers.retain(|f| f != finalizer);
    updated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use rafter_proto::Kind;

    fn pod_key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Pod, "default", name)
    }

    fn rs_key() -> ObjectKey {
        ObjectKey::new(Kind::ReplicaSet, "default", "web")
    }

    fn deleting(mut o: Object, finalizer: &str) -> Object {
        let m = o.metadata_mut();
        m.deletion_timestamp = ts(1);
        m.finalizers.push(finalizer.to_owned());
        o
    }

    #[test]
    fn dependents_of_a_vanished_owner_are_deleted_in_the_background() {
        let rs = replica_set("default", "web", 1).build();
        let cache = Cache::from_objects([pod("default", "web-1").owner(&rs, true).build()]);
        let r = collect_garbage(&cache, &pod_key("web-1"));
        assert_eq!(
            r.actions,
            [Action::Delete {
                key: pod_key("web-1"),
                uid: Some("uid-default-web-1".into()),
                grace_period_seconds: None,
                propagation: Some(Propagation::Background),
            }]
        );
        let alive =
            Cache::from_objects([rs.clone(), pod("default", "web-1").owner(&rs, true).build()]);
        assert!(collect_garbage(&alive, &pod_key("web-1"))
            .actions
            .is_empty());
    }

    #[test]
    fn only_dangling_references_are_dropped_while_another_owner_lives() {
        let rs = replica_set("default", "web", 1).build();
        let gone = replica_set("default", "gone", 1).build();
        let cache = Cache::from_objects([
            rs.clone(),
            pod("default", "p")
                .owner(&rs, false)
                .owner(&gone, true)
                .build(),
        ]);
        let r = collect_garbage(&cache, &pod_key("p"));
        let [Action::Update(updated)] = r.actions.as_slice() else {
            panic!("{r:?}");
        };
        let refs: Vec<_> = updated
            .metadata()
            .owner_references
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(refs, ["web"]);
    }

    #[test]
    fn orphan_deletion_releases_dependents_then_the_owner() {
        let rs = deleting(replica_set("default", "web", 1).build(), ORPHAN_FINALIZER);
        let cache =
            Cache::from_objects([rs.clone(), pod("default", "web-1").owner(&rs, true).build()]);
        let r = collect_garbage(&cache, &rs_key());
        let [Action::Update(Object::Pod(p))] = r.actions.as_slice() else {
            panic!("{r:?}");
        };
        assert!(p.metadata.as_ref().unwrap().owner_references.is_empty());
        let released = Cache::from_objects([rs, pod("default", "web-1").build()]);
        let r = collect_garbage(&released, &rs_key());
        let [Action::Update(owner)] = r.actions.as_slice() else {
            panic!("{r:?}");
        };
        assert!(owner.metadata().finalizers.is_empty());
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let rs = deleting(
            replica_set("default", "web", 1).build(),
            FOREGROUND_FINALIZER,
        );
        let cache = Cache::from_objects([
            rs.clone(),
            pod("default", "web-1").owner(&rs, true).build(),
            pod("default", "web-2").owner(&rs, true).deleting().build(),
        ]);
        let r = collect_garbage(&cache, &rs_key());
        assert_eq!(r.actions.len(), 1, "{r:?}");
        assert!(matches!(&r.actions[0], Action::Delete { key, .. } if key.name == "web-1"));
        let only_loose = Cache::from_objects([
            rs.clone(),
            pod("default", "loose").owner(&rs, false).build(),
        ]);
        let r = collect_garbage(&only_loose, &rs_key());
        assert_eq!(r.actions.len(), 2, "{r:?}");
        assert!(matches!(&r.actions[1], Action::Update(o) if o.metadata().finalizers.is_empty()));
    }
}
