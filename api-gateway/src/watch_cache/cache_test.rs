//! The watch cache over the in-memory store: reads and watches from memory give what the
//! store gives, at the store's revision or later, and fall back to the store where the
//! cache no longer holds what is asked.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use raft_store::kv::{Op, PutRequest};
use rafter_proto::{parse_object, Kind, ListOptions, Object, ReadConsistency, Selector};
use rafter_proto::{DeleteOptions, WatchEventType};

use super::*;
use crate::registry::{Registry, Subresource};
use crate::testing::MemKv;

fn pod(name: &str, labels: &str) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
        ),
        "test",
    )
    .unwrap()
}

/// A started cache over `store`, once it is loaded.
async fn loaded(store: &Arc<MemKv>, config: WatchCacheConfig) -> WatchCache {
    let cache = WatchCache::start(store.clone(), config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cache.stats().ready {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never loaded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cache
}

fn names(items: &[Object]) -> Vec<String> {
    items.iter().map(|o| o.metadata().name.clone()).collect()
}

#[tokio::test]
async fn a_list_from_the_cache_sees_every_write_acknowledged_before_it() {
    let store = Arc::new(MemKv::new().unwrap());
    let plain = Registry::new(store.clone());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let cached = Registry::new(store.clone()).with_watch_cache(cache.clone());
    for i in 0..30 {
        // Written through the other registry: only the store's revision tells the cache.
        let created = plain
            .create(pod(&format!("p{i:02}"), "app: web"), false)
            .await
            .unwrap();
        let written: u64 = created.metadata().resource_version.parse().unwrap();
        let list = cached
            .list(&ListOptions::all(Kind::Pod, Some("default")))
            .await
            .unwrap();
        assert_eq!(list.items.len(), i + 1, "the list right after create {i}");
        let from_store = plain
            .list(&ListOptions::all(Kind::Pod, Some("default")))
            .await
            .unwrap();
        assert_eq!(list.items, from_store.items);
        assert!(list.revision >= written);
    }
    let stats = cache.stats();
    assert_eq!(stats.reads_from_cache, 30, "{stats:?}");
    assert_eq!(stats.reads_from_store, 0, "{stats:?}");
    assert_eq!(stats.objects, 30);
    assert_eq!(stats.loads, 1);

    // A serializable list reads memory without asking the store.
    let mut stale_ok = ListOptions::all(Kind::Pod, None);
    stale_ok.consistency = ReadConsistency::Serializable;
    stale_ok.labels = Selector::parse("app=web").unwrap();
    assert_eq!(cached.list(&stale_ok).await.unwrap().items.len(), 30);
    assert_eq!(cache.stats().reads_from_cache, 31);
}

#[tokio::test]
async fn a_load_in_pages_while_writes_go_on_holds_the_first_pages_revision_and_follows() {
    let store = Arc::new(MemKv::new().unwrap());
    let plain = Registry::new(store.clone());
    for i in 0..25 {
        plain
            .create(pod(&format!("p{i:02}"), ""), false)
            .await
            .unwrap();
    }
    let config = WatchCacheConfig {
        load_page: 3,
        ..WatchCacheConfig::default()
    };
    // Writes race the load's pages: creates, and deletes of keys not yet read.
    let writer = {
        let plain = Registry::new(store.clone());
        tokio::spawn(async move {
            for i in 0..10 {
                plain
                    .create(pod(&format!("q{i:02}"), ""), false)
                    .await
                    .unwrap();
                plain
                    .delete(
                        Kind::Pod,
                        "default",
                        &format!("p{:02}", 24 - i),
                        &DeleteOptions::default(),
                        false,
                    )
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let cache = loaded(&store, config).await;
    writer.await.unwrap();
    let cached = Registry::new(store.clone()).with_watch_cache(cache.clone());
    let list = cached
        .list(&ListOptions::all(Kind::Pod, Some("default")))
        .await
        .unwrap();
    let from_store = plain
        .list(&ListOptions::all(Kind::Pod, Some("default")))
        .await
        .unwrap();
    assert_eq!(names(&list.items), names(&from_store.items));
    assert_eq!(list.items.len(), 25);
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test]
async fn later_pages_are_read_at_the_first_pages_revision_from_memory() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let r = Registry::new(store.clone()).with_watch_cache(cache.clone());
    for i in 0..40 {
        r.create(pod(&format!("p{i:02}"), ""), false).await.unwrap();
    }
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.limit = 10;
    let first = r.list(&options).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, 30);
    assert_eq!(
        cache.stats().snapshots,
        1,
        "the first page kept its revision"
    );

    // The key space moves on between pages, and the cache applies it.
    r.delete(
        Kind::Pod,
        "default",
        "p27",
        &DeleteOptions::default(),
        false,
    )
    .await
    .unwrap();
    let last = r.create(pod("p99", ""), false).await.unwrap();
    let last: u64 = last.metadata().resource_version.parse().unwrap();
    assert!(cache.wait_for_revision(last, Duration::from_secs(5)).await);
    let before = cache.stats();

    let mut seen = names(&first.items);
    let mut token = first.continue_token;
    while let Some(t) = token {
        options.continue_token = Some(t);
        let page = r.list(&options).await.unwrap();
        assert_eq!(page.revision, first.revision, "every page at one revision");
        seen.extend(names(&page.items));
        token = page.continue_token;
    }
    let expected: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected);
    let after = cache.stats();
    assert_eq!(after.reads_from_store, 0, "{after:?}");
    assert_eq!(after.reads_from_cache - before.reads_from_cache, 3);
}

#[tokio::test]
async fn a_watch_from_the_cache_sees_what_a_watch_of_the_store_sees() {
    let store = Arc::new(MemKv::new().unwrap());
    let plain = Registry::new(store.clone());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let cached = Registry::new(store.clone()).with_watch_cache(cache.clone());
    let start = plain.create(pod("a", "app: web"), false).await.unwrap();
    let rv = start.metadata().resource_version.clone();
    let mut options = ListOptions::all(Kind::Pod, None);
    options.labels = Selector::parse("app=web").unwrap();
    let mut from_cache = Vec::new();
    for _ in 0..3 {
        from_cache.push(cached.watch(options.clone(), Some(&rv)).await.unwrap());
    }
    let mut from_store = plain.watch(options.clone(), Some(&rv)).await.unwrap();

    let b = plain.create(pod("b", "app: web"), false).await.unwrap();
    let mut relabelled = b.clone();
    relabelled
        .metadata_mut()
        .labels
        .insert("app".into(), "db".into());
    plain
        .update(relabelled, Subresource::Main, false)
        .await
        .unwrap();
    plain.create(pod("c", "app: db"), false).await.unwrap();
    plain
        .delete(Kind::Pod, "default", "a", &DeleteOptions::default(), false)
        .await
        .unwrap();

    let mut expected = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), from_store.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        expected.push(event);
    }
    let kinds: Vec<(WatchEventType, String)> = expected
        .iter()
        .map(|e| {
            (
                e.event_type,
                e.object.as_ref().unwrap().metadata().name.clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (WatchEventType::Added, "b".to_owned()),
            (WatchEventType::Deleted, "b".to_owned()),
            (WatchEventType::Deleted, "a".to_owned()),
        ]
    );
    for watch in &mut from_cache {
        for want in &expected {
            let got = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(
                (got.event_type, got.revision, &got.object),
                (want.event_type, want.revision, &want.object)
            );
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.watches_from_cache, 3, "{stats:?}");
    assert_eq!(stats.watches_from_store, 0, "{stats:?}");
}

#[test]
fn an_event_is_decoded_once_for_every_watcher() {
    let event = CachedEvent::new(raft_store::kv::Event {
        kind: raft_store::kv::EventKind::Put,
        kv: raft_store::kv::KeyValue::default(),
        prev_kv: None,
    });
    let decodes = std::sync::atomic::AtomicUsize::new(0);
    let decode = |_: &raft_store::kv::KeyValue| -> Decoded {
        decodes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Arc::new(pod("x", "")))
    };
    let first = event.object(decode).unwrap();
    let second = event.object(decode).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(decodes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(event.prev_object(decode).is_none());
}

/// Puts `n` raw values under `/registry/raw/`, one revision each; returns the first.
async fn put_many(store: &MemKv, n: usize) -> u64 {
    let mut first = 0;
    for i in 0..n {
        let op = Op::Put(PutRequest::new(
            format!("/registry/raw/k{}", i % 50),
            vec![7; 64],
        ));
        let response = store.write(op, None).await.unwrap();
        let revision = match response {
            raft_store::kv::KvResponse::Put(p) => p.revision,
            other => panic!("{other:?}"),
        };
        if first == 0 {
            first = revision;
        }
    }
    first
}

/// [`put_many`], each put applied by `cache` before the next, so that each goes out on the
/// live feed as a batch of its own: a watcher that does not read falls behind by `n`
/// batches.
async fn put_many_one_batch_each(store: &MemKv, cache: &WatchCache, n: usize) -> u64 {
    let first = store.revision() + 1;
    for _ in 0..n {
        put_many(store, 1).await;
        assert!(
            cache
                .wait_for_revision(store.revision(), Duration::from_secs(5))
                .await
        );
    }
    first
}

async fn revisions(changes: &mut CachedChanges, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("the watch stalled")
            .expect("the watch ended")
            .expect("the watch failed");
        got.push(next.revision());
    }
    got
}

#[tokio::test]
async fn a_watcher_behind_the_live_feed_reads_the_ring_again() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let from = store.revision() + 1;
    let mut watch = cache
        .watch(KeyRange::prefix("/registry/raw/"), from)
        .await
        .unwrap();
    // More batches than the live feed holds for an unread watcher.
    let n = LIVE_BACKLOG + 500;
    let first = put_many_one_batch_each(&store, &cache, n).await;
    assert_eq!(first, from);
    let got = revisions(&mut watch, n).await;
    assert_eq!(got, (from..from + n as u64).collect::<Vec<_>>());
    let stats = cache.stats();
    assert_eq!(stats.watches_from_store, 0, "the ring held them: {stats:?}");
}

#[tokio::test]
async fn a_watcher_the_ring_no_longer_covers_goes_on_from_the_store() {
    let store = Arc::new(MemKv::new().unwrap());
    let config = WatchCacheConfig {
        ring_bytes: 16 << 10,
        ..WatchCacheConfig::default()
    };
    let cache = loaded(&store, config).await;
    let from = store.revision() + 1;
    let mut behind = cache
        .watch(KeyRange::prefix("/registry/raw/"), from)
        .await
        .unwrap();
    let n = LIVE_BACKLOG + 500;
    put_many_one_batch_each(&store, &cache, n).await;
    let got = revisions(&mut behind, n).await;
    assert_eq!(got, (from..from + n as u64).collect::<Vec<_>>());
    assert_eq!(cache.stats().watches_from_store, 1);

    // A watch that starts before the ring's oldest revision reads the store from the start.
    let oldest = cache.stats().oldest_watchable;
    assert!(oldest > from + 1);
    let mut old = cache
        .watch(KeyRange::prefix("/registry/raw/"), from)
        .await
        .unwrap();
    assert_eq!(revisions(&mut old, 3).await, [from, from + 1, from + 2]);
    assert_eq!(cache.stats().watches_from_store, 2);
    assert!(cache.stats().ring_bytes <= 16 << 10);
}

#[tokio::test]
async fn history_the_store_compacted_is_refused_as_the_store_refuses_it() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let r = Registry::new(store.clone()).with_watch_cache(cache.clone());
    let from = store.revision() + 1;
    put_many(&store, 10).await;
    for i in 0..40 {
        r.create(pod(&format!("p{i:02}"), ""), false).await.unwrap();
    }
    let mut options = ListOptions::all(Kind::Pod, Some("default"));
    options.limit = 10;
    let first = r.list(&options).await.unwrap();
    let at = store.revision();
    assert!(cache.wait_for_revision(at, Duration::from_secs(5)).await);
    put_many(&store, 5).await;
    let compacted = store.revision();
    store
        .write(
            Op::Compact {
                revision: compacted,
            },
            None,
        )
        .await
        .unwrap();

    // The ring still holds revision `from`, the store no longer does.
    assert!(cache.stats().oldest_watchable <= from);
    let refused = cache.watch(KeyRange::prefix("/registry/raw/"), from).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Kv(raft_store::kv::KvError::Compacted { .. }))
        ),
        "a watch from compacted history: {:?}",
        refused.map(|_| ())
    );
    options.continue_token = first.continue_token;
    let expired = r.list(&options).await.unwrap_err();
    assert!(
        matches!(expired, crate::registry::RegistryError::Gone(_)),
        "a page at a compacted revision: {expired}"
    );

    // History the store keeps is still served from the cache.
    let mut kept = cache
        .watch(KeyRange::prefix("/registry/raw/"), compacted)
        .await
        .unwrap();
    assert_eq!(revisions(&mut kept, 1).await, [compacted]);
}

#[tokio::test]
async fn a_watcher_reads_each_live_batch_once_in_order_and_only_its_range() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let change = |revision: u64, key: &str| {
        Arc::new(CachedRevision::from_store(raft_store::kv::RevisionEvents {
            revision,
            events: vec![raft_store::kv::Event {
                kind: raft_store::kv::EventKind::Put,
                kv: raft_store::kv::KeyValue {
                    key: key.as_bytes().to_vec(),
                    value: b"v".to_vec(),
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                    lease: 0,
                },
                prev_kv: None,
            }],
        }))
    };
    let (live, receiver) = broadcast::channel(16);
    let mut watch = follow(
        cache.clone(),
        KeyRange::prefix("/registry/core/pods/"),
        101,
        vec![change(100, "/registry/core/pods/default/old")],
        receiver,
    );
    let pod = "/registry/core/pods/default/a";
    let lease = "/registry/coordination.k8s.io/leases/kube-node-lease/n";
    // A batch of four: one the backlog already passed, one of another range.
    live.send(Arc::new(vec![
        change(100, pod),
        change(101, pod),
        change(102, lease),
        change(103, pod),
    ]))
    .unwrap();
    // A batch that repeats a revision already read, then goes on.
    live.send(Arc::new(vec![change(103, pod), change(104, pod)]))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the watcher got the batch")
            .expect("the watch went on")
            .expect("no error");
        got.push(next.revision());
    }
    assert_eq!(got, vec![101, 103, 104]);
}

/// Creates the object `yaml` describes through `r`.
async fn create(r: &Registry<MemKv>, yaml: &str) -> Object {
    r.create(parse_object(yaml, "test").unwrap(), false)
        .await
        .unwrap()
}

/// A pod named `name` in namespace `ns`.
fn pod_in(name: &str, ns: &str) -> Object {
    let mut created = pod(name, "");
    created.metadata_mut().namespace = ns.to_owned();
    created
}

#[tokio::test]
async fn admission_reads_what_a_create_checks_from_the_cache() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let r = Registry::new(store.clone()).with_watch_cache(cache.clone());
    create(
        &r,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    )
    .await;
    create(
        &r,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: team}\n",
    )
    .await;
    let before = cache.stats();
    r.create(pod_in("p", "team"), false).await.unwrap();
    let after = cache.stats();
    // The namespace, its LimitRanges, the pod's ServiceAccount and the namespace's quotas:
    // four reads of memory, none of the store.
    assert_eq!(
        after.reads_from_cache - before.reads_from_cache,
        4,
        "{after:?}"
    );
    assert_eq!(after.reads_from_store, before.reads_from_store, "{after:?}");
}

#[tokio::test]
async fn a_quota_or_limit_range_written_through_a_master_binds_its_next_create() {
    let store = Arc::new(MemKv::new().unwrap());
    let cache = loaded(&store, WatchCacheConfig::default()).await;
    let r = Registry::new(store.clone()).with_watch_cache(cache.clone());
    // Each round writes an admission input and at once creates what it governs: the
    // cache may not have applied the write yet, and admission must still see it.
    for i in 0..20 {
        let ns = format!("team{i}");
        create(
            &r,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
        )
        .await;
        create(
            &r,
            &format!(
                "apiVersion: v1\nkind: LimitRange\nmetadata: {{name: l, namespace: {ns}}}\nspec:\n  limits:\n  - type: Container\n    default: {{cpu: 300m}}\n"
            ),
        )
        .await;
        let Object::Pod(first) = r.create(pod_in("defaulted", &ns), false).await.unwrap() else {
            panic!("not a pod")
        };
        let limits = &first.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .expect("the LimitRange's default limits")
            .limits;
        assert_eq!(
            limits.get("cpu").map(String::as_str),
            Some("300m"),
            "round {i}"
        );

        create(
            &r,
            &format!(
                "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q, namespace: {ns}}}\nspec:\n  hard: {{pods: '1'}}\n"
            ),
        )
        .await;
        let e = r.create(pod_in("over", &ns), false).await.unwrap_err();
        assert!(
            e.to_string().contains("exceeded quota: q"),
            "round {i}: {e}"
        );
    }
}

fn event(name: &str) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\ninvolvedObject: {{kind: Pod, name: a}}\nreason: Scheduled\n"
        ),
        "test",
    )
    .unwrap()
}

#[tokio::test]
async fn events_are_left_to_the_store_unless_the_cache_is_told_to_hold_them() {
    let store = Arc::new(MemKv::new().unwrap());
    let plain = Registry::new(store.clone());
    plain.create(event("e1"), false).await.unwrap();
    plain.create(pod("a", ""), false).await.unwrap();
    let mut held = Vec::new();
    for events in [false, true] {
        let config = WatchCacheConfig {
            events,
            ..WatchCacheConfig::default()
        };
        let cache = loaded(&store, config).await;
        let cached = Registry::new(store.clone()).with_watch_cache(cache.clone());
        let start = plain.create(event("e2"), false).await.unwrap();
        let rv = start.metadata().resource_version.clone();
        let options = ListOptions::all(Kind::Event, Some("default"));
        let mut watch = cached.watch(options.clone(), Some(&rv)).await.unwrap();
        let created = plain.create(event("e3"), false).await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(seen.object.as_ref(), Some(&created), "events: {events}");

        let before = cache.stats();
        let list = cached.list(&options).await.unwrap();
        assert_eq!(names(&list.items), ["e1", "e2", "e3"], "events: {events}");
        let pods = cached
            .list(&ListOptions::all(Kind::Pod, Some("default")))
            .await
            .unwrap();
        assert_eq!(names(&pods.items), ["a"]);
        let after = cache.stats();
        let from_store = after.reads_from_store - before.reads_from_store;
        let from_cache = after.reads_from_cache - before.reads_from_cache;
        if events {
            assert_eq!((from_cache, from_store), (2, 0), "{after:?}");
            assert_eq!(after.watches_from_store, 0, "{after:?}");
        } else {
            assert_eq!((from_cache, from_store), (1, 1), "{after:?}");
            assert_eq!(after.watches_from_store, 1, "{after:?}");
        }
        // The lists waited for the cache to apply e3.
        held.push(after.objects);
        for name in ["e2", "e3"] {
            plain
                .delete(
                    Kind::Event,
                    "default",
                    name,
                    &DeleteOptions::default(),
                    false,
                )
                .await
                .unwrap();
        }
    }
    assert_eq!(
        held[1] - held[0],
        3,
        "the three events, only when asked: {held:?}"
    );
}
