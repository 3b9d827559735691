//! `rafter describe`: one object as kubectl-like sections of text, ending with the
//! Events about it.
//!
//! Pods, Deployments, ReplicaSets, Nodes, Services, ConfigMaps, Secrets and
//! CertificateSigningRequests have their own sections; other kinds show metadata and
//! their spec and status as YAML.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rafter_client::ListParams;
use rafter_proto::{v1, Kind, Object, Quantity};

use crate::commands::rollout::{owned_replica_sets, revision_of};
use crate::kinds;
use crate::output::{age, endpoints_text, labels_selector_text, selector_text, timestamp};
use crate::session::{GlobalArgs, Session};

/// `rafter describe`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter describe pod web-7d9f-abcde\n  rafter describe deployment/web\n  rafter describe nodes w1\n  rafter describe svc web -n shop"
)]
pub struct DescribeArgs {
    /// `KIND NAME...` or `KIND/NAME`.
    #[arg(required = true, num_args = 1.., value_name = "KIND NAME")]
    target: Vec<String>,
}

/// Text with `Key:  value` lines aligned per block.
#[derive(Default)]
struct Text {
    out: String,
}

impl Text {
    fn field(&mut self, indent: usize, key: &str, value: impl std::fmt::Display) {
        let label = format!("{key}:");
        let value = value.to_string();
        if value.is_empty() {
            let _ = writeln!(self.out, "{:indent$}{label}", "");
        } else {
            let _ = writeln!(
                self.out,
                "{:indent$}{label:<width$}{value}",
                "",
                width = 20usize.saturating_sub(indent).max(label.len() + 2)
            );
        }
    }

    fn line(&mut self, indent: usize, text: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    /// `Key:  k=v` with one pair per line, or `<none>`.
    fn map(&mut self, indent: usize, key: &str, map: &rafter_proto::StringMap) {
        if map.is_empty() {
            self.field(indent, key, "<none>");
            return;
        }
        let mut first = true;
        for (k, v) in map {
            if first {
                self.field(indent, key, format!("{k}={v}"));
                first = false;
            } else {
                self.line(20.max(indent + key.len() + 3), format!("{k}={v}"));
            }
        }
    }

    /// A table with aligned columns, each row indented ([`crate::table::render_indented`]).
    fn table(&mut self, indent: usize, header: &[&str], rows: &[Vec<String>]) {
        self.out
            .push_str(&crate::table::render_indented(indent, header, rows));
    }
}

/// Runs `rafter describe`.
pub fn run(args: DescribeArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (kind, names) = match args.target[0].split_once('/') {
        Some((kind, name)) => (kinds::resolve(kind)?, vec![name.to_owned()]),
        None => {
            if args.target.len() < 2 {
                bail!(
                    "say which {} to describe: `rafter describe {} NAME`",
                    args.target[0],
                    args.target[0]
                );
            }
            (kinds::resolve(&args.target[0])?, args.target[1..].to_vec())
        }
    };
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            println!("\n\n");
        }
        let object = kinds::fetch(&session, kind, &namespace, name)?;
        print!("{}", describe(&session, &object)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(session: &Session, object: &Object) -> anyhow::Result<String> {
    let mut t = Text::default();
    let meta = object.metadata();
    t.field(0, "Name", &meta.name);
    if object.kind().info().namespaced {
        t.field(0, "Namespace", &meta.namespace);
    }
    if let Object::Node(_) = object {
        let roles: Vec<&str> = meta
            .labels
            .keys()
            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
            .collect();
        t.field(
            0,
            "Roles",
            if roles.is_empty() {
                "<none>".to_owned()
            } else {
                roles.join(",")
            },
        );
    }
    t.map(0, "Labels", &meta.labels);
    t.map(0, "Annotations", &meta.annotations);
    t.field(
        0,
        "CreationTimestamp",
        meta.creation_timestamp
            .as_deref()
            .map_or_else(|| "<unknown>".to_owned(), timestamp),
    );
    if let Some(deleted) = &meta.deletion_timestamp {
        t.field(0, "DeletionTimestamp", timestamp(deleted));
    }
    if let Some(owner) = kinds::controller_of(meta) {
        t.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    match object {
        Object::Pod(pod) => pod_sections(&mut t, pod),
        Object::Deployment(d) => deployment_sections(&mut t, session, d)?,
        Object::ReplicaSet(rs) => replica_set_sections(&mut t, rs),
        Object::Node(node) => node_sections(&mut t, session, node)?,
        Object::Service(svc) => service_sections(&mut t, session, svc),
        Object::ConfigMap(cm) => {
            t.line(0, "");
            t.line(0, "Data");
            t.line(0, "====");
            for (k, v) in &cm.data {
                t.line(0, format!("{k}:"));
                t.line(0, "----");
                t.line(0, v);
                t.line(0, "");
            }
            for (k, v) in &cm.binary_data {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(|b| b.len())
                    .unwrap_or(0);
                t.line(0, format!("{k}: {bytes} bytes (binary data)"));
            }
        }
        Object::Secret(secret) => {
            t.line(0, "");
            t.field(0, "Type", &secret.r#type);
            t.line(0, "");
            t.line(0, "Data");
            t.line(0, "====");
            use base64::Engine;
            for (k, v) in &secret.data {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(|b| b.len())
                    .unwrap_or(0);
                t.line(0, format!("{k}:  {bytes} bytes"));
            }
        }
        Object::CertificateSigningRequest(csr) => {
            let spec = csr.spec.clone().unwrap_or_default();
            t.field(0, "Requesting User", &spec.username);
            t.field(0, "Signer", &spec.signer_name);
            t.field(0, "Groups", spec.groups.join(", "));
            t.field(0, "Usages", spec.usages.join(", "));
            let status = csr.status.clone().unwrap_or_default();
            let mut conditions: Vec<String> =
                status.conditions.iter().map(|c| c.r#type.clone()).collect();
            if conditions.is_empty() {
                conditions.push("Pending".to_owned());
            }
            if !status.certificate.is_empty() {
                conditions.push("Issued".to_owned());
            }
            t.field(0, "Status", conditions.join(","));
        }
        other => generic_sections(&mut t, other)?,
    }
    events_section(&mut t, session, object)?;
    Ok(t.out)
}

fn quantities(t: &mut Text, indent: usize, key: &str, map: &rafter_proto::StringMap) {
    if map.is_empty() {
        return;
    }
    t.line(indent, format!("{key}:"));
    for (k, v) in map {
        t.field(indent + 2, k, v);
    }
}

fn conditions_table(t: &mut Text, conditions: &[v1::Condition], with_reason: bool) {
    t.line(0, "Conditions:");
    if conditions.is_empty() {
        t.line(2, "<none>");
        return;
    }
    let rows: Vec<Vec<String>> = conditions
        .iter()
        .map(|c| {
            let mut row = vec![c.r#type.clone(), c.status.clone()];
            if with_reason {
                row.push(if c.reason.is_empty() {
                    "<none>".into()
                } else {
                    c.reason.clone()
                });
            }
            row
        })
        .collect();
    let header: &[&str] = if with_reason {
        &["Type", "Status", "Reason"]
    } else {
        &["Type", "Status"]
    };
    t.table(2, header, &rows);
}

fn container_state(t: &mut Text, indent: usize, key: &str, state: Option<&v1::ContainerState>) {
    let Some(state) = state else {
        t.field(indent, key, "Waiting");
        return;
    };
    if let Some(running) = &state.running {
        t.field(indent, key, "Running");
        if let Some(at) = &running.started_at {
            t.field(indent + 2, "Started", timestamp(at));
        }
    } else if let Some(term) = &state.terminated {
        t.field(indent, key, "Terminated");
        if !term.reason.is_empty() {
            t.field(indent + 2, "Reason", &term.reason);
        }
        t.field(indent + 2, "Exit Code", term.exit_code);
        if let Some(at) = &term.started_at {
            t.field(indent + 2, "Started", timestamp(at));
        }
        if let Some(at) = &term.finished_at {
            t.field(indent + 2, "Finished", timestamp(at));
        }
    } else if let Some(waiting) = &state.waiting {
        t.field(indent, key, "Waiting");
        if !waiting.reason.is_empty() {
            t.field(indent + 2, "Reason", &waiting.reason);
        }
        if !waiting.message.is_empty() {
            t.field(indent + 2, "Message", &waiting.message);
        }
    } else if indent > 0 && key == "Last State" {
        t.field(indent, key, "<none>");
    } else {
        t.field(indent, key, "Waiting");
    }
}

fn containers(
    t: &mut Text,
    indent: usize,
    title: &str,
    containers: &[v1::Container],
    statuses: &[v1::ContainerStatus],
) {
    if containers.is_empty() {
        return;
    }
    t.line(indent, format!("{title}:"));
    for c in containers {
        let i = indent + 2;
        t.line(i, format!("{}:", c.name));
        let status = statuses.iter().find(|s| s.name == c.name);
        if let Some(s) = status {
            if !s.container_id.is_empty() {
                t.field(i + 2, "Container ID", &s.container_id);
            }
        }
        t.field(i + 2, "Image", &c.image);
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.container_port,
                    if p.protocol.is_empty() {
                        "TCP"
                    } else {
                        &p.protocol
                    }
                )
            })
            .collect();
        t.field(
            i + 2,
            "Port",
            if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(", ")
            },
        );
        if !c.command.is_empty() {
            t.field(i + 2, "Command", c.command.join(" "));
        }
        if !c.args.is_empty() {
            t.field(i + 2, "Args", c.args.join(" "));
        }
        if let Some(s) = status {
            container_state(t, i + 2, "State", s.state.as_ref());
            if s.last_state.as_ref().is_some_and(|l| {
                l.running.is_some() || l.terminated.is_some() || l.waiting.is_some()
            }) {
                container_state(t, i + 2, "Last State", s.last_state.as_deref());
            }
            t.field(i + 2, "Ready", if s.ready { "True" } else { "False" });
            t.field(i + 2, "Restart Count", s.restart_count);
        }
        let resources = c.resources.clone().unwrap_or_default();
        quantities(t, i + 2, "Limits", &resources.limits);
        quantities(t, i + 2, "Requests", &resources.requests);
        if c.env.is_empty() {
            t.field(i + 2, "Environment", "<none>");
        } else {
            t.line(i + 2, "Environment:");
            for e in &c.env {
                let value = match &e.value_from {
                    Some(from) => {
                        if let Some(r) = &from.config_map_key_ref {
                            format!("<set to the key '{}' of config map '{}'>", r.key, r.name)
                        } else if let Some(r) = &from.secret_key_ref {
                            format!("<set to the key '{}' in secret '{}'>", r.key, r.name)
                        } else if let Some(r) = &from.field_ref {
                            format!("({})", r.field_path)
                        } else {
                            "<from a resource field>".to_owned()
                        }
                    }
                    None => e.value.clone(),
                };
                t.field(i + 4, &e.name, value);
            }
        }
        let mounts: Vec<String> = c
            .volume_mounts
            .iter()
            .map(|m| {
                format!(
                    "{} from {} ({})",
                    m.mount_path,
                    m.name,
                    if m.read_only { "ro" } else { "rw" }
                )
            })
            .collect();
        if mounts.is_empty() {
            t.field(i + 2, "Mounts", "<none>");
        } else {
            t.line(i + 2, "Mounts:");
            for m in mounts {
                t.line(i + 4, m);
            }
        }
    }
}

fn volumes(t: &mut Text, indent: usize, volumes: &[v1::Volume]) {
    if volumes.is_empty() {
        t.field(indent, "Volumes", "<none>");
        return;
    }
    t.line(indent, "Volumes:");
    for v in volumes {
        t.line(indent + 2, format!("{}:", v.name));
        let i = indent + 4;
        if let Some(e) = &v.empty_dir {
            t.field(
                i,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            t.field(i, "Medium", &e.medium);
        } else if let Some(h) = &v.host_path {
            t.field(i, "Type", "HostPath (bare host directory volume)");
            t.field(i, "Path", &h.path);
        } else if let Some(c) = &v.config_map {
            t.field(i, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            t.field(i, "Name", &c.name);
        } else if let Some(s) = &v.secret {
            t.field(i, "Type", "Secret (a volume populated by a Secret)");
            t.field(i, "SecretName", &s.secret_name);
        } else if let Some(p) = &v.persistent_volume_claim {
            t.field(
                i,
                "Type",
                "PersistentVolumeClaim (a reference to a PersistentVolumeClaim)",
            );
            t.field(i, "ClaimName", &p.claim_name);
            t.field(i, "ReadOnly", p.read_only);
        } else if let Some(n) = &v.nfs {
            t.field(i, "Type", "NFS (an NFS mount)");
            t.field(i, "Server", &n.server);
            t.field(i, "Path", &n.path);
        }
    }
}

fn pod_spec_sections(
    t: &mut Text,
    indent: usize,
    spec: &v1::PodSpec,
    statuses: (&[v1::ContainerStatus], &[v1::ContainerStatus]),
) {
    containers(
        t,
        indent,
        "Init Containers",
        &spec.init_containers,
        statuses.0,
    );
    containers(t, indent, "Containers", &spec.containers, statuses.1);
    volumes(t, indent, &spec.volumes);
}

fn pod_sections(t: &mut Text, pod: &v1::Pod) {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    if spec.priority.is_some() || !spec.priority_class_name.is_empty() {
        t.field(0, "Priority", spec.priority.unwrap_or_default());
    }
    if !spec.service_account_name.is_empty() {
        t.field(0, "Service Account", &spec.service_account_name);
    }
    let node = if spec.node_name.is_empty() {
        "<none>".to_owned()
    } else if status.host_ip.is_empty() {
        spec.node_name.clone()
    } else {
        format!("{}/{}", spec.node_name, status.host_ip)
    };
    t.field(0, "Node", node);
    if let Some(start) = &status.start_time {
        t.field(0, "Start Time", timestamp(start));
    }
    t.field(
        0,
        "Status",
        if status.phase.is_empty() {
            "Pending"
        } else {
            &status.phase
        },
    );
    if !status.reason.is_empty() {
        t.field(0, "Reason", &status.reason);
    }
    if !status.message.is_empty() {
        t.field(0, "Message", &status.message);
    }
    t.field(0, "IP", &status.pod_ip);
    if !status.pod_ips.is_empty() {
        t.line(0, "IPs:");
        for ip in &status.pod_ips {
            t.field(2, "IP", &ip.ip);
        }
    }
    pod_spec_sections(
        t,
        0,
        &spec,
        (&status.init_container_statuses, &status.container_statuses),
    );
    conditions_table(t, &status.conditions, false);
    if !status.qos_class.is_empty() {
        t.field(0, "QoS Class", &status.qos_class);
    }
    t.field(
        0,
        "Node-Selectors",
        labels_selector_text(&spec.node_selector),
    );
    let tolerations: Vec<String> = spec
        .tolerations
        .iter()
        .map(|tol| {
            let mut s = tol.key.clone();
            if tol.operator == "Equal" || (!tol.value.is_empty() && tol.operator.is_empty()) {
                s.push('=');
                s.push_str(&tol.value);
            }
            if !tol.effect.is_empty() {
                s.push(':');
                s.push_str(&tol.effect);
            }
            if tol.operator == "Exists" {
                s.push_str(" op=Exists");
            }
            if let Some(secs) = tol.toleration_seconds {
                s.push_str(&format!(" for {secs}s"));
            }
            s
        })
        .collect();
    t.field(
        0,
        "Tolerations",
        if tolerations.is_empty() {
            "<none>".to_owned()
        } else {
            tolerations.join(", ")
        },
    );
}

fn template_section(t: &mut Text, template: &v1::PodTemplateSpec) {
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    t.line(0, "Pod Template:");
    t.map(2, "Labels", &meta.labels);
    if !meta.annotations.is_empty() {
        t.map(2, "Annotations", &meta.annotations);
    }
    pod_spec_sections(t, 2, &spec, (&[], &[]));
}

fn deployment_sections(t: &mut Text, session: &Session, d: &v1::Deployment) -> anyhow::Result<()> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    t.field(0, "Selector", selector_text(spec.selector.as_ref()));
    t.field(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            spec.replicas.unwrap_or(1),
            status.updated_replicas,
            status.replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let strategy_type = if strategy.r#type.is_empty() {
        "RollingUpdate".to_owned()
    } else {
        strategy.r#type.clone()
    };
    t.field(0, "StrategyType", &strategy_type);
    t.field(0, "MinReadySeconds", spec.min_ready_seconds);
    if strategy_type == "RollingUpdate" {
        let ru = strategy.rolling_update.clone().unwrap_or_default();
        let text = |v: Option<rafter_proto::IntOrString>| {
            v.map(|v| v.to_string()).unwrap_or_else(|| "25%".to_owned())
        };
        t.field(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                text(ru.max_unavailable),
                text(ru.max_surge)
            ),
        );
    }
    if spec.paused {
        t.field(0, "Paused", "true");
    }
    if let Some(template) = &spec.template {
        template_section(t, template);
    }
    conditions_table(t, &status.conditions, true);
    let owned = owned_replica_sets(session, d).unwrap_or_default();
    let line = |rs: &v1::ReplicaSet| {
        let meta = rs.metadata.clone().unwrap_or_default();
        let s = rs.status.clone().unwrap_or_default();
        let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        format!(
            "{} ({}/{} replicas created, revision {})",
            meta.name,
            s.replicas,
            want,
            revision_of(&meta)
        )
    };
    match owned.split_last() {
        None => {
            t.field(0, "OldReplicaSets", "<none>");
            t.field(0, "NewReplicaSet", "<none>");
        }
        Some((newest, older)) => {
            let old: Vec<String> = older
                .iter()
                .filter(|rs| {
                    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
                        || rs.status.as_ref().is_some_and(|s| s.replicas > 0)
                })
                .map(line)
                .collect();
            t.field(
                0,
                "OldReplicaSets",
                if old.is_empty() {
                    "<none>".to_owned()
                } else {
                    old.join(", ")
                },
            );
            t.field(0, "NewReplicaSet", line(newest));
        }
    }
    Ok(())
}

fn replica_set_sections(t: &mut Text, rs: &v1::ReplicaSet) {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    t.field(0, "Selector", selector_text(spec.selector.as_ref()));
    t.field(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            status.replicas,
            spec.replicas.unwrap_or(1)
        ),
    );
    t.field(
        0,
        "Pods Status",
        format!(
            "{} Ready / {} Available",
            status.ready_replicas, status.available_replicas
        ),
    );
    if let Some(template) = &spec.template {
        template_section(t, template);
    }
    conditions_table(t, &status.conditions, true);
}

/// The Endpoints of a Service as `describe` lists them: `None` when there are none yet,
/// `Err` with what went wrong when they could not be read.
fn service_endpoints(
    session: &Session,
    svc: &v1::Service,
) -> Result<Option<v1::Endpoints>, String> {
    let meta = svc.metadata.clone().unwrap_or_default();
    match session.block_on(
        session
            .client()
            .get(Kind::Endpoints, &meta.namespace, &meta.name),
    ) {
        Ok(Object::Endpoints(ep)) => Ok(Some(ep)),
        Ok(_) | Err(rafter_client::ClientError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn service_sections(t: &mut Text, session: &Session, svc: &v1::Service) {
    let spec = svc.spec.clone().unwrap_or_default();
    let endpoints = service_endpoints(session, svc);
    let none_if_empty = |text: String| {
        if text.is_empty() {
            "<none>".to_owned()
        } else {
            text
        }
    };
    t.field(0, "Selector", labels_selector_text(&spec.selector));
    let service_type = if spec.r#type.is_empty() {
        "ClusterIP"
    } else {
        &spec.r#type
    };
    t.field(0, "Type", service_type);
    t.field(0, "IP", none_if_empty(spec.cluster_ip.clone()));
    if !spec.cluster_ips.is_empty() {
        t.field(0, "IPs", spec.cluster_ips.join(","));
    }
    if !spec.external_ips.is_empty() {
        t.field(0, "External IPs", spec.external_ips.join(","));
    }
    let ingress: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .map(|lb| {
            lb.ingress
                .iter()
                .map(|i| {
                    if i.ip.is_empty() {
                        i.hostname.clone()
                    } else {
                        i.ip.clone()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if !ingress.is_empty() {
        t.field(0, "LoadBalancer Ingress", ingress.join(", "));
    }
    for p in &spec.ports {
        let protocol = if p.protocol.is_empty() {
            "TCP"
        } else {
            &p.protocol
        };
        let name = if p.name.is_empty() {
            "<unset>"
        } else {
            &p.name
        };
        t.field(0, "Port", format!("{name}  {}/{protocol}", p.port));
        let target = p
            .target_port
            .clone()
            .map(|v| v.to_string())
            .unwrap_or_else(|| p.port.to_string());
        t.field(0, "TargetPort", format!("{target}/{protocol}"));
        if p.node_port != 0 {
            t.field(0, "NodePort", format!("{name}  {}/{protocol}", p.node_port));
        }
        let listed = match &endpoints {
            Ok(Some(ep)) => none_if_empty(endpoints_text(ep, Some(&p.name))),
            Ok(None) => "<none>".to_owned(),
            Err(e) => format!("<unknown: {e}>"),
        };
        t.field(0, "Endpoints", listed);
    }
    t.field(
        0,
        "Session Affinity",
        if spec.session_affinity.is_empty() {
            "None"
        } else {
            &spec.session_affinity
        },
    );
    if matches!(service_type, "NodePort" | "LoadBalancer") {
        t.field(
            0,
            "External Traffic Policy",
            if spec.external_traffic_policy.is_empty() {
                "Cluster"
            } else {
                &spec.external_traffic_policy
            },
        );
    }
}

/// Sums a resource over pods' containers, in milli-units.
fn sum_millis(specs: &[&v1::PodSpec], resource: &str, limits: bool) -> i128 {
    specs
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.resources.as_ref())
        .filter_map(|r| {
            if limits {
                r.limits.get(resource)
            } else {
                r.requests.get(resource)
            }
        })
        .filter_map(|q| q.parse::<Quantity>().ok())
        .map(|q| q.millis())
        .sum()
}

/// `100m`, `1Gi`-ish text of a sum in milli-units.
pub fn show_millis(resource: &str, millis: i128) -> String {
    if resource == "cpu" {
        if millis % 1000 == 0 {
            format!("{}", millis / 1000)
        } else {
            format!("{millis}m")
        }
    } else {
        let bytes = millis / 1000;
        const MI: i128 = 1024 * 1024;
        if bytes == 0 {
            "0".to_owned()
        } else if bytes % (1024 * MI) == 0 {
            format!("{}Gi", bytes / (1024 * MI))
        } else if bytes % MI == 0 {
            format!("{}Mi", bytes / MI)
        } else if bytes % 1024 == 0 {
            format!("{}Ki", bytes / 1024)
        } else {
            bytes.to_string()
        }
    }
}

/// `(25%)` of a node's allocatable.
pub fn percent_of(millis: i128, allocatable: Option<&String>) -> String {
    match allocatable
        .and_then(|a| a.parse::<Quantity>().ok())
        .map(|q| q.millis())
    {
        Some(total) if total > 0 => format!("({}%)", millis * 100 / total),
        _ => String::new(),
    }
}

/// The pods bound to a node (every namespace).
pub fn pods_on(session: &Session, node: &str) -> anyhow::Result<Vec<v1::Pod>> {
    let params = ListParams {
        field_selector: format!("spec.nodeName={node}"),
        ..Default::default()
    };
    let list = session
        .block_on(session.client().list(Kind::Pod, None, &params))
        .map_err(|e| anyhow::anyhow!("listing the pods of node {node:?}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .filter(|p| {
            let phase = p.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
            phase != "Succeeded" && phase != "Failed"
        })
        .collect())
}

fn node_sections(t: &mut Text, session: &Session, node: &v1::Node) -> anyhow::Result<()> {
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let name = node
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let taints: Vec<String> = spec
        .taints
        .iter()
        .map(|taint| {
            if taint.value.is_empty() {
                format!("{}:{}", taint.key, taint.effect)
            } else {
                format!("{}={}:{}", taint.key, taint.value, taint.effect)
            }
        })
        .collect();
    match taints.split_first() {
        None => t.field(0, "Taints", "<none>"),
        Some((first, rest)) => {
            t.field(0, "Taints", first);
            for taint in rest {
                t.line(20, taint);
            }
        }
    }
    t.field(0, "Unschedulable", spec.unschedulable);
    t.line(0, "Conditions:");
    if status.conditions.is_empty() {
        t.line(2, "<none>");
    } else {
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.r#type.clone(),
                    c.status.clone(),
                    c.last_heartbeat_time
                        .as_deref()
                        .map(timestamp)
                        .unwrap_or_default(),
                    c.last_transition_time
                        .as_deref()
                        .map(timestamp)
                        .unwrap_or_default(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        t.table(
            2,
            &[
                "Type",
                "Status",
                "LastHeartbeatTime",
                "LastTransitionTime",
                "Reason",
                "Message",
            ],
            &rows,
        );
    }
    t.line(0, "Addresses:");
    for a in &status.addresses {
        t.field(2, &a.r#type, &a.address);
    }
    quantities(t, 0, "Capacity", &status.capacity);
    quantities(t, 0, "Allocatable", &status.allocatable);
    if let Some(info) = &status.node_info {
        t.line(0, "System Info:");
        t.field(2, "Machine ID", &info.machine_id);
        t.field(2, "Kernel Version", &info.kernel_version);
        t.field(2, "OS Image", &info.os_image);
        t.field(2, "Operating System", &info.operating_system);
        t.field(2, "Architecture", &info.architecture);
        t.field(
            2,
            "Container Runtime Version",
            &info.container_runtime_version,
        );
        t.field(2, "Kubelet Version", &info.kubelet_version);
    }
    if !spec.pod_cidr.is_empty() {
        t.field(0, "PodCIDR", &spec.pod_cidr);
    }
    let pods = pods_on(session, &name)?;
    let now = time::OffsetDateTime::now_utc();
    t.line(
        0,
        format!("Non-terminated Pods:  ({} in total)", pods.len()),
    );
    let mut rows = Vec::new();
    for pod in &pods {
        let meta = pod.metadata.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let one = [&spec];
        let cell = |resource: &str, limits: bool| {
            let m = sum_millis(&one, resource, limits);
            format!(
                "{} {}",
                show_millis(resource, m),
                percent_of(m, status.allocatable.get(resource))
            )
            .trim_end()
            .to_owned()
        };
        rows.push(vec![
            meta.namespace.clone(),
            meta.name.clone(),
            cell("cpu", false),
            cell("cpu", true),
            cell("memory", false),
            cell("memory", true),
            age(meta.creation_timestamp.as_deref(), now),
        ]);
    }
    if !rows.is_empty() {
        t.table(
            2,
            &[
                "Namespace",
                "Name",
                "CPU Requests",
                "CPU Limits",
                "Memory Requests",
                "Memory Limits",
                "Age",
            ],
            &rows,
        );
    }
    t.line(0, "Allocated resources:");
    let specs: Vec<&v1::PodSpec> = pods.iter().filter_map(|p| p.spec.as_ref()).collect();
    let mut rows = Vec::new();
    for resource in ["cpu", "memory"] {
        let requests = sum_millis(&specs, resource, false);
        let limits = sum_millis(&specs, resource, true);
        let allocatable = status.allocatable.get(resource);
        rows.push(vec![
            resource.to_owned(),
            format!(
                "{} {}",
                show_millis(resource, requests),
                percent_of(requests, allocatable)
            )
            .trim_end()
            .to_owned(),
            format!(
                "{} {}",
                show_millis(resource, limits),
                percent_of(limits, allocatable)
            )
            .trim_end()
            .to_owned(),
        ]);
    }
    t.table(2, &["Resource", "Requests", "Limits"], &rows);
    Ok(())
}

fn generic_sections(t: &mut Text, object: &Object) -> anyhow::Result<()> {
    let value = object.to_json_value()?;
    for section in [
        "spec", "status", "data", "subsets", "rules", "roleRef", "subjects",
    ] {
        if let Some(part) = value.get(section) {
            if part.is_null() || part.as_object().is_some_and(|m| m.is_empty()) {
                continue;
            }
            let mut name = section.to_owned();
            if let Some(first) = name.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            t.line(0, format!("{name}:"));
            for line in serde_yaml::to_string(part)?.lines() {
                t.line(2, line);
            }
        }
    }
    Ok(())
}

/// Whether an Event is about `object`.
fn is_about(event: &v1::Event, object: &Object) -> bool {
    let meta = object.metadata();
    let Some(involved) = &event.involved_object else {
        return false;
    };
    involved.name == meta.name
        && involved.kind == object.kind().name()
        && (!object.kind().info().namespaced || involved.namespace == meta.namespace)
        && (involved.uid.is_empty() || meta.uid.is_empty() || involved.uid == meta.uid)
}

fn events_section(t: &mut Text, session: &Session, object: &Object) -> anyhow::Result<()> {
    let meta = object.metadata();
    let params = ListParams {
        field_selector: format!("involvedObject.name={}", meta.name),
        ..Default::default()
    };
    let namespace = object
        .kind()
        .info()
        .namespaced
        .then_some(meta.namespace.as_str());
    let events = match session.block_on(session.client().list(Kind::Event, namespace, &params)) {
        Ok(list) => list.items,
        Err(e) => {
            t.line(0, format!("Events:  <could not be listed: {e}>"));
            return Ok(());
        }
    };
    let mut events: Vec<v1::Event> = events
        .into_iter()
        .filter_map(|o| match o {
            Object::Event(e) => Some(e),
            _ => None,
        })
        .filter(|e| is_about(e, object))
        .collect();
    if events.is_empty() {
        t.field(0, "Events", "<none>");
        return Ok(());
    }
    let when = |e: &v1::Event| {
        e.last_timestamp
            .clone()
            .or_else(|| {
                e.metadata
                    .as_ref()
                    .and_then(|m| m.creation_timestamp.clone())
            })
            .unwrap_or_default()
    };
    events.sort_by_key(when);
    let now = time::OffsetDateTime::now_utc();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let last = when(e);
            let mut shown_age = age(Some(&last), now);
            if e.count > 1 {
                let first = e.first_timestamp.as_deref();
                shown_age = format!("{shown_age} (x{} over {})", e.count, age(first, now));
            }
            let from = e
                .source
                .as_ref()
                .map(|s| s.component.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| e.reporting_component.clone());
            vec![
                e.r#type.clone(),
                e.reason.clone(),
                shown_age,
                from,
                e.message.clone(),
            ]
        })
        .collect();
    t.line(0, "Events:");
    t.table(2, &["Type", "Reason", "Age", "From", "Message"], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_in_kubernetes_units() {
        assert_eq!(show_millis("cpu", 250), "250m");
        assert_eq!(show_millis("cpu", 2000), "2");
        assert_eq!(show_millis("memory", 128 * 1024 * 1024 * 1000), "128Mi");
        assert_eq!(percent_of(500, Some(&"2".to_owned())), "(25%)");
    }

    #[test]
    fn fields_line_up_and_empty_maps_say_none() {
        let mut t = Text::default();
        t.field(0, "Name", "web");
        t.map(0, "Labels", &rafter_proto::StringMap::new());
        assert_eq!(
            t.out,
            "Name:               web\nLabels:             <none>\n"
        );
    }
}
