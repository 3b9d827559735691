//! `rafter completion`: a shell completion script, generated from the command's own
//! definition by clap_complete.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `rafter completion`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  source <(rafter completion bash)\n  rafter completion zsh > \"${fpath[1]}/_rafter\"\n  rafter completion fish > ~/.config/fish/completions/rafter.fish"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the completion script.
pub fn run(args: CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut command = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rafter", &mut script);
    // A closed pipe (`rafter completion bash | head`) is not an error worth a message.
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("writing the script: {e}"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
