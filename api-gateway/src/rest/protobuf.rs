//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), for the
//! few kinds kubectl ≥ 1.32 sends that way from its typed clients (`create configmap`,
//! `create secret`, `create namespace`, `create serviceaccount`, `create role`,
//! `create rolebinding` and their cluster forms, `create deployment`, `certificate
//! approve`, `auth can-i`, `drain`'s evictions): the `k8s\0` envelope (`runtime.Unknown`) and those messages with
//! Kubernetes' own field numbers, turned into the JSON the handlers read.
//!
//! Owns only this decoding. Fields outside these messages are dropped by the decoder
//! (none of these commands sends them); any other kind is refused with 415, naming the
//! kinds read, so the caller can send JSON instead. Answers are always JSON (every
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
    #[prost(string, repeated, tag = "14")]
    finalizers: Vec<String>,
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
    #[prost(int32, tag = "3")]
    container_port: i32,
    #[prost(string, tag = "4")]
    protocol: String,
}

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
    #[prost(message, repeated, tag = "6")]
    ports: Vec<ContainerPort>,
}

#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
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
            let template = spec.template.unwrap_or_default();
            let containers: Vec<Value> = template
                .spec
                .unwrap_or_default()
                .containers
                .into_iter()
                .map(|c| {
                    let mut map = Map::new();
                    put(&mut map, "name", json!(c.name));
                    put(&mut map, "image", json!(c.image));
                    put(&mut map, "command", json!(c.command));
                    put(&mut map, "args", json!(c.args));
                    let ports: Vec<Value> = c
                        .ports
                        .into_iter()
                        .map(|p| {
                            let mut port = Map::new();
                            put(&mut port, "name", json!(p.name));
                            port.insert("containerPort".to_owned(), json!(p.container_port));
                            put(&mut port, "protocol", json!(p.protocol));
                            Value::Object(port)
                        })
                        .collect();
                    put(&mut map, "ports", json!(ports));
                    Value::Object(map)
                })
                .collect();
            let mut spec_json = Map::new();
            put(&mut spec_json, "replicas", json!(spec.replicas));
            spec_json.insert(
                "selector".to_owned(),
                json!({"matchLabels": spec.selector.unwrap_or_default().match_labels}),
            );
            spec_json.insert(
                "template".to_owned(),
                json!({"metadata": meta_json(template.metadata), "spec": {"containers": containers}}),
            );
            object(
                &type_meta,
                vec![
                    ("metadata", meta_json(deployment.metadata)),
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
                    "protobuf bodies are read only for ConfigMap, Secret, Namespace, ServiceAccount, Deployment, CertificateSigningRequest, Role, ClusterRole, RoleBinding, ClusterRoleBinding, Eviction and the access reviews, not {other:?}: send application/json"
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
        let e = to_json(&envelope("CronJob", "batch/v1", vec![])).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(to_json(b"not protobuf").is_err());
    }
}
