//! `rafter token create|list|delete`: bootstrap tokens, the credentials a new node agent
//! joins with (kubeadm's `token` verbs). A token `<id>.<secret>` is stored as the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`; the gateway
//! accepts it until its expiration, for filing and reading CertificateSigningRequests only.

use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use rafter_client::BootstrapToken;
use rafter_client::ListParams;
use rafter_proto::well_known::BOOTSTRAP_TOKEN_SECRET_TYPE;
use rafter_proto::{Kind, Object};

use crate::session::{GlobalArgs, Session};

/// `rafter token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// The verbs of `rafter token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token and print it.
    #[command(
        after_help = "Examples:\n  rafter token create\n  rafter token create --ttl 2h --groups system:bootstrappers:workers"
    )]
    Create {
        /// How long the token is valid (`30m`, `2h`, `1d`; `0` for never).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Extra groups the token's holder belongs to.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// List the bootstrap tokens (ids and expirations, not the secrets).
    #[command(after_help = "Example:\n  rafter token list")]
    List,
    /// Delete a bootstrap token by id or whole token.
    #[command(after_help = "Example:\n  rafter token delete abcdef")]
    Delete {
        /// The token id (6 characters) or the whole token.
        token: String,
    },
}

/// Parses `30s`, `30m`, `2h`, `1d` (and `0`) into seconds.
fn parse_ttl(text: &str) -> anyhow::Result<i64> {
    if text == "0" {
        return Ok(0);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let number: i64 = number
        .parse()
        .with_context(|| format!("--ttl {text:?}: expected a number and s, m, h or d"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => anyhow::bail!("--ttl {text:?}: the unit must be s, m, h or d"),
    };
    anyhow::ensure!(
        seconds > 0,
        "--ttl must be positive (or 0 for a token that never expires)"
    );
    Ok(seconds)
}

fn decoded(object: &Object, key: &str) -> Option<String> {
    let Object::Secret(secret) = object else {
        return None;
    };
    let raw = secret.data.get(key)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

/// Runs `rafter token`.
pub fn run(args: TokenArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let session = Session::connect(globals)?;
    let client = session.client();
    match args.command {
        TokenCommand::Create { ttl, groups } => {
            let seconds = parse_ttl(&ttl)?;
            let expiration = (seconds > 0).then(|| {
                let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
                let at = at.replace_nanosecond(0).unwrap_or(at);
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            });
            let token = BootstrapToken::generate();
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let secret = token.to_secret(expiration.as_deref(), &groups);
            session
                .block_on(client.create(Object::Secret(secret)))
                .context("storing the token")?;
            println!("{}.{}", token.id, token.secret);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List => {
            let list = session
                .block_on(client.list(Kind::Secret, Some("kube-system"), &ListParams::default()))
                .context("listing the tokens")?;
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .filter(|object| {
                    matches!(object, Object::Secret(s) if s.r#type == BOOTSTRAP_TOKEN_SECRET_TYPE)
                })
                .map(|object| {
                    vec![
                        decoded(object, "token-id").unwrap_or_default(),
                        decoded(object, "expiration").unwrap_or_else(|| "<never>".to_owned()),
                        decoded(object, "auth-extra-groups")
                            .unwrap_or_else(|| "<none>".to_owned()),
                    ]
                })
                .collect();
            print!(
                "{}",
                crate::table::render(&["ID", "EXPIRES", "GROUPS"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Delete { token } => {
            let id = token.split('.').next().unwrap_or_default().to_owned();
            let name = format!("bootstrap-token-{id}");
            session
                .block_on(client.delete(Kind::Secret, "kube-system", &name, &Default::default()))
                .with_context(|| format!("deleting bootstrap token {id}"))?;
            println!("bootstrap token {id} deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_like_kubeadm() {
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("2h").unwrap(), 7200);
        assert_eq!(parse_ttl("1d").unwrap(), 86_400);
        assert_eq!(parse_ttl("0").unwrap(), 0);
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("-1h").is_err());
    }
}
