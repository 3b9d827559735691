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

/// One change to a watched object.
#[derive(Debug, Clone)]
pub enum WatchChange<T> {
    /// The object appeared or changed.
    Upsert(Box<T>),
    /// The object is gone from the API (its last state).
    Deleted(Box<T>),
}

/// One change to the pods bound to the node.
pub type PodEvent = WatchChange<Pod>;

/// A stream of pod changes; it ends after an error.
pub type PodEventStream = Pin<Box<dyn Stream<Item = Result<PodEvent, ApiError>> + Send>>;

/// One change to the objects of a kind, in every namespace.
pub type ObjectEvent = WatchChange<Object>;

/// A stream of changes to the objects of a kind; it ends after an error.
pub type ObjectEventStream = Pin<Box<dyn Stream<Item = Result<ObjectEvent, ApiError>> + Send>>;

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
    /// Every object of `kind` in every namespace and the revision to watch from (the
    /// node proxy's Services and Endpoints, the routes' Nodes).
    async fn list_all(&self, kind: Kind) -> Result<(Vec<Object>, String), ApiError>;
    /// Changes to the objects of `kind` in every namespace after `resource_version`.
    fn watch_all(&self, kind: Kind, resource_version: &str) -> ObjectEventStream;
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
        list_typed(self, Kind::Pod, node_selector(node), |o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .await
    }

    fn watch_pods(&self, node: &str, resource_version: &str) -> PodEventStream {
        watch_typed(
            self,
            Kind::Pod,
            node_selector(node),
            resource_version,
            |o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            },
        )
    }

    async fn list_all(&self, kind: Kind) -> Result<(Vec<Object>, String), ApiError> {
        list_typed(self, kind, String::new(), Some).await
    }

    fn watch_all(&self, kind: Kind, resource_version: &str) -> ObjectEventStream {
        watch_typed(self, kind, String::new(), resource_version, Some)
    }
}

/// Lists `kind` (every namespace) matching `field_selector`, as `T`.
async fn list_typed<T>(
    client: &Client,
    kind: Kind,
    field_selector: String,
    typed: fn(Object) -> Option<T>,
) -> Result<(Vec<T>, String), ApiError> {
    let params = ListParams {
        field_selector,
        ..ListParams::default()
    };
    let list = Client::list(client, kind, None, &params).await?;
    Ok((
        list.items.into_iter().filter_map(typed).collect(),
        list.resource_version,
    ))
}

/// Watches `kind` (every namespace) matching `field_selector` after `resource_version`,
/// as changes to `T`; bookmarks are dropped.
fn watch_typed<T: Send + 'static>(
    client: &Client,
    kind: Kind,
    field_selector: String,
    resource_version: &str,
    typed: fn(Object) -> Option<T>,
) -> Pin<Box<dyn Stream<Item = Result<WatchChange<T>, ApiError>> + Send>> {
    let params = WatchParams {
        field_selector,
        ..WatchParams::default()
    };
    let stream = Client::watch(client, kind, None, &params, Some(resource_version));
    Box::pin(stream.filter_map(move |item| async move {
        match item {
            Err(e) => Some(Err(ApiError::from(e))),
            Ok(event) => {
                let object = typed(event.object?)?;
                match event.event_type {
                    WatchEventType::Added | WatchEventType::Modified => {
                        Some(Ok(WatchChange::Upsert(Box::new(object))))
                    }
                    WatchEventType::Deleted => Some(Ok(WatchChange::Deleted(Box::new(object)))),
                    WatchEventType::Bookmark => None,
                }
            }
        }
    }))
}
