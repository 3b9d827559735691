//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), for the
//! few kinds kubectl ≥ 1.32 sends that way from its typed clients (`create configmap`,
//! `create secret`, `create namespace`, `create serviceaccount`, `create role`,
//! `create rolebinding` and their cluster forms, `create deployment`, `create job` (also
//! `--from=cronjob/…`), `create cronjob`, `create service …`, `create quota`,
//! `certificate approve`, `auth can-i`, `drain`'s evictions): the `k8s\0` envelope
//! (`runtime.Unknown`) and those messages with Kubernetes' own field numbers, turned into
//! the JSON the handlers read.
//!
//! Owns only this decoding. A pod template is read with its containers (image, command,
//! args, ports, env values, resources, pull policy), restart and DNS policy, node
//! selector, service account, pull secrets and the like; a body that sets what is not
//! read (volumes, probes, security contexts, affinity, tolerations, `valueFrom` …) is
//! refused with 415 naming the field, never stored without it. Any other kind is refused
//! with 415, naming the kinds read, so the caller can send JSON instead. Answers are always JSON (every
//! client that sends protobuf also accepts JSON).

use std::collections::BTreeMap;

use base64::Engine;
use prost::Message;
use serde_json::{json, Map, Value};

use super::errors::ApiError;

/// The magic that starts every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(string, tag = "6")]
    resource_version: String,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    uid: String,
    #[prost(string, tag = "5")]
    api_version: String,
    #[prost(bool, optional, tag = "6")]
    controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    block_owner_deletion: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct ConfigMap {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, string", tag = "2")]
    data: BTreeMap<String, String>,
    #[prost(btree_map = "string, bytes", tag = "3")]
    binary_data: BTreeMap<String, Vec<u8>>,
    #[prost(bool, optional, tag = "4")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Secret {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(btree_map = "string, bytes", tag = "2")]
    data: BTreeMap<String, Vec<u8>>,
    #[prost(string, tag = "3")]
    r#type: String,
    #[prost(btree_map = "string, string", tag = "4")]
    string_data: BTreeMap<String, String>,
    #[prost(bool, optional, tag = "5")]
    immutable: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceAccount {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(bool, optional, tag = "4")]
    automount_service_account_token: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, tag = "1")]
    namespace: String,
    #[prost(string, tag = "2")]
    verb: String,
    #[prost(string, tag = "3")]
    group: String,
    #[prost(string, tag = "4")]
    version: String,
    #[prost(string, tag = "5")]
    resource: String,
    #[prost(string, tag = "6")]
    subresource: String,
    #[prost(string, tag = "7")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(string, tag = "2")]
    verb: String,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
    /// SubjectAccessReview only.
    #[prost(string, tag = "3")]
    user: String,
    /// SubjectAccessReview only.
    #[prost(string, repeated, tag = "4")]
    groups: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<AccessReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReviewSpec {
    #[prost(string, tag = "1")]
    namespace: String,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReview {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<RulesReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct PolicyRule {
    #[prost(string, repeated, tag = "1")]
    verbs: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    api_groups: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    resources: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    resource_names: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    non_resource_urls: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Role {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    rules: Vec<PolicyRule>,
}

#[derive(Clone, PartialEq, Message)]
struct Subject {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "2")]
    api_group: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    namespace: String,
}

#[derive(Clone, PartialEq, Message)]
struct RoleRef {
    #[prost(string, tag = "1")]
    api_group: String,
    #[prost(string, tag = "2")]
    kind: String,
    #[prost(string, tag = "3")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct RoleBinding {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, repeated, tag = "2")]
    subjects: Vec<Subject>,
    #[prost(message, optional, tag = "3")]
    role_ref: Option<RoleRef>,
}

#[derive(Clone, PartialEq, Message)]
struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    match_labels: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerPort {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    host_port: i32,
    #[prost(int32, tag = "3")]
    container_port: i32,
    #[prost(string, tag = "4")]
    protocol: String,
}

/// `resource.Quantity`: its string form.
#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, tag = "1")]
    string: String,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "1")]
    limits: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    requests: BTreeMap<String, Quantity>,
}

#[derive(Clone, PartialEq, Message)]
struct EnvVar {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
    /// `valueFrom`: not read (see [`Unread`]).
    #[prost(bytes = "vec", optional, tag = "3")]
    value_from: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct LocalObjectReference {
    #[prost(string, tag = "1")]
    name: String,
}

/// Fields of a container this decoder does not turn into JSON: a body that sets any of
/// them is refused rather than stored without them.
#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    image: String,
    #[prost(string, repeated, tag = "3")]
    command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    args: Vec<String>,
    #[prost(string, tag = "5")]
    working_dir: String,
    #[prost(message, repeated, tag = "6")]
    ports: Vec<ContainerPort>,
    #[prost(message, repeated, tag = "7")]
    env: Vec<EnvVar>,
    #[prost(message, optional, tag = "8")]
    resources: Option<ResourceRequirements>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    volume_mounts: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "10")]
    liveness_probe: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "11")]
    readiness_probe: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "12")]
    lifecycle: Option<Vec<u8>>,
    #[prost(string, tag = "13")]
    termination_message_path: String,
    #[prost(string, tag = "14")]
    image_pull_policy: String,
    #[prost(bytes = "vec", optional, tag = "15")]
    security_context: Option<Vec<u8>>,
    #[prost(bool, tag = "16")]
    stdin: bool,
    #[prost(bool, tag = "17")]
    stdin_once: bool,
    #[prost(bool, tag = "18")]
    tty: bool,
    #[prost(bytes = "vec", repeated, tag = "19")]
    env_from: Vec<Vec<u8>>,
    #[prost(string, tag = "20")]
    termination_message_policy: String,
    #[prost(bytes = "vec", optional, tag = "22")]
    startup_probe: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(bytes = "vec", repeated, tag = "1")]
    volumes: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "2")]
    containers: Vec<Container>,
    #[prost(string, tag = "3")]
    restart_policy: String,
    #[prost(int64, optional, tag = "4")]
    termination_grace_period_seconds: Option<i64>,
    #[prost(int64, optional, tag = "5")]
    active_deadline_seconds: Option<i64>,
    #[prost(string, tag = "6")]
    dns_policy: String,
    #[prost(btree_map = "string, string", tag = "7")]
    node_selector: BTreeMap<String, String>,
    #[prost(string, tag = "8")]
    service_account_name: String,
    #[prost(string, tag = "10")]
    node_name: String,
    #[prost(bool, tag = "11")]
    host_network: bool,
    #[prost(bytes = "vec", optional, tag = "14")]
    security_context: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "15")]
    image_pull_secrets: Vec<LocalObjectReference>,
    #[prost(string, tag = "16")]
    hostname: String,
    #[prost(string, tag = "17")]
    subdomain: String,
    #[prost(bytes = "vec", optional, tag = "18")]
    affinity: Option<Vec<u8>>,
    #[prost(string, tag = "19")]
    scheduler_name: String,
    #[prost(message, repeated, tag = "20")]
    init_containers: Vec<Container>,
    #[prost(bytes = "vec", repeated, tag = "22")]
    tolerations: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "23")]
    host_aliases: Vec<Vec<u8>>,
    #[prost(string, tag = "24")]
    priority_class_name: String,
    #[prost(bytes = "vec", repeated, tag = "33")]
    topology_spread_constraints: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct JobSpec {
    #[prost(int32, optional, tag = "1")]
    parallelism: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    completions: Option<i32>,
    #[prost(int64, optional, tag = "3")]
    active_deadline_seconds: Option<i64>,
    #[prost(message, optional, tag = "4")]
    selector: Option<LabelSelector>,
    #[prost(bool, optional, tag = "5")]
    manual_selector: Option<bool>,
    #[prost(message, optional, tag = "6")]
    template: Option<PodTemplateSpec>,
    #[prost(int32, optional, tag = "7")]
    backoff_limit: Option<i32>,
    #[prost(int32, optional, tag = "8")]
    ttl_seconds_after_finished: Option<i32>,
    #[prost(string, optional, tag = "9")]
    completion_mode: Option<String>,
    #[prost(bool, optional, tag = "10")]
    suspend: Option<bool>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pod_failure_policy: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct Job {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<JobSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct JobTemplateSpec {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<JobSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct CronJobSpec {
    #[prost(string, tag = "1")]
    schedule: String,
    #[prost(int64, optional, tag = "2")]
    starting_deadline_seconds: Option<i64>,
    #[prost(string, tag = "3")]
    concurrency_policy: String,
    #[prost(bool, optional, tag = "4")]
    suspend: Option<bool>,
    #[prost(message, optional, tag = "5")]
    job_template: Option<JobTemplateSpec>,
    #[prost(int32, optional, tag = "6")]
    successful_jobs_history_limit: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    failed_jobs_history_limit: Option<i32>,
    #[prost(string, optional, tag = "8")]
    time_zone: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct CronJob {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<CronJobSpec>,
}

/// `intstr.IntOrString`: type 0 is the int, 1 the string.
#[derive(Clone, PartialEq, Message)]
struct IntOrString {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int32, tag = "2")]
    int_val: i32,
    #[prost(string, tag = "3")]
    str_val: String,
}

#[derive(Clone, PartialEq, Message)]
struct ServicePort {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    protocol: String,
    #[prost(int32, tag = "3")]
    port: i32,
    #[prost(message, optional, tag = "4")]
    target_port: Option<IntOrString>,
    #[prost(int32, tag = "5")]
    node_port: i32,
    #[prost(string, optional, tag = "6")]
    app_protocol: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceSpec {
    #[prost(message, repeated, tag = "1")]
    ports: Vec<ServicePort>,
    #[prost(btree_map = "string, string", tag = "2")]
    selector: BTreeMap<String, String>,
    #[prost(string, tag = "3")]
    cluster_ip: String,
    #[prost(string, tag = "4")]
    r#type: String,
    #[prost(string, repeated, tag = "5")]
    external_ips: Vec<String>,
    #[prost(string, tag = "7")]
    session_affinity: String,
    #[prost(string, tag = "10")]
    external_name: String,
    #[prost(string, tag = "11")]
    external_traffic_policy: String,
    #[prost(string, repeated, tag = "18")]
    cluster_ips: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Service {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ServiceSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceQuotaSpec {
    #[prost(btree_map = "string, message", tag = "1")]
    hard: BTreeMap<String, Quantity>,
    #[prost(string, repeated, tag = "2")]
    scopes: Vec<String>,
    #[prost(bytes = "vec", optional, tag = "3")]
    scope_selector: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceQuota {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<ResourceQuotaSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct DeploymentSpec {
    #[prost(int32, optional, tag = "1")]
    replicas: Option<i32>,
    #[prost(message, optional, tag = "2")]
    selector: Option<LabelSelector>,
    #[prost(message, optional, tag = "3")]
    template: Option<PodTemplateSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct Deployment {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<DeploymentSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct CsrSpec {
    #[prost(bytes = "vec", tag = "1")]
    request: Vec<u8>,
    #[prost(string, tag = "2")]
    username: String,
    #[prost(string, repeated, tag = "4")]
    groups: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    usages: Vec<String>,
    #[prost(string, tag = "7")]
    signer_name: String,
    #[prost(int32, optional, tag = "8")]
    expiration_seconds: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct CsrCondition {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    reason: String,
    #[prost(string, tag = "3")]
    message: String,
    #[prost(string, tag = "6")]
    status: String,
}

#[derive(Clone, PartialEq, Message)]
struct CsrStatus {
    #[prost(message, repeated, tag = "1")]
    conditions: Vec<CsrCondition>,
}

#[derive(Clone, PartialEq, Message)]
struct CertificateSigningRequest {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<CsrSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<CsrStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct DeleteOptions {
    #[prost(int64, optional, tag = "1")]
    grace_period_seconds: Option<i64>,
    #[prost(string, optional, tag = "4")]
    propagation_policy: Option<String>,
    #[prost(string, repeated, tag = "5")]
    dry_run: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Eviction {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    delete_options: Option<DeleteOptions>,
}

/// Inserts `value` under `key` unless it is empty (null, "", {} or []).
fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if !empty {
        map.insert(key.to_owned(), value);
    }
}

fn meta_json(meta: Option<ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut map = Map::new();
    put(&mut map, "name", json!(meta.name));
    put(&mut map, "generateName", json!(meta.generate_name));
    put(&mut map, "namespace", json!(meta.namespace));
    put(&mut map, "resourceVersion", json!(meta.resource_version));
    put(&mut map, "labels", json!(meta.labels));
    put(&mut map, "annotations", json!(meta.annotations));
    put(&mut map, "finalizers", json!(meta.finalizers));
    let owners: Vec<Value> = meta
        .owner_references
        .into_iter()
        .map(|o| {
            let mut owner = Map::new();
            put(&mut owner, "apiVersion", json!(o.api_version));
            put(&mut owner, "kind", json!(o.kind));
            put(&mut owner, "name", json!(o.name));
            put(&mut owner, "uid", json!(o.uid));
            put(&mut owner, "controller", json!(o.controller));
            put(
                &mut owner,
                "blockOwnerDeletion",
                json!(o.block_owner_deletion),
            );
            Value::Object(owner)
        })
        .collect();
    put(&mut map, "ownerReferences", json!(owners));
    Value::Object(map)
}

fn base64_map(map: BTreeMap<String, Vec<u8>>) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    json!(map
        .into_iter()
        .map(|(k, v)| (k, engine.encode(v)))
        .collect::<BTreeMap<_, _>>())
}

fn object(type_meta: &TypeMeta, fields: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    map.insert("apiVersion".to_owned(), json!(type_meta.api_version));
    map.insert("kind".to_owned(), json!(type_meta.kind));
    for (key, value) in fields {
        put(&mut map, key, value);
    }
    Value::Object(map)
}

/// Refuses a body that sets a field this decoder does not read (a non-empty message at
/// `path`), so that nothing is stored without what the caller sent.
fn unread(set: bool, path: &str) -> Result<(), ApiError> {
    if set {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("{path} is not read from protobuf bodies: send application/json"),
        ));
    }
    Ok(())
}

fn is_set(field: &Option<Vec<u8>>) -> bool {
    field.as_ref().is_some_and(|bytes| !bytes.is_empty())
}

fn quantities(map: BTreeMap<String, Quantity>) -> Value {
    json!(map
        .into_iter()
        .map(|(k, q)| (k, q.string))
        .collect::<BTreeMap<_, _>>())
}

fn container_json(c: Container, path: &str) -> Result<Value, ApiError> {
    unread(!c.volume_mounts.is_empty(), &format!("{path}.volumeMounts"))?;
    unread(is_set(&c.liveness_probe), &format!("{path}.livenessProbe"))?;
    unread(
        is_set(&c.readiness_probe),
        &format!("{path}.readinessProbe"),
    )?;
    unread(is_set(&c.startup_probe), &format!("{path}.startupProbe"))?;
    unread(is_set(&c.lifecycle), &format!("{path}.lifecycle"))?;
    unread(
        is_set(&c.security_context),
        &format!("{path}.securityContext"),
    )?;
    unread(!c.env_from.is_empty(), &format!("{path}.envFrom"))?;
    let mut map = Map::new();
    put(&mut map, "name", json!(c.name));
    put(&mut map, "image", json!(c.image));
    put(&mut map, "command", json!(c.command));
    put(&mut map, "args", json!(c.args));
    put(&mut map, "workingDir", json!(c.working_dir));
    let ports: Vec<Value> = c
        .ports
        .into_iter()
        .map(|p| {
            let mut port = Map::new();
            put(&mut port, "name", json!(p.name));
            port.insert("containerPort".to_owned(), json!(p.container_port));
            if p.host_port != 0 {
                port.insert("hostPort".to_owned(), json!(p.host_port));
            }
            put(&mut port, "protocol", json!(p.protocol));
            Value::Object(port)
        })
        .collect();
    put(&mut map, "ports", json!(ports));
    let mut env = Vec::new();
    for (i, var) in c.env.into_iter().enumerate() {
        unread(
            is_set(&var.value_from),
            &format!("{path}.env[{i}].valueFrom"),
        )?;
        env.push(json!({"name": var.name, "value": var.value}));
    }
    put(&mut map, "env", json!(env));
    if let Some(resources) = c.resources {
        let mut r = Map::new();
        put(&mut r, "limits", quantities(resources.limits));
        put(&mut r, "requests", quantities(resources.requests));
        put(&mut map, "resources", Value::Object(r));
    }
    put(
        &mut map,
        "terminationMessagePath",
        json!(c.termination_message_path),
    );
    put(
        &mut map,
        "terminationMessagePolicy",
        json!(c.termination_message_policy),
    );
    put(&mut map, "imagePullPolicy", json!(c.image_pull_policy));
    for (key, on) in [
        ("stdin", c.stdin),
        ("stdinOnce", c.stdin_once),
        ("tty", c.tty),
    ] {
        if on {
            map.insert(key.to_owned(), json!(true));
        }
    }
    Ok(Value::Object(map))
}

/// A pod template's JSON form; `path` names it in refusals.
fn pod_template_json(template: PodTemplateSpec, path: &str) -> Result<Value, ApiError> {
    let spec = template.spec.unwrap_or_default();
    let path = format!("{path}.spec");
    unread(!spec.volumes.is_empty(), &format!("{path}.volumes"))?;
    unread(
        is_set(&spec.security_context),
        &format!("{path}.securityContext"),
    )?;
    unread(is_set(&spec.affinity), &format!("{path}.affinity"))?;
    unread(!spec.tolerations.is_empty(), &format!("{path}.tolerations"))?;
    unread(
        !spec.host_aliases.is_empty(),
        &format!("{path}.hostAliases"),
    )?;
    unread(
        !spec.topology_spread_constraints.is_empty(),
        &format!("{path}.topologySpreadConstraints"),
    )?;
    let mut map = Map::new();
    let mut containers = Vec::new();
    for (i, c) in spec.containers.into_iter().enumerate() {
        containers.push(container_json(c, &format!("{path}.containers[{i}]"))?);
    }
    map.insert("containers".to_owned(), json!(containers));
    let mut init = Vec::new();
    for (i, c) in spec.init_containers.into_iter().enumerate() {
        init.push(container_json(c, &format!("{path}.initContainers[{i}]"))?);
    }
    put(&mut map, "initContainers", json!(init));
    put(&mut map, "restartPolicy", json!(spec.restart_policy));
    put(
        &mut map,
        "terminationGracePeriodSeconds",
        json!(spec.termination_grace_period_seconds),
    );
    put(
        &mut map,
        "activeDeadlineSeconds",
        json!(spec.active_deadline_seconds),
    );
    put(&mut map, "dnsPolicy", json!(spec.dns_policy));
    put(&mut map, "nodeSelector", json!(spec.node_selector));
    put(
        &mut map,
        "serviceAccountName",
        json!(spec.service_account_name),
    );
    put(&mut map, "nodeName", json!(spec.node_name));
    if spec.host_network {
        map.insert("hostNetwork".to_owned(), json!(true));
    }
    let secrets: Vec<Value> = spec
        .image_pull_secrets
        .into_iter()
        .map(|s| json!({"name": s.name}))
        .collect();
    put(&mut map, "imagePullSecrets", json!(secrets));
    put(&mut map, "hostname", json!(spec.hostname));
    put(&mut map, "subdomain", json!(spec.subdomain));
    put(&mut map, "schedulerName", json!(spec.scheduler_name));
    put(
        &mut map,
        "priorityClassName",
        json!(spec.priority_class_name),
    );
    Ok(json!({"metadata": meta_json(template.metadata), "spec": Value::Object(map)}))
}

/// A Job spec's JSON form; `path` names it in refusals.
fn job_spec_json(spec: JobSpec, path: &str) -> Result<Value, ApiError> {
    unread(
        is_set(&spec.pod_failure_policy),
        &format!("{path}.podFailurePolicy"),
    )?;
    let mut map = Map::new();
    put(&mut map, "parallelism", json!(spec.parallelism));
    put(&mut map, "completions", json!(spec.completions));
    put(
        &mut map,
        "activeDeadlineSeconds",
        json!(spec.active_deadline_seconds),
    );
    if let Some(selector) = spec.selector {
        map.insert(
            "selector".to_owned(),
            json!({"matchLabels": selector.match_labels}),
        );
    }
    put(&mut map, "manualSelector", json!(spec.manual_selector));
    put(&mut map, "backoffLimit", json!(spec.backoff_limit));
    put(
        &mut map,
        "ttlSecondsAfterFinished",
        json!(spec.ttl_seconds_after_finished),
    );
    put(&mut map, "completionMode", json!(spec.completion_mode));
    put(&mut map, "suspend", json!(spec.suspend));
    map.insert(
        "template".to_owned(),
        pod_template_json(
            spec.template.unwrap_or_default(),
            &format!("{path}.template"),
        )?,
    );
    Ok(Value::Object(map))
}

fn service_spec_json(spec: ServiceSpec) -> Value {
    let ports: Vec<Value> = spec
        .ports
        .into_iter()
        .map(|p| {
            let mut port = Map::new();
            put(&mut port, "name", json!(p.name));
            put(&mut port, "protocol", json!(p.protocol));
            port.insert("port".to_owned(), json!(p.port));
            if let Some(target) = p.target_port {
                let value = if target.r#type == 1 {
                    json!(target.str_val)
                } else {
                    json!(target.int_val)
                };
                if value != json!(0) {
                    port.insert("targetPort".to_owned(), value);
                }
            }
            if p.node_port != 0 {
                port.insert("nodePort".to_owned(), json!(p.node_port));
            }
            put(&mut port, "appProtocol", json!(p.app_protocol));
            Value::Object(port)
        })
        .collect();
    let mut map = Map::new();
    put(&mut map, "ports", json!(ports));
    put(&mut map, "selector", json!(spec.selector));
    put(&mut map, "clusterIP", json!(spec.cluster_ip));
    put(&mut map, "clusterIPs", json!(spec.cluster_ips));
    put(&mut map, "type", json!(spec.r#type));
    put(&mut map, "externalIPs", json!(spec.external_ips));
    put(&mut map, "sessionAffinity", json!(spec.session_affinity));
    put(&mut map, "externalName", json!(spec.external_name));
    put(
        &mut map,
        "externalTrafficPolicy",
        json!(spec.external_traffic_policy),
    );
    Value::Object(map)
}

fn decode<M: Message + Default>(raw: &[u8], kind: &str) -> Result<M, ApiError> {
    M::decode(raw).map_err(|e| {
        ApiError::bad_request(format!(
            "the protobuf {kind} in the body does not decode: {e}"
        ))
    })
}

/// The JSON form of a Kubernetes protobuf body.
pub(crate) fn to_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let envelope = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("the protobuf body does not start with k8s\\0"))?;
    let unknown = Unknown::decode(envelope).map_err(|e| {
        ApiError::bad_request(format!("the protobuf envelope does not decode: {e}"))
    })?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let raw = unknown.raw.as_slice();
    let kind = type_meta.kind.as_str();
    Ok(match kind {
        "ConfigMap" => {
            let cm: ConfigMap = decode(raw, kind)?;
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(cm.metadata)),
                    ("data", json!(cm.data)),
                    ("binaryData", base64_map(cm.binary_data)),
                    ("immutable", json!(cm.immutable)),
                ],
            )
        }
        "Secret" => {
            let secret: Secret = decode(raw, kind)?;
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(secret.metadata)),
                    ("data", base64_map(secret.data)),
                    ("stringData", json!(secret.string_data)),
                    ("type", json!(secret.r#type)),
                    ("immutable", json!(secret.immutable)),
                ],
            )
        }
        "Namespace" => {
            let ns: Namespace = decode(raw, kind)?;
            object(&type_meta, vec![("metadata", meta_json(ns.metadata))])
        }
        "ServiceAccount" => {
            let sa: ServiceAccount = decode(raw, kind)?;
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(sa.metadata)),
                    (
                        "automountServiceAccountToken",
                        json!(sa.automount_service_account_token),
                    ),
                ],
            )
        }
        "Deployment" => {
            let deployment: Deployment = decode(raw, kind)?;
            let spec = deployment.spec.unwrap_or_default();
            let mut spec_json = Map::new();
            put(&mut spec_json, "replicas", json!(spec.replicas));
            spec_json.insert(
                "selector".to_owned(),
                json!({"matchLabels": spec.selector.unwrap_or_default().match_labels}),
            );
            spec_json.insert(
                "template".to_owned(),
                pod_template_json(spec.template.unwrap_or_default(), "spec.template")?,
            );
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(deployment.metadata)),
                    ("spec", Value::Object(spec_json)),
                ],
            )
        }
        "Job" => {
            let job: Job = decode(raw, kind)?;
            let spec = job_spec_json(job.spec.unwrap_or_default(), "spec")?;
            object(
                &type_meta,
                vec![("metadata", meta_json(job.metadata)), ("spec", spec)],
            )
        }
        "CronJob" => {
            let cron: CronJob = decode(raw, kind)?;
            let spec = cron.spec.unwrap_or_default();
            let template = spec.job_template.unwrap_or_default();
            let mut spec_json = Map::new();
            put(&mut spec_json, "schedule", json!(spec.schedule));
            put(
                &mut spec_json,
                "startingDeadlineSeconds",
                json!(spec.starting_deadline_seconds),
            );
            put(
                &mut spec_json,
                "concurrencyPolicy",
                json!(spec.concurrency_policy),
            );
            put(&mut spec_json, "suspend", json!(spec.suspend));
            put(
                &mut spec_json,
                "successfulJobsHistoryLimit",
                json!(spec.successful_jobs_history_limit),
            );
            put(
                &mut spec_json,
                "failedJobsHistoryLimit",
                json!(spec.failed_jobs_history_limit),
            );
            put(&mut spec_json, "timeZone", json!(spec.time_zone));
            spec_json.insert(
                "jobTemplate".to_owned(),
                json!({
                    "metadata": meta_json(template.metadata),
                    "spec": job_spec_json(template.spec.unwrap_or_default(), "spec.jobTemplate.spec")?,
                }),
            );
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(cron.metadata)),
                    ("spec", Value::Object(spec_json)),
                ],
            )
        }
        "Service" => {
            let service: Service = decode(raw, kind)?;
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(service.metadata)),
                    ("spec", service_spec_json(service.spec.unwrap_or_default())),
                ],
            )
        }
        "ResourceQuota" => {
            let quota: ResourceQuota = decode(raw, kind)?;
            let spec = quota.spec.unwrap_or_default();
            unread(is_set(&spec.scope_selector), "spec.scopeSelector")?;
            let mut spec_json = Map::new();
            put(&mut spec_json, "hard", quantities(spec.hard));
            put(&mut spec_json, "scopes", json!(spec.scopes));
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(quota.metadata)),
                    ("spec", Value::Object(spec_json)),
                ],
            )
        }
        "CertificateSigningRequest" => {
            let csr: CertificateSigningRequest = decode(raw, kind)?;
            let spec = csr.spec.unwrap_or_default();
            let mut spec_json = Map::new();
            put(
                &mut spec_json,
                "request",
                json!(base64::engine::general_purpose::STANDARD.encode(&spec.request)),
            );
            put(&mut spec_json, "signerName", json!(spec.signer_name));
            put(&mut spec_json, "usages", json!(spec.usages));
            put(&mut spec_json, "username", json!(spec.username));
            put(&mut spec_json, "groups", json!(spec.groups));
            put(&mut spec_json, "expirationSeconds", json!(spec.expiration_seconds));
            let conditions: Vec<Value> = csr
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .map(|c| {
                    json!({"type": c.r#type, "status": c.status, "reason": c.reason, "message": c.message})
                })
                .collect();
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(csr.metadata)),
                    ("spec", Value::Object(spec_json)),
                    ("status", json!({"conditions": conditions})),
                ],
            )
        }
        "Role" | "ClusterRole" => {
            let role: Role = decode(raw, kind)?;
            let rules: Vec<Value> = role
                .rules
                .into_iter()
                .map(|r| {
                    let mut map = Map::new();
                    put(&mut map, "verbs", json!(r.verbs));
                    put(&mut map, "apiGroups", json!(r.api_groups));
                    put(&mut map, "resources", json!(r.resources));
                    put(&mut map, "resourceNames", json!(r.resource_names));
                    put(&mut map, "nonResourceURLs", json!(r.non_resource_urls));
                    Value::Object(map)
                })
                .collect();
            object(
                &type_meta,
                vec![("metadata", meta_json(role.metadata)), ("rules", json!(rules))],
            )
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let binding: RoleBinding = decode(raw, kind)?;
            let subjects: Vec<Value> = binding
                .subjects
                .into_iter()
                .map(|s| {
                    let mut map = Map::new();
                    put(&mut map, "kind", json!(s.kind));
                    put(&mut map, "apiGroup", json!(s.api_group));
                    put(&mut map, "name", json!(s.name));
                    put(&mut map, "namespace", json!(s.namespace));
                    Value::Object(map)
                })
                .collect();
            let role_ref = binding.role_ref.unwrap_or_default();
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(binding.metadata)),
                    ("subjects", json!(subjects)),
                    (
                        "roleRef",
                        json!({"apiGroup": role_ref.api_group, "kind": role_ref.kind, "name": role_ref.name}),
                    ),
                ],
            )
        }
        "SelfSubjectAccessReview" | "SubjectAccessReview" => {
            let review: AccessReview = decode(raw, kind)?;
            let spec = review.spec.unwrap_or_default();
            let mut spec_json = Map::new();
            if let Some(a) = spec.resource_attributes {
                spec_json.insert(
                    "resourceAttributes".to_owned(),
                    json!({"namespace": a.namespace, "verb": a.verb, "group": a.group,
                        "version": a.version, "resource": a.resource,
                        "subresource": a.subresource, "name": a.name}),
                );
            }
            if let Some(a) = spec.non_resource_attributes {
                spec_json.insert(
                    "nonResourceAttributes".to_owned(),
                    json!({"path": a.path, "verb": a.verb}),
                );
            }
            put(&mut spec_json, "user", json!(spec.user));
            put(&mut spec_json, "groups", json!(spec.groups));
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(review.metadata)),
                    ("spec", Value::Object(spec_json)),
                ],
            )
        }
        "SelfSubjectRulesReview" => {
            let review: RulesReview = decode(raw, kind)?;
            let namespace = review.spec.unwrap_or_default().namespace;
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(review.metadata)),
                    ("spec", json!({"namespace": namespace})),
                ],
            )
        }
        "Eviction" => {
            let eviction: Eviction = decode(raw, kind)?;
            let options = eviction.delete_options.unwrap_or_default();
            let mut options_json = Map::new();
            put(
                &mut options_json,
                "gracePeriodSeconds",
                json!(options.grace_period_seconds),
            );
            put(
                &mut options_json,
                "propagationPolicy",
                json!(options.propagation_policy),
            );
            put(&mut options_json, "dryRun", json!(options.dry_run));
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(eviction.metadata)),
                    ("deleteOptions", Value::Object(options_json)),
                ],
            )
        }
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "protobuf bodies are read only for ConfigMap, Secret, Namespace, ServiceAccount, Deployment, Job, CronJob, Service, ResourceQuota, CertificateSigningRequest, Role, ClusterRole, RoleBinding, ClusterRoleBinding, Eviction and the access reviews, not {other:?}: send application/json"
                ),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, api_version: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: api_version.into(),
                kind: kind.into(),
            }),
            raw,
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(unknown.encode_to_vec());
        bytes
    }

    #[test]
    fn a_protobuf_configmap_reads_as_its_json_form() {
        let cm = ConfigMap {
            metadata: Some(ObjectMeta {
                name: "c1".into(),
                namespace: "dev".into(),
                ..Default::default()
            }),
            data: [("a".to_owned(), "b".to_owned())].into(),
            binary_data: [("bin".to_owned(), vec![0, 1])].into(),
            immutable: None,
        };
        let value = to_json(&envelope("ConfigMap", "v1", cm.encode_to_vec())).unwrap();
        assert_eq!(value["kind"], "ConfigMap");
        assert_eq!(value["metadata"]["name"], "c1");
        assert_eq!(value["data"]["a"], "b");
        assert_eq!(value["binaryData"]["bin"], "AAE=");
        assert!(value.get("immutable").is_none());
    }

    #[test]
    fn an_access_review_keeps_its_attributes_and_other_kinds_are_refused() {
        let review = AccessReview {
            metadata: None,
            spec: Some(AccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: "default".into(),
                    verb: "create".into(),
                    resource: "pods".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let bytes = envelope(
            "SelfSubjectAccessReview",
            "authorization.k8s.io/v1",
            review.encode_to_vec(),
        );
        let value = to_json(&bytes).unwrap();
        assert_eq!(value["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(value["spec"]["resourceAttributes"]["resource"], "pods");
        let e = to_json(&envelope("Ingress", "networking.k8s.io/v1", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(to_json(b"not protobuf").is_err());
    }

    fn busybox(command: &[&str]) -> Container {
        Container {
            name: "c".into(),
            image: "busybox".into(),
            command: command.iter().map(|c| c.to_string()).collect(),
            resources: Some(ResourceRequirements {
                limits: BTreeMap::new(),
                requests: [(
                    "cpu".to_owned(),
                    Quantity {
                        string: "10m".into(),
                    },
                )]
                .into(),
            }),
            env: vec![EnvVar {
                name: "MODE".into(),
                value: "fast".into(),
                value_from: None,
            }],
            termination_message_policy: "File".into(),
            ..Default::default()
        }
    }

    fn template(containers: Vec<Container>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers,
                restart_policy: "Never".into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_protobuf_cron_job_reads_with_its_job_template() {
        let cron = CronJob {
            metadata: Some(ObjectMeta {
                name: "tick".into(),
                ..Default::default()
            }),
            spec: Some(CronJobSpec {
                schedule: "*/1 * * * *".into(),
                concurrency_policy: "Forbid".into(),
                job_template: Some(JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        name: "tick".into(),
                        ..Default::default()
                    }),
                    spec: Some(JobSpec {
                        completions: Some(2),
                        template: Some(template(vec![busybox(&["date"])])),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        };
        let value = to_json(&envelope("CronJob", "batch/v1", cron.encode_to_vec())).unwrap();
        assert_eq!(value["spec"]["schedule"], "*/1 * * * *");
        assert_eq!(value["spec"]["concurrencyPolicy"], "Forbid");
        let job = &value["spec"]["jobTemplate"]["spec"];
        assert_eq!(job["completions"], 2);
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["containers"][0]["command"], json!(["date"]));
        assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "10m");
        assert_eq!(
            pod["containers"][0]["env"][0],
            json!({"name": "MODE", "value": "fast"})
        );
        assert_eq!(pod["containers"][0]["terminationMessagePolicy"], "File");
        assert!(pod["containers"][0].get("tty").is_none());
    }

    #[test]
    fn a_template_with_what_is_not_read_is_refused_naming_the_field() {
        let mut mounted = busybox(&[]);
        mounted.volume_mounts = vec![b"\n\x04data".to_vec()];
        let job = Job {
            metadata: None,
            spec: Some(JobSpec {
                template: Some(template(vec![busybox(&[]), mounted])),
                ..Default::default()
            }),
        };
        let e = to_json(&envelope("Job", "batch/v1", job.encode_to_vec())).unwrap_err();
        assert_eq!(e.code, 415);
        let message = e.body["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains("spec.template.spec.containers[1].volumeMounts"),
            "{message}"
        );
        // An empty security context (what a JSON round trip of `{}` gives) is no setting.
        let mut plain = busybox(&[]);
        plain.security_context = Some(Vec::new());
        let job = Job {
            metadata: None,
            spec: Some(JobSpec {
                template: Some(template(vec![plain])),
                ..Default::default()
            }),
        };
        assert!(to_json(&envelope("Job", "batch/v1", job.encode_to_vec())).is_ok());
    }

    #[test]
    fn a_protobuf_service_and_quota_read_as_their_json_forms() {
        let service = Service {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                ..Default::default()
            }),
            spec: Some(ServiceSpec {
                r#type: "NodePort".into(),
                ports: vec![
                    ServicePort {
                        name: "80-8080".into(),
                        protocol: "TCP".into(),
                        port: 80,
                        target_port: Some(IntOrString {
                            r#type: 0,
                            int_val: 8080,
                            str_val: String::new(),
                        }),
                        ..Default::default()
                    },
                    ServicePort {
                        name: "metrics".into(),
                        port: 9090,
                        target_port: Some(IntOrString {
                            r#type: 1,
                            int_val: 0,
                            str_val: "metrics".into(),
                        }),
                        ..Default::default()
                    },
                ],
                selector: [("app".to_owned(), "web".to_owned())].into(),
                ..Default::default()
            }),
        };
        let value = to_json(&envelope("Service", "v1", service.encode_to_vec())).unwrap();
        assert_eq!(value["spec"]["type"], "NodePort");
        assert_eq!(value["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(value["spec"]["ports"][1]["targetPort"], "metrics");
        assert_eq!(value["spec"]["selector"]["app"], "web");
        assert!(value["spec"]["ports"][0].get("nodePort").is_none());

        let quota = ResourceQuota {
            metadata: None,
            spec: Some(ResourceQuotaSpec {
                hard: [("pods".to_owned(), Quantity { string: "5".into() })].into(),
                scopes: vec!["NotTerminating".into()],
                scope_selector: None,
            }),
        };
        let value = to_json(&envelope("ResourceQuota", "v1", quota.encode_to_vec())).unwrap();
        assert_eq!(value["spec"]["hard"]["pods"], "5");
        assert_eq!(value["spec"]["scopes"], json!(["NotTerminating"]));
    }
}
