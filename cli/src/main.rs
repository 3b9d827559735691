//! # Layout
//!
//! `rafter`, the one user-facing binary.
//!
//! | module | owns |
//! |---|---|
//! | `commands` | one module per verb; each parses its flags (clap) and does its work |
//! | `kinds` | what the object verbs share: naming a target, its namespace, error messages |
//! | `logging` | tracing set-up and shutdown signals for long-running commands |
//! | `output` | each kind's columns, -o yaml/json/name/wide, ages, timestamps and selectors as printed |
//! | `session` | the global flags and a client of the cluster for one command |
//! | `sources` | reading manifests from files, directories and standard input |
//! | `table` | aligning headers and rows into columns, for every table the CLI prints |
//!
//! Errors end here: library crates return typed errors, this binary turns them into a
//! message and an exit code (1 for invalid input, 2 for usage errors from clap).

mod commands;
mod kinds;
mod logging;
mod output;
mod session;
mod sources;
mod table;

use std::process::ExitCode;

use clap::Parser;

use commands::Command;

/// Every allocation of a rafter process goes through jemalloc (the default feature):
/// faster than glibc malloc under the masters' many threads, at no more resident memory
/// (docs/benchmarks.md).
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Built with `--features mimalloc`, through mimalloc instead: faster store writes, more
/// resident memory (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rafter: a Kubernetes-style container orchestration control plane.
#[derive(Debug, Parser)]
#[command(name = "rafter", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    globals: session::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command, &cli.globals) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
