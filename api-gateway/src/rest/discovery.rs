//! Discovery: `/version`, `/api`, `/apis`, `/apis/<group>` and the APIResourceList of each
//! group version, all derived from the kind table of `rafter-proto` (the one the CLI
//! resolves names with), so a kind added there is discovered here.
//!
//! Owns the documents' shapes and what each resource advertises: verbs, short names,
//! categories, scope and subresources. It serves the plain JSON forms; clients that ask
//! for aggregated discovery first fall back to them.

use rafter_proto::Kind;
use serde_json::{json, Value};

use super::metrics;
use super::route::discovery_group::AUTHORIZATION;

/// The Kubernetes minor version the server reports: the stock `kubectl`'s (1.32), which
/// every kubectl from 1.27 to 1.33 accepts.
pub(crate) const KUBERNETES_MINOR: &str = "32";

/// The verbs of every stored kind.
const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-rafter.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `/api`.
pub(crate) fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// The API groups, in the kind table's order, then `authorization.k8s.io` and
/// `metrics.k8s.io`.
fn group_names() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for kind in Kind::all() {
        let group = kind.info().group;
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups.push(AUTHORIZATION);
    groups.push(metrics::GROUP);
    groups
}

fn group_document(name: &str) -> Value {
    let served = if name == metrics::GROUP {
        metrics::VERSION
    } else {
        "v1"
    };
    let version = json!({"groupVersion": format!("{name}/{served}"), "version": served});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": [version.clone()],
        "preferredVersion": version,
    })
}

/// `/apis`.
pub(crate) fn groups() -> Value {
    let groups: Vec<Value> = group_names()
        .into_iter()
        .map(|name| {
            let mut group = group_document(name);
            if let Some(map) = group.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            group
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or `None` when no such group is served.
pub(crate) fn group(name: &str) -> Option<Value> {
    group_names().contains(&name).then(|| group_document(name))
}

/// A subresource as discovery lists it.
struct Sub {
    name: &'static str,
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    verbs: &'static [&'static str],
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// The subresources of `kind` that the REST API serves.
fn subresources(kind: Kind) -> Vec<Sub> {
    let status = || Sub {
        name: "status",
        kind: kind.name(),
        group: "",
        version: "",
        verbs: STATUS_VERBS,
    };
    match kind {
        Kind::Pod => vec![
            status(),
            Sub {
                name: "log",
                kind: "Pod",
                group: "",
                version: "",
                verbs: &["get"],
            },
            Sub {
                name: "binding",
                kind: "Binding",
                group: "",
                version: "",
                verbs: &["create"],
            },
            Sub {
                name: "eviction",
                kind: "Eviction",
                group: "policy",
                version: "v1",
                verbs: &["create"],
            },
        ],
        Kind::Deployment | Kind::ReplicaSet => vec![
            status(),
            Sub {
                name: "scale",
                kind: "Scale",
                group: "autoscaling",
                version: "v1",
                verbs: STATUS_VERBS,
            },
        ],
        Kind::CertificateSigningRequest => vec![
            status(),
            Sub {
                name: "approval",
                kind: "CertificateSigningRequest",
                group: "",
                version: "",
                verbs: &["get", "patch", "update"],
            },
        ],
        Kind::Node
        | Kind::Namespace
        | Kind::Service
        | Kind::DaemonSet
        | Kind::Job
        | Kind::PersistentVolume
        | Kind::PersistentVolumeClaim
        | Kind::ResourceQuota => vec![status()],
        _ => Vec::new(),
    }
}

/// The verbs `kind` is served with (a Binding is only ever created).
pub(crate) fn verbs(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Binding => &["create"],
        _ => VERBS,
    }
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn resources(group: &str, version: &str) -> Value {
    if group == metrics::GROUP {
        return metrics::resources();
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    if group == AUTHORIZATION {
        for (name, kind, namespaced) in [
            ("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            ("subjectaccessreviews", "SubjectAccessReview", false),
            ("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
        ] {
            resources.push(json!({
                "name": name,
                "singularName": kind.to_ascii_lowercase(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create"],
            }));
        }
    }
    for kind in Kind::all().filter(|k| k.info().group == group && k.info().version == version) {
        let info = kind.info();
        let mut resource = json!({
            "name": info.plural,
            "singularName": info.name.to_ascii_lowercase(),
            "namespaced": info.namespaced,
            "kind": info.name,
            "verbs": verbs(kind),
        });
        if let Some(map) = resource.as_object_mut() {
            if !info.short_names.is_empty() {
                map.insert("shortNames".to_owned(), json!(info.short_names));
            }
            if !kind.categories().is_empty() {
                map.insert("categories".to_owned(), json!(kind.categories()));
            }
        }
        resources.push(resource);
        for sub in subresources(kind) {
            let mut entry = json!({
                "name": format!("{}/{}", info.plural, sub.name),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if let Some(map) = entry.as_object_mut() {
                if !sub.group.is_empty() {
                    map.insert("group".to_owned(), json!(sub.group));
                    map.insert("version".to_owned(), json!(sub.version));
                }
            }
            resources.push(entry);
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discovered_once_in_its_group_version_with_its_short_names() {
        for kind in Kind::all() {
            let info = kind.info();
            let list = resources(info.group, info.version);
            let found: Vec<&Value> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["name"] == info.plural)
                .collect();
            assert_eq!(found.len(), 1, "{}", info.name);
            assert_eq!(found[0]["kind"], info.name);
            assert_eq!(found[0]["namespaced"], info.namespaced);
            for short in info.short_names {
                assert!(found[0]["shortNames"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(short)));
            }
        }
    }

    #[test]
    fn the_all_category_holds_kubernetes_workloads_and_services() {
        let mut all: Vec<&str> = Kind::all()
            .filter(|kind| {
                let info = kind.info();
                resources(info.group, info.version)["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == info.plural && r["categories"] == json!(["all"]))
            })
            .map(|kind| kind.info().plural)
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "jobs",
                "pods",
                "replicasets",
                "services"
            ],
            "what `kubectl get all` lists"
        );
    }

    #[test]
    fn groups_list_every_group_and_the_core_group_is_apart() {
        let names: Vec<String> = groups()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(names.contains(&"apps".to_owned()));
        assert!(names.contains(&AUTHORIZATION.to_owned()));
        assert!(!names.contains(&String::new()));
        assert!(group("apps").is_some());
        assert!(group("gadgets.io").is_none());
        let pods = resources("", "v1");
        assert!(pods["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log"));
    }
}
