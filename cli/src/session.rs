//! A connection to a cluster for one command: the client config resolved (the global
//! `--kubeconfig`, `--context`, `--namespace` flags over the file), a Tokio runtime and a
//! failover-aware [`Client`], acting as another user with the global `--as` /
//! `--as-group` (impersonation, which the server authorizes).
//!
//! Owns the set-up every cluster verb shares; it does not print anything.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rafter_client::{Client, ResolvedConfig};

/// Flags every verb that talks to a cluster accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The client config file [default: $RAFTERCONFIG, else ~/.rafter/config].
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The context of the config file to use [default: its current context].
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace [default: the context's, else "default"].
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Act as this user (impersonation; the server checks `impersonate` on it).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Act in this group too (repeatable; needs --as).
    #[arg(
        long = "as-group",
        global = true,
        value_name = "GROUP",
        requires = "as_user"
    )]
    pub as_groups: Vec<String>,
}

/// One command's connection to the cluster.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    client: Client,
    config: ResolvedConfig,
    namespace: String,
}

impl Session {
    /// Reads the config and prepares a client (connections are made on first use).
    pub fn connect(globals: &GlobalArgs) -> anyhow::Result<Session> {
        let config =
            ResolvedConfig::load(globals.kubeconfig.as_deref(), globals.context.as_deref())
                .context(
                    "reading the client config (set one up with `rafter up`, or pass --kubeconfig)",
                )?;
        let namespace = globals
            .namespace
            .clone()
            .unwrap_or_else(|| config.namespace.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let mut client = runtime
            .block_on(Client::connect(config.clone()))
            .context("configuring the client")?;
        if let Some(user) = &globals.as_user {
            client = client
                .impersonating(user, &globals.as_groups)
                .context("--as")?;
        }
        Ok(Session {
            runtime,
            client,
            config,
            namespace,
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The resolved client config the client was made from (to reach one master alone).
    pub fn config(&self) -> &ResolvedConfig {
        &self.config
    }

    /// The namespace commands act in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Runs a future to completion on the session's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
