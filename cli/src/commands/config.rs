//! `rafter config`: show and edit the client config file (clusters, users, contexts).
//!
//! Owns the verbs only; the file format, where the file lives and how it is written
//! (atomically, mode 0600) belong to `rafter_client::config`. Nothing here talks to
//! a cluster. Secrets are redacted when shown unless `--raw` is given.
//!
//! The file is `--kubeconfig FILE` (after `config`), else `$RAFTERCONFIG`, else
//! `~/.rafter/config`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rafter_client::{ClientConfig, ConfigError, NamedContext, DEFAULT_NAMESPACE};

/// `rafter config`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter config get-contexts\n  rafter config use-context admin@dev\n  rafter config set-context --current --namespace web\n  RAFTERCONFIG=./dev.conf rafter config view --minify"
)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

/// How `get-contexts` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContextsOutput {
    /// Only the names, one a line.
    Name,
}

/// The verbs of `rafter config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the config file (tokens and keys redacted unless --raw).
    #[command(
        after_help = "Examples:\n  rafter config view\n  rafter config view --minify --raw > admin.conf\n  rafter config view --kubeconfig-format --minify --raw > kubeconfig && KUBECONFIG=kubeconfig kubectl get nodes"
    )]
    View {
        /// Only the current context, its cluster and its user.
        #[arg(long)]
        minify: bool,
        /// As a standard kubeconfig for stock kubectl: each cluster's server is its first
        /// master's Kubernetes REST endpoint.
        #[arg(long)]
        kubeconfig_format: bool,
        /// Show tokens, keys and certificate data as they are.
        #[arg(long)]
        raw: bool,
    },
    /// Make a context the current one.
    #[command(after_help = "Example:\n  rafter config use-context admin@dev")]
    UseContext {
        /// The context.
        name: String,
    },
    /// Create or change a context: its default namespace, cluster or user.
    #[command(
        after_help = "Examples:\n  rafter config set-context --current --namespace web\n  rafter config set-context dev-admin --cluster dev --user admin --namespace default"
    )]
    SetContext {
        /// The context to change or create (or --current).
        #[arg(required_unless_present = "current", conflicts_with = "current")]
        name: Option<String>,
        /// Change the current context.
        #[arg(long)]
        current: bool,
        /// The default namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// The cluster (as named in the file).
        #[arg(long)]
        cluster: Option<String>,
        /// The user (as named in the file).
        #[arg(long)]
        user: Option<String>,
    },
    /// List the contexts; `*` marks the current one.
    #[command(
        after_help = "Examples:\n  rafter config get-contexts\n  rafter config get-contexts -o name"
    )]
    GetContexts {
        /// Print only names.
        #[arg(short = 'o', long, value_enum)]
        output: Option<ContextsOutput>,
    },
    /// Print the current context's name.
    #[command(after_help = "Example:\n  rafter config current-context")]
    CurrentContext,
}

/// Runs `rafter config`.
pub fn run(args: ConfigArgs, kubeconfig: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = ClientConfig::locate(kubeconfig)?;
    match args.command {
        ConfigCommand::View {
            minify,
            kubeconfig_format,
            raw,
        } => {
            let mut config = ClientConfig::load(&path)?;
            if minify {
                config = config.minified()?;
            }
            if kubeconfig_format {
                config = config.to_kubeconfig()?;
            }
            if !raw {
                config = config.redacted();
            }
            print!("{}", config.to_yaml().context("cannot print the config")?);
        }
        ConfigCommand::UseContext { name } => {
            let mut config = ClientConfig::load(&path)?;
            config.use_context(&name)?;
            config.save(&path)?;
            println!("Switched to context {name:?}.");
        }
        ConfigCommand::SetContext {
            name,
            current: _,
            namespace,
            cluster,
            user,
        } => {
            let mut config = load_or_new(&path)?;
            let name = match name {
                Some(name) => name,
                None => config.current_context_name()?.to_owned(),
            };
            let created = set_context(&mut config, &name, namespace, cluster, user)?;
            config.save(&path)?;
            let verb = if created { "created" } else { "modified" };
            println!("Context {name:?} {verb}.");
        }
        ConfigCommand::GetContexts { output } => {
            let config = ClientConfig::load(&path)?;
            print!("{}", contexts_table(&config, output));
        }
        ConfigCommand::CurrentContext => {
            let config = ClientConfig::load(&path)?;
            println!("{}", config.current_context_name()?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The file at `path`, or an empty config when there is none yet.
fn load_or_new(path: &Path) -> Result<ClientConfig, ConfigError> {
    match ClientConfig::load(path) {
        Err(ConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(ClientConfig::default())
        }
        other => other,
    }
}

/// Changes (or creates) context `name`; true when it was created.
fn set_context(
    config: &mut ClientConfig,
    name: &str,
    namespace: Option<String>,
    cluster: Option<String>,
    user: Option<String>,
) -> anyhow::Result<bool> {
    if namespace.is_none() && cluster.is_none() && user.is_none() {
        bail!("nothing to set: give --namespace, --cluster or --user");
    }
    let created = config.context(name).is_none();
    if created {
        config.contexts.push(NamedContext {
            name: name.to_owned(),
            context: Default::default(),
        });
    }
    for entry in config.contexts.iter_mut().filter(|c| c.name == name) {
        if let Some(namespace) = &namespace {
            entry.context.namespace = Some(namespace.clone());
        }
        if let Some(cluster) = &cluster {
            entry.context.cluster = cluster.clone();
        }
        if let Some(user) = &user {
            entry.context.user = user.clone();
        }
    }
    Ok(created)
}

fn contexts_table(config: &ClientConfig, output: Option<ContextsOutput>) -> String {
    if output == Some(ContextsOutput::Name) {
        return config
            .contexts
            .iter()
            .map(|c| format!("{}\n", c.name))
            .collect();
    }
    let rows: Vec<Vec<String>> = config
        .contexts
        .iter()
        .map(|context| {
            let entry = &context.context;
            vec![
                if context.name == config.current_context {
                    "*".to_owned()
                } else {
                    String::new()
                },
                context.name.clone(),
                entry.cluster.clone(),
                entry.user.clone(),
                entry
                    .namespace
                    .clone()
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            ]
        })
        .collect();
    crate::table::render(&["CURRENT", "NAME", "CLUSTER", "USER", "NAMESPACE"], &rows)
}
