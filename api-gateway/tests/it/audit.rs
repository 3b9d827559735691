//! The audit log through real gRPC: every call, allowed, refused or failed, is one
//! `audit.k8s.io/v1` Event line with who, what and the response code, written before the
//! answer; Secret data never reaches it; a resource the policy sets to None is left out.

use std::sync::Arc;

use api_gateway::audit::{AuditLog, Auditor, Policy};
use api_gateway::ServeOptions;
use base64::Engine;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Object};
use serde_json::Value;
use tonic::Code;

use crate::support::{start_with, Client, Gateway, ADMIN_TOKEN, JANE_TOKEN};

const CANARY: &str = "canary-7f3a9c1e-never-in-the-audit-log";

/// Everything at level Request, but ConfigMaps not at all.
const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    resources: [{group: \"\", resources: [configmaps]}]
  - level: Request
";

fn typed(yaml: &str) -> TypedObject {
    TypedObject::from(parse_object(yaml, "test").unwrap())
}

async fn create(client: &mut Client, yaml: &str) -> Result<Object, tonic::Status> {
    let created = client
        .create(api::CreateRequest {
            object: Some(typed(yaml)),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await?;
    Ok(Object::try_from(created.into_inner()).unwrap())
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{containers: [{{name: c, image: busybox}}]}}\n")
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// (user, verb, resource, namespace, name, code) of a record; "" where absent.
fn summary(record: &Value) -> (String, String, String, String, String, u64) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let object = &record["objectRef"];
    (
        text(&record["user"]["username"]),
        text(&record["verb"]),
        text(&object["resource"]),
        text(&object["namespace"]),
        text(&object["name"]),
        record["responseStatus"]["code"].as_u64().unwrap(),
    )
}

async fn audited_gateway(dir: &tempfile::TempDir) -> (Gateway, std::path::PathBuf) {
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path, 64 * 1024 * 1024, 1).unwrap();
    let auditor = Auditor::new(log, Policy::parse(POLICY).unwrap());
    let gw = start_with(ServeOptions {
        audit: Some(Arc::new(auditor)),
        ..ServeOptions::default()
    })
    .await;
    (gw, path)
}

#[tokio::test]
async fn every_call_refused_or_not_is_one_record_with_who_what_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path) = audited_gateway(&dir).await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    let mut jane = gw.client(Some(JANE_TOKEN)).await;
    let mut anonymous = gw.client(None).await;

    create(
        &mut admin,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    )
    .await
    .unwrap();
    create(
        &mut admin,
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: shop}}\nstringData: {{password: {CANARY}}}\n"),
    )
    .await
    .unwrap();
    let mut web = create(&mut admin, &pod("web")).await.unwrap();
    web.metadata_mut()
        .labels
        .insert("tier".into(), "front".into());
    admin
        .update(api::UpdateRequest {
            object: Some(web.into()),
            subresource: String::new(),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    let key = |kind: &str, name: &str| {
        Some(ObjectKey {
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
        })
    };
    admin
        .patch(api::PatchRequest {
            key: key("Pod", "web"),
            r#type: api::PatchType::Merge as i32,
            patch: r#"{"metadata":{"labels":{"patched":"yes"}}}"#.into(),
            subresource: String::new(),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .unwrap();
    // Level None for ConfigMaps: no record.
    create(
        &mut admin,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n",
    )
    .await
    .unwrap();
    let refused = create(
        &mut jane,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: mine, namespace: shop}\nstringData: {k: v}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let unauthenticated = create(&mut anonymous, &pod("anon")).await.unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    admin
        .delete(api::DeleteRequest {
            key: key("Pod", "web"),
            grace_period_seconds: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let again = create(
        &mut admin,
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: shop}}\nstringData: {{password: {CANARY}}}\n"),
    )
    .await
    .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let invalid = create(
        &mut admin,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: empty, namespace: shop}\nspec: {containers: []}\n",
    )
    .await
    .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    // The Cluster service: a refused membership change.
    let member = gw
        .cluster_client(Some(JANE_TOKEN))
        .await
        .add_member(api::AddMemberRequest {
            id: 9,
            client_address: "127.0.0.1:1".into(),
            peer_address: "127.0.0.1:2".into(),
            promote: false,
        })
        .await
        .unwrap_err();
    assert_eq!(member.code(), Code::PermissionDenied);
    // Refused before it is decoded, hence before authentication: no user, no object.
    let unknown = admin
        .list(api::ListRequest {
            kind: "Gizmo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);

    // Every answer above came back after its record was synced: no waiting.
    let records = records(&path);
    let summaries: Vec<_> = records.iter().map(summary).collect();
    let expected = [
        ("admin", "create", "namespaces", "", "shop", 201),
        ("admin", "create", "secrets", "shop", "db", 201),
        ("admin", "create", "pods", "shop", "web", 201),
        ("admin", "update", "pods", "shop", "web", 200),
        ("admin", "patch", "pods", "shop", "web", 200),
        ("jane", "create", "secrets", "shop", "mine", 403),
        ("system:anonymous", "create", "pods", "shop", "anon", 401),
        ("admin", "delete", "pods", "shop", "web", 200),
        ("admin", "create", "secrets", "shop", "db", 409),
        ("admin", "create", "pods", "shop", "empty", 422),
        ("jane", "create", "", "", "", 403),
        ("", "list", "", "", "", 422),
    ]
    .map(|(u, v, r, ns, n, c)| {
        (
            u.to_owned(),
            v.to_owned(),
            r.to_owned(),
            ns.to_owned(),
            n.to_owned(),
            c,
        )
    });
    assert_eq!(summaries, expected, "{records:#?}");

    for record in &records {
        assert_eq!(record["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(record["kind"], "Event");
        assert_eq!(record["stage"], "ResponseComplete");
        assert_eq!(record["sourceIPs"][0], "127.0.0.1");
        assert!(!record["auditID"].as_str().unwrap().is_empty());
    }
    assert_eq!(records[0]["requestURI"], "/rafter.api.v1.Resources/Create");
    assert_eq!(
        records[10]["requestURI"],
        "/rafter.api.v1.Cluster/AddMember"
    );
    assert!(records[0]["user"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "system:masters"));
    assert_eq!(records[6]["user"]["groups"][0], "system:unauthenticated");
    // Level Request: a Pod's body is recorded, a Secret's never.
    assert_eq!(records[2]["level"], "Request");
    assert_eq!(records[2]["requestObject"]["metadata"]["name"], "web");
    assert_eq!(
        records[3]["requestObject"]["metadata"]["labels"]["tier"],
        "front"
    );
    assert_eq!(records[1]["level"], "Metadata");
    assert!(records[1].get("requestObject").is_none());
    assert!(records[8].get("requestObject").is_none());
    let text = std::fs::read_to_string(&path).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY);
    assert!(!text.contains(CANARY) && !text.contains(&encoded));
    assert!(!text.contains("settings"), "ConfigMaps are at level None");
}

#[tokio::test]
async fn a_watch_is_recorded_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path) = audited_gateway(&dir).await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    let _stream = admin
        .watch(api::WatchRequest {
            kind: "Pod".into(),
            namespace: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let records = records(&path);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["stage"], "ResponseStarted");
    assert_eq!(records[0]["verb"], "watch");
    assert_eq!(records[0]["objectRef"]["resource"], "pods");
    assert_eq!(records[0]["responseStatus"]["code"], 200);
}

#[tokio::test]
async fn an_impersonated_call_records_the_caller_and_whom_it_acted_as() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, path) = audited_gateway(&dir).await;
    let mut admin = gw.client(Some(ADMIN_TOKEN)).await;
    create(
        &mut admin,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    )
    .await
    .unwrap();
    let mut request = tonic::Request::new(api::ListRequest {
        kind: "Pod".into(),
        namespace: "shop".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("impersonate-user", "jane".parse().unwrap());
    request
        .metadata_mut()
        .append("impersonate-group", "devs".parse().unwrap());
    let refused = admin.list(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains(r#"User "jane""#),
        "{}",
        refused.message()
    );
    let records = records(&path);
    let record = records
        .iter()
        .find(|r| r["verb"] == "list" && r["objectRef"]["resource"] == "pods")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert_eq!(record["user"]["username"], "admin");
    assert_eq!(record["impersonatedUser"]["username"], "jane");
    let groups = record["impersonatedUser"]["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == "devs"), "{groups:?}");
    assert_eq!(record["responseStatus"]["code"], 403);
    // A call as oneself has no impersonatedUser.
    let own = records
        .iter()
        .find(|r| r["verb"] == "create")
        .unwrap_or_else(|| panic!("{records:?}"));
    assert!(own.get("impersonatedUser").is_none(), "{own}");
}
