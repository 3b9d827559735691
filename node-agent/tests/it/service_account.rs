//! The projected ServiceAccount volume on containerd: a pod reads its token, the CA the
//! agent was given and its namespace at the standard path, and the token is the
//! ServiceAccount's, bound to the pod; `automountServiceAccountToken: false`, on the pod
//! or on its ServiceAccount, leaves the path empty; a pod whose `default` account comes
//! after it waits for it; an agent started again replaces the token of a running pod.
//! (The process backend mounts nothing, so these run on containerd only; the gateway's
//! own tests verify tokens.)

use base64::Engine;
use rafter_proto::v1::{ObjectMeta, ServiceAccount};
use rafter_proto::Object;

use crate::agent::{pod, sh, wait_log};
use crate::cluster::{Cluster, TestNode};

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nTEST-CA-FOR-PODS\n-----END CERTIFICATE-----";
const PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

async fn service_account(cluster: &Cluster, name: &str, automount: Option<bool>) {
    cluster
        .client
        .create(Object::ServiceAccount(ServiceAccount {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            automount_service_account_token: automount,
            ..Default::default()
        }))
        .await
        .unwrap();
}

/// The claims of JWT `token` (not verified: the gateway's tests verify tokens).
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts `token` is a token of `default/default` bound to `pod`.
fn assert_bound_to(token: &str, pod: &rafter_proto::v1::Pod) {
    let claims = claims(token);
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    let meta = pod.metadata.as_ref().unwrap();
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], meta.name.as_str());
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], meta.uid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reads_its_token_ca_and_namespace_unless_it_or_its_account_opts_out() {
    let Some(rt) = crate::harness::containerd().await else {
        return;
    };
    let cluster = Cluster::start().await;
    service_account(&cluster, "quiet", Some(false)).await;
    let node = TestNode::start_with(&cluster, rt, |c| {
        c.service_account_ca = Some(TEST_CA.to_owned())
    })
    .await;

    let script = format!(
        "echo ns=$(cat {PATH}/namespace); echo token=$(cat {PATH}/token); \
         grep -c TEST-CA-FOR-PODS {PATH}/ca.crt | sed 's/^/ca=/'; \
         touch {PATH}/x 2>/dev/null || echo read-only; exec sleep 300"
    );
    let reader = cluster
        .create_pod(pod("reader", &node.name, vec![sh("app", &script)]))
        .await;
    let mut opted_out = pod(
        "opted-out",
        &node.name,
        vec![sh(
            "app",
            &format!("ls {PATH} 2>&1 || echo no-token-mount; exec sleep 300"),
        )],
    );
    opted_out
        .spec
        .as_mut()
        .unwrap()
        .automount_service_account_token = Some(false);
    let opted_out = cluster.create_pod(opted_out).await;
    let mut quiet = pod(
        "quiet",
        &node.name,
        vec![sh(
            "app",
            &format!("ls {PATH} 2>&1 || echo no-token-mount; exec sleep 300"),
        )],
    );
    quiet.spec.as_mut().unwrap().service_account_name = "quiet".into();
    let quiet = cluster.create_pod(quiet).await;
    // The `default` account comes after its pod (as from the controller in a namespace
    // made a moment ago): the pod waits for it, then starts with its token.
    service_account(&cluster, "default", None).await;

    let lines = wait_log(&node, &reader, "app", "read-only").await;
    let field = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {key}= in {lines:?}"))
    };
    assert_eq!(field("ns"), "default");
    assert_eq!(field("ca"), "1");
    let token = field("token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert_bound_to(&token, &reader);

    // On the host the token is a file of the pod's volume; an agent started again
    // replaces it at once (it cannot know when the old one expires), in place.
    let file = node
        .data
        .path()
        .join("pods")
        .join(crate::agent::uid(&reader))
        .join("volumes/kube-api-access/token");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), token);
    let mut node = node;
    node.restart().await;
    let replaced = crate::harness::eventually("the token to be replaced after a restart", || {
        let file = file.clone();
        let token = token.clone();
        async move {
            let now = tokio::fs::read_to_string(&file).await.ok()?;
            (now != token && now.split('.').count() == 3).then_some(now)
        }
    })
    .await;
    assert_bound_to(&replaced, &reader);

    for p in [&opted_out, &quiet] {
        let lines = wait_log(&node, p, "app", "no-token-mount").await;
        assert!(
            lines
                .iter()
                .any(|l| l.contains("No such file or directory")),
            "{lines:?}"
        );
    }
}
