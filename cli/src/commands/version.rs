//! `rafter version`: the client's version and the API it speaks, and, when a client
//! config is there, who leads the cluster. Works without a cluster: the server part is
//! then a note, and the exit code stays 0.

use std::process::ExitCode;
use std::time::Duration;

use rafter_client::{Client, ClientOptions, ResolvedConfig};

use crate::session::GlobalArgs;

/// Prints the version.
pub fn print(globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    println!("Client Version: rafter {}", env!("CARGO_PKG_VERSION"));
    println!(
        "API: rafter.v1 ({} kinds)",
        rafter_proto::Kind::all().count()
    );
    let config =
        match ResolvedConfig::load(globals.kubeconfig.as_deref(), globals.context.as_deref()) {
            Ok(config) => config,
            Err(e) => {
                println!("Server: no client config ({e})");
                return Ok(ExitCode::SUCCESS);
            }
        };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = ClientOptions {
        total_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let status = runtime.block_on(async {
        let client = Client::connect_with(config, options).await?;
        client.cluster_status().await
    });
    match status {
        Ok(s) => println!(
            "Server: {} masters, leader {}, term {}, revision {} (answered by master {})",
            s.members.len(),
            s.leader_id,
            s.term,
            s.revision,
            s.member_id
        ),
        Err(e) => println!("Server: unreachable ({e})"),
    }
    Ok(ExitCode::SUCCESS)
}
