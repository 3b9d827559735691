//! RBAC from the command line on a real `rafter up --detach --agents 0` cluster: the
//! seeds' Roles, ClusterRoles and bindings applied, then `rafter auth can-i --as` answers
//! as they say; `rafter create role/clusterrole/rolebinding/clusterrolebinding` grants
//! that `can-i` then sees. The masters' authorization cache follows the store by a watch,
//! so a new grant is polled for with a deadline.

use std::time::Duration;

use crate::cluster::{eventually, Cluster};
use crate::support::Run;

/// The seeds' RBAC manifests (the CKA notes' `pod-reader`, `read-pods`, `node-manager`,
/// `jane-node-manager`, and the ingress controller's Role, ClusterRole and bindings, with
/// the server-set metadata of the `get -o yaml` they were copied from left out).
const SEED_RBAC: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  namespace: default
  name: pod-reader
rules:
- apiGroups: [""] # "" indicates the core API group
  resources: ["pods"]
  resourceNames: ["blue"] # user can read only 'blue' pod
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
# This role binding allows "jane" to read pods in the "default" namespace.
kind: RoleBinding
metadata:
  name: read-pods
  namespace: default
subjects:
- kind: User
  name: jane # Name is case sensitive
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role #this must be Role or ClusterRole
  name: pod-reader # this must match the name of the Role or ClusterRole you wish to bind to
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: node-manager
rules:
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "get", "create", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: jane-node-manager
subjects:
- kind: User
  name: jane # Name is case sensitive
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: node-manager
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  labels:
    app.kubernetes.io/name: ingress-nginx
    app.kubernetes.io/part-of: ingress-nginx
  name: ingress-role
  namespace: ingress-space
rules:
- apiGroups:
  - ""
  resources:
  - configmaps
  - pods
  - secrets
  - namespaces
  verbs:
  - get
- apiGroups:
  - ""
  resourceNames:
  - ingress-controller-leader-nginx
  resources:
  - configmaps
  verbs:
  - get
  - update
- apiGroups:
  - ""
  resources:
  - configmaps
  verbs:
  - create
- apiGroups:
  - ""
  resources:
  - endpoints
  verbs:
  - get
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  labels:
    app.kubernetes.io/name: ingress-nginx
    app.kubernetes.io/part-of: ingress-nginx
  name: ingress-role-binding
  namespace: ingress-space
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: ingress-role
subjects:
- kind: ServiceAccount
  name: ingress-serviceaccount
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  labels:
    app.kubernetes.io/name: ingress-nginx
    app.kubernetes.io/part-of: ingress-nginx
  name: ingress-clusterrole
rules:
- apiGroups:
  - ""
  resources:
  - configmaps
  - endpoints
  - nodes
  - pods
  - secrets
  verbs:
  - list
  - watch
- apiGroups:
  - ""
  resources:
  - nodes
  verbs:
  - get
- apiGroups:
  - ""
  resources:
  - services
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - extensions
  resources:
  - ingresses
  verbs:
  - get
  - list
  - watch
- apiGroups:
  - ""
  resources:
  - events
  verbs:
  - create
  - patch
- apiGroups:
  - extensions
  resources:
  - ingresses/status
  verbs:
  - update
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  labels:
    app.kubernetes.io/name: ingress-nginx
    app.kubernetes.io/part-of: ingress-nginx
  name: ingress-clusterrole-binding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ingress-clusterrole
subjects:
- kind: ServiceAccount
  name: ingress-serviceaccount
  namespace: ingress-space
"#;

/// The ingress controller's ServiceAccount as a user name.
const INGRESS_SA: &str = "system:serviceaccount:ingress-space:ingress-serviceaccount";

/// `rafter auth can-i ARGS`, which must answer (yes or no, not an error).
fn can_i(c: &Cluster, args: &[&str]) -> Run {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let run = c.run(&all);
    let answer = run.stdout.trim();
    assert!(
        (run.code, answer) == (0, "yes") || (run.code, answer) == (1, "no"),
        "`rafter {}` gave no answer (exit {}):\n{}\n{}",
        all.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

/// Asserts `rafter auth can-i ARGS` answers `expected` (yes or no).
fn answers(c: &Cluster, args: &[&str], expected: bool) {
    let run = can_i(c, args);
    assert_eq!(
        run.code == 0,
        expected,
        "`rafter auth can-i {}` said {}: {}",
        args.join(" "),
        run.stdout.trim(),
        run.stderr
    );
}

/// Waits until `rafter auth can-i ARGS` says yes (a new grant reaching the masters' cache).
fn becomes_yes(c: &Cluster, args: &[&str]) {
    eventually(
        &format!("`rafter auth can-i {}` to say yes", args.join(" ")),
        Duration::from_secs(30),
        || (can_i(c, args).code == 0).then_some(()),
    );
}

#[test]
fn can_i_answers_as_the_seeds_rbac_says_and_create_grants_what_it_sees() {
    let c = Cluster::start("rbac");
    c.ok(&["create", "namespace", "ingress-space"]);
    let out = c.ok(&["apply", "-f", &c.file("rbac.yaml", SEED_RBAC)]);
    assert!(
        out.contains("role.rbac.authorization.k8s.io/pod-reader"),
        "{out}"
    );

    // The admin may do anything; can-i tells without trying.
    answers(&c, &["create", "deployments"], true);
    answers(&c, &["delete", "nodes", "-A"], true);
    answers(&c, &["get", "/healthz"], true);

    // jane: pod-reader in default (the blue pod only), node-manager everywhere. The
    // bindings were just written: wait for them to reach the masters' cache.
    becomes_yes(
        &c,
        &["--as", "jane", "get", "pods", "blue", "-n", "default"],
    );
    becomes_yes(&c, &["--as", "jane", "list", "nodes"]);
    answers(
        &c,
        &["--as", "jane", "get", "pods/blue", "-n", "default"],
        true,
    );
    answers(&c, &["--as", "jane", "watch", "pods", "blue"], true);
    answers(
        &c,
        &["--as", "jane", "get", "pods", "red", "-n", "default"],
        false,
    );
    answers(
        &c,
        &["--as", "jane", "list", "pods", "-n", "default"],
        false,
    );
    answers(
        &c,
        &["--as", "jane", "get", "pods", "blue", "-n", "kube-system"],
        false,
    );
    answers(&c, &["--as", "jane", "get", "nodes", "w1"], true);
    answers(&c, &["--as", "jane", "delete", "no", "w1"], true);
    answers(&c, &["--as", "jane", "update", "nodes"], false);
    answers(&c, &["--as", "jane", "get", "/healthz"], true);
    answers(&c, &["--as", "jane", "get", "/metrics"], false);
    let no = can_i(
        &c,
        &["--as", "jane", "delete", "pods", "blue", "-n", "default"],
    );
    assert_eq!(no.stdout.trim(), "no");
    assert!(
        no.stderr
            .contains(r#"User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#),
        "{}",
        no.stderr
    );
    let no = can_i(&c, &["--as", "jane", "list", "secrets"]);
    assert!(
        no.stderr.contains(r#"cannot list resource "secrets""#),
        "{}",
        no.stderr
    );
    let no = can_i(
        &c,
        &[
            "--as",
            "jane",
            "get",
            "pods",
            "blue",
            "--subresource",
            "log",
        ],
    );
    assert!(no.stderr.contains(r#""pods/log""#), "{}", no.stderr);

    // The ingress controller's ServiceAccount: its Role in ingress-space, its ClusterRole
    // everywhere.
    becomes_yes(
        &c,
        &[
            "--as",
            INGRESS_SA,
            "get",
            "configmaps",
            "-n",
            "ingress-space",
        ],
    );
    becomes_yes(&c, &["--as", INGRESS_SA, "list", "secrets", "-A"]);
    let leader = "configmaps/ingress-controller-leader-nginx";
    answers(
        &c,
        &["--as", INGRESS_SA, "update", leader, "-n", "ingress-space"],
        true,
    );
    answers(
        &c,
        &[
            "--as",
            INGRESS_SA,
            "update",
            "cm/other",
            "-n",
            "ingress-space",
        ],
        false,
    );
    answers(
        &c,
        &["--as", INGRESS_SA, "get", "configmaps", "-n", "default"],
        false,
    );
    answers(
        &c,
        &["--as", INGRESS_SA, "create", "events", "-n", "default"],
        true,
    );
    answers(
        &c,
        &["--as", INGRESS_SA, "delete", "pods", "-n", "ingress-space"],
        false,
    );

    // Grants made with `rafter create` flip the answers from no to yes.
    answers(
        &c,
        &["--as", "jane", "get", "secrets", "-n", "default"],
        false,
    );
    answers(
        &c,
        &["--as", "bob", "create", "deployments", "-n", "default"],
        false,
    );
    answers(
        &c,
        &[
            "--as",
            "dave",
            "--as-group",
            "devs",
            "list",
            "rs",
            "-n",
            "default",
        ],
        false,
    );
    let builder = "system:serviceaccount:default:builder";
    answers(
        &c,
        &["--as", builder, "list", "pods", "-n", "default"],
        false,
    );
    answers(&c, &["--as", "carol", "get", "/metrics"], false);
    let created = [
        c.ok(&[
            "create",
            "role",
            "secret-reader",
            "--verb=get,list",
            "--resource=secrets",
        ]),
        c.ok(&[
            "create",
            "rolebinding",
            "jane-secrets",
            "--role=secret-reader",
            "--user=jane",
        ]),
        c.ok(&[
            "create",
            "rolebinding",
            "bob-edit",
            "--clusterrole=edit",
            "--user=bob",
        ]),
        c.ok(&[
            "create",
            "rolebinding",
            "devs-view",
            "--clusterrole=view",
            "--group=devs",
        ]),
        c.ok(&[
            "create",
            "rolebinding",
            "builder-view",
            "--clusterrole=view",
            "--serviceaccount=default:builder",
        ]),
        c.ok(&[
            "create",
            "clusterrole",
            "metrics",
            "--verb=get",
            "--non-resource-url=/metrics",
        ]),
        c.ok(&[
            "create",
            "clusterrolebinding",
            "carol-metrics",
            "--clusterrole=metrics",
            "--user=carol",
        ]),
    ];
    assert!(
        created[0].contains("role.rbac.authorization.k8s.io/secret-reader created"),
        "{created:?}"
    );
    let role = c.json(&["get", "role", "secret-reader"]);
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    assert_eq!(
        role["rules"][0]["resources"],
        serde_json::json!(["secrets"])
    );
    becomes_yes(&c, &["--as", "jane", "get", "secrets", "-n", "default"]);
    becomes_yes(
        &c,
        &["--as", "bob", "create", "deployments", "-n", "default"],
    );
    becomes_yes(
        &c,
        &[
            "--as",
            "dave",
            "--as-group",
            "devs",
            "list",
            "rs",
            "-n",
            "default",
        ],
    );
    becomes_yes(&c, &["--as", builder, "list", "pods", "-n", "default"]);
    becomes_yes(&c, &["--as", "carol", "get", "/metrics"]);
    // ... and only what they grant.
    answers(
        &c,
        &["--as", "jane", "delete", "secrets", "-n", "default"],
        false,
    );
    answers(
        &c,
        &["--as", "bob", "create", "deployments", "-n", "kube-system"],
        false,
    );
    answers(&c, &["--as", "dave", "list", "rs", "-n", "default"], false);
    answers(&c, &["--as", "carol", "get", "/metrics/cadvisor"], false);

    // A question that is not one is an error, not a `no`.
    let error = c.fails(&["auth", "can-i", "get", "gizmos"]);
    assert!(error.contains("gizmos"), "{error}");
}

#[test]
fn service_accounts_tokens_impersonation_and_the_rules_list_through_the_cli() {
    let c = Cluster::start("serviceaccounts");
    c.ok(&["create", "namespace", "shop"]);
    let out = c.ok(&["create", "serviceaccount", "builder", "-n", "shop"]);
    assert!(out.contains("serviceaccount/builder created"), "{out}");
    c.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole",
        "view",
        "--serviceaccount",
        "shop:builder",
        "-n",
        "shop",
    ]);
    // The controller gives the new namespace its default account.
    eventually(
        "the default ServiceAccount of shop",
        Duration::from_secs(30),
        || {
            (c.run(&["get", "serviceaccount", "default", "-n", "shop"])
                .code
                == 0)
                .then_some(())
        },
    );

    // A token, printed alone; too short a one is refused before anything is sent.
    let token = c.ok(&[
        "create",
        "token",
        "builder",
        "-n",
        "shop",
        "--duration",
        "20m",
    ]);
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let short = c.fails(&[
        "create",
        "token",
        "builder",
        "-n",
        "shop",
        "--duration",
        "1m",
    ]);
    assert!(short.contains("--duration"), "{short}");
    let missing = c.fails(&["create", "token", "ghost", "-n", "shop"]);
    assert!(missing.contains("ghost"), "{missing}");

    // The same cluster with the token as the only credential.
    let mut config = rafter_client::ClientConfig::load(std::path::Path::new(&c.config)).unwrap();
    for user in &mut config.users {
        user.user = rafter_client::UserEntry {
            token: Some(token.clone()),
            ..Default::default()
        };
    }
    let token_config = c.dir.join("token-config");
    config.save(&token_config).unwrap();
    let as_token = |args: &[&str]| {
        crate::support::rafter_with_env(args, &[("RAFTERCONFIG", token_config.to_str().unwrap())])
    };
    eventually(
        "the token to list pods in shop",
        Duration::from_secs(30),
        || (as_token(&["get", "pods", "-n", "shop"]).code == 0).then_some(()),
    );
    let refused = as_token(&["get", "secrets", "-n", "shop"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(
            r#"User "system:serviceaccount:shop:builder" cannot list resource "secrets""#
        ),
        "{}",
        refused.stderr
    );
    // can-i --list: kubectl's table of what the token may do in shop.
    let list = as_token(&["auth", "can-i", "--list", "-n", "shop"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let header = list.stdout.lines().next().unwrap_or_default();
    for column in ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"] {
        assert!(header.contains(column), "{header}");
    }
    let pods = list
        .stdout
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(pods.contains("[get list watch]"), "{pods}");
    assert!(
        !list.stdout.lines().any(|l| l.starts_with("secrets ")),
        "{}",
        list.stdout
    );

    // The admin acts as the account with --as on any verb; the token may not act as
    // anyone, and is told who it is.
    let sa = "system:serviceaccount:shop:builder";
    c.ok(&["get", "pods", "-n", "shop", "--as", sa]);
    let as_sa = c.run(&["get", "secrets", "-n", "shop", "--as", sa]);
    assert!(
        as_sa.stderr.contains(&format!("User {sa:?} cannot list")),
        "{}",
        as_sa.stderr
    );
    let escalate = as_token(&["get", "pods", "-n", "shop", "--as", "admin"]);
    assert!(
        escalate.stderr.contains(&format!(
            r#"User {sa:?} cannot impersonate resource "users""#
        )),
        "{}",
        escalate.stderr
    );
}
