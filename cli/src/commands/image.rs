//! `rafter image import FILE.tar…` and `rafter image ls`: the images of the nodes' container
//! runtimes, as k3s's `ctr images import` on every node and `crictl images` do, through
//! the API (nodes/images) rather than a login on each node.
//!
//! ```text
//!   image import a.tar b.tar
//!     every file read first: a tar holding index.json (OCI) or manifest.json (docker)
//!     that names images? no ─► error naming the file, nothing sent
//!     for each file ─► Resources.ImportImage (streamed in 1 MiB pieces)
//!                    ─► a master ─► every Ready node's agent ─► containerd, pinned
//!     one line per node: the images imported, or (on stderr) the node's error
//!   image ls [--node N] ─► Resources.Images ─► NODE IMAGE IMAGE-ID SIZE PINNED
//! ```
//!
//! Both exit non-zero when any node failed, after reporting every node. The table shape
//! is a pure function of the answer ([`image_rows`]), tested without a cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_proto::api::{ImagesResponse, NodeImageImport};

use crate::session::{GlobalArgs, Session};

/// `rafter image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

/// The verbs of `rafter image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import image archives into every Ready node's container runtime.
    ///
    /// The archives are OCI layouts or docker archives (tar files); what they hold is
    /// pinned against image garbage collection: images for nodes without a registry.
    /// Needs `create` on nodes/images.
    #[command(after_help = "Examples:\n  rafter image import app.tar\n  \
                            skopeo copy docker://nginx:1.27 docker-archive:nginx.tar:nginx:1.27 && rafter image import nginx.tar")]
    Import(ImportArgs),
    /// List the images in each node's container runtime.
    ///
    /// Needs `get` on nodes/images.
    #[command(
        alias = "list",
        after_help = "Examples:\n  rafter image ls\n  rafter image ls --node w1"
    )]
    Ls(LsArgs),
}

/// `rafter image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archives (`*.tar`: OCI layout or docker archive).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `rafter image ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this node [default: every node].
    #[arg(long)]
    node: Option<String>,
}

/// An image id as crictl shows it: the digest's first 13 hex digits.
fn short_id(id: &str) -> String {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.chars().take(13).collect()
}

/// A size with three significant digits in decimal units, as crictl prints it (`4.26MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    // A display figure: f64 holds any byte count closely enough.
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let text = if unit == 0 || value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    // Trailing zeros go, as go-units drops them ("4.2MB", "5MB").
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// Rows NODE, IMAGE, IMAGE ID, SIZE, PINNED: one per image name (`<none>` for an image
/// without one), nodes in the answer's order, names sorted within a node.
pub(crate) fn image_rows(answer: &ImagesResponse) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for node in answer.nodes.iter().filter(|n| n.error.is_empty()) {
        let mut node_rows = Vec::new();
        for image in &node.images {
            let names: Vec<String> = if image.repo_tags.is_empty() {
                vec!["<none>".to_owned()]
            } else {
                image.repo_tags.clone()
            };
            for name in names {
                node_rows.push(vec![
                    node.node.clone(),
                    name,
                    short_id(&image.id),
                    human_size(image.size),
                    image.pinned.to_string(),
                ]);
            }
        }
        node_rows.sort();
        rows.extend(node_rows);
    }
    rows
}

/// Checks every archive before anything is sent: readable, a tar with an OCI index or a
/// docker manifest naming images. The first that is not, as an error naming it.
fn check_archives(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let names = node_agent::image_archive_names(file).map_err(|e| {
            anyhow::anyhow!(
                "{} is not an image archive that can be imported: {e}; nothing was imported",
                file.display()
            )
        })?;
        if names.is_empty() {
            anyhow::bail!(
                "{} names no image (a docker archive needs RepoTags in manifest.json, an OCI \
                 layout an image name annotation in index.json); nothing was imported",
                file.display()
            );
        }
    }
    Ok(())
}

/// Prints one archive's outcome per node; whether every node imported it.
fn report(file: &str, results: &[NodeImageImport]) -> bool {
    let mut all = true;
    for r in results {
        if r.error.is_empty() {
            println!(
                "node/{}: imported {} from {file}",
                r.node,
                r.images.join(", ")
            );
        } else {
            all = false;
            eprintln!("error: node/{}: importing {file}: {}", r.node, r.error);
        }
    }
    all
}

/// Runs `rafter image`.
pub fn run(args: ImageArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Import(a) => {
            check_archives(&a.files)?;
            let session = Session::connect(globals)?;
            let mut all = true;
            for file in &a.files {
                let shown = file.display().to_string();
                let results = session
                    .block_on(session.client().import_image(file, &shown))
                    .map_err(|e| anyhow::anyhow!("importing {shown}: {e}"))?;
                all &= report(&shown, &results);
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ImageCommand::Ls(a) => {
            let session = Session::connect(globals)?;
            let answer = session
                .block_on(session.client().images(a.node.as_deref()))
                .map_err(|e| anyhow::anyhow!("listing the nodes' images: {e}"))?;
            let mut failed = false;
            for n in answer.nodes.iter().filter(|n| !n.error.is_empty()) {
                failed = true;
                eprintln!("error: no images from node/{}: {}", n.node, n.error);
            }
            if answer.nodes.is_empty() {
                eprintln!("No nodes registered yet.");
            } else {
                print!(
                    "{}",
                    crate::table::render(
                        &["NODE", "IMAGE", "IMAGE ID", "SIZE", "PINNED"],
                        &image_rows(&answer)
                    )
                );
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::api::{Image, NodeImages};

    #[test]
    fn sizes_and_ids_print_as_crictl_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(742_000), "742kB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(5_000_000), "5MB");
        assert_eq!(human_size(12_340_000_000), "12.3GB");
        assert_eq!(short_id("sha256:0123456789abcdef0123"), "0123456789abc");
    }

    #[test]
    fn one_row_per_image_name_and_none_for_a_nameless_image_and_no_rows_for_a_failed_node() {
        let image = |id: &str, tags: &[&str], pinned| Image {
            id: id.into(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            size: 4_260_000,
            pinned,
            ..Default::default()
        };
        let answer = ImagesResponse {
            nodes: vec![
                NodeImages {
                    node: "w2".into(),
                    error: String::new(),
                    images: vec![
                        image(
                            "sha256:bbbb",
                            &["docker.io/local/b:1", "docker.io/local/a:1"],
                            true,
                        ),
                        image("sha256:cccc", &[], false),
                    ],
                },
                NodeImages {
                    node: "w1".into(),
                    error: "unreachable".into(),
                    images: Vec::new(),
                },
            ],
        };
        let rows = image_rows(&answer);
        assert_eq!(
            rows,
            vec![
                vec!["w2", "<none>", "cccc", "4.26MB", "false"],
                vec!["w2", "docker.io/local/a:1", "bbbb", "4.26MB", "true"],
                vec!["w2", "docker.io/local/b:1", "bbbb", "4.26MB", "true"],
            ]
        );
    }
}
