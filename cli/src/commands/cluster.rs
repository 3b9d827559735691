//! `rafter cluster status`: the masters, who leads, the term, and each master's health.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::session::{GlobalArgs, Session};

/// `rafter cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

/// The verbs of `rafter cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the masters, the leader, the term and each master's health.
    #[command(after_help = "Example:\n  rafter cluster status")]
    Status,
}

/// Runs `rafter cluster`.
pub fn run(args: ClusterArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ClusterCommand::Status => {
            let session = Session::connect(globals)?;
            let status = session.block_on(session.client().cluster_status())?;
            println!(
                "leader: {}   term: {}   revision: {}   applied index: {}   answered by: {}",
                status.leader_id,
                status.term,
                status.revision,
                status.applied_index,
                status.member_id
            );
            println!(
                "{:<4} {:<8} {:<8} {:<8} {:<24} PEER",
                "ID", "ROLE", "LEADER", "HEALTHY", "API"
            );
            for member in &status.members {
                println!(
                    "{:<4} {:<8} {:<8} {:<8} {:<24} {}",
                    member.id,
                    member.role,
                    if member.id == status.leader_id {
                        "*"
                    } else {
                        ""
                    },
                    if member.healthy { "yes" } else { "no" },
                    member.client_address,
                    member.peer_address
                );
            }
            Ok(if status.ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
