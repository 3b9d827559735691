//! `rafter version`: the client's version and the API it speaks.

use std::process::ExitCode;

/// Prints the version.
pub fn print() -> anyhow::Result<ExitCode> {
    println!("Client Version: rafter {}", env!("CARGO_PKG_VERSION"));
    println!(
        "API: rafter.v1 ({} kinds)",
        rafter_proto::Kind::all().count()
    );
    Ok(ExitCode::SUCCESS)
}
