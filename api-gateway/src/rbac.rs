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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rafter_proto::v1::{PolicyRule, RoleRef, Subject};
use rafter_proto::{Kind, Object};

use crate::auth::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, RuleList, Target};

pub use rafter_proto::well_known::SERVICE_ACCOUNT_USER_PREFIX;

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
    /// namespace ("" for ClusterRoleBindings) → user name → the names of the bindings
    /// there that name that user (service accounts by their user name). A request looks up
    /// its user and groups here instead of reading every binding.
    by_user: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// The same for group names.
    by_group: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
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
                let binding = Binding {
                    subjects: b.subjects.clone(),
                    role_ref: b.role_ref.clone().unwrap_or_default(),
                };
                if let Some(old) = self.role_bindings.remove(&key) {
                    self.index(&key.0, &key.1, &old, false);
                }
                self.index(&key.0, &key.1, &binding, true);
                self.role_bindings.insert(key, binding);
            }
            Object::ClusterRoleBinding(b) => {
                let binding = Binding {
                    subjects: b.subjects.clone(),
                    role_ref: b.role_ref.clone().unwrap_or_default(),
                };
                if let Some(old) = self.cluster_role_bindings.remove(&key.1) {
                    self.index("", &key.1, &old, false);
                }
                self.index("", &key.1, &binding, true);
                self.cluster_role_bindings.insert(key.1, binding);
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
                if let Some(old) = self.role_bindings.remove(&key) {
                    self.index(&key.0, &key.1, &old, false);
                }
            }
            Kind::ClusterRoleBinding => {
                if let Some(old) = self.cluster_role_bindings.remove(&key.1) {
                    self.index("", &key.1, &old, false);
                }
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
            Kind::RoleBinding => {
                self.role_bindings.clear();
                self.by_user.retain(|ns, _| ns.is_empty());
                self.by_group.retain(|ns, _| ns.is_empty());
            }
            Kind::ClusterRoleBinding => {
                self.cluster_role_bindings.clear();
                self.by_user.remove("");
                self.by_group.remove("");
            }
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

    /// Adds (`add`) or takes out the index entries of binding `name` in `namespace` ("" for
    /// a ClusterRoleBinding).
    fn index(&mut self, namespace: &str, name: &str, binding: &Binding, add: bool) {
        for subject in &binding.subjects {
            let Some((principal, is_group)) = subject_principal(subject, namespace) else {
                continue;
            };
            let index = if is_group {
                &mut self.by_group
            } else {
                &mut self.by_user
            };
            if add {
                index
                    .entry(namespace.to_owned())
                    .or_default()
                    .entry(principal)
                    .or_default()
                    .insert(name.to_owned());
            } else if let Some(principals) = index.get_mut(namespace) {
                if let Some(names) = principals.get_mut(&principal) {
                    names.remove(name);
                    if names.is_empty() {
                        principals.remove(&principal);
                    }
                }
                if principals.is_empty() {
                    index.remove(namespace);
                }
            }
        }
    }

    /// Whether some binding grants `attributes`.
    pub fn allows(&self, attributes: &Attributes<'_>) -> bool {
        let user = attributes.user;
        let grants = |binding: &Binding, namespace: &str| {
            self.rules_of(&binding.role_ref, namespace)
                .iter()
                .any(|rule| rule_allows(rule, attributes))
        };
        let cluster = self.named(user, "");
        if cluster.iter().any(|name| {
            self.cluster_role_bindings
                .get(*name)
                .is_some_and(|binding| grants(binding, ""))
        }) {
            return true;
        }
        let Target::Resource { namespace, .. } = &attributes.target else {
            // Non-resource paths and principals are granted by ClusterRoleBindings only.
            return false;
        };
        if namespace.is_empty() {
            return false;
        }
        self.named(user, namespace).iter().any(|name| {
            self.role_bindings
                .get(&((*namespace).to_owned(), (*name).to_owned()))
                .is_some_and(|binding| grants(binding, namespace))
        })
    }

    /// The names of the bindings in `namespace` ("" for ClusterRoleBindings) that name
    /// `user` or one of its groups.
    fn named<'a>(&'a self, user: &UserInfo, namespace: &str) -> Vec<&'a str> {
        let users = self
            .by_user
            .get(namespace)
            .and_then(|principals| principals.get(user.name.as_str()));
        let groups = self.by_group.get(namespace).map(|principals| {
            user.groups
                .iter()
                .filter_map(|g| principals.get(g.as_str()))
                .collect::<Vec<_>>()
        });
        users
            .into_iter()
            .chain(groups.into_iter().flatten())
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The rules the bindings naming `user` grant in `namespace`: those of its
    /// ClusterRoleBindings, and in a namespace those of its RoleBindings there.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RuleList {
        let mut list = RuleList::default();
        for name in self.named(user, "") {
            if let Some(binding) = self.cluster_role_bindings.get(name) {
                for rule in self.rules_of(&binding.role_ref, "") {
                    list.push(rule);
                }
            }
        }
        if !namespace.is_empty() {
            for name in self.named(user, namespace) {
                if let Some(binding) = self
                    .role_bindings
                    .get(&(namespace.to_owned(), name.to_owned()))
                {
                    for rule in self.rules_of(&binding.role_ref, namespace) {
                        // Non-resource URLs are granted only cluster-wide.
                        list.push(&PolicyRule {
                            non_resource_urls: Vec::new(),
                            ..rule.clone()
                        });
                    }
                }
            }
        }
        list
    }

    /// How many bindings the policy holds (for logs and benchmarks).
    pub fn bindings(&self) -> usize {
        self.role_bindings.len() + self.cluster_role_bindings.len()
    }
}

/// The principal a binding's `subject` names: a user name (a ServiceAccount's user, in
/// the binding's `namespace` when it names none) or a group name (`true`), or none for a
/// subject that names no one.
fn subject_principal(subject: &Subject, namespace: &str) -> Option<(String, bool)> {
    match subject.kind.as_str() {
        "User" => Some((subject.name.clone(), false)),
        "Group" => Some((subject.name.clone(), true)),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                namespace
            } else {
                subject.namespace.as_str()
            };
            (!ns.is_empty()).then(|| {
                (
                    format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{}", subject.name),
                    false,
                )
            })
        }
        _ => None,
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
        Target::Principal { resource, name } => {
            any_or(&rule.api_groups, "")
                && any_or(&rule.resources, resource)
                && (rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name))
        }
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

    fn rules(&self, user: &UserInfo, namespace: &str) -> RuleList {
        (self.policy)().rules_for(user, namespace)
    }
}

#[cfg(test)]
#[path = "rbac_test.rs"]
mod rbac_test;
