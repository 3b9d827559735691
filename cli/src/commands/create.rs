//! `rafter create`: objects from manifests (create only: an existing object is an
//! error, unlike `apply`), and generators for namespaces, ConfigMaps, Secrets,
//! Deployments, Jobs and CronJobs (built in [`batch`]), ServiceAccounts (and their tokens,
//! printed, not stored), and the RBAC kinds (Roles, ClusterRoles and their bindings, built
//! in [`rbac`]).

mod batch;
mod rbac;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use rafter_proto::{parse_manifests, v1, Object};

use crate::kinds;
use crate::output::{qualified_name, render, Format};
use crate::session::{GlobalArgs, Session};
use crate::sources::read_sources;

/// `rafter create`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  rafter create -f deployment.yaml\n  rafter create namespace staging\n  rafter create configmap app-config --from-literal mode=fast --from-file config.toml\n  rafter create secret generic db --from-literal password=s3cret\n  rafter create secret docker-registry regcred --docker-server reg.example:5000 --docker-username ci --docker-password s3cret\n  rafter create deployment web --image nginx:1.27 --replicas 3\n  rafter create deployment web --image nginx --dry-run -o yaml\n  rafter create job pi --image busybox -- sh -c 'echo done'\n  rafter create cronjob tick --image busybox --schedule '*/1 * * * *' -- date\n  rafter create job tick-now --from=cronjob/tick\n  rafter create role pod-reader --verb get,list,watch --resource pods -n shop\n  rafter create rolebinding read-pods --role pod-reader --user jane -n shop\n  rafter create serviceaccount builder -n shop\n  rafter create token builder -n shop --duration 2h"
)]
pub struct CreateArgs {
    #[command(subcommand)]
    command: Option<CreateCommand>,
    /// Manifests to create (files, directories, or - for standard input).
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Recurse into sub-directories of directories given with -f.
    #[arg(short = 'R', long)]
    recursive: bool,
}

/// What `rafter create` can generate.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a namespace.
    #[command(
        alias = "ns",
        after_help = "Examples:\n  rafter create namespace staging"
    )]
    Namespace(NamespaceArgs),
    /// Create a ConfigMap from literals and files.
    #[command(
        alias = "cm",
        after_help = "Examples:\n  rafter create configmap app --from-literal mode=fast --from-literal level=3\n  rafter create configmap app --from-file config.toml --from-file extra=./other.txt\n  rafter create configmap app --from-file ./conf.d/    # every file of the folder"
    )]
    Configmap(ConfigMapArgs),
    /// Create a Secret.
    Secret(SecretArgs),
    /// Create a Deployment running one or more images.
    #[command(
        alias = "deploy",
        after_help = "Examples:\n  rafter create deployment web --image nginx:1.27\n  rafter create deployment web --image nginx --replicas 3 --port 80"
    )]
    Deployment(DeploymentArgs),
    /// Create a Job running an image once (the command after `--`), or a Job from a
    /// CronJob's template (`--from=cronjob/NAME`).
    #[command(
        after_help = "Examples:\n  rafter create job pi --image busybox -- sh -c 'echo 3.14'\n  rafter create job nightly-now --from=cronjob/nightly"
    )]
    Job(JobArgs),
    /// Create a CronJob running an image on a cron schedule.
    #[command(
        alias = "cj",
        after_help = "Examples:\n  rafter create cronjob tick --image busybox --schedule '*/1 * * * *' -- date\n  rafter create cronjob nightly --image busybox --schedule @daily -- sh -c 'echo report'"
    )]
    Cronjob(CronJobArgs),
    /// Create a Role: rules over resources of one namespace.
    #[command(
        after_help = "Examples:\n  rafter create role pod-reader --verb get,list,watch --resource pods\n  rafter create role pod-reader --verb get --resource pods --resource-name web --resource-name api -n shop\n  rafter create role scaler --verb get,update --resource deployments.apps/scale,rs\n  rafter create role logs --verb get --resource pods/log"
    )]
    Role(RoleArgs),
    /// Create a ClusterRole: rules over resources of every namespace, cluster-scoped
    /// resources and non-resource URLs.
    #[command(
        after_help = "Examples:\n  rafter create clusterrole node-manager --verb list,get,create,delete --resource nodes\n  rafter create clusterrole health --verb get --non-resource-url /healthz --non-resource-url '/metrics/*'\n  rafter create clusterrole secret-reader --verb get --resource secrets --resource-name db"
    )]
    Clusterrole(ClusterRoleArgs),
    /// Create a RoleBinding: a Role or ClusterRole granted in one namespace.
    #[command(
        after_help = "Examples:\n  rafter create rolebinding read-pods --role pod-reader --user jane\n  rafter create rolebinding devs-edit --clusterrole edit --group devs -n shop\n  rafter create rolebinding builder --clusterrole view --serviceaccount shop:builder"
    )]
    Rolebinding(RoleBindingArgs),
    /// Create a ClusterRoleBinding: a ClusterRole granted in every namespace.
    #[command(
        after_help = "Examples:\n  rafter create clusterrolebinding jane-node-manager --clusterrole node-manager --user jane\n  rafter create clusterrolebinding ops-admin --clusterrole cluster-admin --group ops"
    )]
    Clusterrolebinding(ClusterRoleBindingArgs),
    /// Create a ServiceAccount.
    #[command(
        alias = "sa",
        after_help = "Examples:\n  rafter create serviceaccount builder -n shop"
    )]
    Serviceaccount(ServiceAccountArgs),
    /// Print a signed token for a ServiceAccount (serviceaccounts/token); nothing is stored.
    #[command(
        after_help = "Examples:\n  rafter create token builder -n shop\n  rafter create token builder --duration 2h --audience vault"
    )]
    Token(TokenArgs),
}

/// `rafter create serviceaccount`.
#[derive(Debug, Args)]
pub struct ServiceAccountArgs {
    /// The ServiceAccount's name.
    name: String,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The ServiceAccount the token is for.
    service_account: String,
    /// How long the token lives (at least 10m; the server caps it at 48h).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// An audience the token is for (repeatable); none: the API.
    #[arg(long = "audience", value_name = "AUDIENCE")]
    audiences: Vec<String>,
    /// Bind the token to this pod (of the same namespace, running as the account): it
    /// stops working when the pod is gone.
    #[arg(long = "bound-pod", value_name = "POD")]
    bound_pod: Option<String>,
}

/// The rules of a Role or ClusterRole.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// A verb the rule allows (repeatable, or comma-separated: get,list,watch).
    #[arg(long = "verb", value_name = "VERB")]
    verbs: Vec<String>,
    /// A resource: plural or short name, optionally .group and /subresource
    /// (pods, deployments.apps, pods/log, *) (repeatable, or comma-separated).
    #[arg(long = "resource", value_name = "RESOURCE")]
    resources: Vec<String>,
    /// Allow only objects of this name (repeatable, or comma-separated).
    #[arg(long = "resource-name", value_name = "NAME")]
    resource_names: Vec<String>,
}

/// `rafter create role`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The Role's name.
    name: String,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create clusterrole`.
#[derive(Debug, Args)]
pub struct ClusterRoleArgs {
    /// The ClusterRole's name.
    name: String,
    #[command(flatten)]
    rules: RuleArgs,
    /// A URL path that is not a resource (/healthz, /logs/*) (repeatable, or
    /// comma-separated).
    #[arg(long = "non-resource-url", value_name = "PATH")]
    non_resource_urls: Vec<String>,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// Whom a binding grants its role to.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// A user (repeatable).
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// A group (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// A ServiceAccount, as NAMESPACE:NAME (repeatable).
    #[arg(long = "serviceaccount", value_name = "NAMESPACE:NAME")]
    service_accounts: Vec<String>,
}

/// `rafter create rolebinding`.
#[derive(Debug, Args)]
pub struct RoleBindingArgs {
    /// The RoleBinding's name.
    name: String,
    /// The Role (of the binding's namespace) to grant.
    #[arg(long, value_name = "NAME", conflicts_with = "cluster_role")]
    role: Option<String>,
    /// The ClusterRole to grant, in the binding's namespace only.
    #[arg(long = "clusterrole", value_name = "NAME")]
    cluster_role: Option<String>,
    #[command(flatten)]
    subjects: SubjectArgs,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create clusterrolebinding`.
#[derive(Debug, Args)]
pub struct ClusterRoleBindingArgs {
    /// The ClusterRoleBinding's name.
    name: String,
    /// The ClusterRole to grant.
    #[arg(long = "clusterrole", value_name = "NAME", required = true)]
    cluster_role: String,
    #[command(flatten)]
    subjects: SubjectArgs,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// Flags every generator shares.
#[derive(Debug, Args)]
pub struct GeneratorArgs {
    /// Print the object and send nothing (`--dry-run` or `--dry-run=client`).
    #[arg(long, value_name = "client", num_args = 0..=1, default_missing_value = "client")]
    dry_run: Option<DryRun>,
    /// Output format of the object (with --dry-run, or instead of the `created` line).
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
}

/// The only dry-run mode of the generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Build the object locally and print it.
    Client,
    /// Send it (the same as no --dry-run).
    None,
}

/// `rafter create namespace`.
#[derive(Debug, Args)]
pub struct NamespaceArgs {
    /// The namespace's name.
    name: String,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// Where data comes from.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// `key=value` (repeatable).
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    literals: Vec<String>,
    /// A file (its name is the key), `key=path`, or a folder (each file in it).
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    files: Vec<String>,
}

/// `rafter create configmap`.
#[derive(Debug, Args)]
pub struct ConfigMapArgs {
    /// The ConfigMap's name.
    name: String,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    command: SecretCommand,
}

/// The kinds of secret `create secret` makes.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// A Secret of arbitrary keys (values are stored base64-encoded).
    #[command(
        after_help = "Examples:\n  rafter create secret generic db --from-literal user=app --from-literal password=s3cret\n  rafter create secret generic tls --from-file tls.crt --from-file tls.key --type kubernetes.io/tls"
    )]
    Generic(GenericSecretArgs),
    /// A registry login for pulling images (`kubernetes.io/dockerconfigjson`), for a pod's
    /// or ServiceAccount's `imagePullSecrets`.
    #[command(
        name = "docker-registry",
        after_help = "Examples:\n  rafter create secret docker-registry regcred --docker-server registry.example:5000 --docker-username ci --docker-password s3cret\n  rafter create secret docker-registry hub --docker-username me --docker-password \"$TOKEN\" --docker-email me@example.com"
    )]
    DockerRegistry(DockerRegistrySecretArgs),
}

/// `rafter create secret docker-registry`.
#[derive(Debug, Args)]
pub struct DockerRegistrySecretArgs {
    /// The Secret's name.
    name: String,
    /// The registry (`host[:port]`); Docker Hub when not given.
    #[arg(long = "docker-server", default_value = "https://index.docker.io/v1/")]
    server: String,
    /// The user name.
    #[arg(long = "docker-username", required = true)]
    username: String,
    /// The password (or an access token).
    #[arg(long = "docker-password", required = true)]
    password: String,
    /// An e-mail address, stored with the login.
    #[arg(long = "docker-email", default_value = "")]
    email: String,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// The `.dockerconfigjson` of one registry login, as `docker login` writes it.
fn docker_config_json(args: &DockerRegistrySecretArgs) -> anyhow::Result<String> {
    if args.server.trim().is_empty() {
        bail!("--docker-server is empty: give the registry's host[:port]");
    }
    if args.username.is_empty() {
        bail!("--docker-username is empty");
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let mut entry = serde_json::json!({
        "username": args.username,
        "password": args.password,
        "auth": engine.encode(format!("{}:{}", args.username, args.password)),
    });
    if !args.email.is_empty() {
        entry["email"] = serde_json::Value::String(args.email.clone());
    }
    let config = serde_json::json!({ "auths": { args.server.trim(): entry } });
    Ok(config.to_string())
}

/// `rafter create secret generic`.
#[derive(Debug, Args)]
pub struct GenericSecretArgs {
    /// The Secret's name.
    name: String,
    #[command(flatten)]
    data: DataArgs,
    /// The Secret's type.
    #[arg(long = "type", default_value = "Opaque")]
    secret_type: String,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create deployment`.
#[derive(Debug, Args)]
pub struct DeploymentArgs {
    /// The Deployment's name (also its `app` label).
    name: String,
    /// An image to run (repeatable: one container each).
    #[arg(long, required = true)]
    image: Vec<String>,
    /// How many pods.
    #[arg(long, default_value_t = 1)]
    replicas: i32,
    /// The port the containers listen on.
    #[arg(long)]
    port: Option<i32>,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The Job's name.
    name: String,
    /// The image to run.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    image: Option<String>,
    /// Copy the job template of this CronJob (`cronjob/NAME`).
    #[arg(long, value_name = "cronjob/NAME")]
    from: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// `rafter create cronjob`.
#[derive(Debug, Args)]
pub struct CronJobArgs {
    /// The CronJob's name.
    name: String,
    /// The image to run.
    #[arg(long)]
    image: String,
    /// When to run, in cron syntax (`*/5 * * * *`, `@hourly`).
    #[arg(long)]
    schedule: String,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    common: GeneratorArgs,
}

/// A Job from the CronJob named by `--from=cronjob/NAME`.
fn job_from(name: &str, from: &str, globals: &GlobalArgs) -> anyhow::Result<Object> {
    let Some((kind, source)) = from.split_once('/') else {
        bail!("--from {from:?}: write cronjob/NAME");
    };
    if kinds::resolve(kind)? != rafter_proto::Kind::CronJob {
        bail!("--from {from:?}: only cronjob/NAME is supported");
    }
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let cron = kinds::fetch(&session, rafter_proto::Kind::CronJob, &namespace, source)?;
    batch::job_from_cron_job(name, &cron)
}

/// Runs `rafter create`.
pub fn run(args: CreateArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let Some(command) = args.command else {
        if args.files.is_empty() {
            bail!("say what to create: -f FILE, or one of namespace, configmap, secret generic, secret docker-registry, deployment, job, cronjob, role, clusterrole, rolebinding, clusterrolebinding, serviceaccount, token (see `rafter create --help`)");
        }
        return from_files(&args.files, args.recursive, globals);
    };
    let (object, common) = match command {
        CreateCommand::Namespace(a) => (
            Object::Namespace(v1::Namespace {
                metadata: Some(meta(&a.name)),
                ..Default::default()
            }),
            a.common,
        ),
        CreateCommand::Configmap(a) => {
            let (text, binary) = collect_data(&a.data)?;
            let mut data = rafter_proto::StringMap::new();
            let mut binary_data = rafter_proto::StringMap::new();
            for (key, value) in text {
                data.insert(key, value);
            }
            for (key, bytes) in binary {
                binary_data.insert(key, base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            (
                Object::ConfigMap(v1::ConfigMap {
                    metadata: Some(meta(&a.name)),
                    data,
                    binary_data,
                    ..Default::default()
                }),
                a.common,
            )
        }
        CreateCommand::Secret(SecretArgs {
            command: SecretCommand::Generic(a),
        }) => {
            let (text, binary) = collect_data(&a.data)?;
            let engine = base64::engine::general_purpose::STANDARD;
            let data = text
                .into_iter()
                .map(|(k, v)| (k, engine.encode(v.as_bytes())))
                .chain(binary.into_iter().map(|(k, v)| (k, engine.encode(v))))
                .collect();
            (
                Object::Secret(v1::Secret {
                    metadata: Some(meta(&a.name)),
                    data,
                    r#type: a.secret_type,
                    ..Default::default()
                }),
                a.common,
            )
        }
        CreateCommand::Secret(SecretArgs {
            command: SecretCommand::DockerRegistry(a),
        }) => {
            let json = docker_config_json(&a)?;
            let engine = base64::engine::general_purpose::STANDARD;
            (
                Object::Secret(v1::Secret {
                    metadata: Some(meta(&a.name)),
                    data: rafter_proto::StringMap::from([(
                        ".dockerconfigjson".to_owned(),
                        engine.encode(json.as_bytes()),
                    )]),
                    r#type: "kubernetes.io/dockerconfigjson".to_owned(),
                    ..Default::default()
                }),
                a.common,
            )
        }
        CreateCommand::Deployment(a) => (deployment(&a)?, a.common),
        CreateCommand::Job(a) => {
            let object = match (&a.from, &a.image) {
                (Some(from), _) => job_from(&a.name, from, globals)?,
                (None, Some(image)) => batch::job(&a.name, image, &a.command),
                (None, None) => bail!("give --image IMAGE or --from=cronjob/NAME"),
            };
            (object, a.common)
        }
        CreateCommand::Cronjob(a) => (
            batch::cron_job(&a.name, &a.image, &a.schedule, &a.command)?,
            a.common,
        ),
        CreateCommand::Role(a) => {
            let rules = rbac::rules(
                &a.rules.verbs,
                &a.rules.resources,
                &a.rules.resource_names,
                &[],
            )?;
            (rbac::role(&a.name, rules), a.common)
        }
        CreateCommand::Clusterrole(a) => {
            let rules = rbac::rules(
                &a.rules.verbs,
                &a.rules.resources,
                &a.rules.resource_names,
                &a.non_resource_urls,
            )?;
            (rbac::cluster_role(&a.name, rules), a.common)
        }
        CreateCommand::Rolebinding(a) => {
            let role_ref = rbac::role_ref(a.role.as_deref(), a.cluster_role.as_deref())?;
            let subjects = binding_subjects(&a.subjects)?;
            (rbac::role_binding(&a.name, role_ref, subjects), a.common)
        }
        CreateCommand::Serviceaccount(a) => (
            Object::ServiceAccount(v1::ServiceAccount {
                metadata: Some(meta(&a.name)),
                ..Default::default()
            }),
            a.common,
        ),
        CreateCommand::Token(a) => return token(&a, globals),
        CreateCommand::Clusterrolebinding(a) => {
            let role_ref = rbac::role_ref(None, Some(&a.cluster_role))?;
            let subjects = binding_subjects(&a.subjects)?;
            (
                rbac::cluster_role_binding(&a.name, role_ref, subjects),
                a.common,
            )
        }
    };
    generate(object, common, globals)
}

/// `rafter create token`: asks the server for a token and prints it alone.
fn token(args: &TokenArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let seconds = i64::try_from(args.duration.as_secs()).unwrap_or(i64::MAX);
    if seconds < 600 {
        bail!(
            "--duration {} is too short: a token lives at least 10m",
            humantime::format_duration(args.duration)
        );
    }
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let request = rafter_proto::api::TokenRequest {
        namespace: namespace.clone(),
        service_account: args.service_account.clone(),
        audiences: args.audiences.clone(),
        expiration_seconds: seconds,
        bound_pod_name: args.bound_pod.clone().unwrap_or_default(),
        bound_pod_uid: String::new(),
    };
    let answer = session
        .block_on(session.client().create_token(request))
        .map_err(|e| {
            kinds::explain(
                e,
                rafter_proto::Kind::ServiceAccount,
                &namespace,
                &args.service_account,
            )
        })?;
    println!("{}", answer.token);
    Ok(ExitCode::SUCCESS)
}

fn binding_subjects(args: &SubjectArgs) -> anyhow::Result<Vec<v1::Subject>> {
    rbac::subjects(&args.users, &args.groups, &args.service_accounts)
}

fn meta(name: &str) -> v1::ObjectMeta {
    v1::ObjectMeta {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// The container name kubectl derives from an image: its last path part, no tag.
fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    let last = last.split(':').next().unwrap_or(last);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "app".to_owned()
    } else {
        name
    }
}

fn deployment(args: &DeploymentArgs) -> anyhow::Result<Object> {
    if args.replicas < 0 {
        bail!("--replicas must be 0 or more");
    }
    let labels: rafter_proto::StringMap = [("app".to_owned(), args.name.clone())].into();
    let mut containers: Vec<v1::Container> = Vec::new();
    for image in &args.image {
        let mut name = container_name(image);
        if containers.iter().any(|c| c.name == name) {
            name = format!("{name}-{}", containers.len() + 1);
        }
        containers.push(v1::Container {
            name,
            image: image.clone(),
            ports: args
                .port
                .map(|p| {
                    vec![v1::ContainerPort {
                        container_port: p,
                        protocol: "TCP".to_owned(),
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            ..Default::default()
        });
    }
    Ok(Object::Deployment(v1::Deployment {
        metadata: Some(v1::ObjectMeta {
            name: args.name.clone(),
            labels: labels.clone(),
            ..Default::default()
        }),
        spec: Some(v1::DeploymentSpec {
            replicas: Some(args.replicas),
            selector: Some(v1::LabelSelector {
                match_labels: labels.clone(),
                match_expressions: vec![],
            }),
            template: Some(v1::PodTemplateSpec {
                metadata: Some(v1::ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(Box::new(v1::PodSpec {
                    containers,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Text values and binary values (not UTF-8) of `--from-literal` and `--from-file`.
type Data = (rafter_proto::StringMap, BTreeMap<String, Vec<u8>>);

fn collect_data(args: &DataArgs) -> anyhow::Result<Data> {
    let mut text = rafter_proto::StringMap::new();
    let mut binary = BTreeMap::new();
    let mut add = |key: String, bytes: Vec<u8>, from: &str| -> anyhow::Result<()> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("{from}: {key:?} is not a valid key (letters, digits, '-', '_', '.')");
        }
        if text.contains_key(&key) || binary.contains_key(&key) {
            bail!("{from}: the key {key:?} is given twice");
        }
        match String::from_utf8(bytes) {
            Ok(s) => {
                text.insert(key, s);
            }
            Err(e) => {
                binary.insert(key, e.into_bytes());
            }
        }
        Ok(())
    };
    for literal in &args.literals {
        let Some((key, value)) = literal.split_once('=') else {
            bail!("--from-literal {literal:?}: write KEY=VALUE");
        };
        add(key.to_owned(), value.as_bytes().to_vec(), literal)?;
    }
    for spec in &args.files {
        let (key, path) = match spec.split_once('=') {
            Some((key, path)) => (Some(key.to_owned()), Path::new(path)),
            None => (None, Path::new(spec.as_str())),
        };
        if path.is_dir() {
            if key.is_some() {
                bail!("--from-file {spec:?}: a key cannot name a folder");
            }
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for file in entries {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let key = file_key(&file)?;
                add(key, bytes, spec)?;
            }
            continue;
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("--from-file: reading {}", path.display()))?;
        let key = match key {
            Some(key) => key,
            None => file_key(path)?,
        };
        add(key, bytes, spec)?;
    }
    if text.is_empty() && binary.is_empty() {
        eprintln!("note: no --from-literal or --from-file given; the object will hold no data");
    }
    Ok((text, binary))
}

fn file_key(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no usable file name; give KEY=PATH", path.display()))
}

fn generate(
    mut object: Object,
    common: GeneratorArgs,
    globals: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    object.set_type_meta();
    if common.dry_run == Some(DryRun::Client) {
        if object.kind().info().namespaced {
            if let Some(ns) = &globals.namespace {
                object.metadata_mut().namespace = ns.clone();
            }
        }
        let format = common.output.unwrap_or(Format::Name);
        let text = render(
            std::slice::from_ref(&object),
            object.kind(),
            Some(format),
            false,
        )?;
        if format == Format::Name {
            println!("{} created (dry run)", text.trim_end());
        } else {
            print!("{text}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let session = Session::connect(globals)?;
    let kind = object.kind();
    let namespace = kinds::namespace(kind, &session);
    if kind.info().namespaced {
        object.metadata_mut().namespace = namespace.clone();
    }
    let name = object.metadata().name.clone();
    let created = session
        .block_on(session.client().create(object))
        .map_err(|e| kinds::explain(e, kind, &namespace, &name))?;
    match common.output {
        None | Some(Format::Name) => println!("{} created", qualified_name(&created)),
        Some(format) => print!(
            "{}",
            render(std::slice::from_ref(&created), kind, Some(format), false)?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn from_files(files: &[String], recursive: bool, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let sources = read_sources(files, recursive)?;
    let mut objects = Vec::new();
    let mut failed = 0usize;
    for source in &sources {
        for document in parse_manifests(&source.text, &source.name) {
            match document {
                Ok(d) => objects.push(d.object),
                Err(e) => {
                    eprintln!("error: {e}");
                    failed += 1;
                }
            }
        }
    }
    let session = Session::connect(globals)?;
    for mut object in objects {
        let kind = object.kind();
        if kind.info().namespaced && object.metadata().namespace.is_empty() {
            object.metadata_mut().namespace = session.namespace().to_owned();
        }
        let namespace = if kind.info().namespaced {
            object.metadata().namespace.clone()
        } else {
            String::new()
        };
        let name = object.metadata().name.clone();
        match session.block_on(session.client().create(object)) {
            Ok(created) => println!("{} created", qualified_name(&created)),
            Err(e) => {
                eprintln!("error: {:#}", kinds::explain(e, kind, &namespace, &name));
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_come_from_the_image() {
        assert_eq!(container_name("nginx"), "nginx");
        assert_eq!(container_name("registry.io:5000/team/my_app:1.2"), "my-app");
        assert_eq!(container_name("busybox@sha256:abc"), "busybox");
    }
}
