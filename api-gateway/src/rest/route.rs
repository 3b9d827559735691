//! The URL grammar of the Kubernetes API: which document or which resource a path names.
//!
//! ```text
//!  /api/v1[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]]
//!  /apis/<group>/<version>[/namespaces/<ns>]/<resource>[/<name>[/<subresource>]]
//!  /api/v1/namespaces/<name>[/status|/finalize]          (a Namespace itself)
//! ```
//!
//! Owns parsing only: no verb is decided here, no kind is looked up beyond the table.

use rafter_proto::Kind;

use super::metrics::{self, MetricsPath};

/// Resources that are not stored kinds: questions answered by the authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Review {
    /// `selfsubjectaccessreviews`: may I …?
    SelfAccess,
    /// `subjectaccessreviews`: may user U …?
    Access,
    /// `selfsubjectrulesreviews`: what may I do in a namespace?
    SelfRules,
}

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez` (and their sub-checks).
    Health,
    /// `/metrics`: the server's own figures (Prometheus text).
    ServerMetrics,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/<group>`: one group.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`: the resources of a group version.
    Resources { group: String, version: String },
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`: the index of group versions.
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
    OpenApiV3 { group: String, version: String },
    /// An authorization review (always a create).
    Review(Review),
    /// The resource metrics API (`kubectl top`).
    Metrics(MetricsPath),
    /// A resource (collection, object or subresource).
    Resource(ResourcePath),
    /// Nothing the server serves.
    Unknown,
    /// A group version the server serves but no resource of it (an unknown plural).
    UnknownResource { group: String, resource: String },
}

/// A resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    /// The kind.
    pub(crate) kind: Kind,
    /// The namespace in the path (`None`: none given, across namespaces for a list).
    pub(crate) namespace: Option<String>,
    /// The object's name.
    pub(crate) name: Option<String>,
    /// The subresource (`status`, `scale`, `log` …).
    pub(crate) subresource: Option<String>,
}

/// The kind served as `plural` in `group`/`version`.
pub(crate) fn kind_of(group: &str, version: &str, plural: &str) -> Option<Kind> {
    Kind::all().find(|k| {
        let info = k.info();
        info.group == group && info.version == version && info.plural == plural
    })
}

/// Whether any kind is served in `group`/`version`.
pub(crate) fn serves(group: &str, version: &str) -> bool {
    Kind::all().any(|k| k.info().group == group && k.info().version == version)
        || (group == discovery_group::AUTHORIZATION && version == "v1")
        || (group == metrics::GROUP && version == metrics::VERSION)
}

/// Group names answered outside the kind table.
pub(crate) mod discovery_group {
    /// `authorization.k8s.io`: access reviews.
    pub(crate) const AUTHORIZATION: &str = "authorization.k8s.io";
}

/// Parses a request path.
pub(crate) fn parse(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => Route::Version,
        ["metrics"] => Route::ServerMetrics,
        [check, ..] if matches!(*check, "healthz" | "readyz" | "livez") => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group((*group).to_owned()),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", "v1"] => Route::OpenApiV3 {
            group: String::new(),
            version: "v1".to_owned(),
        },
        ["openapi", "v3", "apis", group, version] => Route::OpenApiV3 {
            group: (*group).to_owned(),
            version: (*version).to_owned(),
        },
        ["api", "v1", rest @ ..] => in_group_version("", "v1", rest),
        ["apis", group, version, rest @ ..] => in_group_version(group, version, rest),
        _ => Route::Unknown,
    }
}

fn in_group_version(group: &str, version: &str, rest: &[&str]) -> Route {
    if !serves(group, version) {
        return Route::Unknown;
    }
    if rest.is_empty() {
        return Route::Resources {
            group: group.to_owned(),
            version: version.to_owned(),
        };
    }
    if group == discovery_group::AUTHORIZATION {
        return match rest {
            ["selfsubjectaccessreviews"] => Route::Review(Review::SelfAccess),
            ["subjectaccessreviews"] => Route::Review(Review::Access),
            ["selfsubjectrulesreviews"] => Route::Review(Review::SelfRules),
            [other, ..] => Route::UnknownResource {
                group: group.to_owned(),
                resource: (*other).to_owned(),
            },
            [] => Route::Unknown,
        };
    }
    if group == metrics::GROUP {
        return match metrics::parse(rest) {
            Some(path) => Route::Metrics(path),
            None => Route::UnknownResource {
                group: group.to_owned(),
                resource: rest.first().map(|r| (*r).to_owned()).unwrap_or_default(),
            },
        };
    }
    let owned = |s: &&str| (*s).to_owned();
    let (namespace, rest) = match rest {
        // A namespaced resource under a namespace; `namespaces/<n>/status` is the
        // Namespace's own subresource.
        ["namespaces", namespace, resource, ..]
            if group.is_empty()
                && matches!(*resource, "status" | "finalize")
                && rest.len() == 3 =>
        {
            let _ = namespace;
            (None, rest)
        }
        ["namespaces", namespace, tail @ ..] if !tail.is_empty() => {
            (Some((*namespace).to_owned()), tail)
        }
        other => (None, other),
    };
    let Some(plural) = rest.first() else {
        return Route::Unknown;
    };
    let Some(kind) = kind_of(group, version, plural) else {
        return Route::UnknownResource {
            group: group.to_owned(),
            resource: (*plural).to_owned(),
        };
    };
    if namespace.is_some() && !kind.info().namespaced {
        return Route::UnknownResource {
            group: group.to_owned(),
            resource: (*plural).to_owned(),
        };
    }
    if rest.len() > 3 {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        kind,
        namespace,
        name: rest.get(1).map(owned),
        subresource: rest.get(2).map(owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths_name_kind_namespace_name_and_subresource() {
        let r = resource("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(r.kind, Kind::Pod);
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("log"));
        let all = resource("/api/v1/pods");
        assert_eq!((all.kind, all.namespace, all.name), (Kind::Pod, None, None));
        let deploy = resource("/apis/apps/v1/namespaces/x/deployments/d/scale");
        assert_eq!(deploy.kind, Kind::Deployment);
        assert_eq!(deploy.subresource.as_deref(), Some("scale"));
        let node = resource("/api/v1/nodes/n1");
        assert_eq!((node.kind, node.name.as_deref()), (Kind::Node, Some("n1")));
    }

    #[test]
    fn a_namespace_is_itself_a_resource_with_a_status() {
        let ns = resource("/api/v1/namespaces/dev");
        assert_eq!(
            (ns.kind, ns.name.as_deref()),
            (Kind::Namespace, Some("dev"))
        );
        let status = resource("/api/v1/namespaces/dev/status");
        assert_eq!(status.kind, Kind::Namespace);
        assert_eq!(status.name.as_deref(), Some("dev"));
        assert_eq!(status.subresource.as_deref(), Some("status"));
        assert_eq!(resource("/api/v1/namespaces").name, None);
    }

    #[test]
    fn discovery_documents_and_unknown_paths_are_told_apart() {
        assert_eq!(parse("/version"), Route::Version);
        assert_eq!(parse("/metrics"), Route::ServerMetrics);
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(parse("/apis/"), Route::Groups);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
        assert!(matches!(parse("/api/v1"), Route::Resources { .. }));
        assert_eq!(parse("/apis/gadgets.io/v1"), Route::Unknown);
        assert!(matches!(
            parse("/api/v1/namespaces/x/gadgets"),
            Route::UnknownResource { .. }
        ));
        assert!(matches!(
            parse("/api/v1/namespaces/x/nodes/n"),
            Route::UnknownResource { .. }
        ));
        assert_eq!(
            parse("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
            Route::Review(Review::SelfAccess)
        );
        assert_eq!(
            parse("/apis/metrics.k8s.io/v1beta1/nodes"),
            Route::Metrics(MetricsPath::Nodes { name: None })
        );
        assert!(matches!(
            parse("/apis/metrics.k8s.io/v1beta1"),
            Route::Resources { .. }
        ));
    }
}
