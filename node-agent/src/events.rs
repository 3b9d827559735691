//! [`PodEvents`]: Events about one of the node's pods (image pulls today), written through
//! the API as the kubelet writes them (source component `kubelet`, host the node), so
//! `rafter describe pod` shows them.
//!
//! ```text
//!   PodEvents::container ─► queue (1,000 at most; a full queue drops) ─► writer task ─► API
//! ```
//!
//! Owns the shape of those Events and their queue. Recording one never waits for the API,
//! so an event costs a starting pod no round trip (the kubelet's recorder queues them
//! too); the writer writes them in the order they were recorded. Writing is best effort:
//! a failed write is logged and dropped, never retried, and never holds the pod back. It
//! must not decide when something is worth an event; its callers do.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rafter_proto::v1::{Event, EventSource, ObjectMeta, ObjectReference, Pod};
use rafter_proto::{Object, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::api::ApiClient;

/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 1000;

/// `Normal` events.
pub(crate) const NORMAL: &str = "Normal";
/// `Warning` events.
pub(crate) const WARNING: &str = "Warning";

/// Makes event names unique within one agent (with the pod name and the time).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Records Events about a pod's containers, written by its writer task.
#[derive(Clone)]
pub(crate) struct PodEvents {
    queue: mpsc::Sender<Event>,
    node_name: String,
}

impl PodEvents {
    /// A recorder for node `node_name`, and its writer task: it writes the recorded events
    /// through `api` in order until every recorder is gone or `shutdown` turns true.
    pub(crate) fn start(
        api: Arc<dyn ApiClient>,
        node_name: String,
        mut shutdown: watch::Receiver<bool>,
    ) -> (PodEvents, JoinHandle<()>) {
        let (queue, mut events) = mpsc::channel::<Event>(QUEUE);
        let writer = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                        continue;
                    }
                };
                let Some(event) = event else { return };
                let reason = event.reason.clone();
                if let Err(e) = api.create(Object::Event(event)).await {
                    debug!(reason, error = %e, "event not written");
                }
            }
        });
        (PodEvents { queue, node_name }, writer)
    }

    /// Records `reason`/`message` of `event_type` about container `container` of `pod`,
    /// to be written soon; dropped when the queue is full.
    pub(crate) fn container(
        &self,
        pod: &Pod,
        container: &str,
        event_type: &str,
        reason: &str,
        message: String,
    ) {
        let meta = pod.metadata.clone().unwrap_or_default();
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}{:04x}",
            meta.name,
            now.unix_millis(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff
        );
        let event = Event {
            api_version: "v1".to_owned(),
            kind: "Event".to_owned(),
            metadata: Some(ObjectMeta {
                name,
                namespace: meta.namespace.clone(),
                ..Default::default()
            }),
            involved_object: Some(ObjectReference {
                kind: "Pod".to_owned(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                api_version: "v1".to_owned(),
                field_path: format!("spec.containers{{{container}}}"),
                ..Default::default()
            }),
            reason: reason.to_owned(),
            message,
            source: Some(EventSource {
                component: "kubelet".to_owned(),
                host: self.node_name.clone(),
            }),
            first_timestamp: Some(now.to_rfc3339()),
            last_timestamp: Some(now.to_rfc3339()),
            count: 1,
            r#type: event_type.to_owned(),
            reporting_component: "kubelet".to_owned(),
            reporting_instance: self.node_name.clone(),
        };
        if self.queue.try_send(event).is_err() {
            debug!(pod = %meta.name, reason, "event dropped: the queue is full");
        }
    }
}

#[cfg(test)]
#[path = "events_test.rs"]
mod tests;
