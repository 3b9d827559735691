//! `rafter logs`: a container's log.
//!
//! The API defines `Resources.Logs` (pods/log, streamed from the node agent), but the
//! gateway answers it with UNIMPLEMENTED until the node agent serves logs, and the
//! client library has no call for it yet. This verb checks the pod and container, then
//! says so plainly instead of pretending.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rafter_proto::{Kind, Object};

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter logs web-7d9f-abcde\n  rafter logs web-7d9f-abcde -c sidecar --tail 100\n  rafter logs -f web-7d9f-abcde\n  rafter logs web-7d9f-abcde --previous\n\nNote: log streaming from the node agents is not served by the API yet; until it is,\nthis command reports that and exits with status 1."
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
    /// Only the last N lines.
    #[arg(long)]
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
    let _ = (args.follow, args.previous, args.tail);
    bail!(
        "cannot read the log of container {container:?} of pod {name:?}: the API does not serve pods/log yet \
         (the gateway answers UNIMPLEMENTED: node agents do not stream logs to it so far). \
         On a `rafter up` cluster, the agents' own logs are under the cluster's --dir."
    )
}
