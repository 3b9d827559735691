//! pods/exec and pods/attach: the gateway's side of `rafter exec`/`kubectl exec` and
//! `rafter attach`/`kubectl attach`. The gateway runs nothing; it opens the exec (or
//! attach) stream of the agent of the pod's node and relays both ways.
//!
//! ```text
//!   Resources.Exec (gRPC)  or  REST …/pods/<p>/exec (WebSocket, rest::exec)
//!     │ ExecStart (ns, pod, container, command, stdin, tty), then input
//!     ▼ service::exec_session: authenticated, `create` on pods/exec, audited
//!   pod_logs::target / endpoint ─► node, pod uid, container, agent endpoint   (pure)
//!   open(endpoint, start, input) ─► AgentStreams.Exec on the agent
//!     ◄── stdout / stderr chunks, then exit
//!   open_attach(endpoint, start, input) ─► AgentStreams.Attach: the same, on the
//!     container's own process (its stdio, no command)
//! ```
//!
//! The container and endpoint are found as for logs (`pod_logs`), and the agent is
//! dialled the same way (`agent_dial`). Owns the translation of the public exec messages
//! into the agent's and the call; it must not decide who may exec (the service does).

use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_streams_client::AgentStreamsClient;
use rafter_proto::{agent, api};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::agent_dial::{self, AgentTls};
use crate::pod_logs::{agent_status, PodLogError};

/// The agent's input message of a client's (None for a second start, which is ignored).
pub(crate) fn agent_input(message: api::ExecRequest) -> Option<agent::ExecRequest> {
    use agent::exec_request::Msg as Agent;
    use api::exec_request::Msg as Api;
    let msg = match message.msg? {
        Api::Stdin(data) => Agent::Stdin(data),
        Api::Resize(size) => Agent::Resize(size),
        Api::StdinClose(close) => Agent::StdinClose(close),
        Api::Start(_) => return None,
    };
    Some(agent::ExecRequest { msg: Some(msg) })
}

/// The agent's input message of an attaching client's (None for a second start).
pub(crate) fn attach_input(message: api::AttachRequest) -> Option<agent::AttachRequest> {
    use agent::attach_request::Msg as Agent;
    use api::attach_request::Msg as Api;
    let msg = match message.msg? {
        Api::Stdin(data) => Agent::Stdin(data),
        Api::Resize(size) => Agent::Resize(size),
        Api::StdinClose(close) => Agent::StdinClose(close),
        Api::Start(_) => return None,
    };
    Some(agent::AttachRequest { msg: Some(msg) })
}

/// A channel to the agent at `endpoint` of node `node`; failing, the Unavailable
/// answer that names the node.
pub(crate) async fn dial(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
) -> Result<Channel, Status> {
    agent_dial::connect(node, endpoint, tls)
        .await
        .map_err(|source| {
            PodLogError::Unreachable {
                node: node.to_owned(),
                source,
            }
            .status()
        })
}

/// Calls the agent at `endpoint` (of node `node`) to attach as `start` says, feeding
/// it `input`. The agent's refusals come back marked as the agent's.
pub(crate) async fn open_attach<I>(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
    start: agent::AttachStart,
    input: I,
) -> Result<Streaming<api::ExecResponse>, Status>
where
    I: Stream<Item = api::AttachRequest> + Send + 'static,
{
    let channel = dial(node, endpoint, tls).await?;
    let first = agent::AttachRequest {
        msg: Some(agent::attach_request::Msg::Start(start)),
    };
    let messages = futures::stream::once(async move { first })
        .chain(input.filter_map(|m| async move { attach_input(m) }));
    match AgentStreamsClient::new(channel).attach(messages).await {
        Ok(stream) => Ok(stream.into_inner()),
        Err(status) => Err(agent_status(Status::new(status.code(), status.message()))),
    }
}

/// Calls the agent at `endpoint` (of node `node`) to run `start`, feeding it `input`.
/// The agent's refusals (container not running ...) come back marked as the agent's.
pub(crate) async fn open<I>(
    node: &str,
    endpoint: &str,
    tls: Option<&AgentTls>,
    start: agent::ExecStart,
    input: I,
) -> Result<Streaming<api::ExecResponse>, Status>
where
    I: Stream<Item = api::ExecRequest> + Send + 'static,
{
    let channel = dial(node, endpoint, tls).await?;
    let first = agent::ExecRequest {
        msg: Some(agent::exec_request::Msg::Start(start)),
    };
    let messages = futures::stream::once(async move { first })
        .chain(input.filter_map(|m| async move { agent_input(m) }));
    match AgentStreamsClient::new(channel).exec(messages).await {
        Ok(stream) => Ok(stream.into_inner()),
        Err(status) => Err(agent_status(Status::new(status.code(), status.message()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_input_becomes_the_agents_and_a_second_start_is_dropped() {
        let stdin = api::ExecRequest {
            msg: Some(api::exec_request::Msg::Stdin(b"x".to_vec())),
        };
        assert_eq!(
            agent_input(stdin).and_then(|m| m.msg),
            Some(agent::exec_request::Msg::Stdin(b"x".to_vec()))
        );
        let start = api::ExecRequest {
            msg: Some(api::exec_request::Msg::Start(api::ExecStart::default())),
        };
        assert!(agent_input(start).is_none());
    }

    #[test]
    fn attaching_client_input_becomes_the_agents() {
        let close = api::AttachRequest {
            msg: Some(api::attach_request::Msg::StdinClose(true)),
        };
        assert_eq!(
            attach_input(close).and_then(|m| m.msg),
            Some(agent::attach_request::Msg::StdinClose(true))
        );
        let start = api::AttachRequest {
            msg: Some(api::attach_request::Msg::Start(api::AttachStart::default())),
        };
        assert!(attach_input(start).is_none());
    }
}
