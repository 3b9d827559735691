//! `rafter wait`: block until objects meet a condition (`--for=condition=Ready`,
//! `--for=condition=complete`, `--for=condition=Ready=False`) or are gone
//! (`--for=delete`), as `kubectl wait` does.
//!
//! ```text
//!  targets (KIND/NAME…, or KIND with -l / --all) ─► list ─► met already? print
//!                                                    └─► watch from the list's revision
//!                                                        until every object is met
//!  --timeout over it all: exit 1 naming what was still waited for
//! ```
//!
//! Condition types compare case-insensitively (`complete` is `Complete`), the value
//! defaults to `True`. Owns the wait only; it writes nothing.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use rafter_client::{ListParams, WatchEventType, WatchParams};
use rafter_proto::{Kind, Object};

use crate::kinds;
use crate::output::qualified_name;
use crate::session::{GlobalArgs, Session};

/// `rafter wait`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter wait --for=condition=complete job/pi --timeout=60s\n  rafter wait --for=condition=Ready pod -l app=web\n  rafter wait --for=condition=Ready pods --all\n  rafter wait --for=delete pod/web-1 --timeout=2m"
)]
pub struct WaitArgs {
    /// What to wait for: KIND/NAME (repeatable), or KIND [NAME...] with -l or --all.
    #[arg(required = true)]
    targets: Vec<String>,
    /// `condition=TYPE[=VALUE]` or `delete`.
    #[arg(long = "for", value_name = "condition=TYPE[=VALUE]|delete")]
    wait_for: String,
    /// A label selector over the kind's objects.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    all: bool,
    /// How long to wait at most (30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// What an object must come to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Goal {
    /// A status condition of this type with this status (both lower-cased).
    Condition { kind: String, status: String },
    /// The object is gone.
    Delete,
}

impl Goal {
    fn parse(text: &str) -> anyhow::Result<Goal> {
        if text.eq_ignore_ascii_case("delete") {
            return Ok(Goal::Delete);
        }
        let Some(rest) = text.strip_prefix("condition=") else {
            bail!("--for {text:?}: write condition=TYPE[=VALUE] or delete");
        };
        let (kind, status) = rest.split_once('=').unwrap_or((rest, "true"));
        if kind.is_empty() {
            bail!("--for {text:?}: the condition type is empty");
        }
        Ok(Goal::Condition {
            kind: kind.to_ascii_lowercase(),
            status: status.to_ascii_lowercase(),
        })
    }

    /// Whether `object` (present) meets the goal.
    fn met(&self, object: &Object) -> bool {
        let Goal::Condition { kind, status } = self else {
            return false;
        };
        conditions(object)
            .iter()
            .any(|(k, s)| k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(status))
    }
}

/// The status conditions of an object, as (type, status).
fn conditions(object: &Object) -> Vec<(String, String)> {
    let list = match object {
        Object::Pod(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::Job(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::Deployment(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::Node(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::DaemonSet(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::ReplicaSet(o) => o.status.as_ref().map(|s| &s.conditions),
        Object::CertificateSigningRequest(o) => o.status.as_ref().map(|s| &s.conditions),
        _ => None,
    };
    list.map(|l| {
        l.iter()
            .map(|c| (c.r#type.clone(), c.status.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// One kind's objects to wait for.
struct Group {
    kind: Kind,
    /// The names; empty: every object the selector matches when the wait starts.
    names: Vec<String>,
}

fn groups(args: &WaitArgs) -> anyhow::Result<Vec<Group>> {
    let slashed = args.targets.iter().all(|t| t.contains('/'));
    if slashed {
        if args.selector.is_some() || args.all {
            bail!("-l and --all go with KIND, not KIND/NAME");
        }
        let mut groups: Vec<Group> = Vec::new();
        for target in &args.targets {
            let (kind, name) = target.split_once('/').unwrap_or_default();
            let kind = kinds::resolve(kind)?;
            match groups.iter_mut().find(|g| g.kind == kind) {
                Some(g) => g.names.push(name.to_owned()),
                None => groups.push(Group {
                    kind,
                    names: vec![name.to_owned()],
                }),
            }
        }
        return Ok(groups);
    }
    let kind = kinds::resolve(&args.targets[0])?;
    let names = args.targets[1..].to_vec();
    if names.is_empty() && args.selector.is_none() && !args.all {
        bail!(
            "say which {} to wait for: names, -l SELECTOR or --all",
            args.targets[0]
        );
    }
    Ok(vec![Group { kind, names }])
}

/// Runs `rafter wait`.
pub fn run(args: WaitArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let goal = Goal::parse(&args.wait_for)?;
    let groups = groups(&args)?;
    let session = Session::connect(globals)?;
    let selector = args.selector.clone().unwrap_or_default();
    let mut waiting = BTreeSet::new();
    let result = session.block_on(async {
        let work = async {
            for group in &groups {
                wait_group(&session, group, &selector, &goal, &mut waiting).await?;
            }
            Ok::<_, anyhow::Error>(())
        };
        tokio::time::timeout(args.timeout, work).await
    });
    match result {
        Ok(done) => done.map(|()| ExitCode::SUCCESS),
        Err(_) => {
            let what: Vec<String> = waiting.into_iter().collect();
            bail!(
                "timed out after {} waiting for the condition on {}",
                humantime::format_duration(args.timeout),
                what.join(", ")
            )
        }
    }
}

async fn wait_group(
    session: &Session,
    group: &Group,
    selector: &str,
    goal: &Goal,
    waiting: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    let kind = group.kind;
    let namespace = kinds::namespace(kind, session);
    let ns = kind.info().namespaced.then_some(namespace.as_str());
    let plural = kind.info().plural;
    let list = session
        .client()
        .list(
            kind,
            ns,
            &ListParams {
                label_selector: selector.to_owned(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("listing {plural}"))?;
    let mut pending: BTreeSet<String> = if group.names.is_empty() {
        list.items
            .iter()
            .map(|o| o.metadata().name.clone())
            .collect()
    } else {
        group.names.iter().cloned().collect()
    };
    if pending.is_empty() {
        bail!("no matching resources found");
    }
    let present: BTreeSet<String> = list
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    for name in &pending.clone() {
        if !present.contains(name) {
            if *goal == Goal::Delete {
                println!("{}/{name} condition met", kind.name().to_ascii_lowercase());
                pending.remove(name);
            } else {
                bail!("{plural} {name:?} not found");
            }
        }
    }
    for object in &list.items {
        let name = &object.metadata().name;
        if pending.contains(name) && goal.met(object) {
            println!("{} condition met", qualified_name(object));
            pending.remove(name);
        }
    }
    waiting.extend(pending.iter().map(|n| format!("{plural}/{n}")));
    if pending.is_empty() {
        return Ok(());
    }
    let params = WatchParams {
        label_selector: selector.to_owned(),
        field_selector: String::new(),
        bookmarks: false,
    };
    let from = (!list.resource_version.is_empty()).then_some(list.resource_version.as_str());
    let mut events = Box::pin(session.client().watch(kind, ns, &params, from));
    while let Some(event) = events.next().await {
        let event = event.with_context(|| format!("watching {plural}"))?;
        let Some(object) = event.object else { continue };
        let name = object.metadata().name.clone();
        if !pending.contains(&name) {
            continue;
        }
        let met = match event.event_type {
            WatchEventType::Deleted => *goal == Goal::Delete,
            _ => goal.met(&object),
        };
        if met {
            println!("{} condition met", qualified_name(&object));
            pending.remove(&name);
            waiting.remove(&format!("{plural}/{name}"));
            if pending.is_empty() {
                return Ok(());
            }
        }
    }
    bail!("the watch of {plural} ended before the condition was met")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_parse_with_kubectls_spelling() {
        assert_eq!(
            Goal::parse("condition=complete").unwrap(),
            Goal::Condition {
                kind: "complete".into(),
                status: "true".into()
            }
        );
        assert_eq!(
            Goal::parse("condition=Ready=False").unwrap(),
            Goal::Condition {
                kind: "ready".into(),
                status: "false".into()
            }
        );
        assert_eq!(Goal::parse("delete").unwrap(), Goal::Delete);
        assert!(Goal::parse("jsonpath={.status}").is_err());
    }

    #[test]
    fn a_condition_is_met_whatever_the_case_of_its_type() {
        let job = rafter_proto::parse_object(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nstatus: {conditions: [{type: Complete, status: 'True'}]}\n",
            "test",
        )
        .unwrap();
        assert!(Goal::parse("condition=complete").unwrap().met(&job));
        assert!(!Goal::parse("condition=failed").unwrap().met(&job));
        assert!(!Goal::parse("condition=complete=false").unwrap().met(&job));
    }
}
