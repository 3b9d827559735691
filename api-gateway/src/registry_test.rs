//! Registry semantics over the in-memory store: each test names the Kubernetes rule it
//! holds the registry to.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::{parse_object, FieldSelector, Kind, Object, Selector};

use rafter_proto::{DeleteOptions, ListOptions, Propagation, ReadConsistency, WatchEventType};

use crate::registry::{Registry, RegistryError, Subresource};
use crate::testing::MemKv;

/// A registry as a master has it: lists and watches go through a watch cache (which reads
/// the store until it is loaded, and wherever it cannot answer).
fn registry() -> Registry<MemKv> {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = crate::WatchCache::start(store.clone(), crate::WatchCacheConfig::default());
    Registry::new(store).with_watch_cache(cache)
}

fn object(yaml: &str) -> Object {
    parse_object(yaml, "test").unwrap()
}

fn pod(name: &str, labels: &str, node: &str) -> Object {
    object(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  nodeName: '{node}'\n  containers:\n  - name: c\n    image: busybox\n"
    ))
}

fn deployment(name: &str, image: &str) -> Object {
    object(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    ))
}

#[tokio::test]
async fn create_assigns_uid_timestamp_and_resource_version_and_refuses_duplicates() {
    let r = registry();
    let created = r.create(pod("a", "", ""), false).await.unwrap();
    let meta = created.metadata();
    assert!(!meta.uid.is_empty());
    assert!(meta
        .creation_timestamp
        .as_deref()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(meta.namespace, "default");
    assert_eq!(meta.generation, 1);
    let read = r
        .get(Kind::Pod, "default", "a", ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(read.metadata().resource_version, meta.resource_version);
    assert_eq!(read, created);
    let again = r.create(pod("a", "", ""), false).await.unwrap_err();
    assert!(
        matches!(again, RegistryError::AlreadyExists { .. }),
        "{again}"
    );
}

#[tokio::test]
async fn dry_run_create_writes_nothing() {
    let r = registry();
    r.create(pod("a", "", ""), true).await.unwrap();
    let err = r
        .get(Kind::Pod, "default", "a", ReadConsistency::Linearizable)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }));
}

#[tokio::test]
async fn objects_need_an_existing_namespace() {
    let r = registry();
    let mut p = pod("a", "", "");
    p.metadata_mut().namespace = "team".into();
    let err = r.create(p.clone(), false).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Forbidden(m) if m.contains("team")),
        "{err}"
    );
    r.create(
        object("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"),
        false,
    )
    .await
    .unwrap();
    r.create(p, false).await.unwrap();
}

#[tokio::test]
async fn invalid_objects_are_refused_with_every_field_error() {
    let r = registry();
    let bad = object("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: c}]\n");
    let RegistryError::Invalid { errors, .. } = r.create(bad, false).await.unwrap_err() else {
        panic!("not Invalid")
    };
    let text = errors.join("\n");
    for path in [
        "metadata.name",
        "spec.restartPolicy",
        "spec.containers[0].image",
    ] {
        assert!(text.contains(path), "{path} missing from {text}");
    }
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict_and_a_current_one_wins() {
    let r = registry();
    let created = r.create(deployment("web", "nginx:1"), false).await.unwrap();
    let mut first = created.clone();
    if let Object::Deployment(d) = &mut first {
        d.spec.as_mut().unwrap().replicas = Some(5);
    }
    let updated = r.update(first, Subresource::Main, false).await.unwrap();
    assert_ne!(
        updated.metadata().resource_version,
        created.metadata().resource_version
    );
    // A second writer still holding the old resourceVersion loses.
    let err = r
        .update(created, Subresource::Main, false)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn generation_moves_on_spec_changes_only() {
    let r = registry();
    let created = r.create(deployment("web", "nginx:1"), false).await.unwrap();
    let mut labelled = created.clone();
    labelled
        .metadata_mut()
        .labels
        .insert("team".into(), "a".into());
    let labelled = r.update(labelled, Subresource::Main, false).await.unwrap();
    assert_eq!(labelled.metadata().generation, 1);
    let mut changed = labelled.clone();
    if let Object::Deployment(d) = &mut changed {
        d.spec
            .as_mut()
            .unwrap()
            .template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = "nginx:2".into();
    }
    let changed = r.update(changed, Subresource::Main, false).await.unwrap();
    assert_eq!(changed.metadata().generation, 2);
}

#[tokio::test]
async fn status_and_spec_are_written_separately() {
    let r = registry();
    let created = r.create(deployment("web", "nginx:1"), false).await.unwrap();
    // A status write that also tries to change the spec changes only the status.
    let mut status_write = created.clone();
    if let Object::Deployment(d) = &mut status_write {
        d.status.get_or_insert_with(Default::default).ready_replicas = 3;
        d.spec.as_mut().unwrap().replicas = Some(9);
    }
    let after = r
        .update(status_write, Subresource::Status, false)
        .await
        .unwrap();
    let Object::Deployment(d) = &after else {
        panic!()
    };
    assert_eq!(d.status.as_ref().unwrap().ready_replicas, 3);
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1));
    // A main write that tries to change the status keeps the stored status.
    let mut main_write = after.clone();
    if let Object::Deployment(d) = &mut main_write {
        d.status.as_mut().unwrap().ready_replicas = 0;
        d.spec.as_mut().unwrap().replicas = Some(2);
    }
    let after = r
        .update(main_write, Subresource::Main, false)
        .await
        .unwrap();
    let Object::Deployment(d) = &after else {
        panic!()
    };
    assert_eq!(d.status.as_ref().unwrap().ready_replicas, 3);
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
}

#[tokio::test]
async fn generate_name_gives_unique_names() {
    let r = registry();
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let mut p = pod("placeholder", "", "");
        p.metadata_mut().name.clear();
        p.metadata_mut().generate_name = "web-".into();
        let created = r.create(p, false).await.unwrap();
        assert!(created.metadata().name.starts_with("web-") && created.metadata().name.len() == 9);
        names.insert(created.metadata().name.clone());
    }
    assert_eq!(names.len(), 5);
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let r = registry();
    let mut cm = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, finalizers: [example.com/hold]}\ndata: {a: b}\n");
    cm = r.create(cm, false).await.unwrap();
    let (marked, gone) = r
        .delete(
            Kind::ConfigMap,
            "default",
            "c",
            &DeleteOptions::default(),
            false,
        )
        .await
        .unwrap();
    assert!(!gone);
    assert!(marked.metadata().deletion_timestamp.is_some());
    assert_eq!(cm.metadata().uid, marked.metadata().uid);
    let mut released = marked.clone();
    released.metadata_mut().finalizers.clear();
    r.update(released, Subresource::Main, false).await.unwrap();
    let err = r
        .get(
            Kind::ConfigMap,
            "default",
            "c",
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { .. }),
        "the object outlived its last finalizer"
    );
}

#[tokio::test]
async fn foreground_deletion_adds_its_finalizer() {
    let r = registry();
    r.create(deployment("web", "nginx:1"), false).await.unwrap();
    let options = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    let (marked, gone) = r
        .delete(Kind::Deployment, "default", "web", &options, false)
        .await
        .unwrap();
    assert!(!gone);
    assert_eq!(
        marked.metadata().finalizers,
        vec!["foregroundDeletion".to_owned()]
    );
}

#[tokio::test]
async fn bound_pods_get_a_grace_period_and_unbound_pods_go_at_once() {
    let r = registry();
    r.create(pod("bound", "", "node-1"), false).await.unwrap();
    r.create(pod("pending", "", ""), false).await.unwrap();
    let (marked, gone) = r
        .delete(
            Kind::Pod,
            "default",
            "bound",
            &DeleteOptions::default(),
            false,
        )
        .await
        .unwrap();
    assert!(!gone);
    assert_eq!(marked.metadata().deletion_grace_period_seconds, Some(30));
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let (_, gone) = r
        .delete(Kind::Pod, "default", "bound", &now, false)
        .await
        .unwrap();
    assert!(gone);
    let (_, gone) = r
        .delete(
            Kind::Pod,
            "default",
            "pending",
            &DeleteOptions::default(),
            false,
        )
        .await
        .unwrap();
    assert!(gone);
}

#[tokio::test]
async fn delete_preconditions_must_hold() {
    let r = registry();
    r.create(pod("a", "", ""), false).await.unwrap();
    let options = DeleteOptions {
        precondition_uid: Some("other".into()),
        ..Default::default()
    };
    let err = r
        .delete(Kind::Pod, "default", "a", &options, false)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Conflict { .. }));
}

#[tokio::test]
async fn deleting_a_namespace_removes_what_it_holds_and_system_namespaces_stay() {
    let r = registry();
    r.create(
        object("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"),
        false,
    )
    .await
    .unwrap();
    let mut p = pod("a", "", "");
    p.metadata_mut().namespace = "team".into();
    r.create(p, false).await.unwrap();
    r.create(pod("keep", "", ""), false).await.unwrap();
    let (_, gone) = r
        .delete(
            Kind::Namespace,
            "",
            "team",
            &DeleteOptions::default(),
            false,
        )
        .await
        .unwrap();
    assert!(gone);
    assert!(r
        .get(Kind::Pod, "team", "a", ReadConsistency::Linearizable)
        .await
        .is_err());
    assert!(r
        .get(Kind::Pod, "default", "keep", ReadConsistency::Linearizable)
        .await
        .is_ok());
    let err = r
        .delete(
            Kind::Namespace,
            "",
            "kube-system",
            &DeleteOptions::default(),
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Forbidden(_)));
}

#[tokio::test]
async fn lists_filter_by_labels_and_fields() {
    let r = registry();
    r.create(pod("a", "app: web", "n1"), false).await.unwrap();
    r.create(pod("b", "app: web", "n2"), false).await.unwrap();
    r.create(pod("c", "app: db", "n1"), false).await.unwrap();
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.labels = Selector::parse("app=web").unwrap();
    let names: Vec<_> = r
        .list(&options)
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    assert_eq!(names, ["a", "b"]);
    options.fields = FieldSelector::parse("spec.nodeName=n1").unwrap();
    let names: Vec<_> = r
        .list(&options)
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    assert_eq!(names, ["a"]);
    let everything = r.list(&ListOptions::all(Kind::Pod, None)).await.unwrap();
    assert_eq!(everything.items.len(), 3);
}

#[tokio::test]
async fn list_each_hands_over_what_a_list_selects_at_the_lists_revision() {
    let r = registry();
    r.create(pod("a", "app: web", "n1"), false).await.unwrap();
    r.create(pod("b", "app: db", "n2"), false).await.unwrap();
    r.create(pod("c", "app: web", "n1"), false).await.unwrap();
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.labels = Selector::parse("app=web").unwrap();
    let mut seen = Vec::new();
    let revision = r
        .list_each(&options, |o| {
            seen.push((
                o.metadata().name.clone(),
                o.metadata().resource_version.clone(),
            ))
        })
        .await
        .unwrap();
    let listed = r.list(&options).await.unwrap();
    assert_eq!(revision, listed.revision);
    let expected: Vec<_> = listed
        .items
        .iter()
        .map(|o| {
            (
                o.metadata().name.clone(),
                o.metadata().resource_version.clone(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 2);
}

/// The items of a list sent in wire form, read back as objects.
fn read_encoded(items: &[rafter_proto::api::EncodedItem]) -> Vec<Object> {
    use prost::Message;
    items
        .iter()
        .map(|item| {
            let typed = rafter_proto::api::TypedObject::decode(item.as_bytes()).unwrap();
            Object::try_from(typed).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_list_in_wire_form_reads_as_the_list_page_for_page_with_or_without_selectors() {
    let r = registry();
    for (i, app) in ["web", "db", "web", "web", "db", "web"].iter().enumerate() {
        r.create(pod(&format!("p{i}"), &format!("app: {app}"), "n1"), false)
            .await
            .unwrap();
    }
    let mut selected = ListOptions::all(Kind::Pod, Some("default"));
    selected.labels = Selector::parse("app=web").unwrap();
    let mut by_field = ListOptions::all(Kind::Pod, None);
    by_field.fields = FieldSelector::parse("metadata.name=p4").unwrap();
    for mut options in [ListOptions::all(Kind::Pod, None), selected, by_field] {
        for limit in [0, 2] {
            options.limit = limit;
            options.continue_token = None;
            let mut pages = 0;
            loop {
                let decoded = r.list(&options).await.unwrap();
                let encoded = r.list_encoded(&options).await.unwrap();
                assert_eq!(read_encoded(&encoded.items), decoded.items);
                assert_eq!(encoded.revision, decoded.revision);
                assert_eq!(encoded.continue_token, decoded.continue_token);
                assert_eq!(encoded.remaining, decoded.remaining);
                pages += 1;
                match decoded.continue_token {
                    Some(token) => options.continue_token = Some(token),
                    None => break,
                }
            }
            assert!(pages >= 1);
        }
    }
}

#[tokio::test]
async fn pages_are_read_at_one_revision_even_while_writes_go_on() {
    let r = registry();
    for i in 0..7 {
        r.create(pod(&format!("p{i}"), "", ""), false)
            .await
            .unwrap();
    }
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.limit = 3;
    let first = r.list(&options).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.remaining, 4);
    // Writes after the first page must not show up in later pages.
    r.create(pod("p9", "", ""), false).await.unwrap();
    r.delete(Kind::Pod, "default", "p5", &DeleteOptions::default(), false)
        .await
        .unwrap();
    let mut seen: Vec<String> = first
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    let mut token = first.continue_token;
    while let Some(t) = token {
        options.continue_token = Some(t);
        let page = r.list(&options).await.unwrap();
        assert_eq!(page.revision, first.revision);
        seen.extend(page.items.iter().map(|o| o.metadata().name.clone()));
        token = page.continue_token;
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    options.continue_token = Some("garbage".into());
    assert!(matches!(
        r.list(&options).await.unwrap_err(),
        RegistryError::BadRequest(_)
    ));
}

#[tokio::test]
async fn a_watch_from_a_revision_sees_every_change_in_order_with_selector_transitions() {
    let r = registry();
    let start = r.create(pod("a", "app: web", ""), false).await.unwrap();
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.labels = Selector::parse("app=web").unwrap();
    let mut watch = r
        .watch(options, Some(&start.metadata().resource_version))
        .await
        .unwrap();
    let b = r.create(pod("b", "app: web", ""), false).await.unwrap();
    let mut relabelled = b.clone();
    relabelled
        .metadata_mut()
        .labels
        .insert("app".into(), "db".into());
    r.update(relabelled, Subresource::Main, false)
        .await
        .unwrap();
    r.create(pod("c", "app: db", ""), false).await.unwrap();
    r.delete(Kind::Pod, "default", "a", &DeleteOptions::default(), false)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push((
            event.event_type,
            event.object.unwrap().metadata().name.clone(),
            event.revision,
        ));
    }
    let kinds: Vec<_> = got.iter().map(|(t, n, _)| (*t, n.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (WatchEventType::Added, "b"),
            (WatchEventType::Deleted, "b"),
            (WatchEventType::Deleted, "a")
        ]
    );
    assert!(
        got.windows(2).all(|w| w[0].2 < w[1].2),
        "revisions out of order: {got:?}"
    );
}

#[tokio::test]
async fn a_watch_without_a_revision_starts_with_the_current_state() {
    let r = registry();
    r.create(pod("a", "", ""), false).await.unwrap();
    let mut watch = r
        .watch(ListOptions::all(Kind::Pod, None), None)
        .await
        .unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.event_type, WatchEventType::Added);
    r.create(pod("b", "", ""), false).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            second.event_type,
            second.object.unwrap().metadata().name.clone()
        ),
        (WatchEventType::Added, "b".to_owned())
    );
}

#[tokio::test]
async fn a_limit_range_default_lands_on_a_pod_and_a_pod_over_max_is_refused_naming_field_and_limit()
{
    let r = registry();
    let bare = r.create(pod("before", "", ""), false).await.unwrap();
    let Object::Pod(bare) = bare else { panic!() };
    let res = bare.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap_or_default();
    assert!(
        res.requests.is_empty() && res.limits.is_empty(),
        "no LimitRange, no defaults"
    );

    r.create(object("apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 128Mi}\n    defaultRequest: {cpu: 100m}\n    max: {cpu: '1'}\n"), false).await.unwrap();
    let Object::Pod(defaulted) = r.create(pod("after", "", ""), false).await.unwrap() else {
        panic!()
    };
    let res = defaulted.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.limits["cpu"], "500m");
    assert_eq!(res.limits["memory"], "128Mi");
    assert_eq!(res.requests["cpu"], "100m");
    assert_eq!(res.requests["memory"], "128Mi");

    let big = object("apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n  - {name: c, image: busybox, resources: {limits: {cpu: '2'}}}\n");
    let err = r.create(big, false).await.unwrap_err();
    let RegistryError::Forbidden(message) = &err else {
        panic!("{err}")
    };
    assert!(
        message.contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{message}"
    );
    assert!(
        message.contains("spec.containers[0].resources.limits.cpu"),
        "{message}"
    );
}

#[tokio::test]
async fn pod_quota_is_enforced_with_a_clear_message() {
    let r = registry();
    r.create(object("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: 2, requests.cpu: '1'}\n"), false).await.unwrap();
    r.create(object("apiVersion: v1\nkind: LimitRange\nmetadata: {name: defaults}\nspec:\n  limits: [{type: Container, defaultRequest: {cpu: 500m, memory: 256Mi}}]\n"), false).await.unwrap();
    r.create(pod("a", "", ""), false).await.unwrap();
    r.create(pod("b", "", ""), false).await.unwrap();
    // Each pod asks for the LimitRange's 500m: the second reaches the CPU limit exactly, the third the pod count.
    let err = r.create(pod("c", "", ""), false).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Forbidden(m) if m.contains("exceeded quota: q")),
        "{err}"
    );
}

#[tokio::test]
async fn a_write_fenced_to_another_term_is_refused_and_changes_nothing() {
    let r = registry();
    let stale = r.fenced(crate::testing::MEM_TERM + 1);
    let err = stale.create(pod("a", "", ""), false).await.unwrap_err();
    assert!(matches!(err, RegistryError::Fenced(_)), "{err}");
    assert!(r
        .get(Kind::Pod, "default", "a", ReadConsistency::Linearizable)
        .await
        .is_err());
    r.fenced(crate::testing::MEM_TERM)
        .create(pod("a", "", ""), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let r = registry();
    let created = r.create(deployment("web", "nginx:1"), false).await.unwrap();
    let again = r
        .update(created.clone(), Subresource::Main, false)
        .await
        .unwrap();
    assert_eq!(
        again.metadata().resource_version,
        created.metadata().resource_version
    );
}

#[tokio::test]
async fn a_certificate_request_is_never_filed_approved_or_signed() {
    let r = registry();
    let (csr_pem, _) = rafter_client::new_request("admin", &["system:masters".to_owned()]).unwrap();
    let request = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr_pem);
    let filed = object(&format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: sneaky\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\nstatus:\n  certificate: {request}\n  conditions:\n  - type: Approved\n    status: 'True'\n    reason: SelfApproved\n"
    ));
    let Object::CertificateSigningRequest(sent) = &filed else {
        panic!("not a CSR");
    };
    assert!(
        sent.status
            .as_ref()
            .is_some_and(|s| !s.conditions.is_empty()),
        "the request as sent carries an approval"
    );
    let created = r.create(filed, false).await.unwrap();
    let read = r
        .get(
            Kind::CertificateSigningRequest,
            "",
            "sneaky",
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap();
    for stored in [created, read] {
        let Object::CertificateSigningRequest(csr) = stored else {
            panic!("not a CSR");
        };
        let status = csr.status.unwrap_or_default();
        assert!(status.conditions.is_empty(), "{:?}", status.conditions);
        assert!(status.certificate.is_empty());
    }
}

/// A stored change of pod `a` in namespace `default` whose previous value, when given, is
/// `prev`; the new value is pod `a` labelled `app=web`.
fn pod_change(prev: Option<Vec<u8>>) -> crate::watch_cache::CachedEvent {
    use raft_store::kv::{Event, EventKind, KeyValue};
    let transformer = crate::encryption::Transformer::identity();
    let key = "/registry/pods/default/a";
    let mut new = pod("a", "app: web", "");
    new.metadata_mut().namespace = "default".to_owned();
    let kv = |value: Vec<u8>, revision: u64| KeyValue {
        key: key.as_bytes().to_vec(),
        value,
        create_revision: 1,
        mod_revision: revision,
        version: revision,
        lease: 0,
    };
    let value = crate::registry::encode(&transformer, key, &new).unwrap();
    crate::watch_cache::CachedEvent::new(Event {
        kind: EventKind::Put,
        kv: kv(value, 2),
        prev_kv: prev.map(|p| kv(p, 1)),
    })
}

#[test]
fn a_watch_without_selectors_tells_added_from_modified_without_decoding_the_old_object() {
    let transformer = crate::encryption::Transformer::identity();
    let everything = ListOptions::all(Kind::Pod, None);
    // The previous value is not an object at all: a watch that decoded it would fail.
    let garbage = Some(vec![0xff; 16]);
    let modified = super::translate(
        &transformer,
        Kind::Pod,
        &everything,
        &pod_change(garbage.clone()),
        2,
    )
    .unwrap()
    .unwrap();
    assert_eq!(modified.event_type, WatchEventType::Modified);
    let added = super::translate(&transformer, Kind::Pod, &everything, &pod_change(None), 2)
        .unwrap()
        .unwrap();
    assert_eq!(added.event_type, WatchEventType::Added);
    assert_eq!(added.object.unwrap().metadata().name, "a");

    // A selector must know whether the old object was in its set: it decodes it.
    let mut selected = ListOptions::all(Kind::Pod, None);
    selected.labels = "app=web".parse::<Selector>().unwrap();
    let refused = super::translate(&transformer, Kind::Pod, &selected, &pod_change(garbage), 2);
    assert!(refused.is_err(), "{refused:?}");
}
