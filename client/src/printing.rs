//! How objects are shown in a listing, the one definition the CLI's `get` and the REST
//! API's Table answers both use: the columns of each kind ([`columns`], the `-o wide`
//! ones after the others) and an object's cells ([`row`]), with the values tables and
//! `describe` share: ages ([`age`]), label selectors ([`selector_text`]) and an
//! Endpoints' addresses ([`endpoints_text`]).
//!
//! Owns the cells' text only; aligning them into lines is the caller's.

use std::str::FromStr;

use rafter_proto::{Kind, Object};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How long before `now` an RFC 3339 `timestamp` was, as kubectl prints ages (its
/// `HumanDuration`: `45s`, `5m30s`, `12m`, `3h20m`, `10h`, `3d4h`, `30d`, `2y10d`),
/// `<unknown>` when there is none or it does not parse, `<invalid>` when it is more than a
/// second in the future (0s within a second: clocks differ a little).
pub fn age(timestamp: Option<&str>, now: OffsetDateTime) -> String {
    let Some(at) = timestamp.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) else {
        return "<unknown>".to_owned();
    };
    let seconds = (now - at).whole_seconds();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 2 * 60 {
        return format!("{}s", seconds.max(0));
    }
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    match () {
        _ if minutes < 10 => with(minutes, "m", seconds % 60, "s"),
        _ if minutes < 3 * 60 => format!("{minutes}m"),
        _ if hours < 8 => with(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 8 * 24 => with(days, "d", hours % 24, "h"),
        _ if hours < 2 * 365 * 24 => format!("{days}d"),
        _ if hours < 8 * 365 * 24 => with(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

/// The column headers of `kind` as `rafter get` prints them (upper case); with `wide`,
/// the `-o wide` columns follow the others.
pub fn columns(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut columns = match kind {
        Kind::Pod => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        Kind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::ReplicaSet => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        Kind::DaemonSet => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
        ],
        Kind::Node => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        Kind::Service => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        Kind::Namespace => vec!["NAME", "STATUS", "AGE"],
        Kind::CertificateSigningRequest => {
            vec!["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "CONDITION"]
        }
        Kind::Event => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        Kind::ConfigMap | Kind::Secret => vec!["NAME", "DATA", "AGE"],
        Kind::PersistentVolume => vec![
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "AGE",
        ],
        Kind::PersistentVolumeClaim => vec![
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "AGE",
        ],
        Kind::Endpoints => vec!["NAME", "ENDPOINTS", "AGE"],
        Kind::EndpointSlice => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        Kind::Job => vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        Kind::CronJob => vec![
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        _ => vec!["NAME", "AGE"],
    };
    if wide {
        match kind {
            Kind::Pod => columns.extend(["IP", "NODE"]),
            Kind::Deployment | Kind::ReplicaSet => {
                columns.extend(["CONTAINERS", "IMAGES", "SELECTOR"])
            }
            Kind::Node => columns.extend(["INTERNAL-IP", "CONTAINER-RUNTIME"]),
            Kind::Service => columns.push("SELECTOR"),
            _ => {}
        }
    }
    columns
}

/// The cells of `object` under [`columns`] (`<none>` for an empty cell), ages counted
/// to `now`.
pub fn row(object: &Object, wide: bool, now: OffsetDateTime) -> Vec<String> {
    let meta = object.metadata();
    let age = age(meta.creation_timestamp.as_deref(), now);
    let name = meta.name.clone();
    let mut row = match object {
        Object::Pod(pod) => {
            let status = pod.status.clone().unwrap_or_default();
            let spec = pod.spec.clone().unwrap_or_default();
            let ready = status.container_statuses.iter().filter(|c| c.ready).count();
            let restarts: i32 = status
                .container_statuses
                .iter()
                .map(|c| c.restart_count)
                .sum();
            let mut shown = if status.phase.is_empty() {
                "Pending".to_owned()
            } else {
                status.phase.clone()
            };
            for c in &status.container_statuses {
                if let Some(state) = &c.state {
                    if let Some(w) = &state.waiting {
                        if !w.reason.is_empty() {
                            shown = w.reason.clone();
                        }
                    } else if let Some(t) = &state.terminated {
                        if !t.reason.is_empty() && status.phase != "Running" {
                            shown = t.reason.clone();
                        }
                    }
                }
            }
            if meta.deletion_timestamp.is_some() {
                shown = "Terminating".to_owned();
            }
            let mut r = vec![
                name,
                format!("{ready}/{}", spec.containers.len()),
                shown,
                restarts.to_string(),
                age,
            ];
            if wide {
                r.push(if status.pod_ip.is_empty() {
                    "<none>".into()
                } else {
                    status.pod_ip
                });
                r.push(if spec.node_name.is_empty() {
                    "<none>".into()
                } else {
                    spec.node_name
                });
            }
            r
        }
        Object::Deployment(d) => {
            let spec = d.spec.clone().unwrap_or_default();
            let status = d.status.clone().unwrap_or_default();
            let mut r = vec![
                name,
                format!("{}/{}", status.ready_replicas, spec.replicas.unwrap_or(1)),
                status.updated_replicas.to_string(),
                status.available_replicas.to_string(),
                age,
            ];
            if wide {
                r.extend(workload_columns(
                    spec.template.as_ref(),
                    spec.selector.as_ref(),
                ));
            }
            r
        }
        Object::ReplicaSet(rs) => {
            let spec = rs.spec.clone().unwrap_or_default();
            let status = rs.status.clone().unwrap_or_default();
            let mut r = vec![
                name,
                spec.replicas.unwrap_or(1).to_string(),
                status.replicas.to_string(),
                status.ready_replicas.to_string(),
                age,
            ];
            if wide {
                r.extend(workload_columns(
                    spec.template.as_ref(),
                    spec.selector.as_ref(),
                ));
            }
            r
        }
        Object::DaemonSet(ds) => {
            let s = ds.status.clone().unwrap_or_default();
            vec![
                name,
                s.desired_number_scheduled.to_string(),
                s.current_number_scheduled.to_string(),
                s.number_ready.to_string(),
                s.updated_number_scheduled.to_string(),
                s.number_available.to_string(),
                age,
            ]
        }
        Object::Node(node) => {
            let status = node.status.clone().unwrap_or_default();
            let spec = node.spec.clone().unwrap_or_default();
            let ready = status.conditions.iter().find(|c| c.r#type == "Ready");
            let mut shown = match ready.map(|c| c.status.as_str()) {
                Some("True") => "Ready".to_owned(),
                Some("False") => "NotReady".to_owned(),
                _ => "Unknown".to_owned(),
            };
            if spec.unschedulable {
                shown.push_str(",SchedulingDisabled");
            }
            let info = status.node_info.clone().unwrap_or_default();
            let roles: Vec<String> = meta
                .labels
                .keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_owned)
                })
                .collect();
            let roles = if roles.is_empty() {
                "<none>".to_owned()
            } else {
                roles.join(",")
            };
            let mut r = vec![name, shown, roles, age, info.kubelet_version.clone()];
            if wide {
                let ip = status
                    .addresses
                    .iter()
                    .find(|a| a.r#type == "InternalIP")
                    .map(|a| a.address.clone());
                r.push(ip.unwrap_or_else(|| "<none>".into()));
                r.push(info.container_runtime_version);
            }
            r
        }
        Object::Service(svc) => {
            let spec = svc.spec.clone().unwrap_or_default();
            let ingress = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .map(|lb| lb.ingress.clone())
                .unwrap_or_default();
            let (cluster_ip, external, ports) = service_columns(&spec, &ingress);
            let mut r = vec![name, spec.r#type.clone(), cluster_ip, external, ports, age];
            if wide {
                r.push(labels_selector_text(&spec.selector));
            }
            r
        }
        Object::Namespace(ns) => {
            let phase = ns
                .status
                .as_ref()
                .map(|s| s.phase.clone())
                .filter(|p| !p.is_empty());
            let phase = if meta.deletion_timestamp.is_some() {
                "Terminating".to_owned()
            } else {
                phase.unwrap_or_else(|| "Active".into())
            };
            vec![name, phase, age]
        }
        Object::CertificateSigningRequest(csr) => {
            let spec = csr.spec.clone().unwrap_or_default();
            let conditions: Vec<String> = csr
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .map(|c| c.r#type.clone())
                .collect();
            let mut condition = if conditions.is_empty() {
                "Pending".to_owned()
            } else {
                conditions.join(",")
            };
            if csr
                .status
                .as_ref()
                .is_some_and(|s| !s.certificate.is_empty())
            {
                condition.push_str(",Issued");
            }
            vec![name, age, spec.signer_name, spec.username, condition]
        }
        Object::Event(event) => {
            let involved = event.involved_object.clone().unwrap_or_default();
            vec![
                self::age(
                    event
                        .last_timestamp
                        .as_deref()
                        .or(meta.creation_timestamp.as_deref()),
                    now,
                ),
                event.r#type.clone(),
                event.reason.clone(),
                format!("{}/{}", involved.kind.to_ascii_lowercase(), involved.name),
                event.message.clone(),
            ]
        }
        Object::ConfigMap(cm) => vec![
            name,
            (cm.data.len() + cm.binary_data.len()).to_string(),
            age,
        ],
        Object::Secret(secret) => vec![name, secret.data.len().to_string(), age],
        Object::PersistentVolume(pv) => {
            let spec = pv.spec.clone().unwrap_or_default();
            let claim = spec
                .claim_ref
                .map(|c| format!("{}/{}", c.namespace, c.name))
                .unwrap_or_default();
            let phase = pv
                .status
                .as_ref()
                .map(|s| s.phase.clone())
                .unwrap_or_default();
            vec![
                name,
                spec.capacity.get("storage").cloned().unwrap_or_default(),
                spec.access_modes.join(","),
                spec.persistent_volume_reclaim_policy.clone(),
                phase,
                claim,
                age,
            ]
        }
        Object::PersistentVolumeClaim(pvc) => {
            let spec = pvc.spec.clone().unwrap_or_default();
            let status = pvc.status.clone().unwrap_or_default();
            vec![
                name,
                if status.phase.is_empty() {
                    "Pending".into()
                } else {
                    status.phase
                },
                spec.volume_name,
                status.capacity.get("storage").cloned().unwrap_or_default(),
                spec.access_modes.join(","),
                age,
            ]
        }
        Object::Endpoints(ep) => vec![name, endpoints_text(ep, None), age],
        Object::EndpointSlice(slice) => {
            let ports = slice.ports.iter().map(|p| p.port.to_string());
            let addresses = slice
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.iter().cloned());
            vec![
                name,
                slice.address_type.clone(),
                first_three(ports, "<unset>"),
                first_three(addresses, "<unset>"),
                age,
            ]
        }
        Object::Job(job) => job_row(job, name, age, now),
        Object::CronJob(cron) => {
            let spec = cron.spec.clone().unwrap_or_default();
            let status = cron.status.clone().unwrap_or_default();
            let none = || "<none>".to_owned();
            vec![
                name,
                spec.schedule,
                spec.time_zone
                    .filter(|z| !z.is_empty())
                    .unwrap_or_else(none),
                if spec.suspend == Some(true) {
                    "True"
                } else {
                    "False"
                }
                .to_owned(),
                status.active.len().to_string(),
                status
                    .last_schedule_time
                    .as_deref()
                    .map_or_else(none, |t| self::age(Some(t), now)),
                age,
            ]
        }
        _ => vec![name, age],
    };
    row.iter_mut()
        .filter(|cell| cell.is_empty())
        .for_each(|cell| *cell = "<none>".to_owned());
    row
}

/// kubectl's Job row: the finishing condition (else Suspended or Running), succeeded of
/// completions (`n/1 of p` for a work queue), and how long it ran (or has been running).
fn job_row(
    job: &rafter_proto::v1::Job,
    name: String,
    age: String,
    now: OffsetDateTime,
) -> Vec<String> {
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let holds = |kind: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.r#type == kind && c.status == "True")
    };
    let state = ["Complete", "Failed", "FailureTarget", "Suspended"]
        .into_iter()
        .find(|k| holds(k))
        .unwrap_or("Running");
    let completions = match spec.completions {
        Some(c) => format!("{}/{c}", status.succeeded),
        None => match spec.parallelism.unwrap_or(1) {
            p if p > 1 => format!("{}/1 of {p}", status.succeeded),
            _ => format!("{}/1", status.succeeded),
        },
    };
    let end = status
        .completion_time
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(now);
    let duration = status
        .start_time
        .as_deref()
        .map_or_else(String::new, |start| self::age(Some(start), end));
    vec![name, state.to_owned(), completions, duration, age]
}

/// The ready addresses of an Endpoints as kubectl prints them: `ip:port` for each port
/// (only the port named `port` when given; the bare IP for a subset without ports), the
/// first three, then ` + N more...`; empty when there is none.
pub fn endpoints_text(ep: &rafter_proto::v1::Endpoints, port: Option<&str>) -> String {
    let mut items = Vec::new();
    for subset in &ep.subsets {
        if subset.ports.is_empty() {
            items.extend(subset.addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        for p in subset
            .ports
            .iter()
            .filter(|p| port.is_none_or(|name| name == p.name))
        {
            items.extend(subset.addresses.iter().map(|a| {
                std::net::IpAddr::from_str(&a.ip).map_or_else(
                    |_| format!("{}:{}", a.ip, p.port),
                    |ip| {
                        std::net::SocketAddr::new(ip, u16::try_from(p.port).unwrap_or(0))
                            .to_string()
                    },
                )
            }));
        }
    }
    first_three(items.into_iter(), "")
}

/// The first three items joined by commas, then ` + N more...`; `empty` when there are none.
fn first_three(items: impl Iterator<Item = String>, empty: &str) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return empty.to_owned();
    }
    let shown = items[..items.len().min(3)].join(",");
    if items.len() > 3 {
        format!("{shown} + {} more...", items.len() - 3)
    } else {
        shown
    }
}

/// The wide columns of a workload: its containers' names, their images, its selector.
fn workload_columns(
    template: Option<&rafter_proto::v1::PodTemplateSpec>,
    selector: Option<&rafter_proto::v1::LabelSelector>,
) -> Vec<String> {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let join = |field: fn(&rafter_proto::v1::Container) -> &str| {
        containers.iter().map(field).collect::<Vec<_>>().join(",")
    };
    vec![
        join(|c| &c.name),
        join(|c| &c.image),
        selector_text(selector),
    ]
}

/// A label selector as the CLI prints it everywhere (`get -o wide`, `describe`): the
/// [`rafter_proto::Selector`] form (`app=web,tier in (a,b),!canary`), `<none>` for a
/// missing or empty one, as kubectl prints them.
pub fn selector_text(selector: Option<&rafter_proto::v1::LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "<none>".to_owned();
    };
    match rafter_proto::Selector::from_label_selector(selector) {
        Ok(s) if s.is_empty() => "<none>".to_owned(),
        Ok(s) => s.to_string(),
        Err(e) => format!("<invalid: {e}>"),
    }
}

/// A Service's CLUSTER-IP, EXTERNAL-IP and PORT(S) as `kubectl get svc` prints them:
/// `<none>` for what is unset, a LoadBalancer's ingress addresses or `<pending>` until it
/// has some, an ExternalName's name, ports as `80/TCP` or `80:30080/TCP`.
fn service_columns(
    spec: &rafter_proto::v1::ServiceSpec,
    ingress: &[rafter_proto::v1::LoadBalancerIngress],
) -> (String, String, String) {
    let none = || "<none>".to_owned();
    let cluster_ip = if spec.cluster_ip.is_empty() {
        none()
    } else {
        spec.cluster_ip.clone()
    };
    let mut external: Vec<String> = Vec::new();
    match spec.r#type.as_str() {
        "ExternalName" => external.push(spec.external_name.clone()),
        "LoadBalancer" => {
            external.extend(ingress.iter().map(|i| {
                if i.ip.is_empty() {
                    i.hostname.clone()
                } else {
                    i.ip.clone()
                }
            }));
            external.extend(spec.external_ips.iter().cloned());
            if external.is_empty() {
                external.push("<pending>".to_owned());
            }
        }
        _ => external.extend(spec.external_ips.iter().cloned()),
    }
    let external = if external.is_empty() {
        none()
    } else {
        external.join(",")
    };
    let ports: Vec<String> = spec
        .ports
        .iter()
        .map(|p| {
            let protocol = if p.protocol.is_empty() {
                "TCP"
            } else {
                p.protocol.as_str()
            };
            if p.node_port != 0 {
                format!("{}:{}/{protocol}", p.port, p.node_port)
            } else {
                format!("{}/{protocol}", p.port)
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        none()
    } else {
        ports.join(",")
    };
    (cluster_ip, external, ports)
}

/// [`selector_text`] of a selector written as a label map (a Service's `spec.selector`,
/// a pod's `nodeSelector`).
pub fn labels_selector_text(labels: &rafter_proto::StringMap) -> String {
    selector_text(Some(&rafter_proto::v1::LabelSelector {
        match_labels: labels.clone(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_print_the_first_three_addresses_as_kubectl_does() {
        let ep = rafter_proto::parse_object(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets:\n- addresses: [{ip: 10.244.1.5}, {ip: 10.244.2.3}, {ip: 10.244.2.4}]\n  notReadyAddresses: [{ip: 10.244.9.9}]\n  ports: [{name: http, port: 80}, {name: metrics, port: 9100}]\n- addresses: [{ip: 'fd00::1'}]\n  ports: [{name: http, port: 8080}]\n",
            "test",
        )
        .unwrap();
        let Object::Endpoints(endpoints) = &ep else {
            panic!("not Endpoints");
        };
        assert_eq!(
            endpoints_text(endpoints, Some("http")),
            "10.244.1.5:80,10.244.2.3:80,10.244.2.4:80 + 1 more..."
        );
        assert_eq!(
            endpoints_text(endpoints, Some("metrics")),
            "10.244.1.5:9100,10.244.2.3:9100,10.244.2.4:9100"
        );
        assert_eq!(endpoints_text(endpoints, Some("none")), "");
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            columns(Kind::Endpoints, false),
            ["NAME", "ENDPOINTS", "AGE"]
        );
        let cells = row(&ep, false, now);
        assert_eq!(cells[0], "web");
        assert_eq!(
            cells[1],
            "10.244.1.5:80,10.244.2.3:80,10.244.2.4:80 + 4 more..."
        );
        let empty = rafter_proto::parse_object(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: idle}\nsubsets:\n- notReadyAddresses: [{ip: 10.244.9.9}]\n  ports: [{port: 80}]\n",
            "test",
        )
        .unwrap();
        assert_eq!(row(&empty, false, now)[..2], ["idle", "<none>"]);
    }

    #[test]
    fn jobs_and_cron_jobs_print_kubectls_columns() {
        let job = rafter_proto::parse_object(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {completions: 5, template: {}}\nstatus: {succeeded: 5, startTime: '2026-01-01T00:00:00Z', completionTime: '2026-01-01T00:00:42Z', conditions: [{type: Complete, status: 'True'}]}\n",
            "test",
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            columns(Kind::Job, false),
            ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
        );
        assert_eq!(row(&job, false, now)[..4], ["pi", "Complete", "5/5", "42s"]);

        let cron = rafter_proto::parse_object(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: tick}\nspec: {schedule: '*/1 * * * *', jobTemplate: {spec: {template: {}}}}\nstatus: {active: [{name: tick-1}]}\n",
            "test",
        )
        .unwrap();
        assert_eq!(columns(Kind::CronJob, false)[5], "LAST SCHEDULE");
        assert_eq!(
            row(&cron, false, now)[..6],
            ["tick", "*/1 * * * *", "<none>", "False", "1", "<none>"]
        );
    }

    #[test]
    fn endpoint_slices_print_their_address_type_ports_and_addresses() {
        let slice = rafter_proto::parse_object(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-x7k2p}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.1.5]\n- addresses: [10.244.2.3]\nports: [{name: http, port: 8080}]\n",
            "test",
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            columns(Kind::EndpointSlice, false),
            ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        );
        assert_eq!(
            row(&slice, false, now)[..4],
            ["web-x7k2p", "IPv4", "8080", "10.244.1.5,10.244.2.3"]
        );
        let empty = rafter_proto::parse_object(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: idle-1}\naddressType: IPv4\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            row(&empty, false, now)[..4],
            ["idle-1", "IPv4", "<unset>", "<unset>"]
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = OffsetDateTime::parse("2024-03-10T12:00:00Z", &Rfc3339).unwrap();
        let ago = |seconds: i64| {
            let at = (now - time::Duration::seconds(seconds))
                .format(&Rfc3339)
                .unwrap();
            age(Some(&at), now)
        };
        let cases = [
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (5 * 60 + 30, "5m30s"),
            (12 * 60 + 30, "12m"),
            (179 * 60, "179m"),
            (3 * 3600 + 20 * 60 + 5, "3h20m"),
            (7 * 3600, "7h"),
            (10 * 3600 + 59 * 60, "10h"),
            (47 * 3600, "47h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (4 * 86400, "4d"),
            (30 * 86400 + 5 * 3600, "30d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(ago(seconds), want, "{seconds}s ago");
        }
        assert_eq!(ago(-5), "<invalid>");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("yesterday"), now), "<unknown>");
    }

    #[test]
    fn service_columns_print_as_kubectl_get_svc_does() {
        use rafter_proto::v1::{LoadBalancerIngress, ServicePort, ServiceSpec};
        let port = |port, node_port, protocol: &str| ServicePort {
            port,
            node_port,
            protocol: protocol.into(),
            ..Default::default()
        };
        let node_port = ServiceSpec {
            r#type: "NodePort".into(),
            cluster_ip: "10.96.4.2".into(),
            ports: vec![port(80, 30080, "TCP"), port(53, 0, "UDP")],
            ..Default::default()
        };
        assert_eq!(
            service_columns(&node_port, &[]),
            (
                "10.96.4.2".to_owned(),
                "<none>".to_owned(),
                "80:30080/TCP,53/UDP".to_owned()
            )
        );
        let mut lb = node_port.clone();
        lb.r#type = "LoadBalancer".into();
        assert_eq!(service_columns(&lb, &[]).1, "<pending>");
        let ingress = [
            LoadBalancerIngress {
                ip: "192.168.1.5".into(),
                hostname: String::new(),
            },
            LoadBalancerIngress {
                ip: String::new(),
                hostname: "lb.example.com".into(),
            },
        ];
        assert_eq!(
            service_columns(&lb, &ingress).1,
            "192.168.1.5,lb.example.com"
        );
        let headless = ServiceSpec {
            r#type: "ClusterIP".into(),
            cluster_ip: "None".into(),
            ports: vec![port(80, 0, "")],
            ..Default::default()
        };
        assert_eq!(
            service_columns(&headless, &[]),
            ("None".to_owned(), "<none>".to_owned(), "80/TCP".to_owned())
        );
        let external = ServiceSpec {
            r#type: "ExternalName".into(),
            external_name: "db.example.com".into(),
            ..Default::default()
        };
        assert_eq!(
            service_columns(&external, &[]),
            (
                "<none>".to_owned(),
                "db.example.com".to_owned(),
                "<none>".to_owned()
            )
        );
    }

    #[test]
    fn selectors_print_in_one_form_and_none_when_they_select_by_nothing() {
        let selector = rafter_proto::v1::LabelSelector {
            match_labels: [("app".to_owned(), "web".to_owned())].into(),
            match_expressions: vec![rafter_proto::v1::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: vec!["b".into(), "a".into()],
            }],
        };
        assert_eq!(selector_text(Some(&selector)), "app=web,tier in (a,b)");
        assert_eq!(selector_text(None), "<none>");
        assert_eq!(selector_text(Some(&Default::default())), "<none>");
        let labels = [
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]
        .into();
        assert_eq!(labels_selector_text(&labels), "a=1,b=2");
        assert_eq!(labels_selector_text(&Default::default()), "<none>");
    }
}
