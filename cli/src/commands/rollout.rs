//! `rafter rollout status|history|undo|pause|resume|restart` for Deployments.
//!
//! The revisions of a Deployment are its ReplicaSets (owner reference by uid), numbered
//! by the `deployment.kubernetes.io/revision` annotation the deployment controller sets.
//! `undo` copies a revision's pod template back into the Deployment (without the
//! `pod-template-hash` label the controller adds) with an update that carries the
//! resourceVersion read, so a concurrent change is a Conflict, not a lost write. Which
//! revision and template that is, is [`actors::rollback_target`]'s decision (the
//! controllers' crate owns the rollback semantics); this module only words its errors.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use rafter_client::ListParams;
use rafter_client::PatchType;
use rafter_proto::{v1, Kind, Object};
use serde_json::json;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// The annotation holding a ReplicaSet's revision.
pub use actors::REVISION_ANNOTATION;
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `rafter rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

/// `KIND NAME` or `KIND/NAME` of a Deployment.
#[derive(Debug, Args)]
pub struct Target {
    /// `deployment NAME` or `deployment/NAME`.
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME")]
    target: Vec<String>,
}

/// The verbs of `rafter rollout`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Wait until a Deployment's rollout is finished, printing its progress.
    #[command(
        after_help = "Examples:\n  rafter rollout status deployment/web\n  rafter rollout status deploy web --timeout 2m\n  rafter rollout status deploy web --watch=false   # print once"
    )]
    Status(StatusArgs),
    /// List a Deployment's revisions (its ReplicaSets), or show one.
    #[command(
        after_help = "Examples:\n  rafter rollout history deployment/web\n  rafter rollout history deploy web --revision 2"
    )]
    History(HistoryArgs),
    /// Put back the pod template of the previous revision (or of --to-revision).
    #[command(
        after_help = "Examples:\n  rafter rollout undo deployment/web\n  rafter rollout undo deploy web --to-revision 1"
    )]
    Undo(UndoArgs),
    /// Stop rolling out template changes (spec.paused = true).
    #[command(after_help = "Examples:\n  rafter rollout pause deployment/web")]
    Pause(Target),
    /// Resume a paused rollout (spec.paused = false).
    #[command(after_help = "Examples:\n  rafter rollout resume deployment/web")]
    Resume(Target),
    /// Replace every pod, by stamping the template with the time of the restart.
    #[command(after_help = "Examples:\n  rafter rollout restart deployment/web")]
    Restart(Target),
}

/// `rafter rollout status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Give up after this long (30s, 5m); 0 waits for ever.
    #[arg(long, default_value = "0", value_parser = kinds::parse_duration)]
    timeout: Duration,
    /// Keep waiting for the rollout to finish (false: print the state once).
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
    watch: bool,
}

/// `rafter rollout history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    /// Show the pod template of this revision.
    #[arg(long)]
    revision: Option<i64>,
}

/// `rafter rollout undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    #[command(flatten)]
    target: Target,
    /// The revision to go back to [default: 0, the one before the current].
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    to_revision: Option<i64>,
}

/// Runs `rafter rollout`.
pub fn run(args: RolloutArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RolloutCommand::Status(a) => status(a, globals),
        RolloutCommand::History(a) => history(a, globals),
        RolloutCommand::Undo(a) => undo(a, globals),
        RolloutCommand::Pause(t) => set_paused(t, globals, true),
        RolloutCommand::Resume(t) => set_paused(t, globals, false),
        RolloutCommand::Restart(t) => restart(t, globals),
    }
}

/// The Deployment a target names, with the session and namespace.
fn deployment_name(target: &Target) -> anyhow::Result<String> {
    let (kind, name, _) = kinds::target(&target.target, "roll out")?;
    if kind != Kind::Deployment {
        bail!(
            "rollout works on deployments, not {} (try `rafter rollout status deployment/{name}`)",
            kind.info().plural
        );
    }
    Ok(name)
}

fn get_deployment(
    session: &Session,
    namespace: &str,
    name: &str,
) -> anyhow::Result<v1::Deployment> {
    match kinds::fetch(session, Kind::Deployment, namespace, name)? {
        Object::Deployment(d) => Ok(d),
        other => bail!(
            "the server answered with a {} for a Deployment",
            other.kind()
        ),
    }
}

/// What a rollout's status means: done, or the line to print while waiting.
pub fn rollout_progress(deployment: &v1::Deployment) -> Result<String, String> {
    let meta = deployment.metadata.clone().unwrap_or_default();
    let spec = deployment.spec.clone().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let name = &meta.name;
    let replicas = spec.replicas.unwrap_or(1);
    if status.observed_generation < meta.generation {
        return Err("Waiting for deployment spec update to be observed...".to_owned());
    }
    if let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.r#type == "Progressing" && c.reason == "ProgressDeadlineExceeded")
    {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline{}",
            if c.message.is_empty() {
                String::new()
            } else {
                format!(": {}", c.message)
            }
        ));
    }
    if status.updated_replicas < replicas {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {replicas} new replicas have been updated...",
            status.updated_replicas
        ));
    }
    if status.replicas > status.updated_replicas {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            status.replicas - status.updated_replicas
        ));
    }
    if status.available_replicas < status.updated_replicas {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
            status.available_replicas, status.updated_replicas
        ));
    }
    Ok(format!("deployment {name:?} successfully rolled out"))
}

fn status(args: StatusArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = deployment_name(&args.target)?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let deployment = get_deployment(&session, &namespace, &name)?;
        match rollout_progress(&deployment) {
            Ok(done) => {
                println!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(waiting) if waiting.contains("exceeded its progress deadline") => {
                bail!("{waiting}");
            }
            Err(waiting) => {
                if waiting != last {
                    println!("{waiting}");
                    last = waiting;
                }
            }
        }
        if !args.watch {
            return Ok(ExitCode::FAILURE);
        }
        if !args.timeout.is_zero() && started.elapsed() >= args.timeout {
            bail!(
                "timed out after {:?} waiting for the rollout of deployment {name:?} to finish; see `rafter describe deployment {name}`",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The revision number of a ReplicaSet, 0 when it has none.
pub fn revision_of(meta: &v1::ObjectMeta) -> i64 {
    meta.annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSets a Deployment owns, oldest revision first.
pub fn owned_replica_sets(
    session: &Session,
    deployment: &v1::Deployment,
) -> anyhow::Result<Vec<v1::ReplicaSet>> {
    let meta = deployment.metadata.clone().unwrap_or_default();
    let list = session
        .block_on(session.client().list(
            Kind::ReplicaSet,
            Some(&meta.namespace),
            &ListParams::default(),
        ))
        .map_err(|e| {
            anyhow::anyhow!("listing the replicasets of deployment {:?}: {e}", meta.name)
        })?;
    let mut owned: Vec<v1::ReplicaSet> = list
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::ReplicaSet(rs) => Some(rs),
            _ => None,
        })
        .filter(|rs| {
            rs.metadata
                .as_ref()
                .is_some_and(|m| m.owner_references.iter().any(|o| o.uid == meta.uid))
        })
        .collect();
    owned.sort_by_key(|rs| rs.metadata.as_ref().map(revision_of).unwrap_or(0));
    Ok(owned)
}

fn history(args: HistoryArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = deployment_name(&args.target)?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let deployment = get_deployment(&session, &namespace, &name)?;
    let owned = owned_replica_sets(&session, &deployment)?;
    if let Some(wanted) = args.revision {
        let Some(rs) = owned
            .iter()
            .find(|rs| rs.metadata.as_ref().map(revision_of) == Some(wanted))
        else {
            bail!("deployment {name:?} has no revision {wanted}; list them with `rafter rollout history deployment/{name}`");
        };
        println!(
            "{} with revision #{wanted}",
            kinds::qualified(Kind::Deployment, &name)
        );
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        print!("{}", serde_yaml::to_string(&template)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", kinds::qualified(Kind::Deployment, &name));
    if owned.is_empty() {
        println!("No rollout history found (the deployment owns no ReplicaSets yet).");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = owned
        .iter()
        .map(|rs| {
            let meta = rs.metadata.clone().unwrap_or_default();
            let cause = meta
                .annotations
                .get(CHANGE_CAUSE)
                .cloned()
                .unwrap_or_else(|| "<none>".to_owned());
            vec![revision_of(&meta).to_string(), cause]
        })
        .collect();
    print!(
        "{}",
        crate::table::render(&["REVISION", "CHANGE-CAUSE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// What `rollout undo` does to a Deployment.
#[derive(Debug, PartialEq)]
pub enum Undo {
    /// Nothing: its template already is that of this revision.
    AlreadyAt(i64),
    /// Put back this revision's template.
    To(i64, Box<v1::PodTemplateSpec>),
}

/// Plans `rollout undo [--to-revision N]` (0 or none: the revision before the newest)
/// of `deployment`, whose ReplicaSets are `owned`: [`actors::rollback_target`] picks the
/// revision, and its errors are worded with the revisions there are.
pub fn plan_undo(
    deployment: &v1::Deployment,
    owned: &[v1::ReplicaSet],
    to_revision: Option<i64>,
) -> Result<Undo, String> {
    let refs: Vec<&v1::ReplicaSet> = owned.iter().collect();
    let (revision, template) = actors::rollback_target(deployment, &refs, to_revision.unwrap_or(0))
        .map_err(|e| {
            let revisions = revisions_text(owned);
            match e {
                actors::RollbackError::NoHistory(_) => {
                    format!("it has no previous revision to go back to (revisions: {revisions})")
                }
                actors::RollbackError::RevisionNotFound(wanted) => {
                    format!("it has no revision {wanted} (revisions: {revisions})")
                }
            }
        })?;
    let current = deployment.spec.as_ref().and_then(|s| s.template.as_ref());
    Ok(if current == Some(&template) {
        Undo::AlreadyAt(revision)
    } else {
        Undo::To(revision, Box::new(template))
    })
}

/// `1, 2, 3`: the distinct revisions of `owned`, or `none`.
fn revisions_text(owned: &[v1::ReplicaSet]) -> String {
    let mut revisions: Vec<i64> = owned
        .iter()
        .map(|rs| rs.metadata.as_ref().map(revision_of).unwrap_or(0))
        .filter(|r| *r > 0)
        .collect();
    revisions.sort_unstable();
    revisions.dedup();
    if revisions.is_empty() {
        return "none".to_owned();
    }
    revisions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn undo(args: UndoArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = deployment_name(&args.target)?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    // The deployment controller writes the Deployment's status as it works: a Conflict
    // means "read again and redo", as kubectl does for its own writes.
    let mut attempt = 0;
    let revision = loop {
        attempt += 1;
        let mut deployment = get_deployment(&session, &namespace, &name)?;
        let owned = owned_replica_sets(&session, &deployment)?;
        let (revision, template) = match plan_undo(&deployment, &owned, args.to_revision)
            .map_err(|e| anyhow::anyhow!("cannot roll back deployment {name:?}: {e}"))?
        {
            Undo::To(revision, template) => (revision, template),
            Undo::AlreadyAt(revision) => {
                println!(
                    "{} skipped rollback (current template already matches revision {revision})",
                    kinds::qualified(Kind::Deployment, &name)
                );
                return Ok(ExitCode::SUCCESS);
            }
        };
        deployment
            .spec
            .get_or_insert_with(Default::default)
            .template = Some(*template);
        match session.block_on(session.client().update(Object::Deployment(deployment))) {
            Ok(_) => break revision,
            Err(rafter_client::ClientError::Conflict { .. }) if attempt < 5 => continue,
            Err(e) => return Err(kinds::explain(e, Kind::Deployment, &namespace, &name)),
        }
    };
    println!(
        "{} rolled back to revision {revision}",
        kinds::qualified(Kind::Deployment, &name)
    );
    Ok(ExitCode::SUCCESS)
}

fn set_paused(target: Target, globals: &GlobalArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let name = deployment_name(&target)?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let deployment = get_deployment(&session, &namespace, &name)?;
    let word = if paused { "paused" } else { "resumed" };
    if deployment.spec.as_ref().is_some_and(|s| s.paused) == paused {
        println!(
            "{} is already {}",
            kinds::qualified(Kind::Deployment, &name),
            if paused {
                "paused"
            } else {
                "running (not paused)"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    patch(
        &session,
        &namespace,
        &name,
        json!({"spec": {"paused": paused}}),
    )?;
    println!("{} {word}", kinds::qualified(Kind::Deployment, &name));
    Ok(ExitCode::SUCCESS)
}

fn restart(target: Target, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = deployment_name(&target)?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let deployment = get_deployment(&session, &namespace, &name)?;
    if deployment.spec.as_ref().is_some_and(|s| s.paused) {
        bail!("deployment {name:?} is paused; resume it first (`rafter rollout resume deployment/{name}`)");
    }
    let now = rafter_proto::Timestamp::now().to_rfc3339();
    patch(
        &session,
        &namespace,
        &name,
        json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
    )?;
    println!("{} restarted", kinds::qualified(Kind::Deployment, &name));
    Ok(ExitCode::SUCCESS)
}

fn patch(
    session: &Session,
    namespace: &str,
    name: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    session
        .block_on(session.client().patch(
            Kind::Deployment,
            namespace,
            name,
            PatchType::Merge,
            &body,
        ))
        .map_err(|e| kinds::explain(e, Kind::Deployment, namespace, name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::POD_TEMPLATE_HASH_LABEL as HASH_LABEL;

    fn rs(revision: i64, image: &str) -> v1::ReplicaSet {
        v1::ReplicaSet {
            metadata: Some(v1::ObjectMeta {
                annotations: [(REVISION_ANNOTATION.to_owned(), revision.to_string())].into(),
                ..Default::default()
            }),
            spec: Some(v1::ReplicaSetSpec {
                template: Some(v1::PodTemplateSpec {
                    metadata: Some(v1::ObjectMeta {
                        labels: [
                            ("app".to_owned(), "web".to_owned()),
                            (HASH_LABEL.to_owned(), format!("h{revision}")),
                        ]
                        .into(),
                        ..Default::default()
                    }),
                    spec: Some(Box::new(v1::PodSpec {
                        containers: vec![v1::Container {
                            name: "c".into(),
                            image: image.into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn deployment(image: &str) -> v1::Deployment {
        let template = rs(1, image).spec.and_then(|s| s.template).map(|mut t| {
            if let Some(m) = t.metadata.as_mut() {
                m.labels.remove(HASH_LABEL);
            }
            t
        });
        v1::Deployment {
            metadata: Some(v1::ObjectMeta {
                name: "web".into(),
                ..Default::default()
            }),
            spec: Some(v1::DeploymentSpec {
                template,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn image(undo: Undo) -> (i64, String) {
        match undo {
            Undo::To(revision, template) => {
                (revision, template.spec.unwrap().containers[0].image.clone())
            }
            Undo::AlreadyAt(revision) => panic!("already at revision {revision}"),
        }
    }

    #[test]
    fn undo_goes_to_the_revision_before_the_newest_without_the_hash_label() {
        let owned = vec![rs(3, "c:3"), rs(1, "c:1"), rs(2, "c:2")];
        let Undo::To(revision, template) = plan_undo(&deployment("c:3"), &owned, None).unwrap()
        else {
            panic!("nothing to undo");
        };
        assert_eq!(revision, 2);
        let spec = template.spec.unwrap();
        assert_eq!(spec.containers[0].image, "c:2");
        let labels = template.metadata.unwrap().labels;
        assert!(!labels.contains_key(HASH_LABEL));
        assert_eq!(labels["app"], "web");
    }

    #[test]
    fn undo_counts_replica_sets_sharing_the_newest_revision_once() {
        // Two ReplicaSets carry revision 2 (say one adopted from a Deployment of the same
        // name): the revision before the newest is still 1, not the other 2.
        let owned = vec![rs(1, "c:1"), rs(2, "c:2"), rs(2, "c:2")];
        assert_eq!(
            image(plan_undo(&deployment("c:2"), &owned, None).unwrap()),
            (1, "c:1".to_owned())
        );
        assert_eq!(
            image(plan_undo(&deployment("c:2"), &owned, Some(0)).unwrap()),
            (1, "c:1".to_owned()),
            "--to-revision 0 is the previous revision, as in kubectl"
        );
        let error = plan_undo(&deployment("c:2"), &owned, Some(7)).unwrap_err();
        assert_eq!(error, "it has no revision 7 (revisions: 1, 2)");
        let error = plan_undo(&deployment("c:2"), &owned[1..], None).unwrap_err();
        assert_eq!(
            error,
            "it has no previous revision to go back to (revisions: 2)"
        );
    }

    #[test]
    fn undo_to_a_missing_revision_names_the_ones_there_are() {
        let owned = vec![rs(1, "c:1"), rs(2, "c:2")];
        assert_eq!(
            image(plan_undo(&deployment("c:2"), &owned, Some(1)).unwrap()),
            (1, "c:1".to_owned())
        );
        let error = plan_undo(&deployment("c:2"), &owned, Some(7)).unwrap_err();
        assert!(error.contains("revisions: 1, 2"), "{error}");
        assert!(plan_undo(&deployment("c:2"), &owned[..1], None).is_err());
    }

    #[test]
    fn undo_to_the_current_template_is_skipped() {
        let owned = vec![rs(1, "c:1"), rs(2, "c:2")];
        assert_eq!(
            plan_undo(&deployment("c:1"), &owned, None),
            Ok(Undo::AlreadyAt(1))
        );
    }

    #[test]
    fn progress_lines_follow_the_status() {
        let mut d = v1::Deployment {
            metadata: Some(v1::ObjectMeta {
                name: "web".into(),
                generation: 2,
                ..Default::default()
            }),
            spec: Some(v1::DeploymentSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            status: Some(v1::DeploymentStatus {
                observed_generation: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(rollout_progress(&d).unwrap_err().contains("spec update"));
        let status = d.status.as_mut().unwrap();
        status.observed_generation = 2;
        status.updated_replicas = 3;
        status.replicas = 3;
        status.available_replicas = 1;
        assert_eq!(
            rollout_progress(&d).unwrap_err(),
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available..."
        );
        d.status.as_mut().unwrap().available_replicas = 3;
        assert_eq!(
            rollout_progress(&d).unwrap(),
            "deployment \"web\" successfully rolled out"
        );
    }
}
