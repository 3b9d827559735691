//! `rafter get`: list or read objects as tables, YAML, JSON or names, and `-w` to watch.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use rafter_client::WatchEventType;
use rafter_client::{ListParams, WatchParams};
use rafter_proto::{Kind, Object};

use crate::output::{render, table, Format};
use crate::session::{GlobalArgs, Session};

/// `rafter get`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter get pods\n  rafter get deploy web -o yaml\n  rafter get pods -A -l app=web -o wide\n  rafter get pods --field-selector spec.nodeName=worker-1\n  rafter get pods,svc\n  rafter get pods -w"
)]
pub struct GetArgs {
    /// The kind(s), comma-separated: pods, po, deploy, svc, nodes ...
    kind: String,
    /// Names to get; all when none is given.
    names: Vec<String>,
    /// Objects of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// A label selector: `app=web`, `tier in (a,b)`, `!canary`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// A field selector: `spec.nodeName=worker-1`, `status.phase=Running`.
    #[arg(long)]
    field_selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
    /// After listing, keep printing changes.
    #[arg(short = 'w', long)]
    watch: bool,
}

/// Runs `rafter get`.
pub fn run(args: GetArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let kinds = args
        .kind
        .split(',')
        .map(|k| Kind::resolve(k.trim()).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if kinds.len() > 1 && !args.names.is_empty() {
        bail!("names can only be given with one kind");
    }
    let session = Session::connect(globals)?;
    let client = session.client();
    let namespace = (!args.all_namespaces).then(|| session.namespace().to_owned());
    let params = ListParams {
        label_selector: args.selector.clone().unwrap_or_default(),
        field_selector: args.field_selector.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut failed = false;
    for (i, kind) in kinds.iter().copied().enumerate() {
        let ns = if kind.info().namespaced {
            namespace.as_deref()
        } else {
            None
        };
        let (objects, revision) = if args.names.is_empty() {
            let list = session
                .block_on(client.list(kind, ns, &params))
                .with_context(|| format!("listing {}", kind.info().plural))?;
            (list.items, list.resource_version)
        } else {
            let mut objects = Vec::new();
            for name in &args.names {
                match session.block_on(client.get(kind, ns.unwrap_or_default(), name)) {
                    Ok(object) => objects.push(object),
                    Err(e) => {
                        eprintln!("Error from server (NotFound): {}: {e}", kind.info().plural);
                        failed = true;
                    }
                }
            }
            (objects, String::new())
        };
        if objects.is_empty() && args.output.is_none() && !args.watch {
            match ns {
                Some(ns) => eprintln!("No resources found in {ns} namespace."),
                None => eprintln!("No resources found"),
            }
        } else if !objects.is_empty() || args.output.is_some() {
            if i > 0 {
                println!();
            }
            print!(
                "{}",
                render(&objects, kind, args.output, args.all_namespaces)?
            );
        }
        if args.watch {
            watch(
                &session,
                kind,
                ns,
                &params,
                &revision,
                args.all_namespaces,
                args.output,
            )?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn watch(
    session: &Session,
    kind: Kind,
    namespace: Option<&str>,
    params: &ListParams,
    revision: &str,
    all_namespaces: bool,
    output: Option<Format>,
) -> anyhow::Result<()> {
    let params = WatchParams {
        label_selector: params.label_selector.clone(),
        field_selector: params.field_selector.clone(),
        bookmarks: false,
    };
    let from = (!revision.is_empty()).then_some(revision);
    let mut events = Box::pin(session.client().watch(kind, namespace, &params, from));
    session.block_on(async {
        while let Some(event) = events.next().await {
            let event = event.context("watching")?;
            let Some(object) = event.object else { continue };
            let shown: Vec<Object> = vec![object];
            match output {
                None | Some(Format::Wide) => {
                    let text = table(&shown, kind, output == Some(Format::Wide), all_namespaces);
                    // The header only once, as kubectl does.
                    let row = text.lines().nth(1).unwrap_or_default();
                    let marker = if event.event_type == WatchEventType::Deleted {
                        "  (deleted)"
                    } else {
                        ""
                    };
                    println!("{row}{marker}");
                }
                other => print!("{}", render(&shown, kind, other, all_namespaces)?),
            }
        }
        Ok::<_, anyhow::Error>(())
    })
}
