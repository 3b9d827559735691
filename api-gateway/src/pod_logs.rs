//! pods/log: the gateway's side of `rafter logs`. The gateway does not hold logs; it
//! finds the agent of the pod's node and relays that agent's stream.
//!
//! ```text
//!   Resources.Logs(ns, pod, container, follow, previous, tail)
//!     │ (service: authenticated, pod read)
//!     ▼
//!   target(pod, container) ─► node name, pod uid, container   (pure)
//!   endpoint(node)         ─► rafter.io/agent-logs-endpoint    (pure)
//!   open(endpoint, request) ─► AgentLogs.Logs on the agent ─► stream of LogChunk
//! ```
//!
//! Only the gateway calls the agent, after authenticating the user; over TLS when the
//! agent advertises an `https://` endpoint (see `agent_dial`), in plaintext otherwise.
//! Owns choosing the container, reading the node's endpoint and calling the agent; it
//! must not read files or the store itself.

use rafter_proto::agent::agent_logs_client::AgentLogsClient;
use rafter_proto::{agent, v1};
use tonic::metadata::MetadataValue;
use tonic::{Status, Streaming};

use crate::agent_dial::{self, AgentTls, DialError};

use rafter_proto::well_known::{AGENT_LOGS_ENDPOINT_ANNOTATION, AGENT_STATUS_METADATA};

/// Why a pod's log cannot be relayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PodLogError {
    /// The pod has not been scheduled: no agent runs it yet.
    #[error(
        "pod {pod} is not bound to a node yet; its log exists once it is scheduled and started"
    )]
    NotBound {
        /// `namespace/name`.
        pod: String,
    },
    /// The request names no container and the pod has several.
    #[error("pod {pod} has several containers; name one (its containers: {names})")]
    AmbiguousContainer {
        /// `namespace/name`.
        pod: String,
        /// The container names, comma-separated.
        names: String,
    },
    /// The named container is not in the pod.
    #[error("pod {pod} has no container {container:?} (its containers: {names})")]
    NoSuchContainer {
        /// `namespace/name`.
        pod: String,
        /// The name asked for.
        container: String,
        /// The container names, comma-separated.
        names: String,
    },
    /// The node's agent has not advertised a log endpoint.
    #[error("node {node} has no log endpoint (annotation {AGENT_LOGS_ENDPOINT_ANNOTATION}): its agent is not running, is too old, or serves no logs")]
    NoEndpoint {
        /// The node.
        node: String,
    },
    /// The node's agent cannot be reached.
    #[error("node {node}: {source}")]
    Unreachable {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: DialError,
    },
}

impl PodLogError {
    /// The gRPC status a client acts on.
    pub(crate) fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            PodLogError::NotBound { .. } => Status::failed_precondition(message),
            PodLogError::AmbiguousContainer { .. } | PodLogError::NoSuchContainer { .. } => {
                Status::invalid_argument(message)
            }
            PodLogError::NoEndpoint { .. } | PodLogError::Unreachable { .. } => {
                agent_status(Status::unavailable(message))
            }
        }
    }
}

/// `status` marked as being about the agent, not the master.
pub(crate) fn agent_status(mut status: Status) -> Status {
    status
        .metadata_mut()
        .insert(AGENT_STATUS_METADATA, MetadataValue::from_static("1"));
    status
}

/// Where a pod's log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogTarget {
    /// The node the pod is bound to.
    pub(crate) node: String,
    /// The pod's uid.
    pub(crate) uid: String,
    /// The container.
    pub(crate) container: String,
}

/// The node, uid and container of `pod`'s log; `container` empty means the only one.
pub(crate) fn target(pod: &v1::Pod, container: &str) -> Result<LogTarget, PodLogError> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let key = format!("{}/{}", meta.namespace, meta.name);
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.node_name.is_empty() {
        return Err(PodLogError::NotBound { pod: key });
    }
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let chosen = match (container, names.as_slice()) {
        ("", [only]) => (*only).to_owned(),
        ("", _) => {
            return Err(PodLogError::AmbiguousContainer {
                pod: key,
                names: names.join(", "),
            })
        }
        (c, _) if names.contains(&c) => c.to_owned(),
        (c, _) => {
            return Err(PodLogError::NoSuchContainer {
                pod: key,
                container: c.to_owned(),
                names: names.join(", "),
            })
        }
    };
    Ok(LogTarget {
        node: spec.node_name,
        uid: meta.uid,
        container: chosen,
    })
}

/// The log endpoint `node` advertises.
pub(crate) fn endpoint(node: &v1::Node) -> Result<String, PodLogError> {
    let meta = node.metadata.clone().unwrap_or_default();
    meta.annotations
        .get(AGENT_LOGS_ENDPOINT_ANNOTATION)
        .filter(|e| !e.is_empty())
        .cloned()
        .ok_or(PodLogError::NoEndpoint { node: meta.name })
}

/// Calls the agent at `endpoint` (of node `node`, with `tls` for https endpoints) for
/// `request`'s log. The agent's own answers (NotFound for a container that has not
/// started ...) come back as they are.
pub(crate) async fn open(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
    request: agent::LogsRequest,
) -> Result<Streaming<agent::LogChunk>, Status> {
    let channel = agent_dial::connect(node, endpoint, tls)
        .await
        .map_err(|source| {
            PodLogError::Unreachable {
                node: node.to_owned(),
                source,
            }
            .status()
        })?;
    let answer = AgentLogsClient::new(channel).logs(request).await;
    match answer {
        Ok(stream) => Ok(stream.into_inner()),
        Err(status) => Err(agent_status(Status::new(status.code(), status.message()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1::{Container, Node, ObjectMeta, Pod, PodSpec};

    fn pod(node: &str, containers: &[&str]) -> Pod {
        Pod {
            metadata: Some(ObjectMeta {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: node.into(),
                containers: containers
                    .iter()
                    .map(|c| Container {
                        name: (*c).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_only_container_is_chosen_and_a_wrong_or_missing_name_lists_the_containers() {
        let t = target(&pod("w1", &["app"]), "").unwrap();
        assert_eq!((t.node.as_str(), t.uid.as_str()), ("w1", "u1"));
        assert_eq!(t.container, "app");
        let two = pod("w1", &["app", "side"]);
        assert_eq!(target(&two, "side").unwrap().container, "side");
        let e = target(&two, "").unwrap_err();
        assert!(e.to_string().contains("app, side"), "{e}");
        assert_eq!(e.status().code(), tonic::Code::InvalidArgument);
        let e = target(&two, "db").unwrap_err();
        assert!(e.to_string().contains("\"db\""), "{e}");
        assert_eq!(e.status().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_unbound_pod_is_a_failed_precondition_and_a_node_without_endpoint_unavailable() {
        let e = target(&pod("", &["app"]), "").unwrap_err();
        assert_eq!(e.status().code(), tonic::Code::FailedPrecondition);
        assert!(e.to_string().contains("not bound"), "{e}");
        let mut node = Node {
            metadata: Some(ObjectMeta {
                name: "w1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = endpoint(&node).unwrap_err().status();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.metadata().get(AGENT_STATUS_METADATA).is_some());
        if let Some(meta) = node.metadata.as_mut() {
            meta.annotations.insert(
                AGENT_LOGS_ENDPOINT_ANNOTATION.into(),
                "http://127.0.0.1:1".into(),
            );
        }
        assert_eq!(endpoint(&node).unwrap(), "http://127.0.0.1:1");
    }
}
