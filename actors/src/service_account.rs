//! The ServiceAccounts controller's core: every active namespace has a ServiceAccount
//! named `default`, which pods that name none run as.
//!
//! ```text
//!   Namespace ns (in the cache, Active, not being deleted)
//!        │ no ServiceAccount ns/default in the cache
//!        ▼
//!   Create(ServiceAccount ns/default)       (again if someone deletes it)
//! ```
//!
//! The key is the namespace. Owns that decision only; it must not write (the actor does),
//! and it never deletes: a namespace's deletion removes its ServiceAccounts.

use rafter_proto::v1::{ObjectMeta, ServiceAccount};
use rafter_proto::well_known::DEFAULT_SERVICE_ACCOUNT;
use rafter_proto::{Kind, Object};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;

/// Whether namespace `object` takes new objects: it exists, is not being deleted and is
/// not Terminating.
fn active(object: &Object) -> bool {
    let Object::Namespace(namespace) = object else {
        return false;
    };
    object.metadata().deletion_timestamp.is_none()
        && namespace
            .status
            .as_ref()
            .is_none_or(|s| s.phase != "Terminating")
}

/// What namespace `namespace` (a Namespace key) needs: its `default` ServiceAccount.
pub fn reconcile(cache: &Cache, namespace: &ObjectKey) -> Reconciled {
    let mut out = Reconciled::nothing();
    let Some(object) = cache.get(namespace) else {
        return out;
    };
    if !active(object) {
        return out;
    }
    let name = &namespace.name;
    let account = ObjectKey::new(Kind::ServiceAccount, name.clone(), DEFAULT_SERVICE_ACCOUNT);
    if cache.get(&account).is_none() {
        out.actions
            .push(Action::Create(Object::ServiceAccount(ServiceAccount {
                metadata: Some(ObjectMeta {
                    name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
                    namespace: name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1::{Namespace, NamespaceStatus};

    fn namespace(name: &str, phase: &str) -> Object {
        Object::Namespace(Namespace {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            status: Some(NamespaceStatus {
                phase: phase.into(),
            }),
            ..Default::default()
        })
    }

    fn account(namespace: &str, name: &str) -> Object {
        Object::ServiceAccount(ServiceAccount {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: namespace.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Namespace, "", name)
    }

    #[test]
    fn an_active_namespace_without_a_default_service_account_gets_one() {
        let cache =
            Cache::from_objects([namespace("team-a", "Active"), account("team-a", "builder")]);
        let out = reconcile(&cache, &key("team-a"));
        assert_eq!(out.actions.len(), 1);
        let Action::Create(Object::ServiceAccount(sa)) = &out.actions[0] else {
            panic!("{:?}", out.actions);
        };
        let meta = sa.metadata.as_ref().unwrap();
        assert_eq!(
            (meta.namespace.as_str(), meta.name.as_str()),
            ("team-a", "default")
        );
    }

    #[test]
    fn nothing_is_made_twice_nor_in_a_terminating_or_missing_namespace() {
        let cache = Cache::from_objects([
            namespace("team-a", "Active"),
            account("team-a", "default"),
            namespace("leaving", "Terminating"),
        ]);
        for name in ["team-a", "leaving", "missing"] {
            let out = reconcile(&cache, &key(name));
            assert!(out.actions.is_empty(), "{name}: {:?}", out.actions);
        }
    }
}
