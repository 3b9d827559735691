//! `rafter scale`: set the replicas of a Deployment or ReplicaSet through its scale
//! subresource.

use std::process::ExitCode;

use clap::Args;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter scale`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter scale deployment web --replicas 5\n  rafter scale rs/web-7d9f --replicas 0\n  rafter scale deploy web --replicas 3 --current-replicas 2   # only if it has 2 now"
)]
pub struct ScaleArgs {
    /// `KIND NAME` or `KIND/NAME` (deployments and replicasets).
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME")]
    target: Vec<String>,
    /// The number of replicas wanted.
    #[arg(long)]
    replicas: i32,
    /// Scale only when the object has this many replicas now.
    #[arg(long)]
    current_replicas: Option<i32>,
}

/// Runs `rafter scale`.
pub fn run(args: ScaleArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (kind, name, _) = kinds::target(&args.target, "scale")?;
    if args.replicas < 0 {
        anyhow::bail!("--replicas must be 0 or more, not {}", args.replicas);
    }
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let client = session.client();
    let mut resource_version = None;
    if let Some(expected) = args.current_replicas {
        let scale = session
            .block_on(client.get_scale(kind, &namespace, &name))
            .map_err(|e| kinds::explain(e, kind, &namespace, &name))?;
        let now = scale.replicas;
        if now != expected {
            anyhow::bail!(
                "{} has {now} replicas, not {expected} (--current-replicas); nothing was changed",
                kinds::describe_target(kind, &namespace, &name)
            );
        }
        resource_version = Some(scale.resource_version);
    }
    session
        .block_on(client.update_scale(
            kind,
            &namespace,
            &name,
            args.replicas,
            resource_version.as_deref(),
        ))
        .map_err(|e| kinds::explain(e, kind, &namespace, &name))?;
    println!("{} scaled", kinds::qualified(kind, &name));
    Ok(ExitCode::SUCCESS)
}
