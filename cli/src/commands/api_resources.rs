//! `rafter api-resources`: every kind the API serves, with its short names and scope.

use std::process::ExitCode;

use rafter_proto::Kind;

/// Prints the table.
pub fn run() -> anyhow::Result<ExitCode> {
    println!(
        "{:<28} {:<11} {:<30} {:<11} KIND",
        "NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED"
    );
    for kind in Kind::all() {
        let info = kind.info();
        println!(
            "{:<28} {:<11} {:<30} {:<11} {}",
            info.plural,
            info.short_names.join(","),
            info.api_version(),
            info.namespaced,
            info.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
