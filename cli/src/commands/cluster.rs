//! `rafter cluster`: the masters, who leads, the term and each master's health (`status`),
//! and changes to the store's membership (`member add`, `member remove`), as `etcdctl
//! member` makes them: replacing a dead master is `member add` of a new one, started
//! without `--init`, then `member remove` of the dead one.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_proto::api;

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
    /// Add or remove a master (a store member).
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

/// The verbs of `rafter cluster member`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a master that was started without `--init`: it catches up from the leader as a
    /// learner, then becomes a voter (unless `--learner`). Returns once it has caught up.
    #[command(after_help = "Example:\n  \
  # on the new machine, with the cluster's CA copied into its --pki-dir\n  \
  rafter master --id 4 --data-dir /var/lib/rafter/m4 --listen-peer 10.0.0.4:2380 \\\n    \
  --listen-client 10.0.0.4:6443\n  \
  # then, as a cluster admin\n  \
  rafter cluster member add 4 --peer-address 10.0.0.4:2380")]
    Add {
        /// The new master's member id (`rafter master --id`).
        id: u64,
        /// The address the other masters reach its peer listener at.
        #[arg(long)]
        peer_address: String,
        /// The address clients reach its API at [default: what the master registers itself
        /// once it is a member].
        #[arg(long)]
        client_address: Option<String>,
        /// Keep it a learner: it receives the log but does not vote.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a master from the membership (a dead one being replaced, say). The others
    /// stop sending it the log; a removed master that still runs should be stopped.
    #[command(after_help = "Example:\n  rafter cluster member remove 3")]
    Remove {
        /// The member id to remove.
        id: u64,
    },
}

/// Runs `rafter cluster`.
pub fn run(args: ClusterArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(globals)?;
    let client = session.client();
    let status = match args.command {
        ClusterCommand::Status => session.block_on(client.cluster_status())?,
        ClusterCommand::Member {
            command:
                MemberCommand::Add {
                    id,
                    peer_address,
                    client_address,
                    learner,
                },
        } => {
            let status = session.block_on(client.add_member(api::AddMemberRequest {
                id,
                client_address: client_address.unwrap_or_default(),
                peer_address,
                promote: !learner,
            }))?;
            println!(
                "member {id} added as a {}",
                if learner { "learner" } else { "voter" }
            );
            status
        }
        ClusterCommand::Member {
            command: MemberCommand::Remove { id },
        } => {
            let status = session.block_on(client.remove_member(id))?;
            println!("member {id} removed");
            status
        }
    };
    print_status(&status);
    Ok(if status.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The members table, as the answering master sees the cluster.
fn print_status(status: &api::ClusterStatus) {
    println!(
        "leader: {}   term: {}   revision: {}   applied index: {}   answered by: {}",
        status.leader_id, status.term, status.revision, status.applied_index, status.member_id
    );
    let rows: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|member| {
            vec![
                member.id.to_string(),
                member.role.clone(),
                if member.id == status.leader_id {
                    "*".to_owned()
                } else {
                    String::new()
                },
                if member.healthy { "yes" } else { "no" }.to_owned(),
                member.client_address.clone(),
                member.peer_address.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::table::render(&["ID", "ROLE", "LEADER", "HEALTHY", "API", "PEER"], &rows)
    );
}
