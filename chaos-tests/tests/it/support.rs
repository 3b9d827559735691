//! What several fault tests share: the client library connected to a test cluster, and
//! ConfigMaps created and listed through the masters' API.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::path::Path;
use std::process::Output;

use chaos_tests::{rafter_binary, AdminClient, Cluster};
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
                    field_manager: Default::default(),
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

/// Creates `object` through `client` and settles what a lost answer leaves open: after an
/// unknown outcome (or no master answering) it reads the name, and sends the create again
/// only if the object is not there. Panics on any other refusal, or if nothing settles in
/// 60 s. Returns the object as stored.
pub async fn create_settled(client: &Client, object: Object) -> Object {
    let (kind, namespace, name) = (
        object.kind(),
        object.metadata().namespace.clone(),
        object.metadata().name.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut unsure = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "{kind} {name}: no create settled in 60 s"
        );
        match client.create(object.clone()).await {
            Ok(created) => return created,
            Err(rafter_client::ClientError::AlreadyExists { .. }) if unsure => {}
            Err(
                rafter_client::ClientError::OutcomeUnknown { .. }
                | rafter_client::ClientError::NoMasterAvailable { .. },
            ) => unsure = true,
            Err(e) => panic!("create {kind} {name}: {e}"),
        }
        match client.get(kind, &namespace, &name).await {
            Ok(stored) => return stored,
            Err(rafter_client::ClientError::NotFound { .. }) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
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

/// Runs the CLI with the admin's client config.
pub fn rafter(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(rafter_binary())
        .env("RAFTERCONFIG", config)
        .args(args)
        .output()
        .expect("the rafter binary runs")
}

/// `rafter cluster member add ID --peer-address PEER`.
pub fn member_add(config: &Path, id: u64, peer: &str) -> Output {
    rafter(
        config,
        &[
            "cluster",
            "member",
            "add",
            &id.to_string(),
            "--peer-address",
            peer,
        ],
    )
}

/// Starts the cluster's next planned spare master and adds it with `rafter cluster member
/// add` through the admin config at `config`; returns its id. The new member catches up
/// before it votes: on a loaded machine the CLI may stop waiting first, and then the
/// membership decides.
pub fn add_spare_member(cluster: &mut Cluster, config: &Path) -> u64 {
    let new = cluster.add_master().expect("a spare master starts");
    let peer = format!(
        "127.0.0.1:{}",
        cluster
            .masters()
            .iter()
            .find(|m| m.id == new)
            .expect("the spare is a master of the cluster")
            .peer_port
    );
    let added = member_add(config, new, &peer);
    assert!(
        added.status.success() || text(&added).contains("outcome of the request is unknown"),
        "member add failed:\n{}",
        text(&added)
    );
    new
}

/// `rafter cluster member remove ID`, asked again while the cluster is still committing an
/// earlier configuration change (as an operator would), until it is done or the member is
/// found gone (a refused attempt was seen to apply later: docs/chaos.md). Returns how many
/// times it was refused.
pub async fn remove_member(config: &Path, id: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refusals = 0;
    loop {
        let removed = rafter(config, &["cluster", "member", "remove", &id.to_string()]);
        if removed.status.success() {
            return refusals;
        }
        let said = text(&removed);
        if refusals > 0 && said.contains(&format!("member {id} is not a voter")) {
            eprintln!("member {id} was removed by an attempt reported as refused");
            return refusals;
        }
        assert!(
            said.contains("already undergoing a configuration change") && Instant::now() < deadline,
            "member remove failed:\n{said}"
        );
        refusals += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The voters master `id` reports, once it reports `want` with a leader among them.
pub async fn wait_for_voters(cluster: &Cluster, id: u64, want: &BTreeSet<u64>) -> BTreeSet<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = BTreeSet::new();
        if let Ok(status) = cluster.status(id).await {
            seen = status
                .members
                .iter()
                .filter(|m| m.role == "Voter")
                .map(|m| m.id)
                .collect();
            if &seen == want && want.contains(&status.leader_id) {
                return seen;
            }
        }
        assert!(
            Instant::now() < deadline,
            "master {id} reports voters {seen:?}, not {want:?}\n{}",
            cluster.log_tail(id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One create the writer sent.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The ConfigMap's name.
    pub name: String,
    /// When it was sent.
    pub started: Instant,
    /// When it was answered (or given up).
    pub ended: Instant,
    /// The uid, when acknowledged.
    pub uid: Option<String>,
}

/// Every create the writer sent, in order.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<Attempt>>>;

/// The first write acknowledged that was sent after `since`: how long after `since`.
pub async fn first_ack_after(log: &Log, since: Instant, within: Duration) -> Duration {
    let deadline = since + within;
    loop {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.started >= since && a.uid.is_some())
            .map(|a| a.ended.duration_since(since));
        if let Some(after) = found {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged within {within:?} of the fault"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Creates ConfigMaps `w-1`, `w-2`, ... one after another through `client` until `stop`,
/// recording each attempt in the returned log.
pub fn spawn_writer(
    client: Client,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Log, tokio::task::JoinHandle<()>) {
    let log: Log = Log::default();
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let name = format!("w-{n}");
                let started = Instant::now();
                let uid = library_create(&client, &name, Duration::from_secs(30)).await;
                let failed = uid.is_none();
                log.lock().unwrap().push(Attempt {
                    name,
                    started,
                    ended: Instant::now(),
                    uid,
                });
                if failed {
                    // Not a synchronisation: a failed request is retried at a steady pace,
                    // as a client would, rather than in a hot loop.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    (log, writer)
}

/// What `log` records as acknowledged: name → uid.
pub fn acknowledged_in(log: &Log) -> std::collections::BTreeMap<String, String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.uid.clone()?)))
        .collect()
}

/// Waits until master `id` names a leader other than itself, of a term after `term`.
pub async fn follows_a_newer_leader(cluster: &Cluster, id: u64, term: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(status) = cluster.status(id).await {
            if status.term > term && status.leader_id != 0 && status.leader_id != id {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "master {id} never followed a leader newer than term {term}:\n{}",
            cluster.log_tail(id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Panics, saying how to build it, unless the cluster's binary has the failpoints.
pub fn require_failpoints(cluster: &Cluster) {
    assert!(
        cluster.failpoints_compiled(1),
        "this test needs the failpoints: cargo build --bin rafter --features rafter/failpoints"
    );
}

/// Creates `<prefix>-0` .. `<prefix>-<count - 1>` through `client`, each of which must be
/// acknowledged, recording them in `acknowledged` (name → uid).
pub async fn create_acknowledged(
    client: &Client,
    prefix: &str,
    count: usize,
    acknowledged: &mut std::collections::BTreeMap<String, String>,
) {
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let uid = library_create(client, &name, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{name} was not acknowledged"));
        acknowledged.insert(name, uid);
    }
}

/// A proxied three-master cluster (with `spares` more planned), its proxies seeded.
pub async fn proxied_cluster(seed: u64, spares: u64) -> Cluster {
    Cluster::start_with_options(
        3,
        chaos_tests::ClusterOptions {
            proxied: true,
            spares,
            seed,
            ..chaos_tests::ClusterOptions::default()
        },
    )
    .await
    .expect("a proxied three-master cluster starts")
}

/// Agent processes, killed when dropped.
pub struct Agents(pub Vec<std::process::Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long after `since` the controllers act again: creates the ReplicaSet `name` (one
/// replica, its Pods labelled `acting=<name>`) through `client`, settling a lost answer,
/// then lists its Pods every 20 ms until the ReplicaSet controller of whichever master
/// leads has made one. Panics if none appears within 60 s of `since`.
pub async fn controllers_act_after(client: &Client, since: Instant, name: &str) -> Duration {
    let manifest = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{acting: {name}}}}}\n  template:\n    metadata: {{labels: {{acting: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    );
    let object = rafter_proto::parse_object(&manifest, "controllers-acting").expect("a ReplicaSet");
    create_settled(client, object).await;
    let params = rafter_client::ListParams {
        label_selector: format!("acting={name}"),
        ..Default::default()
    };
    loop {
        if let Ok(pods) = client
            .list(rafter_proto::Kind::Pod, Some("default"), &params)
            .await
        {
            if !pods.items.is_empty() {
                return since.elapsed();
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the ReplicaSet {name} has no Pod 60 s after the fault: the controllers never acted again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
