//! `rafter store snapshot save|restore`: back up a running cluster's store to a file, and
//! seed a new master's data directory from one (what `etcdctl snapshot save/restore` do).
//!
//! The file is raft-store's backup format: every record checksummed, so a damaged file is
//! refused before anything is written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::session::{GlobalArgs, Session};

/// `rafter store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

/// The verbs of `rafter store`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Snapshots of the whole store.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `rafter store snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent copy of the running cluster's store to FILE.
    #[command(after_help = "Example:\n  rafter store snapshot save /backup/rafter-$(date +%F).db")]
    Save {
        /// Where to write the snapshot (written atomically).
        file: PathBuf,
    },
    /// Seed the data directory of a new cluster's first master from a snapshot.
    #[command(
        after_help = "Example:\n  rafter store snapshot restore /backup/rafter.db --data-dir /var/lib/rafter/m1\n  rafter master --id 1 --data-dir /var/lib/rafter/m1 --init --initial-cluster 1=127.0.0.1:2380,..."
    )]
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The master data directory to create (it must not hold a store yet).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// Runs `rafter store`.
pub fn run(args: StoreArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Snapshot(SnapshotCommand::Save { file }) => {
            let session = Session::connect(globals)?;
            let bytes = session
                .block_on(session.client().snapshot())
                .context("taking the snapshot")?;
            let partial = file.with_extension("partial");
            // A backup holds every object of the cluster: 0600 from creation.
            rafter_client::private_files::write_private(&partial, &bytes)
                .with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, &file)
                .with_context(|| format!("moving the snapshot to {}", file.display()))?;
            println!(
                "Snapshot saved to {} ({} bytes)",
                file.display(),
                bytes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Snapshot(SnapshotCommand::Restore { file, data_dir }) => {
            if !file.exists() {
                bail!("{} does not exist", file.display());
            }
            let store_dir = data_dir.join("store");
            let info = raft_store::restore_backup(&file, &store_dir).with_context(|| {
                format!("restoring {} into {}", file.display(), store_dir.display())
            })?;
            println!(
                "Restored revision {} ({} records) into {}.\nStart the first master of the new cluster on it with --init, e.g.:\n  rafter master --id 1 --data-dir {} --init --initial-cluster 1=127.0.0.1:2380",
                info.revision,
                info.records,
                store_dir.display(),
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
