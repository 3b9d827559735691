//! [`ApiClient`]: the few API calls the agent makes, behind a trait so the agent can be
//! tested against a scripted fake API, and its implementation over the failover-aware
//! [`rafter_client::Client`].
//!
//! Owns the translation of the client library's errors into [`ApiError`] (what the agent
//! acts on: NotFound, Conflict, AlreadyExists, Expired, anything else) and the pod watch
//! by `spec.nodeName`. It must not hold agent policy (what to retry, when to re-list):
//! callers decide.

use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use rafter_client::{Client, ClientError, DeleteOptions, WatchEventType};
use rafter_client::{ListParams, WatchParams};
use rafter_proto::v1::Pod;
use rafter_proto::{Kind, Object};

/// Why an API call failed, as the agent acts on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object changed since it was read, or a precondition failed: read it again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An object with this name exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A watch's revision is older than the store's history: list again.
    #[error("expired: {0}")]
    Expired(String),
    /// Anything else: unreachable masters, refusals, invalid objects. Retried later.
    #[error("{0}")]
    Other(String),
}

impl ApiError {
    /// True for [`ApiError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound(_))
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let text = e.to_string();
        match e {
            ClientError::NotFound { .. } => ApiError::NotFound(text),
            ClientError::Conflict { .. } => ApiError::Conflict(text),
            ClientError::AlreadyExists { .. } => ApiError::AlreadyExists(text),
            ClientError::Expired { .. } => ApiError::Expired(text),
            _ => ApiError::Other(text),
        }
    }
}

/// One change to the pods bound to the node.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// The pod appeared or changed.
    Upsert(Box<Pod>),
    /// The pod is gone from the API (its last state).
    Deleted(Box<Pod>),
}

/// A stream of pod changes; it ends after an error.
pub type PodEventStream = Pin<Box<dyn Stream<Item = Result<PodEvent, ApiError>> + Send>>;

/// The API calls the agent makes.
#[async_trait]
pub trait ApiClient: Send + Sync + 'static {
    /// Reads one object (`namespace` empty for cluster-scoped kinds).
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ApiError>;
    /// A signed token for a ServiceAccount, bound to one of the node's pods
    /// (serviceaccounts/token).
    async fn create_token(
        &self,
        request: rafter_proto::api::TokenRequest,
    ) -> Result<rafter_proto::api::TokenResponse, ApiError>;
    /// Creates an object.
    async fn create(&self, object: Object) -> Result<Object, ApiError>;
    /// Replaces an object (not its status); a set resourceVersion must be current.
    async fn update(&self, object: Object) -> Result<Object, ApiError>;
    /// Replaces an object's status (the status subresource).
    async fn update_status(&self, object: Object) -> Result<Object, ApiError>;
    /// Deletes a pod at once (grace 0) if it still has `uid`.
    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<(), ApiError>;
    /// The pods bound to `node` and the revision to watch from.
    async fn list_pods(&self, node: &str) -> Result<(Vec<Pod>, String), ApiError>;
    /// Changes to the pods bound to `node` after `resource_version`.
    fn watch_pods(&self, node: &str, resource_version: &str) -> PodEventStream;
}

fn node_selector(node: &str) -> String {
    format!("spec.nodeName={node}")
}

#[async_trait]
impl ApiClient for Client {
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ApiError> {
        Ok(Client::get(self, kind, namespace, name).await?)
    }

    async fn create_token(
        &self,
        request: rafter_proto::api::TokenRequest,
    ) -> Result<rafter_proto::api::TokenResponse, ApiError> {
        Ok(Client::create_token(self, request).await?)
    }

    async fn create(&self, object: Object) -> Result<Object, ApiError> {
        Ok(Client::create(self, object).await?)
    }

    async fn update(&self, object: Object) -> Result<Object, ApiError> {
        Ok(Client::update(self, object).await?)
    }

    async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        Ok(Client::update_status(self, object).await?)
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<(), ApiError> {
        let params = DeleteOptions {
            grace_period_seconds: Some(0),
            propagation: None,
            precondition_uid: Some(uid.to_owned()),
            precondition_resource_version: None,
        };
        Client::delete(self, Kind::Pod, namespace, name, &params).await?;
        Ok(())
    }

    async fn list_pods(&self, node: &str) -> Result<(Vec<Pod>, String), ApiError> {
        let params = ListParams {
            field_selector: node_selector(node),
            ..ListParams::default()
        };
        let list = Client::list(self, Kind::Pod, None, &params).await?;
        let pods = list
            .items
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            })
            .collect();
        Ok((pods, list.resource_version))
    }

    fn watch_pods(&self, node: &str, resource_version: &str) -> PodEventStream {
        let params = WatchParams {
            field_selector: node_selector(node),
            ..WatchParams::default()
        };
        let stream = Client::watch(self, Kind::Pod, None, &params, Some(resource_version));
        Box::pin(stream.filter_map(|item| async move {
            match item {
                Err(e) => Some(Err(ApiError::from(e))),
                Ok(event) => {
                    let Some(Object::Pod(pod)) = event.object else {
                        return None;
                    };
                    match event.event_type {
                        WatchEventType::Added | WatchEventType::Modified => {
                            Some(Ok(PodEvent::Upsert(Box::new(pod))))
                        }
                        WatchEventType::Deleted => Some(Ok(PodEvent::Deleted(Box::new(pod)))),
                        WatchEventType::Bookmark => None,
                    }
                }
            }
        }))
    }
}
