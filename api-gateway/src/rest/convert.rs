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

/// The object a request body holds, as a `kind` at the URL's `namespace` (see
/// [`object_of`]). A JSON body is read straight into the typed object, with no JSON tree
/// in between; a body that does not read so (or YAML, or protobuf) goes through
/// [`body_value`] and [`object_of`], whose errors name what is wrong.
pub(crate) fn object_of_body(
    kind: Kind,
    bytes: &[u8],
    content_type: &str,
    namespace: Option<&str>,
) -> Result<Object, ApiError> {
    let json = content_type.is_empty() || content_type.contains("json");
    if json {
        if let Ok(object) = Object::from_json_slice(kind, bytes) {
            return checked(kind, object, namespace);
        }
    }
    object_of(kind, body_value(bytes, content_type)?, namespace)
}

/// The object a body holds, as a `kind` at the URL's `namespace`: its `apiVersion` and
/// `kind` (when given) must be the ones served, its namespace (when given) the URL's.
pub(crate) fn object_of(
    kind: Kind,
    value: Value,
    namespace: Option<&str>,
) -> Result<Object, ApiError> {
    let info = kind.info();
    let Some(map) = value.as_object() else {
        return Err(ApiError::bad_request(
            "the request body is not a JSON object",
        ));
    };
    // The type is checked before the fields: a body sent to the wrong resource is told
    // so, not which of its fields that resource lacks.
    let sent = |field: &str| map.get(field).and_then(Value::as_str).unwrap_or("");
    type_checked(kind, sent("apiVersion"), sent("kind"))?;
    let object = Object::from_json_value(kind, value).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {e}",
            info.name, info.version, info.name
        ))
    })?;
    checked(kind, object, namespace)
}

/// Whether a sent `apiVersion` and `kind` (empty when absent) are the ones `kind` is served as.
fn type_checked(kind: Kind, api_version: &str, sent_kind: &str) -> Result<(), ApiError> {
    let info = kind.info();
    let served = info.api_version();
    let mismatch = |what: &str, got: &str| {
        ApiError::bad_request(format!(
            "the {what} of the object ({got}) does not match the resource it is sent to ({} in {served})",
            info.name
        ))
    };
    if !api_version.is_empty() && api_version != served {
        return Err(mismatch("apiVersion", api_version));
    }
    if !sent_kind.is_empty() && sent_kind != info.name {
        return Err(mismatch("kind", sent_kind));
    }
    Ok(())
}

/// `object` with its `apiVersion`, `kind` and namespace checked against the URL's and set.
fn checked(kind: Kind, mut object: Object, namespace: Option<&str>) -> Result<Object, ApiError> {
    let info = kind.info();
    let (api_version, sent_kind) = object.type_meta();
    type_checked(kind, api_version, sent_kind)?;
    object.set_type_meta();
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

/// An object from the service as a JSON answer, written straight from the typed object
/// (no JSON tree in between).
pub(crate) fn object_response(
    code: u16,
    typed: TypedObject,
) -> Result<http::Response<Body>, ApiError> {
    let mut object =
        Object::try_from(typed).map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    object.set_type_meta();
    let mut bytes = Vec::with_capacity(1024);
    object
        .write_json(&mut bytes)
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    Ok(response(code, "application/json", full(bytes)))
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

/// Items encoded per body chunk of a streamed list.
const LIST_CHUNK: usize = 256;

/// A list answer's body, streamed: the same document as `list_json`, with each chunk of
/// items decoded and encoded as the body is sent, so a large list never exists as a JSON
/// tree nor whole as text. An item that cannot be decoded ends the body early (the client
/// sees a truncated document, never a wrong one) and is logged.
pub(crate) fn list_body(
    kind: Kind,
    items: Vec<TypedObject>,
    resource_version: &str,
    continue_token: &str,
    remaining: i64,
) -> Body {
    let mut head = list_json(
        kind,
        Vec::new(),
        resource_version,
        continue_token,
        remaining,
    );
    if let Some(map) = head.as_object_mut() {
        map.remove("items");
    }
    let mut opening = serde_json::to_vec(&head).unwrap_or_else(|_| b"{".to_vec());
    // `{...}` becomes `{...,"items":[`.
    opening.pop();
    opening.extend_from_slice(b",\"items\":[");
    let mut items = items.into_iter().peekable();
    let mut first = true;
    let mut opened = false;
    let mut closed = false;
    let chunks = futures::stream::poll_fn(move |_| {
        if closed {
            return std::task::Poll::Ready(None);
        }
        let mut out = if opened {
            Vec::new()
        } else {
            opened = true;
            std::mem::take(&mut opening)
        };
        for item in items.by_ref().take(LIST_CHUNK) {
            let mut object = match Object::try_from(item) {
                Ok(object) => object,
                Err(e) => {
                    tracing::error!(%kind, error = %e, "a stored item could not be decoded for a list");
                    closed = true;
                    return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
                        Bytes::from(out),
                    ))));
                }
            };
            object.set_type_meta();
            if !first {
                out.push(b',');
            }
            first = false;
            if let Err(e) = object.write_json(&mut out) {
                tracing::error!(%kind, error = %e, "an item could not be encoded for a list");
                closed = true;
                return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(
                    out,
                )))));
            }
        }
        if items.peek().is_none() {
            out.extend_from_slice(b"]}");
            closed = true;
        }
        std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(hyper::body::Frame::data(
            Bytes::from(out),
        ))))
    });
    http_body_util::StreamBody::new(chunks).boxed_unsync()
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
        let mut response = json_response(self.code, &self.body);
        // 429's Retry-After, which clients wait before sending the request again.
        if let Some(seconds) = self.body["details"]["retryAfterSeconds"].as_u64() {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collected(body: Body) -> (usize, Vec<u8>) {
        let mut frames = 0;
        let mut bytes = Vec::new();
        let mut body = body;
        while let Some(frame) = body.frame().await {
            frames += 1;
            bytes.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        (frames, bytes)
    }

    #[tokio::test]
    async fn a_streamed_list_is_the_same_document_as_the_whole_one() {
        let pods: Vec<Object> = (0..LIST_CHUNK * 2 + 3)
            .map(|i| {
                let pod = json!({"metadata": {"name": format!("p{i}"), "namespace": "dev"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
                object_of(Kind::Pod, pod, Some("dev")).unwrap()
            })
            .collect();
        let typed: Vec<TypedObject> = pods.iter().cloned().map(TypedObject::from).collect();
        let whole = list_json(
            Kind::Pod,
            typed
                .iter()
                .cloned()
                .map(|t| object_json(t).unwrap())
                .collect(),
            "42",
            "next",
            7,
        );
        let (frames, bytes) = collected(list_body(Kind::Pod, typed, "42", "next", 7)).await;
        assert_eq!(frames, 3, "one frame per {LIST_CHUNK} items");
        let streamed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(streamed, whole);
        // An empty list is a whole document too.
        let (_, bytes) = collected(list_body(Kind::Pod, Vec::new(), "42", "", 0)).await;
        let empty: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(empty, list_json(Kind::Pod, Vec::new(), "42", "", 0));
    }

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
