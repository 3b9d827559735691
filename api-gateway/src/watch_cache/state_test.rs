//! The cache's contents on their own: what a revision changes, what the ring holds, which
//! reads it can answer.

use std::time::{Duration, Instant};

use raft_store::kv::{Event, EventKind, KeyRange, KeyValue, RangeRequest, RevisionEvents};

use super::*;

fn kv(key: &str, value: &str, revision: u64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: 0,
    }
}

fn put(key: &str, value: &str, revision: u64) -> Event {
    Event {
        kind: EventKind::Put,
        kv: kv(key, value, revision),
        prev_kv: None,
    }
}

fn delete(key: &str, revision: u64) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.as_bytes().to_vec(),
            mod_revision: revision,
            ..KeyValue::default()
        },
        prev_kv: None,
    }
}

fn changes(revision: u64, events: Vec<Event>) -> RevisionEvents {
    RevisionEvents { revision, events }
}

fn pods() -> KeyRange {
    KeyRange::prefix("/registry/core/pods/")
}

fn keys(page: &CachedRange) -> Vec<String> {
    page.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

#[test]
fn a_revision_puts_and_deletes_keys_and_keys_outside_the_registry_are_not_held() {
    let mut state = CacheState::loaded(
        Arc::new(Scope::default()),
        vec![
            kv("/registry/core/pods/default/a", "1", 3),
            kv("/rafter/members/1", "x", 2),
        ],
        5,
        1 << 20,
    );
    assert_eq!(state.held().objects, 1, "only /registry/ keys are held");
    let shared = state
        .apply(changes(
            6,
            vec![
                put("/registry/core/pods/default/b", "2", 6),
                put("/rafter/members/2", "y", 6),
            ],
        ))
        .unwrap();
    assert_eq!(
        shared.events().len(),
        1,
        "the member key is not a watcher's change"
    );
    assert!(
        state
            .apply(changes(7, vec![put("/rafter/members/3", "z", 7)]))
            .is_none(),
        "a revision with no object key gives watchers nothing"
    );
    assert_eq!(
        state.held().revision,
        7,
        "but the cache is at that revision"
    );
    state.apply(changes(8, vec![delete("/registry/core/pods/default/a", 8)]));
    let page = state
        .range(&RangeRequest::new(pods()), Instant::now())
        .unwrap();
    assert_eq!(keys(&page), ["/registry/core/pods/default/b"]);
    assert_eq!(page.revision, 8);
    assert_eq!(page.kvs[0].mod_revision, 6);

    // A revision at or below the one held is not applied twice.
    assert!(state
        .apply(changes(
            8,
            vec![put("/registry/core/pods/default/c", "3", 8)]
        ))
        .is_none());
    assert_eq!(state.held().objects, 1);
}

#[test]
fn a_limited_read_counts_every_key_and_keeps_a_snapshot_for_the_next_page() {
    let names = ["a", "b", "c", "d"];
    let kvs = names
        .iter()
        .map(|n| kv(&format!("/registry/core/pods/default/{n}"), n, 2))
        .collect();
    let mut state = CacheState::loaded(Arc::new(Scope::default()), kvs, 2, 1 << 20);
    let now = Instant::now();
    let mut first = RangeRequest::new(pods());
    first.limit = 2;
    let page = state.range(&first, now).unwrap();
    assert_eq!(page.kvs.len(), 2);
    assert_eq!((page.count, page.more, page.revision), (4, true, 2));
    assert_eq!(state.held().snapshots, 1);

    // The key space moves on: d is deleted, e is created.
    state.apply(changes(
        3,
        vec![
            delete("/registry/core/pods/default/d", 3),
            put("/registry/core/pods/default/e", "e", 3),
        ],
    ));
    let mut next = RangeRequest::new(KeyRange::range(
        "/registry/core/pods/default/b\0",
        "/registry/core/pods0",
    ));
    next.revision = 2;
    let page = state.range(&next, now).unwrap();
    assert_eq!(
        keys(&page),
        [
            "/registry/core/pods/default/c",
            "/registry/core/pods/default/d"
        ],
        "the second page reads the first page's revision"
    );
    assert_eq!(page.revision, 2);

    // A revision no snapshot holds, and a snapshot past its lifetime, are not answered.
    next.revision = 1;
    assert!(state.range(&next, now).is_none());
    next.revision = 2;
    assert!(state.range(&next, now + Duration::from_secs(301)).is_none());

    // An unlimited read keeps nothing.
    let fresh = CacheState::loaded(Arc::new(Scope::default()), Vec::new(), 9, 1 << 20);
    fresh.range(&RangeRequest::new(pods()), now).unwrap();
    assert_eq!(fresh.held().snapshots, 0);
}

#[test]
fn the_ring_holds_changes_within_its_budget_and_says_when_it_no_longer_holds_them() {
    // Each revision is charged its decoded objects' estimate, a few KiB.
    let budget = 8 * rafter_proto::decoded_bytes(1);
    let mut state = CacheState::loaded(Arc::new(Scope::default()), Vec::new(), 10, budget);
    assert_eq!(state.changes_from(11).map(|c| c.len()), Some(0));
    assert!(
        state.changes_from(10).is_none(),
        "revision 10 is the load's"
    );
    for revision in 11..=30 {
        state.apply(changes(
            revision,
            vec![put("/registry/core/pods/default/a", "v", revision)],
        ));
    }
    let held = state.held();
    assert!(held.ring_bytes <= budget, "{held:?}");
    assert!(
        held.ring_revisions < 20,
        "the budget evicted the oldest: {held:?}"
    );
    let oldest = held.oldest_watchable;
    assert!(oldest > 11);
    let all = state.changes_from(oldest).unwrap();
    let revisions: Vec<u64> = all.iter().map(|r| r.revision()).collect();
    assert_eq!(revisions, (oldest..=30).collect::<Vec<_>>());
    assert!(state.changes_from(oldest - 1).is_none());
    assert_eq!(state.changes_from(31).map(|c| c.len()), Some(0));
}

#[test]
fn only_ranges_of_its_scope_are_read() {
    let mut state = CacheState::loaded(
        Arc::new(Scope::skipping(["/registry/core/events/"])),
        vec![kv("/registry/core/events/default/a", "x", 1)],
        1,
        1 << 20,
    );
    assert_eq!(
        state.held().objects,
        0,
        "a key outside the scope is not loaded"
    );
    let event = put("/registry/core/events/default/b", "y", 2);
    assert!(state.apply(changes(2, vec![event])).is_none());
    assert_eq!(state.revision(), 2, "the revision is followed all the same");
    let pod = put("/registry/core/pods/default/a", "z", 3);
    let event = put("/registry/core/events/default/c", "w", 3);
    let applied = state.apply(changes(3, vec![event, pod])).unwrap();
    assert_eq!(applied.events().len(), 1, "only the pod's change is held");
    let held = state.held();
    assert_eq!((held.objects, held.ring_revisions), (1, 1));
    assert!(state
        .range(
            &RangeRequest::new(KeyRange::prefix("/registry/core/events/")),
            Instant::now()
        )
        .is_none());
    assert!(state
        .range(&RangeRequest::new(pods()), Instant::now())
        .is_some());
    let state = CacheState::loaded(Arc::new(Scope::default()), Vec::new(), 1, 1 << 20);
    let mut keys_only = RangeRequest::new(pods());
    keys_only.keys_only = true;
    assert!(state.range(&keys_only, Instant::now()).is_none());
}

#[test]
fn a_change_is_charged_the_objects_decoded_from_it() {
    let key = "/registry/core/pods/default/a";
    let value = "x".repeat(300);
    let decoded = rafter_proto::decoded_bytes(value.len());
    let mut update = put(key, &value, 12);
    update.prev_kv = Some(kv(key, &value, 11));
    let charged = CachedRevision::from_store(changes(12, vec![update])).bytes();
    assert!(
        charged >= 2 * (value.len() + decoded),
        "an update decodes the object before and after: {charged}"
    );
    let mut gone = delete(key, 13);
    gone.prev_kv = Some(kv(key, &value, 12));
    let charged = CachedRevision::from_store(changes(13, vec![gone])).bytes();
    assert!(
        (value.len() + decoded..2 * decoded).contains(&charged),
        "a delete decodes only the object before: {charged}"
    );
}
