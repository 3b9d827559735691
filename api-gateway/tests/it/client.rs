//! The client library against three masters over one store: calls carry on when masters
//! die, fail with one clear error when none is left, writes whose answer was lost are
//! reported as such, and watches resume without gaps or duplicates.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rafter_client::{
    Client, ClientError, ClientOptions, DeleteOptions, PatchType, WatchEvent, WatchEventType,
};
use rafter_client::{ClientConfig, ListParams, WatchParams};
use rafter_proto::{parse_object, Kind, Object};
use tokio::time::Instant;

use crate::masters::{quick, Masters, ADMIN_TOKEN};

fn config_map(name: &str, value: &str) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{suite: client}}\ndata:\n  value: {value:?}\n"
        ),
        "test",
    )
    .unwrap()
}

fn value_of(object: &Object) -> String {
    match object {
        Object::ConfigMap(cm) => cm.data.get("value").cloned().unwrap_or_default(),
        other => panic!("not a ConfigMap: {:?}", other.kind()),
    }
}

/// The next event, or a panic naming what was awaited once `deadline` passes.
async fn next_event<S>(stream: &mut S, deadline: Instant, waiting_for: &str) -> WatchEvent
where
    S: Stream<Item = Result<WatchEvent, ClientError>> + Unpin,
{
    match tokio::time::timeout_at(deadline, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("the watch failed while waiting for {waiting_for}: {e}"),
        Ok(None) => panic!("the watch ended while waiting for {waiting_for}"),
        Err(_) => panic!("no event in time while waiting for {waiting_for}"),
    }
}

/// A watch of the default namespace's ConfigMaps from now (the existing ones come first
/// as ADDED), its first event and a deadline 20 s away for the rest.
async fn watch_config_maps(
    client: &Client,
) -> (
    std::pin::Pin<Box<impl Stream<Item = Result<WatchEvent, ClientError>>>>,
    WatchEvent,
    Instant,
) {
    let mut events = Box::pin(client.watch(
        Kind::ConfigMap,
        Some("default"),
        &WatchParams::default(),
        None,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = next_event(&mut events, deadline, "the existing object").await;
    (events, first, deadline)
}

fn summary(event: &WatchEvent) -> (WatchEventType, String, String) {
    let object = event.object.as_ref().expect("not a bookmark");
    (
        event.event_type,
        object.metadata().name.clone(),
        value_of(object),
    )
}

#[tokio::test]
async fn crud_works_through_a_client_of_three_masters() {
    let masters = Masters::start(3).await;
    let client = masters.client().await;
    let created = client.create(config_map("a", "1")).await.unwrap();
    assert_eq!(
        created.metadata().namespace,
        "default",
        "the context's namespace"
    );
    assert!(!created.metadata().uid.is_empty());

    let got = client.get(Kind::ConfigMap, "default", "a").await.unwrap();
    assert_eq!(got.metadata().uid, created.metadata().uid);

    let mut changed = got.clone();
    if let Object::ConfigMap(cm) = &mut changed {
        cm.data.insert("value".into(), "2".into());
    }
    let updated = client.update(changed.clone()).await.unwrap();
    assert_eq!(value_of(&updated), "2");
    let stale = client.update(changed).await.unwrap_err();
    assert!(
        matches!(stale, ClientError::Conflict { .. }),
        "a stale resourceVersion is a Conflict: {stale}"
    );

    let patched = client
        .patch(
            Kind::ConfigMap,
            "default",
            "a",
            PatchType::Merge,
            &serde_json::json!({"data": {"value": "3"}}),
        )
        .await
        .unwrap();
    assert_eq!(value_of(&patched), "3");

    client.create(config_map("b", "1")).await.unwrap();
    let again = client.create(config_map("b", "1")).await.unwrap_err();
    assert!(
        matches!(again, ClientError::AlreadyExists { .. }),
        "{again}"
    );
    let page = client
        .list(
            Kind::ConfigMap,
            Some("default"),
            &ListParams {
                label_selector: "suite=client".into(),
                limit: 1,
                ..ListParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = client
        .list(
            Kind::ConfigMap,
            Some("default"),
            &ListParams {
                label_selector: "suite=client".into(),
                continue_token: page.continue_token.clone(),
                ..ListParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.continue_token.is_none());

    let deleted = client
        .delete(Kind::ConfigMap, "default", "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(deleted.deleted);
    let gone = client
        .get(Kind::ConfigMap, "default", "a")
        .await
        .unwrap_err();
    assert!(matches!(gone, ClientError::NotFound { .. }), "{gone}");
    assert_eq!(gone.reason(), "NotFound");

    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.member_id, 1, "the first master serves first");
}

#[tokio::test]
async fn calls_carry_on_through_the_other_masters_when_one_is_shut_down() {
    let mut masters = Masters::start(3).await;
    let client = masters.client().await;
    client.create(config_map("before", "1")).await.unwrap();
    assert_eq!(client.cluster_status().await.unwrap().member_id, 1);

    masters.masters[0].kill().await;
    client.create(config_map("after", "1")).await.unwrap();
    client
        .get(Kind::ConfigMap, "default", "before")
        .await
        .unwrap();
    let status = client.cluster_status().await.unwrap();
    assert_ne!(status.member_id, 1, "another master answers");

    masters.masters[1].kill().await;
    let listed = client
        .list(Kind::ConfigMap, Some("default"), &ListParams::default())
        .await
        .unwrap();
    let names: BTreeSet<String> = listed
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    assert_eq!(names, BTreeSet::from(["after".into(), "before".into()]));
    assert_eq!(client.cluster_status().await.unwrap().member_id, 3);
}

#[tokio::test]
async fn with_every_master_down_one_error_names_each_endpoint() {
    let mut masters = Masters::start(3).await;
    let options = ClientOptions {
        total_timeout: Duration::from_secs(2),
        ..quick()
    };
    let client = Client::connect_with(masters.config(Some(ADMIN_TOKEN)), options)
        .await
        .unwrap();
    client.create(config_map("a", "1")).await.unwrap();
    for master in &mut masters.masters {
        master.kill().await;
    }
    let started = Instant::now();
    let error = client
        .get(Kind::ConfigMap, "default", "a")
        .await
        .unwrap_err();
    let ClientError::NoMasterAvailable { attempts } = &error else {
        panic!("expected NoMasterAvailable, got {error}");
    };
    assert_eq!(attempts.len(), 3, "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("no master could serve the request: "),
        "{message}"
    );
    for master in &masters.masters {
        assert!(
            message.contains(&format!("{}: connection refused", master.address)),
            "{message}"
        );
    }
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < options.total_timeout + Duration::from_secs(1),
        "bounded by the client's budget"
    );

    let error = client.create(config_map("b", "1")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoMasterAvailable { .. }),
        "a write that never reached a master is not of unknown outcome: {error}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_at_once_and_not_retried() {
    let masters = Masters::start(3).await;
    let client = Client::connect(masters.config(Some("wrong-token")))
        .await
        .unwrap();
    let started = Instant::now();
    let error = client
        .get(Kind::ConfigMap, "default", "a")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Unauthenticated { .. }),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered, not retried until the 30 s budget ran out"
    );
    let anonymous = Client::connect(masters.config(None)).await.unwrap();
    let error = anonymous.cluster_status().await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unauthenticated { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_client_certificate_from_the_cluster_ca_authenticates() {
    let masters = Masters::start(1).await;
    let config = masters.certificate_config("root", &["system:masters"]);
    let client = Client::connect_with(config, quick()).await.unwrap();
    client.create(config_map("by-cert", "1")).await.unwrap();
    let error = client
        .get(Kind::ConfigMap, "default", "missing")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::NotFound { .. }), "{error}");
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_reported_as_of_unknown_outcome() {
    let masters = Masters::start(3).await;
    let client = masters.client().await;
    let created = client.create(config_map("a", "1")).await.unwrap();
    let creator = masters.client().await;
    creator
        .get(Kind::ConfigMap, "default", "a")
        .await
        .expect("connected to the first master");

    masters.masters[0].hold_replies(true);
    let mut changed = created.clone();
    if let Object::ConfigMap(cm) = &mut changed {
        cm.data.insert("value".into(), "2".into());
    }
    let error = client.update(changed).await.unwrap_err();
    let ClientError::OutcomeUnknown { endpoint, .. } = &error else {
        panic!("expected OutcomeUnknown, got {error}");
    };
    assert_eq!(endpoint, &masters.masters[0].address);
    assert!(error.is_retryable());
    let now = client.get(Kind::ConfigMap, "default", "a").await.unwrap();
    assert_eq!(
        value_of(&now),
        "2",
        "the update was applied; only its answer was lost"
    );

    // A create is a write like any other: of unknown outcome, not sent again (had it been
    // sent again after a delete, it would have been applied twice).
    let error = creator.create(config_map("b", "1")).await.unwrap_err();
    let ClientError::OutcomeUnknown { endpoint, .. } = &error else {
        panic!("expected OutcomeUnknown, got {error}");
    };
    assert_eq!(endpoint, &masters.masters[0].address);
    client.get(Kind::ConfigMap, "default", "b").await.unwrap();
    masters.masters[0].hold_replies(false);
}

#[tokio::test]
async fn a_watch_resumes_on_another_master_without_gaps_or_duplicates() {
    let mut masters = Masters::start(3).await;
    let client = masters.client().await;
    client.create(config_map("old", "0")).await.unwrap();

    let (mut events, first, deadline) = watch_config_maps(&client).await;
    assert_eq!(
        summary(&first),
        (WatchEventType::Added, "old".into(), "0".into())
    );

    let mut expected = Vec::new();
    let mut seen = Vec::new();
    let mut last_revision = first.revision;
    for i in 0..3 {
        let name = format!("c{i}");
        client.create(config_map(&name, "1")).await.unwrap();
        expected.push((WatchEventType::Added, name.clone(), "1".to_owned()));
    }
    for _ in 0..3 {
        let event = next_event(&mut events, deadline, "changes through the first master").await;
        assert!(event.revision > last_revision, "in revision order");
        last_revision = event.revision;
        seen.push(summary(&event));
    }
    assert_eq!(
        client.cluster_status().await.unwrap().member_id,
        1,
        "the watch is open on the first master"
    );

    masters.masters[0].kill().await;
    for i in 0..3 {
        let name = format!("c{i}");
        client
            .patch(
                Kind::ConfigMap,
                "default",
                &name,
                PatchType::Merge,
                &serde_json::json!({"data": {"value": "2"}}),
            )
            .await
            .unwrap();
        expected.push((WatchEventType::Modified, name.clone(), "2".to_owned()));
    }
    client
        .delete(Kind::ConfigMap, "default", "c0", &DeleteOptions::default())
        .await
        .unwrap();
    expected.push((WatchEventType::Deleted, "c0".into(), "2".into()));
    client.create(config_map("last", "9")).await.unwrap();
    expected.push((WatchEventType::Added, "last".into(), "9".into()));

    while seen.len() < expected.len() {
        let event = next_event(&mut events, deadline, "changes after the first master died").await;
        assert!(
            event.revision > last_revision,
            "no duplicate and in revision order: {} after {last_revision}",
            event.revision
        );
        last_revision = event.revision;
        seen.push(summary(&event));
    }
    assert_eq!(seen, expected, "every change exactly once, in order");
}

#[tokio::test]
async fn a_watch_from_a_compacted_or_bad_resource_version_fails_clearly() {
    let masters = Masters::start(1).await;
    let client = masters.client().await;
    let mut events = Box::pin(client.watch(
        Kind::ConfigMap,
        None,
        &WatchParams::default(),
        Some("not-a-number"),
    ));
    let error = events.next().await.unwrap().unwrap_err();
    assert!(matches!(error, ClientError::Invalid { .. }), "{error}");
    assert!(
        events.next().await.is_none(),
        "the watch ends after an error"
    );
}

#[tokio::test]
async fn a_client_from_a_config_file_reaches_the_cluster() {
    let masters = Masters::start(3).await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("ca.crt"), masters.ca.cert_pem()).unwrap();
    let servers = masters
        .masters
        .iter()
        .map(|m| format!("'{}'", m.endpoint))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: admin\nclusters:\n- name: test\n  cluster:\n    servers: [{servers}]\n    certificate-authority: ca.crt\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: admin\n  context: {{cluster: test, user: admin, namespace: kube-system}}\n"
    );
    let path = folder.path().join("config");
    let mut config = ClientConfig::parse(&text).unwrap();
    config.save(&path).unwrap();

    let resolved = tokio::task::spawn_blocking({
        let path = path.clone();
        move || rafter_client::ResolvedConfig::load(Some(&path), None)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resolved.endpoints.len(), 3);
    assert_eq!(resolved.namespace, "kube-system");
    let client = Client::connect_with(resolved, quick()).await.unwrap();
    let created = client.create(config_map("from-file", "1")).await.unwrap();
    assert_eq!(created.metadata().namespace, "kube-system");

    std::fs::remove_file(folder.path().join("ca.crt")).unwrap();
    let error = rafter_client::ResolvedConfig::load(Some(&path), None).unwrap_err();
    let message = ClientError::from(error).to_string();
    assert!(
        message.contains(&folder.path().join("ca.crt").display().to_string()),
        "the error names the missing CA file: {message}"
    );
}

/// Budgets under which only the client's probes can notice a silent master in the time
/// the test waits: attempts, keepalive pings and the whole call all get 30 s.
fn patient() -> ClientOptions {
    ClientOptions {
        total_timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(1),
        keepalive: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_silent_master_is_left_by_reads_writes_and_watches_long_before_their_timeouts() {
    let masters = Masters::start(3).await;
    let config = masters.config(Some(ADMIN_TOKEN));
    let reader = Client::connect_with(config.clone(), patient())
        .await
        .unwrap();
    let writer = Client::connect_with(config, patient()).await.unwrap();
    let created = reader.create(config_map("a", "1")).await.unwrap();
    writer.get(Kind::ConfigMap, "default", "a").await.unwrap();
    let (mut events, first, deadline) = watch_config_maps(&reader).await;
    assert_eq!(first.object.unwrap().metadata().name, "a");
    assert_eq!(
        reader.cluster_status().await.unwrap().member_id,
        1,
        "everything is open on the first master"
    );

    // The first master's connections stay open and nothing comes back from it.
    masters.masters[0].hold_replies(true);
    let silent_at = Instant::now();
    let read = reader.get(Kind::ConfigMap, "default", "a").await.unwrap();
    assert_eq!(value_of(&read), "1");
    let took = silent_at.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the read moved on after a probe, not after the 30 s budgets: {took:?}"
    );

    let mut changed = created.clone();
    if let Object::ConfigMap(cm) = &mut changed {
        cm.data.insert("value".into(), "2".into());
    }
    let error = writer.update(changed).await.unwrap_err();
    assert!(
        matches!(error, ClientError::OutcomeUnknown { ref message, .. } if message.contains("fell silent")),
        "{error}"
    );
    assert!(silent_at.elapsed() < Duration::from_secs(10));

    // The watch left the silent master too, and delivers what the others see.
    reader.create(config_map("b", "1")).await.unwrap();
    let mut names = Vec::new();
    while !names.contains(&"b".to_owned()) {
        let event = next_event(&mut events, deadline, "changes through another master").await;
        names.push(event.object.unwrap().metadata().name.clone());
    }
    assert_eq!(
        names,
        ["a", "b"],
        "the update the silent master applied, then the create, once each"
    );
    masters.masters[0].hold_replies(false);
}

#[tokio::test]
async fn a_write_to_a_master_that_accepts_connections_and_never_answers_goes_to_the_next() {
    let masters = Masters::start(3).await;
    let client = masters.client().await;
    client.create(config_map("a", "1")).await.unwrap();
    // A paused master: the kernel accepts the connection, nothing ever answers on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            accepted.push(connection);
        }
    });
    let mut config = masters.config(Some(ADMIN_TOKEN));
    config
        .endpoints
        .insert(0, format!("https://{silent_address}"));
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(30),
        ..patient()
    };
    let fresh = Client::connect_with(config, options).await.unwrap();
    let started = Instant::now();
    let patched = fresh
        .patch(
            Kind::ConfigMap,
            "default",
            "a",
            PatchType::Merge,
            &serde_json::json!({"data": {"value": "2"}}),
        )
        .await
        .expect("a write its first master never heard is sent to the next one");
    assert_eq!(value_of(&patched), "2");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "left after a probe, not the 30 s connect timeout: {:?}",
        started.elapsed()
    );
}
