//! Watch answers: the service's watch stream as newline-delimited JSON events
//! (`{"type":"ADDED","object":{…}}`), BOOKMARKs as an object carrying only
//! `metadata.resourceVersion`, an error as an `ERROR` event holding a `metav1.Status`, and
//! the end of the stream after `timeoutSeconds`.
//!
//! Owns the event framing only; which events exist is the service's.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rafter_proto::api;
use rafter_proto::Kind;
use serde_json::{json, Value};

use super::convert::object_json;
use super::errors::{ApiError, Subject};
use super::Body;

/// The service's watch stream.
pub(crate) type Events = Pin<Box<dyn Stream<Item = Result<api::WatchEvent, tonic::Status>> + Send>>;

/// How an event's object is shown (as itself, or as a Table row).
pub(crate) type Render = Box<dyn Fn(Value) -> Value + Send>;

/// The wire name of an event type.
fn type_name(event_type: i32) -> &'static str {
    match api::EventType::try_from(event_type) {
        Ok(api::EventType::Added) => "ADDED",
        Ok(api::EventType::Modified) => "MODIFIED",
        Ok(api::EventType::Deleted) => "DELETED",
        Ok(api::EventType::Bookmark) => "BOOKMARK",
        Err(_) => "ERROR",
    }
}

/// One event line (with its newline).
fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// One event of `kind` as its JSON line.
pub(crate) fn event_line(kind: Kind, event: api::WatchEvent, render: &Render) -> Bytes {
    let event_type = type_name(event.r#type);
    let object = match event.object {
        Some(object) => match object_json(object) {
            Ok(value) => render(value),
            Err(e) => return line(&json!({"type": "ERROR", "object": e.body})),
        },
        // A bookmark carries only the revision it stands for.
        None => json!({
            "kind": kind.name(),
            "apiVersion": kind.info().api_version(),
            "metadata": {"resourceVersion": event.resource_version},
        }),
    };
    line(&json!({"type": event_type, "object": object}))
}

/// The watch answer's body: every event as a line until the stream ends, fails (an
/// ERROR event) or `timeout` passes.
pub(crate) fn body(
    kind: Kind,
    events: Events,
    render: Render,
    timeout: Option<Duration>,
    subject: Subject,
) -> Body {
    let stream = async_stream::stream! {
        let mut events = events;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, events.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => events.next().await,
            };
            match next {
                None => break,
                Some(Ok(event)) => yield Ok::<_, std::io::Error>(Frame::data(event_line(kind, event, &render))),
                Some(Err(status)) => {
                    let error = ApiError::from_status(&status, &subject);
                    yield Ok(Frame::data(line(&json!({"type": "ERROR", "object": error.body}))));
                    break;
                }
            }
        }
    };
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1;

    #[test]
    fn events_are_typed_lines_and_bookmarks_carry_only_the_revision() {
        let pod = rafter_proto::Object::Pod(v1::Pod {
            metadata: Some(v1::ObjectMeta {
                name: "p".into(),
                resource_version: "9".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let identity: Render = Box::new(|v| v);
        let added = event_line(
            Kind::Pod,
            api::WatchEvent {
                r#type: api::EventType::Added as i32,
                object: Some(pod.into()),
                resource_version: "9".into(),
            },
            &identity,
        );
        assert!(added.ends_with(b"\n"));
        let value: Value = serde_json::from_slice(&added).unwrap();
        assert_eq!(value["type"], "ADDED");
        assert_eq!(value["object"]["kind"], "Pod");
        assert_eq!(value["object"]["metadata"]["name"], "p");
        let bookmark = event_line(
            Kind::Pod,
            api::WatchEvent {
                r#type: api::EventType::Bookmark as i32,
                object: None,
                resource_version: "12".into(),
            },
            &identity,
        );
        let value: Value = serde_json::from_slice(&bookmark).unwrap();
        assert_eq!(value["type"], "BOOKMARK");
        assert_eq!(value["object"]["metadata"]["resourceVersion"], "12");
    }
}
