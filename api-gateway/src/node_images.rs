//! nodes/images: the gateway's side of `rafter image import` and `rafter image ls`. The
//! gateway holds no images; it relays to the nodes' agents (`rafter.agent.v1.AgentImages`),
//! dialled as for logs and metrics (`agent_dial`, `pod_logs::endpoint`).
//!
//! ```text
//!   Resources.ImportImage(stream {file_name, size}, pieces ...)
//!     │ (service: authenticated, `create` on nodes/images; Ready nodes read)
//!     ▼
//!   event {nodes} ─► the client streams the archive
//!   for each piece, for each node still taking them ─► channel(4) ─► AgentImages.Import
//!     │  (the slowest agent paces the rest; one that stops taking pieces for
//!     │   STALL is dropped with that reason, one that fails is dropped with its error)
//!   all `size` bytes relayed? no ─► the call fails, every agent call is cancelled
//!     ▼                             (agents import only a whole archive: nothing half-imported)
//!   event {result: node, images | error} per node, as each finishes
//!
//!   Resources.Images(node?) ─► for each node, at once ─► AgentImages.List ─► NodeImages
//!                                                       └─ or NodeImages{node, error}
//! ```
//!
//! One node that fails never hides the others: its result carries the reason. Pieces
//! are handed on at most [`MAX_PIECE`] bytes each, under the 4 MiB gRPC message limit of
//! the agents. Owns the fan-out and the per-node errors; it must not read the store (the
//! service hands it the nodes) nor decide who may import (the service authorises).

use std::time::Duration;

use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_images_client::AgentImagesClient;
use rafter_proto::{agent, api, v1};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::Status;
use tracing::{debug, info};

use crate::agent_dial::{self, AgentTls};
use crate::pod_logs;

/// The largest piece handed on to an agent.
pub(crate) const MAX_PIECE: usize = 1024 * 1024;
/// How long an agent may leave a piece untaken before it is given up on.
const STALL: Duration = Duration::from_secs(60);
/// How long one agent may take to import after the last piece (a large archive unpacks).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long one agent may take to list its images.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

fn node_name(node: &v1::Node) -> String {
    node.metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

/// Whether the node's Ready condition is True.
pub(crate) fn is_ready(node: &v1::Node) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    })
}

/// The images of `node`, or an entry with the reason there are none.
async fn list_one(node: v1::Node, tls: Option<&AgentTls>) -> api::NodeImages {
    let name = node_name(&node);
    let failed = |error: String| api::NodeImages {
        node: name.clone(),
        error,
        images: Vec::new(),
    };
    let endpoint = match pod_logs::endpoint(&node) {
        Ok(endpoint) => endpoint,
        Err(e) => return failed(e.to_string()),
    };
    let call = async {
        let channel = agent_dial::connect(&name, &endpoint, tls)
            .await
            .map_err(|e| e.to_string())?;
        AgentImagesClient::new(channel)
            .list(agent::ListImagesRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| agent_answered(&endpoint, &s))
    };
    match tokio::time::timeout(LIST_TIMEOUT, call).await {
        Ok(Ok(mut images)) => {
            images.node = name;
            images.error.clear();
            images
        }
        Ok(Err(error)) => failed(error),
        Err(_) => failed(format!(
            "the agent at {endpoint} did not answer within {} s",
            LIST_TIMEOUT.as_secs()
        )),
    }
}

fn agent_answered(endpoint: &str, status: &Status) -> String {
    format!(
        "the agent at {endpoint} answered {:?}: {}",
        status.code(),
        status.message()
    )
}

/// The images of every node in `nodes`, asked of their agents at once, in the order given.
pub(crate) async fn list_all(nodes: Vec<v1::Node>, tls: Option<&AgentTls>) -> api::ImagesResponse {
    api::ImagesResponse {
        nodes: futures::future::join_all(nodes.into_iter().map(|n| list_one(n, tls))).await,
    }
}

/// Imports the archive arriving on `pieces` into `node`'s agent; its outcome.
async fn import_one(
    node: v1::Node,
    tls: Option<AgentTls>,
    pieces: mpsc::Receiver<api::ImageImportRequest>,
) -> api::NodeImageImport {
    let name = node_name(&node);
    let outcome = async {
        let endpoint = pod_logs::endpoint(&node).map_err(|e| e.to_string())?;
        let channel = agent_dial::connect(&name, &endpoint, tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let mut client = AgentImagesClient::new(channel);
        let call = client.import(tokio_stream::wrappers::ReceiverStream::new(pieces));
        match tokio::time::timeout(IMPORT_TIMEOUT, call).await {
            Ok(Ok(answer)) => Ok(answer.into_inner().images),
            Ok(Err(status)) => Err(agent_answered(&endpoint, &status)),
            Err(_) => Err(format!(
                "the agent at {endpoint} did not finish importing within {} min",
                IMPORT_TIMEOUT.as_secs() / 60
            )),
        }
    }
    .await;
    match outcome {
        Ok(images) => api::NodeImageImport {
            node: name,
            images,
            error: String::new(),
        },
        Err(error) => api::NodeImageImport {
            node: name,
            images: Vec::new(),
            error,
        },
    }
}

/// One agent's import under way: where its pieces go.
struct Relay {
    node: String,
    pieces: mpsc::Sender<api::ImageImportRequest>,
    task: tokio::task::AbortHandle,
}

/// Relays the archive that `first` announces and `rest` carries to every node of `nodes`;
/// the events of the call: the nodes, then one result per node as each finishes. The
/// stream fails (and every agent call is cancelled) when the caller's stream breaks or
/// carries more or fewer bytes than announced. Dropping it cancels the agent calls.
pub(crate) fn import<S>(
    nodes: Vec<v1::Node>,
    tls: Option<AgentTls>,
    first: api::ImageImportRequest,
    mut rest: S,
) -> impl Stream<Item = Result<api::ImageImportEvent, Status>> + Send + 'static
where
    S: Stream<Item = Result<api::ImageImportRequest, Status>> + Send + Unpin + 'static,
{
    async_stream::try_stream! {
        let file_name = first.file_name.clone();
        let size = first.size;
        let names: Vec<String> = nodes.iter().map(node_name).collect();
        info!(archive = %file_name, size, nodes = ?names, "relaying an image archive to the nodes");
        yield api::ImageImportEvent { nodes: names, result: None };

        let mut calls = JoinSet::new();
        let mut relays = Vec::new();
        for node in nodes {
            let (pieces, receiver) = mpsc::channel(4);
            let name = node_name(&node);
            let task = calls.spawn(import_one(node, tls.clone(), receiver));
            relays.push(Relay { node: name, pieces, task });
        }
        // Results decided here (an agent that stopped taking pieces), before the others.
        let mut given_up: Vec<api::NodeImageImport> = Vec::new();
        let header = api::ImageImportRequest {
            file_name: file_name.clone(),
            size,
            data: Vec::new(),
        };
        relay(&mut relays, &mut given_up, header).await;
        let mut relayed: u64 = 0;
        let mut next = Some(first.data);
        loop {
            let data = match next.take() {
                Some(data) => data,
                None => match rest.next().await.transpose()? {
                    Some(message) => message.data,
                    None => break,
                },
            };
            relayed = relayed.saturating_add(data.len() as u64);
            if relayed > size {
                Err::<(), Status>(Status::invalid_argument(format!(
                    "{file_name} is longer than the {size} bytes announced: nothing was imported"
                )))?;
            }
            for piece in data.chunks(MAX_PIECE) {
                let message = api::ImageImportRequest {
                    data: piece.to_vec(),
                    ..Default::default()
                };
                relay(&mut relays, &mut given_up, message).await;
            }
        }
        if relayed != size {
            Err::<(), Status>(Status::invalid_argument(format!(
                "{file_name} ended after {relayed} of the {size} bytes announced: nothing was imported"
            )))?;
        }
        // The end of each agent's stream: it imports now.
        relays.clear();
        for result in given_up {
            yield api::ImageImportEvent { nodes: Vec::new(), result: Some(result) };
        }
        while let Some(joined) = calls.join_next().await {
            // A task given up on was aborted: its result was sent already.
            if let Ok(result) = joined {
                debug!(node = %result.node, error = %result.error, "image import finished on a node");
                yield api::ImageImportEvent { nodes: Vec::new(), result: Some(result) };
            }
        }
    }
}

/// Hands `message` to every relay still taking pieces; those whose call ended (its
/// result comes from its task) or which stalled (given up on here) are dropped.
async fn relay(
    relays: &mut Vec<Relay>,
    given_up: &mut Vec<api::NodeImageImport>,
    message: api::ImageImportRequest,
) {
    let mut kept = Vec::with_capacity(relays.len());
    for r in relays.drain(..) {
        match tokio::time::timeout(STALL, r.pieces.send(message.clone())).await {
            Ok(Ok(())) => kept.push(r),
            // The call ended (an error, most likely): its task reports it.
            Ok(Err(_)) => {}
            Err(_) => {
                r.task.abort();
                given_up.push(api::NodeImageImport {
                    node: r.node.clone(),
                    images: Vec::new(),
                    error: format!(
                        "the agent of node {} took no part of the archive for {} s; given up",
                        r.node,
                        STALL.as_secs()
                    ),
                });
            }
        }
    }
    *relays = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1::ObjectMeta;

    fn node(name: &str, endpoint: Option<&str>) -> v1::Node {
        let mut meta = ObjectMeta {
            name: name.into(),
            ..Default::default()
        };
        if let Some(e) = endpoint {
            meta.annotations.insert(
                rafter_proto::well_known::AGENT_LOGS_ENDPOINT_ANNOTATION.into(),
                e.into(),
            );
        }
        v1::Node {
            metadata: Some(meta),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn nodes_without_an_endpoint_or_a_listening_agent_list_an_error_each() {
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let answer = list_all(
            vec![
                node("a", None),
                node("b", Some(&format!("http://{closed}"))),
            ],
            None,
        )
        .await;
        let names: Vec<&str> = answer.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(
            answer.nodes[0].error.contains("no log endpoint"),
            "{:?}",
            answer.nodes[0]
        );
        assert!(
            answer.nodes[1].error.contains("cannot be reached"),
            "{:?}",
            answer.nodes[1]
        );
    }

    /// An agent that takes an archive and answers with its size as the image name.
    struct FakeAgent;

    #[tonic::async_trait]
    impl rafter_proto::agent::agent_images_server::AgentImages for FakeAgent {
        async fn import(
            &self,
            request: tonic::Request<tonic::Streaming<api::ImageImportRequest>>,
        ) -> Result<tonic::Response<agent::ImportedImages>, Status> {
            let mut pieces = request.into_inner();
            let first = pieces.message().await?.unwrap();
            let mut bytes = first.data.len() as u64;
            while let Some(piece) = pieces.message().await? {
                assert!(piece.data.len() <= MAX_PIECE);
                bytes += piece.data.len() as u64;
            }
            if bytes != first.size {
                return Err(Status::invalid_argument("cut short"));
            }
            Ok(tonic::Response::new(agent::ImportedImages {
                images: vec![format!("{}:{bytes}", first.file_name)],
            }))
        }

        async fn list(
            &self,
            _request: tonic::Request<agent::ListImagesRequest>,
        ) -> Result<tonic::Response<api::NodeImages>, Status> {
            Ok(tonic::Response::new(api::NodeImages::default()))
        }
    }

    async fn fake_agent() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    rafter_proto::agent::agent_images_server::AgentImagesServer::new(FakeAgent),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        url
    }

    /// The events of importing `size` bytes announced, `data` sent, into `nodes`.
    async fn run_import(
        nodes: Vec<v1::Node>,
        size: u64,
        data: Vec<u8>,
    ) -> Vec<Result<api::ImageImportEvent, Status>> {
        let first = api::ImageImportRequest {
            file_name: "a.tar".into(),
            size,
            data: Vec::new(),
        };
        // Pieces larger than an agent takes: the relay cuts them.
        let rest: Vec<Result<api::ImageImportRequest, Status>> = data
            .chunks(3 * MAX_PIECE / 2)
            .map(|c| {
                Ok(api::ImageImportRequest {
                    data: c.to_vec(),
                    ..Default::default()
                })
            })
            .collect();
        import(nodes, None, first, futures::stream::iter(rest))
            .collect()
            .await
    }

    #[tokio::test]
    async fn every_node_reports_its_own_outcome_and_a_short_archive_reaches_no_agent_whole() {
        let good = fake_agent().await;
        let size = 4 * MAX_PIECE as u64 + 5;
        let data = vec![7u8; size as usize];
        let events = run_import(
            vec![node("good", Some(&good)), node("lost", None)],
            size,
            data.clone(),
        )
        .await;
        let events: Vec<api::ImageImportEvent> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events[0].nodes, ["good", "lost"]);
        let mut results: Vec<api::NodeImageImport> = events[1..]
            .iter()
            .filter_map(|e| e.result.clone())
            .collect();
        results.sort_by(|a, b| a.node.cmp(&b.node));
        assert_eq!(results.len(), 2, "{results:?}");
        assert_eq!(results[0].images, [format!("a.tar:{size}")], "{results:?}");
        assert!(results[0].error.is_empty());
        assert!(results[1].error.contains("no log endpoint"), "{results:?}");

        // Fewer bytes than announced: the call fails; no agent got the whole archive.
        let events = run_import(vec![node("good", Some(&good))], size + 1, data).await;
        let last = events.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.code(), tonic::Code::InvalidArgument);
        assert!(
            last.message().contains("a.tar ended after"),
            "{}",
            last.message()
        );
        assert!(events
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .all(|e| e.result.is_none()));
    }

    #[tokio::test]
    async fn an_unreachable_node_fails_alone_through_the_relay() {
        let (pieces, receiver) = mpsc::channel(4);
        drop(pieces);
        let result = import_one(node("a", None), None, receiver).await;
        assert_eq!(result.node, "a");
        assert!(result.error.contains("no log endpoint"), "{result:?}");
        assert!(result.images.is_empty());
    }
}
