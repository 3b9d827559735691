//! What an object charges against a ResourceQuota: the one definition the gateway charges
//! writes with and the quota controller recounts with, so the two never disagree.
//!
//! ```text
//!  hard key                                   kind charged      amount per object
//!  pods, count/pods                           Pod               1 (not Succeeded/Failed)
//!  cpu, memory, ephemeral-storage             Pod               its requests
//!  requests.<r>, limits.<r>                   Pod               its requests / limits of r
//!  services, count/services                   Service           1
//!  services.nodeports                         Service           its ports (NodePort, LoadBalancer)
//!  services.loadbalancers                     Service           1 (LoadBalancer)
//!  persistentvolumeclaims, requests.storage   PersistentVolumeClaim  1 / its storage request
//!  <class>.storageclass.storage.k8s.io/persistentvolumeclaims, …/requests.storage
//!                                             PersistentVolumeClaim  the same, of class <class>
//!  configmaps, secrets, resourcequotas        ConfigMap, Secret, ResourceQuota  1
//!  count/<plural>[.<group>]                   any namespaced kind               1
//! ```
//!
//! A pod's requests (or limits) of a resource are the larger of its containers' sum and
//! its largest init container, as the kubelet sizes it. A quota with scopes covers only
//! pods that are in every scope (`BestEffort`: no container asks for cpu or memory;
//! `Terminating`: `activeDeadlineSeconds` is set; `NotBestEffort`, `NotTerminating`: the
//! opposite; `PriorityClass`: a priority class is named); other kinds never charge a
//! scoped quota. Pods in a terminal phase charge nothing.
//!
//! Owns these amounts only. It must not judge a write (the gateway does) nor count a
//! namespace (the controller does): it looks at one object at a time.

use std::collections::{BTreeMap, BTreeSet};

use crate::v1::{self, ResourceQuotaSpec};
use crate::{Kind, Object, Quantity, QuantityFormat};

/// The suffix of a per-storage-class key's class part.
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The compute keys for which every container of a pod a quota covers must say what it
/// asks (Kubernetes' rule, older than QoS classes).
const REQUIRED_COMPUTE: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The annotation naming a claim's storage class before `storageClassName` existed.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn one() -> Quantity {
    Quantity::from_units(1, QuantityFormat::DecimalSi)
}

fn zero() -> Quantity {
    Quantity::from_units(0, QuantityFormat::DecimalSi)
}

/// `n` objects, as a quantity.
pub fn count(n: usize) -> Quantity {
    Quantity::from_units(
        i128::try_from(n).unwrap_or(i128::MAX),
        QuantityFormat::DecimalSi,
    )
}

/// `a + b`, written as whichever of them is not zero is written (so a sum of memory stays
/// in `Mi`/`Gi` even when it starts from a count's zero).
pub fn sum(a: Quantity, b: Quantity) -> Quantity {
    if a.nanos() == 0 {
        return b;
    }
    a.checked_add(&b).unwrap_or(a)
}

/// `<plural>` for the core group, `<plural>.<group>` otherwise: how `count/` names a kind.
fn counted_name(kind: Kind) -> String {
    let info = kind.info();
    if info.group.is_empty() {
        info.plural.to_owned()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// The kind whose objects a hard key charges, or `None` for a key that names nothing
/// Rafter counts (such a key limits nothing).
pub fn counted_kind(key: &str) -> Option<Kind> {
    if let Some(name) = key.strip_prefix("count/") {
        return Kind::all().find(|k| k.info().namespaced && counted_name(*k) == name);
    }
    if let Some((_, what)) = key.split_once(STORAGE_CLASS_SUFFIX) {
        return matches!(what, "persistentvolumeclaims" | "requests.storage")
            .then_some(Kind::PersistentVolumeClaim);
    }
    match key {
        "pods" => Some(Kind::Pod),
        "services" | "services.nodeports" | "services.loadbalancers" => Some(Kind::Service),
        "persistentvolumeclaims" | "requests.storage" => Some(Kind::PersistentVolumeClaim),
        "configmaps" => Some(Kind::ConfigMap),
        "secrets" => Some(Kind::Secret),
        "resourcequotas" => Some(Kind::ResourceQuota),
        other if compute_resource(other).is_some() => Some(Kind::Pod),
        _ => None,
    }
}

/// `(requests|limits, resource)` of a pod compute key: `cpu` is `requests.cpu`.
fn compute_resource(key: &str) -> Option<(&'static str, &str)> {
    match key {
        "cpu" | "memory" | "ephemeral-storage" => Some(("requests", key)),
        _ => {
            if let Some(resource) = key.strip_prefix("requests.") {
                Some(("requests", resource))
            } else {
                key.strip_prefix("limits.").map(|r| ("limits", r))
            }
        }
    }
}

/// Whether the pod is in a terminal phase (it holds nothing any more).
pub fn is_terminal(pod: &v1::Pod) -> bool {
    pod.status
        .as_ref()
        .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed")
}

/// Whether no container of the pod asks for cpu or memory (QoS class BestEffort).
pub fn is_best_effort(pod: &v1::Pod) -> bool {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter())
        .all(|c| {
            c.resources.as_ref().is_none_or(|r| {
                ["cpu", "memory"]
                    .iter()
                    .all(|name| !r.requests.contains_key(*name) && !r.limits.contains_key(*name))
            })
        })
}

/// Whether a quota with `scopes` covers `object`: without scopes every object; with
/// scopes only pods that are in every scope.
pub fn in_scopes(object: &Object, scopes: &[String]) -> bool {
    if scopes.is_empty() {
        return true;
    }
    let Object::Pod(pod) = object else {
        return false;
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let terminating = spec.active_deadline_seconds.is_some();
    scopes.iter().all(|scope| match scope.as_str() {
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "PriorityClass" => !spec.priority_class_name.is_empty(),
        _ => false,
    })
}

fn parse(text: &str) -> Quantity {
    text.parse::<Quantity>().unwrap_or_else(|_| zero())
}

/// A pod's `requests` or `limits` of `resource`: its containers' sum, or its largest
/// init container when that is larger.
fn pod_amount(pod: &v1::Pod, which: &str, resource: &str) -> Quantity {
    let Some(spec) = &pod.spec else {
        return zero();
    };
    let of = |c: &v1::Container| -> Option<Quantity> {
        let r = c.resources.as_ref()?;
        let map = if which == "limits" {
            &r.limits
        } else {
            &r.requests
        };
        map.get(resource).map(|text| parse(text))
    };
    let sum = spec.containers.iter().filter_map(of).fold(zero(), sum);
    spec.init_containers
        .iter()
        .filter_map(of)
        .fold(sum, |a, b| if b > a { b } else { a })
}

fn service_charge(service: &v1::Service, key: &str) -> Quantity {
    let spec = service.spec.clone().unwrap_or_default();
    match key {
        "services" => one(),
        "services.nodeports" if matches!(spec.r#type.as_str(), "NodePort" | "LoadBalancer") => {
            count(spec.ports.len())
        }
        "services.loadbalancers" if spec.r#type == "LoadBalancer" => one(),
        _ => zero(),
    }
}

/// The storage class a claim asks for ("" when none).
fn claim_class(claim: &v1::PersistentVolumeClaim) -> String {
    if let Some(class) = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
    {
        return class;
    }
    claim
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.get(BETA_STORAGE_CLASS).cloned())
        .unwrap_or_default()
}

fn claim_charge(claim: &v1::PersistentVolumeClaim, key: &str) -> Quantity {
    let (class, what) = match key.split_once(STORAGE_CLASS_SUFFIX) {
        Some((class, what)) => (Some(class), what),
        None => (None, key),
    };
    if class.is_some_and(|class| class != claim_class(claim)) {
        return zero();
    }
    match what {
        "persistentvolumeclaims" => one(),
        "requests.storage" => claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.get("storage"))
            .map_or_else(zero, |text| parse(text)),
        _ => zero(),
    }
}

/// What `object` charges against the hard key `key` of a quota with `scopes` (zero when
/// the key does not count it).
pub fn charge(object: &Object, key: &str, scopes: &[String]) -> Quantity {
    let Some(kind) = counted_kind(key) else {
        return zero();
    };
    if kind != object.kind() || !in_scopes(object, scopes) {
        return zero();
    }
    match object {
        Object::Pod(pod) if is_terminal(pod) => zero(),
        Object::Pod(pod) => match compute_resource(key) {
            Some((which, resource)) => pod_amount(pod, which, resource),
            None => one(),
        },
        Object::Service(service) if !key.starts_with("count/") => service_charge(service, key),
        Object::PersistentVolumeClaim(claim) if !key.starts_with("count/") => {
            claim_charge(claim, key)
        }
        _ => one(),
    }
}

/// What `object` charges against each hard key of `spec`; keys it does not charge are
/// left out.
pub fn charges(object: &Object, spec: &ResourceQuotaSpec) -> BTreeMap<String, Quantity> {
    spec.hard
        .keys()
        .filter_map(|key| {
            let amount = charge(object, key, &spec.scopes);
            (amount != zero()).then(|| (key.clone(), amount))
        })
        .collect()
}

/// What a quota with `spec` requires of a pod it covers and the pod does not give:
/// `must specify limits.cpu for: app; requests.memory for: app,side` (Kubernetes' words),
/// or `None` when nothing is missing. Every container must say what it asks of cpu and
/// memory when the quota limits them.
pub fn missing_compute(pod: &v1::Pod, spec: &ResourceQuotaSpec) -> Option<String> {
    if !in_scopes(&Object::Pod(pod.clone()), &spec.scopes) {
        return None;
    }
    let required: Vec<&str> = REQUIRED_COMPUTE
        .iter()
        .copied()
        .filter(|key| spec.hard.contains_key(*key))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let pod_spec = pod.spec.clone().unwrap_or_default();
    for container in pod_spec
        .containers
        .iter()
        .chain(pod_spec.init_containers.iter())
    {
        let resources = container.resources.clone().unwrap_or_default();
        for key in &required {
            let given = match compute_resource(key) {
                Some(("limits", r)) => resources.limits.contains_key(r),
                Some((_, r)) => resources.requests.contains_key(r),
                None => true,
            };
            if !given {
                missing
                    .entry(key)
                    .or_default()
                    .insert(container.name.clone());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(key, names)| {
            format!(
                "{key} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_object;

    fn object(yaml: &str) -> Object {
        parse_object(yaml, "test").unwrap()
    }

    fn spec(hard: &[(&str, &str)], scopes: &[&str]) -> ResourceQuotaSpec {
        ResourceQuotaSpec {
            hard: hard
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn shown(charges: &BTreeMap<String, Quantity>) -> BTreeMap<String, String> {
        charges
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    const SIZED_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec:\n  initContainers:\n  - {name: init, image: i, resources: {requests: {cpu: '2'}}}\n  containers:\n  - {name: c, image: i, resources: {requests: {cpu: 250m, memory: 64Mi, ephemeral-storage: 1Gi}, limits: {cpu: 500m, memory: 128Mi}}}\n  - {name: d, image: i, resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}}\n";

    #[test]
    fn a_pod_charges_its_count_and_its_requests_and_limits() {
        let pod = object(SIZED_POD);
        let hard = spec(
            &[
                ("pods", "10"),
                ("count/pods", "10"),
                ("cpu", "10"),
                ("requests.memory", "1Gi"),
                ("memory", "1Gi"),
                ("limits.cpu", "4"),
                ("limits.memory", "1Gi"),
                ("ephemeral-storage", "10Gi"),
                ("requests.ephemeral-storage", "10Gi"),
                ("limits.ephemeral-storage", "10Gi"),
                ("services", "3"),
            ],
            &[],
        );
        let got = shown(&charges(&pod, &hard));
        let want: BTreeMap<String, String> = [
            ("pods", "1"),
            ("count/pods", "1"),
            // The init container (2) is larger than the containers' sum (500m).
            ("cpu", "2"),
            ("requests.memory", "128Mi"),
            ("memory", "128Mi"),
            ("limits.cpu", "1"),
            ("limits.memory", "256Mi"),
            ("ephemeral-storage", "1Gi"),
            ("requests.ephemeral-storage", "1Gi"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_finished_pod_charges_nothing() {
        for phase in ["Succeeded", "Failed"] {
            let pod = object(&format!("{SIZED_POD}status: {{phase: {phase}}}\n"));
            let hard = spec(&[("pods", "1"), ("cpu", "1")], &[]);
            assert!(charges(&pod, &hard).is_empty(), "{phase}");
        }
        let running = object(&format!("{SIZED_POD}status: {{phase: Running}}\n"));
        assert_eq!(charges(&running, &spec(&[("pods", "1")], &[])).len(), 1);
    }

    #[test]
    fn scopes_pick_the_pods_a_quota_covers() {
        let plain = object("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i}]\n");
        let sized = object(SIZED_POD);
        let deadline = object("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  activeDeadlineSeconds: 30\n  containers: [{name: c, image: i}]\n");
        let counted = |o: &Object, scope: &str| charge(o, "pods", &[scope.to_owned()]) == one();
        assert!(counted(&plain, "BestEffort"));
        assert!(!counted(&sized, "BestEffort"));
        assert!(counted(&sized, "NotBestEffort"));
        assert!(!counted(&plain, "NotBestEffort"));
        assert!(counted(&deadline, "Terminating"));
        assert!(!counted(&plain, "Terminating"));
        assert!(counted(&plain, "NotTerminating"));
        assert!(!counted(&deadline, "NotTerminating"));
        let service = object(
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n",
        );
        assert_eq!(
            charge(&service, "services", &["NotTerminating".to_owned()]),
            zero(),
            "a scoped quota covers pods only"
        );
    }

    #[test]
    fn services_charge_node_ports_and_load_balancers_by_their_type() {
        let of = |ty: &str| {
            object(&format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{type: {ty}, ports: [{{port: 80}}, {{port: 443}}]}}\n"))
        };
        let hard = spec(
            &[
                ("services", "5"),
                ("count/services", "5"),
                ("services.nodeports", "5"),
                ("services.loadbalancers", "5"),
            ],
            &[],
        );
        let got = |ty: &str| shown(&charges(&of(ty), &hard));
        assert_eq!(got("ClusterIP").len(), 2);
        assert_eq!(got("NodePort")["services.nodeports"], "2");
        assert!(!got("NodePort").contains_key("services.loadbalancers"));
        assert_eq!(got("LoadBalancer")["services.nodeports"], "2");
        assert_eq!(got("LoadBalancer")["services.loadbalancers"], "1");
    }

    #[test]
    fn claims_charge_their_count_and_storage_overall_and_per_class() {
        let claim = object("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}\n");
        let hard = spec(
            &[
                ("persistentvolumeclaims", "5"),
                ("requests.storage", "100Gi"),
                ("fast.storageclass.storage.k8s.io/requests.storage", "10Gi"),
                (
                    "fast.storageclass.storage.k8s.io/persistentvolumeclaims",
                    "2",
                ),
                ("slow.storageclass.storage.k8s.io/requests.storage", "10Gi"),
                ("count/persistentvolumeclaims", "5"),
            ],
            &[],
        );
        let got = shown(&charges(&claim, &hard));
        assert_eq!(got["persistentvolumeclaims"], "1");
        assert_eq!(got["requests.storage"], "5Gi");
        assert_eq!(
            got["fast.storageclass.storage.k8s.io/requests.storage"],
            "5Gi"
        );
        assert_eq!(
            got["fast.storageclass.storage.k8s.io/persistentvolumeclaims"],
            "1"
        );
        assert_eq!(got["count/persistentvolumeclaims"], "1");
        assert!(!got.contains_key("slow.storageclass.storage.k8s.io/requests.storage"));
    }

    #[test]
    fn object_counts_name_every_namespaced_kind_by_plural_and_group() {
        assert_eq!(
            counted_kind("count/deployments.apps"),
            Some(Kind::Deployment)
        );
        assert_eq!(counted_kind("count/jobs.batch"), Some(Kind::Job));
        assert_eq!(counted_kind("count/configmaps"), Some(Kind::ConfigMap));
        assert_eq!(counted_kind("configmaps"), Some(Kind::ConfigMap));
        assert_eq!(counted_kind("secrets"), Some(Kind::Secret));
        assert_eq!(counted_kind("resourcequotas"), Some(Kind::ResourceQuota));
        assert_eq!(
            counted_kind("count/deployments"),
            None,
            "apps needs its group"
        );
        assert_eq!(
            counted_kind("count/nodes"),
            None,
            "nodes are not namespaced"
        );
        assert_eq!(counted_kind("widgets"), None);
        for kind in Kind::all().filter(|k| k.info().namespaced) {
            assert_eq!(
                counted_kind(&format!("count/{}", counted_name(kind))),
                Some(kind)
            );
        }
        let map = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n");
        let hard = spec(
            &[
                ("configmaps", "1"),
                ("count/configmaps", "1"),
                ("pods", "1"),
            ],
            &[],
        );
        assert_eq!(charges(&map, &hard).len(), 2);
    }

    #[test]
    fn a_quota_on_cpu_or_memory_requires_every_container_to_say_what_it_asks() {
        let pod = object("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: b, image: i, resources: {requests: {cpu: 100m}}}\n  - {name: a, image: i}\n");
        let hard = spec(
            &[("limits.cpu", "2"), ("requests.cpu", "2"), ("pods", "3")],
            &[],
        );
        let Object::Pod(pod) = pod else { panic!() };
        assert_eq!(
            missing_compute(&pod, &hard).as_deref(),
            Some("must specify limits.cpu for: a,b; requests.cpu for: a")
        );
        assert_eq!(missing_compute(&pod, &spec(&[("pods", "3")], &[])), None);
        assert_eq!(
            missing_compute(&pod, &spec(&[("limits.cpu", "2")], &["BestEffort"])),
            None,
            "a quota that does not cover the pod requires nothing"
        );
    }
}
