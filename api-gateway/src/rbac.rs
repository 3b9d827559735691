//! RBAC: what Roles, ClusterRoles, RoleBindings and ClusterRoleBindings grant, evaluated
//! from memory on every request ([`Rbac`], an [`Authorizer`]).
//!
//! ```text
//!   request (user, verb, group, resource/sub, namespace, name)
//!     ├─► ClusterRoleBindings naming the user ─► their ClusterRoles' rules ─┐
//!     └─► RoleBindings in the namespace naming the user                     ├─► a rule allows? Allow : NoOpinion
//!            ─► their Role (same namespace) or ClusterRole's rules ─────────┘
//! ```
//!
//! Rules match as Kubernetes matches them: verbs and API groups exactly or `*`; resources
//! as `plural`, `plural/subresource`, `*` (everything, subresources included) or
//! `*/subresource`; `resourceNames` only requests that name one of them; non-resource URLs
//! exactly, by `*`, or by a prefix ending in `*`, and only through ClusterRoleBindings.
//!
//! Owns the evaluation over a [`Policy`] snapshot. The snapshot is built and replaced by
//! the `authz_cache` as the objects change; this module reads no store and never denies:
//! a request no rule allows is `NoOpinion`, and the chain's end refuses it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rafter_proto::v1::{PolicyRule, RoleRef, Subject};
use rafter_proto::{Kind, Object};

use crate::auth::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, Target};

/// The prefix of a ServiceAccount's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// One binding: who it names and the role it refers to.
#[derive(Debug, Clone, PartialEq)]
struct Binding {
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

/// The RBAC objects of the cluster at one moment.
///
/// A policy may carry built-in objects ([`Policy::with_builtins`], the default policy):
/// while the store holds no object of the same kind and name, the built-in one applies, so
/// a cluster's first requests (a joining node's certificate request) need not wait for the
/// default policy to be written; a stored object of that name replaces it.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The built-in objects, by kind, namespace and name.
    builtins: Arc<BTreeMap<(Kind, String, String), Object>>,
    /// (namespace, name) → rules.
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    /// name → rules.
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    /// (namespace, name) → binding.
    role_bindings: BTreeMap<(String, String), Binding>,
    /// name → binding.
    cluster_role_bindings: BTreeMap<String, Binding>,
}

impl Policy {
    /// An empty policy whose missing objects are taken from `builtins`.
    pub fn with_builtins(builtins: Vec<Object>) -> Policy {
        let builtins: BTreeMap<_, _> = builtins
            .into_iter()
            .filter(|o| Policy::holds(o.kind()))
            .map(|o| {
                let meta = o.metadata();
                ((o.kind(), meta.namespace.clone(), meta.name.clone()), o)
            })
            .collect();
        let mut policy = Policy {
            builtins: Arc::new(builtins),
            ..Policy::default()
        };
        for kind in [
            Kind::Role,
            Kind::ClusterRole,
            Kind::RoleBinding,
            Kind::ClusterRoleBinding,
        ] {
            policy.clear(kind);
        }
        policy
    }

    /// Whether `kind` is one a policy holds.
    pub fn holds(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding
        )
    }

    /// Records `object` as it is now (other kinds are ignored).
    pub fn put(&mut self, object: &Object) {
        let meta = object.metadata();
        let key = (meta.namespace.clone(), meta.name.clone());
        match object {
            Object::Role(role) => {
                self.roles.insert(key, role.rules.clone());
            }
            Object::ClusterRole(role) => {
                self.cluster_roles.insert(key.1, role.rules.clone());
            }
            Object::RoleBinding(b) => {
                self.role_bindings.insert(
                    key,
                    Binding {
                        subjects: b.subjects.clone(),
                        role_ref: b.role_ref.clone().unwrap_or_default(),
                    },
                );
            }
            Object::ClusterRoleBinding(b) => {
                self.cluster_role_bindings.insert(
                    key.1,
                    Binding {
                        subjects: b.subjects.clone(),
                        role_ref: b.role_ref.clone().unwrap_or_default(),
                    },
                );
            }
            _ => {}
        }
    }

    /// Forgets `object` (other kinds are ignored).
    pub fn remove(&mut self, object: &Object) {
        let meta = object.metadata();
        let key = (meta.namespace.clone(), meta.name.clone());
        match object.kind() {
            Kind::Role => {
                self.roles.remove(&key);
            }
            Kind::ClusterRole => {
                self.cluster_roles.remove(&key.1);
            }
            Kind::RoleBinding => {
                self.role_bindings.remove(&key);
            }
            Kind::ClusterRoleBinding => {
                self.cluster_role_bindings.remove(&key.1);
            }
            _ => {}
        }
        let builtin = self.builtins.get(&(object.kind(), key.0, key.1)).cloned();
        if let Some(builtin) = builtin {
            self.put(&builtin);
        }
    }

    /// Forgets every object of `kind` but the built-in ones (before a fresh list replaces
    /// them).
    pub fn clear(&mut self, kind: Kind) {
        match kind {
            Kind::Role => self.roles.clear(),
            Kind::ClusterRole => self.cluster_roles.clear(),
            Kind::RoleBinding => self.role_bindings.clear(),
            Kind::ClusterRoleBinding => self.cluster_role_bindings.clear(),
            _ => {}
        }
        let builtins = self.builtins.clone();
        for ((builtin_kind, _, _), object) in builtins.iter() {
            if *builtin_kind == kind {
                self.put(object);
            }
        }
    }

    /// The rules `role_ref` names, for a binding in `namespace` ("" for cluster bindings).
    fn rules_of(&self, role_ref: &RoleRef, namespace: &str) -> &[PolicyRule] {
        let rules = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_owned(), role_ref.name.clone())),
            _ => None,
        };
        rules.map_or(&[], Vec::as_slice)
    }

    /// Whether some binding grants `attributes`.
    pub fn allows(&self, attributes: &Attributes<'_>) -> bool {
        let user = attributes.user;
        let granted = |binding: &Binding, namespace: &str| {
            binding
                .subjects
                .iter()
                .any(|s| subject_matches(s, user, namespace))
                && self
                    .rules_of(&binding.role_ref, namespace)
                    .iter()
                    .any(|rule| rule_allows(rule, attributes))
        };
        if self
            .cluster_role_bindings
            .values()
            .any(|binding| granted(binding, ""))
        {
            return true;
        }
        let Target::Resource { namespace, .. } = &attributes.target else {
            return false;
        };
        if namespace.is_empty() {
            return false;
        }
        let from = ((*namespace).to_owned(), String::new());
        self.role_bindings
            .range(from..)
            .take_while(|((ns, _), _)| ns == namespace)
            .any(|(_, binding)| granted(binding, namespace))
    }

    /// How many bindings the policy holds (for logs and benchmarks).
    pub fn bindings(&self) -> usize {
        self.role_bindings.len() + self.cluster_role_bindings.len()
    }
}

/// Whether `subject` of a binding in `namespace` ("" for cluster bindings) names `user`.
fn subject_matches(subject: &Subject, user: &UserInfo, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                namespace
            } else {
                subject.namespace.as_str()
            };
            !ns.is_empty()
                && user.name == format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{}", subject.name)
        }
        _ => false,
    }
}

fn any_or(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

/// Whether `rule` allows the request.
fn rule_allows(rule: &PolicyRule, attributes: &Attributes<'_>) -> bool {
    if !any_or(&rule.verbs, attributes.verb) {
        return false;
    }
    match &attributes.target {
        Target::NonResource { path } => rule.non_resource_urls.iter().any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        }),
        Target::Resource {
            kind,
            subresource,
            name,
            ..
        } => {
            let info = kind.info();
            if !any_or(&rule.api_groups, info.group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                info.plural.to_owned()
            } else {
                format!("{}/{subresource}", info.plural)
            };
            let resource = rule.resources.iter().any(|r| {
                r == "*"
                    || *r == combined
                    || (!subresource.is_empty() && r.strip_prefix("*/") == Some(*subresource))
            });
            resource
                && (rule.resource_names.is_empty()
                    || (!name.is_empty() && rule.resource_names.iter().any(|n| n == name)))
        }
    }
}

/// The RBAC authorizer over a shared, replaceable [`Policy`].
pub struct Rbac {
    policy: Arc<dyn Fn() -> Arc<Policy> + Send + Sync>,
}

impl Rbac {
    /// An authorizer reading the policy `current` returns at each request.
    pub fn new(current: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Rbac {
        Rbac {
            policy: Arc::new(current),
        }
    }
}

impl Authorizer for Rbac {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        if (self.policy)().allows(attributes) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

#[cfg(test)]
#[path = "rbac_test.rs"]
mod rbac_test;
