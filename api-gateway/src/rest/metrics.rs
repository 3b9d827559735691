//! The resource metrics API (`metrics.k8s.io/v1beta1`, what `kubectl top` reads), served
//! from the same figures as `rafter top`: the gRPC `Resources.Metrics` call, which asks
//! each node's agent at the time of the call.
//!
//! ```text
//!  /apis/metrics.k8s.io/v1beta1/nodes[/<name>]                    NodeMetrics(List)
//!  /apis/metrics.k8s.io/v1beta1[/namespaces/<ns>]/pods[/<name>]   PodMetrics(List)
//! ```
//!
//! Owns the paths and the metrics.k8s.io JSON shapes only: it must not reach the agents
//! nor decide access (the service does both, as for gRPC callers).

use std::collections::BTreeSet;

use rafter_proto::api;
use serde_json::{json, Value};

use super::errors::ApiError;

/// The group and its one version.
pub(crate) const GROUP: &str = "metrics.k8s.io";
/// The version served.
pub(crate) const VERSION: &str = "v1beta1";

/// What a metrics path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetricsPath {
    /// Nodes: all, or one.
    Nodes { name: Option<String> },
    /// Pods: of every namespace (`None`) or one, all or one by name.
    Pods {
        namespace: Option<String>,
        name: Option<String>,
    },
}

/// Parses the segments after `/apis/metrics.k8s.io/v1beta1/`; `None` for anything else.
pub(crate) fn parse(rest: &[&str]) -> Option<MetricsPath> {
    let owned = |s: &&str| (*s).to_owned();
    match rest {
        ["nodes"] => Some(MetricsPath::Nodes { name: None }),
        ["nodes", name] => Some(MetricsPath::Nodes {
            name: Some(owned(name)),
        }),
        ["pods"] => Some(MetricsPath::Pods {
            namespace: None,
            name: None,
        }),
        ["namespaces", namespace, "pods"] => Some(MetricsPath::Pods {
            namespace: Some(owned(namespace)),
            name: None,
        }),
        ["namespaces", namespace, "pods", name] => Some(MetricsPath::Pods {
            namespace: Some(owned(namespace)),
            name: Some(owned(name)),
        }),
        _ => None,
    }
}

/// The APIResourceList of the group version.
pub(crate) fn resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// A CPU figure as metrics-server writes it: nanocores.
fn cpu(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

/// A memory figure as metrics-server writes it: KiB.
fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

/// A window as Go prints a duration (`1s`, `500ms`).
fn window(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{resource}.{GROUP} \"{name}\" not found"),
    )
}

/// The answer to `path` from the gathered figures. `selected`, when given, is the set of
/// `(namespace, name)` of the pods a label selector matched.
pub(crate) fn answer(
    path: &MetricsPath,
    figures: &api::MetricsResponse,
    selected: Option<&BTreeSet<(String, String)>>,
) -> Result<Value, ApiError> {
    let measured = figures.nodes.iter().filter(|n| n.error.is_empty());
    match path {
        MetricsPath::Nodes { name } => {
            let items: Vec<Value> = measured
                .filter(|n| name.as_ref().is_none_or(|want| *want == n.node))
                .map(|n| {
                    json!({
                        "kind": "NodeMetrics",
                        "apiVersion": format!("{GROUP}/{VERSION}"),
                        "metadata": {"name": n.node, "creationTimestamp": n.timestamp},
                        "timestamp": n.timestamp,
                        "window": window(n.window_ms),
                        "usage": {"cpu": cpu(n.cpu_nano_cores), "memory": memory(n.memory_working_set_bytes)},
                    })
                })
                .collect();
            match name {
                Some(name) => items
                    .into_iter()
                    .next()
                    .ok_or_else(|| not_found("nodemetrics", name)),
                None => Ok(list("NodeMetrics", items)),
            }
        }
        MetricsPath::Pods { namespace, name } => {
            let mut items = Vec::new();
            for node in measured {
                for pod in &node.pods {
                    let wanted = namespace.as_ref().is_none_or(|ns| *ns == pod.namespace)
                        && name.as_ref().is_none_or(|n| *n == pod.name)
                        && selected.is_none_or(|set| {
                            set.contains(&(pod.namespace.clone(), pod.name.clone()))
                        });
                    if !wanted {
                        continue;
                    }
                    let containers: Vec<Value> = pod
                        .containers
                        .iter()
                        .map(|c| {
                            json!({
                                "name": c.name,
                                "usage": {"cpu": cpu(c.cpu_nano_cores), "memory": memory(c.memory_working_set_bytes)},
                            })
                        })
                        .collect();
                    items.push(json!({
                        "kind": "PodMetrics",
                        "apiVersion": format!("{GROUP}/{VERSION}"),
                        "metadata": {"name": pod.name, "namespace": pod.namespace, "creationTimestamp": node.timestamp},
                        "timestamp": node.timestamp,
                        "window": window(node.window_ms),
                        "containers": containers,
                    }));
                }
            }
            match name {
                Some(name) => {
                    let full = format!("{}/{name}", namespace.clone().unwrap_or_default());
                    items
                        .into_iter()
                        .next()
                        .ok_or_else(|| not_found("podmetrics", &full))
                }
                None => Ok(list("PodMetrics", items)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> api::MetricsResponse {
        api::MetricsResponse {
            nodes: vec![
                api::NodeMetrics {
                    node: "n1".into(),
                    cpu_nano_cores: 250_000_000,
                    memory_working_set_bytes: 512 * 1024 * 1024,
                    timestamp: "2026-12-06T05:00:00Z".into(),
                    window_ms: 1000,
                    pods: vec![
                        api::PodMetrics {
                            namespace: "default".into(),
                            name: "web".into(),
                            uid: "u1".into(),
                            containers: vec![api::ContainerMetrics {
                                name: "c".into(),
                                cpu_nano_cores: 1_000_000,
                                memory_working_set_bytes: 4096 * 1024,
                            }],
                        },
                        api::PodMetrics {
                            namespace: "kube-system".into(),
                            name: "dns".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                api::NodeMetrics {
                    node: "n2".into(),
                    error: "unreachable".into(),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn paths_name_nodes_and_pods_and_nothing_else() {
        assert_eq!(parse(&["nodes"]), Some(MetricsPath::Nodes { name: None }));
        assert_eq!(
            parse(&["namespaces", "dev", "pods", "p"]),
            Some(MetricsPath::Pods {
                namespace: Some("dev".into()),
                name: Some("p".into())
            })
        );
        assert_eq!(parse(&["namespaces", "dev", "nodes"]), None);
        assert_eq!(parse(&["services"]), None);
    }

    #[test]
    fn nodes_and_pods_read_as_metrics_server_writes_them() {
        let nodes = answer(&MetricsPath::Nodes { name: None }, &figures(), None).unwrap();
        assert_eq!(nodes["kind"], "NodeMetricsList");
        let items = nodes["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            1,
            "a node without figures is left out: {nodes}"
        );
        assert_eq!(items[0]["usage"]["cpu"], "250000000n");
        assert_eq!(items[0]["usage"]["memory"], "524288Ki");
        assert_eq!(items[0]["window"], "1s");

        let path = MetricsPath::Pods {
            namespace: Some("default".into()),
            name: None,
        };
        let pods = answer(&path, &figures(), None).unwrap();
        let items = pods["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{pods}");
        assert_eq!(items[0]["containers"][0]["usage"]["cpu"], "1000000n");
        let nobody = BTreeSet::new();
        let none = answer(&path, &figures(), Some(&nobody)).unwrap();
        assert!(none["items"].as_array().unwrap().is_empty());

        let missing = answer(
            &MetricsPath::Nodes {
                name: Some("n2".into()),
            },
            &figures(),
            None,
        )
        .unwrap_err();
        assert_eq!(missing.code, 404);
        assert_eq!(
            missing.body["message"],
            "nodemetrics.metrics.k8s.io \"n2\" not found"
        );
    }
}
