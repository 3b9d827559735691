//! Conversion between the HTTP side and the typed side: query parameters, request bodies
//! (JSON or YAML) into typed objects with their `apiVersion`/`kind` and namespace checked
//! against the URL, objects and Lists into Kubernetes JSON, answers as HTTP responses, and
//! the typed request the gRPC service takes, carrying the caller's credentials.
//!
//! Owns the wire shapes only; it calls nothing.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rafter_proto::api::TypedObject;
use rafter_proto::{Kind, Object};
use serde_json::{json, Value};
use tonic::metadata::MetadataMap;

use super::errors::{ApiError, Subject};
use super::{Body, Peer};
use crate::audit::CallPath;

/// The headers a caller's identity travels in, passed on to the service as metadata.
const IDENTITY_HEADERS: &[&str] = &["authorization", "impersonate-user", "impersonate-group"];

/// What the handlers know about one HTTP request.
pub(crate) struct Call {
    /// The method.
    pub(crate) method: http::Method,
    /// The path.
    pub(crate) path: String,
    /// The query parameters (the first value of each).
    pub(crate) query: HashMap<String, String>,
    /// The request headers.
    pub(crate) headers: http::HeaderMap,
    /// The connection.
    pub(crate) peer: Peer,
}

impl Call {
    /// The request's parts, read.
    pub(crate) fn new(parts: &http::request::Parts, peer: Peer) -> Call {
        let query = parts
            .uri
            .query()
            .map(|q| {
                let mut map = HashMap::new();
                for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                    map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
                }
                map
            })
            .unwrap_or_default();
        Call {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query,
            headers: parts.headers.clone(),
            peer,
        }
    }

    /// A query parameter, empty when absent.
    pub(crate) fn param(&self, name: &str) -> &str {
        self.query.get(name).map_or("", String::as_str)
    }

    /// Whether a boolean query parameter is set (`true` or `1`).
    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), "true" | "1")
    }

    /// An integer query parameter, `None` when absent; 400 when it is no integer.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.query.get(name) {
            None => Ok(None),
            Some(text) if text.is_empty() => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{name}={text:?} is not an integer"))),
        }
    }

    /// Whether the call is a dry run (`dryRun=All`).
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.param("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => Err(ApiError::bad_request(format!(
                "dryRun={other:?} is not supported; use dryRun=All"
            ))),
        }
    }

    /// The field manager a write is recorded for: `fieldManager`, else what the
    /// User-Agent names before its first `/` (`kubectl`), as Kubernetes defaults it.
    pub(crate) fn field_manager(&self) -> String {
        let named = self.param("fieldManager");
        if !named.is_empty() {
            return named.to_owned();
        }
        let agent = self.header("user-agent");
        let agent = agent.split('/').next().unwrap_or("").trim();
        if agent.is_empty() {
            "unknown".to_owned()
        } else {
            agent.chars().take(128).collect()
        }
    }

    /// A header's value, empty when absent or not text.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The media type of the body, without parameters.
    pub(crate) fn content_type(&self) -> &str {
        self.header("content-type")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
    }

    /// The typed request the service takes: `message` with the caller's credential
    /// headers as metadata and the connection (its TLS certificates) and path as the
    /// extensions tonic would give it.
    pub(crate) fn grpc<T>(&self, message: T) -> tonic::Request<T> {
        let mut headers = http::HeaderMap::new();
        for name in IDENTITY_HEADERS {
            for value in self.headers.get_all(*name) {
                headers.append(*name, value.clone());
            }
        }
        let mut extensions = http::Extensions::new();
        self.peer.insert_into(&mut extensions);
        extensions.insert(CallPath(self.path.clone()));
        tonic::Request::from_parts(MetadataMap::from_headers(headers), extensions, message)
    }
}

/// Reads a body of at most `limit` bytes.
pub(crate) async fn read_body(
    body: hyper::body::Incoming,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// A JSON, YAML or (for a few kinds, `protobuf`) Kubernetes protobuf body as a JSON value.
pub(crate) fn body_value(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::to_json(bytes);
    }
    let yaml = content_type.contains("yaml");
    let parsed = if yaml {
        serde_yaml::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("the request body is not valid: {e}")))
}

/// The object a body holds, as a `kind` at the URL's `namespace`: its `apiVersion` and
/// `kind` (when given) must be the ones served, its namespace (when given) the URL's.
pub(crate) fn object_of(
    kind: Kind,
    mut value: Value,
    namespace: Option<&str>,
) -> Result<Object, ApiError> {
    let info = kind.info();
    let served = info.api_version();
    let mismatch = |what: &str, got: &str| {
        ApiError::bad_request(format!(
            "the {what} of the object ({got}) does not match the resource it is sent to ({} in {served})",
            info.name
        ))
    };
    if let Some(map) = value.as_object_mut() {
        match map.get("apiVersion").and_then(Value::as_str) {
            Some(v) if !v.is_empty() && v != served => return Err(mismatch("apiVersion", v)),
            _ => {}
        }
        match map.get("kind").and_then(Value::as_str) {
            Some(k) if !k.is_empty() && k != info.name => return Err(mismatch("kind", k)),
            _ => {}
        }
        map.insert("apiVersion".to_owned(), json!(served));
        map.insert("kind".to_owned(), json!(info.name));
    } else {
        return Err(ApiError::bad_request(
            "the request body is not a JSON object",
        ));
    }
    let mut object = Object::from_json_value(kind, value).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {e}",
            info.name, info.version, info.name
        ))
    })?;
    if let Some(namespace) = namespace.filter(|_| info.namespaced) {
        let meta = object.metadata_mut();
        if meta.namespace.is_empty() {
            meta.namespace = namespace.to_owned();
        } else if meta.namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(object)
}

/// An object from the service, in the Kubernetes JSON shape.
pub(crate) fn object_json(typed: TypedObject) -> Result<Value, ApiError> {
    let mut object =
        Object::try_from(typed).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    object.set_type_meta();
    object
        .to_json_value()
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))
}

/// A list answer: `<Kind>List` with its metadata.
pub(crate) fn list_json(
    kind: Kind,
    items: Vec<Value>,
    resource_version: &str,
    continue_token: &str,
    remaining: i64,
) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if !continue_token.is_empty() {
        metadata["continue"] = json!(continue_token);
        if remaining > 0 {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": kind.info().api_version(),
        "metadata": metadata,
        "items": items,
    })
}

/// What an error is about, from the resource path.
pub(crate) fn subject(kind: Kind, name: Option<&str>) -> Subject {
    Subject {
        resource: kind.info().plural.to_owned(),
        group: kind.info().group.to_owned(),
        name: name.unwrap_or_default().to_owned(),
        kind: kind.name().to_owned(),
    }
}

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON answer.
pub(crate) fn json_response(code: u16, value: &Value) -> http::Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    response(code, "application/json", full(bytes))
}

/// An answer with a body of `content_type`.
pub(crate) fn response(code: u16, content_type: &str, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

impl ApiError {
    /// The error as an HTTP answer.
    pub(crate) fn into_response(self) -> http::Response<Body> {
        json_response(self.code, &self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_takes_the_url_namespace_and_must_not_contradict_it() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let object = object_of(Kind::Pod, pod.clone(), Some("dev")).unwrap();
        assert_eq!(object.metadata().namespace, "dev");
        let mut elsewhere = pod.clone();
        elsewhere["metadata"]["namespace"] = json!("prod");
        let e = object_of(Kind::Pod, elsewhere, Some("dev")).unwrap_err();
        assert_eq!(e.code, 400);
        let e = object_of(Kind::Deployment, pod, Some("dev")).unwrap_err();
        assert!(e.body["message"].as_str().unwrap().contains("apiVersion"));
    }

    #[test]
    fn unknown_fields_are_refused_naming_the_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containerz": []}});
        let e = object_of(Kind::Pod, pod, Some("dev")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.body["message"].as_str().unwrap().contains("containerz"),
            "{}",
            e.body
        );
    }

    #[test]
    fn lists_carry_their_kind_and_resource_version() {
        let list = list_json(Kind::Pod, vec![], "42", "", 0);
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["metadata"]["resourceVersion"], "42");
        let paged = list_json(Kind::Deployment, vec![], "7", "tok", 3);
        assert_eq!(paged["apiVersion"], "apps/v1");
        assert_eq!(paged["metadata"]["continue"], "tok");
        assert_eq!(paged["metadata"]["remainingItemCount"], 3);
    }
}
