//! `rafter top node|pod`: resource figures per node or pod.
//!
//! There is no metrics pipeline yet (nothing measures usage), so this prints what the
//! API knows: the CPU and memory pods *request* in their specs, against each node's
//! allocatable, with a note saying so on standard error.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_proto::{v1, Kind, Object, Quantity};

use crate::commands::describe::{percent_of, pods_on, show_millis};
use crate::session::{GlobalArgs, Session};

const NOTE: &str = "note: no metrics are collected yet; these are the resources pods request in their specs (of the node's allocatable), not measured usage";

/// `rafter top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(subcommand)]
    command: TopCommand,
}

/// The verbs of `rafter top`.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// CPU and memory requested on each node.
    #[command(
        alias = "nodes",
        after_help = "Examples:\n  rafter top node\n  rafter top node w1"
    )]
    Node(TopNodeArgs),
    /// CPU and memory requested by each pod.
    #[command(
        alias = "pods",
        after_help = "Examples:\n  rafter top pod\n  rafter top pod -A\n  rafter top pod web-7d9f-abcde"
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
}

fn millis(spec: &v1::PodSpec, resource: &str) -> i128 {
    spec.containers
        .iter()
        .filter_map(|c| c.resources.as_ref()?.requests.get(resource))
        .filter_map(|q| q.parse::<Quantity>().ok())
        .map(|q| q.millis())
        .sum()
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.len());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.iter().map(|h| (*h).to_owned()).collect()));
    for row in rows {
        println!("{}", line(row.clone()));
    }
}

/// Runs `rafter top`.
pub fn run(args: TopArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(globals)?;
    let client = session.client();
    match args.command {
        TopCommand::Node(a) => {
            let nodes: Vec<Object> = match &a.name {
                Some(name) => vec![crate::kinds::fetch(&session, Kind::Node, "", name)?],
                None => {
                    session
                        .block_on(client.list(Kind::Node, None, &Default::default()))
                        .map_err(|e| anyhow::anyhow!("listing nodes: {e}"))?
                        .items
                }
            };
            if nodes.is_empty() {
                eprintln!("No nodes registered yet.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for node in nodes {
                let Object::Node(node) = node else { continue };
                let name = node
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                let allocatable = node.status.clone().unwrap_or_default().allocatable;
                let pods = pods_on(&session, &name)?;
                let specs: Vec<&v1::PodSpec> =
                    pods.iter().filter_map(|p| p.spec.as_ref()).collect();
                let cpu: i128 = specs.iter().map(|s| millis(s, "cpu")).sum();
                let memory: i128 = specs.iter().map(|s| millis(s, "memory")).sum();
                let pct = |m: i128, r: &str| {
                    percent_of(m, allocatable.get(r))
                        .trim_matches(|c| c == '(' || c == ')')
                        .to_owned()
                };
                rows.push(vec![
                    name,
                    show_millis("cpu", cpu),
                    pct(cpu, "cpu"),
                    show_millis("memory", memory),
                    pct(memory, "memory"),
                    pods.len().to_string(),
                ]);
            }
            for row in &mut rows {
                for cell in row.iter_mut() {
                    if cell.is_empty() {
                        *cell = "<unknown>".to_owned();
                    }
                }
            }
            print_table(
                &[
                    "NAME",
                    "CPU(requests)",
                    "CPU%",
                    "MEMORY(requests)",
                    "MEMORY%",
                    "PODS",
                ],
                &rows,
            );
        }
        TopCommand::Pod(a) => {
            let namespace = session.namespace().to_owned();
            let pods: Vec<Object> = match &a.name {
                Some(name) => vec![crate::kinds::fetch(&session, Kind::Pod, &namespace, name)?],
                None => {
                    session
                        .block_on(client.list(
                            Kind::Pod,
                            (!a.all_namespaces).then_some(namespace.as_str()),
                            &Default::default(),
                        ))
                        .map_err(|e| anyhow::anyhow!("listing pods: {e}"))?
                        .items
                }
            };
            if pods.is_empty() {
                eprintln!("No resources found in {namespace} namespace.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = Vec::new();
            for pod in pods {
                let Object::Pod(pod) = pod else { continue };
                let meta = pod.metadata.clone().unwrap_or_default();
                let spec = pod.spec.clone().unwrap_or_default();
                let mut row = Vec::new();
                if a.all_namespaces {
                    row.push(meta.namespace.clone());
                }
                row.extend([
                    meta.name.clone(),
                    show_millis("cpu", millis(&spec, "cpu")),
                    show_millis("memory", millis(&spec, "memory")),
                    if spec.node_name.is_empty() {
                        "<none>".to_owned()
                    } else {
                        spec.node_name.clone()
                    },
                ]);
                rows.push(row);
            }
            let mut header = vec!["NAME", "CPU(requests)", "MEMORY(requests)", "NODE"];
            if a.all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            print_table(&header, &rows);
        }
    }
    eprintln!("{NOTE}");
    Ok(ExitCode::SUCCESS)
}
