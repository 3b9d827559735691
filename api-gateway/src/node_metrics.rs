//! Measured usage for `rafter top`: the gateway's side of `Resources.Metrics`. Like
//! metrics-server scraping kubelets, but at the time of the call and without a store of
//! its own: the gateway asks each node's agent for its current figures.
//!
//! ```text
//!   Resources.Metrics(node?)
//!     │ (service: authenticated; Nodes read from the local member)
//!     ▼
//!   for each node, at once ─► endpoint (rafter.io/agent-logs-endpoint, pod_logs)
//!                               ─► AgentMetrics.Metrics ─► NodeMetrics
//!                               └─ no endpoint, unreachable, slow, an error
//!                                  ─► NodeMetrics{node, error}
//! ```
//!
//! One node that cannot answer never fails the call: its entry carries the reason, and
//! the others their figures. Agents are dialled as for logs: over TLS when their
//! endpoint is https (see `agent_dial`). Owns calling the agents and the per-node errors; it must not read the
//! store itself (the service hands it the Nodes) nor compute figures (the agents do).

use std::time::Duration;

use rafter_proto::agent::agent_metrics_client::AgentMetricsClient;
use rafter_proto::{agent, api, v1};

use crate::agent_dial::{self, AgentTls};
use crate::pod_logs;

/// How long one agent may take to answer (it may measure over half a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The figures of `node`, or an entry with the reason there are none.
async fn scrape(node: v1::Node, tls: Option<&AgentTls>) -> api::NodeMetrics {
    let name = node
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let failed = |error: String| api::NodeMetrics {
        node: name.clone(),
        error,
        ..Default::default()
    };
    let endpoint = match pod_logs::endpoint(&node) {
        Ok(endpoint) => endpoint,
        Err(e) => return failed(e.to_string()),
    };
    let call = async {
        let channel = agent_dial::connect(&name, &endpoint, tls)
            .await
            .map_err(|e| e.to_string())?;
        AgentMetricsClient::new(channel)
            .metrics(agent::MetricsRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| {
                format!(
                    "the agent at {endpoint} answered {:?}: {}",
                    s.code(),
                    s.message()
                )
            })
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(mut figures)) => {
            // The agent names itself; the Node's name is what callers match on.
            figures.node = name;
            figures.error.clear();
            figures
        }
        Ok(Err(error)) => failed(error),
        Err(_) => failed(format!(
            "the agent at {endpoint} did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// The figures of every node in `nodes`, asked of their agents at once, in the order given.
/// Agents with https endpoints are dialled with `tls`.
pub(crate) async fn scrape_all(
    nodes: Vec<v1::Node>,
    tls: Option<&AgentTls>,
) -> api::MetricsResponse {
    api::MetricsResponse {
        nodes: futures::future::join_all(nodes.into_iter().map(|n| scrape(n, tls))).await,
    }
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
    async fn nodes_without_an_endpoint_or_a_listening_agent_carry_an_error_each() {
        // A port nobody listens on: bind, note it, close.
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let answer = scrape_all(
            vec![
                node("a", None),
                node("b", Some(&format!("http://{closed}"))),
                node("c", Some("not a url")),
                node("d", Some(&format!("https://{closed}"))),
            ],
            None,
        )
        .await;
        let names: Vec<&str> = answer.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
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
        assert!(!answer.nodes[2].error.is_empty());
        assert!(
            answer.nodes[3].error.contains("runs without TLS"),
            "{:?}",
            answer.nodes[3]
        );
        assert!(answer
            .nodes
            .iter()
            .all(|n| n.pods.is_empty() && n.cpu_nano_cores == 0));
    }
}
