//! `rafter auth can-i`: whether a user may make a request, as the server decides it.
//!
//! The question goes to the server's `ReviewAccess` call (Kubernetes'
//! SelfSubjectAccessReview), which runs the same authorizers (RBAC, the Node authorizer)
//! every request passes; with the global `--as`/`--as-group` the call impersonates that
//! user, as kubectl's does. The answer is `yes` or `no` on standard output and the exit
//! code (0 or 1) as `kubectl auth can-i` gives it; with `no`, the server's reason goes to
//! standard error. `--list` asks `ReviewRules` (SelfSubjectRulesReview) and prints
//! kubectl's table of the rules.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use rafter_client::ClientError;
use rafter_proto::api;

use crate::kinds;
use crate::session::{GlobalArgs, Session};
use crate::table;

/// `rafter auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

/// The verbs of `rafter auth`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Whether you (or, with --as, another user) may do VERB on KIND or on a path; with
    /// --list, everything you may do in the namespace.
    ///
    /// The server answers, with the authorizers every request passes. Prints `yes` (exit
    /// code 0) or `no` (exit code 1, the reason on standard error). Asking as another
    /// user (--as) takes `impersonate` on that user (and its --as-group groups), which
    /// cluster-admin has.
    #[command(
        after_help = "Examples:\n  rafter auth can-i create deployments\n  rafter auth can-i delete pods -n staging\n  rafter auth can-i get pods/web --as jane\n  rafter auth can-i get pods --subresource log\n  rafter auth can-i list secrets -A --as jane --as-group devs\n  rafter auth can-i get /healthz\n  rafter auth can-i --list -n staging\n  rafter auth can-i --list --as system:serviceaccount:shop:builder -n shop"
    )]
    CanI(CanIArgs),
}

/// `rafter auth can-i`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, patch, delete, deletecollection ...
    #[arg(required_unless_present = "list")]
    verb: Option<String>,
    /// KIND (pods, deploy, deployments.apps ...), KIND/NAME, or a non-resource path
    /// (/healthz, /metrics).
    #[arg(required_unless_present = "list")]
    target: Option<String>,
    /// An object's name (also KIND/NAME).
    name: Option<String>,
    /// A subresource (log, status, scale ...).
    #[arg(long, default_value = "")]
    subresource: String,
    /// Ask in every namespace (a namespaced kind only; a ClusterRoleBinding must allow it).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// List every rule you have in the namespace (kubectl's table).
    #[arg(long, conflicts_with_all = ["verb", "target", "name", "subresource", "all_namespaces"])]
    list: bool,
    /// Print nothing: the exit code is the answer.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Runs `rafter auth`.
pub fn run(args: AuthArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let AuthCommand::CanI(args) = args.command;
    let impersonating = globals.as_user.is_some();
    let refused = |e: ClientError| match e {
        ClientError::Forbidden { message } if impersonating => anyhow::anyhow!(
            "the server refused to act as another user: {message}; --as takes impersonate on \
             users (and on groups for --as-group), which cluster-admin has"
        ),
        e => anyhow::anyhow!("asking the server: {e}"),
    };
    if args.list {
        let session = Session::connect(globals)?;
        let rules = session
            .block_on(session.client().review_rules(session.namespace()))
            .map_err(refused)?;
        if !args.quiet {
            print!("{}", rules_table(&rules));
            if rules.incomplete {
                eprintln!(
                    "warning: the list may be incomplete: {}",
                    rules.evaluation_error
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The question is checked before any connection is made.
    let (mut request, namespaced) = review_request(&args)?;
    let session = Session::connect(globals)?;
    if namespaced && !args.all_namespaces {
        request.namespace = session.namespace().to_owned();
    }
    let response = session
        .block_on(session.client().review_access(request))
        .map_err(refused)?;
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

/// `[a b c]`, as kubectl prints a rule's lists.
fn bracketed(values: &[String]) -> String {
    format!("[{}]", values.join(" "))
}

/// kubectl's `auth can-i --list` table: one line per resource (`plural.group`, `*.*` for
/// everything) of each resource rule, then one per non-resource rule, sorted as kubectl
/// sorts them (resource rules by resource, non-resource rules after).
fn rules_table(rules: &api::RulesReviewResponse) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for rule in &rules.resource_rules {
        let groups: Vec<&str> = if rule.api_groups.is_empty() {
            vec![""]
        } else {
            rule.api_groups.iter().map(String::as_str).collect()
        };
        for resource in &rule.resources {
            for group in &groups {
                let name = if group.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}.{group}")
                };
                rows.push(vec![
                    name,
                    "[]".to_owned(),
                    bracketed(&rule.resource_names),
                    bracketed(&rule.verbs),
                ]);
            }
        }
    }
    rows.sort();
    rows.dedup();
    let mut paths: Vec<Vec<String>> = rules
        .non_resource_rules
        .iter()
        .map(|rule| {
            vec![
                String::new(),
                bracketed(&rule.non_resource_urls),
                "[]".to_owned(),
                bracketed(&rule.verbs),
            ]
        })
        .collect();
    paths.sort();
    paths.dedup();
    rows.extend(paths);
    table::render(
        &["Resources", "Non-Resource URLs", "Resource Names", "Verbs"],
        &rows,
    )
}

/// The question `can-i` sends, with no namespace yet, and whether it is about a namespaced
/// kind (then it is asked in the session's namespace, or in all of them with -A).
fn review_request(args: &CanIArgs) -> anyhow::Result<(api::AccessReviewRequest, bool)> {
    let verb = args.verb.clone().unwrap_or_default();
    let target = args.target.clone().unwrap_or_default();
    let mut request = api::AccessReviewRequest {
        verb: verb.clone(),
        ..Default::default()
    };
    if verb.is_empty() {
        bail!("say which verb to ask about (get, list, create ...)");
    }
    if target.is_empty() {
        bail!("say what to ask about: a KIND, KIND/NAME or a path, or --list");
    }
    if target.starts_with('/') {
        if args.name.is_some() || !args.subresource.is_empty() {
            bail!("{target} is a non-resource path: it takes no NAME and no --subresource");
        }
        request.non_resource_path = target;
        return Ok((request, false));
    }
    let (kind, name) = match (target.split_once('/'), &args.name) {
        (Some(_), Some(name)) => {
            bail!("{target} already names an object; drop the extra NAME {name:?}")
        }
        (Some((kind, name)), None) => (kind, name.to_owned()),
        (None, name) => (target.as_str(), name.clone().unwrap_or_default()),
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
    use rafter_proto::v1;

    fn args(verb: &str, target: &str, name: Option<&str>) -> CanIArgs {
        CanIArgs {
            verb: Some(verb.to_owned()),
            target: Some(target.to_owned()),
            name: name.map(str::to_owned),
            subresource: String::new(),
            all_namespaces: false,
            list: false,
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
    fn subresource_and_unknown_kinds() {
        let mut a = args("get", "pods", None);
        a.subresource = "log".to_owned();
        let (r, _) = review_request(&a).unwrap();
        // Asking as someone else is impersonation (the global --as), not a field here.
        assert!(r.user.is_empty() && r.groups.is_empty());
        assert_eq!(r.subresource, "log");
        assert!(review_request(&args("get", "gizmos", None)).is_err());
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> v1::PolicyRule {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        v1::PolicyRule {
            verbs: own(verbs),
            api_groups: own(groups),
            resources: own(resources),
            resource_names: own(names),
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn the_list_is_kubectls_table_of_resources_paths_names_and_verbs() {
        let rules = api::RulesReviewResponse {
            resource_rules: vec![
                rule(&["get", "list"], &[""], &["pods"], &["web"]),
                rule(&["get"], &["apps", "extensions"], &["deployments"], &[]),
                rule(&["*"], &["*"], &["*"], &[]),
            ],
            non_resource_rules: vec![v1::PolicyRule {
                verbs: vec!["get".into()],
                non_resource_urls: vec!["/healthz".into(), "/api/*".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            rules_table(&rules),
            "Resources                Non-Resource URLs   Resource Names   Verbs\n\
             *.*                      []                  []               [*]\n\
             deployments.apps         []                  []               [get]\n\
             deployments.extensions   []                  []               [get]\n\
             pods                     []                  [web]            [get list]\n\
             \x20                        [/healthz /api/*]   []               [get]\n"
        );
    }
}
