//! `rafter delete`: by name, by label selector, or everything a manifest names.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rafter_client::Propagation;
use rafter_client::{DeleteParams, ListParams};
use rafter_proto::{parse_manifests, Kind};

use crate::output::qualified_name;
use crate::session::{GlobalArgs, Session};
use crate::sources::read_sources;

/// What happens to an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cascade {
    /// Delete the owner now and its dependents after it (the default).
    Background,
    /// Delete the dependents first; the owner waits for them.
    Foreground,
    /// Leave the dependents, without their owner.
    Orphan,
}

/// `rafter delete`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter delete pod web-1\n  rafter delete -f deployment.yaml\n  rafter delete pods -l app=web --grace-period 0\n  rafter delete deploy web --cascade orphan"
)]
pub struct DeleteArgs {
    /// The kind, when deleting by name or selector.
    kind: Option<String>,
    /// Names.
    names: Vec<String>,
    /// Delete what these manifests name (files, directories, or - for standard input).
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Delete every object of the kind matching this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Seconds a pod gets to stop (0: at once).
    #[arg(long)]
    grace_period: Option<i64>,
    /// What happens to dependents.
    #[arg(long, value_enum)]
    cascade: Option<Cascade>,
    /// A missing object is not an error.
    #[arg(long)]
    ignore_not_found: bool,
}

/// Runs `rafter delete`.
pub fn run(args: DeleteArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut targets: Vec<(Kind, String, String)> = Vec::new();
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    if !args.files.is_empty() {
        for source in read_sources(&args.files, false)? {
            for document in parse_manifests(&source.text, &source.name) {
                let object = document?.object;
                let meta = object.metadata();
                let ns = if meta.namespace.is_empty() {
                    namespace.clone()
                } else {
                    meta.namespace.clone()
                };
                targets.push((object.kind(), ns, meta.name.clone()));
            }
        }
    } else {
        let Some(kind) = &args.kind else {
            bail!("say what to delete: KIND NAME..., KIND -l SELECTOR, or -f FILE");
        };
        let kind = Kind::resolve(kind)?;
        if let Some(selector) = &args.selector {
            let params = ListParams {
                label_selector: selector.clone(),
                ..Default::default()
            };
            let ns = kind.info().namespaced.then_some(namespace.as_str());
            let list = session
                .block_on(session.client().list(kind, ns, &params))
                .context("listing")?;
            for object in list.items {
                targets.push((
                    kind,
                    object.metadata().namespace.clone(),
                    object.metadata().name.clone(),
                ));
            }
        } else if args.names.is_empty() {
            bail!(
                "give the names of the {} to delete, or -l SELECTOR",
                kind.info().plural
            );
        } else {
            for name in &args.names {
                targets.push((kind, namespace.clone(), name.clone()));
            }
        }
    }
    let params = DeleteParams {
        grace_period_seconds: args.grace_period,
        propagation: args.cascade.map(|c| match c {
            Cascade::Background => Propagation::Background,
            Cascade::Foreground => Propagation::Foreground,
            Cascade::Orphan => Propagation::Orphan,
        }),
        ..Default::default()
    };
    let mut failed = false;
    for (kind, ns, name) in targets {
        let ns = if kind.info().namespaced {
            ns
        } else {
            String::new()
        };
        match session.block_on(session.client().delete(kind, &ns, &name, &params)) {
            Ok(deleted) => {
                let shown = deleted
                    .object
                    .as_ref()
                    .map(qualified_name)
                    .unwrap_or_else(|| format!("{}/{name}", kind.name().to_ascii_lowercase()));
                println!("{shown} deleted");
            }
            Err(rafter_client::ClientError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e) => {
                eprintln!("error: {} {name:?}: {e}", kind.name());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
