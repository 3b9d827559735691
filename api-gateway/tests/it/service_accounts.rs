//! ServiceAccounts through real gRPC and TLS: tokens issued by serviceaccounts/token and
//! accepted as `system:serviceaccount:<ns>:<name>` while their account (and bound pod)
//! live; tokens of another key, audience or past their expiry refused; a node asking only
//! for its pods' accounts; impersonation allowed and refused; the caller's rules listed.

use std::sync::Arc;

use api_gateway::{generate_signing_key, unix_now, BoundRef, ServeOptions, TokenGrant, TokenKeys};
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Object};
use tonic::{Code, Request};

use crate::support::{start_with, until_allowed, Client, Gateway, ADMIN_TOKEN, JANE_TOKEN};

fn typed(yaml: &str) -> TypedObject {
    TypedObject::from(parse_object(yaml, "test").unwrap())
}

async fn create(client: &mut Client, yaml: &str) -> Object {
    let created = client
        .create(api::CreateRequest {
            object: Some(typed(yaml)),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    Object::try_from(created.into_inner()).unwrap()
}

async fn list(client: &mut Client, kind: &str, ns: &str) -> Result<usize, tonic::Status> {
    client
        .list(api::ListRequest {
            kind: kind.into(),
            namespace: ns.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().items.len())
}

async fn delete(client: &mut Client, kind: &str, ns: &str, name: &str) {
    client
        .delete(api::DeleteRequest {
            key: Some(ObjectKey {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
            }),
            grace_period_seconds: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn token_request(ns: &str, sa: &str) -> api::TokenRequest {
    api::TokenRequest {
        namespace: ns.into(),
        service_account: sa.into(),
        ..Default::default()
    }
}

async fn token(client: &mut Client, request: api::TokenRequest) -> Result<String, tonic::Status> {
    client
        .create_token(request)
        .await
        .map(|r| r.into_inner().token)
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code) -> String {
    match result {
        Err(status) if status.code() == code => status.message().to_owned(),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// A gateway with a signing key, namespace `team-a` holding ServiceAccount `builder`
/// bound by RoleBinding `builder-view` to ClusterRole `view`, and the keys.
async fn seed() -> (Gateway, Arc<TokenKeys>, Client) {
    let keys = Arc::new(TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap());
    let gw = start_with(ServeOptions {
        service_account_keys: Some(keys.clone()),
        ..ServeOptions::default()
    })
    .await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    create(
        &mut admin,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n",
    )
    .await;
    create(
        &mut admin,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: team-a}\n",
    )
    .await;
    create(
        &mut admin,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: builder-view, namespace: team-a}\nsubjects: [{kind: ServiceAccount, name: builder}]\nroleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}\n",
    )
    .await;
    (gw, keys, admin)
}

#[tokio::test]
async fn a_service_account_token_is_the_account_allowed_what_its_binding_grants() {
    let (gw, _keys, mut admin) = seed().await;
    let issued = admin
        .create_token(api::TokenRequest {
            expiration_seconds: 1200,
            ..token_request("team-a", "builder")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!issued.expiration_timestamp.is_empty());
    let mut sa = gw.client(Some(&issued.token)).await;
    assert_eq!(
        until_allowed(|| {
            let mut c = sa.clone();
            async move { list(&mut c, "Pod", "team-a").await }
        })
        .await
        .unwrap(),
        0
    );
    let why = refused(
        list(&mut sa, "Secret", "team-a").await,
        Code::PermissionDenied,
    );
    assert!(
        why.contains(
            r#"User "system:serviceaccount:team-a:builder" cannot list resource "secrets""#
        ),
        "{why}"
    );
    let why = refused(
        list(&mut sa, "Pod", "default").await,
        Code::PermissionDenied,
    );
    assert!(why.contains(r#"in the namespace "default""#), "{why}");
    // The server sees it as the account, in the account groups.
    let review = sa
        .review_access(api::AccessReviewRequest {
            verb: "list".into(),
            kind: "pods".into(),
            namespace: "team-a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(review.allowed);
    assert_eq!(review.user, "system:serviceaccount:team-a:builder");
}

#[tokio::test]
async fn a_token_outlives_neither_its_account_nor_its_bound_pod() {
    let (gw, _keys, mut admin) = seed().await;
    create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-a}\nspec: {serviceAccountName: builder, containers: [{name: c, image: busybox}]}\n",
    )
    .await;
    let unbound = token(&mut admin, token_request("team-a", "builder"))
        .await
        .unwrap();
    let bound = token(
        &mut admin,
        api::TokenRequest {
            bound_pod_name: "web".into(),
            ..token_request("team-a", "builder")
        },
    )
    .await
    .unwrap();
    let mut by_pod = gw.client(Some(&bound)).await;
    until_allowed(|| {
        let mut c = by_pod.clone();
        async move { list(&mut c, "Pod", "team-a").await }
    })
    .await
    .unwrap();

    delete(&mut admin, "Pod", "team-a", "web").await;
    let why = refused(
        list(&mut by_pod, "Pod", "team-a").await,
        Code::Unauthenticated,
    );
    assert!(why.contains("pod team-a/web"), "{why}");
    let mut unbound_client = gw.client(Some(&unbound)).await;
    list(&mut unbound_client, "Pod", "team-a").await.unwrap();

    // Deleted, then made again under the same name: a new uid, the old token is refused.
    delete(&mut admin, "ServiceAccount", "team-a", "builder").await;
    let why = refused(
        list(&mut unbound_client, "Pod", "team-a").await,
        Code::Unauthenticated,
    );
    assert!(why.contains("serviceaccount team-a/builder"), "{why}");
    create(
        &mut admin,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: team-a}\n",
    )
    .await;
    refused(
        list(&mut unbound_client, "Pod", "team-a").await,
        Code::Unauthenticated,
    );
    let fresh = token(&mut admin, token_request("team-a", "builder"))
        .await
        .unwrap();
    let mut fresh_client = gw.client(Some(&fresh)).await;
    list(&mut fresh_client, "Pod", "team-a").await.unwrap();

    // A token for a missing account, or bound to a pod of another account, is not issued.
    let why = refused(
        token(&mut admin, token_request("team-a", "ghost")).await,
        Code::NotFound,
    );
    assert!(
        why.contains("serviceaccount team-a/ghost not found"),
        "{why}"
    );
}

#[tokio::test]
async fn tokens_of_another_key_another_audience_or_past_their_expiry_are_refused() {
    let (gw, keys, mut admin) = seed().await;
    let sa = match admin
        .get(api::GetRequest {
            key: Some(ObjectKey {
                kind: "ServiceAccount".into(),
                namespace: "team-a".into(),
                name: "builder".into(),
            }),
            ..Default::default()
        })
        .await
    {
        Ok(r) => Object::try_from(r.into_inner()).unwrap(),
        Err(e) => panic!("{e}"),
    };
    let grant = TokenGrant {
        namespace: "team-a".into(),
        service_account: BoundRef {
            name: "builder".into(),
            uid: sa.metadata().uid.clone(),
        },
        ..TokenGrant::default()
    };
    // The same claims signed by our key pass (the control).
    let (good, _) = keys.issue(&grant, unix_now()).unwrap();
    let client = gw.client(Some(&good)).await;
    until_allowed(|| {
        let mut c = client.clone();
        async move { list(&mut c, "Pod", "team-a").await }
    })
    .await
    .unwrap();

    let stranger = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
    let (forged, _) = stranger.issue(&grant, unix_now()).unwrap();
    let (expired, _) = keys.issue(&grant, unix_now() - 7200).unwrap();
    let (vault, _) = keys
        .issue(
            &TokenGrant {
                audiences: vec!["vault".into()],
                ..grant.clone()
            },
            unix_now(),
        )
        .unwrap();
    for (token, why) in [
        (forged, "not valid"),
        (expired, "expired"),
        (vault, "other audiences"),
    ] {
        let mut client = gw.client(Some(&token)).await;
        let message = refused(
            list(&mut client, "Pod", "team-a").await,
            Code::Unauthenticated,
        );
        assert!(message.contains(why), "{why}: {message}");
    }
    // Asked through the API, a token for another audience says so in its claims.
    let other = token(
        &mut admin,
        api::TokenRequest {
            audiences: vec!["vault".into()],
            ..token_request("team-a", "builder")
        },
    )
    .await
    .unwrap();
    let mut client = gw.client(Some(&other)).await;
    refused(
        list(&mut client, "Pod", "team-a").await,
        Code::Unauthenticated,
    );
    // Too short a lifetime is refused naming the field.
    let why = refused(
        token(
            &mut admin,
            api::TokenRequest {
                expiration_seconds: 60,
                ..token_request("team-a", "builder")
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert!(why.contains("expirationSeconds"), "{why}");
}

#[tokio::test]
async fn only_those_granted_create_on_serviceaccounts_token_get_tokens() {
    let (gw, _keys, mut admin) = seed().await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let why = refused(
        token(&mut jane, token_request("team-a", "builder")).await,
        Code::PermissionDenied,
    );
    assert!(
        why.contains(r#"User "jane" cannot create resource "serviceaccounts/token""#),
        "{why}"
    );
    // A node: only for the account of a pod bound to it, and bound to that pod.
    create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-a}\nspec: {serviceAccountName: builder, nodeName: w1, containers: [{name: c, image: busybox}]}\n",
    )
    .await;
    let mut w1 = gw.client_as("system:node:w1", &["system:nodes"]).await;
    let mut w2 = gw.client_as("system:node:w2", &["system:nodes"]).await;
    let for_pod = api::TokenRequest {
        bound_pod_name: "web".into(),
        ..token_request("team-a", "builder")
    };
    let granted = until_allowed(|| {
        let (mut c, r) = (w1.clone(), for_pod.clone());
        async move { token(&mut c, r).await }
    })
    .await
    .unwrap();
    let mut pod = gw.client(Some(&granted)).await;
    list(&mut pod, "Pod", "team-a").await.unwrap();
    let why = refused(
        token(&mut w1, token_request("team-a", "builder")).await,
        Code::PermissionDenied,
    );
    assert!(why.contains("bound to one of its pods"), "{why}");
    let why = refused(token(&mut w2, for_pod).await, Code::PermissionDenied);
    assert!(why.contains(r#"node "w2""#), "{why}");
    refused(
        token(&mut w1, token_request("team-a", "default")).await,
        Code::PermissionDenied,
    );
}

fn impersonating<T>(message: T, user: &str, groups: &[&str]) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("impersonate-user", user.parse().unwrap());
    for group in groups {
        request
            .metadata_mut()
            .append("impersonate-group", group.parse().unwrap());
    }
    request
}

fn list_request(kind: &str, ns: &str) -> api::ListRequest {
    api::ListRequest {
        kind: kind.into(),
        namespace: ns.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn impersonation_acts_as_the_user_only_when_the_caller_may_impersonate() {
    let (gw, _keys, mut admin) = seed().await;
    // The admin acts as the service account: allowed pods, refused secrets, as the account.
    let as_sa = "system:serviceaccount:team-a:builder";
    let pods = until_allowed(|| {
        let mut c = admin.clone();
        async move {
            c.list(impersonating(list_request("Pod", "team-a"), as_sa, &[]))
                .await
        }
    })
    .await;
    assert!(pods.is_ok(), "{pods:?}");
    let why = refused(
        admin
            .list(impersonating(list_request("Secret", "team-a"), as_sa, &[]))
            .await,
        Code::PermissionDenied,
    );
    assert!(
        why.contains(&format!("User {as_sa:?} cannot list")),
        "{why}"
    );

    // Jane may not impersonate anyone: refused naming jane, before anything else.
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let why = refused(
        jane.list(impersonating(
            list_request("Pod", "team-a"),
            "admin",
            &["system:masters"],
        ))
        .await,
        Code::PermissionDenied,
    );
    assert!(
        why.contains(r#"User "jane" cannot impersonate resource "users""#),
        "{why}"
    );
    // Granted impersonation of user bob only, jane acts as bob but not in system:masters.
    create(
        &mut admin,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: impersonate-bob}\nrules: [{apiGroups: [''], resources: [users], verbs: [impersonate], resourceNames: [bob]}]\n",
    )
    .await;
    create(
        &mut admin,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: jane-impersonates-bob}\nsubjects: [{kind: User, name: jane}]\nroleRef: {kind: ClusterRole, name: impersonate-bob, apiGroup: rbac.authorization.k8s.io}\n",
    )
    .await;
    gw.grant("view", "bob", "team-a").await;
    let as_bob = until_allowed(|| {
        let mut c = jane.clone();
        async move {
            c.list(impersonating(list_request("Pod", "team-a"), "bob", &[]))
                .await
        }
    })
    .await;
    assert!(as_bob.is_ok(), "{as_bob:?}");
    let why = refused(
        jane.list(impersonating(
            list_request("Pod", "team-a"),
            "bob",
            &["system:masters"],
        ))
        .await,
        Code::PermissionDenied,
    );
    assert!(
        why.contains(r#"User "jane" cannot impersonate resource "groups""#),
        "{why}"
    );
    let review = jane
        .review_access(impersonating(
            api::AccessReviewRequest {
                verb: "list".into(),
                kind: "secrets".into(),
                namespace: "team-a".into(),
                ..Default::default()
            },
            "bob",
            &[],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.user, "bob");
    assert!(!review.allowed);
}

#[tokio::test]
async fn the_rules_review_lists_what_the_caller_may_do_in_a_namespace() {
    let (gw, _keys, mut admin) = seed().await;
    create(
        &mut admin,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: pod-reader, namespace: team-a}\nrules: [{apiGroups: [''], resources: [pods], verbs: [get, list], resourceNames: [web]}]\n",
    )
    .await;
    create(
        &mut admin,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: read-pods, namespace: team-a}\nsubjects: [{kind: User, name: jane}]\nroleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}\n",
    )
    .await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let review = |ns: &str| api::RulesReviewRequest {
        namespace: ns.into(),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let rules = loop {
        let rules = jane
            .review_rules(review("team-a"))
            .await
            .unwrap()
            .into_inner();
        if rules
            .resource_rules
            .iter()
            .any(|r| r.resource_names == ["web"])
            || tokio::time::Instant::now() > deadline
        {
            break rules;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(rules.user, "jane");
    assert!(!rules.incomplete);
    let pods = rules
        .resource_rules
        .iter()
        .find(|r| r.resources == ["pods"])
        .unwrap_or_else(|| panic!("{rules:?}"));
    assert_eq!(pods.verbs, ["get", "list"]);
    assert_eq!(pods.resource_names, ["web"]);
    // The default policy's discovery rules reach every authenticated user.
    assert!(
        !rules.non_resource_rules.is_empty(),
        "{:?}",
        rules.non_resource_rules
    );
    // Elsewhere jane has no resource rules from pod-reader.
    let elsewhere = jane
        .review_rules(review("default"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !elsewhere
            .resource_rules
            .iter()
            .any(|r| r.resources == ["pods"]),
        "{elsewhere:?}"
    );
    // An administrator has everything; a node's rules cannot be listed in full.
    let all = admin
        .review_rules(review("team-a"))
        .await
        .unwrap()
        .into_inner();
    assert!(all
        .resource_rules
        .iter()
        .any(|r| r.verbs == ["*"] && r.resources == ["*"]));
    let mut node = gw.client_as("system:node:w1", &["system:nodes"]).await;
    let partial = node
        .review_rules(review("team-a"))
        .await
        .unwrap()
        .into_inner();
    assert!(partial.incomplete && partial.evaluation_error.contains("Node authorizer"));
}

#[tokio::test]
async fn a_pod_runs_as_default_unless_it_names_an_account_that_exists() {
    let (_gw, _keys, mut admin) = seed().await;
    let created = create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain, namespace: team-a}\nspec: {containers: [{name: c, image: busybox}]}\n",
    )
    .await;
    let Object::Pod(pod) = created else {
        panic!("{created:?}")
    };
    assert_eq!(pod.spec.unwrap().service_account_name, "default");
    let refused = admin
        .create(api::CreateRequest {
            object: Some(typed(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: ghostly, namespace: team-a}\nspec: {serviceAccountName: ghost, containers: [{name: c, image: busybox}]}\n",
            )),
            dry_run: false, field_manager: Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .contains(r#"serviceaccount "ghost" not found"#)
            && refused.message().contains("spec.serviceAccountName"),
        "{}",
        refused.message()
    );
    // An account that exists is taken as named.
    create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: built, namespace: team-a}\nspec: {serviceAccountName: builder, containers: [{name: c, image: busybox}]}\n",
    )
    .await;
}
