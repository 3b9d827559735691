//! The Raft leader is paused with SIGSTOP (a hung process whose sockets stay open, as
//! after a long stall): the first write through the client library, with its default
//! options, is acknowledged less than four seconds after the pause (the client's ping
//! interval and timeout, 2.5 s by default, against 10 s before; the bound leaves room for
//! a loaded test machine), since the
//! client notices a silent master from its HTTP/2 pings and a follower stops waiting for a
//! leader the others have replaced. Resumed, the old leader never acknowledges a write in
//! its stale term (a create sent to it alone while it was paused is either refused or
//! committed), it follows the new leader, and no acknowledged write is lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chaos_tests::Cluster;
use rafter_client::ClientError;
use rafter_proto::api;
use rafter_proto::{parse_object, Object};

/// The longest a paused leader may delay the first acknowledged write.
const BOUND: Duration = Duration::from_secs(4);

fn config_map(name: &str) -> Object {
    parse_object(
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{k: v}}\n"),
        "test",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_delays_writes_by_less_than_four_seconds() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let (client, _config_dir) = crate::support::library_client(&cluster).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let term = cluster.status(leader).await.unwrap().term;

    // name -> uid of every acknowledged create.
    let mut acknowledged = BTreeMap::new();
    for name in ["before-1", "before-2"] {
        let created = client.create(config_map(name)).await.unwrap();
        acknowledged.insert(name.to_owned(), created.metadata().uid.clone());
    }
    let mut old_leader = cluster.client(leader).await.unwrap();

    cluster.pause(leader, true).unwrap();
    let paused_at = Instant::now();
    // Sent to the paused leader alone: it reads it only once resumed.
    let stale = tokio::spawn(async move {
        old_leader
            .create(api::CreateRequest {
                object: Some(api::TypedObject::from(config_map("stale"))),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
    });

    let mut attempt = 0;
    let first = loop {
        attempt += 1;
        let name = format!("after-{attempt}");
        let left = BOUND.saturating_sub(paused_at.elapsed());
        assert!(
            !left.is_zero(),
            "no write acknowledged within {BOUND:?} of pausing leader {leader}"
        );
        match tokio::time::timeout(left, client.create(config_map(&name))).await {
            Ok(Ok(created)) => {
                acknowledged.insert(name, created.metadata().uid.clone());
                break paused_at.elapsed();
            }
            // Refused, or of unknown outcome: the next write decides.
            Ok(Err(ClientError::OutcomeUnknown { .. } | ClientError::NoMasterAvailable { .. })) => {
            }
            Ok(Err(e)) => panic!("create {name}: {e}"),
            Err(_) => panic!(
                "no write acknowledged within {BOUND:?} of pausing leader {leader} (attempt {attempt} was still waiting)"
            ),
        }
    };
    eprintln!("first write acknowledged {first:?} after the leader was paused");
    assert!(first < BOUND, "{first:?}");

    // Writes go on while the old leader stays paused.
    for i in 0..5 {
        let name = format!("during-{i}");
        match client.create(config_map(&name)).await {
            Ok(created) => {
                acknowledged.insert(name, created.metadata().uid.clone());
            }
            Err(ClientError::OutcomeUnknown { .. }) => {}
            Err(e) => panic!("create {name}: {e}"),
        }
    }

    cluster.pause(leader, false).unwrap();
    // The harness's channel gives up after 10 s: whatever the old leader answers by then.
    let stale = tokio::time::timeout(Duration::from_secs(30), stale)
        .await
        .expect("the create sent to the paused leader ends")
        .unwrap();
    if let Ok(created) = &stale {
        let created = Object::try_from(created.get_ref().clone()).unwrap();
        acknowledged.insert("stale".to_owned(), created.metadata().uid.clone());
    }

    // The old leader follows a leader of a later term.
    crate::support::follows_a_newer_leader(&cluster, leader, term).await;

    // Nothing acknowledged is lost, on any master, including the old leader: every
    // acknowledged object is there with the uid its creator was told.
    if let Err(lacking) =
        crate::support::every_master_holds(&cluster, &acknowledged, Duration::from_secs(20)).await
    {
        panic!("{lacking} (the stale create answered {stale:?})");
    }
}
