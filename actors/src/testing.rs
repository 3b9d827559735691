//! Builders for the objects the controller tests use (test-only).

use rafter_proto::v1::{self, Condition, LabelSelector, ObjectMeta, PodSpec, PodTemplateSpec};
use rafter_proto::{IntOrString, Object};

use crate::pods::controller_owner_reference;
use rafter_proto::Timestamp;

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

pub fn ts(seconds: i64) -> Option<String> {
    Some(at(seconds).to_rfc3339())
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{ns}-{name}"),
        creation_timestamp: ts(0),
        generation: 1,
        ..Default::default()
    }
}

pub fn container(cpu: &str, memory: &str) -> v1::Container {
    let mut requests = rafter_proto::StringMap::new();
    if !cpu.is_empty() {
        requests.insert("cpu".to_owned(), cpu.to_owned());
    }
    if !memory.is_empty() {
        requests.insert("memory".to_owned(), memory.to_owned());
    }
    v1::Container {
        name: "c".to_owned(),
        image: "busybox".to_owned(),
        resources: Some(v1::ResourceRequirements {
            requests,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn req(key: &str, operator: &str, values: &[&str]) -> v1::NodeSelectorRequirement {
    v1::NodeSelectorRequirement {
        key: key.to_owned(),
        operator: operator.to_owned(),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

pub fn term(reqs: Vec<v1::NodeSelectorRequirement>) -> v1::NodeSelectorTerm {
    v1::NodeSelectorTerm {
        match_expressions: reqs,
        match_fields: Vec::new(),
    }
}

pub fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> v1::Toleration {
    v1::Toleration {
        key: key.to_owned(),
        operator: operator.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
        toleration_seconds: None,
    }
}

pub fn taint(key: &str, value: &str, effect: &str) -> v1::Taint {
    v1::Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
        time_added: None,
    }
}

pub fn ready_condition(status: &str, since: i64) -> Condition {
    Condition {
        r#type: "Ready".to_owned(),
        status: status.to_owned(),
        last_transition_time: ts(since),
        ..Default::default()
    }
}

pub struct PodBuilder(v1::Pod);

pub fn pod(ns: &str, name: &str) -> PodBuilder {
    PodBuilder(v1::Pod {
        metadata: Some(meta(ns, name)),
        spec: Some(PodSpec {
            scheduler_name: "default-scheduler".to_owned(),
            containers: vec![container("", "")],
            ..Default::default()
        }),
        status: Some(v1::PodStatus {
            phase: "Pending".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

impl PodBuilder {
    fn meta(&mut self) -> &mut ObjectMeta {
        self.0.metadata.get_or_insert_with(Default::default)
    }
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    fn status(&mut self) -> &mut v1::PodStatus {
        self.0.status.get_or_insert_with(Default::default)
    }
    pub fn uid(mut self, uid: &str) -> Self {
        self.meta().uid = uid.to_owned();
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.meta().labels.insert(k.to_owned(), v.to_owned());
        self
    }
    pub fn created(mut self, seconds: i64) -> Self {
        self.meta().creation_timestamp = ts(seconds);
        self
    }
    pub fn deleting(mut self) -> Self {
        self.meta().deletion_timestamp = ts(0);
        self
    }
    pub fn owner(mut self, owner: &Object, controller: bool) -> Self {
        let mut r = controller_owner_reference(owner);
        if !controller {
            r.controller = None;
            r.block_owner_deletion = None;
        }
        self.meta().owner_references.push(r);
        self
    }
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.meta().annotations.insert(k.to_owned(), v.to_owned());
        self
    }
    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = node.to_owned();
        self
    }
    pub fn scheduler(mut self, name: &str) -> Self {
        self.spec().scheduler_name = name.to_owned();
        self
    }
    pub fn requests(mut self, cpu: &str, memory: &str) -> Self {
        self.spec().containers = vec![container(cpu, memory)];
        self
    }
    pub fn init_requests(mut self, cpu: &str, memory: &str) -> Self {
        self.spec().init_containers.push(container(cpu, memory));
        self
    }
    pub fn toleration(mut self, t: v1::Toleration) -> Self {
        self.spec().tolerations.push(t);
        self
    }
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec().node_selector.insert(k.to_owned(), v.to_owned());
        self
    }
    pub fn required_terms(mut self, terms: Vec<v1::NodeSelectorTerm>) -> Self {
        let affinity = self.spec().affinity.get_or_insert_with(Default::default);
        let na = affinity.node_affinity.get_or_insert_with(Default::default);
        na.required_during_scheduling_ignored_during_execution = Some(v1::NodeSelector {
            node_selector_terms: terms,
        });
        self
    }
    pub fn preferred(mut self, weight: i32, t: v1::NodeSelectorTerm) -> Self {
        let affinity = self.spec().affinity.get_or_insert_with(Default::default);
        let na = affinity.node_affinity.get_or_insert_with(Default::default);
        na.preferred_during_scheduling_ignored_during_execution
            .push(v1::PreferredSchedulingTerm {
                weight,
                preference: Some(t),
            });
        self
    }
    pub fn phase(mut self, phase: &str) -> Self {
        self.status().phase = phase.to_owned();
        self
    }
    pub fn ready_since(mut self, seconds: i64) -> Self {
        let status = self.status();
        status.phase = "Running".to_owned();
        status.conditions.retain(|c| c.r#type != "Ready");
        status.conditions.push(ready_condition("True", seconds));
        self
    }
    pub fn running(mut self) -> Self {
        self.status().phase = "Running".to_owned();
        self
    }
    /// Running with this address, Ready True (`ready`) or False.
    pub fn serving(mut self, ip: &str, ready: bool) -> Self {
        let status = self.status();
        status.phase = "Running".to_owned();
        status.pod_ip = ip.to_owned();
        status.conditions.retain(|c| c.r#type != "Ready");
        status
            .conditions
            .push(ready_condition(if ready { "True" } else { "False" }, 0));
        self
    }
    pub fn container_port(mut self, name: &str, port: i32) -> Self {
        let spec = self.spec();
        spec.containers[0].ports.push(v1::ContainerPort {
            name: name.to_owned(),
            container_port: port,
            ..Default::default()
        });
        self
    }
    pub fn hostname(mut self, hostname: &str, subdomain: &str) -> Self {
        let spec = self.spec();
        spec.hostname = hostname.to_owned();
        spec.subdomain = subdomain.to_owned();
        self
    }
    pub fn restarts(mut self, n: i32) -> Self {
        self.status().container_statuses = vec![v1::ContainerStatus {
            name: "c".to_owned(),
            restart_count: n,
            ..Default::default()
        }];
        self
    }
    pub fn build_pod(self) -> v1::Pod {
        self.0
    }
    pub fn build(self) -> Object {
        Object::Pod(self.0)
    }
}

pub struct NodeBuilder(v1::Node);

/// A Ready node with 4 CPUs, 8Gi and 110 pods allocatable.
pub fn node(name: &str) -> NodeBuilder {
    let mut allocatable = rafter_proto::StringMap::new();
    allocatable.insert("cpu".to_owned(), "4".to_owned());
    allocatable.insert("memory".to_owned(), "8Gi".to_owned());
    allocatable.insert("pods".to_owned(), "110".to_owned());
    NodeBuilder(v1::Node {
        metadata: Some(meta("", name)),
        spec: Some(Default::default()),
        status: Some(v1::NodeStatus {
            allocatable,
            conditions: vec![ready_condition("True", 0)],
            ..Default::default()
        }),
        ..Default::default()
    })
}

impl NodeBuilder {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        let meta = self.0.metadata.get_or_insert_with(Default::default);
        meta.labels.insert(k.to_owned(), v.to_owned());
        self
    }
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        spec.taints.push(taint(key, value, effect));
        self
    }
    pub fn taint_added(mut self, key: &str, effect: &str, seconds: i64) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        let mut t = taint(key, "", effect);
        t.time_added = ts(seconds);
        spec.taints.push(t);
        self
    }
    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = true;
        self
    }
    pub fn allocatable(mut self, cpu: &str, memory: &str, pods: &str) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status.allocatable.clear();
        for (k, v) in [("cpu", cpu), ("memory", memory), ("pods", pods)] {
            if !v.is_empty() {
                status.allocatable.insert(k.to_owned(), v.to_owned());
            }
        }
        self
    }
    pub fn ready(mut self, status: &str) -> Self {
        let s = self.0.status.get_or_insert_with(Default::default);
        s.conditions = vec![ready_condition(status, 0)];
        self
    }
    pub fn build_node(self) -> v1::Node {
        self.0
    }
    pub fn build(self) -> Object {
        Object::Node(self.0)
    }
}

pub fn template(labels: &[(&str, &str)], image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }),
        spec: Some(Box::new(PodSpec {
            containers: vec![v1::Container {
                name: "app".to_owned(),
                image: image.to_owned(),
                ..Default::default()
            }],
            restart_policy: "Always".to_owned(),
            scheduler_name: "default-scheduler".to_owned(),
            ..Default::default()
        })),
    }
}

pub fn match_labels(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        match_expressions: Vec::new(),
    }
}

pub struct ReplicaSetBuilder(v1::ReplicaSet);

/// A ReplicaSet selecting and templating `app=<name>`.
pub fn replica_set(ns: &str, name: &str, replicas: i32) -> ReplicaSetBuilder {
    ReplicaSetBuilder(v1::ReplicaSet {
        metadata: Some(meta(ns, name)),
        spec: Some(v1::ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: 0,
            selector: Some(match_labels(&[("app", name)])),
            template: Some(template(&[("app", name)], "nginx:1")),
        }),
        ..Default::default()
    })
}

impl ReplicaSetBuilder {
    pub fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.get_or_insert_with(Default::default).uid = uid.to_owned();
        self
    }
    pub fn min_ready(mut self, seconds: i32) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .min_ready_seconds = seconds;
        self
    }
    pub fn build(self) -> Object {
        Object::ReplicaSet(self.0)
    }
}

pub fn deployment(ns: &str, name: &str, replicas: i32) -> v1::Deployment {
    v1::Deployment {
        metadata: Some(meta(ns, name)),
        spec: Some(v1::DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(match_labels(&[("app", name)])),
            template: Some(template(&[("app", name)], "nginx:1")),
            strategy: Some(v1::DeploymentStrategy {
                r#type: "RollingUpdate".to_owned(),
                rolling_update: Some(v1::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::String("25%".to_owned())),
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                }),
            }),
            min_ready_seconds: 0,
            revision_history_limit: Some(10),
            paused: false,
            progress_deadline_seconds: Some(600),
        }),
        ..Default::default()
    }
}

pub fn daemon_set(ns: &str, name: &str) -> v1::DaemonSet {
    v1::DaemonSet {
        metadata: Some(meta(ns, name)),
        spec: Some(v1::DaemonSetSpec {
            selector: Some(match_labels(&[("app", name)])),
            template: Some(template(&[("app", name)], "agent:1")),
            update_strategy: Some(v1::DaemonSetUpdateStrategy {
                r#type: "RollingUpdate".to_owned(),
                rolling_update: Some(v1::RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn lease(node: &str, renewed: i64) -> Object {
    Object::Lease(v1::Lease {
        metadata: Some(meta("kube-node-lease", node)),
        spec: Some(v1::LeaseSpec {
            holder_identity: node.to_owned(),
            lease_duration_seconds: Some(40),
            renew_time: ts(renewed),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub struct ServiceBuilder(v1::Service);

/// A ClusterIP Service selecting `app=<name>` with no ports yet.
pub fn service(ns: &str, name: &str) -> ServiceBuilder {
    let mut selector = rafter_proto::StringMap::new();
    selector.insert("app".to_owned(), name.to_owned());
    ServiceBuilder(v1::Service {
        metadata: Some(meta(ns, name)),
        spec: Some(v1::ServiceSpec {
            selector,
            r#type: "ClusterIP".to_owned(),
            cluster_ip: "10.96.0.10".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

impl ServiceBuilder {
    fn spec(&mut self) -> &mut v1::ServiceSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }
    /// A TCP port `port` named `name` targeting `target` (a number or a port name; ""
    /// leaves targetPort unset).
    pub fn port(mut self, name: &str, port: i32, target: &str) -> Self {
        let target_port = if target.is_empty() {
            None
        } else {
            Some(match target.parse::<i32>() {
                Ok(n) => IntOrString::Int(n),
                Err(_) => IntOrString::String(target.to_owned()),
            })
        };
        self.spec().ports.push(v1::ServicePort {
            name: name.to_owned(),
            port,
            target_port,
            protocol: "TCP".to_owned(),
            ..Default::default()
        });
        self
    }
    pub fn no_selector(mut self) -> Self {
        self.spec().selector.clear();
        self
    }
    pub fn publish_not_ready(mut self) -> Self {
        self.spec().publish_not_ready_addresses = true;
        self
    }
    pub fn headless(mut self) -> Self {
        self.spec().cluster_ip = "None".to_owned();
        self
    }
    pub fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.get_or_insert_with(Default::default).uid = uid.to_owned();
        self
    }
    pub fn build(self) -> Object {
        Object::Service(self.0)
    }
}
