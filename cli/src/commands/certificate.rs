//! `rafter certificate approve|deny`: decide CertificateSigningRequests (the cluster's
//! signer issues approved ones).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rafter_proto::Kind;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter certificate`.
#[derive(Debug, Args)]
pub struct CertificateArgs {
    #[command(subcommand)]
    command: CertificateCommand,
}

/// The verbs of `rafter certificate`.
#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Approve CertificateSigningRequests.
    #[command(
        after_help = "Examples:\n  rafter certificate approve node-w1\n  rafter certificate approve csr-a csr-b"
    )]
    Approve(Decision),
    /// Deny CertificateSigningRequests.
    #[command(after_help = "Examples:\n  rafter certificate deny node-w1")]
    Deny(Decision),
}

/// The requests to decide.
#[derive(Debug, Args)]
pub struct Decision {
    /// Names of CertificateSigningRequests.
    #[arg(required = true)]
    names: Vec<String>,
}

/// Runs `rafter certificate`.
pub fn run(args: CertificateArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (names, approve) = match args.command {
        CertificateCommand::Approve(d) => (d.names, true),
        CertificateCommand::Deny(d) => (d.names, false),
    };
    let session = Session::connect(globals)?;
    let (reason, message, word) = if approve {
        (
            "RafterApprove",
            "This CSR was approved by rafter certificate approve.",
            "approved",
        )
    } else {
        (
            "RafterDeny",
            "This CSR was denied by rafter certificate deny.",
            "denied",
        )
    };
    let mut failed = false;
    for name in names {
        let kind = Kind::CertificateSigningRequest;
        match session.block_on(
            session
                .client()
                .approve_certificate(&name, approve, reason, message),
        ) {
            Ok(_) => println!("{} {word}", kinds::qualified(kind, &name)),
            Err(e) => {
                eprintln!("error: {:#}", kinds::explain(e, kind, "", &name));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
