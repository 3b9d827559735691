//! `rafter secrets reencrypt`: rewrite every Secret so the masters store it under the first
//! provider of their encryption configuration, as Kubernetes' `kubectl get secrets -A -o
//! json | kubectl replace -f -`. A key rotation is: add the new key first on every master
//! (keeping the old one), restart them, run this, then drop the old key.
//!
//! It only reads and updates Secrets through the client; the registry re-encrypts any
//! update whose stored value is under another key, even one that changes nothing.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rafter_client::{Client, ClientError, ListParams};
use rafter_proto::{Kind, Object};

use crate::session::{GlobalArgs, Session};

/// Secrets read per page.
const PAGE: i64 = 100;

/// `rafter secrets`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

/// The verbs of `rafter secrets`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Rewrite every Secret under the masters' current first encryption key, reporting
    /// progress.
    #[command(after_help = "Example:\n  rafter secrets reencrypt")]
    Reencrypt,
}

/// Runs `rafter secrets`.
pub fn run(args: SecretsArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SecretsCommand::Reencrypt => {
            let session = Session::connect(globals)?;
            let rewritten = session.block_on(reencrypt(session.client(), |done, total| {
                println!("rewrote {done}/{total} secrets");
            }))?;
            println!("{rewritten} secrets re-encrypted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Rewrites every Secret, page by page; `progress(done, total)` after each page (the total
/// is what the list knew then). Returns how many were rewritten.
async fn reencrypt(client: &Client, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<u64> {
    let mut done = 0u64;
    let mut params = ListParams {
        limit: PAGE,
        ..ListParams::default()
    };
    loop {
        let page = client
            .list(Kind::Secret, None, &params)
            .await
            .context("listing secrets")?;
        let remaining = u64::try_from(page.remaining_item_count).unwrap_or(0);
        for secret in page.items {
            if rewrite(client, secret).await? {
                done += 1;
            }
        }
        progress(done, done + remaining);
        match page.continue_token {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(done),
        }
    }
}

/// Writes one Secret back unchanged; on a conflict (it changed meanwhile) reads it again.
/// Returns false when it was deleted meanwhile.
async fn rewrite(client: &Client, mut secret: Object) -> anyhow::Result<bool> {
    let (namespace, name) = (
        secret.metadata().namespace.clone(),
        secret.metadata().name.clone(),
    );
    for _ in 0..8 {
        match client.update(secret).await {
            Ok(_) => return Ok(true),
            Err(ClientError::NotFound { .. }) => return Ok(false),
            // Rewriting is idempotent: an unknown outcome or a newer version is read again.
            Err(ClientError::Conflict { .. } | ClientError::OutcomeUnknown { .. }) => {
                match client.get(Kind::Secret, &namespace, &name).await {
                    Ok(current) => secret = current,
                    Err(ClientError::NotFound { .. }) => return Ok(false),
                    Err(e) => return Err(e).with_context(|| format!("reading {namespace}/{name}")),
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("rewriting secret {namespace}/{name}"))
            }
        }
    }
    anyhow::bail!("secret {namespace}/{name} kept changing; run reencrypt again")
}
