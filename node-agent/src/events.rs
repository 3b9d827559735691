//! [`PodEvents`]: Events about one of the node's pods (image pulls today), written through
//! the API as the kubelet writes them (source component `kubelet`, host the node), so
//! `rafter describe pod` shows them.
//!
//! Owns the shape of those Events. Writing one is best effort: a failed write is logged and
//! dropped, never retried, and never holds the pod back. It must not decide when something
//! is worth an event; its callers do.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use rafter_proto::v1::{Event, EventSource, ObjectMeta, ObjectReference, Pod};
use rafter_proto::{Object, Timestamp};
use tracing::debug;

use crate::api::ApiClient;

/// `Normal` events.
pub(crate) const NORMAL: &str = "Normal";
/// `Warning` events.
pub(crate) const WARNING: &str = "Warning";

/// Makes event names unique within one agent (with the pod name and the time).
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Writes Events about a pod's containers.
#[derive(Clone)]
pub(crate) struct PodEvents {
    pub(crate) api: Arc<dyn ApiClient>,
    pub(crate) node_name: String,
}

impl PodEvents {
    /// Records `reason`/`message` of `event_type` about container `container` of `pod`.
    pub(crate) async fn container(
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
        if let Err(e) = self.api.create(Object::Event(event)).await {
            debug!(pod = %meta.name, reason, error = %e, "event not written");
        }
    }
}
