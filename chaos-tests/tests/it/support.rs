//! What several fault tests share: the client library connected to a test cluster, and
//! ConfigMaps created and listed through the masters' API.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaos_tests::{AdminClient, Cluster};
use rafter_client::{Client, ResolvedConfig};
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{v1, Object};

/// The client library with the admin's config listing every master of `cluster`. The
/// config lives in the returned directory, which must outlive the client.
pub async fn library_client(cluster: &Cluster) -> (Client, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    let config_path = work.path().join("config");
    cluster
        .write_client_config(&config_path)
        .expect("client config written");
    let config = ResolvedConfig::load(Some(&config_path), None).expect("client config read");
    let client = Client::connect(config).await.expect("client connects");
    (client, work)
}

/// Every object of `kind` in the default namespace as the master behind `client` lists it;
/// `None` if the call fails (a dead or leaderless master), so callers can poll.
pub async fn list_default(client: &mut AdminClient, kind: &str) -> Option<Vec<Object>> {
    let list = client
        .list(api::ListRequest {
            kind: kind.to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    Some(
        list.items
            .into_iter()
            .filter_map(|o| Object::try_from(o).ok())
            .collect(),
    )
}

/// The names of the default namespace's ConfigMaps as master `id` lists them; `None` if
/// it cannot be asked.
pub async fn config_map_names_on(cluster: &Cluster, id: u64) -> Option<BTreeSet<String>> {
    let mut client = cluster.client(id).await.ok()?;
    let objects = list_default(&mut client, "ConfigMap").await?;
    Some(objects.iter().map(|o| o.metadata().name.clone()).collect())
}

/// A ConfigMap `name` in the default namespace.
pub fn config_map(name: &str) -> TypedObject {
    TypedObject::from(Object::ConfigMap(v1::ConfigMap {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        data: [("k".to_owned(), name.to_owned())].into(),
        ..Default::default()
    }))
}

/// Creates `name` through any running master; `Some(true)` when acknowledged, `Some(false)`
/// when refused as already existing (a retry of an earlier attempt that did commit).
pub async fn create_anywhere(cluster: &Cluster, name: &str, deadline: Instant) -> Option<bool> {
    while Instant::now() < deadline {
        for master in cluster.masters().iter().filter(|m| m.is_running()) {
            let Ok(mut client) = cluster.client(master.id).await else {
                continue;
            };
            match client
                .create(api::CreateRequest {
                    object: Some(config_map(name)),
                    dry_run: false,
                })
                .await
            {
                Ok(_) => return Some(true),
                Err(status) if status.code() == tonic::Code::AlreadyExists => return Some(false),
                Err(_) => continue,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Every ConfigMap in the default namespace as master `id` lists it, name → uid; `None` if
/// it cannot be asked.
pub async fn config_map_uids_on(
    cluster: &Cluster,
    id: u64,
) -> Option<std::collections::BTreeMap<String, String>> {
    let mut client = cluster.client(id).await.ok()?;
    let objects = list_default(&mut client, "ConfigMap").await?;
    Some(
        objects
            .iter()
            .map(|o| (o.metadata().name.clone(), o.metadata().uid.clone()))
            .collect(),
    )
}

/// Waits until every running master lists every acknowledged ConfigMap (name → the uid its
/// creator was told). At the deadline, the error names what each master still lacked.
pub async fn every_master_holds(
    cluster: &Cluster,
    acknowledged: &std::collections::BTreeMap<String, String>,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut lacking = Vec::new();
    for master in cluster.masters().iter().filter(|m| m.is_running()) {
        loop {
            let missing: Vec<&String> = match config_map_uids_on(cluster, master.id).await {
                Some(found) => acknowledged
                    .iter()
                    .filter(|(name, uid)| found.get(*name) != Some(uid))
                    .map(|(name, _)| name)
                    .collect(),
                None => acknowledged.keys().collect(),
            };
            if missing.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                lacking.push(format!("master {} lacks {missing:?}", master.id));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if lacking.is_empty() {
        Ok(())
    } else {
        Err(lacking.join("; "))
    }
}

/// Creates ConfigMap `name` through the client library, retrying what is known not to
/// have been applied until `within` passes. `Some(uid)` when acknowledged, `None` when
/// the outcome is unknown or no master answered in time (the store decides later).
pub async fn library_create(client: &Client, name: &str, within: Duration) -> Option<String> {
    let object = Object::try_from(config_map(name)).expect("a ConfigMap");
    match tokio::time::timeout(within, client.create(object)).await {
        Ok(Ok(created)) => Some(created.metadata().uid.clone()),
        Ok(Err(
            rafter_client::ClientError::OutcomeUnknown { .. }
            | rafter_client::ClientError::NoMasterAvailable { .. },
        ))
        | Err(_) => None,
        Ok(Err(e)) => panic!("create {name}: {e}"),
    }
}

/// Waits until some master lists at least `count` ConfigMaps in the default namespace.
pub async fn wait_for_config_maps(cluster: &Cluster, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for master in cluster.masters() {
            if let Some(names) = config_map_names_on(cluster, master.id).await {
                if names.len() >= count {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {count} ConfigMaps after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
