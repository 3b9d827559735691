//! The CSR signing controller's core: auto-approves node bootstrap requests, checks
//! approved requests against their signer's rules and issues their certificates through
//! a [`CertificateSigner`].
//!
//! ```text
//!  Denied / Failed / certificate set ─────────────► nothing
//!  not approved: kubelet client request from a bootstrap token (or the node itself)
//!                for system:node:<name> in system:nodes ─► Approved (AutoApproved)
//!                kubelet serving request filed by system:node:<name> for itself, every
//!                DNS/IP name one of its Node's status.addresses (or its name)
//!                                                    ─► Approved (AutoApproved)
//!                anything else waits for a person (rafter certificate approve)
//!  approved, one of our signers:
//!     request unparsable, subject or usages not allowed ─► Failed (reason, message)
//!     otherwise ─► sign ─► status.certificate (base64 of the PEM)
//!  approved, another signer ─────────────────────────► nothing (left to that signer)
//! ```
//!
//! | signer | subject | usages (must include the starred) |
//! |---|---|---|
//! | `kubernetes.io/kube-apiserver-client` | any non-empty CN | digital signature, key encipherment, client auth* |
//! | `kubernetes.io/kube-apiserver-client-kubelet` | CN `system:node:<name>`, O exactly `system:nodes` | digital signature, key encipherment, client auth* |
//! | `kubernetes.io/kubelet-serving` | CN `system:node:<name>`, O exactly `system:nodes`; at least one DNS or IP name, no email or URI names | digital signature*, key encipherment, server auth* |
//!
//! Owns those decisions. It must not hold key material or parse ASN.1: reading a request's
//! subject and alternative names and signing are the signer's (the master's cluster CA).

use base64::Engine;
use rafter_proto::v1::{self, Condition};
use rafter_proto::{Kind, Object};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use rafter_proto::Timestamp;

/// Client certificates for the API server.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Client certificates of node agents.
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Serving certificates of node agents.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

use rafter_proto::well_known::{NODES_GROUP, NODE_USER_PREFIX as NODE_PREFIX};
const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The subject a certificate request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestSubject {
    /// The common name.
    pub common_name: String,
    /// The organisations.
    pub organizations: Vec<String>,
    /// DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses among the subject alternative names, as text.
    pub ip_addresses: Vec<String>,
    /// Email addresses among the subject alternative names.
    pub emails: Vec<String>,
    /// URIs (and any other kind of name) among the subject alternative names.
    pub uris: Vec<String>,
}

/// Reads and signs certificate requests: the cluster CA on a master, a test CA in tests.
pub trait CertificateSigner: Send + Sync + 'static {
    /// The subject of a PKCS#10 request (PEM); `Err` with a reason when it does not parse.
    fn subject(&self, csr_pem: &str) -> Result<RequestSubject, String>;

    /// A certificate (PEM) for the request, already checked against `signer_name`'s rules,
    /// with `usages`, valid for `expiration_seconds` (the signer's default when `None`).
    fn sign(
        &self,
        csr_pem: &str,
        signer_name: &str,
        usages: &[String],
        expiration_seconds: Option<i32>,
    ) -> Result<String, String>;
}

fn condition<'a>(
    status: &'a v1::CertificateSigningRequestStatus,
    kind: &str,
) -> Option<&'a Condition> {
    status
        .conditions
        .iter()
        .find(|c| c.r#type == kind && c.status != "False")
}

fn node_name(subject: &RequestSubject) -> Option<&str> {
    subject
        .common_name
        .strip_prefix(NODE_PREFIX)
        .filter(|n| !n.is_empty())
}

/// Checks a request against its signer's rules; `Err` is the reason to fail it.
pub fn check(signer_name: &str, subject: &RequestSubject, usages: &[String]) -> Result<(), String> {
    let (allowed, required): (&[&str], &[&str]) = match signer_name {
        KUBE_APISERVER_CLIENT | KUBELET_CLIENT => (
            &["digital signature", "key encipherment", "client auth"],
            &["client auth"],
        ),
        KUBELET_SERVING => (
            &["digital signature", "key encipherment", "server auth"],
            &["digital signature", "server auth"],
        ),
        other => return Err(format!("{other} is not a signer of this cluster")),
    };
    if let Some(bad) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Err(format!(
            "usage {bad:?} is not allowed for {signer_name} (allowed: {})",
            allowed.join(", ")
        ));
    }
    if let Some(missing) = required.iter().find(|r| !usages.iter().any(|u| u == *r)) {
        return Err(format!("{signer_name} requires the usage {missing:?}"));
    }
    if signer_name == KUBELET_SERVING {
        check_serving_names(subject)?;
    }
    match signer_name {
        KUBE_APISERVER_CLIENT => {
            if subject.common_name.is_empty() {
                return Err("the subject has no common name".to_owned());
            }
        }
        _ => {
            if node_name(subject).is_none() {
                return Err(format!(
                    "the common name must be {NODE_PREFIX}<node name>, not {:?}",
                    subject.common_name
                ));
            }
            if subject.organizations != [NODES_GROUP] {
                return Err(format!(
                    "the organization must be exactly {NODES_GROUP:?}, not {:?}",
                    subject.organizations
                ));
            }
        }
    }
    Ok(())
}

/// A serving certificate names hosts: DNS names and IP addresses, at least one, nothing else.
fn check_serving_names(subject: &RequestSubject) -> Result<(), String> {
    if let Some(email) = subject.emails.first() {
        return Err(format!(
            "{KUBELET_SERVING} allows only DNS and IP subject alternative names, not the email address {email:?}"
        ));
    }
    if let Some(uri) = subject.uris.first() {
        return Err(format!(
            "{KUBELET_SERVING} allows only DNS and IP subject alternative names, not the URI {uri:?}"
        ));
    }
    if subject.dns_names.is_empty() && subject.ip_addresses.is_empty() {
        return Err(format!(
            "{KUBELET_SERVING} requires at least one DNS or IP subject alternative name"
        ));
    }
    Ok(())
}

/// Whether a kubelet serving request was filed by the node itself (`spec.username` is
/// `system:node:<name>`, its CN) and names only that Node's own `status.addresses` or its
/// name: anything else (another node's address, a name nobody checked) waits for a person.
fn serving_auto_approvable(
    cache: &Cache,
    spec: &v1::CertificateSigningRequestSpec,
    subject: &RequestSubject,
) -> bool {
    if spec.signer_name != KUBELET_SERVING
        || check(KUBELET_SERVING, subject, &spec.usages).is_err()
        || spec.username != subject.common_name
    {
        return false;
    }
    let Some(name) = node_name(subject) else {
        return false;
    };
    let key = ObjectKey::new(Kind::Node, "", name);
    let Some(Object::Node(node)) = cache.get(&key).map(|o| o.as_ref()) else {
        return false;
    };
    let addresses: Vec<&str> = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter())
        .map(|a| a.address.as_str())
        .filter(|a| !a.is_empty())
        .collect();
    subject
        .dns_names
        .iter()
        .chain(&subject.ip_addresses)
        .all(|san| san == name || addresses.contains(&san.as_str()))
}

/// Whether a kubelet client request comes from a node bootstrapping (a bootstrap token)
/// or renewing its own certificate, for its own name.
fn auto_approvable(spec: &v1::CertificateSigningRequestSpec, subject: &RequestSubject) -> bool {
    if spec.signer_name != KUBELET_CLIENT || check(KUBELET_CLIENT, subject, &spec.usages).is_err() {
        return false;
    }
    let bootstrap = spec.username.starts_with(BOOTSTRAP_USER_PREFIX)
        || spec.groups.iter().any(|g| g == BOOTSTRAPPERS_GROUP);
    let self_renewal = spec.username == subject.common_name;
    bootstrap || self_renewal
}

fn decode_request(encoded: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("spec.request is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "spec.request is not PEM text".to_owned())
}

fn with_condition(
    csr: &v1::CertificateSigningRequest,
    kind: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Action {
    let mut updated = csr.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    status.conditions.push(Condition {
        r#type: kind.to_owned(),
        status: "True".to_owned(),
        reason: reason.to_owned(),
        message,
        last_update_time: Some(now.to_rfc3339()),
        last_transition_time: Some(now.to_rfc3339()),
        ..Default::default()
    });
    Action::UpdateStatus(Object::CertificateSigningRequest(updated))
}

/// Reconciles one CertificateSigningRequest.
pub fn reconcile(
    cache: &Cache,
    key: &ObjectKey,
    now: Timestamp,
    signer: &dyn CertificateSigner,
) -> Reconciled {
    let Some(Object::CertificateSigningRequest(csr)) = cache.get(key).map(|o| o.as_ref()) else {
        return Reconciled::nothing();
    };
    let status = csr.status.clone().unwrap_or_default();
    if !status.certificate.is_empty()
        || condition(&status, "Denied").is_some()
        || condition(&status, "Failed").is_some()
    {
        return Reconciled::nothing();
    }
    let spec = csr.spec.clone().unwrap_or_default();
    let ours = [KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING]
        .contains(&spec.signer_name.as_str());
    let mut out = Reconciled::nothing();
    let parsed = decode_request(&spec.request)
        .and_then(|pem| signer.subject(&pem).map(|subject| (pem, subject)));
    if condition(&status, "Approved").is_none() {
        if let Ok((_, subject)) = &parsed {
            let message = if auto_approvable(&spec, subject) {
                Some("Auto approving kubelet client certificate after bootstrap token authentication.")
            } else if serving_auto_approvable(cache, &spec, subject) {
                Some("Auto approving kubelet serving certificate filed by the node for its own addresses.")
            } else {
                None
            };
            if let Some(message) = message {
                out.actions.push(with_condition(
                    csr,
                    "Approved",
                    "AutoApproved",
                    message.to_owned(),
                    now,
                ));
            }
        }
        return out;
    }
    if !ours {
        return out;
    }
    let signed = parsed.and_then(|(pem, subject)| {
        check(&spec.signer_name, &subject, &spec.usages)?;
        signer.sign(
            &pem,
            &spec.signer_name,
            &spec.usages,
            spec.expiration_seconds,
        )
    });
    match signed {
        Ok(certificate) => {
            let mut updated = csr.clone();
            updated
                .status
                .get_or_insert_with(Default::default)
                .certificate = base64::engine::general_purpose::STANDARD.encode(certificate);
            out.actions
                .push(Action::UpdateStatus(Object::CertificateSigningRequest(
                    updated,
                )));
        }
        Err(reason) => out.actions.push(with_condition(
            csr,
            "Failed",
            "SignerValidationFailure",
            reason,
            now,
        )),
    }
    out
}

/// The pending kubelet serving requests of node `name`: what to look at again when its
/// addresses change.
pub(crate) fn pending_serving_requests(cache: &Cache, name: &str) -> Vec<ObjectKey> {
    let user = format!("{NODE_PREFIX}{name}");
    cache
        .list(Kind::CertificateSigningRequest)
        .filter(|o| match o.as_ref() {
            Object::CertificateSigningRequest(c) => {
                c.status.as_ref().is_none_or(|s| s.conditions.is_empty())
                    && c.spec
                        .as_ref()
                        .is_some_and(|s| s.signer_name == KUBELET_SERVING && s.username == user)
            }
            _ => false,
        })
        .map(|o| ObjectKey::of(o))
        .collect()
}

#[cfg(test)]
#[path = "csr_test.rs"]
mod tests;
