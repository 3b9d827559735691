//! `rafter logs`: a container's log, streamed to stdout.
//!
//! ```text
//!   rafter logs ─► any master (Resources.Logs) ─► the agent of the pod's node
//!        ▲                                              │ lines
//!        └──────────────── bytes to stdout ◄────────────┘
//! ```
//!
//! `job/NAME` reads the log of one of the Job's pods (as kubectl: running ones first, then
//! the oldest), saying which on stderr when it has several. The pod and container are
//! checked here first, for messages naming the choices; the
//! gateway checks them again. Output is written through Tokio's stdout as it arrives;
//! a closed stdout (`| head`) ends the command quietly. `-f` runs until Ctrl-C or until
//! the master serving the stream goes away (the stream is not resumed elsewhere).

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use rafter_client::{ListParams, LogParams};
use rafter_proto::{v1, Kind, Object};
use tokio::io::AsyncWriteExt;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter logs web-7d9f-abcde\n  rafter logs web-7d9f-abcde -c sidecar --tail 100\n  rafter logs -f web-7d9f-abcde\n  rafter logs web-7d9f-abcde --previous\n  rafter logs job/pi"
)]
pub struct LogsArgs {
    /// The pod (`NAME` or `pod/NAME`), or `job/NAME` for one of a Job's pods.
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

fn fetch_pod(session: &Session, namespace: &str, name: &str) -> anyhow::Result<v1::Pod> {
    match kinds::fetch(session, Kind::Pod, namespace, name)? {
        Object::Pod(pod) => Ok(pod),
        _ => bail!("the server answered with another kind for pod {name:?}"),
    }
}

/// The pod of Job `name` whose log to show: a running one first, then the oldest.
fn job_pod(session: &Session, namespace: &str, name: &str) -> anyhow::Result<v1::Pod> {
    let job = kinds::fetch(session, Kind::Job, namespace, name)?;
    let params = ListParams {
        label_selector: format!("{}={}", actors::CONTROLLER_UID_LABEL, job.metadata().uid),
        ..Default::default()
    };
    let list = session
        .block_on(session.client().list(Kind::Pod, Some(namespace), &params))
        .map_err(|e| anyhow::anyhow!("listing the pods of job {name:?}: {e}"))?;
    let mut pods: Vec<v1::Pod> = list
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect();
    let total = pods.len();
    pods.sort_by_key(|p| {
        let running = p.status.as_ref().is_some_and(|s| s.phase == "Running");
        let meta = p.metadata.clone().unwrap_or_default();
        (!running, meta.creation_timestamp, meta.name)
    });
    let Some(pod) = pods.into_iter().next() else {
        bail!("job {name:?} has no pods (yet)");
    };
    if total > 1 {
        let chosen = pod.metadata.as_ref().map_or("", |m| m.name.as_str());
        eprintln!("Found {total} pods, using pod/{chosen}");
    }
    Ok(pod)
}

/// Runs `rafter logs`.
pub fn run(args: LogsArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let pod = match args.pod.split_once('/') {
        Some((kind, name)) => match kinds::resolve(kind)? {
            Kind::Pod => fetch_pod(&session, &namespace, name)?,
            Kind::Job => job_pod(&session, &namespace, name)?,
            _ => bail!("logs are read from pods or jobs: give pod/NAME or job/NAME"),
        },
        None => fetch_pod(&session, &namespace, &args.pod)?,
    };
    let name = pod
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
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
