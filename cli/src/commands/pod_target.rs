//! Which pod `attach` and `port-forward` reach: `NAME`, `pod/NAME`, or, as kubectl
//! does, a running pod of `deploy/NAME` or `svc/NAME` (chosen by their selector; for a
//! Service, its ports are the Service's and map to their target ports).
//!
//! Owns the naming and the choice only; the verbs do the streaming.

use anyhow::{bail, Context};
use rafter_client::{Client, ListParams};
use rafter_proto::{v1, IntOrString, Kind, Object};

/// What a command line named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// A pod.
    Pod(String),
    /// A Deployment's pods.
    Deployment(String),
    /// A Service's pods.
    Service(String),
}

/// Parses `NAME`, `pod/NAME`, `deploy/NAME` or `svc/NAME` (and their long forms).
pub(crate) fn parse(typed: &str, verb: &str) -> anyhow::Result<Named> {
    let named = match typed.split_once('/') {
        None => Named::Pod(typed.to_owned()),
        Some(("pod" | "pods" | "po", name)) => Named::Pod(name.to_owned()),
        Some(("deploy" | "deployment" | "deployments", name)) => Named::Deployment(name.to_owned()),
        Some(("svc" | "service" | "services", name)) => Named::Service(name.to_owned()),
        Some(_) => bail!("{verb} reaches pods: give NAME, pod/NAME, deploy/NAME or svc/NAME"),
    };
    match &named {
        Named::Pod(n) | Named::Deployment(n) | Named::Service(n) if n.is_empty() => {
            bail!("{typed:?} names nothing")
        }
        _ => Ok(named),
    }
}

/// The pod `named` stands for in `namespace`, and the Service it went through, if any.
pub(crate) async fn resolve(
    client: &Client,
    namespace: &str,
    named: &Named,
) -> anyhow::Result<(v1::Pod, Option<v1::Service>)> {
    let (selector, service) = match named {
        Named::Pod(name) => {
            let pod = match client.get(Kind::Pod, namespace, name).await {
                Ok(Object::Pod(pod)) => pod,
                Ok(_) => bail!("the server answered another kind for pod {name:?}"),
                Err(e) => return Err(e).with_context(|| format!("pod {name:?}")),
            };
            return Ok((pod, None));
        }
        Named::Deployment(name) => match client.get(Kind::Deployment, namespace, name).await {
            Ok(Object::Deployment(deploy)) => {
                let labels = deploy
                    .spec
                    .and_then(|s| s.selector)
                    .map(|s| s.match_labels)
                    .unwrap_or_default();
                (selector_of(&labels), None)
            }
            Ok(_) => bail!("the server answered another kind for deployment {name:?}"),
            Err(e) => return Err(e).with_context(|| format!("deployment {name:?}")),
        },
        Named::Service(name) => match client.get(Kind::Service, namespace, name).await {
            Ok(Object::Service(service)) => {
                let labels = service
                    .spec
                    .as_ref()
                    .map(|s| s.selector.clone())
                    .unwrap_or_default();
                if labels.is_empty() {
                    bail!("service {name:?} has no selector: it has no pods to reach");
                }
                (selector_of(&labels), Some(service))
            }
            Ok(_) => bail!("the server answered another kind for service {name:?}"),
            Err(e) => return Err(e).with_context(|| format!("service {name:?}")),
        },
    };
    let params = ListParams {
        label_selector: selector.clone(),
        ..ListParams::default()
    };
    let pods = client
        .list(Kind::Pod, Some(namespace), &params)
        .await
        .with_context(|| format!("the pods of {selector}"))?;
    let running = pods.items.into_iter().find_map(|object| match object {
        Object::Pod(pod)
            if pod.status.as_ref().map(|s| s.phase.as_str()) == Some("Running")
                && pod
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.deletion_timestamp.is_none()) =>
        {
            Some(pod)
        }
        _ => None,
    });
    match running {
        Some(pod) => Ok((pod, service)),
        None => bail!("no running pod matches {selector}"),
    }
}

/// The pod port a port of the Service stands for, in `pod` (a named target port is
/// looked up among its containers' ports).
pub(crate) fn target_port(service: &v1::Service, pod: &v1::Pod, port: u16) -> anyhow::Result<u16> {
    let name = service
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let Some(found) = spec.ports.iter().find(|p| p.port == i32::from(port)) else {
        bail!("service {name:?} has no port {port}");
    };
    let target = match &found.target_port {
        None => i32::from(port),
        Some(IntOrString::Int(0)) => i32::from(port),
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(named)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter())
            .find(|p| &p.name == named)
            .map(|p| p.container_port)
            .with_context(|| format!("the pod has no port named {named:?}"))?,
    };
    u16::try_from(target).with_context(|| format!("target port {target} of service {name:?}"))
}

/// A label selector matching exactly `labels`.
fn selector_of(labels: &rafter_proto::StringMap) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_as_kubectl_writes_them() {
        assert_eq!(parse("web", "x").unwrap(), Named::Pod("web".into()));
        assert_eq!(parse("po/web", "x").unwrap(), Named::Pod("web".into()));
        assert_eq!(
            parse("deploy/web", "x").unwrap(),
            Named::Deployment("web".into())
        );
        assert_eq!(parse("svc/web", "x").unwrap(), Named::Service("web".into()));
        assert!(parse("node/w1", "x").is_err());
        assert!(parse("pod/", "x").is_err());
    }

    #[test]
    fn a_service_port_maps_to_its_target_port() {
        let service = v1::Service {
            spec: Some(v1::ServiceSpec {
                ports: vec![
                    v1::ServicePort {
                        port: 80,
                        target_port: Some(IntOrString::Int(8080)),
                        ..Default::default()
                    },
                    v1::ServicePort {
                        port: 81,
                        target_port: Some(IntOrString::String("http".into())),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = v1::Pod {
            spec: Some(v1::PodSpec {
                containers: vec![v1::Container {
                    ports: vec![v1::ContainerPort {
                        name: "http".into(),
                        container_port: 9090,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_port(&service, &pod, 80).unwrap(), 8080);
        assert_eq!(target_port(&service, &pod, 81).unwrap(), 9090);
        assert!(target_port(&service, &pod, 82).is_err());
    }
}
