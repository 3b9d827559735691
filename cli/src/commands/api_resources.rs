//! `rafter api-resources`: every kind the API serves, with its short names and scope.

use std::process::ExitCode;

use rafter_proto::Kind;

/// Prints the table.
pub fn run() -> anyhow::Result<ExitCode> {
    let rows: Vec<Vec<String>> = Kind::all()
        .map(|kind| {
            let info = kind.info();
            vec![
                info.plural.to_string(),
                info.short_names.join(","),
                info.api_version(),
                info.namespaced.to_string(),
                info.name.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::table::render(
            &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
