//! Clients of the client library (through the client proxies) create, compare-and-swap
//! update (resourceVersion) and delete three ConfigMaps and read them linearizably, while
//! the leader is killed and cut off on a seeded schedule. Each key's recorded history
//! must be linearizable (the register model: a create is a swap from absent, an update a
//! swap from the value it read, with unique values), checked whole by
//! `chaos_tests::linearizability`. A watch opened at the start must deliver each revision
//! once, in order, nothing at or before its start revision, every acknowledged write at
//! the revision its writer was told with the value written, and no value nobody wrote.
//! Serializable (follower) reads are mixed in: they may be stale, so they are not part of
//! the linearizable histories, but each must return a value the watch saw written to that
//! key at the very revision the read carries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{library_client, proxied_cluster};
use chaos_tests::linearizability::{linearizable, Input, Operation, Output};
use chaos_tests::schedule;
use futures::StreamExt;
use rafter_client::{Client, ClientError, ListParams, WatchEventType, WatchParams};
use rafter_proto::{parse_object, Kind, Object};
use rand::Rng;

const KEYS: [&str; 3] = ["reg-0", "reg-1", "reg-2"];
const CLIENTS: u64 = 3;

/// An acknowledged write: key, the revision it was told, the value (`None`: deleted).
type Write = (String, u64, Option<u64>);

/// What the clients recorded.
#[derive(Default)]
struct Record {
    /// key → its operations.
    histories: BTreeMap<String, Vec<Operation>>,
    /// Acknowledged writes whose revision is known.
    writes: Vec<Write>,
    /// Every value any client tried to write, per key.
    attempted: BTreeMap<String, BTreeSet<u64>>,
    /// Serializable reads that found the object: key, its revision, its value.
    stale_reads: Vec<Write>,
}

fn config_map(key: &str, value: u64) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {key}}}\ndata: {{v: '{value}'}}\n"
        ),
        "test",
    )
    .unwrap()
}

fn value_of(object: &Object) -> Option<u64> {
    match object {
        Object::ConfigMap(cm) => cm.data.get("v")?.parse().ok(),
        _ => None,
    }
}

fn revision_of(object: &Object) -> Option<u64> {
    object.metadata().resource_version.parse().ok()
}

/// Whether an error leaves the write's outcome unknown (or the read unanswered).
fn unknown(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::OutcomeUnknown { .. } | ClientError::NoMasterAvailable { .. }
    )
}

/// The most operations one client runs while it waits for the faults to be over: it
/// bounds the histories the checker reads, whatever the cluster's speed.
const MAX_OPS: usize = 3_000;

/// One client's run of operations drawn from `seed`: at least `ops`, and on until
/// `faulted` is set (the faults are over), at most [`MAX_OPS`]. A fast cluster must not
/// finish the workload before the faults it is meant to live through.
async fn run_client(
    client: Client,
    seed: u64,
    ops: usize,
    faulted: Arc<AtomicBool>,
    started: Instant,
    fresh: Arc<AtomicU64>,
    record: Arc<Mutex<Record>>,
) {
    let mut rng = schedule::rng(seed);
    let now = || u64::try_from(started.elapsed().as_nanos()).unwrap();
    let limit = Duration::from_secs(30);
    for done in 0..MAX_OPS {
        if done >= ops && faulted.load(Ordering::Relaxed) {
            break;
        }
        let key = KEYS[rng.gen_range(0..KEYS.len())];
        let push = |op: Operation, write: Option<Write>| {
            let mut record = record.lock().unwrap();
            record.histories.entry(key.to_owned()).or_default().push(op);
            record.writes.extend(write);
        };
        let choice = rng.gen_range(0..12);
        let call = now();
        if choice >= 10 {
            // A serializable read from whichever master answers.
            let read = tokio::time::timeout(
                limit,
                client.get_serializable(Kind::ConfigMap, "default", key),
            )
            .await;
            match read {
                Ok(Ok(object)) => {
                    let revision = revision_of(&object).expect("a resourceVersion");
                    record.lock().unwrap().stale_reads.push((
                        key.to_owned(),
                        revision,
                        value_of(&object),
                    ));
                }
                Ok(Err(ClientError::NotFound { .. })) | Err(_) => {}
                Ok(Err(e)) if unknown(&e) => {}
                Ok(Err(e)) => panic!("serializable get {key}: {e}"),
            }
        } else if choice < 3 {
            // A linearizable read.
            let output = match tokio::time::timeout(
                limit,
                client.get(Kind::ConfigMap, "default", key),
            )
            .await
            {
                Ok(Ok(object)) => Output::Value(value_of(&object)),
                Ok(Err(ClientError::NotFound { .. })) => Output::Value(None),
                Ok(Err(e)) if unknown(&e) => Output::Unknown,
                Err(_) => Output::Unknown,
                Ok(Err(e)) => panic!("get {key}: {e}"),
            };
            push(
                Operation {
                    call,
                    ret: now(),
                    input: Input::Get,
                    output,
                },
                None,
            );
        } else if choice < 5 {
            // A create: a swap from absent.
            let value = fresh.fetch_add(1, Ordering::Relaxed);
            record
                .lock()
                .unwrap()
                .attempted
                .entry(key.to_owned())
                .or_default()
                .insert(value);
            let (output, write) =
                match tokio::time::timeout(limit, client.create(config_map(key, value))).await {
                    Ok(Ok(created)) => (
                        Output::Swapped(true),
                        revision_of(&created).map(|r| (key.to_owned(), r, Some(value))),
                    ),
                    Ok(Err(ClientError::AlreadyExists { .. })) => (Output::Swapped(false), None),
                    // Refused or unanswered: maybe applied, maybe not.
                    Ok(Err(_)) | Err(_) => (Output::Unknown, None),
                };
            let input = Input::Cas {
                expect: None,
                new: value,
            };
            push(
                Operation {
                    call,
                    ret: now(),
                    input,
                    output,
                },
                write,
            );
        } else if choice < 8 {
            // Read, then update on the resourceVersion read: a swap from the value read.
            let Ok(Ok(mut current)) =
                tokio::time::timeout(limit, client.get(Kind::ConfigMap, "default", key)).await
            else {
                continue;
            };
            let read_at = now();
            let expect = value_of(&current);
            push(
                Operation {
                    call,
                    ret: read_at,
                    input: Input::Get,
                    output: Output::Value(expect),
                },
                None,
            );
            let value = fresh.fetch_add(1, Ordering::Relaxed);
            record
                .lock()
                .unwrap()
                .attempted
                .entry(key.to_owned())
                .or_default()
                .insert(value);
            if let Object::ConfigMap(cm) = &mut current {
                cm.data.insert("v".into(), value.to_string());
            }
            let call = now();
            let (output, write) = match tokio::time::timeout(limit, client.update(current)).await {
                Ok(Ok(updated)) => (
                    Output::Swapped(true),
                    revision_of(&updated).map(|r| (key.to_owned(), r, Some(value))),
                ),
                Ok(Err(ClientError::Conflict { .. } | ClientError::NotFound { .. })) => {
                    (Output::Swapped(false), None)
                }
                Ok(Err(e)) if unknown(&e) => (Output::Unknown, None),
                Err(_) => (Output::Unknown, None),
                Ok(Err(e)) => panic!("update {key}: {e}"),
            };
            let input = Input::Cas { expect, new: value };
            push(
                Operation {
                    call,
                    ret: now(),
                    input,
                    output,
                },
                write,
            );
        } else {
            // An unconditional delete; NotFound observes absence.
            let deleted = tokio::time::timeout(
                limit,
                client.delete(Kind::ConfigMap, "default", key, &Default::default()),
            )
            .await;
            let ret = now();
            match deleted {
                Ok(Ok(deleted)) => {
                    assert!(
                        deleted.deleted,
                        "a ConfigMap with no finalizers is gone at once"
                    );
                    push(
                        Operation {
                            call,
                            ret,
                            input: Input::Delete,
                            output: Output::Done,
                        },
                        None,
                    );
                }
                Ok(Err(ClientError::NotFound { .. })) => push(
                    Operation {
                        call,
                        ret,
                        input: Input::Get,
                        output: Output::Value(None),
                    },
                    None,
                ),
                Ok(Err(e)) if unknown(&e) => push(
                    Operation {
                        call,
                        ret,
                        input: Input::Delete,
                        output: Output::Unknown,
                    },
                    None,
                ),
                Err(_) => push(
                    Operation {
                        call,
                        ret,
                        input: Input::Delete,
                        output: Output::Unknown,
                    },
                    None,
                ),
                Ok(Err(e)) => panic!("delete {key}: {e}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_through_the_api_are_linearizable_and_watches_valid() {
    let seed = schedule::seed();
    let _report = schedule::SeedReport(seed);
    let mut rng = schedule::rng(seed);
    let ops = schedule::rounds(1) * 150;
    let mut cluster = proxied_cluster(seed, 0).await;

    // The watch, from the revision the cluster is at before anything is written.
    let (watcher, _watch_config) = library_client(&cluster).await;
    let start = watcher
        .list(Kind::ConfigMap, Some("default"), &ListParams::default())
        .await
        .unwrap()
        .resource_version
        .parse::<u64>()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let events = Arc::new(Mutex::new(Vec::new()));
    let watch = {
        let (done, events) = (done.clone(), events.clone());
        tokio::spawn(async move {
            let mut stream = Box::pin(watcher.watch(
                Kind::ConfigMap,
                Some("default"),
                &WatchParams::default(),
                Some(&start.to_string()),
            ));
            while !done.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
                    Err(_) => continue,
                    Ok(None) => panic!("the watch ended"),
                    Ok(Some(Err(e))) => panic!("the watch failed: {e}"),
                    Ok(Some(Ok(event))) => events.lock().unwrap().push(event),
                }
            }
        })
    };

    let started = Instant::now();
    let faulted = Arc::new(AtomicBool::new(false));
    let fresh = Arc::new(AtomicU64::new(1));
    let record = Arc::new(Mutex::new(Record::default()));
    let mut clients = Vec::new();
    let mut configs = Vec::new();
    for c in 0..CLIENTS {
        let (client, config) = library_client(&cluster).await;
        configs.push(config);
        clients.push(tokio::spawn(run_client(
            client,
            seed ^ (c + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ops,
            faulted.clone(),
            started,
            fresh.clone(),
            record.clone(),
        )));
    }

    // Faults while the clients run: leader kills and one partition of the leader.
    let mut faults = 0;
    while !clients.iter().all(|c| c.is_finished()) && faults < 4 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1000..3000))).await;
        let Ok(leader) = cluster.wait_for_leader(Duration::from_secs(20)).await else {
            continue;
        };
        if faults == 2 {
            cluster.isolate(leader).unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.heal_network();
        } else {
            cluster.kill(leader).unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            cluster.restart(leader).unwrap();
        }
        faults += 1;
    }
    faulted.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let record = std::mem::take(&mut *record.lock().unwrap());

    // Per-key linearizability of everything recorded.
    let mut total = 0;
    for (key, history) in &record.histories {
        total += history.len();
        let checked = std::time::Instant::now();
        let ok = linearizable(None, history).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            ok,
            "the history of {key} is not linearizable:\n{history:#?}"
        );
        eprintln!(
            "{key}: {} operations checked in {:?}",
            history.len(),
            checked.elapsed()
        );
    }
    assert!(
        total >= (ops as usize) * (CLIENTS as usize) / 2,
        "only {total} operations recorded"
    );
    assert!(faults >= 3, "only {faults} faults injected");

    // The watch: every acknowledged write arrives, at its revision, with its value.
    let last = record
        .writes
        .iter()
        .chain(&record.stale_reads)
        .map(|w| w.1)
        .max()
        .unwrap_or(start);
    let deadline = Instant::now() + Duration::from_secs(30);
    while events
        .lock()
        .unwrap()
        .last()
        .is_none_or(|e| e.revision < last)
    {
        assert!(
            Instant::now() < deadline,
            "the watch never reached revision {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Relaxed);
    watch.await.unwrap();
    let events = events.lock().unwrap().clone();
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e.event_type != WatchEventType::Bookmark)
        .collect();
    assert!(
        changes.windows(2).all(|w| w[0].revision < w[1].revision),
        "revisions repeated or out of order"
    );
    assert!(
        changes.iter().all(|e| e.revision > start),
        "an event at or before the start revision"
    );
    let by_revision: BTreeMap<u64, (String, Option<u64>, WatchEventType)> = changes
        .iter()
        .map(|e| {
            let object = e.object.as_ref().expect("a change carries its object");
            (
                e.revision,
                (
                    object.metadata().name.clone(),
                    value_of(object),
                    e.event_type,
                ),
            )
        })
        .collect();
    for (key, revision, value) in &record.writes {
        let seen = by_revision.get(revision);
        assert!(
            matches!(seen, Some((k, v, t)) if k == key && v == value && *t != WatchEventType::Deleted),
            "write of {value:?} to {key} at revision {revision}: the watch has {seen:?}"
        );
    }
    for (revision, (key, value, kind)) in &by_revision {
        if *kind != WatchEventType::Deleted {
            let value = value.expect("a value");
            assert!(
                record
                    .attempted
                    .get(key)
                    .is_some_and(|a| a.contains(&value)),
                "revision {revision}: {key}={value}, which nobody wrote"
            );
        }
    }
    // Serializable reads: stale perhaps, but each value was written at its revision.
    for (key, revision, value) in &record.stale_reads {
        let seen = by_revision.get(revision);
        assert!(
            matches!(seen, Some((k, v, t)) if k == key && v == value && *t != WatchEventType::Deleted),
            "a serializable read of {key} returned {value:?} at revision {revision}: the watch has {seen:?}"
        );
    }
    assert!(
        !record.stale_reads.is_empty(),
        "no serializable read found an object"
    );
    eprintln!(
        "seed {seed}: {total} operations on {} keys, {} acknowledged writes, {} serializable reads, {} watch events, {faults} faults",
        record.histories.len(),
        record.writes.len(),
        record.stale_reads.len(),
        changes.len()
    );
}
