//! The verbs of `rafter`, one module each, and the dispatch between them.

mod api_resources;
mod apply;
mod cluster;
mod config;
mod delete;
mod get;
mod master;
mod up;
mod version;

use std::process::ExitCode;

use clap::Subcommand;

use crate::session::GlobalArgs;

/// Every verb `rafter` knows.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests.
    Apply(apply::ApplyArgs),
    /// List or read objects.
    Get(get::GetArgs),
    /// Delete objects by name, label selector or manifest.
    Delete(delete::DeleteArgs),
    /// The masters of the cluster: leader, term, health.
    Cluster(cluster::ClusterArgs),
    /// List the kinds the API serves.
    ApiResources,
    /// Check manifests without a cluster: parse, default and validate them.
    Validate(apply::ValidateArgs),
    /// Start a whole cluster on this machine: masters, agents, client config.
    Up(up::UpArgs),
    /// Stop a cluster `rafter up --detach` started.
    Down(up::DownArgs),
    /// Run one master: a store member and the API gateway.
    Master(master::MasterArgs),
    /// Show and edit the client config file: clusters, users, contexts.
    Config(config::ConfigArgs),
    /// Print the client version.
    Version,
}

/// Runs one verb and returns the process exit code.
pub fn run(command: Command, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match command {
        Command::Apply(args) => apply::apply(args, globals),
        Command::Get(args) => get::run(args, globals),
        Command::Delete(args) => delete::run(args, globals),
        Command::Cluster(args) => cluster::run(args, globals),
        Command::ApiResources => api_resources::run(),
        Command::Validate(args) => apply::validate(args),
        Command::Master(args) => master::run(args),
        Command::Up(args) => up::up(args),
        Command::Down(args) => up::down(args),
        Command::Config(args) => config::run(args, globals.kubeconfig.as_deref()),
        Command::Version => version::print(),
    }
}
