//! Which pods back a Service and on which ports: the facts the Endpoints and EndpointSlice
//! controllers both publish, computed once here so the two never disagree.
//!
//! ```text
//!  Service (selector, ports) ──► pods in its namespace whose labels match
//!        │                         ├─ no podIP, Succeeded/Failed ─► left out
//!        │                         └─ being deleted ─► left out unless the caller keeps
//!        │                                             terminating pods
//!        ▼
//!  per pod: address, ready (Ready condition), terminating (deletion timestamp),
//!           each Service port resolved: targetPort unset → port; a number → itself;
//!           a name → the containerPort of that name and protocol in the pod's containers
//!           (missing → the pod is left out of that port, and reported in `missing`)
//! ```
//!
//! Owns the selection and the port resolution. It must not decide how they are published
//! (ready vs notReady addresses, slice conditions): that is each controller's core.

use rafter_proto::v1;
use rafter_proto::{IntOrString, Kind, Object, Selector};

use crate::action::ObjectKey;
use crate::cache::Cache;
use crate::pods::{is_ready, is_terminal, is_terminating, meta, node_name};

/// The protocol of a port that does not name one.
pub(crate) const DEFAULT_PROTOCOL: &str = "TCP";

/// A Service port as one pod serves it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResolvedPort {
    /// The Service port's name ("" for a single unnamed port).
    pub name: String,
    /// The port on the pod.
    pub port: i32,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The Service port's appProtocol, possibly empty.
    pub app_protocol: String,
}

/// A pod that backs a Service.
#[derive(Clone, Debug)]
pub(crate) struct Backend<'a> {
    /// The pod.
    pub pod: &'a v1::Pod,
    /// Its address (`status.podIP`).
    pub ip: &'a str,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// The Service's ports this pod serves, in the Service's order.
    pub ports: Vec<ResolvedPort>,
}

impl Backend<'_> {
    /// The pod's node ("" when unscheduled).
    pub fn node_name(&self) -> &str {
        node_name(self.pod)
    }

    /// The pod as an `ObjectReference` (`targetRef`).
    pub fn target_ref(&self) -> v1::ObjectReference {
        let m = meta(self.pod);
        v1::ObjectReference {
            kind: "Pod".to_owned(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            ..Default::default()
        }
    }

    /// The pod's hostname in the Service's DNS subdomain, when it asks for one
    /// (`spec.hostname` with `spec.subdomain` naming the Service).
    pub fn hostname(&self, service: &str) -> String {
        self.pod
            .spec
            .as_ref()
            .filter(|s| s.subdomain == service && !s.hostname.is_empty())
            .map_or_else(String::new, |s| s.hostname.clone())
    }
}

/// A pod that matches a Service but has no container port of the name a Service port
/// targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MissingPort {
    /// The pod's name.
    pub pod: String,
    /// The Service port's name.
    pub service_port: String,
    /// The container port name it targets.
    pub target: String,
}

/// The pods backing one Service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Backends<'a> {
    /// The pods, ordered by name.
    pub pods: Vec<Backend<'a>>,
    /// Named target ports some pod lacks.
    pub missing: Vec<MissingPort>,
}

/// The Service at `key` when its endpoints are the controllers' to write: it exists, has a
/// selector and is not of type ExternalName. Returns the object, the Service and the
/// selector.
pub(crate) fn managed_service<'a>(
    cache: &'a Cache,
    key: &ObjectKey,
) -> Option<(&'a Object, &'a v1::Service, Selector)> {
    if key.kind != Kind::Service {
        return None;
    }
    let object = cache.get(key)?;
    let Object::Service(service) = object.as_ref() else {
        return None;
    };
    let spec = service.spec.as_ref()?;
    if spec.selector.is_empty() || spec.r#type == "ExternalName" {
        return None;
    }
    let selector = Selector::from_labels(&spec.selector).ok()?;
    Some((object, service, selector))
}

/// Whether a Service with this selector map selects a pod with these labels (a Service
/// without a selector selects nothing).
pub(crate) fn selects(service: &v1::Service, labels: &rafter_proto::StringMap) -> bool {
    service
        .spec
        .as_ref()
        .filter(|s| !s.selector.is_empty())
        .is_some_and(|s| s.selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The pods backing `service`: those its selector matches that have an address and have
/// not finished; pods being deleted only when `include_terminating`.
pub(crate) fn backends<'a>(
    cache: &'a Cache,
    service: &'a v1::Service,
    selector: &'a Selector,
    include_terminating: bool,
) -> Backends<'a> {
    let namespace = service
        .metadata
        .as_ref()
        .map_or("", |m| m.namespace.as_str());
    let ports = service
        .spec
        .as_ref()
        .map(|s| s.ports.as_slice())
        .unwrap_or_default();
    let mut out = Backends::default();
    for object in cache.select(Kind::Pod, namespace, selector) {
        let Object::Pod(pod) = object.as_ref() else {
            continue;
        };
        let ip = pod.status.as_ref().map_or("", |s| s.pod_ip.as_str());
        let terminating = is_terminating(pod);
        if ip.is_empty() || is_terminal(pod) || (terminating && !include_terminating) {
            continue;
        }
        let mut resolved = Vec::with_capacity(ports.len());
        for port in ports {
            match resolve_port(pod, port) {
                Ok(r) => resolved.push(r),
                Err(target) => out.missing.push(MissingPort {
                    pod: meta(pod).name.clone(),
                    service_port: port.name.clone(),
                    target,
                }),
            }
        }
        if !ports.is_empty() && resolved.is_empty() {
            // A pod that serves none of the Service's ports is no endpoint of it.
            continue;
        }
        out.pods.push(Backend {
            pod,
            ip,
            ready: is_ready(pod),
            terminating,
            ports: resolved,
        });
    }
    out
}

/// A Service port as `pod` serves it, or the container port name it lacks.
fn resolve_port(pod: &v1::Pod, port: &v1::ServicePort) -> Result<ResolvedPort, String> {
    let protocol = if port.protocol.is_empty() {
        DEFAULT_PROTOCOL
    } else {
        port.protocol.as_str()
    };
    let number = match &port.target_port {
        None | Some(IntOrString::Int(0)) => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container_port(pod, name, protocol).ok_or_else(|| name.clone())?,
        },
    };
    Ok(ResolvedPort {
        name: port.name.clone(),
        port: number,
        protocol: protocol.to_owned(),
        app_protocol: port.app_protocol.clone(),
    })
}

/// The number of the container port named `name` with `protocol` in the pod's containers.
fn container_port(pod: &v1::Pod, name: &str, protocol: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .find(|p| {
            let p_protocol = if p.protocol.is_empty() {
                DEFAULT_PROTOCOL
            } else {
                p.protocol.as_str()
            };
            p.name == name && p_protocol == protocol
        })
        .map(|p| p.container_port)
}
