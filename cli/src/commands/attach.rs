//! `rafter attach`: the stdio of a running container's own process, streamed both ways.
//!
//! ```text
//!   stdin (-i) ─► AttachRequest{stdin} ─┐                    ┌─► agent ─► the container's
//!                                        ▼                    │           process
//!   rafter attach ─► any master (Resources.Attach, pods/attach)┘
//!        ▲                                                    │
//!        └── its stdout / stderr from now on, then the end ◄──┘
//! ```
//!
//! Output written before the attach is not shown (`rafter logs` has it). `-i` passes the
//! local stdin to the container (started with `stdin: true`); its end closes the
//! container's stdin only where the container has `stdinOnce`. `-t` puts a local
//! terminal in raw mode and sends its size, as `rafter exec -t` does. The command ends
//! when the container does, or when it is interrupted (detaching).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rafter_proto::api::{attach_request, AttachRequest, AttachStart};

use super::exec::{relay_output, send_stdin, send_terminal_sizes, RawMode};
use super::pod_target::{self, Named};
use crate::session::{GlobalArgs, Session};

/// `rafter attach`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter attach web-7d9f-abcde\n  rafter attach -it shell -c app\n  rafter attach deploy/web"
)]
pub struct AttachArgs {
    /// The pod (`NAME`, `pod/NAME`, `deploy/NAME` or `svc/NAME`).
    pod: String,
    /// The container [default: the pod's only container].
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// The container has a terminal: put the local one in raw mode.
    #[arg(short = 't', long)]
    tty: bool,
}

/// Runs `rafter attach`; ends when the container does or the attach breaks.
pub fn run(args: AttachArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let named = pod_target::parse(&args.pod, "attach")?;
    let session = Session::connect(globals)?;
    let code = session.block_on(async {
        let name = match &named {
            Named::Pod(name) => name.clone(),
            _ => {
                let (pod, _) =
                    pod_target::resolve(session.client(), session.namespace(), &named).await?;
                pod.metadata.map(|m| m.name).unwrap_or_default()
            }
        };
        let start = AttachStart {
            namespace: session.namespace().to_owned(),
            name: name.clone(),
            container: args.container.clone().unwrap_or_default(),
            stdin: args.stdin,
            tty: args.tty,
        };
        let mut attach = session
            .client()
            .attach(start)
            .await
            .with_context(|| format!("attach to pod {name:?}"))?;
        let raw = RawMode::enter(args.tty);
        if raw.0.is_some() {
            send_terminal_sizes(attach.input.clone(), |size| AttachRequest {
                msg: Some(attach_request::Msg::Resize(size)),
            });
        }
        if args.stdin {
            send_stdin(attach.input.clone(), |read| AttachRequest {
                msg: Some(match read {
                    Some(data) => attach_request::Msg::Stdin(data),
                    None => attach_request::Msg::StdinClose(true),
                }),
            });
        }
        relay_output(
            &mut attach.output,
            raw,
            &format!("the attach stream of pod {name:?}"),
        )
        .await
    })?;
    // A reader still blocked on the local stdin must not keep the process alive.
    std::process::exit(code);
}
