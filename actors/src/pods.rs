//! Facts about pods and owners that several controllers share: the controller owner
//! reference, active/ready/available, resource requests, status conditions, and the name
//! suffixes of generated objects.
//!
//! Owns those definitions so every controller counts a pod the same way. It must not decide
//! anything on its own (no actions here).

use std::time::Duration;

use rafter_proto::v1::{self, Condition, ObjectMeta, OwnerReference, PodSpec};
use rafter_proto::{Object, Quantity};

use rafter_proto::Timestamp;

/// The ownerReference with `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An ownerReference making `owner` the controller of a dependent, blocking the owner's
/// foreground deletion until the dependent is gone.
pub fn controller_owner_reference(owner: &Object) -> OwnerReference {
    let info = owner.kind().info();
    let meta = owner.metadata();
    OwnerReference {
        api_version: info.api_version(),
        kind: info.name.to_owned(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod's phase ("" when it has no status yet).
pub fn phase(pod: &v1::Pod) -> &str {
    pod.status.as_ref().map_or("", |s| s.phase.as_str())
}

/// Whether the pod has finished for good (Succeeded or Failed).
pub fn is_terminal(pod: &v1::Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &v1::Pod) -> bool {
    pod.metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some())
}

/// Whether the pod counts toward a workload's replicas: not finished, not being deleted.
pub fn is_active(pod: &v1::Pod) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

/// The pod's node (`spec.nodeName`), "" when unscheduled.
pub fn node_name(pod: &v1::Pod) -> &str {
    pod.spec.as_ref().map_or("", |s| s.node_name.as_str())
}

/// The pod's metadata or an empty one.
pub fn meta(pod: &v1::Pod) -> &ObjectMeta {
    static EMPTY: std::sync::OnceLock<ObjectMeta> = std::sync::OnceLock::new();
    pod.metadata
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(ObjectMeta::default))
}

/// The status condition of a type.
pub fn condition<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.r#type == kind)
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// When the pod became available given `min_ready_seconds`: `Some(Duration::ZERO)` if it
/// is available now, `Some(d)` if it is ready and becomes available in `d`, `None` if it
/// is not ready.
pub fn available_in(pod: &v1::Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| condition(&s.conditions, "Ready"))
        .filter(|c| c.status == "True")?;
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let since = Timestamp::parse_opt(ready.last_transition_time.as_ref()).unwrap_or(now);
    let at = since.plus_seconds(i64::from(min_ready_seconds));
    Some(at.since(now))
}

/// What a pod asks of a node: CPU in millicores and memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory: i64,
}

impl Resources {
    fn max(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory: self.memory.max(other.memory),
        }
    }

    fn plus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory: self.memory.saturating_add(other.memory),
        }
    }
}

fn quantity_millis(text: &str) -> i64 {
    text.parse::<Quantity>()
        .ok()
        .and_then(|q| i64::try_from(q.millis()).ok())
        .unwrap_or(0)
}

fn quantity_value(text: &str) -> i64 {
    text.parse::<Quantity>()
        .ok()
        .and_then(|q| i64::try_from(q.value()).ok())
        .unwrap_or(0)
}

fn container_requests(container: &v1::Container) -> Resources {
    let Some(res) = &container.resources else {
        return Resources::default();
    };
    // A limit without a request requests what it limits (admission does this too).
    let get = |name: &str| res.requests.get(name).or_else(|| res.limits.get(name));
    Resources {
        cpu_millis: get("cpu").map_or(0, |q| quantity_millis(q)),
        memory: get("memory").map_or(0, |q| quantity_value(q)),
    }
}

/// A pod's effective requests: the sum over its containers, or the largest init
/// container's when that is more (init containers run one at a time, before the others).
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let running = spec
        .containers
        .iter()
        .map(container_requests)
        .fold(Resources::default(), Resources::plus);
    spec.init_containers
        .iter()
        .map(container_requests)
        .fold(running, Resources::max)
}

/// A node's allocatable CPU (millicores), memory (bytes) and pod count; absent entries are
/// zero, as Kubernetes reads them.
pub fn node_allocatable(node: &v1::Node) -> (Resources, i64) {
    let Some(status) = &node.status else {
        return (Resources::default(), 0);
    };
    let map = if status.allocatable.is_empty() {
        &status.capacity
    } else {
        &status.allocatable
    };
    (
        Resources {
            cpu_millis: map.get("cpu").map_or(0, |q| quantity_millis(q)),
            memory: map.get("memory").map_or(0, |q| quantity_value(q)),
        },
        map.get("pods").map_or(0, |q| quantity_value(q)),
    )
}

const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// SplitMix64: a small deterministic mixer, enough to turn a caller's seed into names.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A five-character suffix in the alphabet Kubernetes uses for generated names (no vowels,
/// so no words), derived from `seed`.
pub fn name_suffix(seed: u64) -> String {
    let mut x = mix(seed);
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        let i = (x % SUFFIX_ALPHABET.len() as u64) as usize;
        out.push(char::from(SUFFIX_ALPHABET[i]));
        x /= SUFFIX_ALPHABET.len() as u64;
    }
    out
}

/// Mixes a string into a seed (FNV-1a), so each object gets its own stream of names.
pub fn seed_with(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn requests_sum_containers_and_take_the_largest_init_container() {
        let table = [
            (
                vec![("100m", "64Mi"), ("250m", "128Mi")],
                vec![],
                (350, 192 << 20),
            ),
            (
                vec![("100m", "64Mi")],
                vec![("1", "32Mi")],
                (1000, 64 << 20),
            ),
            (vec![], vec![("500m", "1Gi")], (500, 1 << 30)),
        ];
        for (containers, inits, (cpu, memory)) in table {
            let spec = PodSpec {
                containers: containers.iter().map(|(c, m)| container(c, m)).collect(),
                init_containers: inits.iter().map(|(c, m)| container(c, m)).collect(),
                ..Default::default()
            };
            assert_eq!(
                pod_requests(&spec),
                Resources {
                    cpu_millis: cpu,
                    memory
                }
            );
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Timestamp::from_unix_seconds(1000);
        let p = pod("d", "p").ready_since(990).build_pod();
        assert_eq!(available_in(&p, 0, now), Some(Duration::ZERO));
        assert_eq!(available_in(&p, 5, now), Some(Duration::ZERO));
        assert_eq!(available_in(&p, 30, now), Some(Duration::from_secs(20)));
        assert_eq!(available_in(&pod("d", "q").build_pod(), 0, now), None);
    }

    #[test]
    fn name_suffixes_are_deterministic_and_vowel_free() {
        assert_eq!(name_suffix(7), name_suffix(7));
        assert_ne!(name_suffix(7), name_suffix(8));
        assert!(name_suffix(42).chars().all(|c| !"aeiou".contains(c)));
        assert_eq!(name_suffix(42).len(), 5);
    }
}
