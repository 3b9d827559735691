//! pods/portforward: the gateway's side of `rafter port-forward` (and of kubectl's, which
//! the REST front door serves onto the same session). One stream is one TCP connection to
//! a port inside the pod; the gateway dials nothing itself, it opens the port-forward
//! stream of the agent of the pod's node and relays bytes both ways.
//!
//! ```text
//!   Resources.PortForward (gRPC)  or  a REST front door
//!     │ PortForwardStart (ns, pod, port), then the client's bytes
//!     ▼ service::port_forward_session: authenticated, `create` on pods/portforward, audited
//!   open(endpoint, start, input) ─► AgentStreams.PortForward on the agent
//!     ◄── the pod port's bytes; the end when the pod's side closes (an error when the
//!         connection could not be made or broke)
//! ```
//!
//! The end of `input` is the client's half-close, passed on to the agent as the end of
//! its stream. Owns the translation into the agent's messages and the call; it must not
//! decide who may forward (the service does).

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_streams_client::AgentStreamsClient;
use rafter_proto::{agent, api};
use tonic::{Status, Streaming};

use crate::agent_dial::AgentTls;
use crate::pod_exec::dial;
use crate::pod_logs::agent_status;

/// The agent's message carrying the client's `data`.
pub(crate) fn agent_data(data: Bytes) -> agent::PortForwardRequest {
    agent::PortForwardRequest {
        msg: Some(agent::port_forward_request::Msg::Data(data.to_vec())),
    }
}

/// Calls the agent at `endpoint` (of node `node`) to connect to `start.port` of the pod,
/// feeding it `input`. The agent's refusals come back marked as the agent's.
pub(crate) async fn open<I>(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
    start: agent::PortForwardStart,
    input: I,
) -> Result<Streaming<api::PortForwardResponse>, Status>
where
    I: Stream<Item = Bytes> + Send + 'static,
{
    let channel = dial(node, endpoint, tls).await?;
    let first = agent::PortForwardRequest {
        msg: Some(agent::port_forward_request::Msg::Start(start)),
    };
    let messages = futures::stream::once(async move { first }).chain(
        input
            .filter(|data| futures::future::ready(!data.is_empty()))
            .map(agent_data),
    );
    match AgentStreamsClient::new(channel)
        .port_forward(messages)
        .await
    {
        Ok(stream) => Ok(stream.into_inner()),
        Err(status) => Err(agent_status(Status::new(status.code(), status.message()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_bytes_become_the_agents_data() {
        assert_eq!(
            agent_data(Bytes::from_static(b"GET /")).msg,
            Some(agent::port_forward_request::Msg::Data(b"GET /".to_vec()))
        );
    }
}
