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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rafter_proto::v1::Pod;
use rafter_proto::well_known::{node_of_user, NODES_GROUP};
use rafter_proto::{Kind, Object};

use crate::auth::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision, RuleList, Target};

/// The namespace of node Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The annotation that marks a mirror pod (a static pod's copy in the API).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What one pod bound to a node references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PodRefs {
    node: String,
    /// (kind, name) in the pod's namespace, sorted, each once. A slice, not a set: a pod
    /// references a few objects, and the graph holds one of these per pod bound.
    references: Box<[(Kind, String)]>,
}

/// Pods by node, with what they reference, and claims with their volumes.
#[derive(Debug, Clone, Default)]
pub struct NodeGraph {
    /// (namespace, pod) → what it references.
    pods: BTreeMap<(String, String), PodRefs>,
    /// node → its pods.
    by_node: BTreeMap<String, BTreeSet<(String, String)>>,
    /// (namespace, claim) → the PersistentVolume it is bound to.
    claims: BTreeMap<(String, String), String>,
}

impl NodeGraph {
    /// Whether `kind` is one the graph follows.
    pub fn holds(kind: Kind) -> bool {
        matches!(kind, Kind::Pod | Kind::PersistentVolumeClaim)
    }

    /// Records `object` as it is now (other kinds are ignored).
    pub fn put(&mut self, object: &Object) {
        let meta = object.metadata();
        let key = (meta.namespace.clone(), meta.name.clone());
        match object {
            Object::Pod(pod) => {
                self.remove_pod(&key);
                let refs = pod_refs(pod);
                if refs.node.is_empty() {
                    return;
                }
                self.by_node
                    .entry(refs.node.clone())
                    .or_default()
                    .insert(key.clone());
                self.pods.insert(key, refs);
            }
            Object::PersistentVolumeClaim(claim) => {
                let volume = claim
                    .spec
                    .as_ref()
                    .map(|s| s.volume_name.clone())
                    .unwrap_or_default();
                self.claims.insert(key, volume);
            }
            _ => {}
        }
    }

    /// Forgets `object` (other kinds are ignored).
    pub fn remove(&mut self, object: &Object) {
        let meta = object.metadata();
        let key = (meta.namespace.clone(), meta.name.clone());
        match object.kind() {
            Kind::Pod => self.remove_pod(&key),
            Kind::PersistentVolumeClaim => {
                self.claims.remove(&key);
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
            }
            Kind::PersistentVolumeClaim => self.claims = listed.claims,
            _ => {}
        }
    }

    fn remove_pod(&mut self, key: &(String, String)) {
        if let Some(old) = self.pods.remove(key) {
            if let Some(pods) = self.by_node.get_mut(&old.node) {
                pods.remove(key);
                if pods.is_empty() {
                    self.by_node.remove(&old.node);
                }
            }
        }
    }

    /// Whether pod `namespace/name` is bound to `node`.
    pub fn pod_on(&self, node: &str, namespace: &str, name: &str) -> bool {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_some_and(|p| p.node == node)
    }

    /// Whether a pod bound to `node` references `kind` `namespace/name` (for a
    /// PersistentVolume, through a claim a pod references; `namespace` is then ignored).
    pub fn referenced_by(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let Some(pods) = self.by_node.get(node) else {
            return false;
        };
        pods.iter().any(|key| {
            let Some(refs) = self.pods.get(key) else {
                return false;
            };
            if kind == Kind::PersistentVolume {
                return refs.references.iter().any(|(k, claim)| {
                    *k == Kind::PersistentVolumeClaim
                        && self
                            .claims
                            .get(&(key.0.clone(), claim.clone()))
                            .is_some_and(|volume| volume == name)
                });
            }
            key.0 == namespace
                && refs
                    .references
                    .iter()
                    .any(|(k, referenced)| *k == kind && referenced == name)
        })
    }
}

/// The node of `pod` and the objects it references in its namespace.
fn pod_refs(pod: &Pod) -> PodRefs {
    let Some(spec) = &pod.spec else {
        return PodRefs::default();
    };
    let mut references = Vec::new();
    let mut add = |kind: Kind, name: &str| {
        if !name.is_empty() {
            references.push((kind, name.to_owned()));
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
    references.sort_unstable();
    references.dedup();
    PodRefs {
        node: spec.node_name.clone(),
        references: references.into_boxed_slice(),
    }
}

/// The Node authorizer over a shared, replaceable [`NodeGraph`].
pub struct NodeAuthorizer {
    graph: Arc<dyn Fn() -> Arc<NodeGraph> + Send + Sync>,
}

impl NodeAuthorizer {
    /// An authorizer reading the graph `current` returns at each request.
    pub fn new(current: impl Fn() -> Arc<NodeGraph> + Send + Sync + 'static) -> NodeAuthorizer {
        NodeAuthorizer {
            graph: Arc::new(current),
        }
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
                "get" | "delete" => (self.graph)().pod_on(node, namespace, name),
                // A mirror pod of one of its static pods, on itself.
                "create" => attributes.object.is_some_and(|o| mirror_pod_on(o, node)),
                _ => false,
            },
            (Kind::Pod, "status") => {
                matches!(verb, "get" | "update" | "patch")
                    && (self.graph)().pod_on(node, namespace, name)
            }
            (
                Kind::Secret
                | Kind::ConfigMap
                | Kind::PersistentVolumeClaim
                | Kind::ServiceAccount
                | Kind::PersistentVolume,
                "",
            ) => verb == "get" && (self.graph)().referenced_by(node, kind, namespace, name),
            // A token for the ServiceAccount of one of its pods (the service checks that
            // the token is bound to that pod).
            (Kind::ServiceAccount, "token") => {
                verb == "create"
                    && (self.graph)().referenced_by(node, Kind::ServiceAccount, namespace, name)
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
