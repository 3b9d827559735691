//! `rafter top node|pod`: measured CPU and memory, as `kubectl top` prints them.
//!
//! The figures come from `Resources.Metrics`: a master asks each node's agent for what it
//! measures now (CPU averaged over the agent's window, memory working set). CPU is shown
//! in millicores, memory in Mi, nodes also as a percentage of their allocatable. A node
//! whose agent cannot answer shows `<unknown>` (and why, on standard error) instead of
//! failing the listing; so do the pods bound to it. Pods that run nothing measurable
//! (pending, finished) are left out, as kubectl does.
//!
//! The table shapes are pure functions of the objects and the figures ([`node_rows`],
//! [`pod_rows`]), tested without a cluster.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_proto::api::{MetricsResponse, NodeMetrics, PodMetrics};
use rafter_proto::{v1, Kind, Object, Quantity};

use crate::session::{GlobalArgs, Session};

const UNKNOWN: &str = "<unknown>";

/// `rafter top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(subcommand)]
    command: TopCommand,
}

/// The verbs of `rafter top`.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// CPU and memory used on each node, measured by its agent.
    #[command(
        alias = "nodes",
        after_help = "Examples:\n  rafter top nodes\n  rafter top node w1"
    )]
    Node(TopNodeArgs),
    /// CPU and memory used by each pod, measured by the agent of its node.
    #[command(
        alias = "pods",
        after_help = "Examples:\n  rafter top pods\n  rafter top pods -A\n  rafter top pod web-7d9f-abcde --containers"
    )]
    Pod(TopPodArgs),
}

/// `rafter top node`.
#[derive(Debug, Args)]
pub struct TopNodeArgs {
    /// One node [default: all].
    name: Option<String>,
}

/// `rafter top pod`.
#[derive(Debug, Args)]
pub struct TopPodArgs {
    /// One pod [default: all in the namespace].
    name: Option<String>,
    /// Pods of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// One line per container.
    #[arg(long)]
    containers: bool,
}

/// CPU in millicores, as kubectl prints it (`250m`).
fn millicores(nano_cores: u64) -> String {
    format!("{}m", nano_cores / 1_000_000)
}

/// Memory in mebibytes, as kubectl prints it (`64Mi`).
fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// `used_millis` as a percentage of the allocatable quantity, or `<unknown>`.
fn percent(used_millis: u128, allocatable: Option<&String>) -> String {
    match allocatable
        .and_then(|a| a.parse::<Quantity>().ok())
        .map(|q| q.millis())
        .and_then(|m| u128::try_from(m).ok())
    {
        Some(total) if total > 0 => format!("{}%", used_millis * 100 / total),
        _ => UNKNOWN.to_owned(),
    }
}

fn name_of(meta: Option<&v1::ObjectMeta>) -> String {
    meta.map(|m| m.name.clone()).unwrap_or_default()
}

/// One row per node: NAME, CPU(cores), CPU%, MEMORY(bytes), MEMORY%.
pub(crate) fn node_rows(nodes: &[v1::Node], metrics: &MetricsResponse) -> Vec<Vec<String>> {
    let by_name: BTreeMap<&str, &NodeMetrics> =
        metrics.nodes.iter().map(|n| (n.node.as_str(), n)).collect();
    let mut rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|node| {
            let name = name_of(node.metadata.as_ref());
            match by_name.get(name.as_str()).filter(|m| m.error.is_empty()) {
                Some(m) => {
                    let allocatable = node
                        .status
                        .as_ref()
                        .map(|s| s.allocatable.clone())
                        .unwrap_or_default();
                    vec![
                        name,
                        millicores(m.cpu_nano_cores),
                        percent(
                            u128::from(m.cpu_nano_cores / 1_000_000),
                            allocatable.get("cpu"),
                        ),
                        mebibytes(m.memory_working_set_bytes),
                        percent(
                            u128::from(m.memory_working_set_bytes) * 1000,
                            allocatable.get("memory"),
                        ),
                    ]
                }
                None => vec![
                    name,
                    UNKNOWN.to_owned(),
                    UNKNOWN.to_owned(),
                    UNKNOWN.to_owned(),
                    UNKNOWN.to_owned(),
                ],
            }
        })
        .collect();
    rows.sort();
    rows
}

/// Rows for `pods`: NAME, CPU(cores), MEMORY(bytes) (NAMESPACE first with
/// `all_namespaces`; with `containers`, POD, NAME, CPU, MEMORY per container). Pods on a
/// node that gave no figures show `<unknown>`; pods without figures on a node that
/// answered (not running) are left out.
pub(crate) fn pod_rows(
    pods: &[v1::Pod],
    metrics: &MetricsResponse,
    all_namespaces: bool,
    containers: bool,
) -> Vec<Vec<String>> {
    let answered: BTreeMap<&str, bool> = metrics
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.error.is_empty()))
        .collect();
    let by_uid: BTreeMap<&str, &PodMetrics> = metrics
        .nodes
        .iter()
        .flat_map(|n| n.pods.iter())
        .map(|p| (p.uid.as_str(), p))
        .collect();
    let mut rows = Vec::new();
    for pod in pods {
        let meta = pod.metadata.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let mut lead = Vec::new();
        if all_namespaces {
            lead.push(meta.namespace.clone());
        }
        if containers {
            lead.push(meta.name.clone());
        }
        let figures = by_uid.get(meta.uid.as_str());
        let unreachable = !spec.node_name.is_empty()
            && !answered
                .get(spec.node_name.as_str())
                .copied()
                .unwrap_or(false);
        match (figures, containers) {
            (Some(p), false) => {
                let cpu: u64 = p.containers.iter().map(|c| c.cpu_nano_cores).sum();
                let memory: u64 = p
                    .containers
                    .iter()
                    .map(|c| c.memory_working_set_bytes)
                    .sum();
                let mut row = lead;
                row.extend([meta.name.clone(), millicores(cpu), mebibytes(memory)]);
                rows.push(row);
            }
            (Some(p), true) => {
                for c in &p.containers {
                    let mut row = lead.clone();
                    row.extend([
                        c.name.clone(),
                        millicores(c.cpu_nano_cores),
                        mebibytes(c.memory_working_set_bytes),
                    ]);
                    rows.push(row);
                }
            }
            (None, false) if unreachable => {
                let mut row = lead;
                row.extend([meta.name.clone(), UNKNOWN.to_owned(), UNKNOWN.to_owned()]);
                rows.push(row);
            }
            (None, true) if unreachable => {
                for c in &spec.containers {
                    let mut row = lead.clone();
                    row.extend([c.name.clone(), UNKNOWN.to_owned(), UNKNOWN.to_owned()]);
                    rows.push(row);
                }
            }
            (None, _) => {}
        }
    }
    rows.sort();
    rows
}

fn pod_header(all_namespaces: bool, containers: bool) -> Vec<&'static str> {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    if containers {
        header.push("POD");
    }
    header.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    header
}

/// Says on standard error why nodes gave no figures.
fn warn_unanswered(metrics: &MetricsResponse) {
    for n in metrics.nodes.iter().filter(|n| !n.error.is_empty()) {
        eprintln!("warning: no metrics from node {}: {}", n.node, n.error);
    }
}

fn list<T>(
    session: &Session,
    kind: Kind,
    namespace: Option<&str>,
    pick: fn(Object) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    Ok(session
        .block_on(session.client().list(kind, namespace, &Default::default()))
        .map_err(|e| anyhow::anyhow!("listing {}: {e}", kind.info().plural))?
        .items
        .into_iter()
        .filter_map(pick)
        .collect())
}

/// Runs `rafter top`.
pub fn run(args: TopArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(globals)?;
    let client = session.client();
    let node_of = |o: Object| match o {
        Object::Node(n) => Some(n),
        _ => None,
    };
    let pod_of = |o: Object| match o {
        Object::Pod(p) => Some(p),
        _ => None,
    };
    match args.command {
        TopCommand::Node(a) => {
            let nodes: Vec<v1::Node> = match &a.name {
                Some(name) => node_of(crate::kinds::fetch(&session, Kind::Node, "", name)?)
                    .into_iter()
                    .collect(),
                None => list(&session, Kind::Node, None, node_of)?,
            };
            if nodes.is_empty() {
                eprintln!("No nodes registered yet.");
                return Ok(ExitCode::SUCCESS);
            }
            let metrics = session
                .block_on(client.metrics(a.name.as_deref()))
                .map_err(|e| anyhow::anyhow!("reading node metrics: {e}"))?;
            warn_unanswered(&metrics);
            print!(
                "{}",
                crate::table::render(
                    &["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
                    &node_rows(&nodes, &metrics),
                )
            );
        }
        TopCommand::Pod(a) => {
            let namespace = session.namespace().to_owned();
            let pods: Vec<v1::Pod> = match &a.name {
                Some(name) => pod_of(crate::kinds::fetch(&session, Kind::Pod, &namespace, name)?)
                    .into_iter()
                    .collect(),
                None => list(
                    &session,
                    Kind::Pod,
                    (!a.all_namespaces).then_some(namespace.as_str()),
                    pod_of,
                )?,
            };
            // One pod: ask only its node.
            let node = match (&a.name, pods.as_slice()) {
                (Some(_), [pod]) => pod
                    .spec
                    .as_ref()
                    .map(|s| s.node_name.clone())
                    .filter(|n| !n.is_empty()),
                _ => None,
            };
            let metrics = if pods.is_empty() || (a.name.is_some() && node.is_none()) {
                MetricsResponse::default()
            } else {
                session
                    .block_on(client.metrics(node.as_deref()))
                    .map_err(|e| anyhow::anyhow!("reading pod metrics: {e}"))?
            };
            warn_unanswered(&metrics);
            let rows = pod_rows(&pods, &metrics, a.all_namespaces, a.containers);
            if rows.is_empty() {
                match &a.name {
                    Some(name) => {
                        eprintln!("error: metrics not available yet for pod {namespace}/{name}")
                    }
                    None if a.all_namespaces => eprintln!("No resources found"),
                    None => eprintln!("No resources found in {namespace} namespace."),
                }
                return Ok(if a.name.is_some() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            print!(
                "{}",
                crate::table::render(&pod_header(a.all_namespaces, a.containers), &rows)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::api::ContainerMetrics;

    fn node(name: &str, cpu: &str, memory: &str) -> v1::Node {
        v1::Node {
            metadata: Some(v1::ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            status: Some(v1::NodeStatus {
                allocatable: rafter_proto::StringMap::from([
                    ("cpu".to_owned(), cpu.to_owned()),
                    ("memory".to_owned(), memory.to_owned()),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(ns: &str, name: &str, uid: &str, node: &str, containers: &[&str]) -> v1::Pod {
        v1::Pod {
            metadata: Some(v1::ObjectMeta {
                name: name.into(),
                namespace: ns.into(),
                uid: uid.into(),
                ..Default::default()
            }),
            spec: Some(v1::PodSpec {
                node_name: node.into(),
                containers: containers
                    .iter()
                    .map(|c| v1::Container {
                        name: (*c).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn figures() -> MetricsResponse {
        MetricsResponse {
            nodes: vec![
                NodeMetrics {
                    node: "w1".into(),
                    cpu_nano_cores: 500_000_000,
                    memory_working_set_bytes: 1024 * 1024 * 1024,
                    pods: vec![PodMetrics {
                        namespace: "default".into(),
                        name: "web".into(),
                        uid: "u-web".into(),
                        containers: vec![
                            ContainerMetrics {
                                name: "app".into(),
                                cpu_nano_cores: 250_400_000,
                                memory_working_set_bytes: 64 * 1024 * 1024,
                            },
                            ContainerMetrics {
                                name: "side".into(),
                                cpu_nano_cores: 1_000_000,
                                memory_working_set_bytes: 2 * 1024 * 1024 + 5,
                            },
                        ],
                    }],
                    ..Default::default()
                },
                NodeMetrics {
                    node: "w2".into(),
                    error: "the agent at http://10.0.0.2:1 cannot be reached".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn nodes_show_millicores_mebibytes_and_percent_of_allocatable_or_unknown() {
        let nodes = [node("w2", "2", "4Gi"), node("w1", "2", "4Gi")];
        let rows = node_rows(&nodes, &figures());
        assert_eq!(
            rows,
            vec![
                vec!["w1", "500m", "25%", "1024Mi", "25%"],
                vec!["w2", UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN],
            ]
        );
    }

    #[test]
    fn pods_sum_their_containers_unreachable_nodes_show_unknown_and_idle_pods_are_left_out() {
        let pods = [
            pod("default", "web", "u-web", "w1", &["app", "side"]),
            pod("default", "lost", "u-lost", "w2", &["app"]),
            pod("default", "pending", "u-p", "", &["app"]),
            pod("default", "done", "u-done", "w1", &["app"]),
        ];
        let rows = pod_rows(&pods, &figures(), false, false);
        assert_eq!(
            rows,
            vec![vec!["lost", UNKNOWN, UNKNOWN], vec!["web", "251m", "66Mi"]]
        );
        let rows = pod_rows(&pods, &figures(), true, true);
        assert_eq!(
            rows,
            vec![
                vec!["default", "lost", "app", UNKNOWN, UNKNOWN],
                vec!["default", "web", "app", "250m", "64Mi"],
                vec!["default", "web", "side", "1m", "2Mi"],
            ]
        );
        assert_eq!(
            pod_header(true, true),
            ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        );
        assert_eq!(
            pod_header(false, false),
            ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        );
    }
}
