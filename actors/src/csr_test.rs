//! Tests of the CSR controller's core: signer rules and auto-approval.

use super::*;

/// A signer whose "PEM" is `CN;O1,O2[;kind:name,...]` (kinds `dns`, `ip`, `email`, `uri`),
/// and whose certificates say what they sign.
struct TextSigner;

impl CertificateSigner for TextSigner {
    fn subject(&self, csr_pem: &str) -> Result<RequestSubject, String> {
        let mut parts = csr_pem.split(';');
        let (Some(cn), Some(orgs)) = (parts.next(), parts.next()) else {
            return Err("not a request".to_owned());
        };
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut subject = RequestSubject {
            common_name: cn.to_owned(),
            organizations: list(orgs),
            ..Default::default()
        };
        for name in list(parts.next().unwrap_or_default()) {
            let (kind, value) = name.split_once(':').ok_or("a name without its kind")?;
            let to = match kind {
                "dns" => &mut subject.dns_names,
                "ip" => &mut subject.ip_addresses,
                "email" => &mut subject.emails,
                _ => &mut subject.uris,
            };
            to.push(value.to_owned());
        }
        Ok(subject)
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

fn csr(request: &str, signer: &str, usages: &[&str], user: &str) -> v1::CertificateSigningRequest {
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
    run_with(csr, None)
}

/// Reconciles `csr` with `node` (if any) in the cache.
fn run_with(csr: v1::CertificateSigningRequest, node: Option<v1::Node>) -> Vec<Action> {
    let cache = Cache::from_objects(
        std::iter::once(Object::CertificateSigningRequest(csr)).chain(node.map(Object::Node)),
    );
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
        "system:node:n1;system:nodes;ip:10.0.0.5",
        KUBELET_SERVING,
        &["digital signature", "server auth"],
        "system:node:n1",
    )));
    assert!(!status_of(&serving).certificate.is_empty());
}

const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

#[test]
fn kubelet_serving_requests_follow_the_signer_rules() {
    // (request, usages, None when signed, Some(words of the failure) otherwise)
    let ok = "system:node:n1;system:nodes;dns:n1,ip:10.0.0.5";
    for (request, usages, failure) in [
        (ok, SERVING_USAGES, None),
        (ok, &["digital signature", "server auth"][..], None),
        (
            "system:node:n1;system:nodes;ip:fd00::5",
            SERVING_USAGES,
            None,
        ),
        (
            "admin;system:nodes;ip:10.0.0.5",
            SERVING_USAGES,
            Some("system:node:<node name>"),
        ),
        (
            "system:node:;system:nodes;ip:10.0.0.5",
            SERVING_USAGES,
            Some("common name"),
        ),
        (
            "system:node:n1;system:nodes,system:masters;ip:10.0.0.5",
            SERVING_USAGES,
            Some("organization"),
        ),
        (
            "system:node:n1;;ip:10.0.0.5",
            SERVING_USAGES,
            Some("organization"),
        ),
        (
            ok,
            &["key encipherment", "server auth"][..],
            Some("requires the usage \"digital signature\""),
        ),
        (
            ok,
            &["digital signature", "key encipherment"][..],
            Some("requires the usage \"server auth\""),
        ),
        (
            ok,
            &["digital signature", "server auth", "client auth"][..],
            Some("\"client auth\" is not allowed"),
        ),
        (
            "system:node:n1;system:nodes;dns:n1,email:root@n1",
            SERVING_USAGES,
            Some("email address \"root@n1\""),
        ),
        (
            "system:node:n1;system:nodes;uri:spiffe://cluster/n1",
            SERVING_USAGES,
            Some("URI \"spiffe://cluster/n1\""),
        ),
        (
            "system:node:n1;system:nodes",
            SERVING_USAGES,
            Some("at least one DNS or IP"),
        ),
    ] {
        let status = status_of(&run(approved(csr(
            request,
            KUBELET_SERVING,
            usages,
            "admin",
        ))));
        let failed = status.conditions.iter().find(|c| c.r#type == "Failed");
        match failure {
            None => {
                assert!(failed.is_none(), "{request} {usages:?}: {failed:?}");
                assert!(!status.certificate.is_empty(), "{request} {usages:?}");
            }
            Some(why) => {
                let failed = failed.unwrap_or_else(|| panic!("{request} {usages:?} signed"));
                assert_eq!(failed.reason, "SignerValidationFailure");
                assert!(failed.message.contains(why), "{why}: {}", failed.message);
                assert!(status.certificate.is_empty());
            }
        }
    }
}

fn node(name: &str, addresses: &[&str]) -> v1::Node {
    v1::Node {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            ..Default::default()
        }),
        status: Some(v1::NodeStatus {
            addresses: addresses
                .iter()
                .map(|a| v1::NodeAddress {
                    r#type: "InternalIP".to_owned(),
                    address: (*a).to_owned(),
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_serving_request_by_the_node_for_its_own_addresses_is_auto_approved() {
    for request in [
        "system:node:n1;system:nodes;ip:10.0.0.5",
        "system:node:n1;system:nodes;dns:n1,dns:n1.example,ip:10.0.0.5",
        "system:node:n1;system:nodes;dns:n1",
    ] {
        let actions = run_with(
            csr(request, KUBELET_SERVING, SERVING_USAGES, "system:node:n1"),
            Some(node("n1", &["10.0.0.5", "n1.example"])),
        );
        let status = status_of(&actions);
        assert!(
            status.certificate.is_empty(),
            "approval and signing are two steps"
        );
        let approved = &status.conditions[0];
        assert_eq!(
            (approved.r#type.as_str(), approved.reason.as_str()),
            ("Approved", "AutoApproved"),
            "{request}"
        );
        assert!(approved.message.contains("serving"), "{}", approved.message);
    }
}

#[test]
fn serving_requests_by_others_or_for_other_names_wait_for_a_person() {
    let n1 = || Some(node("n1", &["10.0.0.5"]));
    let own = "system:node:n1;system:nodes;ip:10.0.0.5";
    for (request, user, node, why) in [
        (own, "admin", n1(), "filed by someone other than the node"),
        (own, "system:node:n2", n1(), "filed by another node"),
        (
            own,
            "system:bootstrap:abcdef",
            n1(),
            "filed with a bootstrap token",
        ),
        (
            "system:node:n1;system:nodes;ip:10.0.0.6",
            "system:node:n1",
            n1(),
            "an address the node does not have",
        ),
        (
            "system:node:n1;system:nodes;ip:10.0.0.5,dns:api.example",
            "system:node:n1",
            n1(),
            "one name the node does not have",
        ),
        (own, "system:node:n1", None, "no Node to check against"),
        (
            own,
            "system:node:n1",
            Some(node("n2", &["10.0.0.5"])),
            "another node has the address",
        ),
        (
            "system:node:n1;system:nodes;dns:n1,email:a@n1",
            "system:node:n1",
            n1(),
            "a name the signer refuses",
        ),
    ] {
        let actions = run_with(csr(request, KUBELET_SERVING, SERVING_USAGES, user), node);
        assert!(actions.is_empty(), "{why}: {actions:?}");
    }
    // The node's client signer does not approve serving requests as client ones either.
    assert!(run_with(
        csr(own, KUBELET_SERVING, KUBELET_USAGES, "system:node:n1"),
        n1()
    )
    .is_empty());
}

#[test]
fn a_node_learning_its_address_requeues_its_pending_serving_requests() {
    let pending = csr(
        "system:node:n1;system:nodes;ip:10.0.0.5",
        KUBELET_SERVING,
        SERVING_USAGES,
        "system:node:n1",
    );
    let mut other = pending.clone();
    other.metadata.as_mut().unwrap().name = "other".to_owned();
    other.spec.as_mut().unwrap().username = "system:node:n2".to_owned();
    let done = approved({
        let mut c = pending.clone();
        c.metadata.as_mut().unwrap().name = "done".to_owned();
        c
    });
    let cache = Cache::from_objects(
        [pending, other, done]
            .into_iter()
            .map(Object::CertificateSigningRequest),
    );
    assert_eq!(
        pending_serving_requests(&cache, "n1"),
        vec![ObjectKey::new(Kind::CertificateSigningRequest, "", "req")]
    );
}
