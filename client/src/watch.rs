//! Watches that survive a dropped stream or a dead master.
//!
//! ```text
//!   no resourceVersion ─► List (any master) ─► ADDED per item ─┐
//!   a resourceVersion ─────────────────────────────────────────┤
//!                                                              ▼
//!            ┌──► Watch from Resume::resume_from() on the current master
//!            │        │ event ─► Resume::admit? ─► deliver (or drop a duplicate)
//!            │        │ OutOfRange ─► Expired, end (list again)
//!            │        │ other answer ─► that error, end
//!            └────────┘ stream broke / ended / Unavailable ─► master backs off, resume
//!                       the master was found silent by any call ─► resume elsewhere
//! ```
//!
//! A master that fell silent under an open watch (paused, black-holed) is left when
//! the transport's keepalive gives up on the connection, or sooner when any call of the
//! same client finds it silent (see `failover`).
//!
//! The server's Watch sends changes strictly after the revision asked for. Several
//! objects can change in one revision, and a stream can break in the middle of such a
//! revision, so [`Resume`] remembers the keys it delivered at the last revision and
//! resumes from the revision before it: the rest of that revision arrives again, the
//! part already delivered is dropped. No gap, no duplicate. [`Resume`] is pure and
//! tested on its own; the stream around it only does the calls.

use std::collections::HashSet;

use futures::Stream;
use rafter_proto::api::{self, resources_client::ResourcesClient};
use rafter_proto::{Kind, Object};

use crate::client::{Client, ListParams, WatchParams};
use crate::error::{classify, ClientError, Failure};
use crate::failover::Idempotency;
use rafter_proto::{WatchEvent, WatchEventType};

/// What a watch has delivered, to resume it without a gap or a duplicate.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    /// The highest revision delivered (or listed).
    last: u64,
    /// The objects (`namespace/name`) delivered at `last`.
    at_last: HashSet<String>,
}

impl Resume {
    /// Nothing delivered after revision `from`.
    pub(crate) fn new(from: u64) -> Resume {
        Resume {
            last: from,
            at_last: HashSet::new(),
        }
    }

    /// The resourceVersion a new Watch asks for (it gets changes after it).
    pub(crate) fn resume_from(&self) -> u64 {
        if self.at_last.is_empty() || self.last <= 1 {
            self.last
        } else {
            self.last - 1
        }
    }

    /// Whether an event at `revision` about `key` (none for a bookmark) is new; records it.
    pub(crate) fn admit(&mut self, revision: u64, key: Option<String>) -> bool {
        match revision.cmp(&self.last) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => key.is_some_and(|key| self.at_last.insert(key)),
            std::cmp::Ordering::Greater => {
                self.last = revision;
                self.at_last.clear();
                self.at_last.extend(key);
                true
            }
        }
    }
}

fn key_of(object: &Object) -> String {
    let meta = object.metadata();
    format!("{}/{}", meta.namespace, meta.name)
}

fn revision_of(text: &str) -> Result<u64, ClientError> {
    text.parse().map_err(|_| ClientError::Protocol {
        message: format!("the resourceVersion {text:?} is not a revision"),
    })
}

fn event_of(event: api::WatchEvent) -> Result<WatchEvent, ClientError> {
    let event_type = match api::EventType::try_from(event.r#type) {
        Ok(api::EventType::Added) => WatchEventType::Added,
        Ok(api::EventType::Modified) => WatchEventType::Modified,
        Ok(api::EventType::Deleted) => WatchEventType::Deleted,
        Ok(api::EventType::Bookmark) => WatchEventType::Bookmark,
        Err(_) => {
            return Err(ClientError::Protocol {
                message: format!("unknown watch event type {}", event.r#type),
            })
        }
    };
    let object = match event.object {
        Some(typed) => Some(Object::try_from(typed).map_err(|e| ClientError::Protocol {
            message: e.to_string(),
        })?),
        None if event_type == WatchEventType::Bookmark => None,
        None => {
            return Err(ClientError::Protocol {
                message: "a watch event without an object".to_owned(),
            })
        }
    };
    Ok(WatchEvent {
        event_type,
        object,
        revision: revision_of(&event.resource_version)?,
    })
}

/// The resumable watch stream (see the module doc).
pub(crate) fn watch(
    client: Client,
    kind: Kind,
    namespace: String,
    params: WatchParams,
    resource_version: Option<String>,
) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + 'static {
    async_stream::stream! {
        let mut resume = match resource_version.filter(|rv| !rv.is_empty() && rv != "0") {
            Some(rv) => match revision_of(&rv) {
                Ok(revision) => Resume::new(revision),
                Err(_) => {
                    yield Err(ClientError::Invalid {
                        message: format!("resourceVersion {rv:?} is not a revision"),
                        causes: vec![format!("resourceVersion: {rv:?} is not a number")],
                    });
                    return;
                }
            },
            None => {
                let list = ListParams {
                    label_selector: params.label_selector.clone(),
                    field_selector: params.field_selector.clone(),
                    ..ListParams::default()
                };
                let ns = (!namespace.is_empty()).then_some(namespace.as_str());
                let listed = match client.list(kind, ns, &list).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                let revision = match revision_of(&listed.resource_version) {
                    Ok(revision) => revision,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
                for object in listed.items {
                    let at = object.metadata().resource_version.parse().unwrap_or(revision);
                    yield Ok(WatchEvent {
                        event_type: WatchEventType::Added,
                        object: Some(object),
                        revision: at,
                    });
                }
                Resume::new(revision)
            }
        };
        loop {
            let from = resume.resume_from().to_string();
            let request = api::WatchRequest {
                kind: kind.name().to_owned(),
                namespace: namespace.clone(),
                label_selector: params.label_selector.clone(),
                field_selector: params.field_selector.clone(),
                resource_version: from.clone(),
                allow_bookmarks: params.bookmarks,
            };
            let opened = client
                .inner
                .failover
                .run("watch", Idempotency::Read, |channel, _| {
                    let request = client.request(request.clone(), None);
                    async move {
                        ResourcesClient::new(channel)
                            .watch(request)
                            .await
                            .map(tonic::Response::into_inner)
                    }
                })
                .await;
            let (endpoint, mut events) = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            tracing::debug!(endpoint = client.inner.failover.address(endpoint), %from, "watch {kind} open");
            let mut silenced = client.inner.failover.silenced(endpoint);
            silenced.mark_unchanged();
            loop {
                let next = tokio::select! {
                    next = events.message() => next,
                    Ok(()) = silenced.changed() => {
                        tracing::info!(endpoint = client.inner.failover.address(endpoint), "watch {kind}: the master fell silent; resuming on another master");
                        break;
                    }
                };
                match next {
                    Ok(Some(event)) => {
                        let event = match event_of(event) {
                            Ok(event) => event,
                            Err(e) => {
                                yield Err(e);
                                return;
                            }
                        };
                        let fresh = resume.admit(event.revision, event.object.as_ref().map(key_of));
                        if fresh && (event.event_type != WatchEventType::Bookmark || params.bookmarks) {
                            yield Ok(event);
                        }
                    }
                    Ok(None) => {
                        tracing::debug!(endpoint = client.inner.failover.address(endpoint), "watch {kind} ended; resuming");
                        client.inner.failover.mark_failed(endpoint);
                        break;
                    }
                    Err(status) => match classify(&status) {
                        Failure::Answer(error) => {
                            yield Err(error);
                            return;
                        }
                        Failure::NotSent(message) | Failure::InFlight(message) => {
                            tracing::info!(endpoint = client.inner.failover.address(endpoint), error = %message, "watch {kind} broke; resuming on another master");
                            client.inner.failover.mark_failed(endpoint);
                            break;
                        }
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Option<String> {
        Some(format!("default/{name}"))
    }

    #[test]
    fn a_watch_resumes_after_the_last_whole_revision_it_delivered() {
        let mut resume = Resume::new(10);
        assert_eq!(resume.resume_from(), 10, "nothing delivered yet");
        assert!(resume.admit(11, key("a")));
        assert!(resume.admit(12, key("b")));
        assert_eq!(
            resume.resume_from(),
            11,
            "revision 12 may have more objects to come"
        );
    }

    #[test]
    fn events_delivered_before_a_resume_are_dropped_and_the_rest_of_their_revision_is_not() {
        let mut resume = Resume::new(10);
        assert!(resume.admit(12, key("a")));
        // The stream broke; the new one repeats revision 12 in full.
        assert!(!resume.admit(12, key("a")), "a duplicate");
        assert!(resume.admit(12, key("b")), "the rest of revision 12");
        assert!(!resume.admit(11, key("c")), "older than delivered");
        assert!(resume.admit(13, key("a")));
    }

    #[test]
    fn bookmarks_advance_the_resume_point_only_when_newer() {
        let mut resume = Resume::new(10);
        assert!(resume.admit(12, key("a")));
        assert!(
            !resume.admit(12, None),
            "a bookmark at the last revision says nothing new"
        );
        assert_eq!(resume.resume_from(), 11);
        assert!(resume.admit(15, None));
        assert_eq!(resume.resume_from(), 15);
    }
}
