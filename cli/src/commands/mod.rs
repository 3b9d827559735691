//! The verbs of `rafter`, one module each, and the dispatch between them.

mod apply;
mod config;
mod master;
mod version;

use std::process::ExitCode;

use clap::Subcommand;

/// Every verb `rafter` knows.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests (only --dry-run=client until a cluster exists).
    Apply(apply::ApplyArgs),
    /// Check manifests without a cluster: parse, default and validate them.
    Validate(apply::ValidateArgs),
    /// Run one master: a store member and the API gateway.
    Master(master::MasterArgs),
    /// Show and edit the client config file: clusters, users, contexts.
    Config(config::ConfigArgs),
    /// Print the client version.
    Version,
}

/// Runs one verb and returns the process exit code.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Apply(args) => apply::apply(args),
        Command::Validate(args) => apply::validate(args),
        Command::Master(args) => master::run(args),
        Command::Config(args) => config::run(args),
        Command::Version => version::print(),
    }
}
