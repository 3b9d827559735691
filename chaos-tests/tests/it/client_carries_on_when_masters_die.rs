//! Through the client library, configured with all three masters: a stream of creates
//! goes on while the master the client uses is killed, and then the Raft leader; no
//! acknowledged object is missing afterwards, and a watch opened before the kills delivers
//! every create exactly once, in order. Selectors, pagination, the status subresource and
//! finalizers are checked on the same processes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaos_tests::Cluster;
use futures::StreamExt;
use rafter_client::{ClientError, WatchEventType};
use rafter_client::{ListParams, WatchParams};
use rafter_proto::{parse_object, Kind, Object};

fn config_map(i: usize) -> Object {
    let parity = if i.is_multiple_of(2) { "even" } else { "odd" };
    parse_object(
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\n  labels: {{parity: {parity}}}\ndata: {{i: '{i}'}}\n"),
        "test",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_carries_on_through_master_kills_and_its_watch_has_no_gap() {
    let mut cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let (client, _config_dir) = crate::support::library_client(&cluster).await;

    let start = client
        .list(Kind::ConfigMap, Some("default"), &ListParams::default())
        .await
        .unwrap();
    let mut watch = Box::pin(client.watch(
        Kind::ConfigMap,
        Some("default"),
        &WatchParams::default(),
        Some(&start.resource_version),
    ));

    let mut acknowledged = BTreeSet::new();
    for i in 0..60 {
        if i == 20 {
            // The client's first master (the config lists master 1 first).
            cluster.kill(1).unwrap();
        }
        if i == 40 {
            let leader = cluster
                .wait_for_leader(Duration::from_secs(20))
                .await
                .unwrap();
            cluster.kill(leader).unwrap();
            cluster.restart(1).unwrap();
        }
        match client.create(config_map(i)).await {
            Ok(created) => {
                acknowledged.insert(created.metadata().name.clone());
            }
            // The write may have been applied: the object decides below.
            Err(ClientError::OutcomeUnknown { .. }) => {}
            Err(e) => panic!("create {i}: {e}"),
        }
    }
    let listed = client
        .list(Kind::ConfigMap, Some("default"), &ListParams::default())
        .await
        .unwrap();
    let names: BTreeSet<String> = listed
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect();
    assert!(
        acknowledged.is_subset(&names),
        "lost: {:?}",
        acknowledged.difference(&names).collect::<Vec<_>>()
    );

    // The watch saw every object that exists, once, in revision order.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < names.len() {
        let event = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            watch.next(),
        )
        .await
        .expect("the watch delivers every create")
        .expect("the watch goes on")
        .expect("no watch error");
        assert_eq!(event.event_type, WatchEventType::Added);
        seen.push((
            event.revision,
            event.object.unwrap().metadata().name.clone(),
        ));
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "out of order: {seen:?}"
    );
    let unique: BTreeSet<String> = seen.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(unique, names, "the watch missed or repeated objects");

    // Selectors and pagination on the surviving processes.
    let even = client
        .list(
            Kind::ConfigMap,
            Some("default"),
            &ListParams {
                label_selector: "parity=even".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        even.items
            .iter()
            .all(|o| o.metadata().labels["parity"] == "even")
            && !even.items.is_empty()
    );
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list(
                Kind::ConfigMap,
                Some("default"),
                &ListParams {
                    limit: 7,
                    continue_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 7);
        paged.extend(page.items.iter().map(|o| o.metadata().name.clone()));
        token = page.continue_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged.into_iter().collect::<BTreeSet<_>>(), names);

    // The status subresource: a status write cannot change the spec.
    let deployment = parse_object(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: s}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: s}}\n  template:\n    metadata: {labels: {app: s}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
        "test",
    )
    .unwrap();
    let created = client.create(deployment).await.unwrap();
    let mut changed = created.clone();
    if let Object::Deployment(d) = &mut changed {
        d.spec.as_mut().unwrap().replicas = Some(7);
        d.status
            .get_or_insert_with(Default::default)
            .collision_count = Some(3);
    }
    let written = loop {
        let mut latest = client.get(Kind::Deployment, "default", "s").await.unwrap();
        if let (Object::Deployment(d), Object::Deployment(c)) = (&mut latest, &changed) {
            d.spec = c.spec.clone();
            d.status
                .get_or_insert_with(Default::default)
                .collision_count = Some(3);
        }
        match client.update_status(latest).await {
            Ok(written) => break written,
            Err(ClientError::Conflict { .. }) => continue,
            Err(e) => panic!("status update: {e}"),
        }
    };
    let Object::Deployment(d) = written else {
        panic!("not a deployment")
    };
    assert_eq!(
        d.spec.unwrap().replicas,
        Some(0),
        "a status write changed the spec"
    );
    assert_eq!(d.status.unwrap().collision_count, Some(3));

    // Finalizers hold a deleted object until the last one is removed.
    let held = parse_object(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n",
        "test",
    )
    .unwrap();
    client.create(held).await.unwrap();
    let deleted = client
        .delete(Kind::ConfigMap, "default", "held", &Default::default())
        .await
        .unwrap();
    assert!(!deleted.deleted);
    let mut marked = client
        .get(Kind::ConfigMap, "default", "held")
        .await
        .unwrap();
    assert!(marked.metadata().deletion_timestamp.is_some());
    marked.metadata_mut().finalizers.clear();
    client.update(marked).await.unwrap();
    assert!(matches!(
        client.get(Kind::ConfigMap, "default", "held").await,
        Err(ClientError::NotFound { .. })
    ));
}
