//! Drain planning: what `rafter drain` does to a node — cordon it, then evict its pods —
//! and which pods make it refuse, as `kubectl drain` does.
//!
//! Owns the refusal rules: pods with no controller (they would be lost for good) need
//! `force`; DaemonSet pods need `ignore_daemonsets` (they are then left in place, since
//! their controller would recreate them); pods with emptyDir data need
//! `delete_emptydir_data`. Mirror pods of static pods are skipped, finished pods are
//! always fine to remove. It must not carry anything out: the CLI or an actor applies the
//! returned actions, evictions after the cordon.

use std::fmt;

use rafter_proto::v1;
use rafter_proto::Object;

use crate::action::Action;
use crate::pods::{self, controller_ref, is_terminal};

/// The annotation marking the API's mirror of a static pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// How to drain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainOptions {
    /// Also remove pods no controller would recreate (`--force`).
    pub force: bool,
    /// Leave DaemonSet pods in place instead of refusing (`--ignore-daemonsets`).
    pub ignore_daemonsets: bool,
    /// Also remove pods with emptyDir volumes, losing their data (`--delete-emptydir-data`).
    pub delete_emptydir_data: bool,
    /// Grace period for the evictions; `None` is each pod's own.
    pub grace_period_seconds: Option<i64>,
}

/// The pods that stop a drain, as `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainBlockers {
    /// Pods with no controller (need `force`).
    pub unmanaged: Vec<String>,
    /// DaemonSet pods (need `ignore_daemonsets`).
    pub daemon_set: Vec<String>,
    /// Pods with emptyDir data (need `delete_emptydir_data`).
    pub local_storage: Vec<String>,
}

impl fmt::Display for DrainBlockers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.unmanaged.is_empty() {
            parts.push(format!(
                "cannot delete Pods declare no controller (use --force to override): {}",
                self.unmanaged.join(", ")
            ));
        }
        if !self.daemon_set.is_empty() {
            parts.push(format!(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
                self.daemon_set.join(", ")
            ));
        }
        if !self.local_storage.is_empty() {
            parts.push(format!(
                "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
                self.local_storage.join(", ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Why a drain was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// Some pods cannot be removed without an override; nothing was done.
    #[error("unable to drain node {node:?}: {blockers}")]
    Refused {
        /// The node.
        node: String,
        /// The pods in the way, by reason.
        blockers: DrainBlockers,
    },
}

/// Marks the node (un)schedulable; `None` when it already is.
pub fn cordon(node: &v1::Node, unschedulable: bool) -> Option<Action> {
    if node.spec.as_ref().is_some_and(|s| s.unschedulable) == unschedulable {
        return None;
    }
    let mut updated = node.clone();
    updated
        .spec
        .get_or_insert_with(Default::default)
        .unschedulable = unschedulable;
    Some(Action::Update(Object::Node(updated)))
}

/// The actions that drain `node` of `pods` (the pods bound to it): a cordon, then one
/// eviction per pod to remove. Refuses, doing nothing, when a pod needs an override.
pub fn plan_drain(
    node: &v1::Node,
    pods: &[&v1::Pod],
    options: &DrainOptions,
) -> Result<Vec<Action>, DrainError> {
    let mut blockers = DrainBlockers::default();
    let mut evict = Vec::new();
    for pod in pods {
        let meta = pods::meta(pod);
        let id = format!("{}/{}", meta.namespace, meta.name);
        if meta.annotations.contains_key(MIRROR_POD_ANNOTATION) {
            continue;
        }
        if !is_terminal(pod) {
            match controller_ref(meta) {
                Some(owner) if owner.kind == "DaemonSet" => {
                    if !options.ignore_daemonsets {
                        blockers.daemon_set.push(id);
                    }
                    continue;
                }
                Some(_) => {}
                None if options.force => {}
                None => {
                    blockers.unmanaged.push(id);
                    continue;
                }
            }
            let empty_dir = pod
                .spec
                .as_ref()
                .is_some_and(|s| s.volumes.iter().any(|v| v.empty_dir.is_some()));
            if empty_dir && !options.delete_emptydir_data {
                blockers.local_storage.push(id);
                continue;
            }
        }
        evict.push(Action::Evict {
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            grace_period_seconds: options.grace_period_seconds,
        });
    }
    if blockers != DrainBlockers::default() {
        return Err(DrainError::Refused {
            node: node
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            blockers,
        });
    }
    let mut actions: Vec<Action> = cordon(node, true).into_iter().collect();
    actions.append(&mut evict);
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn plan(pods_on_node: &[Object], options: DrainOptions) -> Result<Vec<Action>, DrainError> {
        let n = node("node01").build_node();
        let pods: Vec<&v1::Pod> = pods_on_node
            .iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            })
            .collect();
        plan_drain(&n, &pods, &options)
    }

    fn evicted(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Evict { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn fixture() -> Vec<Object> {
        let rs = replica_set("default", "web", 1).build();
        let ds = Object::DaemonSet(daemon_set("kube-system", "kube-proxy"));
        vec![
            pod("default", "web-1")
                .owner(&rs, true)
                .node("node01")
                .build(),
            pod("kube-system", "kube-proxy-x")
                .owner(&ds, true)
                .node("node01")
                .build(),
            pod("default", "nginx").node("node01").build(),
            pod("kube-system", "etcd-node01")
                .annotation(MIRROR_POD_ANNOTATION, "x")
                .node("node01")
                .build(),
            pod("default", "finished")
                .phase("Succeeded")
                .node("node01")
                .build(),
        ]
    }

    /// The seeds' `kubectl drain` examples: (force, ignore-daemonsets) → evicted pods or
    /// the refusal.
    #[test]
    fn drain_refuses_unmanaged_and_daemonset_pods_without_their_flags() {
        type Row<'a> = (bool, bool, Result<&'a [&'a str], &'a str>);
        let table: &[Row] = &[
            (
                false,
                false,
                Err(
                    "unable to drain node \"node01\": cannot delete Pods declare no controller \
                     (use --force to override): default/nginx; cannot delete DaemonSet-managed \
                     Pods (use --ignore-daemonsets to ignore): kube-system/kube-proxy-x",
                ),
            ),
            (
                false,
                true,
                Err(
                    "unable to drain node \"node01\": cannot delete Pods declare no controller \
                     (use --force to override): default/nginx",
                ),
            ),
            (true, true, Ok(&["web-1", "nginx", "finished"])),
        ];
        for (force, ignore_daemonsets, want) in table {
            let options = DrainOptions {
                force: *force,
                ignore_daemonsets: *ignore_daemonsets,
                ..Default::default()
            };
            match (plan(&fixture(), options), want) {
                (Ok(actions), Ok(names)) => {
                    assert!(
                        matches!(&actions[0], Action::Update(Object::Node(n)) if n.spec.as_ref().unwrap().unschedulable)
                    );
                    assert_eq!(evicted(&actions), *names);
                }
                (Err(e), Err(message)) => assert_eq!(e.to_string(), *message),
                (got, _) => panic!("force={force} ignore={ignore_daemonsets}: {got:?}"),
            }
        }
    }

    #[test]
    fn pods_with_emptydir_data_need_their_own_override() {
        let rs = replica_set("default", "cache", 1).build();
        let mut p = pod("default", "cache-1")
            .owner(&rs, true)
            .node("node01")
            .build_pod();
        p.spec.as_mut().unwrap().volumes.push(v1::Volume {
            name: "scratch".into(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        });
        let objects = [Object::Pod(p)];
        assert!(plan(&objects, DrainOptions::default()).is_err());
        let ok = plan(
            &objects,
            DrainOptions {
                delete_emptydir_data: true,
                ..Default::default()
            },
        );
        assert_eq!(evicted(&ok.unwrap()), ["cache-1"]);
    }

    #[test]
    fn cordon_and_uncordon_only_write_when_needed() {
        let n = node("n").build_node();
        assert!(cordon(&n, false).is_none());
        let Some(Action::Update(Object::Node(cordoned))) = cordon(&n, true) else {
            panic!();
        };
        assert!(cordon(&cordoned, true).is_none());
        assert!(cordon(&cordoned, false).is_some());
    }
}
