//! Kubernetes' defaults for fields a manifest leaves empty (restartPolicy Always, Service
//! type ClusterIP, Deployment strategy RollingUpdate 25%/25% ...).
//!
//! Owns which value an empty field gets. It never overwrites a value the user set, with
//! one exception Kubernetes also makes: a Secret's `stringData` is merged into `data`
//! (base64-encoded, winning over the same key in `data`) and then cleared. It must not
//! reject anything (see `validation`) and reads no clock or randomness: uids, timestamps
//! and generated names are the server's business.
//!
//! Pod specs get their defaults in one place, [`default_pod_spec`], whether they sit in a
//! Pod or in a workload's template. Job templates keep their restartPolicy as given, as
//! Kubernetes requires Jobs to say OnFailure or Never.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::v1::{self, Container, PodSpec, PodTemplateSpec, Probe};
use crate::{IntOrString, Object};

const DEFAULT_NAMESPACE: &str = "default";
const DEFAULT_SCHEDULER: &str = "default-scheduler";
const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// 0644, the mode of files projected from ConfigMaps and Secrets.
const DEFAULT_FILE_MODE: i32 = 0o644;
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
const DEFAULT_BACKOFF_LIMIT: i32 = 6;
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Fills the fields Kubernetes defaults, leaving every field the user set as it is.
pub fn apply_defaults(object: &mut Object) {
    if object.kind().info().namespaced {
        set_if_empty(&mut object.metadata_mut().namespace, DEFAULT_NAMESPACE);
    }
    match object {
        Object::Namespace(ns) => {
            set_if_empty(
                &mut ns.status.get_or_insert_with(Default::default).phase,
                "Active",
            );
        }
        Object::Pod(pod) => {
            if let Some(spec) = &mut pod.spec {
                default_pod_spec(spec, Some("Always"));
            }
        }
        Object::Service(svc) => {
            if let Some(spec) = &mut svc.spec {
                default_service_spec(spec);
            }
        }
        Object::Endpoints(ep) => {
            for port in ep.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
                set_if_empty(&mut port.protocol, "TCP");
            }
        }
        Object::EndpointSlice(slice) => {
            for port in &mut slice.ports {
                set_if_empty(&mut port.protocol, "TCP");
            }
        }
        Object::Secret(secret) => default_secret(secret),
        Object::PersistentVolume(pv) => {
            if let Some(spec) = &mut pv.spec {
                set_if_empty(&mut spec.persistent_volume_reclaim_policy, "Retain");
                set_if_empty(&mut spec.volume_mode, "Filesystem");
            }
        }
        Object::PersistentVolumeClaim(pvc) => {
            if let Some(spec) = &mut pvc.spec {
                set_if_empty(&mut spec.volume_mode, "Filesystem");
            }
        }
        Object::ReplicaSet(rs) => {
            if let Some(spec) = &mut rs.spec {
                spec.replicas.get_or_insert(1);
                default_template(spec.template.as_mut(), Some("Always"));
            }
        }
        Object::Deployment(deploy) => {
            if let Some(spec) = &mut deploy.spec {
                default_deployment_spec(spec);
            }
        }
        Object::DaemonSet(ds) => {
            if let Some(spec) = &mut ds.spec {
                default_daemon_set_spec(spec);
            }
        }
        Object::Job(job) => {
            if let Some(spec) = &mut job.spec {
                default_job_spec(spec);
            }
        }
        Object::LimitRange(lr) => {
            // As Kubernetes: a container's default request is its default limit unless given.
            for item in lr.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
                if item.r#type == "Container" {
                    for (resource, limit) in &item.default {
                        item.default_request
                            .entry(resource.clone())
                            .or_insert_with(|| limit.clone());
                    }
                }
            }
        }
        Object::CronJob(cron) => {
            if let Some(spec) = &mut cron.spec {
                default_cron_job_spec(spec);
            }
        }
        Object::RoleBinding(rb) => default_subjects(&mut rb.subjects),
        Object::ClusterRoleBinding(crb) => default_subjects(&mut crb.subjects),
        Object::StorageClass(sc) => {
            set_if_empty(&mut sc.reclaim_policy, "Delete");
            set_if_empty(&mut sc.volume_binding_mode, "Immediate");
        }
        Object::NetworkPolicy(np) => {
            if let Some(spec) = &mut np.spec {
                default_network_policy_spec(spec);
            }
        }
        Object::Node(_)
        | Object::Binding(_)
        | Object::ConfigMap(_)
        | Object::ServiceAccount(_)
        | Object::ResourceQuota(_)
        | Object::Event(_)
        | Object::CertificateSigningRequest(_)
        | Object::Role(_)
        | Object::ClusterRole(_)
        | Object::Lease(_)
        | Object::Ingress(_) => {}
    }
}

fn set_if_empty(field: &mut String, value: &str) {
    if field.is_empty() {
        value.clone_into(field);
    }
}

fn set_if_zero(field: &mut i32, value: i32) {
    if *field == 0 {
        *field = value;
    }
}

fn default_template(template: Option<&mut PodTemplateSpec>, restart_policy: Option<&str>) {
    if let Some(spec) = template.and_then(|t| t.spec.as_mut()) {
        default_pod_spec(spec, restart_policy);
    }
}

/// The defaults of a pod spec, in a Pod or a template. `restart_policy` is the default
/// restartPolicy, or `None` to leave it as given (Job templates).
pub(crate) fn default_pod_spec(spec: &mut PodSpec, restart_policy: Option<&str>) {
    if let Some(policy) = restart_policy {
        set_if_empty(&mut spec.restart_policy, policy);
    }
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.scheduler_name, DEFAULT_SCHEDULER);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_SECONDS);
    for container in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        default_container(container);
    }
    for toleration in &mut spec.tolerations {
        set_if_empty(&mut toleration.operator, "Equal");
    }
    for volume in &mut spec.volumes {
        if let Some(cm) = &mut volume.config_map {
            cm.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        }
        if let Some(secret) = &mut volume.secret {
            secret.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        }
    }
}

fn default_container(c: &mut Container) {
    if c.image_pull_policy.is_empty() {
        c.image_pull_policy = image_pull_policy(&c.image).to_owned();
    }
    set_if_empty(
        &mut c.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    for port in &mut c.ports {
        set_if_empty(&mut port.protocol, "TCP");
    }
    // A limit without a request requests what it limits.
    if let Some(res) = &mut c.resources {
        for (name, limit) in &res.limits {
            res.requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

/// The `imagePullPolicy` of a container that sets none: Always for `:latest` or no tag
/// (the image may change under the same name), else IfNotPresent. A digest pins the image.
pub fn image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_probe(probe: &mut Probe) {
    set_if_zero(&mut probe.timeout_seconds, 1);
    set_if_zero(&mut probe.period_seconds, 10);
    set_if_zero(&mut probe.success_threshold, 1);
    set_if_zero(&mut probe.failure_threshold, 3);
    if let Some(http) = &mut probe.http_get {
        set_if_empty(&mut http.path, "/");
        set_if_empty(&mut http.scheme, "HTTP");
    }
}

/// How long a ClientIP affinity lasts when the Service does not say (three hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: i32 = 10_800;

fn default_service_spec(spec: &mut v1::ServiceSpec) {
    set_if_empty(&mut spec.r#type, "ClusterIP");
    set_if_empty(&mut spec.session_affinity, "None");
    if spec.session_affinity == "ClientIP" {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        config
            .client_ip
            .get_or_insert_with(Default::default)
            .timeout_seconds
            .get_or_insert(DEFAULT_AFFINITY_TIMEOUT_SECONDS);
    }
    if matches!(spec.r#type.as_str(), "NodePort" | "LoadBalancer") {
        set_if_empty(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in &mut spec.ports {
        set_if_empty(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
}

fn default_secret(secret: &mut v1::Secret) {
    set_if_empty(&mut secret.r#type, "Opaque");
    for (key, value) in std::mem::take(&mut secret.string_data) {
        secret.data.insert(key, BASE64.encode(value));
    }
}

fn percent(p: &str) -> Option<IntOrString> {
    Some(IntOrString::String(p.to_owned()))
}

fn default_deployment_spec(spec: &mut v1::DeploymentSpec) {
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    spec.progress_deadline_seconds
        .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    set_if_empty(&mut strategy.r#type, "RollingUpdate");
    if strategy.r#type == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        if rolling.max_surge.is_none() {
            rolling.max_surge = percent("25%");
        }
        if rolling.max_unavailable.is_none() {
            rolling.max_unavailable = percent("25%");
        }
    }
    default_template(spec.template.as_mut(), Some("Always"));
}

fn default_daemon_set_spec(spec: &mut v1::DaemonSetSpec) {
    spec.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    let strategy = spec.update_strategy.get_or_insert_with(Default::default);
    set_if_empty(&mut strategy.r#type, "RollingUpdate");
    if strategy.r#type == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.max_surge.get_or_insert(IntOrString::Int(0));
    }
    default_template(spec.template.as_mut(), Some("Always"));
}

fn default_job_spec(spec: &mut v1::JobSpec) {
    // As Kubernetes: both unset means one pod run once; parallelism alone defaults to 1.
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(DEFAULT_BACKOFF_LIMIT);
    set_if_empty(&mut spec.completion_mode, "NonIndexed");
    default_template(spec.template.as_mut(), None);
}

fn default_cron_job_spec(spec: &mut v1::CronJobSpec) {
    set_if_empty(&mut spec.concurrency_policy, "Allow");
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    if let Some(job) = spec.job_template.as_mut().and_then(|t| t.spec.as_mut()) {
        default_job_spec(job);
    }
}

fn default_subjects(subjects: &mut [v1::Subject]) {
    for subject in subjects {
        if matches!(subject.kind.as_str(), "User" | "Group") {
            set_if_empty(&mut subject.api_group, RBAC_GROUP);
        }
    }
}

fn default_network_policy_spec(spec: &mut v1::NetworkPolicySpec) {
    let ports = spec.ingress.iter_mut().flat_map(|r| r.ports.iter_mut());
    let ports = ports.chain(spec.egress.iter_mut().flat_map(|r| r.ports.iter_mut()));
    for port in ports {
        set_if_empty(&mut port.protocol, "TCP");
    }
    if spec.policy_types.is_empty() {
        spec.policy_types.push("Ingress".to_owned());
        if !spec.egress.is_empty() {
            spec.policy_types.push("Egress".to_owned());
        }
    }
}

#[cfg(test)]
#[path = "defaults_test.rs"]
mod tests;
