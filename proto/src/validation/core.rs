//! The core (`v1`) kinds other than the pod spec itself: Namespace, Node, Pod, Binding,
//! Service, Endpoints, ConfigMap, Secret, ServiceAccount, ResourceQuota, PersistentVolume,
//! PersistentVolumeClaim and Event.
//!
//! Owns the rules of each kind's own fields; pod specs are checked by `pod`, metadata by
//! `meta`. It must not look up other objects (a Binding's node, a claim's volume).

use std::collections::BTreeSet;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::pod::{self, RestartRule, PROTOCOLS, TAINT_EFFECTS};
use super::{meta, names, Errors, Path};
use crate::v1;
use crate::IntOrString;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const SESSION_AFFINITIES: &[&str] = &["None", "ClientIP"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];
const RECLAIM_POLICIES: &[&str] = &["Retain", "Recycle", "Delete"];
const VOLUME_MODES: &[&str] = &["Filesystem", "Block"];
const NAMESPACE_PHASES: &[&str] = &["Active", "Terminating"];
const EVENT_TYPES: &[&str] = &["Normal", "Warning"];
const QUOTA_SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];
/// Secret types Kubernetes defines. Types outside `kubernetes.io/` with a domain prefix
/// (`helm.sh/release.v1`) are the user's own and accepted; a bare word must be `Opaque`.
const SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/service-account-token",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "bootstrap.kubernetes.io/token",
];
/// The most bytes a ConfigMap's or Secret's data may hold.
const MAX_DATA_SIZE: usize = 1024 * 1024;

pub(super) fn namespace(ns: &v1::Namespace, errs: &mut Errors) {
    if let Some(spec) = &ns.spec {
        for (i, finalizer) in spec.finalizers.iter().enumerate() {
            errs.format(
                &Path::root("spec").child("finalizers").index(i),
                finalizer,
                names::qualified_name,
            );
        }
    }
    if let Some(status) = &ns.status {
        errs.optional_enum_value(
            &Path::root("status").child("phase"),
            &status.phase,
            NAMESPACE_PHASES,
        );
    }
}

pub(super) fn node(node: &v1::Node, errs: &mut Errors) {
    let spec_path = Path::root("spec");
    if let Some(spec) = &node.spec {
        let mut seen = BTreeSet::new();
        for (i, taint) in spec.taints.iter().enumerate() {
            let t_path = spec_path.child("taints").index(i);
            errs.name(&t_path.child("key"), &taint.key, names::qualified_name);
            errs.format(&t_path.child("value"), &taint.value, names::label_value);
            errs.enum_value(&t_path.child("effect"), &taint.effect, TAINT_EFFECTS);
            if !seen.insert((taint.key.as_str(), taint.effect.as_str())) {
                errs.duplicate(&t_path, format!("{}:{}", taint.key, taint.effect));
            }
        }
        if !spec.pod_cidr.is_empty() {
            cidr(&spec_path.child("podCIDR"), &spec.pod_cidr, errs);
        }
        for (i, c) in spec.pod_cidrs.iter().enumerate() {
            cidr(&spec_path.child("podCIDRs").index(i), c, errs);
        }
    }
    if let Some(status) = &node.status {
        let status_path = Path::root("status");
        pod::resource_list(&status.capacity, &status_path.child("capacity"), errs);
        pod::resource_list(&status.allocatable, &status_path.child("allocatable"), errs);
        for (i, addr) in status.addresses.iter().enumerate() {
            let a_path = status_path.child("addresses").index(i);
            errs.non_empty(&a_path.child("type"), &addr.r#type);
            errs.non_empty(&a_path.child("address"), &addr.address);
        }
    }
}

pub(crate) fn cidr(path: &Path, text: &str, errs: &mut Errors) {
    let valid = text.split_once('/').is_some_and(|(ip, bits)| {
        match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        }
    });
    if !valid {
        errs.invalid(
            path,
            text,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        );
    }
}

fn ip(path: &Path, text: &str, errs: &mut Errors) {
    if text.parse::<IpAddr>().is_err() {
        errs.invalid(
            path,
            text,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
}

pub(super) fn pod(pod: &v1::Pod, errs: &mut Errors) {
    match &pod.spec {
        Some(spec) => pod::pod_spec(spec, &Path::root("spec"), RestartRule::Pod, errs),
        None => errs.required(&Path::root("spec"), ""),
    }
}

pub(super) fn binding(binding: &v1::Binding, errs: &mut Errors) {
    let path = Path::root("target");
    let Some(target) = &binding.target else {
        errs.required(&path.child("name"), "");
        return;
    };
    errs.non_empty(&path.child("name"), &target.name);
    if !target.kind.is_empty() && target.kind != "Node" {
        errs.not_supported(&path.child("kind"), &target.kind, &["Node", "<empty>"]);
    }
}

/// The longest ClientIP affinity a Service may ask for (a day), as Kubernetes.
const MAX_AFFINITY_TIMEOUT_SECONDS: i32 = 86_400;

pub(super) fn service(svc: &v1::Service, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &svc.spec else {
        errs.required(&path, "");
        return;
    };
    errs.optional_enum_value(&path.child("type"), &spec.r#type, SERVICE_TYPES);
    let service_type = if spec.r#type.is_empty() {
        "ClusterIP"
    } else {
        spec.r#type.as_str()
    };
    let headless = spec.cluster_ip == "None";
    if service_type == "ExternalName" {
        errs.name(
            &path.child("externalName"),
            &spec.external_name,
            names::dns1123_subdomain,
        );
    } else if spec.ports.is_empty() && !headless {
        errs.required(&path.child("ports"), "");
    }
    if service_type == "ExternalName" && !spec.cluster_ip.is_empty() {
        errs.forbidden(
            &path.child("clusterIP"),
            "may not be set for ExternalName services",
        );
    } else if !spec.cluster_ip.is_empty() && !headless {
        ip(&path.child("clusterIP"), &spec.cluster_ip, errs);
    }
    let node_ports_allowed = matches!(service_type, "NodePort" | "LoadBalancer");
    let mut names_seen = BTreeSet::new();
    let mut ports_seen = BTreeSet::new();
    let mut node_ports_seen = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let p_path = path.child("ports").index(i);
        if port.name.is_empty() {
            if spec.ports.len() > 1 {
                errs.required(&p_path.child("name"), "");
            }
        } else {
            errs.format(&p_path.child("name"), &port.name, names::dns1123_label);
            if !names_seen.insert(port.name.as_str()) {
                errs.duplicate(&p_path.child("name"), &port.name);
            }
        }
        errs.port_number(&p_path.child("port"), port.port);
        errs.optional_enum_value(&p_path.child("protocol"), &port.protocol, PROTOCOLS);
        let protocol = if port.protocol.is_empty() {
            "TCP"
        } else {
            port.protocol.as_str()
        };
        if !ports_seen.insert((port.port, protocol)) {
            errs.duplicate(&p_path, format!("{}/{protocol}", port.port));
        }
        match &port.target_port {
            Some(IntOrString::Int(0)) | None => {}
            target => pod::port_number_or_name(&p_path.child("targetPort"), target.as_ref(), errs),
        }
        if port.node_port != 0 {
            let np_path = p_path.child("nodePort");
            if !node_ports_allowed {
                errs.forbidden(
                    &np_path,
                    format!("may not be used when `type` is '{service_type}'"),
                );
            } else if !(1..=65535).contains(&port.node_port) {
                // Whether it lies in the cluster's node port range (`--service-node-port-range`)
                // is the allocator's to say, as in Kubernetes.
                errs.port_number(&np_path, port.node_port);
            } else if !node_ports_seen.insert((port.node_port, protocol)) {
                errs.duplicate(&np_path, port.node_port);
            }
        }
    }
    meta::labels(&spec.selector, &path.child("selector"), errs);
    errs.optional_enum_value(
        &path.child("sessionAffinity"),
        &spec.session_affinity,
        SESSION_AFFINITIES,
    );
    if let Some(timeout) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
    {
        if !(1..=MAX_AFFINITY_TIMEOUT_SECONDS).contains(&timeout) {
            errs.invalid(
                &path
                    .child("sessionAffinityConfig")
                    .child("clientIP")
                    .child("timeoutSeconds"),
                timeout,
                format!("must be between 1 and {MAX_AFFINITY_TIMEOUT_SECONDS}"),
            );
        }
    }
    errs.optional_enum_value(
        &path.child("externalTrafficPolicy"),
        &spec.external_traffic_policy,
        TRAFFIC_POLICIES,
    );
    for (i, addr) in spec.external_ips.iter().enumerate() {
        ip(&path.child("externalIPs").index(i), addr, errs);
    }
}

pub(super) fn endpoints(ep: &v1::Endpoints, errs: &mut Errors) {
    for (i, subset) in ep.subsets.iter().enumerate() {
        let s_path = Path::root("subsets").index(i);
        for (field, list) in [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ] {
            for (j, addr) in list.iter().enumerate() {
                ip(&s_path.child(field).index(j).child("ip"), &addr.ip, errs);
            }
        }
        for (j, port) in subset.ports.iter().enumerate() {
            let p_path = s_path.child("ports").index(j);
            if subset.ports.len() > 1 {
                errs.name(&p_path.child("name"), &port.name, names::dns1123_label);
            }
            errs.port_number(&p_path.child("port"), port.port);
            errs.optional_enum_value(&p_path.child("protocol"), &port.protocol, PROTOCOLS);
        }
    }
}

pub(super) fn config_map(cm: &v1::ConfigMap, errs: &mut Errors) {
    let mut size = 0;
    for (key, value) in &cm.data {
        errs.format(&Path::root("data").key(key), key, names::config_key);
        size += value.len();
    }
    for (key, value) in &cm.binary_data {
        let path = Path::root("binaryData").key(key);
        errs.format(&path, key, names::config_key);
        if cm.data.contains_key(key) {
            errs.invalid(&path, key, "duplicate of key present in data");
        }
        size += base64_value(&path, value, errs);
    }
    if size > MAX_DATA_SIZE {
        errs.too_long(&Path::root("data"), MAX_DATA_SIZE);
    }
}

/// Decodes a base64 value, reporting it when it is not base64; returns the decoded size.
fn base64_value(path: &Path, value: &str, errs: &mut Errors) -> usize {
    match BASE64.decode(value) {
        Ok(bytes) => bytes.len(),
        Err(e) => {
            // The value may be a secret: show its length, never its text.
            errs.invalid(
                path,
                format!("<{} bytes>", value.len()),
                format!("must be valid base64 ({e})"),
            );
            0
        }
    }
}

pub(super) fn secret(secret: &v1::Secret, errs: &mut Errors) {
    let mut size = 0;
    for (key, value) in &secret.data {
        let path = Path::root("data").key(key);
        errs.format(&path, key, names::config_key);
        size += base64_value(&path, value, errs);
    }
    for (key, value) in &secret.string_data {
        errs.format(&Path::root("stringData").key(key), key, names::config_key);
        size += value.len();
    }
    if size > MAX_DATA_SIZE {
        errs.too_long(&Path::root("data"), MAX_DATA_SIZE);
    }
    let type_path = Path::root("type");
    let ty = secret.r#type.as_str();
    let custom = ty
        .split_once('/')
        .is_some_and(|(domain, _)| !domain.ends_with("kubernetes.io"));
    if !ty.is_empty() && !custom && !SECRET_TYPES.contains(&ty) {
        errs.not_supported(&type_path, ty, SECRET_TYPES);
    }
    let has_key = |key: &str| secret.data.contains_key(key) || secret.string_data.contains_key(key);
    let required_keys: &[&str] = match ty {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required_keys {
        if !has_key(key) {
            errs.required(&Path::root("data").key(key), "");
        }
    }
    if ty == "kubernetes.io/service-account-token" {
        let annotation = "kubernetes.io/service-account.name";
        if !secret
            .metadata
            .as_ref()
            .is_some_and(|m| m.annotations.contains_key(annotation))
        {
            errs.required(
                &Path::root("metadata").child("annotations").key(annotation),
                "",
            );
        }
    }
}

pub(super) fn service_account(sa: &v1::ServiceAccount, errs: &mut Errors) {
    for (i, secret) in sa.image_pull_secrets.iter().enumerate() {
        errs.non_empty(
            &Path::root("imagePullSecrets").index(i).child("name"),
            &secret.name,
        );
    }
    for (i, secret) in sa.secrets.iter().enumerate() {
        errs.non_empty(&Path::root("secrets").index(i).child("name"), &secret.name);
    }
}

pub(super) fn resource_quota(quota: &v1::ResourceQuota, errs: &mut Errors) {
    let Some(spec) = &quota.spec else { return };
    let path = Path::root("spec");
    pod::resource_list(&spec.hard, &path.child("hard"), errs);
    for (i, scope) in spec.scopes.iter().enumerate() {
        errs.enum_value(&path.child("scopes").index(i), scope, QUOTA_SCOPES);
    }
}

const LIMIT_TYPES: &[&str] = &["Container", "Pod", "PersistentVolumeClaim"];

pub(super) fn limit_range(lr: &v1::LimitRange, errs: &mut Errors) {
    let Some(spec) = &lr.spec else { return };
    let path = Path::root("spec").child("limits");
    for (i, item) in spec.limits.iter().enumerate() {
        let at = path.index(i);
        errs.enum_value(&at.child("type"), &item.r#type, LIMIT_TYPES);
        let max = pod::resource_list(&item.max, &at.child("max"), errs);
        let min = pod::resource_list(&item.min, &at.child("min"), errs);
        let default = pod::resource_list(&item.default, &at.child("default"), errs);
        let request = pod::resource_list(&item.default_request, &at.child("defaultRequest"), errs);
        pod::resource_list(
            &item.max_limit_request_ratio,
            &at.child("maxLimitRequestRatio"),
            errs,
        );
        if item.r#type == "Pod" && !(item.default.is_empty() && item.default_request.is_empty()) {
            errs.invalid(&at.child("default"), "", "may not be given for type Pod");
        }
        for (resource, low) in &min {
            if let Some(high) = max.get(resource) {
                if low > high {
                    errs.invalid(
                        &at.child("min").key(resource),
                        low,
                        format!("min value {low} is greater than max value {high}"),
                    );
                }
            }
        }
        for (name, values) in [("default", &default), ("defaultRequest", &request)] {
            for (resource, value) in values {
                if let Some(high) = max.get(resource).filter(|high| value > *high) {
                    errs.invalid(
                        &at.child(name).key(resource),
                        value,
                        format!("{name} value {value} is greater than max value {high}"),
                    );
                }
                if let Some(low) = min.get(resource).filter(|low| value < *low) {
                    errs.invalid(
                        &at.child(name).key(resource),
                        value,
                        format!("{name} value {value} is less than min value {low}"),
                    );
                }
            }
        }
    }
}

fn access_modes(modes: &[String], path: &Path, errs: &mut Errors) {
    if modes.is_empty() {
        errs.required(path, "at least 1 access mode is required");
    }
    for (i, mode) in modes.iter().enumerate() {
        errs.enum_value(&path.index(i), mode, ACCESS_MODES);
    }
}

/// The `storage` entry of a capacity or request map: required and above zero.
fn storage(list: &crate::StringMap, path: &Path, errs: &mut Errors) {
    let parsed = pod::resource_list(list, path, errs);
    match (list.get("storage"), parsed.get("storage")) {
        (None, _) => errs.required(&path.key("storage"), ""),
        (Some(text), Some(q)) if q.nanos() == 0 => {
            errs.invalid(&path.key("storage"), text, "must be greater than zero")
        }
        _ => {}
    }
}

pub(super) fn persistent_volume(pv: &v1::PersistentVolume, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &pv.spec else {
        errs.required(&path, "");
        return;
    };
    storage(&spec.capacity, &path.child("capacity"), errs);
    for key in spec.capacity.keys().filter(|k| *k != "storage") {
        errs.not_supported(&path.child("capacity").key(key), key, &["storage"]);
    }
    access_modes(&spec.access_modes, &path.child("accessModes"), errs);
    errs.optional_enum_value(
        &path.child("persistentVolumeReclaimPolicy"),
        &spec.persistent_volume_reclaim_policy,
        RECLAIM_POLICIES,
    );
    errs.optional_enum_value(&path.child("volumeMode"), &spec.volume_mode, VOLUME_MODES);
    if !spec.storage_class_name.is_empty() {
        errs.format(
            &path.child("storageClassName"),
            &spec.storage_class_name,
            names::dns1123_subdomain,
        );
    }
    pod::exactly_one_source(
        &[spec.host_path.is_some(), spec.nfs.is_some()],
        &path,
        "volume type",
        errs,
    );
    if let Some(host) = &spec.host_path {
        errs.non_empty(&path.child("hostPath").child("path"), &host.path);
        errs.optional_enum_value(
            &path.child("hostPath").child("type"),
            &host.r#type,
            pod::HOST_PATH_TYPES,
        );
    }
    if let Some(nfs) = &spec.nfs {
        errs.non_empty(&path.child("nfs").child("server"), &nfs.server);
        pod::nfs_export(&path.child("nfs").child("path"), &nfs.path, errs);
    }
    if let Some(required) = spec.node_affinity.as_ref().and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    }) {
        pod::node_selector(
            required,
            &path.child("nodeAffinity").child("required"),
            errs,
        );
    }
}

pub(super) fn persistent_volume_claim(pvc: &v1::PersistentVolumeClaim, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &pvc.spec else {
        errs.required(&path, "");
        return;
    };
    access_modes(&spec.access_modes, &path.child("accessModes"), errs);
    let resources_path = path.child("resources");
    match &spec.resources {
        Some(res) => {
            storage(&res.requests, &resources_path.child("requests"), errs);
            pod::resource_list(&res.limits, &resources_path.child("limits"), errs);
        }
        None => errs.required(&resources_path.child("requests").key("storage"), ""),
    }
    if let Some(selector) = &spec.selector {
        meta::label_selector(selector, &path.child("selector"), errs);
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        errs.format(
            &path.child("storageClassName"),
            class,
            names::dns1123_subdomain,
        );
    }
    errs.optional_enum_value(&path.child("volumeMode"), &spec.volume_mode, VOLUME_MODES);
}

pub(super) fn event(event: &v1::Event, errs: &mut Errors) {
    errs.optional_enum_value(&Path::root("type"), &event.r#type, EVENT_TYPES);
    errs.non_negative(&Path::root("count"), event.count.into());
    match &event.involved_object {
        Some(obj) => {
            errs.non_empty(&Path::root("involvedObject").child("kind"), &obj.kind);
            errs.non_empty(&Path::root("involvedObject").child("name"), &obj.name);
        }
        None => errs.required(&Path::root("involvedObject"), ""),
    }
}
