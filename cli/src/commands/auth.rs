//! `rafter auth can-i`: whether a user may make a request, as the server decides it.
//!
//! The question goes to the server's `ReviewAccess` call (Kubernetes'
//! SelfSubjectAccessReview, or SubjectAccessReview with `--as`), which runs the same
//! authorizers (RBAC, the Node authorizer) every request passes. The answer is `yes` or
//! `no` on standard output and the exit code (0 or 1) as `kubectl auth can-i` gives it;
//! with `no`, the server's reason goes to standard error.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use rafter_client::ClientError;
use rafter_proto::api;

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
    /// Whether you (or, with --as, another user) may do VERB on KIND or on a path.
    ///
    /// The server answers, with the authorizers every request passes. Prints `yes` (exit
    /// code 0) or `no` (exit code 1, the reason on standard error). Asking about another
    /// user (--as) takes `create` on subjectaccessreviews, which cluster-admin has.
    #[command(
        after_help = "Examples:\n  rafter auth can-i create deployments\n  rafter auth can-i delete pods -n staging\n  rafter auth can-i get pods/web --as jane\n  rafter auth can-i get pods --subresource log\n  rafter auth can-i list secrets -A --as jane --as-group devs\n  rafter auth can-i get /healthz"
    )]
    CanI(CanIArgs),
}

/// `rafter auth can-i`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, patch, delete, deletecollection ...
    verb: String,
    /// KIND (pods, deploy, deployments.apps ...), KIND/NAME, or a non-resource path
    /// (/healthz, /metrics).
    target: String,
    /// An object's name (also KIND/NAME).
    name: Option<String>,
    /// A subresource (log, status, scale ...).
    #[arg(long, default_value = "")]
    subresource: String,
    /// Ask in every namespace (a namespaced kind only; a ClusterRoleBinding must allow it).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Ask about this user instead of yourself.
    #[arg(long = "as", value_name = "USER")]
    as_user: Option<String>,
    /// A group of the --as user (repeatable).
    #[arg(long = "as-group", value_name = "GROUP", requires = "as_user")]
    as_groups: Vec<String>,
    /// Print nothing: the exit code is the answer.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Runs `rafter auth`.
pub fn run(args: AuthArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let AuthCommand::CanI(args) = args.command;
    // The question is checked before any connection is made.
    let (mut request, namespaced) = review_request(&args)?;
    let session = Session::connect(globals)?;
    if namespaced && !args.all_namespaces {
        request.namespace = session.namespace().to_owned();
    }
    let asked_about_other = !request.user.is_empty();
    let response = match session.block_on(session.client().review_access(request)) {
        Ok(response) => response,
        Err(ClientError::Forbidden { message }) if asked_about_other => bail!(
            "the server refused to answer about another user: {message}; asking with --as \
             takes create on subjectaccessreviews (cluster-admin has it)"
        ),
        Err(e) => bail!("asking the server: {e}"),
    };
    if response.allowed {
        if !args.quiet {
            println!("yes");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.quiet {
            println!("no");
            if !response.reason.is_empty() {
                eprintln!("{}", response.reason);
            }
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The question `can-i` sends, with no namespace yet, and whether it is about a namespaced
/// kind (then it is asked in the session's namespace, or in all of them with -A).
fn review_request(args: &CanIArgs) -> anyhow::Result<(api::AccessReviewRequest, bool)> {
    let mut request = api::AccessReviewRequest {
        verb: args.verb.clone(),
        user: args.as_user.clone().unwrap_or_default(),
        groups: args.as_groups.clone(),
        ..Default::default()
    };
    if args.verb.is_empty() {
        bail!("say which verb to ask about (get, list, create ...)");
    }
    if args.target.starts_with('/') {
        if args.name.is_some() || !args.subresource.is_empty() {
            bail!(
                "{} is a non-resource path: it takes no NAME and no --subresource",
                args.target
            );
        }
        request.non_resource_path = args.target.clone();
        return Ok((request, false));
    }
    let (kind, name) = match (args.target.split_once('/'), &args.name) {
        (Some(_), Some(name)) => bail!(
            "{} already names an object; drop the extra NAME {name:?}",
            args.target
        ),
        (Some((kind, name)), None) => (kind, name.to_owned()),
        (None, name) => (args.target.as_str(), name.clone().unwrap_or_default()),
    };
    let kind = kinds::resolve(kind)?;
    let info = kind.info();
    request.kind = if info.group.is_empty() {
        info.plural.to_owned()
    } else {
        format!("{}.{}", info.plural, info.group)
    };
    request.name = name;
    request.subresource = args.subresource.clone();
    Ok((request, info.namespaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(verb: &str, target: &str, name: Option<&str>) -> CanIArgs {
        CanIArgs {
            verb: verb.to_owned(),
            target: target.to_owned(),
            name: name.map(str::to_owned),
            subresource: String::new(),
            all_namespaces: false,
            as_user: None,
            as_groups: vec![],
            quiet: false,
        }
    }

    #[test]
    fn a_kind_is_asked_by_its_resource_and_group() {
        let (r, namespaced) = review_request(&args("create", "deploy", None)).unwrap();
        assert_eq!(r.kind, "deployments.apps");
        assert!(namespaced);
        assert_eq!(r.verb, "create");
        assert!(r.name.is_empty() && r.user.is_empty() && r.non_resource_path.is_empty());
        let (r, _) = review_request(&args("get", "pods", Some("web"))).unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("pods", "web"));
    }

    #[test]
    fn kind_slash_name_names_the_object() {
        let (r, _) = review_request(&args("get", "po/web", None)).unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("pods", "web"));
        assert!(review_request(&args("get", "pods/web", Some("x"))).is_err());
    }

    #[test]
    fn cluster_scoped_kinds_have_no_namespace() {
        let (r, namespaced) = review_request(&args("list", "nodes", None)).unwrap();
        assert_eq!(r.kind, "nodes");
        assert!(!namespaced);
    }

    #[test]
    fn a_path_is_a_non_resource_request() {
        let (r, namespaced) = review_request(&args("get", "/healthz", None)).unwrap();
        assert_eq!(r.non_resource_path, "/healthz");
        assert!(r.kind.is_empty() && !namespaced);
        assert!(review_request(&args("get", "/healthz", Some("x"))).is_err());
    }

    #[test]
    fn as_user_subresource_and_unknown_kinds() {
        let mut a = args("get", "pods", None);
        a.as_user = Some("jane".to_owned());
        a.as_groups = vec!["devs".to_owned()];
        a.subresource = "log".to_owned();
        let (r, _) = review_request(&a).unwrap();
        assert_eq!(r.user, "jane");
        assert_eq!(r.groups, ["devs"]);
        assert_eq!(r.subresource, "log");
        assert!(review_request(&args("get", "gizmos", None)).is_err());
    }
}
