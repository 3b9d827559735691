//! The agent's exec, attach and port-forward endpoint: the internal gRPC service
//! `rafter.agent.v1.AgentStreams`, which the masters' gateways call for `rafter exec` /
//! `kubectl exec` (pods/exec), `attach` (pods/attach) and `port-forward`
//! (pods/portforward). It is served on the same listener as the log and metrics endpoints (`log_server`), with the
//! same TLS and the same rule that only the masters may call.
//!
//! ```text
//!   gateway ─► AgentStreams.Exec ─► first message: ExecStart (ns, pod, uid, container, command)
//!                │                    └► the running container of that pod uid and name
//!                │                         (list_sandboxes + list_containers)
//!                │                    └► runtime.exec(container id, spec) ─► ExecSession
//!                ├─ later messages: stdin / resize / stdin_close ─► session.input
//!                └◄ stdout / stderr chunks, then exit ◄─ session.output
//!   gateway ─► AgentStreams.Attach: the same, with AttachStart and runtime.attach
//!   gateway ─► AgentStreams.PortForward ─► PortForwardStart (ns, pod, uid, port)
//!                │                    └► the ready sandbox of that pod uid
//!                │                    └► runtime.port_forward(sandbox id, port)
//!                ├─ later messages: data ─► session.input (their end: half-close)
//!                └◄ data ◄─ session.output; a failure ends the stream with an error
//!                   naming the pod and port
//! ```
//!
//! The end of the caller's stream closes the command's stdin; the caller going away
//! (tonic drops the answer stream) ends the command. Owns choosing the container and the
//! wire; it must not decide who may exec (the gateway does).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use rafter_proto::agent::agent_streams_server::AgentStreams;
use rafter_proto::agent::{
    attach_request, exec_request, port_forward_request, AttachRequest, ExecRequest,
    PortForwardRequest,
};
use rafter_proto::api::{exec_response, ExecExit, ExecResponse, PortForwardResponse};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::exec::{AttachSpec, ExecEvent, ExecInput, ExecSpec};
use crate::port_forward::PortForwardEvent;
use crate::runtime::ContainerRuntime;
use crate::status::{ContainerState, SandboxState};
use crate::RuntimeError;

/// The `AgentStreams` service of one node.
pub(crate) struct ExecServer {
    runtime: Arc<dyn ContainerRuntime>,
}

type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecResponse, Status>> + Send>>;
type PortForwardStream = Pin<Box<dyn Stream<Item = Result<PortForwardResponse, Status>> + Send>>;

/// The pod a stream's start names.
struct PodRef<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl PodRef<'_> {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn status_of(error: RuntimeError) -> Status {
    match &error {
        RuntimeError::NotFound { .. } => Status::not_found(error.to_string()),
        RuntimeError::InvalidSpec { .. } => Status::failed_precondition(error.to_string()),
        RuntimeError::Unsupported { .. } => Status::unimplemented(error.to_string()),
        _ => Status::unavailable(error.to_string()),
    }
}

impl ExecServer {
    pub(crate) fn new(runtime: Arc<dyn ContainerRuntime>) -> ExecServer {
        ExecServer { runtime }
    }

    /// The id of the running container `container` of `pod`.
    async fn container_id(&self, pod: &PodRef<'_>, container: &str) -> Result<String, Status> {
        let sandboxes = self.runtime.list_sandboxes().await.map_err(status_of)?;
        let mut best: Option<(u32, String)> = None;
        for sandbox in sandboxes.iter().filter(|s| s.pod_uid == pod.uid) {
            let containers = self
                .runtime
                .list_containers(Some(&sandbox.id))
                .await
                .map_err(status_of)?;
            for c in containers {
                if c.name == container
                    && c.state == ContainerState::Running
                    && best
                        .as_ref()
                        .is_none_or(|(attempt, _)| c.attempt >= *attempt)
                {
                    best = Some((c.attempt, c.id));
                }
            }
        }
        best.map(|(_, id)| id).ok_or_else(|| {
            Status::failed_precondition(format!(
                "container {container} of pod {} is not running on this node",
                pod.key()
            ))
        })
    }

    /// The id of the ready sandbox of `pod` (its latest attempt).
    async fn sandbox_id(&self, pod: &PodRef<'_>) -> Result<String, Status> {
        let sandboxes = self.runtime.list_sandboxes().await.map_err(status_of)?;
        sandboxes
            .into_iter()
            .filter(|s| s.pod_uid == pod.uid && s.state == SandboxState::Ready)
            .max_by_key(|s| s.attempt)
            .map(|s| s.id)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "pod {} has no running sandbox on this node",
                    pod.key()
                ))
            })
    }

    /// Relays the caller's later messages (as runtime input, by `input_of`) into `input`
    /// until the caller's stream ends, which closes stdin; the session goes on.
    fn feed<M, F>(
        mut inbound: Streaming<M>,
        input: tokio::sync::mpsc::Sender<ExecInput>,
        input_of: F,
    ) where
        M: Send + 'static,
        F: Fn(M) -> Option<ExecInput> + Send + 'static,
    {
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    () = input.closed() => return,
                };
                match message {
                    Ok(Some(message)) => {
                        if let Some(msg) = input_of(message) {
                            if input.send(msg).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        debug!("the caller's stream ended: stdin closed");
                        let _ = input.send(ExecInput::CloseStdin).await;
                        // Keep the session's input open: the session goes on.
                        input.closed().await;
                        return;
                    }
                }
            }
        });
    }
}

/// The runtime's input of one wire message (None for a message without content).
fn input_of(message: ExecRequest) -> Option<ExecInput> {
    match message.msg? {
        exec_request::Msg::Stdin(data) => Some(ExecInput::Stdin(data)),
        exec_request::Msg::Resize(size) => Some(ExecInput::Resize {
            width: u16::try_from(size.width).unwrap_or(u16::MAX),
            height: u16::try_from(size.height).unwrap_or(u16::MAX),
        }),
        exec_request::Msg::StdinClose(_) => Some(ExecInput::CloseStdin),
        exec_request::Msg::Start(_) => None,
    }
}

/// The runtime's input of one attach message (None for a message without content).
fn attach_input_of(message: AttachRequest) -> Option<ExecInput> {
    match message.msg? {
        attach_request::Msg::Stdin(data) => Some(ExecInput::Stdin(data)),
        attach_request::Msg::Resize(size) => Some(ExecInput::Resize {
            width: u16::try_from(size.width).unwrap_or(u16::MAX),
            height: u16::try_from(size.height).unwrap_or(u16::MAX),
        }),
        attach_request::Msg::StdinClose(_) => Some(ExecInput::CloseStdin),
        attach_request::Msg::Start(_) => None,
    }
}

/// A runtime's port-forward failure without its own "error forwarding port P to pod
/// SANDBOX, uid U: " lead (containerd's, which names the sandbox, not the pod).
fn runtime_reason(text: &str) -> &str {
    if !text.starts_with("error forwarding port ") {
        return text;
    }
    text.split_once(", uid ")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map_or(text, |(_, reason)| reason)
}

/// The wire message of one runtime event.
pub(crate) fn response_of(event: ExecEvent) -> ExecResponse {
    let msg = match event {
        ExecEvent::Stdout(data) => exec_response::Msg::Stdout(data),
        ExecEvent::Stderr(data) => exec_response::Msg::Stderr(data),
        ExecEvent::Exit { code, message } => exec_response::Msg::Exit(ExecExit { code, message }),
    };
    ExecResponse { msg: Some(msg) }
}

#[tonic::async_trait]
impl AgentStreams for ExecServer {
    type ExecStream = ExecStream;

    async fn exec(
        &self,
        request: Request<Streaming<ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = request.into_inner();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(exec_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an exec stream must be its start",
                ))
            }
        };
        if start.command.is_empty() {
            return Err(Status::invalid_argument("the exec names no command"));
        }
        let pod = PodRef {
            namespace: &start.namespace,
            name: &start.pod_name,
            uid: &start.pod_uid,
        };
        let id = self.container_id(&pod, &start.container).await?;
        let spec = ExecSpec {
            command: start.command.clone(),
            stdin: start.stdin,
            tty: start.tty,
        };
        let session = self.runtime.exec(&id, &spec).await.map_err(status_of)?;
        info!(
            pod = %format!("{}/{}", start.namespace, start.pod_name),
            container = %start.container,
            command = ?start.command,
            "exec started"
        );
        ExecServer::feed(inbound, session.input, input_of);
        let output = tokio_stream::wrappers::ReceiverStream::new(session.output)
            .map(|event| Ok(response_of(event)));
        Ok(Response::new(Box::pin(output)))
    }

    type AttachStream = ExecStream;

    async fn attach(
        &self,
        request: Request<Streaming<AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = request.into_inner();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(attach_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an attach stream must be its start",
                ))
            }
        };
        let pod = PodRef {
            namespace: &start.namespace,
            name: &start.pod_name,
            uid: &start.pod_uid,
        };
        let id = self.container_id(&pod, &start.container).await?;
        let spec = AttachSpec {
            stdin: start.stdin,
            tty: start.tty,
        };
        let session = self.runtime.attach(&id, &spec).await.map_err(status_of)?;
        info!(pod = %pod.key(), container = %start.container, "attached");
        ExecServer::feed(inbound, session.input, attach_input_of);
        let output = tokio_stream::wrappers::ReceiverStream::new(session.output)
            .map(|event| Ok(response_of(event)));
        Ok(Response::new(Box::pin(output)))
    }

    type PortForwardStream = PortForwardStream;

    async fn port_forward(
        &self,
        request: Request<Streaming<PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut inbound = request.into_inner();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(port_forward_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a port-forward stream must be its start",
                ))
            }
        };
        let pod = PodRef {
            namespace: &start.namespace,
            name: &start.pod_name,
            uid: &start.pod_uid,
        };
        let key = pod.key();
        let port = u16::try_from(start.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("port {} is not a TCP port", start.port))
            })?;
        let sandbox = self.sandbox_id(&pod).await?;
        let forwarding_failed =
            move |key: &str, why: &str| format!("error forwarding port {port} to pod {key}: {why}");
        let session = self
            .runtime
            .port_forward(&sandbox, port)
            .await
            .map_err(|e| match e {
                RuntimeError::Rpc { message, .. } => {
                    Status::unavailable(forwarding_failed(&key, &message))
                }
                other => {
                    let status = status_of(other);
                    Status::new(status.code(), forwarding_failed(&key, status.message()))
                }
            })?;
        debug!(pod = %key, port, "port-forward connected");
        let input = session.input;
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    () = input.closed() => return,
                };
                match message {
                    Ok(Some(PortForwardRequest {
                        msg: Some(port_forward_request::Msg::Data(data)),
                    })) => {
                        if input.send(data).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    // The caller's half-close: dropping `input` passes it on.
                    Ok(None) | Err(_) => return,
                }
            }
        });
        let output = tokio_stream::wrappers::ReceiverStream::new(session.output).map(
            move |event| match event {
                PortForwardEvent::Data(data) => Ok(PortForwardResponse { data }),
                PortForwardEvent::Failed(why) => Err(Status::unavailable(forwarding_failed(
                    &key,
                    runtime_reason(&why),
                ))),
            },
        );
        Ok(Response::new(Box::pin(output)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages_map_to_runtime_input() {
        let stdin = ExecRequest {
            msg: Some(exec_request::Msg::Stdin(b"hi".to_vec())),
        };
        assert_eq!(input_of(stdin), Some(ExecInput::Stdin(b"hi".to_vec())));
        let close = ExecRequest {
            msg: Some(exec_request::Msg::StdinClose(true)),
        };
        assert_eq!(input_of(close), Some(ExecInput::CloseStdin));
        let exit = response_of(ExecEvent::Exit {
            code: 3,
            message: String::new(),
        });
        assert_eq!(
            runtime_reason("error forwarding port 1 to pod 16a9, uid : failed to connect"),
            "failed to connect"
        );
        assert_eq!(runtime_reason("connection refused"), "connection refused");
        assert!(matches!(
            exit.msg,
            Some(exec_response::Msg::Exit(ExecExit { code: 3, .. }))
        ));
    }
}
