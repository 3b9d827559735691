//! Claiming dependents by label selector: adopt matching orphans, release controlled
//! objects that no longer match, as Kubernetes' ControllerRefManager does.
//!
//! Owns the adopt/release rules shared by the ReplicaSet, Deployment and DaemonSet
//! controllers. It must not create or delete anything; adoptions and releases are
//! `Update` actions adding or removing the controller ownerReference.

use rafter_proto::v1::ObjectMeta;
use rafter_proto::{Kind, Object, Selector};

use crate::action::Action;
use crate::cache::Cache;
use crate::pods::{controller_owner_reference, controller_ref, is_terminal};

/// The objects of `kind` that `owner` controls once matching orphans are adopted and
/// controlled objects that stopped matching are released; adoptions and releases are
/// pushed to `actions`. An owner being deleted adopts nothing; objects being deleted and
/// finished pods are neither adopted nor released.
pub(crate) fn claim<'a>(
    cache: &'a Cache,
    owner: &'a Object,
    kind: Kind,
    selector: &'a Selector,
    actions: &mut Vec<Action>,
) -> Vec<&'a Object> {
    let meta = owner.metadata();
    let uid = meta.uid.as_str();
    let mut owned = Vec::new();
    for object in cache.controlled_by(uid).filter(|o| o.kind() == kind) {
        let om = object.metadata();
        if selector.matches(&om.labels) {
            owned.push(object.as_ref());
        } else if om.deletion_timestamp.is_none() {
            let mut released = object.as_ref().clone();
            released
                .metadata_mut()
                .owner_references
                .retain(|r| r.uid != uid);
            actions.push(Action::Update(released));
        }
    }
    if meta.deletion_timestamp.is_some() {
        return owned;
    }
    for object in cache.select(kind, &meta.namespace, selector) {
        let om = object.metadata();
        let finished = matches!(object.as_ref(), Object::Pod(p) if is_terminal(p));
        if controller_ref(om).is_some() || om.deletion_timestamp.is_some() || finished {
            continue;
        }
        let mut adopted = object.as_ref().clone();
        adopt(adopted.metadata_mut(), owner);
        actions.push(Action::Update(adopted));
        owned.push(object.as_ref());
    }
    owned
}

fn adopt(meta: &mut ObjectMeta, owner: &Object) {
    meta.owner_references
        .push(controller_owner_reference(owner));
}
