//! `bench secrets`: Secret creates through three masters' gateway with encryption at rest
//! off and on, side by side in one run (issue 15's target: on ≥ 90% of off).
//!
//! Owns only the workload and its table. The two clusters run one after the other (never at
//! once, so they do not share the CPUs), each started by chaos-tests' harness with this
//! binary as the master program; "on" masters get a generated one-key
//! `--encryption-provider-config`.
//!
//! ```text
//!  bench ─Client (TLS gRPC Resources.Create of a Secret)─► leader (registry: AES-GCM) ══Raft══► 2 masters
//! ```

use std::time::Duration;

use anyhow::Context;
use chaos_tests::Cluster;
use rafter_client::Client;
use rafter_proto::{v1, Object};

use crate::gateway::library_client;
use crate::report::{ms, rate, Machine};
use crate::stats::Summary;
use crate::store::{report_phase, LoadArgs};
use crate::workload::drive;

/// `bench secrets`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SecretsArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Bytes of data in each Secret.
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
}

fn secret(name: String, value_bytes: usize) -> Object {
    Object::Secret(v1::Secret {
        metadata: Some(v1::ObjectMeta {
            name,
            namespace: "default".into(),
            ..Default::default()
        }),
        string_data: [("password".to_owned(), "x".repeat(value_bytes))].into(),
        ..Default::default()
    })
}

/// Measures every client level on one cluster.
async fn measure(
    label: &str,
    flags: &[&str],
    args: &SecretsArgs,
) -> anyhow::Result<Vec<(usize, Summary)>> {
    println!("starting 3 masters, encryption {label} ...");
    let cluster = Cluster::start_with(3, flags)
        .await
        .map_err(|e| anyhow::anyhow!("starting 3 masters: {e}"))?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pool: Vec<Client> = Vec::new();
    for _ in 0..args.load.conns.max(1) {
        pool.push(library_client(&cluster, leader).await?);
    }
    let mut rows = Vec::new();
    for &level in &args.load.clients {
        let pool = pool.clone();
        let value_bytes = args.value_bytes;
        let summary = drive(args.load.plan(level), move |client, seq| {
            let c = pool[client % pool.len()].clone();
            async move {
                c.create(secret(format!("bench-{level}-{client}-{seq}"), value_bytes))
                    .await?;
                Ok(())
            }
        })
        .await?;
        report_phase(
            &format!("secrets, encryption {label}"),
            "create",
            level,
            &summary,
        );
        rows.push((level, summary));
    }
    Ok(rows)
}

/// Runs the benchmark and prints the side-by-side table.
pub(crate) async fn run(args: SecretsArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("secrets: Secret creates through 3 masters, encryption at rest off and on")
    );
    println!(
        "workload: 3 masters on 127.0.0.1 (separate processes), TLS on, bearer token, \
         Resources.Create of a Secret with {} bytes of data, clients {:?}; \
         on: aesgcm (AES-256-GCM) for secrets",
        args.value_bytes, args.load.clients
    );
    println!("{}", args.load.describe());
    println!();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("encryption.yaml");
    rafter_master::write_generated_encryption_config(&config)
        .context("writing the encryption configuration")?;
    let config = config.to_string_lossy().into_owned();
    let off = measure("off", &[], &args).await?;
    let on = measure("on", &["--encryption-provider-config", &config], &args).await?;

    println!();
    println!("| clients | off creates/s | on creates/s | on/off | off p99 ms | on p99 ms | errors off/on |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for ((level, a), (_, b)) in off.iter().zip(&on) {
        let ratio = if a.per_sec() > 0.0 {
            format!("{:.0}%", 100.0 * b.per_sec() / a.per_sec())
        } else {
            "-".to_owned()
        };
        println!(
            "| {level} | {} | {} | {ratio} | {} | {} | {}/{} |",
            rate(a.per_sec()),
            rate(b.per_sec()),
            ms(a.p99),
            ms(b.p99),
            a.errors,
            b.errors
        );
    }
    println!();
    print!("{}", machine.footer());
    if off.iter().chain(&on).any(|(_, s)| s.ops == 0) {
        anyhow::bail!("a phase acknowledged no create");
    }
    Ok(())
}
