//! Errors as `metav1.Status`: the HTTP code, the reason kubectl switches on (NotFound,
//! AlreadyExists, Conflict, Invalid, Forbidden …), the message it prints after
//! `Error from server (<Reason>):`, and `details` (name, kind, field causes).
//!
//! Owns the mapping from the gRPC service's statuses (the registry's reasons, `status`)
//! to the Kubernetes wire form. It decides nothing: the code was chosen by the service.

use serde_json::{json, Value};
use tonic::{Code, Status};

use crate::managed_fields::Conflict;

/// What the failed request was about, for the message and `details`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    /// The plural resource (`pods`), empty when unknown.
    pub(crate) resource: String,
    /// The API group.
    pub(crate) group: String,
    /// The object's name, empty for a collection.
    pub(crate) name: String,
    /// The kind (`Pod`), which an Invalid status names, empty when unknown.
    pub(crate) kind: String,
}

/// A REST error: an HTTP code and the Status document.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// The HTTP status code.
    pub(crate) code: u16,
    /// The `metav1.Status` body.
    pub(crate) body: Value,
}

impl ApiError {
    /// An error with `reason` and `message` and no details.
    pub(crate) fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            body: status_body(code, reason, &message.into(), None),
        }
    }

    /// 409 Conflict of a server-side apply: one cause per field another manager owns,
    /// which kubectl lists with its advice on `--force-conflicts`.
    pub(crate) fn apply_conflicts(
        conflicts: &[Conflict],
        message: String,
        subject: &Subject,
    ) -> ApiError {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|c| json!({"type": "FieldManagerConflict", "message": c.message(), "field": c.field}))
            .collect();
        let mut details = json!({"causes": causes});
        if !subject.name.is_empty() {
            details["name"] = json!(subject.name);
        }
        if !subject.group.is_empty() {
            details["group"] = json!(subject.group);
        }
        if !subject.resource.is_empty() {
            details["kind"] = json!(subject.resource);
        }
        ApiError {
            code: 409,
            body: status_body(409, "Conflict", &message, Some(details)),
        }
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 NotFound for a path the server does not serve.
    pub(crate) fn no_such_path() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405 MethodNotAllowed.
    pub(crate) fn method_not_allowed(what: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    /// The error of a gRPC `status` about `subject`.
    pub(crate) fn from_status(status: &Status, subject: &Subject) -> ApiError {
        let message = status.message();
        let quoted = format!("{} {:?}", subject.resource, subject.name);
        // The registry's own "<Kind> "<ns/name>" not found" is about the subject itself and
        // is told kubectl's way; other messages (a container's previous log …) stay.
        let about_subject = !subject.name.is_empty()
            && !subject.resource.is_empty()
            && message.starts_with(&format!("{} \"", subject.kind));
        let (code, reason, text) = match status.code() {
            Code::NotFound if about_subject => (404, "NotFound", format!("{quoted} not found")),
            Code::NotFound => (404, "NotFound", message.to_owned()),
            Code::AlreadyExists if about_subject => {
                (409, "AlreadyExists", format!("{quoted} already exists"))
            }
            Code::AlreadyExists => (409, "AlreadyExists", message.to_owned()),
            Code::Aborted => (409, "Conflict", conflict_message(message, &quoted)),
            Code::InvalidArgument if message.contains(" is invalid: ") => {
                (422, "Invalid", message.to_owned())
            }
            Code::InvalidArgument | Code::FailedPrecondition => {
                (400, "BadRequest", message.to_owned())
            }
            Code::PermissionDenied => {
                let text = if message.starts_with("User ") && !subject.resource.is_empty() {
                    let on = if subject.name.is_empty() {
                        subject.resource.clone()
                    } else {
                        quoted.clone()
                    };
                    format!("{on} is forbidden: {message}")
                } else {
                    message.to_owned()
                };
                (403, "Forbidden", text)
            }
            Code::Unauthenticated => (401, "Unauthorized", message.to_owned()),
            Code::OutOfRange => (410, "Expired", message.to_owned()),
            // The leader's disk is below its reserve: HTTP's Insufficient Storage.
            Code::ResourceExhausted
                if status
                    .metadata()
                    .get(rafter_proto::well_known::NO_SPACE_METADATA)
                    .is_some() =>
            {
                (507, "InternalError", message.to_owned())
            }
            // No seat for a mutating request: 429, with the seconds to wait.
            Code::ResourceExhausted if retry_after(status).is_some() => {
                (429, "TooManyRequests", message.to_owned())
            }
            Code::ResourceExhausted => (413, "RequestEntityTooLarge", message.to_owned()),
            Code::Unavailable => (503, "ServiceUnavailable", message.to_owned()),
            Code::DeadlineExceeded => (504, "Timeout", message.to_owned()),
            Code::Unimplemented => (405, "MethodNotAllowed", message.to_owned()),
            _ => (500, "InternalError", message.to_owned()),
        };
        let mut details = json!({});
        if !subject.name.is_empty() {
            details["name"] = json!(subject.name);
        }
        if !subject.group.is_empty() {
            details["group"] = json!(subject.group);
        }
        if !subject.resource.is_empty() {
            details["kind"] = json!(subject.resource);
        }
        if let (429, Some(seconds)) = (code, retry_after(status)) {
            details["retryAfterSeconds"] = json!(seconds);
        }
        if reason == "Invalid" {
            if !subject.kind.is_empty() {
                details["kind"] = json!(subject.kind);
            }
            details["causes"] = Value::Array(causes(message));
        }
        let details = (details.as_object().is_some_and(|m| !m.is_empty())).then_some(details);
        ApiError {
            code,
            body: status_body(code, reason, &text, details),
        }
    }
}

/// The seconds a throttled request is told to wait, from its status's marker.
fn retry_after(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(rafter_proto::well_known::TOO_MANY_REQUESTS_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A Status document.
fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    body
}

/// A successful Status (a delete or a subresource that answers no object).
pub(crate) fn success(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// Kubernetes' conflict message (`Operation cannot be fulfilled on pods "x": …`) from the
/// registry's (`… on Pod "ns/x": …`).
fn conflict_message(message: &str, quoted: &str) -> String {
    const PREFIX: &str = "Operation cannot be fulfilled on ";
    match message
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once("\": "))
    {
        Some((_, detail)) if !quoted.starts_with(' ') => format!("{PREFIX}{quoted}: {detail}"),
        _ => message.to_owned(),
    }
}

/// The field causes of an Invalid message (`Kind "n" is invalid: path: why; path: why`).
fn causes(message: &str) -> Vec<Value> {
    let Some((_, list)) = message.split_once(" is invalid: ") else {
        return Vec::new();
    };
    list.split("; ")
        .map(|item| match item.split_once(": ") {
            Some((field, why)) => json!({
                "reason": "FieldValueInvalid",
                "message": why,
                "field": field,
            }),
            None => json!({"reason": "FieldValueInvalid", "message": item}),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(name: &str) -> Subject {
        Subject {
            resource: "pods".into(),
            group: String::new(),
            name: name.into(),
            kind: "Pod".into(),
        }
    }

    #[test]
    fn registry_reasons_become_the_messages_kubectl_prints() {
        let e = ApiError::from_status(
            &Status::not_found("Pod \"default/x\" not found"),
            &pods("x"),
        );
        assert_eq!((e.code, &e.body["reason"]), (404, &json!("NotFound")));
        assert_eq!(e.body["message"], "pods \"x\" not found");
        let e = ApiError::from_status(
            &Status::already_exists("Pod \"default/x\" already exists"),
            &pods("x"),
        );
        assert_eq!(e.body["message"], "pods \"x\" already exists");
        let previous = ApiError::from_status(
            &Status::not_found("container c has no previous instance"),
            &pods("x"),
        );
        assert_eq!(previous.code, 404);
        assert_eq!(
            previous.body["message"],
            "container c has no previous instance"
        );
        let e = ApiError::from_status(
            &Status::aborted(
                "Operation cannot be fulfilled on Pod \"default/x\": the object has been modified",
            ),
            &pods("x"),
        );
        assert_eq!(e.code, 409);
        assert_eq!(
            e.body["message"],
            "Operation cannot be fulfilled on pods \"x\": the object has been modified"
        );
        let e = ApiError::from_status(
            &Status::permission_denied("User \"bob\" cannot get resource \"pods\" in API group \"\" in the namespace \"default\""),
            &pods("x"),
        );
        assert_eq!(e.code, 403);
        assert!(e.body["message"]
            .as_str()
            .unwrap()
            .starts_with("pods \"x\" is forbidden: User \"bob\""));
    }

    #[test]
    fn a_throttled_write_is_429_with_the_seconds_to_wait_in_body_and_header() {
        let refusal = crate::flow_control::Throttled::QueueFull {
            user: "jane".into(),
            waiting: 512,
        };
        let e = ApiError::from_status(&crate::status::throttled(&refusal), &pods("x"));
        assert_eq!(
            (e.code, &e.body["reason"]),
            (429, &json!("TooManyRequests"))
        );
        assert_eq!(e.body["details"]["retryAfterSeconds"], 1);
        assert!(e.body["message"].as_str().unwrap().contains("\"jane\""));
        let response = e.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        // Too large stays 413, with no Retry-After.
        let large = ApiError::from_status(&Status::resource_exhausted("too big"), &pods("x"));
        assert_eq!(large.code, 413);
        assert!(large
            .into_response()
            .headers()
            .get(http::header::RETRY_AFTER)
            .is_none());
    }

    #[test]
    fn invalid_objects_list_each_field_as_a_cause() {
        let e = ApiError::from_status(
            &Status::invalid_argument(
                "Pod \"x\" is invalid: spec.containers: Required value; metadata.name: too long",
            ),
            &pods("x"),
        );
        assert_eq!((e.code, &e.body["reason"]), (422, &json!("Invalid")));
        let causes = e.body["details"]["causes"].as_array().unwrap();
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[0]["field"], "spec.containers");
        assert_eq!(causes[1]["message"], "too long");
        assert_eq!(e.body["details"]["kind"], "Pod");
        let bad = ApiError::from_status(&Status::invalid_argument("labelSelector: x"), &pods(""));
        assert_eq!((bad.code, &bad.body["reason"]), (400, &json!("BadRequest")));
    }
}
