//! Cluster-level and networking kinds: CertificateSigningRequest, StorageClass, Lease,
//! NetworkPolicy and Ingress.
//!
//! Owns the shape of these kinds. For a CSR it only checks that the request is base64 of a
//! PEM `CERTIFICATE REQUEST` block; it must not parse the PKCS#10 inside, sign anything, or
//! look up the Services and Secrets an Ingress names.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::core::cidr;
use super::pod::{port_number_or_name, PROTOCOLS};
use super::{meta, names, Errors, Path};
use crate::v1;
use crate::IntOrString;

/// Key usages a certificate may ask for (`certificates.k8s.io/v1` KeyUsage).
const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];
const MIN_CSR_EXPIRATION_SECONDS: i32 = 600;
const RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];
const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];
const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];

pub(super) fn certificate_signing_request(csr: &v1::CertificateSigningRequest, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &csr.spec else {
        errs.required(&path.child("request"), "");
        return;
    };
    let request = path.child("request");
    if errs.non_empty(&request, &spec.request) {
        if let Err(detail) = pem_certificate_request(&spec.request) {
            errs.invalid(&request, format!("<{} bytes>", spec.request.len()), detail);
        }
    }
    let signer = path.child("signerName");
    if errs.non_empty(&signer, &spec.signer_name) {
        signer_name(&signer, &spec.signer_name, errs);
    }
    let usages = path.child("usages");
    if spec.usages.is_empty() {
        errs.required(&usages, "");
    }
    let mut seen = BTreeSet::new();
    for (i, usage) in spec.usages.iter().enumerate() {
        errs.enum_value(&usages.index(i), usage, KEY_USAGES);
        if !seen.insert(usage.as_str()) {
            errs.duplicate(&usages.index(i), usage);
        }
    }
    if let Some(seconds) = spec.expiration_seconds {
        if seconds < MIN_CSR_EXPIRATION_SECONDS {
            errs.invalid(
                &path.child("expirationSeconds"),
                seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            );
        }
    }
}

/// The request must be base64 of PEM text holding a `CERTIFICATE REQUEST` block.
fn pem_certificate_request(request: &str) -> Result<(), String> {
    let bytes = BASE64
        .decode(request.trim())
        .map_err(|e| format!("must be valid base64 ({e})"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "must be a PEM encoded certificate request".to_owned())?;
    let has_block = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]
        .iter()
        .any(|ty| {
            text.contains(&format!("-----BEGIN {ty}-----"))
                && text.contains(&format!("-----END {ty}-----"))
        });
    if has_block {
        Ok(())
    } else {
        Err("PEM block type must be CERTIFICATE REQUEST".to_owned())
    }
}

/// A signer name is `<domain>/<path>`, such as `kubernetes.io/kube-apiserver-client`.
fn signer_name(path: &Path, signer: &str, errs: &mut Errors) {
    match signer.split_once('/') {
        Some((domain, name)) if !name.is_empty() => {
            for msg in names::dns1123_subdomain(domain) {
                errs.invalid(path, signer, format!("validating prefix: {msg}"));
            }
        }
        _ => errs.invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ),
    }
}

pub(super) fn storage_class(sc: &v1::StorageClass, errs: &mut Errors) {
    let provisioner = Path::root("provisioner");
    if errs.non_empty(&provisioner, &sc.provisioner) {
        for msg in names::qualified_name(&sc.provisioner.to_ascii_lowercase()) {
            errs.invalid(&provisioner, &sc.provisioner, msg);
        }
    }
    errs.optional_enum_value(
        &Path::root("reclaimPolicy"),
        &sc.reclaim_policy,
        RECLAIM_POLICIES,
    );
    errs.optional_enum_value(
        &Path::root("volumeBindingMode"),
        &sc.volume_binding_mode,
        BINDING_MODES,
    );
}

pub(super) fn lease(lease: &v1::Lease, errs: &mut Errors) {
    let Some(spec) = &lease.spec else { return };
    let path = Path::root("spec");
    if let Some(duration) = spec.lease_duration_seconds {
        if duration <= 0 {
            errs.invalid(
                &path.child("leaseDurationSeconds"),
                duration,
                "must be greater than 0",
            );
        }
    }
    errs.non_negative(
        &path.child("leaseTransitions"),
        spec.lease_transitions.into(),
    );
}

pub(super) fn network_policy(np: &v1::NetworkPolicy, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &np.spec else {
        errs.required(&path, "");
        return;
    };
    if let Some(selector) = &spec.pod_selector {
        meta::label_selector(selector, &path.child("podSelector"), errs);
    }
    for (i, rule) in spec.ingress.iter().enumerate() {
        let r_path = path.child("ingress").index(i);
        policy_ports(&rule.ports, &r_path.child("ports"), errs);
        policy_peers(&rule.from, &r_path.child("from"), errs);
    }
    for (i, rule) in spec.egress.iter().enumerate() {
        let r_path = path.child("egress").index(i);
        policy_ports(&rule.ports, &r_path.child("ports"), errs);
        policy_peers(&rule.to, &r_path.child("to"), errs);
    }
    let mut seen = BTreeSet::new();
    for (i, ty) in spec.policy_types.iter().enumerate() {
        errs.enum_value(&path.child("policyTypes").index(i), ty, POLICY_TYPES);
        if !seen.insert(ty.as_str()) {
            errs.duplicate(&path.child("policyTypes").index(i), ty);
        }
    }
}

fn policy_ports(ports: &[v1::NetworkPolicyPort], path: &Path, errs: &mut Errors) {
    for (i, port) in ports.iter().enumerate() {
        let p_path = path.index(i);
        errs.optional_enum_value(&p_path.child("protocol"), &port.protocol, PROTOCOLS);
        if let Some(value) = &port.port {
            port_number_or_name(&p_path.child("port"), Some(value), errs);
        }
        if let Some(end) = port.end_port {
            let end_path = p_path.child("endPort");
            match &port.port {
                Some(IntOrString::Int(start)) => {
                    if end < *start {
                        errs.invalid(&end_path, end, "must be greater than or equal to `port`");
                    }
                    errs.port_number(&end_path, end);
                }
                _ => errs.forbidden(
                    &end_path,
                    "may not be specified when `port` is not a number",
                ),
            }
        }
    }
}

fn policy_peers(peers: &[v1::NetworkPolicyPeer], path: &Path, errs: &mut Errors) {
    for (i, peer) in peers.iter().enumerate() {
        let p_path = path.index(i);
        let selectors = usize::from(peer.pod_selector.is_some())
            + usize::from(peer.namespace_selector.is_some());
        match (selectors, &peer.ip_block) {
            (0, None) => errs.required(&p_path, "must specify a peer"),
            (n, Some(_)) if n > 0 => {
                errs.forbidden(&p_path, "may not specify more than 1 peer type")
            }
            _ => {}
        }
        if let Some(selector) = &peer.pod_selector {
            meta::label_selector(selector, &p_path.child("podSelector"), errs);
        }
        if let Some(selector) = &peer.namespace_selector {
            meta::label_selector(selector, &p_path.child("namespaceSelector"), errs);
        }
        if let Some(block) = &peer.ip_block {
            let b_path = p_path.child("ipBlock");
            if errs.non_empty(&b_path.child("cidr"), &block.cidr) {
                cidr(&b_path.child("cidr"), &block.cidr, errs);
            }
            for (j, except) in block.except.iter().enumerate() {
                cidr(&b_path.child("except").index(j), except, errs);
            }
        }
    }
}

pub(super) fn ingress(ing: &v1::Ingress, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &ing.spec else {
        errs.required(&path, "");
        return;
    };
    if let Some(class) = spec.ingress_class_name.as_deref() {
        errs.name(
            &path.child("ingressClassName"),
            class,
            names::dns1123_subdomain,
        );
    }
    if let Some(backend) = &spec.default_backend {
        ingress_backend(backend, &path.child("defaultBackend"), errs);
    } else if spec.rules.is_empty() {
        errs.invalid(
            &path,
            "",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let r_path = path.child("rules").index(i);
        if !rule.host.is_empty() {
            host(&r_path.child("host"), &rule.host, errs);
        }
        let Some(http) = &rule.http else { continue };
        let paths = r_path.child("http").child("paths");
        if http.paths.is_empty() {
            errs.required(&paths, "");
        }
        for (j, p) in http.paths.iter().enumerate() {
            let p_path = paths.index(j);
            errs.enum_value(&p_path.child("pathType"), &p.path_type, PATH_TYPES);
            let exact_or_prefix = matches!(p.path_type.as_str(), "Exact" | "Prefix");
            if (exact_or_prefix || !p.path.is_empty()) && !p.path.starts_with('/') {
                errs.invalid(&p_path.child("path"), &p.path, "must be an absolute path");
            }
            match &p.backend {
                Some(backend) => ingress_backend(backend, &p_path.child("backend"), errs),
                None => errs.required(&p_path.child("backend"), ""),
            }
        }
    }
    for (i, tls) in spec.tls.iter().enumerate() {
        let t_path = path.child("tls").index(i);
        for (j, h) in tls.hosts.iter().enumerate() {
            host(&t_path.child("hosts").index(j), h, errs);
        }
        if !tls.secret_name.is_empty() {
            errs.format(
                &t_path.child("secretName"),
                &tls.secret_name,
                names::dns1123_subdomain,
            );
        }
    }
}

/// An Ingress host: a DNS subdomain, optionally starting with a `*.` wildcard.
fn host(path: &Path, host: &str, errs: &mut Errors) {
    let name = host.strip_prefix("*.").unwrap_or(host);
    for msg in names::dns1123_subdomain(name) {
        errs.invalid(path, host, msg);
    }
}

fn ingress_backend(backend: &v1::IngressBackend, path: &Path, errs: &mut Errors) {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => errs.invalid(
            path,
            "",
            "cannot set both `resource` and `service` backends",
        ),
        (None, None) => errs.required(path, "one of `resource` or `service` must be specified"),
        _ => {}
    }
    if let Some(service) = &backend.service {
        let s_path = path.child("service");
        errs.name(&s_path.child("name"), &service.name, names::dns1035_label);
        let port_path = s_path.child("port");
        match &service.port {
            None => errs.required(&port_path, ""),
            Some(port) => match (port.name.is_empty(), port.number) {
                (true, 0) => errs.required(&port_path, "port name or number is required"),
                (false, 0) => {
                    errs.format(&port_path.child("name"), &port.name, names::iana_svc_name)
                }
                (true, n) => errs.port_number(&port_path.child("number"), n),
                (false, _) => errs.invalid(
                    &port_path,
                    &port.name,
                    "cannot set both port name & port number",
                ),
            },
        }
    }
    if let Some(resource) = &backend.resource {
        let r_path = path.child("resource");
        errs.non_empty(&r_path.child("kind"), &resource.kind);
        errs.non_empty(&r_path.child("name"), &resource.name);
    }
}
