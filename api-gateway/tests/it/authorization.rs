//! Authorization through real gRPC and TLS: RBAC bindings granting and taking away, a node
//! certificate kept to its own objects (the Node authorizer), bootstrap tokens kept to
//! their requests, and refusals that say who was refused what.

use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Object};
use tonic::Code;

use crate::support::{start, until_allowed, Client, Gateway, ADMIN_TOKEN, JANE_TOKEN};

fn typed(yaml: &str) -> TypedObject {
    TypedObject::from(parse_object(yaml, "test").unwrap())
}

fn key(kind: &str, namespace: &str, name: &str) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

async fn create(client: &mut Client, yaml: &str) -> Result<Object, tonic::Status> {
    client
        .create(api::CreateRequest {
            object: Some(typed(yaml)),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .map(|r| Object::try_from(r.into_inner()).unwrap())
}

async fn get(client: &mut Client, kind: &str, ns: &str, name: &str) -> Result<(), tonic::Status> {
    client
        .get(api::GetRequest {
            key: key(kind, ns, name),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn list(
    client: &mut Client,
    kind: &str,
    ns: &str,
    fields: &str,
) -> Result<(), tonic::Status> {
    client
        .list(api::ListRequest {
            kind: kind.into(),
            namespace: ns.into(),
            field_selector: fields.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn delete(
    client: &mut Client,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<(), tonic::Status> {
    client
        .delete(api::DeleteRequest {
            key: key(kind, ns, name),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) -> String {
    match result {
        Err(status) if status.code() == Code::PermissionDenied => status.message().to_owned(),
        other => panic!("{what}: expected PermissionDenied, got {other:?}"),
    }
}

/// The admin creates `prod` and `shop` with a pod on node n1 that uses two Secrets, one
/// other Secret, and a pod on node n2.
async fn seed(gw: &Gateway) -> Client {
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    for ns in ["prod", "shop", "kube-node-lease"] {
        create(
            &mut admin,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
        )
        .await
        .unwrap();
    }
    for (name, ns) in [
        ("db", "prod"),
        ("web-tls", "shop"),
        ("db-password", "shop"),
        ("unrelated", "shop"),
    ] {
        create(
            &mut admin,
            &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData: {{k: v}}\n"),
        )
        .await
        .unwrap();
    }
    create(
        &mut admin,
        "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  nodeName: n1
  volumes: [{name: tls, secret: {secretName: web-tls}}]
  containers:
  - name: c
    image: busybox
    env: [{name: P, valueFrom: {secretKeyRef: {name: db-password, key: k}}}]
",
    )
    .await
    .unwrap();
    create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: shop}\nspec: {nodeName: n2, containers: [{name: c, image: busybox}]}\n",
    )
    .await
    .unwrap();
    admin
}

#[tokio::test]
async fn a_user_without_bindings_is_refused_with_who_and_what() {
    let gw = start().await;
    seed(&gw).await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let why = refused(
        list(&mut jane, "secrets", "prod", "").await,
        "jane lists secrets",
    );
    assert_eq!(
        why,
        r#"User "jane" cannot list resource "secrets" in API group "" in the namespace "prod""#
    );
    refused(
        get(&mut jane, "pods", "shop", "web").await,
        "jane reads a pod",
    );
    refused(
        delete(&mut jane, "pods", "shop", "web").await,
        "jane deletes a pod",
    );
    refused(
        create(
            &mut jane,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n",
        )
        .await,
        "jane creates a config map",
    );
    let mut cluster = gw.cluster_client(Some(JANE_TOKEN)).await;
    let status = cluster
        .remove_member(api::RemoveMemberRequest { id: 2 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_role_binding_grants_one_namespace_until_it_is_deleted() {
    let gw = start().await;
    let mut admin = seed(&gw).await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    gw.grant("view", "jane", "shop").await;
    until_allowed(|| {
        let mut jane = jane.clone();
        async move { get(&mut jane, "pods", "shop", "web").await }
    })
    .await
    .unwrap();
    list(&mut jane, "pods", "shop", "").await.unwrap();
    refused(
        list(&mut jane, "secrets", "shop", "").await,
        "view reads no secrets",
    );
    refused(
        list(&mut jane, "pods", "prod", "").await,
        "view in shop only",
    );
    refused(
        delete(&mut jane, "pods", "shop", "web").await,
        "view deletes nothing",
    );
    delete(&mut admin, "rolebindings", "shop", "jane-view")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&mut jane, "pods", "shop", "web").await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grant outlived its binding"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    refused(
        get(&mut jane, "pods", "shop", "web").await,
        "after the binding is gone",
    );
}

#[tokio::test]
async fn a_node_certificate_reaches_only_its_own_objects() {
    let gw = start().await;
    seed(&gw).await;
    let mut node = gw.client_as("system:node:n1", &["system:nodes"]).await;
    // Allowed: its pods (once the gateway's cache has seen them) and what they reference.
    until_allowed(|| {
        let mut node = node.clone();
        async move { get(&mut node, "secrets", "shop", "web-tls").await }
    })
    .await
    .unwrap();
    get(&mut node, "secrets", "shop", "db-password")
        .await
        .unwrap();
    get(&mut node, "pods", "shop", "web").await.unwrap();
    list(&mut node, "pods", "", "spec.nodeName=n1")
        .await
        .unwrap();
    create(
        &mut node,
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n",
    )
    .await
    .unwrap();
    create(
        &mut node,
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n1, namespace: kube-node-lease}\nspec: {holderIdentity: n1}\n",
    )
    .await
    .unwrap();
    // Refused: other nodes' objects, unreferenced Secrets, cluster-wide lists, other writes.
    let refusals = [
        ("get unrelated secret", get(&mut node, "secrets", "shop", "unrelated").await),
        ("get secret in prod", get(&mut node, "secrets", "prod", "db").await),
        ("list secrets", list(&mut node, "secrets", "", "").await),
        ("list secrets in shop", list(&mut node, "secrets", "shop", "").await),
        ("get n2's pod", get(&mut node, "pods", "shop", "other").await),
        ("list all pods", list(&mut node, "pods", "", "").await),
        ("list n2's pods", list(&mut node, "pods", "", "spec.nodeName=n2").await),
        ("delete n2's pod", delete(&mut node, "pods", "shop", "other").await),
        ("delete a node", delete(&mut node, "nodes", "", "n2").await),
        ("create a role", create(&mut node, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: shop}\n").await.map(|_| ())),
        ("create in kube-system", create(&mut node, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: kube-system}\n").await.map(|_| ())),
        ("create another node", create(&mut node, "apiVersion: v1\nkind: Node\nmetadata: {name: n9}\n").await.map(|_| ())),
        ("create a deployment", create(&mut node, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: busybox}]}}}\n").await.map(|_| ())),
    ];
    for (what, result) in refusals {
        let why = refused(result, what);
        assert!(why.contains("n1"), "{what}: {why}");
    }
}

#[tokio::test]
async fn a_bootstrap_token_may_not_approve_or_read_beyond_its_requests() {
    let gw = start().await;
    seed(&gw).await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    let token = rafter_client::BootstrapToken::generate();
    let secret = Object::Secret(token.to_secret(None, &[]));
    admin
        .create(api::CreateRequest {
            object: Some(secret.into()),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    let mut bootstrapper = gw
        .client(Some(&format!("{}.{}", token.id, token.secret)))
        .await;
    let why = refused(
        until_allowed(|| {
            let mut b = bootstrapper.clone();
            async move { list(&mut b, "secrets", "shop", "").await }
        })
        .await,
        "a bootstrap token lists secrets",
    );
    assert!(
        why.contains(&format!("system:bootstrap:{}", token.id)),
        "{why}"
    );
    let approval = bootstrapper
        .approve_certificate(api::CertificateApprovalRequest {
            name: "anything".into(),
            approve: true,
            ..Default::default()
        })
        .await;
    refused(approval, "a bootstrap token approves a request");
    refused(
        get(&mut bootstrapper, "pods", "shop", "web").await,
        "a bootstrap token reads pods",
    );
}

async fn can_i(
    client: &mut Client,
    verb: &str,
    kind: &str,
    namespace: &str,
    user: &str,
) -> Result<api::AccessReviewResponse, tonic::Status> {
    client
        .review_access(api::AccessReviewRequest {
            verb: verb.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            user: user.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn can_i_is_answered_by_the_server_for_oneself_and_by_admins_for_others() {
    let gw = start().await;
    seed(&gw).await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let no = can_i(&mut jane, "list", "pods", "shop", "").await.unwrap();
    assert!(!no.allowed);
    assert_eq!(no.user, "jane");
    assert!(
        no.reason
            .contains(r#"User "jane" cannot list resource "pods""#),
        "{}",
        no.reason
    );
    gw.grant("view", "jane", "shop").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !can_i(&mut jane, "list", "pods", "shop", "")
        .await
        .unwrap()
        .allowed
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grant never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !can_i(&mut jane, "delete", "pods", "shop", "")
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !can_i(&mut jane, "list", "pods", "prod", "")
            .await
            .unwrap()
            .allowed
    );
    // An admin may ask about jane; jane may not ask about the admin.
    let about_jane = can_i(&mut admin, "get", "deploy", "shop", "jane")
        .await
        .unwrap();
    assert!(about_jane.allowed && about_jane.user == "jane");
    assert!(
        !can_i(&mut admin, "get", "secrets", "shop", "jane")
            .await
            .unwrap()
            .allowed
    );
    refused(
        can_i(&mut jane, "get", "secrets", "shop", "admin").await,
        "jane asks about someone else",
    );
    let bad = can_i(&mut jane, "get", "gizmos", "shop", "")
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}
