//! The Raft leader is cut off from the other masters by black-holing every peer link
//! through the proxies (replication, votes, forwarded writes and read-index alike; its API
//! stays reachable): while isolated it acknowledges no write and answers no linearizable
//! read with a value the majority has replaced; the majority elects a leader and writes
//! go on through the client library, whose traffic passes the client proxies. Healed,
//! the old leader follows a leader of a later term and no acknowledged write is lost.
//! Then the same with one direction only: the leader's outgoing peer traffic black-holed
//! (it hears the others, they do not hear it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{
    config_map, every_master_holds, follows_a_newer_leader, library_client, library_create,
    proxied_cluster,
};
use chaos_tests::proxy::{Direction, Fault};
use chaos_tests::{schedule, Cluster};
use rafter_proto::{api, Object};

/// How long the isolated leader is asked for a write or a read before the partition heals.
const ISOLATED_FOR: Duration = Duration::from_secs(4);

/// The value of ConfigMap `name`'s key `k` as master `id` reads it (a linearizable get),
/// `None` if it refuses or does not answer within `within`.
async fn read_on(cluster: &Cluster, id: u64, name: &str, within: Duration) -> Option<String> {
    let mut client = cluster.client(id).await.ok()?;
    let got = tokio::time::timeout(
        within,
        client.get(api::GetRequest {
            key: Some(api::ObjectKey {
                kind: "ConfigMap".into(),
                namespace: "default".into(),
                name: name.into(),
            }),
            consistency: api::Consistency::Linearizable as i32,
        }),
    )
    .await
    .ok()?
    .ok()?;
    match Object::try_from(got.into_inner()).ok()? {
        Object::ConfigMap(cm) => cm.data.get("k").cloned(),
        _ => None,
    }
}

/// One partition of the current leader, `direction` of its outgoing peer links (and the
/// opposite of its incoming ones) black-holed. Returns what was acknowledged meanwhile.
async fn partition_round(
    cluster: &Cluster,
    client: &rafter_client::Client,
    round: &str,
    both_ways: bool,
) -> BTreeMap<String, String> {
    let mut acknowledged = BTreeMap::new();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let term = cluster.status(leader).await.unwrap().term;
    let register = format!("{round}-register");
    let uid = library_create(client, &register, Duration::from_secs(20))
        .await
        .expect("the register is created before the partition");
    acknowledged.insert(register.clone(), uid);

    let others: Vec<u64> = cluster
        .masters()
        .iter()
        .map(|m| m.id)
        .filter(|id| *id != leader)
        .collect();
    if both_ways {
        cluster.isolate(leader).unwrap();
    } else {
        // The leader's requests and answers to the others vanish; theirs reach it.
        for other in &others {
            cluster
                .peer_link(leader, *other)
                .unwrap()
                .set(Direction::ToUpstream, Fault::BlackHole);
            cluster
                .peer_link(*other, leader)
                .unwrap()
                .set(Direction::FromUpstream, Fault::BlackHole);
        }
    }
    let partitioned_at = Instant::now();

    // Creates sent to the old leader alone (its API, not through the proxies), each noting
    // when it was answered.
    let mut stale = Vec::new();
    for i in 0..3 {
        let name = format!("{round}-stale-{i}");
        let mut api = cluster.client(leader).await.unwrap();
        stale.push(tokio::spawn(async move {
            let answer = api
                .create(api::CreateRequest {
                    object: Some(config_map(&name)),
                    dry_run: false,
                    field_manager: Default::default(),
                })
                .await;
            (name, answer.map(|r| r.into_inner()), Instant::now())
        }));
    }

    // The majority goes on: the first acknowledged write, then the register replaced.
    let mut attempt = 0;
    let first = loop {
        attempt += 1;
        let name = format!("{round}-after-{attempt}");
        if let Some(uid) = library_create(client, &name, Duration::from_secs(10)).await {
            acknowledged.insert(name, uid);
            break partitioned_at.elapsed();
        }
        assert!(
            partitioned_at.elapsed() < Duration::from_secs(30),
            "no write acknowledged within 30 s of partitioning leader {leader}"
        );
    };
    eprintln!("{round}: first write acknowledged {first:?} after the partition");
    let mut replaced = None;
    for _ in 0..20 {
        let Ok(mut current) = client
            .get(rafter_proto::Kind::ConfigMap, "default", &register)
            .await
        else {
            continue;
        };
        if let Object::ConfigMap(cm) = &mut current {
            cm.data.insert("k".into(), "replaced".into());
        }
        if client.update(current).await.is_ok() {
            replaced = Some(());
            break;
        }
    }
    assert!(
        replaced.is_some(),
        "the majority never replaced the register"
    );

    // The old leader, still cut off, never serves the old value as current.
    if both_ways {
        let read = read_on(cluster, leader, &register, Duration::from_secs(3)).await;
        assert!(
            read.is_none() || read.as_deref() == Some("replaced"),
            "isolated leader {leader} served a stale read: {read:?}"
        );
    }
    let left = ISOLATED_FOR.saturating_sub(partitioned_at.elapsed());
    tokio::time::sleep(left).await;
    let healed_at = Instant::now();
    cluster.heal_network();

    for task in stale {
        let (name, answer, at) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the stale create ends")
            .unwrap();
        if let Ok(created) = answer {
            assert!(
                at >= healed_at,
                "isolated leader {leader} acknowledged {name} in its stale term {term}"
            );
            let created = Object::try_from(created).unwrap();
            acknowledged.insert(name, created.metadata().uid.clone());
        }
    }
    follows_a_newer_leader(cluster, leader, term).await;
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_nothing_and_loses_nothing() {
    let seed = schedule::seed();
    let _report = schedule::SeedReport(seed);
    let cluster = proxied_cluster(seed, 0).await;
    let (client, _config_dir) = library_client(&cluster).await;

    let mut acknowledged = partition_round(&cluster, &client, "both", true).await;
    acknowledged.extend(partition_round(&cluster, &client, "one-way", false).await);

    every_master_holds(&cluster, &acknowledged, Duration::from_secs(30))
        .await
        .unwrap();
}
