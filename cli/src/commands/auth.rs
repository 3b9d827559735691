//! `rafter auth can-i`: whether the current user may do something.
//!
//! RBAC is not built yet (a later issue): every authenticated user except a bootstrap
//! token is an administrator. So the answer comes from the server, by trying a
//! harmless read of the kind: refused means `no`, answered means `yes`, said with that
//! caveat.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_client::ClientError;
use rafter_client::ListParams;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

/// The verbs of `rafter auth`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Whether you may do VERB on KIND.
    ///
    /// RBAC is not built yet (it is a later issue): an authenticated user is an
    /// administrator, except bootstrap tokens, which may only file certificate requests.
    /// The answer is found by a read the server either serves or refuses.
    #[command(
        after_help = "Examples:\n  rafter auth can-i create deployments\n  rafter auth can-i delete pods -n staging\n  rafter auth can-i list nodes"
    )]
    CanI(CanIArgs),
}

/// `rafter auth can-i`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, patch, delete ...
    verb: String,
    /// The kind (pods, deploy, nodes ...).
    kind: String,
    /// An object's name (ignored until RBAC can name objects).
    name: Option<String>,
}

/// Runs `rafter auth`.
pub fn run(args: AuthArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let AuthCommand::CanI(args) = args.command;
    let kind = kinds::resolve(&args.kind)?;
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let params = ListParams {
        limit: 1,
        ..Default::default()
    };
    let ns = kind.info().namespaced.then_some(namespace.as_str());
    let _ = &args.name;
    match session.block_on(session.client().list(kind, ns, &params)) {
        Ok(_) => {
            println!("yes");
            eprintln!(
                "note: RBAC is not built yet, so an authenticated user may {} {} (and do anything else)",
                args.verb,
                kind.info().plural
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Forbidden { message } | ClientError::Unauthenticated { message }) => {
            println!("no");
            eprintln!("the server refused: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::anyhow!("asking the server: {e}")),
    }
}
