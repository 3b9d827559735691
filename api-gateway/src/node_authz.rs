//! The Node authorizer: what a node's agent (`system:node:<name>` in `system:nodes`) may do,
//! as Kubernetes' Node authorizer and NodeRestriction admission together allow it.
//!
//! ```text
//!   node n ──reads──► its Node, its Lease, the pods bound to it (list/watch with
//!                     spec.nodeName=n), and only the Secrets, ConfigMaps, PVCs, PVs and
//!                     ServiceAccounts those pods reference (the NodeGraph), and
//!                     tokens for those ServiceAccounts (serviceaccounts/token)
//!          ──writes─► its Node (and status), its Lease, its pods' status, deletes of its
//!                     pods, its mirror pods, events, certificate requests
//!          ──reads──► Services, Endpoints and every Node (what every node needs for its
//!                     pods' networking: the proxy's rules, routes to other nodes' pods)
//! ```
//!
//! EndpointSlices are read as Endpoints are (a node proxy may follow either).
//!
//! Owns those rules and the [`NodeGraph`] they read: pods by node with what they reference,
//! and claims with their volumes. The graph is kept current by the `authz_cache` from the
//! store's changes; this module reads no store. Requests of other users are `NoOpinion`; a
//! node's request outside the rules is denied with what was refused.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use rafter_proto::v1::{Pod, PodSpec};
use rafter_proto::well_known::{node_of_user, NODES_GROUP};
use rafter_proto::{Kind, Object};

use crate::auth::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, RuleList, Target};

/// The namespace of node Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The annotation that marks a mirror pod (a static pod's copy in the API).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// (kind, name) of what a pod references in its namespace, sorted, each once.
type References = Arc<[(Kind, Arc<str>)]>;

/// What one pod bound to a node references.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodRefs {
    node: Arc<str>,
    /// (kind, name) in the pod's namespace, sorted, each once. Interned whole: the pods of
    /// one workload reference the same objects, so they share one slice.
    references: References,
}

/// A pod's namespace (interned) and name.
type PodKey = (Arc<str>, Box<str>);

/// Pods by node, with what they reference, and claims with their volumes.
///
/// It holds one entry per bound pod, on every master, so its strings are shared: the
/// namespaces, node names, referenced names and whole reference lists are interned.
#[derive(Debug, Clone, Default)]
pub struct NodeGraph {
    /// namespace → pod → what it references.
    pods: BTreeMap<Arc<str>, BTreeMap<Box<str>, PodRefs>>,
    /// node → its pods.
    by_node: BTreeMap<Arc<str>, BTreeSet<PodKey>>,
    /// (namespace, claim) → the PersistentVolume it is bound to.
    claims: BTreeMap<(String, String), String>,
    /// The strings and reference lists the pods share.
    interned: Interned,
}

/// Interned strings and reference lists. What no pod holds any more is dropped once the
/// tables have doubled since the last sweep, so they stay within twice what is in use.
#[derive(Debug, Clone, Default)]
struct Interned {
    names: HashSet<Arc<str>>,
    references: HashSet<References>,
    swept_at: usize,
}

impl Interned {
    fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(held) = self.names.get(name) {
            return held.clone();
        }
        self.sweep();
        let held: Arc<str> = Arc::from(name);
        self.names.insert(held.clone());
        held
    }

    fn references(&mut self, references: Vec<(Kind, Arc<str>)>) -> References {
        if let Some(held) = self.references.get(references.as_slice()) {
            return held.clone();
        }
        self.sweep();
        let held: References = Arc::from(references);
        self.references.insert(held.clone());
        held
    }

    fn sweep(&mut self) {
        let held = self.names.len() + self.references.len();
        if held < 2 * self.swept_at + 1024 {
            return;
        }
        // Lists first: they hold names.
        self.references.retain(|r| Arc::strong_count(r) > 1);
        self.names.retain(|n| Arc::strong_count(n) > 1);
        self.swept_at = self.names.len() + self.references.len();
    }
}

impl NodeGraph {
    /// Whether `kind` is one the graph follows.
    pub fn holds(kind: Kind) -> bool {
        matches!(kind, Kind::Pod | Kind::PersistentVolumeClaim)
    }

    /// Records `object` as it is now (other kinds are ignored).
    pub fn put(&mut self, object: &Object) {
        let meta = object.metadata();
        match object {
            Object::Pod(pod) => {
                self.remove_pod(&meta.namespace, &meta.name);
                let Some(refs) = self.pod_refs(pod) else {
                    return;
                };
                let namespace = self.interned.name(&meta.namespace);
                self.by_node
                    .entry(refs.node.clone())
                    .or_default()
                    .insert((namespace.clone(), meta.name.as_str().into()));
                self.pods
                    .entry(namespace)
                    .or_default()
                    .insert(meta.name.as_str().into(), refs);
            }
            Object::PersistentVolumeClaim(claim) => {
                let volume = claim
                    .spec
                    .as_ref()
                    .map(|s| s.volume_name.clone())
                    .unwrap_or_default();
                self.claims
                    .insert((meta.namespace.clone(), meta.name.clone()), volume);
            }
            _ => {}
        }
    }

    /// Forgets `object` (other kinds are ignored).
    pub fn remove(&mut self, object: &Object) {
        let meta = object.metadata();
        match object.kind() {
            Kind::Pod => self.remove_pod(&meta.namespace, &meta.name),
            Kind::PersistentVolumeClaim => {
                self.claims
                    .remove(&(meta.namespace.clone(), meta.name.clone()));
            }
            _ => {}
        }
    }

    /// Takes every object of `kind` from `listed` (a graph a fresh list of the kind was
    /// put into) in place of its own.
    pub fn adopt(&mut self, kind: Kind, listed: NodeGraph) {
        match kind {
            Kind::Pod => {
                self.pods = listed.pods;
                self.by_node = listed.by_node;
                self.interned = listed.interned;
            }
            Kind::PersistentVolumeClaim => self.claims = listed.claims,
            _ => {}
        }
    }

    fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.pods.get_mut(namespace) else {
            return;
        };
        let Some((name, old)) = pods.remove_entry(name) else {
            return;
        };
        let emptied = pods.is_empty();
        let Some(namespace) = self.pods.get_key_value(namespace).map(|(n, _)| n.clone()) else {
            return;
        };
        if emptied {
            self.pods.remove(&*namespace);
        }
        if let Some(on_node) = self.by_node.get_mut(&old.node) {
            on_node.remove(&(namespace, name));
            if on_node.is_empty() {
                self.by_node.remove(&old.node);
            }
        }
    }

    fn pod_refs_of(&self, namespace: &str, name: &str) -> Option<&PodRefs> {
        self.pods.get(namespace)?.get(name)
    }

    /// Whether pod `namespace/name` is bound to `node`.
    pub fn pod_on(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.pod_refs_of(namespace, name)
            .is_some_and(|p| &*p.node == node)
    }

    /// Whether a pod bound to `node` references `kind` `namespace/name` (for a
    /// PersistentVolume, through a claim a pod references; `namespace` is then ignored).
    pub fn referenced_by(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let Some(pods) = self.by_node.get(node) else {
            return false;
        };
        pods.iter().any(|(pod_namespace, pod)| {
            let Some(refs) = self.pod_refs_of(pod_namespace, pod) else {
                return false;
            };
            if kind == Kind::PersistentVolume {
                return refs.references.iter().any(|(k, claim)| {
                    *k == Kind::PersistentVolumeClaim
                        && self
                            .claims
                            .get(&(pod_namespace.to_string(), claim.to_string()))
                            .is_some_and(|volume| volume == name)
                });
            }
            &**pod_namespace == namespace
                && refs
                    .references
                    .iter()
                    .any(|(k, referenced)| *k == kind && &**referenced == name)
        })
    }

    /// The node of `pod` and the objects it references in its namespace, interned; `None`
    /// when it is bound to no node.
    fn pod_refs(&mut self, pod: &Pod) -> Option<PodRefs> {
        let spec = pod.spec.as_ref()?;
        if spec.node_name.is_empty() {
            return None;
        }
        let mut references: Vec<(Kind, Arc<str>)> = referenced(spec)
            .into_iter()
            .map(|(kind, name)| (kind, self.interned.name(name)))
            .collect();
        references.sort_unstable();
        references.dedup();
        Some(PodRefs {
            node: self.interned.name(&spec.node_name),
            references: self.interned.references(references),
        })
    }
}

/// The objects `spec` references in its pod's namespace, as (kind, name), unsorted.
fn referenced<'a>(spec: &'a PodSpec) -> Vec<(Kind, &'a str)> {
    let mut references = Vec::new();
    let mut add = |kind: Kind, name: &'a str| {
        if !name.is_empty() {
            references.push((kind, name));
        }
    };
    add(
        Kind::ServiceAccount,
        if spec.service_account_name.is_empty() {
            "default"
        } else {
            &spec.service_account_name
        },
    );
    for secret in &spec.image_pull_secrets {
        add(Kind::Secret, &secret.name);
    }
    for volume in &spec.volumes {
        if let Some(s) = &volume.secret {
            add(Kind::Secret, &s.secret_name);
        }
        if let Some(c) = &volume.config_map {
            add(Kind::ConfigMap, &c.name);
        }
        if let Some(c) = &volume.persistent_volume_claim {
            add(Kind::PersistentVolumeClaim, &c.claim_name);
        }
    }
    for container in spec.containers.iter().chain(&spec.init_containers) {
        for env in &container.env {
            if let Some(from) = &env.value_from {
                if let Some(s) = &from.secret_key_ref {
                    add(Kind::Secret, &s.name);
                }
                if let Some(c) = &from.config_map_key_ref {
                    add(Kind::ConfigMap, &c.name);
                }
            }
        }
        for from in &container.env_from {
            if let Some(s) = &from.secret_ref {
                add(Kind::Secret, &s.name);
            }
            if let Some(c) = &from.config_map_ref {
                add(Kind::ConfigMap, &c.name);
            }
        }
    }
    references
}

/// Runs a check on the current [`NodeGraph`] and returns its answer.
type GraphReader = dyn Fn(&mut dyn FnMut(&NodeGraph) -> bool) -> bool + Send + Sync;

/// The Node authorizer over a shared [`NodeGraph`] that changes in place.
pub struct NodeAuthorizer {
    read: Arc<GraphReader>,
}

impl NodeAuthorizer {
    /// An authorizer that asks `read` to run each check on the current graph (under
    /// whatever lock guards it).
    pub fn new(
        read: impl Fn(&mut dyn FnMut(&NodeGraph) -> bool) -> bool + Send + Sync + 'static,
    ) -> NodeAuthorizer {
        NodeAuthorizer {
            read: Arc::new(read),
        }
    }

    fn graph(&self, mut check: impl FnMut(&NodeGraph) -> bool) -> bool {
        (self.read)(&mut check)
    }
}

const READ: &[&str] = &["get", "list", "watch"];

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        let user = attributes.user;
        if !user.in_group(NODES_GROUP) {
            return Decision::NoOpinion;
        }
        let Some(node) = node_of_user(&user.name) else {
            return Decision::NoOpinion;
        };
        let allowed = match &attributes.target {
            Target::NonResource { .. } | Target::Principal { .. } => false,
            Target::Resource { .. } => self.allows(node, attributes),
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "node {node:?} cannot {}{}: a node may only use its own Node and Lease, the pods bound to it and what they reference",
                attributes.describe(),
                match &attributes.target {
                    Target::Resource { name, .. } if !name.is_empty() => format!(" named {name:?}"),
                    _ => String::new(),
                }
            ))
        }
    }

    fn rules(&self, user: &UserInfo, _namespace: &str) -> RuleList {
        let mut rules = RuleList::default();
        if user.in_group(NODES_GROUP) && node_of_user(&user.name).is_some() {
            rules.incomplete.push(
                "the Node authorizer cannot list its rules: they follow the pods bound to the node"
                    .to_owned(),
            );
        }
        rules
    }
}

impl NodeAuthorizer {
    fn allows(&self, node: &str, attributes: &Attributes<'_>) -> bool {
        let Target::Resource {
            kind,
            subresource,
            namespace,
            name,
            field_selector,
        } = attributes.target
        else {
            return false;
        };
        let verb = attributes.verb;
        let read = READ.contains(&verb);
        let own_name = name == node;
        let selects = |field: &str| {
            field_selector
                .split(',')
                .any(|term| term.trim() == format!("{field}={node}"))
        };
        match (kind, subresource) {
            // Every Node is readable (the agent routes to the other nodes' pod CIDRs, as
            // Kubernetes' system:node role reads nodes); only its own is writable.
            (Kind::Node, "" | "status") => match verb {
                "get" | "list" | "watch" => true,
                "update" | "patch" | "create" => own_name,
                _ => false,
            },
            (Kind::Lease, "") => {
                namespace == NODE_LEASE_NAMESPACE
                    && own_name
                    && matches!(verb, "get" | "create" | "update" | "patch")
            }
            (Kind::Pod, "") => match verb {
                "list" | "watch" => selects("spec.nodeName"),
                "get" | "delete" => self.graph(|g| g.pod_on(node, namespace, name)),
                // A mirror pod of one of its static pods, on itself.
                "create" => attributes.object.is_some_and(|o| mirror_pod_on(o, node)),
                _ => false,
            },
            (Kind::Pod, "status") => {
                matches!(verb, "get" | "update" | "patch")
                    && self.graph(|g| g.pod_on(node, namespace, name))
            }
            (
                Kind::Secret
                | Kind::ConfigMap
                | Kind::PersistentVolumeClaim
                | Kind::ServiceAccount
                | Kind::PersistentVolume,
                "",
            ) => verb == "get" && self.graph(|g| g.referenced_by(node, kind, namespace, name)),
            // A token for the ServiceAccount of one of its pods (the service checks that
            // the token is bound to that pod).
            (Kind::ServiceAccount, "token") => {
                verb == "create"
                    && self.graph(|g| g.referenced_by(node, Kind::ServiceAccount, namespace, name))
            }
            (Kind::Event, "") => matches!(verb, "create" | "update" | "patch"),
            (Kind::CertificateSigningRequest, "") => verb == "create" || read,
            (Kind::Service | Kind::Endpoints | Kind::EndpointSlice, "") => read,
            _ => false,
        }
    }
}

/// Whether `object` is a mirror pod bound to `node`.
fn mirror_pod_on(object: &Object, node: &str) -> bool {
    let Object::Pod(pod) = object else {
        return false;
    };
    pod.spec.as_ref().is_some_and(|s| s.node_name == node)
        && object
            .metadata()
            .annotations
            .contains_key(MIRROR_POD_ANNOTATION)
}

#[cfg(test)]
#[path = "node_authz_test.rs"]
mod node_authz_test;
