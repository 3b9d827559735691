//! The RBAC objects every cluster starts with (`bootstrap_policy.yaml`): the ClusterRoles
//! `cluster-admin`, `admin`, `edit`, `view`, `system:node-bootstrapper` and
//! `system:discovery`, and the bindings that give them to `system:masters`,
//! `system:bootstrappers` and every authenticated caller.
//!
//! Owns creating the ones that are missing when a gateway starts, on every master (as
//! kube-apiserver's bootstrap-roles hook does): a create that finds the object already
//! there leaves it as it is, so an administrator's change survives restarts. It must not
//! update or delete anything.

use std::time::Duration;

use rafter_proto::{parse_manifests, Object};

use crate::registry::{Registry, RegistryError};
use crate::store::KvStore;

/// The default policy, as manifests.
const POLICY: &str = include_str!("bootstrap_policy.yaml");

/// The default policy's objects.
pub fn default_policy() -> Vec<Object> {
    parse_manifests(POLICY, "bootstrap_policy.yaml")
        .into_iter()
        .filter_map(|document| match document {
            Ok(document) => Some(document.object),
            Err(e) => {
                tracing::error!(error = %e, "the built-in RBAC policy does not parse");
                None
            }
        })
        .collect()
}

/// Creates the default policy's missing objects through `registry`, retrying while the
/// store is unavailable; returns once every object exists.
pub async fn ensure_default_policy<S: KvStore>(registry: Registry<S>) {
    let mut backoff = Duration::from_millis(100);
    for object in default_policy() {
        let name = object.metadata().name.clone();
        let kind = object.kind();
        loop {
            match registry.create(object.clone(), false).await {
                Ok(_) => {
                    tracing::info!(%kind, %name, "created the default RBAC object");
                    break;
                }
                Err(RegistryError::AlreadyExists { .. }) => break,
                Err(e) if e.is_retryable() => {
                    tracing::debug!(%kind, %name, error = %e, "default RBAC object: trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(%kind, %name, error = %e, "the default RBAC object was refused");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::{validate, Kind};

    #[test]
    fn the_default_policy_parses_and_is_valid() {
        let objects = default_policy();
        let controllers = objects
            .iter()
            .filter(|o| o.metadata().name.starts_with("system:controller:"))
            .count();
        assert_eq!(
            objects.len() - controllers,
            9,
            "six roles and three bindings besides the controllers'"
        );
        // Each controller's role comes with the binding of its user.
        for role in objects.iter().filter(|o| {
            o.kind() == Kind::ClusterRole && o.metadata().name.starts_with("system:controller:")
        }) {
            let name = &role.metadata().name;
            let bound = objects.iter().any(|o| match o {
                Object::ClusterRoleBinding(b) => {
                    &o.metadata().name == name
                        && b.subjects
                            .iter()
                            .any(|s| s.kind == "User" && &s.name == name)
                }
                _ => false,
            });
            assert!(bound, "{name} is bound to its user");
        }
        assert!(controllers >= 30, "{controllers}");
        for object in &objects {
            let errors = validate(object);
            assert!(errors.is_empty(), "{}: {errors:?}", object.metadata().name);
        }
        let admin = objects
            .iter()
            .find(|o| o.kind() == Kind::ClusterRoleBinding && o.metadata().name == "cluster-admin");
        assert!(admin.is_some());
    }
}
