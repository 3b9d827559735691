//! `rafter cordon`, `rafter uncordon` and `rafter drain`.
//!
//! Drain cordons the node, then evicts its pods and waits until they are gone. Like
//! kubectl it refuses, unless told otherwise, pods no controller would recreate
//! (`--force`) and pods a DaemonSet would put straight back (`--ignore-daemonsets`).
//! Mirror pods (the `kubernetes.io/config.mirror` annotation) and pods already finished
//! are left alone.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use rafter_client::ListParams;
use rafter_client::{ClientError, PatchType};
use rafter_proto::{v1, Kind, Object};
use serde_json::json;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// `rafter cordon`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  rafter cordon w1\n  rafter cordon node/w1")]
pub struct CordonArgs {
    /// The node (`NAME` or `node/NAME`).
    node: String,
}

/// `rafter drain`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter drain w1 --ignore-daemonsets\n  rafter drain w1 --ignore-daemonsets --force --grace-period 10 --timeout 2m"
)]
pub struct DrainArgs {
    /// The node (`NAME` or `node/NAME`).
    node: String,
    /// Leave DaemonSet-managed pods on the node (a DaemonSet would recreate them there).
    #[arg(long)]
    ignore_daemonsets: bool,
    /// Also evict pods that no controller owns (they are gone for good).
    #[arg(long)]
    force: bool,
    /// Seconds each pod gets to stop [default: its own terminationGracePeriodSeconds].
    #[arg(long)]
    grace_period: Option<i64>,
    /// Give up after this long (30s, 5m); 0 waits for ever.
    #[arg(long, default_value = "0", value_parser = kinds::parse_duration)]
    timeout: Duration,
}

fn node_name(typed: &str) -> anyhow::Result<String> {
    match typed.split_once('/') {
        Some((kind, name)) => {
            if kinds::resolve(kind)? != Kind::Node {
                bail!("{typed:?} is not a node");
            }
            Ok(name.to_owned())
        }
        None => Ok(typed.to_owned()),
    }
}

/// Runs `rafter cordon` (`unschedulable = true`) or `rafter uncordon` (`false`).
pub fn cordon(
    args: CordonArgs,
    globals: &GlobalArgs,
    unschedulable: bool,
) -> anyhow::Result<ExitCode> {
    let name = node_name(&args.node)?;
    let session = Session::connect(globals)?;
    set_unschedulable(&session, &name, unschedulable)?;
    Ok(ExitCode::SUCCESS)
}

fn set_unschedulable(session: &Session, name: &str, unschedulable: bool) -> anyhow::Result<()> {
    let Object::Node(node) = kinds::fetch(session, Kind::Node, "", name)? else {
        bail!("the server answered with another kind for node {name:?}");
    };
    let word = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    if node.spec.as_ref().is_some_and(|s| s.unschedulable) == unschedulable {
        println!("node/{name} already {word}");
        return Ok(());
    }
    let patch = json!({"spec": {"unschedulable": unschedulable}});
    session
        .block_on(
            session
                .client()
                .patch(Kind::Node, "", name, PatchType::Merge, &patch),
        )
        .map_err(|e| kinds::explain(e, Kind::Node, "", name))?;
    println!("node/{name} {word}");
    Ok(())
}

/// What drain does with one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Evict,
    /// Evicted, with a warning that nothing recreates it.
    EvictUnmanaged,
    /// Left on the node (DaemonSet-managed with --ignore-daemonsets, mirror, finished).
    Skip,
    /// DaemonSet-managed, without --ignore-daemonsets.
    RefuseDaemonSet,
    /// No controller, without --force.
    RefuseUnmanaged,
}

fn verdict(pod: &v1::Pod, ignore_daemonsets: bool, force: bool) -> Verdict {
    let meta = pod.metadata.clone().unwrap_or_default();
    if meta.annotations.contains_key(MIRROR_ANNOTATION) {
        return Verdict::Skip;
    }
    let phase = pod.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Verdict::Evict;
    }
    match kinds::controller_of(&meta) {
        Some(owner) if owner.kind == "DaemonSet" => {
            if ignore_daemonsets {
                Verdict::Skip
            } else {
                Verdict::RefuseDaemonSet
            }
        }
        Some(_) => Verdict::Evict,
        None if force => Verdict::EvictUnmanaged,
        None => Verdict::RefuseUnmanaged,
    }
}

fn pod_key(pod: &v1::Pod) -> (String, String, String) {
    let meta = pod.metadata.clone().unwrap_or_default();
    (meta.namespace, meta.name, meta.uid)
}

fn joined(pods: &[&v1::Pod]) -> String {
    pods.iter()
        .map(|p| {
            let (ns, name, _) = pod_key(p);
            format!("{ns}/{name}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `rafter drain`.
pub fn drain(args: DrainArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let name = node_name(&args.node)?;
    let session = Session::connect(globals)?;
    set_unschedulable(&session, &name, true)?;
    let params = ListParams {
        field_selector: format!("spec.nodeName={name}"),
        ..Default::default()
    };
    let pods: Vec<v1::Pod> = session
        .block_on(session.client().list(Kind::Pod, None, &params))
        .map_err(|e| anyhow::anyhow!("listing the pods of node {name:?}: {e}"))?
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect();
    let with = |v: Verdict| -> Vec<&v1::Pod> {
        pods.iter()
            .filter(|p| verdict(p, args.ignore_daemonsets, args.force) == v)
            .collect()
    };
    let (refuse_ds, refuse_unmanaged) = (
        with(Verdict::RefuseDaemonSet),
        with(Verdict::RefuseUnmanaged),
    );
    if !refuse_ds.is_empty() || !refuse_unmanaged.is_empty() {
        let mut reasons = Vec::new();
        if !refuse_unmanaged.is_empty() {
            reasons.push(format!(
                "cannot delete Pods that declare no controller (use --force to override): {}",
                joined(&refuse_unmanaged)
            ));
        }
        if !refuse_ds.is_empty() {
            reasons.push(format!(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
                joined(&refuse_ds)
            ));
        }
        bail!(
            "unable to drain node {name:?} due to error: {}; the node stays cordoned (`rafter uncordon {name}` to undo)",
            reasons.join(", ")
        );
    }
    let ignored: Vec<&v1::Pod> = pods
        .iter()
        .filter(|p| {
            verdict(p, args.ignore_daemonsets, args.force) == Verdict::Skip
                && p.metadata
                    .as_ref()
                    .and_then(kinds::controller_of)
                    .is_some_and(|o| o.kind == "DaemonSet")
        })
        .collect();
    if !ignored.is_empty() {
        eprintln!(
            "Warning: ignoring DaemonSet-managed Pods: {}",
            joined(&ignored)
        );
    }
    let unmanaged = with(Verdict::EvictUnmanaged);
    if !unmanaged.is_empty() {
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            joined(&unmanaged)
        );
    }
    let mut to_evict: Vec<&v1::Pod> = with(Verdict::Evict);
    to_evict.extend(unmanaged);
    let started = Instant::now();
    let deadline = (!args.timeout.is_zero()).then(|| started + args.timeout);
    let client = session.client();
    for pod in &to_evict {
        let (ns, pod_name, _) = pod_key(pod);
        println!("evicting pod {ns}/{pod_name}");
        loop {
            match session.block_on(client.evict(&ns, &pod_name, args.grace_period)) {
                Ok(()) | Err(ClientError::NotFound { .. }) => break,
                Err(e @ (ClientError::Forbidden { .. } | ClientError::Unauthenticated { .. })) => {
                    return Err(kinds::explain(e, Kind::Pod, &ns, &pod_name));
                }
                Err(e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        bail!("drain of node {name:?} timed out evicting pod {ns}/{pod_name}: {e}");
                    }
                    eprintln!("error when evicting pod {ns}/{pod_name} (will retry after 5s): {e}");
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        }
    }
    // Wait until each evicted pod is gone (or replaced by a new pod of the same name).
    let mut waiting: Vec<(String, String, String)> = to_evict.iter().map(|p| pod_key(p)).collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for (ns, pod_name, uid) in waiting {
            match session.block_on(client.get(Kind::Pod, &ns, &pod_name)) {
                Err(ClientError::NotFound { .. }) => println!("pod/{pod_name} evicted"),
                Ok(o) if o.metadata().uid != uid => println!("pod/{pod_name} evicted"),
                Ok(_) => still.push((ns, pod_name, uid)),
                Err(e) => return Err(kinds::explain(e, Kind::Pod, &ns, &pod_name)),
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let names: Vec<String> = waiting
                .iter()
                .map(|(ns, n, _)| format!("{ns}/{n}"))
                .collect();
            bail!(
                "drain of node {name:?} timed out after {:?}: these pods are still terminating: {}",
                args.timeout,
                names.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("node/{name} drained");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(owner: Option<&str>) -> v1::Pod {
        v1::Pod {
            metadata: Some(v1::ObjectMeta {
                owner_references: owner
                    .map(|kind| {
                        vec![v1::OwnerReference {
                            kind: kind.into(),
                            controller: Some(true),
                            ..Default::default()
                        }]
                    })
                    .unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn unmanaged_and_daemonset_pods_need_the_flags() {
        assert_eq!(
            verdict(&pod(Some("ReplicaSet")), false, false),
            Verdict::Evict
        );
        assert_eq!(verdict(&pod(None), false, false), Verdict::RefuseUnmanaged);
        assert_eq!(verdict(&pod(None), false, true), Verdict::EvictUnmanaged);
        assert_eq!(
            verdict(&pod(Some("DaemonSet")), false, true),
            Verdict::RefuseDaemonSet
        );
        assert_eq!(verdict(&pod(Some("DaemonSet")), true, false), Verdict::Skip);
    }
}
