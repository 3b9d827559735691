//! The verbs of `rafter`, one module each, and the dispatch between them.

mod agent;
mod api_resources;
mod apply;
mod attach;
mod auth;
mod certificate;
mod cluster;
mod completion;
mod config;
mod create;
mod delete;
mod describe;
mod drain;
mod edit;
mod exec;
mod expose;
mod get;
mod image;
mod label;
mod logs;
mod master;
mod pod_target;
mod port_forward;
mod rollout;
mod scale;
mod secrets;
mod set;
mod store;
mod taint;
mod token;
mod top;
mod up;
mod version;
mod wait;

use std::process::ExitCode;

use clap::Subcommand;

use crate::session::GlobalArgs;

/// Every verb `rafter` knows.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests.
    Apply(apply::ApplyArgs),
    /// List or read objects.
    Get(get::GetArgs),
    /// Delete objects by name, label selector or manifest.
    Delete(delete::DeleteArgs),
    /// Bootstrap tokens: the credentials new node agents join with.
    Token(token::TokenArgs),
    /// Secrets at rest: `reencrypt` rewrites every Secret under the current first key.
    Secrets(secrets::SecretsArgs),
    /// Back up the store of a running cluster, or seed a new one from a backup.
    Store(store::StoreArgs),
    /// The masters of the cluster: leader, term, health.
    Cluster(cluster::ClusterArgs),
    /// List the kinds the API serves.
    ApiResources,
    /// Check manifests without a cluster: parse, default and validate them.
    Validate(apply::ValidateArgs),
    /// Start a whole cluster on this machine: masters, agents, client config.
    Up(up::UpArgs),
    /// Stop a cluster `rafter up --detach` started.
    Down(up::DownArgs),
    /// Run one master: a store member and the API gateway.
    Master(Box<master::MasterArgs>),
    /// Run one node agent: register the node and run the pods bound to it.
    Agent(Box<agent::AgentArgs>),
    /// Show and edit the client config file: clusters, users, contexts.
    Config(config::ConfigArgs),
    /// Print the client version, and the cluster's leader and term when one is configured.
    #[command(
        after_help = "Examples:\n  rafter version\n  rafter version --kubeconfig /tmp/c/config"
    )]
    Version,
    /// Create objects from manifests (create only), or namespaces, configmaps, secrets, deployments, jobs, cronjobs, roles, clusterroles and their bindings.
    Create(create::CreateArgs),
    /// Show an object in detail, with its Events.
    Describe(describe::DescribeArgs),
    /// Edit an object in $EDITOR and write it back.
    Edit(edit::EditArgs),
    /// Set or remove labels.
    Label(label::LabelArgs),
    /// Set or remove annotations.
    Annotate(label::AnnotateArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(scale::ScaleArgs),
    /// Change fields of objects: `set image`.
    Set(set::SetArgs),
    /// Manage a Deployment's rollout: status, history, undo, pause, resume, restart.
    Rollout(rollout::RolloutArgs),
    /// Create a Service for a Deployment, ReplicaSet or Pod.
    Expose(expose::ExposeArgs),
    /// Add or remove taints on nodes.
    Taint(taint::TaintArgs),
    /// Mark a node unschedulable.
    Cordon(drain::CordonArgs),
    /// Mark a node schedulable again.
    #[command(after_help = "Examples:\n  rafter uncordon w1")]
    Uncordon(drain::CordonArgs),
    /// Cordon a node and evict its pods.
    Drain(drain::DrainArgs),
    /// Approve or deny certificate signing requests.
    Certificate(certificate::CertificateArgs),
    /// Print a container's log.
    Logs(logs::LogsArgs),
    /// Run a command in a container.
    Exec(exec::ExecArgs),
    /// Attach to the stdio of a running container.
    Attach(attach::AttachArgs),
    /// Forward local ports to a pod.
    PortForward(port_forward::PortForwardArgs),
    /// Wait until objects meet a condition or are deleted.
    Wait(wait::WaitArgs),
    /// CPU and memory of nodes and pods.
    Top(top::TopArgs),
    /// Import image archives into every node, list the nodes' images.
    Image(image::ImageArgs),
    /// Check what you may do.
    Auth(auth::AuthArgs),
    /// Print a shell completion script.
    Completion(completion::CompletionArgs),
}

/// Runs one verb and returns the process exit code.
pub fn run(command: Command, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match command {
        Command::Apply(args) => apply::apply(args, globals),
        Command::Get(args) => get::run(args, globals),
        Command::Delete(args) => delete::run(args, globals),
        Command::Cluster(args) => cluster::run(args, globals),
        Command::Store(args) => store::run(args, globals),
        Command::Secrets(args) => secrets::run(args, globals),
        Command::Token(args) => token::run(args, globals),
        Command::ApiResources => api_resources::run(),
        Command::Validate(args) => apply::validate(args),
        Command::Master(args) => master::run(*args),
        Command::Agent(args) => agent::run(*args, globals),
        Command::Up(args) => up::up(args),
        Command::Down(args) => up::down(args),
        Command::Config(args) => config::run(args, globals.kubeconfig.as_deref()),
        Command::Version => version::print(globals),
        Command::Create(args) => create::run(args, globals),
        Command::Describe(args) => describe::run(args, globals),
        Command::Edit(args) => edit::run(args, globals),
        Command::Label(args) => label::label(args, globals),
        Command::Annotate(args) => label::annotate(args, globals),
        Command::Scale(args) => scale::run(args, globals),
        Command::Set(args) => set::run(args, globals),
        Command::Rollout(args) => rollout::run(args, globals),
        Command::Expose(args) => expose::run(args, globals),
        Command::Taint(args) => taint::run(args, globals),
        Command::Cordon(args) => drain::cordon(args, globals, true),
        Command::Uncordon(args) => drain::cordon(args, globals, false),
        Command::Drain(args) => drain::drain(args, globals),
        Command::Certificate(args) => certificate::run(args, globals),
        Command::Logs(args) => logs::run(args, globals),
        Command::Exec(args) => exec::run(args, globals),
        Command::Attach(args) => attach::run(args, globals),
        Command::PortForward(args) => port_forward::run(args, globals),
        Command::Wait(args) => wait::run(args, globals),
        Command::Top(args) => top::run(args, globals),
        Command::Image(args) => image::run(args, globals),
        Command::Auth(args) => auth::run(args, globals),
        Command::Completion(args) => completion::run(args),
    }
}
