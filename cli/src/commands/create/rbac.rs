//! The RBAC objects `rafter create role/clusterrole/rolebinding/clusterrolebinding` make,
//! built as `kubectl create` builds them: pure functions from the flags to the object.
//!
//! `--verb`, `--resource`, `--resource-name` and `--non-resource-url` take one value per
//! flag or several separated by commas (kubectl's string slices); `--user`, `--group`
//! and `--serviceaccount` take one each (names may hold commas). A resource is written
//! `plural`, a short name or kind (`deploy`), optionally `.group` and `/subresource`
//! (`deployments.apps/scale`, `pods/log`, `*`): it is resolved to its plural and API group
//! like kubectl's RESTMapper does, and the rules come one per API group (sorted), each
//! with every verb and resource name, then one for the non-resource URLs.

use std::collections::BTreeMap;

use anyhow::bail;
use rafter_proto::{v1, Object};

use crate::kinds;

/// The API group of the RBAC kinds, of a binding's `roleRef` and of User and Group subjects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The verbs a rule over resources may name.
const RESOURCE_VERBS: &[&str] = &[
    "*",
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "use",
    "bind",
    "escalate",
    "impersonate",
    "approve",
    "sign",
];

/// The verbs a rule over non-resource URLs may name.
const NON_RESOURCE_VERBS: &[&str] = &[
    "*", "get", "post", "put", "delete", "patch", "head", "options",
];

/// Splits repeated flags whose values may also be comma-separated, dropping empty parts.
pub fn split_values(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One `--resource` as a rule names it: the API group and `plural[/subresource]`.
fn resolve_resource(typed: &str) -> anyhow::Result<(String, String)> {
    let (resource, subresource) = match typed.split_once('/') {
        Some((resource, sub)) if !sub.is_empty() => (resource, Some(sub)),
        Some(_) => bail!("--resource {typed:?}: the subresource after '/' is empty"),
        None => (typed, None),
    };
    if resource.is_empty() {
        bail!("--resource {typed:?}: name the resource before the subresource");
    }
    let (group, plural) = if resource == "*" {
        (String::new(), "*".to_owned())
    } else if let Some(group) = resource.strip_prefix("*.") {
        (group.to_owned(), "*".to_owned())
    } else {
        let info = kinds::resolve(resource)?.info();
        (info.group.to_owned(), info.plural.to_owned())
    };
    Ok(match subresource {
        Some(sub) => (group, format!("{plural}/{sub}")),
        None => (group, plural),
    })
}

/// Checks each verb against `allowed`, for the flag's message.
fn check_verbs(verbs: &[String], allowed: &[&str], what: &str) -> anyhow::Result<()> {
    if verbs.is_empty() {
        bail!("give at least one --verb (get, list, watch, create, update, patch, delete ...)");
    }
    for verb in verbs {
        if !allowed.contains(&verb.as_str()) {
            bail!(
                "--verb {verb:?} is not a verb of {what}; use one of: {}",
                allowed.join(", ")
            );
        }
    }
    Ok(())
}

/// The rules of `create role` and `create clusterrole`: one per API group of the
/// resources, then one for the non-resource URLs (a ClusterRole's only).
pub fn rules(
    verbs: &[String],
    resources: &[String],
    resource_names: &[String],
    non_resource_urls: &[String],
) -> anyhow::Result<Vec<v1::PolicyRule>> {
    let verbs = split_values(verbs);
    let resources = split_values(resources);
    let resource_names = split_values(resource_names);
    let non_resource_urls = split_values(non_resource_urls);
    if resources.is_empty() && non_resource_urls.is_empty() {
        bail!("give at least one --resource (or, for a ClusterRole, --non-resource-url)");
    }
    if !resources.is_empty() {
        check_verbs(&verbs, RESOURCE_VERBS, "resources")?;
    }
    if !non_resource_urls.is_empty() {
        check_verbs(&verbs, NON_RESOURCE_VERBS, "non-resource URLs")?;
    }
    if resources.is_empty() && !resource_names.is_empty() {
        bail!("--resource-name needs a --resource to name");
    }
    for url in &non_resource_urls {
        let before_star = url.strip_suffix('*').unwrap_or(url);
        if (!url.starts_with('/') && url != "*") || before_star.contains('*') {
            bail!("--non-resource-url {url:?}: write a path from '/', with '*' only at its end");
        }
    }
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for typed in &resources {
        let (group, resource) = resolve_resource(typed)?;
        let in_group = by_group.entry(group).or_default();
        if !in_group.contains(&resource) {
            in_group.push(resource);
        }
    }
    let mut rules: Vec<v1::PolicyRule> = by_group
        .into_iter()
        .map(|(group, resources)| v1::PolicyRule {
            verbs: verbs.clone(),
            api_groups: vec![group],
            resources,
            resource_names: resource_names.clone(),
            ..Default::default()
        })
        .collect();
    if !non_resource_urls.is_empty() {
        rules.push(v1::PolicyRule {
            verbs,
            non_resource_urls,
            ..Default::default()
        });
    }
    Ok(rules)
}

/// The subjects of a binding, users, then groups, then ServiceAccounts (`NAMESPACE:NAME`).
pub fn subjects(
    users: &[String],
    groups: &[String],
    service_accounts: &[String],
) -> anyhow::Result<Vec<v1::Subject>> {
    let mut subjects = Vec::new();
    for (kind, names) in [("User", users), ("Group", groups)] {
        for name in names {
            if name.is_empty() {
                bail!("--{} needs a name", kind.to_ascii_lowercase());
            }
            subjects.push(v1::Subject {
                kind: kind.to_owned(),
                api_group: RBAC_GROUP.to_owned(),
                name: name.clone(),
                namespace: String::new(),
            });
        }
    }
    for account in service_accounts {
        match account.split_once(':') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => {
                subjects.push(v1::Subject {
                    kind: "ServiceAccount".to_owned(),
                    api_group: String::new(),
                    name: name.to_owned(),
                    namespace: namespace.to_owned(),
                });
            }
            _ => bail!("--serviceaccount {account:?}: write NAMESPACE:NAME"),
        }
    }
    Ok(subjects)
}

/// What a binding refers to: `--role` (a RoleBinding's only) or `--clusterrole`, exactly one.
pub fn role_ref(role: Option<&str>, cluster_role: Option<&str>) -> anyhow::Result<v1::RoleRef> {
    let (kind, name) = match (role, cluster_role) {
        (Some(name), None) => ("Role", name),
        (None, Some(name)) => ("ClusterRole", name),
        _ => bail!("give exactly one of --role and --clusterrole"),
    };
    if name.is_empty() {
        bail!("--{} needs a name", kind.to_ascii_lowercase());
    }
    Ok(v1::RoleRef {
        api_group: RBAC_GROUP.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    })
}

fn meta(name: &str) -> Option<v1::ObjectMeta> {
    Some(v1::ObjectMeta {
        name: name.to_owned(),
        ..Default::default()
    })
}

/// A Role named `name` with `rules` (its namespace is set when it is sent).
pub fn role(name: &str, rules: Vec<v1::PolicyRule>) -> Object {
    Object::Role(v1::Role {
        metadata: meta(name),
        rules,
        ..Default::default()
    })
}

/// A ClusterRole named `name` with `rules`.
pub fn cluster_role(name: &str, rules: Vec<v1::PolicyRule>) -> Object {
    Object::ClusterRole(v1::ClusterRole {
        metadata: meta(name),
        rules,
        ..Default::default()
    })
}

/// A RoleBinding named `name` (its namespace is set when it is sent).
pub fn role_binding(name: &str, role_ref: v1::RoleRef, subjects: Vec<v1::Subject>) -> Object {
    Object::RoleBinding(v1::RoleBinding {
        metadata: meta(name),
        subjects,
        role_ref: Some(role_ref),
        ..Default::default()
    })
}

/// A ClusterRoleBinding named `name`.
pub fn cluster_role_binding(
    name: &str,
    role_ref: v1::RoleRef,
    subjects: Vec<v1::Subject>,
) -> Object {
    Object::ClusterRoleBinding(v1::ClusterRoleBinding {
        metadata: meta(name),
        subjects,
        role_ref: Some(role_ref),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn verbs_and_resources_split_on_commas() {
        let rules = rules(
            &strings(&["get,list", "watch"]),
            &strings(&["pods"]),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        assert_eq!(rules[0].api_groups, [""]);
        assert_eq!(rules[0].resources, ["pods"]);
        assert!(rules[0].resource_names.is_empty() && rules[0].non_resource_urls.is_empty());
    }

    #[test]
    fn resources_resolve_to_plural_and_group_one_rule_per_group() {
        let rules = rules(
            &strings(&["get"]),
            &strings(&[
                "deployments.apps",
                "po",
                "pods/log",
                "deploy/scale,rs",
                "pods",
            ]),
            &strings(&["web,api"]),
            &[],
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].api_groups, [""]);
        assert_eq!(rules[0].resources, ["pods", "pods/log"]);
        assert_eq!(rules[1].api_groups, ["apps"]);
        assert_eq!(
            rules[1].resources,
            ["deployments", "deployments/scale", "replicasets"]
        );
        for rule in &rules {
            assert_eq!(rule.resource_names, ["web", "api"]);
        }
    }

    #[test]
    fn stars_keep_their_group() {
        let rules = rules(&strings(&["*"]), &strings(&["*", "*.apps"]), &[], &[]).unwrap();
        assert_eq!(rules[0].api_groups, [""]);
        assert_eq!(rules[0].resources, ["*"]);
        assert_eq!(rules[1].api_groups, ["apps"]);
    }

    #[test]
    fn non_resource_urls_get_their_own_rule() {
        let rules = rules(
            &strings(&["get"]),
            &strings(&["nodes"]),
            &[],
            &strings(&["/healthz,/metrics/*"]),
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].non_resource_urls, ["/healthz", "/metrics/*"]);
        assert!(rules[1].api_groups.is_empty() && rules[1].resources.is_empty());
        let only_urls = super::rules(&strings(&["get"]), &[], &[], &strings(&["/healthz"]));
        assert_eq!(only_urls.unwrap().len(), 1);
    }

    #[test]
    fn bad_rules_are_refused() {
        let get = strings(&["get"]);
        let pods = strings(&["pods"]);
        assert!(rules(&[], &pods, &[], &[]).is_err(), "no verb");
        assert!(rules(&get, &[], &[], &[]).is_err(), "nothing to allow");
        assert!(rules(&strings(&["fly"]), &pods, &[], &[]).is_err());
        assert!(rules(&get, &strings(&["gizmos"]), &[], &[]).is_err());
        assert!(rules(&get, &strings(&["pods/"]), &[], &[]).is_err());
        assert!(rules(&get, &[], &strings(&["x"]), &strings(&["/a"])).is_err());
        assert!(rules(&get, &[], &[], &strings(&["healthz"])).is_err());
        assert!(rules(&get, &[], &[], &strings(&["/a*/b"])).is_err());
        assert!(rules(&strings(&["list"]), &[], &[], &strings(&["/a"])).is_err());
    }

    #[test]
    fn subjects_are_users_groups_then_service_accounts() {
        let subjects = subjects(
            &strings(&["jane"]),
            &strings(&["devs"]),
            &strings(&["shop:builder"]),
        )
        .unwrap();
        let kinds: Vec<&str> = subjects.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["User", "Group", "ServiceAccount"]);
        assert_eq!(subjects[0].api_group, RBAC_GROUP);
        assert_eq!(subjects[1].name, "devs");
        assert_eq!(subjects[2].api_group, "");
        assert_eq!(
            (subjects[2].namespace.as_str(), subjects[2].name.as_str()),
            ("shop", "builder")
        );
        assert!(super::subjects(&[], &[], &strings(&["builder"])).is_err());
        assert!(super::subjects(&[], &[], &strings(&[":builder"])).is_err());
    }

    #[test]
    fn a_binding_refers_to_exactly_one_role() {
        let r = role_ref(Some("pod-reader"), None).unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.api_group.as_str()),
            ("Role", "pod-reader", RBAC_GROUP)
        );
        assert_eq!(role_ref(None, Some("view")).unwrap().kind, "ClusterRole");
        assert!(role_ref(None, None).is_err());
        assert!(role_ref(Some("a"), Some("b")).is_err());
    }

    #[test]
    fn objects_carry_name_rules_and_bindings() {
        let rule = v1::PolicyRule {
            verbs: strings(&["get"]),
            ..Default::default()
        };
        let Object::Role(r) = role("pod-reader", vec![rule.clone()]) else {
            panic!("not a Role")
        };
        assert_eq!(r.metadata.unwrap().name, "pod-reader");
        assert_eq!(r.rules.len(), 1);
        assert_eq!(r.rules[0], rule);
        assert!(matches!(
            cluster_role("c", vec![rule]),
            Object::ClusterRole(_)
        ));
        let subjects = subjects(&strings(&["jane"]), &[], &[]).unwrap();
        let Object::RoleBinding(b) = role_binding(
            "read-pods",
            role_ref(Some("pod-reader"), None).unwrap(),
            subjects.clone(),
        ) else {
            panic!("not a RoleBinding")
        };
        assert_eq!(b.role_ref.unwrap().name, "pod-reader");
        assert_eq!(b.subjects, subjects);
        let crb = cluster_role_binding("c", role_ref(None, Some("view")).unwrap(), vec![]);
        assert!(matches!(crb, Object::ClusterRoleBinding(_)));
    }
}
