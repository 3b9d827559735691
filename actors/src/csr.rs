//! The CSR signing controller's core: auto-approves node bootstrap requests, checks
//! approved requests against their signer's rules and issues their certificates through
//! a [`CertificateSigner`].
//!
//! ```text
//!  Denied / Failed / certificate set ─────────────► nothing
//!  not approved: kubelet client request from a bootstrap token (or the node itself)
//!                for system:node:<name> in system:nodes ─► Approved (AutoApproved)
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
//! | `kubernetes.io/kubelet-serving` | CN `system:node:<name>`, O exactly `system:nodes` | digital signature, key encipherment, server auth* |
//!
//! Owns those decisions. It must not hold key material or parse ASN.1: reading a request's
//! subject and signing are the signer's (the master's cluster CA). Subject alternative
//! names of serving requests are not checked yet (the signer reads CN and O only).

use base64::Engine;
use rafter_proto::v1::{self, Condition};
use rafter_proto::Object;

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::timestamp::Timestamp;

/// Client certificates for the API server.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Client certificates of node agents.
pub const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Serving certificates of node agents.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

const NODE_PREFIX: &str = "system:node:";
const NODES_GROUP: &str = "system:nodes";
const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";

/// The subject a certificate request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestSubject {
    /// The common name.
    pub common_name: String,
    /// The organisations.
    pub organizations: Vec<String>,
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
    let (allowed, required): (&[&str], &str) = match signer_name {
        KUBE_APISERVER_CLIENT | KUBELET_CLIENT => (
            &["digital signature", "key encipherment", "client auth"],
            "client auth",
        ),
        KUBELET_SERVING => (
            &["digital signature", "key encipherment", "server auth"],
            "server auth",
        ),
        other => return Err(format!("{other} is not a signer of this cluster")),
    };
    if let Some(bad) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Err(format!(
            "usage {bad:?} is not allowed for {signer_name} (allowed: {})",
            allowed.join(", ")
        ));
    }
    if !usages.iter().any(|u| u == required) {
        return Err(format!("{signer_name} requires the usage {required:?}"));
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
            if auto_approvable(&spec, subject) {
                out.actions.push(with_condition(
                    csr,
                    "Approved",
                    "AutoApproved",
                    "Auto approving kubelet client certificate after bootstrap token authentication."
                        .to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::Kind;

    /// A signer whose "PEM" is `CN;O1,O2`, and whose certificates say what they sign.
    struct TextSigner;

    impl CertificateSigner for TextSigner {
        fn subject(&self, csr_pem: &str) -> Result<RequestSubject, String> {
            let (cn, orgs) = csr_pem
                .split_once(';')
                .ok_or_else(|| "not a request".to_owned())?;
            Ok(RequestSubject {
                common_name: cn.to_owned(),
                organizations: orgs
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        }

        fn sign(
            &self,
            csr_pem: &str,
            signer_name: &str,
            usages: &[String],
            _expiration_seconds: Option<i32>,
        ) -> Result<String, String> {
            Ok(format!(
                "CERT[{csr_pem}|{signer_name}|{}]",
                usages.join(",")
            ))
        }
    }

    fn csr(
        request: &str,
        signer: &str,
        usages: &[&str],
        user: &str,
    ) -> v1::CertificateSigningRequest {
        v1::CertificateSigningRequest {
            metadata: Some(v1::ObjectMeta {
                name: "req".to_owned(),
                uid: "uid-req".to_owned(),
                ..Default::default()
            }),
            spec: Some(v1::CertificateSigningRequestSpec {
                request: base64::engine::general_purpose::STANDARD.encode(request),
                signer_name: signer.to_owned(),
                usages: usages.iter().map(|u| (*u).to_owned()).collect(),
                username: user.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn approved(mut csr: v1::CertificateSigningRequest) -> v1::CertificateSigningRequest {
        csr.status
            .get_or_insert_with(Default::default)
            .conditions
            .push(Condition {
                r#type: "Approved".to_owned(),
                status: "True".to_owned(),
                reason: "RafterApprove".to_owned(),
                ..Default::default()
            });
        csr
    }

    fn run(csr: v1::CertificateSigningRequest) -> Vec<Action> {
        let cache = Cache::from_objects([Object::CertificateSigningRequest(csr)]);
        reconcile(
            &cache,
            &ObjectKey::new(Kind::CertificateSigningRequest, "", "req"),
            Timestamp::from_unix_seconds(1_700_000_000),
            &TextSigner,
        )
        .actions
    }

    fn status_of(actions: &[Action]) -> v1::CertificateSigningRequestStatus {
        match actions {
            [Action::UpdateStatus(Object::CertificateSigningRequest(c))] => {
                c.status.clone().unwrap_or_default()
            }
            other => panic!("expected one status update, got {other:?}"),
        }
    }

    const KUBELET_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];

    #[test]
    fn an_approved_kubelet_client_request_gets_its_certificate() {
        let actions = run(approved(csr(
            "system:node:n1;system:nodes",
            KUBELET_CLIENT,
            KUBELET_USAGES,
            "admin",
        )));
        let status = status_of(&actions);
        let pem = base64::engine::general_purpose::STANDARD
            .decode(&status.certificate)
            .unwrap();
        assert_eq!(
            String::from_utf8(pem).unwrap(),
            format!(
                "CERT[system:node:n1;system:nodes|{KUBELET_CLIENT}|digital signature,key encipherment,client auth]"
            )
        );
    }

    #[test]
    fn a_bootstrap_request_for_a_node_is_auto_approved_but_not_signed_in_the_same_step() {
        let actions = run(csr(
            "system:node:n1;system:nodes",
            KUBELET_CLIENT,
            KUBELET_USAGES,
            "system:bootstrap:abcdef",
        ));
        let status = status_of(&actions);
        assert!(status.certificate.is_empty());
        let approved = &status.conditions[0];
        assert_eq!(
            (approved.r#type.as_str(), approved.reason.as_str()),
            ("Approved", "AutoApproved")
        );
    }

    #[test]
    fn requests_not_from_bootstrap_or_for_another_identity_wait_for_a_person() {
        assert!(run(csr(
            "system:node:n1;system:nodes",
            KUBELET_CLIENT,
            KUBELET_USAGES,
            "mallory"
        ))
        .is_empty());
        assert!(run(csr(
            "admin;system:masters",
            KUBELET_CLIENT,
            KUBELET_USAGES,
            "system:bootstrap:abcdef"
        ))
        .is_empty());
    }

    #[test]
    fn disallowed_subjects_and_usages_fail_with_a_reason() {
        for (request, signer, usages, why) in [
            (
                "admin;system:masters",
                KUBELET_CLIENT,
                KUBELET_USAGES,
                "common name",
            ),
            (
                "system:node:n1;system:masters",
                KUBELET_CLIENT,
                KUBELET_USAGES,
                "organization",
            ),
            (
                "system:node:n1;system:nodes",
                KUBELET_CLIENT,
                &["client auth", "server auth"][..],
                "server auth",
            ),
            (
                "system:node:n1;system:nodes",
                KUBELET_SERVING,
                KUBELET_USAGES,
                "client auth",
            ),
            (
                "garbage",
                KUBE_APISERVER_CLIENT,
                &["client auth"][..],
                "not a request",
            ),
        ] {
            let status = status_of(&run(approved(csr(request, signer, usages, "admin"))));
            let failed = status
                .conditions
                .iter()
                .find(|c| c.r#type == "Failed")
                .unwrap();
            assert_eq!(failed.reason, "SignerValidationFailure");
            assert!(failed.message.contains(why), "{why}: {}", failed.message);
            assert!(status.certificate.is_empty());
        }
    }

    #[test]
    fn other_signers_and_finished_requests_are_left_alone() {
        assert!(run(approved(csr(
            "x;y",
            "example.com/other",
            &["client auth"],
            "admin"
        )))
        .is_empty());
        let mut done = approved(csr("a;", KUBE_APISERVER_CLIENT, &["client auth"], "admin"));
        done.status.as_mut().unwrap().certificate = "Y2VydA==".to_owned();
        assert!(run(done).is_empty());
        let serving = run(approved(csr(
            "system:node:n1;system:nodes",
            KUBELET_SERVING,
            &["digital signature", "server auth"],
            "system:node:n1",
        )));
        assert!(!status_of(&serving).certificate.is_empty());
    }
}
