//! [`NftTable`]: the proxy's table in the kernel, written through the `nft` binary (Debian's
//! `nftables`), one `nft -f -` transaction per sync, so a sync either replaces the rule set
//! as a whole or changes nothing.
//!
//! Owns what was last applied (the names [`Ruleset::update`] needs to delete stale chains
//! and sets) and falls back to a whole-table replacement when that is not known: at the
//! first sync and after any failure. It must not decide what the rules are (`nft`
//! renders them) nor when to sync (`sync`'s loop).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::nft::{delete_table, Names, Ruleset};
use super::ProxyError;

/// How long one `nft` run may take before it is reported as failed.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy's nftables table.
#[derive(Debug, Clone)]
pub struct NftTable {
    /// The table's name (family `ip`).
    table: String,
    /// The command that runs `nft` (`["nft"]`, or a prefix such as `ip netns exec NS nft`).
    command: Vec<String>,
    /// What the last successful sync left in the table; `None`: unknown.
    applied: Option<Names>,
}

/// What one apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Rules in the table.
    pub rules: usize,
    /// Whether the whole table was replaced (rather than flushed and refilled).
    pub full: bool,
}

impl NftTable {
    /// The table `table`, written with `command` (its first word is the program).
    pub fn new(table: impl Into<String>, command: Vec<String>) -> NftTable {
        NftTable {
            table: table.into(),
            command,
            applied: None,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// Makes the table hold `ruleset` in one transaction.
    pub async fn apply(&mut self, ruleset: &Ruleset) -> Result<Applied, ProxyError> {
        let (text, full) = match &self.applied {
            Some(previous) => (ruleset.update(previous), false),
            None => (ruleset.full(), true),
        };
        match run_nft(&self.command, &["-f", "-"], &text).await {
            Ok(()) => {
                self.applied = Some(ruleset.names());
                Ok(Applied {
                    rules: ruleset.rule_count(),
                    full,
                })
            }
            Err(e) => {
                self.applied = None;
                Err(e)
            }
        }
    }

    /// Removes the table (and every rule of the proxy).
    pub async fn remove(&mut self) -> Result<(), ProxyError> {
        self.applied = None;
        run_nft(&self.command, &["-f", "-"], &delete_table(&self.table)).await
    }
}

/// Checks `text` with `nft -c` (nothing is changed); the error holds nft's message.
pub async fn check(command: &[String], text: &str) -> Result<(), ProxyError> {
    run_nft(command, &["-c", "-f", "-"], text).await
}

/// Runs `command args..` with `text` on its standard input.
async fn run_nft(command: &[String], args: &[&str], text: &str) -> Result<(), ProxyError> {
    let Some((program, prefix)) = command.split_first() else {
        return Err(ProxyError::NoCommand);
    };
    let mut child = Command::new(program)
        .args(prefix)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProxyError::Spawn {
            program: program.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|source| ProxyError::Spawn {
                program: program.clone(),
                source,
            })?;
    }
    let output = tokio::time::timeout(NFT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| ProxyError::Timeout(NFT_TIMEOUT))?
        .map_err(|source| ProxyError::Spawn {
            program: program.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(ProxyError::Nft {
        status: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}
