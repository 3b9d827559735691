//! `rafter cluster`: the masters, who leads, the term and each master's health (`status`),
//! and changes to the store's membership (`member add`, `member remove`), as `etcdctl
//! member` makes them: replacing a dead master is `member add` of a new one, started
//! without `--init`, then `member remove` of the dead one.
//!
//! Health is each master's own answer, as `etcdctl endpoint health` asks each endpoint: a
//! follower cannot know whether its peers are alive, so the CLI asks every member for its
//! status directly and a member is healthy when it answers and knows a leader. The table
//! shows the membership as the leader sees it when the leader answers, else as the first
//! master that answered does.
//!
//! ```text
//!   any master ──status──► members and their API addresses
//!   each member ──its own status──► healthy? (answered, knows a leader)
//!   report(first, answers) ──► table | -o json | -o yaml      (pure: `report`)
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rafter_client::{Client, ClientOptions, ResolvedConfig};
use rafter_proto::api;
use serde::Serialize;

use crate::session::{GlobalArgs, Session};

/// How long one member may take to answer for itself before it counts as unhealthy.
const MEMBER_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

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
    #[command(after_help = "Example:\n  rafter cluster status\n  rafter cluster status -o json")]
    Status {
        /// Output format: json or yaml [default: a table].
        #[arg(short = 'o', long, value_enum)]
        output: Option<StatusFormat>,
    },
    /// Add or remove a master (a store member).
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

/// The structured forms of `rafter cluster status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// The verbs of `rafter cluster member`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a master that was started without `--init`: it catches up from the leader as a
    /// learner, then becomes a voter (unless `--learner`). Returns once it has caught up.
    #[command(after_help = "Example:\n  \
  # on the new machine, with the cluster's CA and sa.key copied into its --pki-dir\n  \
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
    let mut output = None;
    let status = match args.command {
        ClusterCommand::Status { output: format } => {
            output = format;
            session.block_on(client.cluster_status())?
        }
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
    let answers = session.block_on(ask_each(session.config(), &status));
    let report = report(&status, &answers);
    match output {
        None => print!("{}", render(&report)),
        Some(StatusFormat::Json) => println!("{}", serde_json::to_string_pretty(&report)?),
        Some(StatusFormat::Yaml) => print!("{}", serde_yaml::to_string(&report)?),
    }
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Asks every member of `status` for its own status, at the API address it registered,
/// each within [`MEMBER_ANSWER_TIMEOUT`]: its answer, or why none came.
async fn ask_each(
    config: &ResolvedConfig,
    status: &api::ClusterStatus,
) -> BTreeMap<u64, Result<api::ClusterStatus, String>> {
    let scheme = if config.insecure { "http" } else { "https" };
    let asks = status.members.iter().map(|member| async move {
        if member.client_address.is_empty() {
            return (member.id, Err("no API address registered".to_owned()));
        }
        let alone = ResolvedConfig {
            endpoints: vec![format!("{scheme}://{}", member.client_address)],
            ..config.clone()
        };
        let options = ClientOptions {
            total_timeout: MEMBER_ANSWER_TIMEOUT,
            attempt_timeout: MEMBER_ANSWER_TIMEOUT,
            connect_timeout: MEMBER_ANSWER_TIMEOUT,
            ..ClientOptions::default()
        };
        let answer = match Client::connect_with(alone, options).await {
            Ok(client) => client.cluster_status().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        (member.id, answer)
    });
    futures::future::join_all(asks).await.into_iter().collect()
}

/// What `rafter cluster status` shows: the membership as the leader sees it, each
/// member's health from its own answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The leader's member id (0: none known).
    leader_id: u64,
    /// The Raft term.
    term: u64,
    /// The store's revision.
    revision: i64,
    /// The log index applied on the member whose view this is.
    applied_index: u64,
    /// The member whose view of the membership this is.
    answered_by: u64,
    /// Whether that member knows a leader.
    ready: bool,
    /// Every member.
    members: Vec<MemberReport>,
}

/// One member in a [`Report`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberReport {
    id: u64,
    role: String,
    leader: bool,
    /// It answered for itself and knows a leader.
    healthy: bool,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The term and applied index it reported itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    term: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied_index: Option<u64>,
    client_address: String,
    peer_address: String,
}

/// The report of `first` (any master's answer) and each member's own `answers`. Pure.
fn report(
    first: &api::ClusterStatus,
    answers: &BTreeMap<u64, Result<api::ClusterStatus, String>>,
) -> Report {
    // The leader's own answer, when it gave one and still leads.
    let view = match answers.get(&first.leader_id) {
        Some(Ok(leader)) if leader.leader_id == leader.member_id => leader,
        _ => first,
    };
    let members = view
        .members
        .iter()
        .map(|member| {
            let own = answers.get(&member.id);
            let (healthy, error) = match own {
                Some(Ok(answer)) if answer.ready => (true, None),
                Some(Ok(_)) => (false, Some("it answers but knows no leader".to_owned())),
                Some(Err(why)) => (false, Some(why.clone())),
                None => (false, Some("not asked".to_owned())),
            };
            let own = own.and_then(|a| a.as_ref().ok());
            MemberReport {
                id: member.id,
                role: member.role.clone(),
                leader: member.id == view.leader_id,
                healthy,
                error,
                term: own.map(|a| a.term),
                applied_index: own.map(|a| a.applied_index),
                client_address: member.client_address.clone(),
                peer_address: member.peer_address.clone(),
            }
        })
        .collect();
    Report {
        leader_id: view.leader_id,
        term: view.term,
        revision: view.revision,
        applied_index: view.applied_index,
        answered_by: view.member_id,
        ready: view.ready,
        members,
    }
}

/// The table form of a report, with why each unhealthy member is so under it.
fn render(report: &Report) -> String {
    let mut out = format!(
        "leader: {}   term: {}   revision: {}   applied index: {}   answered by: {}\n",
        report.leader_id, report.term, report.revision, report.applied_index, report.answered_by
    );
    let rows: Vec<Vec<String>> = report
        .members
        .iter()
        .map(|member| {
            vec![
                member.id.to_string(),
                member.role.clone(),
                if member.leader { "*" } else { "" }.to_owned(),
                if member.healthy { "yes" } else { "no" }.to_owned(),
                member.client_address.clone(),
                member.peer_address.clone(),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        &["ID", "ROLE", "LEADER", "HEALTHY", "API", "PEER"],
        &rows,
    ));
    for member in &report.members {
        if let Some(error) = &member.error {
            out.push_str(&format!("member {}: {error}\n", member.id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, healthy: bool) -> api::Member {
        api::Member {
            id,
            client_address: format!("127.0.0.1:{}", 6442 + id),
            peer_address: format!("127.0.0.1:{}", 2379 + id),
            role: "Voter".to_owned(),
            healthy,
        }
    }

    /// Member `id`'s own answer, with the follower's guesses about its peers.
    fn answer(id: u64, leader: u64) -> api::ClusterStatus {
        api::ClusterStatus {
            member_id: id,
            leader_id: leader,
            term: 3,
            applied_index: 40 + id,
            commit_index: 40,
            revision: 17,
            members: (1..=3).map(|m| member(m, m == id || m == leader)).collect(),
            ready: leader != 0,
        }
    }

    #[test]
    fn health_is_each_members_own_answer_not_a_followers_guess() {
        let first = answer(3, 1);
        let answers = BTreeMap::from([
            (1, Ok(answer(1, 1))),
            (2, Ok(answer(2, 1))),
            (3, Ok(answer(3, 1))),
        ]);
        let report = report(&first, &answers);
        assert_eq!(report.answered_by, 1, "the leader's view");
        assert!(report.members.iter().all(|m| m.healthy), "{report:?}");
        assert_eq!(report.members[1].applied_index, Some(42));
        assert!(report.members[0].leader && !report.members[1].leader);
    }

    #[test]
    fn a_member_that_does_not_answer_or_knows_no_leader_is_unhealthy_and_says_why() {
        let first = answer(2, 1);
        let answers = BTreeMap::from([
            (1, Err("no answer within 2s".to_owned())),
            (2, Ok(answer(2, 1))),
            (3, Ok(answer(3, 0))),
        ]);
        let report = report(&first, &answers);
        assert_eq!(report.answered_by, 2, "the leader did not answer");
        let health: Vec<bool> = report.members.iter().map(|m| m.healthy).collect();
        assert_eq!(health, [false, true, false]);
        let table = render(&report);
        assert!(table.contains("member 1: no answer within 2s"), "{table}");
        assert!(
            table.contains("member 3: it answers but knows no leader"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["members"][0]["healthy"], false);
        assert_eq!(json["members"][1]["clientAddress"], "127.0.0.1:6444");
        assert!(json["members"][1].get("error").is_none());
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&serde_yaml::to_string(&report).unwrap()).unwrap();
        assert_eq!(yaml["leaderId"], 1);
    }
}
