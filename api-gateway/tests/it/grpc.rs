//! Each test drives the API as a client would and asserts the Kubernetes rule or status
//! code that must hold.

use std::time::Duration;

use futures::StreamExt;
use rafter_client::BootstrapToken;
use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Object};
use tonic::transport::Identity;
use tonic::Code;

use crate::support::{start, until_allowed, ADMIN_TOKEN, JANE_TOKEN};

fn typed(yaml: &str) -> TypedObject {
    TypedObject::from(parse_object(yaml, "test").unwrap())
}

fn pod_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: web}}\nspec:\n  containers:\n  - name: web\n    image: nginx:1\n")
}

fn key(kind: &str, namespace: &str, name: &str) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

fn object(typed: TypedObject) -> Object {
    Object::try_from(typed).unwrap()
}

#[tokio::test]
async fn calls_without_valid_credentials_are_refused() {
    let gw = start().await;
    let get = api::GetRequest {
        key: key("Pod", "default", "x"),
        consistency: 0,
    };
    let status = gw.client(None).await.get(get.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{}", status.message());
    let status = gw
        .client(Some("wrong"))
        .await
        .get(get.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = gw
        .client(Some(ADMIN_TOKEN))
        .await
        .get(get)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn a_client_certificate_from_the_cluster_ca_authenticates_and_a_foreign_one_cannot_connect() {
    let gw = start().await;
    let issued = gw
        .ca
        .issue(&CertRequest {
            common_name: "system:node:w1".into(),
            organizations: vec!["system:nodes".into()],
            subject_alt_names: vec![],
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let channel = gw
        .channel(Some(Identity::from_pem(issued.cert_pem, issued.key_pem)))
        .await
        .unwrap();
    let mut client = ResourcesClient::new(channel);
    let status = client
        .get(api::GetRequest {
            key: key("Node", "", "w1"),
            consistency: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "an authenticated caller gets past authentication: {status}"
    );

    let foreign = ClusterCa::generate("elsewhere").unwrap();
    let stranger = foreign
        .issue(&CertRequest {
            common_name: "admin".into(),
            organizations: vec!["system:masters".into()],
            subject_alt_names: vec![],
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let refused = match gw
        .channel(Some(Identity::from_pem(
            stranger.cert_pem,
            stranger.key_pem,
        )))
        .await
    {
        Err(_) => true,
        Ok(channel) => ResourcesClient::new(channel)
            .get(api::GetRequest {
                key: key("Node", "", "w1"),
                consistency: 0,
            })
            .await
            .is_err_and(|s| s.code() != Code::NotFound),
    };
    assert!(refused, "a certificate from a foreign CA was accepted");
}

#[tokio::test]
async fn create_get_update_conflict_and_delete_follow_kubernetes() {
    let gw = start().await;
    let mut client = gw.client(Some(ADMIN_TOKEN)).await;
    let created = object(
        client
            .create(api::CreateRequest {
                object: Some(typed(&pod_yaml("a"))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(!created.metadata().uid.is_empty());
    let again = client
        .create(api::CreateRequest {
            object: Some(typed(&pod_yaml("a"))),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);

    let mut newer = created.clone();
    newer
        .metadata_mut()
        .labels
        .insert("tier".into(), "front".into());
    let updated = client
        .update(api::UpdateRequest {
            object: Some(TypedObject::from(newer)),
            subresource: String::new(),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(object(updated).metadata().labels["tier"], "front");
    let stale = client
        .update(api::UpdateRequest {
            object: Some(TypedObject::from(created)),
            subresource: String::new(),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale}");

    let deleted = client
        .delete(api::DeleteRequest {
            key: key("Pod", "default", "a"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let gone = client
        .get(api::GetRequest {
            key: key("Pod", "default", "a"),
            consistency: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_requests_get_the_right_codes_and_change_nothing() {
    let gw = start().await;
    let mut client = gw.client(Some(ADMIN_TOKEN)).await;
    let invalid = typed(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: c}]\n",
    );
    let status = client
        .create(api::CreateRequest {
            object: Some(invalid),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("metadata.name")
            && status.message().contains("spec.containers[0].image"),
        "{}",
        status.message()
    );

    let status = client
        .get(api::GetRequest {
            key: key("Gadget", "", "x"),
            consistency: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .create(api::CreateRequest {
            object: None,
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A pod whose arguments pass validation but whose encoding is over the object limit.
    let big = "x".repeat(2 * 1024 * 1024);
    let pod = typed(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: big}}\nspec:\n  containers:\n  - {{name: c, image: i, args: [{big}]}}\n"));
    let status = client
        .create(api::CreateRequest {
            object: Some(pod),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );
    let list = client
        .list(api::ListRequest {
            kind: "Pod".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.items.is_empty(),
        "a refused request left something behind"
    );

    let status = client
        .list(api::ListRequest {
            kind: "Pod".into(),
            label_selector: "app in (".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .list(api::ListRequest {
            kind: "Pod".into(),
            field_selector: "spec.color=red".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("spec.nodeName"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn lists_page_and_filter() {
    let gw = start().await;
    let mut client = gw.client(Some(JANE_TOKEN)).await;
    gw.grant("edit", "jane", "default").await;
    until_allowed(|| {
        let mut client = client.clone();
        async move {
            client
                .list(api::ListRequest {
                    kind: "pods".into(),
                    namespace: "default".into(),
                    ..Default::default()
                })
                .await
        }
    })
    .await
    .unwrap();
    for i in 0..5 {
        client
            .create(api::CreateRequest {
                object: Some(typed(&pod_yaml(&format!("p{i}")))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list(api::ListRequest {
                kind: "pods".into(),
                namespace: "default".into(),
                limit: 2,
                r#continue: token,
                label_selector: "app=web".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 2);
        names.extend(
            page.items
                .into_iter()
                .map(|o| object(o).metadata().name.clone()),
        );
        if page.r#continue.is_empty() {
            break;
        }
        token = page.r#continue;
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
}

#[tokio::test]
async fn a_watch_streams_changes_after_its_resource_version() {
    let gw = start().await;
    let mut client = gw.client(Some(ADMIN_TOKEN)).await;
    let first = object(
        client
            .create(api::CreateRequest {
                object: Some(typed(&pod_yaml("a"))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap()
            .into_inner(),
    );
    let mut watch = client
        .watch(api::WatchRequest {
            kind: "Pod".into(),
            namespace: "default".into(),
            resource_version: first.metadata().resource_version.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    client
        .create(api::CreateRequest {
            object: Some(typed(&pod_yaml("b"))),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    client
        .delete(api::DeleteRequest {
            key: key("Pod", "default", "a"),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push((
            event.r#type,
            object(event.object.unwrap()).metadata().name.clone(),
        ));
    }
    assert_eq!(
        seen,
        [
            (api::EventType::Added as i32, "b".to_owned()),
            (api::EventType::Deleted as i32, "a".to_owned())
        ]
    );
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let gw = start().await;
    let mut client = gw.client(Some(ADMIN_TOKEN)).await;
    client
        .create(api::CreateRequest {
            object: Some(typed(&pod_yaml("a"))),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    let binding = |node: &str| api::BindRequest {
        binding: Some(rafter_proto::v1::Binding {
            metadata: Some(rafter_proto::v1::ObjectMeta {
                name: "a".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            target: Some(rafter_proto::v1::ObjectReference {
                kind: "Node".into(),
                name: node.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let pod = client.bind(binding("n1")).await.unwrap().into_inner();
    assert_eq!(pod.spec.unwrap().node_name, "n1");
    assert!(pod
        .status
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.r#type == "PodScheduled" && c.status == "True"));
    let again = client.bind(binding("n2")).await.unwrap_err();
    assert_eq!(again.code(), Code::Aborted);
}

#[tokio::test]
async fn strategic_patch_changes_one_container_image() {
    let gw = start().await;
    let mut client = gw.client(Some(ADMIN_TOKEN)).await;
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, image: nginx:1}\n      - {name: side, image: busybox:1}\n";
    client
        .create(api::CreateRequest {
            object: Some(typed(deployment)),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    let patch =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}"#;
    let patched = object(
        client
            .patch(api::PatchRequest {
                key: key("Deployment", "default", "web"),
                r#type: api::PatchType::Strategic as i32,
                patch: patch.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner(),
    );
    let Object::Deployment(d) = patched else {
        panic!()
    };
    let containers = &d.spec.unwrap().template.unwrap().spec.unwrap().containers;
    assert_eq!(
        (containers[0].image.as_str(), containers[1].image.as_str()),
        ("nginx:2", "busybox:1")
    );
    assert_eq!(d.metadata.unwrap().generation, 2);

    let scale = client
        .update_scale(api::UpdateScaleRequest {
            key: key("Deployment", "default", "web"),
            replicas: 4,
            resource_version: String::new(),
            field_manager: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scale.replicas, 4);
    assert_eq!(scale.selector, "app=web");

    // Creating the workload left an Event about it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = client
            .list(api::ListRequest {
                kind: "Event".into(),
                namespace: "default".into(),
                field_selector: "involvedObject.name=web".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let reasons: Vec<String> = events
            .items
            .into_iter()
            .filter_map(|o| match object(o) {
                Object::Event(e) => Some(e.reason),
                _ => None,
            })
            .collect();
        if reasons.iter().any(|r| r == "Created") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Created event for the deployment: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_bootstrap_token_may_file_a_certificate_request_and_nothing_else() {
    let gw = start().await;
    let token = BootstrapToken::generate();
    gw.registry
        .create(
            Object::Secret(token.to_secret(Some("2099-01-01T00:00:00Z"), &[])),
            false,
        )
        .await
        .unwrap();
    let bearer = format!("{}.{}", token.id, token.secret);
    let mut client = gw.client(Some(&bearer)).await;
    let (csr_pem, _) =
        rafter_client::new_request("system:node:w1", &["system:nodes".to_owned()]).unwrap();
    use base64::Engine;
    let request = base64::engine::general_purpose::STANDARD.encode(csr_pem);
    let csr = typed(&format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: node-w1}}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client-kubelet\n  usages: [digital signature, key encipherment, client auth]\n"
    ));
    client
        .create(api::CreateRequest {
            object: Some(csr),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    let status = client
        .create(api::CreateRequest {
            object: Some(typed(&pod_yaml("a"))),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    let approved = admin
        .approve_certificate(api::CertificateApprovalRequest {
            name: "node-w1".into(),
            approve: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(approved
        .status
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.r#type == "Approved"));
    let deny = admin
        .approve_certificate(api::CertificateApprovalRequest {
            name: "node-w1".into(),
            approve: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(deny.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn cluster_status_answers_and_membership_needs_an_admin() {
    let gw = start().await;
    let status = gw
        .cluster_client(Some(JANE_TOKEN))
        .await
        .status(api::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.ready && status.leader_id == status.member_id);
    let refused = gw
        .cluster_client(Some(JANE_TOKEN))
        .await
        .remove_member(api::RemoveMemberRequest { id: 2 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // An admin's change the store cannot make is refused as such, not reported as an
    // outage that another master might not have.
    let impossible = gw
        .cluster_client(Some(ADMIN_TOKEN))
        .await
        .remove_member(api::RemoveMemberRequest { id: 2 })
        .await
        .unwrap_err();
    assert_eq!(impossible.code(), Code::FailedPrecondition);
}
