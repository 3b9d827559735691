//! `rafter logs`: a container's log, streamed to stdout.
//!
//! ```text
//!   rafter logs ─► any master (Resources.Logs) ─► the agent of the pod's node
//!        ▲                                              │ lines
//!        └──────────────── bytes to stdout ◄────────────┘
//! ```
//!
//! The pod and container are checked here first, for messages naming the choices; the
//! gateway checks them again. Output is written through Tokio's stdout as it arrives;
//! a closed stdout (`| head`) ends the command quietly. `-f` runs until Ctrl-C or until
//! the master serving the stream goes away (the stream is not resumed elsewhere).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use rafter_client::LogParams;
use rafter_proto::{Kind, Object};
use tokio::io::AsyncWriteExt;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter logs web-7d9f-abcde\n  rafter logs web-7d9f-abcde -c sidecar --tail 100\n  rafter logs -f web-7d9f-abcde\n  rafter logs web-7d9f-abcde --previous"
)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pod: String,
    /// The container [default: the pod's only container].
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The log of the previous (restarted) instance of the container.
    #[arg(short = 'p', long)]
    previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, allow_negative_numbers = true)]
    tail: Option<i64>,
}

/// Runs `rafter logs`.
pub fn run(args: LogsArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = match args.pod.split_once('/') {
        Some((kind, name)) if kinds::resolve(kind)? == Kind::Pod => name.to_owned(),
        Some(_) => bail!("logs are read from pods: give a pod name"),
        None => args.pod.clone(),
    };
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let Object::Pod(pod) = kinds::fetch(&session, Kind::Pod, &namespace, &name)? else {
        bail!("the server answered with another kind for pod {name:?}");
    };
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let container = match &args.container {
        Some(c) if !containers.contains(c) => bail!(
            "pod {name:?} has no container {c:?} (its containers: {})",
            containers.join(", ")
        ),
        Some(c) => c.clone(),
        None if containers.len() == 1 => containers[0].clone(),
        None => bail!(
            "pod {name:?} has several containers; pick one with -c ({})",
            containers.join(", ")
        ),
    };
    let params = LogParams {
        container: Some(container),
        follow: args.follow,
        previous: args.previous,
        // kubectl's --tail=-1 means all lines.
        tail_lines: args.tail.filter(|n| *n >= 0),
    };
    let stream = session.client().logs(&namespace, &name, params);
    session.block_on(async move {
        let mut stream = std::pin::pin!(stream);
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading the log of pod {name:?}"))?;
            let written = async {
                stdout.write_all(&chunk).await?;
                stdout.flush().await
            }
            .await;
            match written {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e).context("writing to stdout"),
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
