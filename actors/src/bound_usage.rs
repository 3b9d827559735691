//! [`BoundUsage`]: what the pods bound to each node request, kept by the scheduler across
//! passes from the changes it is told of, so a pass need not add up every bound pod of the
//! cluster again (150,000 pods on 5,000 nodes made that the largest cost of a pass).
//!
//! ```text
//!  from_cache (on leading, after a relist, on each full pass)
//!  apply(old, new) for each pod change: old's share off its node, new's share on
//!  share = requests (and non-zero requests for scoring), one pod, its controller
//!          of a pod bound to a node and not finished
//! ```
//!
//! Owns the sums only: it decides nothing, reads no node and keeps no pending pod.

use std::collections::HashMap;

use rafter_proto::v1;

use crate::cache::Cache;
use crate::pods::{self, controller_ref, is_terminal, pod_requests, Resources};

/// Requests assumed for scoring a pod that requests nothing (as kube-scheduler does), so
/// such pods still spread by load.
const NONZERO_CPU_MILLIS: i64 = 100;
const NONZERO_MEMORY: i64 = 200 * 1024 * 1024;

/// The requests scoring counts for a pod: its own, or the defaults where it asks nothing.
pub(crate) fn nonzero(requests: Resources) -> Resources {
    Resources {
        cpu_millis: if requests.cpu_millis == 0 {
            NONZERO_CPU_MILLIS
        } else {
            requests.cpu_millis
        },
        memory: if requests.memory == 0 {
            NONZERO_MEMORY
        } else {
            requests.memory
        },
    }
}

/// The sums of one node's bound pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// What the pods request.
    pub requested: Resources,
    /// What scoring counts them for ([`nonzero`] requests).
    pub nonzero_requested: Resources,
    /// How many pods.
    pub pods: i64,
    /// Pods per controller uid (for spreading replicas).
    pub owners: HashMap<String, u32>,
}

/// Every node's [`NodeUsage`], by node name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoundUsage {
    nodes: HashMap<String, NodeUsage>,
}

/// What a pod counts for on its node: `None` unless it is bound and not finished.
struct Share<'a> {
    node: &'a str,
    requested: Resources,
    owner: Option<&'a str>,
}

fn share(pod: &v1::Pod) -> Option<Share<'_>> {
    let spec = pod.spec.as_ref()?;
    if spec.node_name.is_empty() || is_terminal(pod) {
        return None;
    }
    Some(Share {
        node: &spec.node_name,
        requested: pod_requests(spec),
        owner: controller_ref(pods::meta(pod)).map(|r| r.uid.as_str()),
    })
}

impl BoundUsage {
    /// The sums of every pod the cache shows bound.
    pub fn from_cache(cache: &Cache) -> BoundUsage {
        let mut usage = BoundUsage::default();
        for name in cache.nodes_with_pods() {
            for pod in cache.pods_on_node(name) {
                usage.apply(None, Some(pod));
            }
        }
        usage
    }

    /// A pod changed from `old` to `new` (`None`: absent): its old share leaves its node,
    /// its new share joins one.
    pub fn apply(&mut self, old: Option<&v1::Pod>, new: Option<&v1::Pod>) {
        if let Some(share) = old.and_then(share) {
            self.remove(&share);
        }
        if let Some(share) = new.and_then(share) {
            let node = self.nodes.entry(share.node.to_owned()).or_default();
            let counted = nonzero(share.requested);
            node.requested.cpu_millis += share.requested.cpu_millis;
            node.requested.memory += share.requested.memory;
            node.nonzero_requested.cpu_millis += counted.cpu_millis;
            node.nonzero_requested.memory += counted.memory;
            node.pods += 1;
            if let Some(owner) = share.owner {
                *node.owners.entry(owner.to_owned()).or_default() += 1;
            }
        }
    }

    fn remove(&mut self, share: &Share<'_>) {
        let Some(node) = self.nodes.get_mut(share.node) else {
            return;
        };
        let counted = nonzero(share.requested);
        node.requested.cpu_millis -= share.requested.cpu_millis;
        node.requested.memory -= share.requested.memory;
        node.nonzero_requested.cpu_millis -= counted.cpu_millis;
        node.nonzero_requested.memory -= counted.memory;
        node.pods -= 1;
        if let Some(owner) = share.owner {
            if let Some(count) = node.owners.get_mut(owner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    node.owners.remove(owner);
                }
            }
        }
        if node.pods <= 0 {
            self.nodes.remove(share.node);
        }
    }

    /// One node's sums (`None`: no pod counts on it).
    pub fn node(&self, name: &str) -> Option<&NodeUsage> {
        self.nodes.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod;
    use rafter_proto::Object;

    fn as_pod(object: &Object) -> &v1::Pod {
        match object {
            Object::Pod(p) => p,
            _ => unreachable!(),
        }
    }

    #[test]
    fn changes_applied_one_by_one_sum_to_what_the_cache_shows() {
        let owner = pod("default", "rs").uid("rs-uid").build();
        let a = pod("default", "a")
            .requests("500m", "1Gi")
            .owner(&owner, true)
            .node("n1")
            .build();
        let b = pod("default", "b").node("n1").build();
        let c = pod("default", "c").requests("1", "2Gi").build();
        let mut usage = BoundUsage::default();
        usage.apply(None, Some(as_pod(&a)));
        usage.apply(None, Some(as_pod(&b)));
        usage.apply(None, Some(as_pod(&c)));
        // c is bound to n2, then b finishes, then a is deleted and created again.
        let c_bound = pod("default", "c").requests("1", "2Gi").node("n2").build();
        usage.apply(Some(as_pod(&c)), Some(as_pod(&c_bound)));
        let b_done = pod("default", "b").node("n1").phase("Succeeded").build();
        usage.apply(Some(as_pod(&b)), Some(as_pod(&b_done)));
        usage.apply(Some(as_pod(&a)), None);
        usage.apply(None, Some(as_pod(&a)));

        let cache = Cache::from_objects([a, b_done, c_bound]);
        assert_eq!(usage, BoundUsage::from_cache(&cache));
        let n1 = usage.node("n1").expect("a counts on n1");
        assert_eq!(n1.pods, 1, "b finished");
        assert_eq!(n1.requested.cpu_millis, 500);
        assert_eq!(n1.owners.get("rs-uid"), Some(&1));
        assert_eq!(usage.node("n2").map(|n| n.pods), Some(1));

        usage.apply(Some(as_pod(&cache_pod(&cache, "a"))), None);
        assert_eq!(
            usage.node("n1"),
            None,
            "a node with no pod left is forgotten"
        );
    }

    fn cache_pod(cache: &Cache, name: &str) -> Object {
        Object::Pod(cache.pod("default", name).cloned().unwrap_or_default())
    }
}
