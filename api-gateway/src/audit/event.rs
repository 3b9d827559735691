//! [`Event`]: one audit record, serialised as Kubernetes' `audit.k8s.io/v1` Event.

use serde::Serialize;

/// The stage of a request an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// The request was received, before it is handled.
    RequestReceived,
    /// The response's headers are sent; its body (a watch's events, a log stream) follows.
    ResponseStarted,
    /// The response is complete.
    ResponseComplete,
    /// The request failed before a response (a panic, a broken stream).
    Panic,
}

/// Who made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserRef {
    /// The user name.
    pub username: String,
    /// The groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The object a request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The plural resource (`secrets`).
    pub resource: String,
    /// The namespace, empty for cluster-scoped objects.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The name, empty for lists and creates with generateName.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The API group, empty for the core group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// The subresource (`status`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The response status of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseStatus {
    /// The HTTP-style code (200, 201, 403, 404, 409 ...).
    pub code: u16,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Always `audit.k8s.io/v1`.
    pub api_version: &'static str,
    /// Always `Event`.
    pub kind: &'static str,
    /// `Metadata` or `Request`.
    pub level: super::Level,
    /// Shared by every stage of one request.
    #[serde(rename = "auditID")]
    pub audit_id: String,
    /// The stage recorded.
    pub stage: Stage,
    /// The request path: the gRPC method (`/rafter.api.v1.Resources/Create`).
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    /// The verb (`create`, `update`, `delete`, `get`, `list`, `watch` ...).
    pub verb: String,
    /// Who.
    pub user: UserRef,
    /// Whom the caller acted as (`--as`), when it impersonated someone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserRef>,
    /// From where.
    #[serde(rename = "sourceIPs")]
    pub source_ips: Vec<String>,
    /// Which object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    /// The response code, from the ResponseComplete stage on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// The request body, at level Request only (never for Secrets or ConfigMaps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<serde_json::Value>,
    /// When the request was received (RFC 3339, microseconds).
    pub request_received_timestamp: String,
    /// When this stage was reached.
    pub stage_timestamp: String,
}

impl Event {
    /// The event of `stage` at `level`; the body is kept only at level Request.
    #[allow(clippy::too_many_arguments)] // reason: one field each of Kubernetes' Event
    pub fn new(
        level: super::Level,
        audit_id: String,
        stage: Stage,
        verb: &str,
        user: UserRef,
        source_ip: Option<String>,
        object_ref: Option<ObjectRef>,
        received: String,
    ) -> Event {
        Event {
            api_version: "audit.k8s.io/v1",
            kind: "Event",
            level,
            audit_id,
            stage,
            request_uri: String::new(),
            verb: verb.to_owned(),
            user,
            impersonated_user: None,
            source_ips: source_ip.into_iter().collect(),
            object_ref,
            response_status: None,
            request_object: None,
            stage_timestamp: received.clone(),
            request_received_timestamp: received,
        }
    }
}
