//! Pod specs, wherever they appear: in Pods and in the templates of ReplicaSets,
//! Deployments, DaemonSets and Jobs. Containers, ports, env, resources, probes, volumes,
//! tolerations and node affinity.
//!
//! Owns the rules of one [`PodSpec`]; the restart policies a workload allows are passed in
//! as a [`RestartRule`]. It must not check the template's selector (see `meta`) or
//! anything outside the spec.

use std::collections::{BTreeMap, BTreeSet};

use super::{meta, names, Errors, Path};
use crate::v1::{
    Container, EnvVar, KeyToPath, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume,
};
use crate::{IntOrString, Quantity};

pub(crate) const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const IMAGE_PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const TOLERATION_OPERATORS: &[&str] = &["Exists", "Equal"];
pub(crate) const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const NODE_SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
pub(crate) const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];
const EMPTY_DIR_MEDIA: &[&str] = &["", "Memory"];
const URI_SCHEMES: &[&str] = &["HTTP", "HTTPS"];

/// Which `restartPolicy` values a pod spec may have where it appears.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RestartRule {
    /// A bare Pod: any policy; empty until defaulted.
    Pod,
    /// A ReplicaSet, Deployment or DaemonSet template: only Always; empty until defaulted.
    AlwaysOnly,
    /// A Job template: OnFailure or Never, and it must be given.
    Job,
}

/// Checks a pod template: its labels and its spec.
pub(crate) fn pod_template(
    template: Option<&PodTemplateSpec>,
    path: &Path,
    rule: RestartRule,
    errs: &mut Errors,
) {
    let Some(template) = template else {
        errs.required(path, "");
        return;
    };
    if let Some(meta) = &template.metadata {
        let meta_path = path.child("metadata");
        meta::labels(&meta.labels, &meta_path.child("labels"), errs);
    }
    match &template.spec {
        Some(spec) => pod_spec(spec, &path.child("spec"), rule, errs),
        None => errs.required(&path.child("spec"), ""),
    }
}

/// Checks a pod spec found at `path`.
pub(crate) fn pod_spec(spec: &PodSpec, path: &Path, rule: RestartRule, errs: &mut Errors) {
    let volume_names = volumes(&spec.volumes, &path.child("volumes"), errs);
    if spec.containers.is_empty() {
        errs.required(&path.child("containers"), "");
    }
    let mut container_names = BTreeSet::new();
    for (list, field) in [
        (&spec.init_containers, "initContainers"),
        (&spec.containers, "containers"),
    ] {
        for (i, c) in list.iter().enumerate() {
            let c_path = path.child(field).index(i);
            if !c.name.is_empty() && !container_names.insert(c.name.as_str()) {
                errs.duplicate(&c_path.child("name"), &c.name);
            }
            container(c, &c_path, &volume_names, errs);
        }
    }
    let restart = path.child("restartPolicy");
    match rule {
        RestartRule::Pod => errs.optional_enum_value(
            &restart,
            &spec.restart_policy,
            &["Always", "OnFailure", "Never"],
        ),
        RestartRule::AlwaysOnly => {
            errs.optional_enum_value(&restart, &spec.restart_policy, &["Always"])
        }
        RestartRule::Job => {
            errs.enum_value(&restart, &spec.restart_policy, &["OnFailure", "Never"])
        }
    }
    errs.optional_enum_value(&path.child("dnsPolicy"), &spec.dns_policy, DNS_POLICIES);
    dns_config(spec, path, errs);
    if let Some(grace) = spec.termination_grace_period_seconds {
        errs.non_negative(&path.child("terminationGracePeriodSeconds"), grace);
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        if deadline < 1 {
            errs.invalid(
                &path.child("activeDeadlineSeconds"),
                deadline,
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    meta::labels(&spec.node_selector, &path.child("nodeSelector"), errs);
    optional_name(
        &path.child("serviceAccountName"),
        &spec.service_account_name,
        names::dns1123_subdomain,
        errs,
    );
    optional_name(
        &path.child("nodeName"),
        &spec.node_name,
        names::dns1123_subdomain,
        errs,
    );
    optional_name(
        &path.child("hostname"),
        &spec.hostname,
        names::dns1123_label,
        errs,
    );
    optional_name(
        &path.child("subdomain"),
        &spec.subdomain,
        names::dns1123_label,
        errs,
    );
    optional_name(
        &path.child("priorityClassName"),
        &spec.priority_class_name,
        names::dns1123_subdomain,
        errs,
    );
    for (i, secret) in spec.image_pull_secrets.iter().enumerate() {
        errs.non_empty(
            &path.child("imagePullSecrets").index(i).child("name"),
            &secret.name,
        );
    }
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        self::toleration(toleration, &path.child("tolerations").index(i), errs);
    }
    if let Some(node_affinity) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
    {
        let na_path = path.child("affinity").child("nodeAffinity");
        if let Some(required) = &node_affinity.required_during_scheduling_ignored_during_execution {
            node_selector(
                required,
                &na_path.child("requiredDuringSchedulingIgnoredDuringExecution"),
                errs,
            );
        }
        for (i, term) in node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let term_path = na_path
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&term.weight) {
                errs.invalid(
                    &term_path.child("weight"),
                    term.weight,
                    "must be in the range 1-100",
                );
            }
            match &term.preference {
                Some(pref) => node_selector_term(pref, &term_path.child("preference"), errs),
                None => errs.required(&term_path.child("preference"), ""),
            }
        }
    }
    if let Some(sc) = &spec.security_context {
        let sc_path = path.child("securityContext");
        for (field, value) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            if let Some(id) = value {
                user_id(&sc_path.child(field), id, errs);
            }
        }
    }
}

fn optional_name(path: &Path, value: &str, format: fn(&str) -> Vec<String>, errs: &mut Errors) {
    if !value.is_empty() {
        errs.format(path, value, format);
    }
}

fn user_id(path: &Path, id: i64, errs: &mut Errors) {
    if !(0..=i64::from(i32::MAX)).contains(&id) {
        errs.invalid(path, id, "must be between 0 and 2147483647, inclusive");
    }
}

/// Checks the volumes and returns the names defined.
fn volumes<'a>(volumes: &'a [Volume], path: &Path, errs: &mut Errors) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let v_path = path.index(i);
        errs.name(&v_path.child("name"), &v.name, names::dns1123_label);
        if !v.name.is_empty() && !seen.insert(v.name.as_str()) {
            errs.duplicate(&v_path.child("name"), &v.name);
        }
        let sources = [
            v.empty_dir.is_some(),
            v.host_path.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.persistent_volume_claim.is_some(),
            v.nfs.is_some(),
        ];
        exactly_one_source(&sources, &v_path, "volume type", errs);
        if let Some(dir) = &v.empty_dir {
            let dir_path = v_path.child("emptyDir");
            errs.optional_enum_value(&dir_path.child("medium"), &dir.medium, EMPTY_DIR_MEDIA);
            if !dir.size_limit.is_empty() {
                quantity(&dir_path.child("sizeLimit"), &dir.size_limit, errs);
            }
        }
        if let Some(host) = &v.host_path {
            let host_path = v_path.child("hostPath");
            errs.non_empty(&host_path.child("path"), &host.path);
            errs.optional_enum_value(&host_path.child("type"), &host.r#type, HOST_PATH_TYPES);
        }
        if let Some(cm) = &v.config_map {
            let cm_path = v_path.child("configMap");
            errs.name(&cm_path.child("name"), &cm.name, names::dns1123_subdomain);
            key_to_paths(&cm.items, &cm_path.child("items"), errs);
            file_mode(&cm_path.child("defaultMode"), cm.default_mode, errs);
        }
        if let Some(secret) = &v.secret {
            let s_path = v_path.child("secret");
            errs.name(
                &s_path.child("secretName"),
                &secret.secret_name,
                names::dns1123_subdomain,
            );
            key_to_paths(&secret.items, &s_path.child("items"), errs);
            file_mode(&s_path.child("defaultMode"), secret.default_mode, errs);
        }
        if let Some(pvc) = &v.persistent_volume_claim {
            errs.non_empty(
                &v_path.child("persistentVolumeClaim").child("claimName"),
                &pvc.claim_name,
            );
        }
        if let Some(nfs) = &v.nfs {
            let nfs_path = v_path.child("nfs");
            errs.non_empty(&nfs_path.child("server"), &nfs.server);
            nfs_export(&nfs_path.child("path"), &nfs.path, errs);
        }
    }
    seen
}

pub(crate) fn nfs_export(path: &Path, export: &str, errs: &mut Errors) {
    if errs.non_empty(path, export) && !export.starts_with('/') {
        errs.invalid(path, export, "must be an absolute path");
    }
}

/// A volume (or persistent volume) names exactly one source.
pub(crate) fn exactly_one_source(sources: &[bool], path: &Path, what: &str, errs: &mut Errors) {
    match sources.iter().filter(|set| **set).count() {
        0 => errs.required(path, format!("must specify a {what}")),
        1 => {}
        _ => errs.forbidden(path, format!("may not specify more than 1 {what}")),
    }
}

fn key_to_paths(items: &[KeyToPath], path: &Path, errs: &mut Errors) {
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        errs.non_empty(&item_path.child("key"), &item.key);
        let file = item_path.child("path");
        if errs.non_empty(&file, &item.path) {
            if item.path.starts_with('/') {
                errs.invalid(&file, &item.path, "must be a relative path");
            }
            if item.path.split('/').any(|part| part == "..") {
                errs.invalid(&file, &item.path, "must not contain '..'");
            }
        }
        file_mode(&item_path.child("mode"), item.mode, errs);
    }
}

fn file_mode(path: &Path, mode: Option<i32>, errs: &mut Errors) {
    if let Some(mode) = mode {
        if !(0..=0o777).contains(&mode) {
            errs.invalid(
                path,
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            );
        }
    }
}

fn container(c: &Container, path: &Path, volume_names: &BTreeSet<&str>, errs: &mut Errors) {
    errs.name(&path.child("name"), &c.name, names::dns1123_label);
    errs.non_empty(&path.child("image"), &c.image);
    errs.optional_enum_value(
        &path.child("imagePullPolicy"),
        &c.image_pull_policy,
        IMAGE_PULL_POLICIES,
    );
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let p_path = path.child("ports").index(i);
        if !port.name.is_empty() {
            errs.format(&p_path.child("name"), &port.name, names::iana_svc_name);
            if !port_names.insert(port.name.as_str()) {
                errs.duplicate(&p_path.child("name"), &port.name);
            }
        }
        errs.port_number(&p_path.child("containerPort"), port.container_port);
        if port.host_port != 0 {
            errs.port_number(&p_path.child("hostPort"), port.host_port);
        }
        errs.optional_enum_value(&p_path.child("protocol"), &port.protocol, PROTOCOLS);
    }
    for (i, var) in c.env.iter().enumerate() {
        env_var(var, &path.child("env").index(i), errs);
    }
    for (i, from) in c.env_from.iter().enumerate() {
        let f_path = path.child("envFrom").index(i);
        if !from.prefix.is_empty() {
            errs.format(&f_path.child("prefix"), &from.prefix, names::env_var_name);
        }
        let sources = [from.config_map_ref.is_some(), from.secret_ref.is_some()];
        match sources.iter().filter(|s| **s).count() {
            0 => errs.required(
                &f_path,
                "must specify one of: `configMapRef` or `secretRef`",
            ),
            1 => {}
            _ => errs.forbidden(
                &f_path,
                "may not have more than one field specified at a time",
            ),
        }
        if let Some(cm) = &from.config_map_ref {
            errs.name(
                &f_path.child("configMapRef").child("name"),
                &cm.name,
                names::dns1123_subdomain,
            );
        }
        if let Some(secret) = &from.secret_ref {
            errs.name(
                &f_path.child("secretRef").child("name"),
                &secret.name,
                names::dns1123_subdomain,
            );
        }
    }
    if let Some(resources) = &c.resources {
        self::resources(resources, &path.child("resources"), errs);
    }
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in c.volume_mounts.iter().enumerate() {
        let m_path = path.child("volumeMounts").index(i);
        if errs.non_empty(&m_path.child("name"), &mount.name)
            && !volume_names.contains(mount.name.as_str())
        {
            errs.not_found(&m_path.child("name"), &mount.name);
        }
        if errs.non_empty(&m_path.child("mountPath"), &mount.mount_path)
            && !mount_paths.insert(&mount.mount_path)
        {
            errs.invalid(
                &m_path.child("mountPath"),
                &mount.mount_path,
                "must be unique",
            );
        }
        if mount.sub_path.starts_with('/') || mount.sub_path.split('/').any(|part| part == "..") {
            errs.invalid(
                &m_path.child("subPath"),
                &mount.sub_path,
                "must be a relative path without '..'",
            );
        }
    }
    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            self::probe(probe, &path.child(field), field != "readinessProbe", errs);
        }
    }
    if let Some(sc) = &c.security_context {
        let sc_path = path.child("securityContext");
        if let Some(id) = sc.run_as_user {
            user_id(&sc_path.child("runAsUser"), id, errs);
        }
        if let Some(id) = sc.run_as_group {
            user_id(&sc_path.child("runAsGroup"), id, errs);
        }
        if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
            errs.invalid(
                &sc_path.child("allowPrivilegeEscalation"),
                "false",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
    }
}

fn env_var(var: &EnvVar, path: &Path, errs: &mut Errors) {
    errs.name(&path.child("name"), &var.name, names::env_var_name);
    let Some(from) = &var.value_from else { return };
    let from_path = path.child("valueFrom");
    let sources = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => errs.invalid(
            &from_path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ),
        1 => {}
        _ => errs.invalid(&from_path, "", "may not have more than one field specified at a time"),
    }
    if !var.value.is_empty() {
        errs.invalid(
            &from_path,
            "",
            "may not be specified when `value` is not empty",
        );
    }
    if let Some(field) = &from.field_ref {
        errs.non_empty(
            &from_path.child("fieldRef").child("fieldPath"),
            &field.field_path,
        );
    }
    if let Some(res) = &from.resource_field_ref {
        errs.non_empty(
            &from_path.child("resourceFieldRef").child("resource"),
            &res.resource,
        );
        if !res.divisor.is_empty() {
            quantity(
                &from_path.child("resourceFieldRef").child("divisor"),
                &res.divisor,
                errs,
            );
        }
    }
    if let Some(cm) = &from.config_map_key_ref {
        let cm_path = from_path.child("configMapKeyRef");
        errs.name(&cm_path.child("name"), &cm.name, names::dns1123_subdomain);
        errs.name(&cm_path.child("key"), &cm.key, names::config_key);
    }
    if let Some(secret) = &from.secret_key_ref {
        let s_path = from_path.child("secretKeyRef");
        errs.name(
            &s_path.child("name"),
            &secret.name,
            names::dns1123_subdomain,
        );
        errs.name(&s_path.child("key"), &secret.key, names::config_key);
    }
}

/// Parses a quantity, reporting it when it does not parse or is negative.
pub(crate) fn quantity(path: &Path, text: &str, errs: &mut Errors) -> Option<Quantity> {
    match text.parse::<Quantity>() {
        Ok(q) if q.is_negative() => {
            errs.invalid(path, text, names::NON_NEGATIVE);
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            errs.invalid(path, text, e.to_string());
            None
        }
    }
}

/// Checks a map of resource name to quantity and returns the parsed ones.
pub(crate) fn resource_list<'a>(
    list: &'a crate::StringMap,
    path: &Path,
    errs: &mut Errors,
) -> BTreeMap<&'a str, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, text) in list {
        errs.format(path, name, names::qualified_name);
        if let Some(q) = quantity(&path.key(name), text, errs) {
            parsed.insert(name.as_str(), q);
        }
    }
    parsed
}

fn resources(res: &ResourceRequirements, path: &Path, errs: &mut Errors) {
    let limits = resource_list(&res.limits, &path.child("limits"), errs);
    let requests = resource_list(&res.requests, &path.child("requests"), errs);
    for (name, request) in &requests {
        if let Some(limit) = limits.get(name) {
            if request > limit {
                errs.invalid(
                    &path.child("requests").key(name),
                    &res.requests[*name],
                    format!(
                        "must be less than or equal to {name} limit of {}",
                        res.limits[*name]
                    ),
                );
            }
        }
    }
}

fn probe(probe: &Probe, path: &Path, success_must_be_one: bool, errs: &mut Errors) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
    ];
    match handlers.iter().filter(|h| **h).count() {
        0 => errs.required(path, "must specify a handler type"),
        1 => {}
        _ => errs.forbidden(path, "may not specify more than 1 handler type"),
    }
    if let Some(exec) = &probe.exec {
        if exec.command.is_empty() {
            errs.required(&path.child("exec").child("command"), "");
        }
    }
    if let Some(http) = &probe.http_get {
        let h_path = path.child("httpGet");
        port_number_or_name(&h_path.child("port"), http.port.as_ref(), errs);
        errs.optional_enum_value(&h_path.child("scheme"), &http.scheme, URI_SCHEMES);
        for (i, header) in http.http_headers.iter().enumerate() {
            errs.non_empty(
                &h_path.child("httpHeaders").index(i).child("name"),
                &header.name,
            );
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        port_number_or_name(
            &path.child("tcpSocket").child("port"),
            tcp.port.as_ref(),
            errs,
        );
    }
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        errs.non_negative(&path.child(field), value.into());
    }
    if success_must_be_one && probe.success_threshold > 1 {
        errs.invalid(
            &path.child("successThreshold"),
            probe.success_threshold,
            "must be 1",
        );
    }
}

/// A port given as a number (1–65535) or as the name of a container port.
pub(crate) fn port_number_or_name(path: &Path, port: Option<&IntOrString>, errs: &mut Errors) {
    match port {
        None => errs.required(path, ""),
        Some(IntOrString::Int(n)) => errs.port_number(path, *n),
        Some(IntOrString::String(name)) => errs.name(path, name, names::iana_svc_name),
    }
}

fn toleration(t: &Toleration, path: &Path, errs: &mut Errors) {
    if !t.key.is_empty() {
        errs.format(&path.child("key"), &t.key, names::qualified_name);
    }
    match t.operator.as_str() {
        "Exists" => {
            if !t.value.is_empty() {
                errs.invalid(
                    &path.child("value"),
                    &t.value,
                    "value must be empty when `operator` is 'Exists'",
                );
            }
        }
        "" | "Equal" => {
            if t.key.is_empty() {
                errs.invalid(
                    &path.child("operator"),
                    &t.operator,
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                );
            }
            errs.format(&path.child("value"), &t.value, names::label_value);
        }
        op => errs.not_supported(&path.child("operator"), op, TOLERATION_OPERATORS),
    }
    errs.optional_enum_value(&path.child("effect"), &t.effect, TAINT_EFFECTS);
    if t.toleration_seconds.is_some() && t.effect != "NoExecute" {
        errs.invalid(
            &path.child("effect"),
            &t.effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}

/// Checks a required node selector (pod affinity or a persistent volume's node affinity).
pub(crate) fn node_selector(selector: &NodeSelector, path: &Path, errs: &mut Errors) {
    let terms_path = path.child("nodeSelectorTerms");
    if selector.node_selector_terms.is_empty() {
        errs.required(&terms_path, "must have at least one node selector term");
    }
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        node_selector_term(term, &terms_path.index(i), errs);
    }
}

fn node_selector_term(term: &NodeSelectorTerm, path: &Path, errs: &mut Errors) {
    for (i, req) in term.match_expressions.iter().enumerate() {
        node_selector_requirement(req, &path.child("matchExpressions").index(i), errs);
    }
    for (i, req) in term.match_fields.iter().enumerate() {
        let f_path = path.child("matchFields").index(i);
        if req.key != "metadata.name" {
            errs.not_supported(&f_path.child("key"), &req.key, &["metadata.name"]);
        }
        if !matches!(req.operator.as_str(), "In" | "NotIn") {
            errs.enum_value(&f_path.child("operator"), &req.operator, &["In", "NotIn"]);
        } else if req.values.len() != 1 {
            errs.required(
                &f_path.child("values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            );
        }
    }
}

fn node_selector_requirement(req: &NodeSelectorRequirement, path: &Path, errs: &mut Errors) {
    errs.name(&path.child("key"), &req.key, names::qualified_name);
    let values = path.child("values");
    match req.operator.as_str() {
        "In" | "NotIn" => {
            if req.values.is_empty() {
                errs.required(
                    &values,
                    "must be specified when `operator` is 'In' or 'NotIn'",
                );
            }
        }
        "Exists" | "DoesNotExist" => {
            if !req.values.is_empty() {
                errs.forbidden(
                    &values,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
        }
        "Gt" | "Lt" => match req.values.as_slice() {
            [value] => {
                if value.parse::<i64>().is_err() {
                    errs.invalid(&values.index(0), value, "must be an integer");
                }
            }
            _ => errs.required(
                &values,
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            ),
        },
        op => errs.enum_value(&path.child("operator"), op, NODE_SELECTOR_OPERATORS),
    }
}

/// `dnsConfig`, as Kubernetes checks it: with `dnsPolicy: None` it is all the pod has, so
/// it must name a nameserver; at most 3 nameservers (IP addresses) and 32 search domains.
fn dns_config(spec: &PodSpec, path: &Path, errs: &mut Errors) {
    let config_path = path.child("dnsConfig");
    let Some(config) = &spec.dns_config else {
        if spec.dns_policy == "None" {
            errs.required(
                &config_path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            );
        }
        return;
    };
    let servers = config_path.child("nameservers");
    if spec.dns_policy == "None" && config.nameservers.is_empty() {
        errs.required(
            &servers,
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        );
    }
    if config.nameservers.len() > 3 {
        errs.invalid(
            &servers,
            config.nameservers.join(", "),
            "must not have more than 3 nameservers",
        );
    }
    for (i, server) in config.nameservers.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            errs.invalid(&servers.index(i), server, "must be a valid IP address");
        }
    }
    if config.searches.len() > 32 {
        errs.invalid(
            &config_path.child("searches"),
            config.searches.len(),
            "must not have more than 32 search paths",
        );
    }
    for (i, option) in config.options.iter().enumerate() {
        if option.name.is_empty() {
            errs.required(&config_path.child("options").index(i).child("name"), "");
        }
    }
}
