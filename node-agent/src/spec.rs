//! What the agent asks a runtime to run: [`SandboxConfig`] (one per pod attempt) and
//! [`ContainerConfig`] (one per container attempt), backend-neutral.
//!
//! Owns the translation of the API's `Pod` / `Container` into these (quantities parsed,
//! security context merged, field paths in errors). It must not resolve anything that
//! needs the API server (env `valueFrom`, `envFrom`, configMap/secret volumes): the
//! caller resolves those and passes plain env pairs and bind [`Mount`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rafter_proto::v1::{Container, Pod, PodSecurityContext};
use rafter_proto::Quantity;

use crate::dns::{pod_dns, ClusterDns, DnsSettings};
use crate::error::{Result, RuntimeError};

/// Label on every sandbox and container: the pod's uid (adoption after an agent restart).
pub const LABEL_POD_UID: &str = "io.rafter.pod.uid";
/// Label on every sandbox and container: the pod's name.
pub const LABEL_POD_NAME: &str = "io.rafter.pod.name";
/// Label on every sandbox and container: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.rafter.pod.namespace";
/// Label on every container: its name in the pod spec.
pub const LABEL_CONTAINER_NAME: &str = "io.rafter.container.name";
/// Label on everything the agent creates, so it never touches other users' containers.
pub const LABEL_MANAGED_BY: &str = "io.rafter.managed-by";
/// The value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY_AGENT: &str = "rafter-node-agent";

/// One pod sandbox (network namespace, cgroup parent, log directory) to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Attempt number; bump it when a previous sandbox of this pod failed or died.
    pub attempt: u32,
    /// Hostname inside the pod (defaults to the pod name).
    pub hostname: String,
    /// Directory for this pod's container logs (`<dir>/<container>/<restart>.log`).
    pub log_dir: PathBuf,
    /// Share the node's network namespace (`hostNetwork: true`).
    pub host_network: bool,
    /// Extra labels; the `io.rafter.*` labels are added by the runtime.
    pub labels: BTreeMap<String, String>,
    /// The pod's resolver configuration; `None`: the runtime's default (the host's).
    pub dns: Option<DnsSettings>,
}

/// A host path bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path on the host (must exist).
    pub host_path: PathBuf,
    /// Path inside the container.
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// Cgroup limits for one container, already parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// `limits.memory` in bytes.
    pub memory_limit_bytes: Option<i64>,
    /// `limits.cpu` in millicores (→ CFS quota).
    pub cpu_limit_millis: Option<i64>,
    /// `requests.cpu` in millicores (→ CPU shares).
    pub cpu_request_millis: Option<i64>,
}

/// One container (one attempt of it) to create inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    /// Name in the pod spec.
    pub name: String,
    /// Restart count: 0 for the first run, +1 per restart; names the log file.
    pub attempt: u32,
    /// Image reference as written in the spec (`busybox`, `docker.io/local/busybox:1`).
    pub image: String,
    /// Entrypoint override (`command`); empty keeps the image's.
    pub command: Vec<String>,
    /// Arguments (`args`); empty keeps the image's.
    pub args: Vec<String>,
    /// Working directory; `None` keeps the image's.
    pub working_dir: Option<String>,
    /// Environment, resolved, in order.
    pub env: Vec<(String, String)>,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// Cgroup limits.
    pub resources: Resources,
    /// `securityContext.runAsUser` (container over pod).
    pub run_as_user: Option<i64>,
    /// `securityContext.runAsGroup` (container over pod).
    pub run_as_group: Option<i64>,
    /// Capabilities to add (`NET_ADMIN`, without the `CAP_` prefix).
    pub capabilities_add: Vec<String>,
    /// Capabilities to drop (`ALL` drops every one).
    pub capabilities_drop: Vec<String>,
    /// `securityContext.privileged`.
    pub privileged: bool,
    /// `securityContext.readOnlyRootFilesystem`.
    pub read_only_root_fs: bool,
    /// Extra labels; the `io.rafter.*` labels are added by the runtime.
    pub labels: BTreeMap<String, String>,
    /// Keep a stdin open for the process (`stdin`), which attaching clients write to.
    pub stdin: bool,
    /// Close that stdin when the first attached client that sent some detaches.
    pub stdin_once: bool,
    /// Give the process a terminal (`tty`).
    pub tty: bool,
}

impl SandboxConfig {
    /// The sandbox of `pod`, with its logs under `log_root/<namespace>_<name>_<uid>` and
    /// its resolver configuration from `cluster_dns` and its `dnsPolicy`.
    pub fn from_pod(
        pod: &Pod,
        attempt: u32,
        log_root: &Path,
        cluster_dns: &ClusterDns,
    ) -> Result<SandboxConfig> {
        let meta = pod
            .metadata
            .as_ref()
            .ok_or_else(|| invalid("metadata", "missing"))?;
        if meta.uid.is_empty() {
            return Err(invalid("metadata.uid", "empty"));
        }
        if meta.name.is_empty() {
            return Err(invalid("metadata.name", "empty"));
        }
        let namespace = if meta.namespace.is_empty() {
            "default".to_owned()
        } else {
            meta.namespace.clone()
        };
        let spec = pod.spec.as_ref();
        let host_network = spec.is_some_and(|s| s.host_network);
        // A host-network pod shares the node's UTS namespace: it keeps the node's hostname
        // (as the kubelet leaves it empty; runc refuses to set one it cannot own).
        let hostname = if host_network {
            String::new()
        } else {
            spec.map(|s| s.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| meta.name.clone())
        };
        Ok(SandboxConfig {
            log_dir: log_root.join(format!("{namespace}_{}_{}", meta.name, meta.uid)),
            pod_uid: meta.uid.clone(),
            pod_name: meta.name.clone(),
            namespace,
            attempt,
            hostname,
            host_network,
            dns: pod_dns(pod, cluster_dns),
            labels: meta
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// The labels every object of this sandbox carries.
    pub fn identity_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_POD_UID.to_owned(), self.pod_uid.clone());
        labels.insert(LABEL_POD_NAME.to_owned(), self.pod_name.clone());
        labels.insert(LABEL_POD_NAMESPACE.to_owned(), self.namespace.clone());
        labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_AGENT.to_owned());
        labels
    }

    /// Where container `name`'s log for restart `attempt` goes.
    pub fn log_path(&self, name: &str, attempt: u32) -> PathBuf {
        self.log_dir
            .join(container_log_relative_path(name, attempt))
    }
}

/// The log path of a container relative to its sandbox's log directory.
pub fn container_log_relative_path(name: &str, attempt: u32) -> PathBuf {
    PathBuf::from(name).join(format!("{attempt}.log"))
}

impl ContainerConfig {
    /// The config of the `index`-th entry of `spec.containers` (or `spec.initContainers`
    /// when `init`), restart `attempt`. `env` holds only the literal `env[].value`s;
    /// `valueFrom`/`envFrom` are the caller's to resolve and append. `mounts` come from
    /// the caller too (volumes need the API).
    pub fn from_container(
        container: &Container,
        field_prefix: &str,
        attempt: u32,
        pod_security: Option<&PodSecurityContext>,
    ) -> Result<ContainerConfig> {
        let resources = parse_resources(container, field_prefix)?;
        let sc = container.security_context.as_ref();
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        Ok(ContainerConfig {
            name: container.name.clone(),
            attempt,
            image: container.image.clone(),
            command: container.command.clone(),
            args: container.args.clone(),
            working_dir: Some(container.working_dir.clone()).filter(|w| !w.is_empty()),
            env: container
                .env
                .iter()
                .filter(|e| e.value_from.is_none())
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect(),
            mounts: Vec::new(),
            resources,
            run_as_user: sc
                .and_then(|s| s.run_as_user)
                .or_else(|| pod_security.and_then(|p| p.run_as_user)),
            run_as_group: sc
                .and_then(|s| s.run_as_group)
                .or_else(|| pod_security.and_then(|p| p.run_as_group)),
            capabilities_add: caps.map(|c| c.add.clone()).unwrap_or_default(),
            capabilities_drop: caps.map(|c| c.drop.clone()).unwrap_or_default(),
            privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
            read_only_root_fs: sc
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
            labels: BTreeMap::new(),
            stdin: container.stdin,
            stdin_once: container.stdin_once,
            tty: container.tty,
        })
    }

    /// The labels of this container in `sandbox`.
    pub fn identity_labels(&self, sandbox: &SandboxConfig) -> BTreeMap<String, String> {
        let mut labels = sandbox.identity_labels();
        labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert(LABEL_CONTAINER_NAME.to_owned(), self.name.clone());
        labels
    }
}

fn parse_resources(container: &Container, prefix: &str) -> Result<Resources> {
    let Some(req) = container.resources.as_ref() else {
        return Ok(Resources::default());
    };
    let quantity = |map: &rafter_proto::StringMap, kind: &str, key: &str| {
        map.get(key)
            .map(|text| {
                let field = format!("{prefix}.resources.{kind}.{key}");
                let q: Quantity = text.parse().map_err(|e| invalid(&field, &format!("{e}")))?;
                if q.is_negative() {
                    return Err(invalid(&field, "must not be negative"));
                }
                Ok(q)
            })
            .transpose()
    };
    let to_i64 = |v: i128, field: &str| i64::try_from(v).map_err(|_| invalid(field, "too large"));
    let memory = quantity(&req.limits, "limits", "memory")?;
    let cpu = quantity(&req.limits, "limits", "cpu")?;
    let cpu_req = quantity(&req.requests, "requests", "cpu")?;
    Ok(Resources {
        memory_limit_bytes: memory
            .map(|q| to_i64(q.value(), "resources.limits.memory"))
            .transpose()?,
        cpu_limit_millis: cpu
            .map(|q| to_i64(q.millis(), "resources.limits.cpu"))
            .transpose()?,
        cpu_request_millis: cpu_req
            .map(|q| to_i64(q.millis(), "resources.requests.cpu"))
            .transpose()?,
    })
}

fn invalid(field: &str, message: &str) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1::{
        Capabilities, ObjectMeta, PodSpec, ResourceRequirements, SecurityContext,
    };

    fn container(limits: &[(&str, &str)]) -> Container {
        Container {
            name: "app".into(),
            image: "busybox".into(),
            resources: Some(ResourceRequirements {
                limits: limits
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                requests: [("cpu".to_string(), "250m".to_string())].into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn limits_are_parsed_into_bytes_and_millicores() {
        let c = container(&[("memory", "64Mi"), ("cpu", "500m")]);
        let cfg = ContainerConfig::from_container(&c, "spec.containers[0]", 0, None).unwrap();
        assert_eq!(cfg.resources.memory_limit_bytes, Some(64 * 1024 * 1024));
        assert_eq!(cfg.resources.cpu_limit_millis, Some(500));
        assert_eq!(cfg.resources.cpu_request_millis, Some(250));
    }

    #[test]
    fn a_bad_quantity_names_its_field() {
        let c = container(&[("memory", "lots")]);
        let err = ContainerConfig::from_container(&c, "spec.containers[0]", 0, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.containers[0].resources.limits.memory"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn container_security_context_overrides_the_pods() {
        let mut c = container(&[]);
        c.security_context = Some(Box::new(SecurityContext {
            run_as_user: Some(1000),
            capabilities: Some(Capabilities {
                add: vec!["NET_ADMIN".into()],
                drop: vec!["ALL".into()],
            }),
            ..Default::default()
        }));
        let pod_sc = PodSecurityContext {
            run_as_user: Some(5),
            run_as_group: Some(6),
            ..Default::default()
        };
        let cfg = ContainerConfig::from_container(&c, "c", 2, Some(&pod_sc)).unwrap();
        assert_eq!(cfg.run_as_user, Some(1000));
        assert_eq!(cfg.run_as_group, Some(6));
        assert_eq!(cfg.capabilities_add, vec!["NET_ADMIN"]);
        assert_eq!(cfg.capabilities_drop, vec!["ALL"]);
        assert_eq!(cfg.attempt, 2);
    }

    #[test]
    fn sandbox_of_a_pod_carries_its_identity_and_log_dir() {
        let pod = Pod {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                uid: "u-1".into(),
                ..Default::default()
            }),
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        let sb =
            SandboxConfig::from_pod(&pod, 1, Path::new("/var/log/pods"), &ClusterDns::default())
                .unwrap();
        assert_eq!(sb.namespace, "default");
        assert_eq!(sb.hostname, "web");
        assert_eq!(sb.log_dir, Path::new("/var/log/pods/default_web_u-1"));
        assert_eq!(
            sb.log_path("app", 3),
            Path::new("/var/log/pods/default_web_u-1/app/3.log")
        );
        assert_eq!(sb.identity_labels()[LABEL_POD_UID], "u-1");
    }
}
