//! The scheduling queue: what each change wakes, and when an unschedulable pod comes back.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::{Kind, Object};

use super::*;
use crate::action::ObjectKey;
use crate::testing::{node, pod};

fn change(old: Option<Object>, new: Option<Object>) -> Change {
    let object = new.as_ref().or(old.as_ref()).map(ObjectKey::of);
    Change {
        key: object.unwrap_or_else(|| ObjectKey::new(Kind::Pod, "", "")),
        old: old.map(Arc::new),
        new: new.map(Arc::new),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds)
}

fn name(n: &str) -> PodName {
    ("default".to_owned(), n.to_owned())
}

/// A queue in which pod `web` fit no node at `at(0)`.
fn with_unschedulable_web() -> SchedulingQueue {
    let mut queue = SchedulingQueue::default();
    let web = pod("default", "web").build();
    assert_eq!(
        queue.observe(&change(None, Some(web))),
        Some(SchedulingPass::Changes)
    );
    assert_eq!(queue.take(at(0)), vec![name("web")]);
    queue.failed([name("web")], at(0));
    queue
}

#[test]
fn a_new_pod_is_tried_once_and_then_waits_until_its_retry() {
    let mut queue = with_unschedulable_web();
    assert_eq!(queue.unschedulable_len(), 1);

    // Its status changes (a condition written): nothing a filter reads.
    let old = pod("default", "web").build();
    let mut new = pod("default", "web").build_pod();
    new.status.get_or_insert_with(Default::default).reason = "Unschedulable".to_owned();
    assert_eq!(
        queue.observe(&change(Some(old), Some(Object::Pod(new)))),
        None
    );

    assert!(queue.take(at(30)).is_empty(), "it waits for its retry");
    assert_eq!(queue.next_retry(at(30)), Some(Duration::from_secs(30)));
    assert_eq!(queue.take(at(60)), vec![name("web")], "the wait is over");
    assert_eq!(queue.unschedulable_len(), 0);
}

#[test]
fn a_change_of_the_pods_spec_or_labels_tries_it_at_once() {
    let mut queue = with_unschedulable_web();
    let old = pod("default", "web").build();
    let new = pod("default", "web").label("tier", "front").build();
    assert_eq!(
        queue.observe(&change(Some(old), Some(new))),
        Some(SchedulingPass::Changes)
    );
    assert_eq!(queue.take(at(1)), vec![name("web")]);
}

#[test]
fn a_node_that_may_fit_more_brings_every_pending_pod_back_and_a_heartbeat_does_not() {
    let mut queue = SchedulingQueue::default();
    let n1 = node("n1").build();
    assert_eq!(
        queue.observe(&change(None, Some(n1.clone()))),
        None,
        "no pod waits: nothing to try"
    );

    let mut queue = with_unschedulable_web();
    assert_eq!(
        queue.observe(&change(None, Some(n1))),
        Some(SchedulingPass::Everything),
        "a new node"
    );
    let mut beat = node("n1").build_node();
    if let Some(status) = beat.status.as_mut() {
        status.conditions[0].last_heartbeat_time = Some("2026-12-07T07:00:00Z".to_owned());
    }
    assert_eq!(
        queue.observe(&change(Some(node("n1").build()), Some(Object::Node(beat)))),
        None,
        "a heartbeat changes nothing a filter reads"
    );
    for (what, new) in [
        ("labels", node("n1").label("disk", "ssd").build()),
        ("taints", node("n1").taint("k", "v", "NoSchedule").build()),
        (
            "allocatable",
            node("n1").allocatable("8", "16Gi", "110").build(),
        ),
        ("Ready", node("n1").ready("False").build()),
    ] {
        assert_eq!(
            queue.observe(&change(Some(node("n1").build()), Some(new))),
            Some(SchedulingPass::Everything),
            "{what}"
        );
    }
    assert_eq!(
        queue.observe(&change(Some(node("n1").build()), None)),
        None,
        "a node removed lets nothing fit"
    );
}

#[test]
fn a_bound_pod_that_leaves_or_finishes_frees_room_and_a_pending_one_does_not() {
    let mut queue = with_unschedulable_web();
    let bound = pod("default", "db").node("n1").build();
    assert_eq!(
        queue.observe(&change(Some(bound.clone()), None)),
        Some(SchedulingPass::Everything),
        "deleted"
    );
    let done = pod("default", "db").node("n1").phase("Succeeded").build();
    assert_eq!(
        queue.observe(&change(Some(bound), Some(done))),
        Some(SchedulingPass::Everything),
        "finished"
    );

    let pending = pod("default", "other").build();
    assert_eq!(queue.observe(&change(Some(pending), None)), None);
}

#[test]
fn a_deleted_pending_pod_is_forgotten_and_a_failed_bind_is_tried_again() {
    let mut queue = with_unschedulable_web();
    assert_eq!(
        queue.observe(&change(Some(pod("default", "web").build()), None)),
        None
    );
    assert!(
        queue.take(at(600)).is_empty(),
        "the deleted pod is not tried"
    );
    assert_eq!(queue.next_retry(at(600)), None);

    queue.retry("default", "api");
    assert_eq!(queue.take(at(600)), vec![name("api")]);
}

#[test]
fn everything_empties_the_queue() {
    let mut queue = with_unschedulable_web();
    queue.observe(&change(None, Some(pod("default", "api").build())));
    queue.take_everything();
    assert_eq!(queue.unschedulable_len(), 0);
    assert!(queue.take(at(600)).is_empty());
}

#[test]
fn a_pod_that_failed_again_waits_from_its_last_failure() {
    let mut queue = with_unschedulable_web();
    let old = pod("default", "web").build();
    let new = pod("default", "web").label("tier", "front").build();
    queue.observe(&change(Some(old), Some(new)));
    assert_eq!(queue.take(at(30)), vec![name("web")]);
    queue.failed([name("web")], at(30));
    assert_eq!(queue.next_retry(at(30)), Some(Duration::from_secs(60)));
    assert!(
        queue.take(at(60)).is_empty(),
        "its first failure no longer counts"
    );
    assert_eq!(queue.take(at(90)), vec![name("web")]);
    assert_eq!(queue.next_retry(at(90)), None);
}

/// A queue in which pods `names` were created in that order.
fn with_created(names: &[&str]) -> SchedulingQueue {
    let mut queue = SchedulingQueue::default();
    for n in names {
        let created = pod("default", n).build();
        assert_eq!(
            queue.observe(&change(None, Some(created))),
            Some(SchedulingPass::Changes)
        );
    }
    queue
}

#[test]
fn a_capped_pass_takes_the_pods_active_longest_and_leaves_the_rest_active() {
    let mut queue = with_created(&["a", "b", "c", "d", "e"]);
    assert_eq!(queue.take_up_to(at(0), 2), vec![name("a"), name("b")]);
    assert_eq!(queue.active_len(), 3);
    assert_eq!(queue.take_up_to(at(0), 2), vec![name("c"), name("d")]);
    assert_eq!(queue.take_up_to(at(0), 2), vec![name("e")]);
    assert_eq!(queue.active_len(), 0);
    assert!(queue.take_up_to(at(0), 2).is_empty());
}

#[test]
fn a_pod_that_left_the_queue_is_not_taken_and_a_returning_one_is_taken_once() {
    let mut queue = with_created(&["a", "b", "c"]);
    // `a` is deleted, `b` changes (still active: it keeps its place).
    let a = pod("default", "a").build();
    assert_eq!(queue.observe(&change(Some(a), None)), None);
    let b = pod("default", "b").build();
    let mut b2 = pod("default", "b").build_pod();
    b2.metadata.get_or_insert_with(Default::default).labels =
        [("tier".to_owned(), "web".to_owned())].into();
    assert_eq!(
        queue.observe(&change(Some(b), Some(Object::Pod(b2)))),
        Some(SchedulingPass::Changes)
    );
    assert_eq!(queue.take_up_to(at(0), 10), vec![name("b"), name("c")]);
    // `b`'s Binding failed: it is active again, once.
    queue.retry("default", "b");
    queue.retry("default", "b");
    assert_eq!(queue.take_up_to(at(0), 10), vec![name("b")]);
}

#[test]
fn unschedulable_pods_whose_wait_is_over_queue_behind_the_active_ones() {
    let mut queue = with_unschedulable_web();
    let api = pod("default", "api").build();
    queue.observe(&change(None, Some(api)));
    assert_eq!(queue.take_up_to(at(60), 1), vec![name("api")]);
    assert_eq!(queue.active_len(), 1, "web waits for the next pass");
    assert_eq!(queue.take_up_to(at(60), 1), vec![name("web")]);
}

#[test]
fn activating_every_pending_pod_keeps_the_order_given_and_each_pod_once() {
    let mut queue = with_created(&["b"]);
    queue.activate_all([name("a"), name("b"), name("c")]);
    assert_eq!(queue.active_len(), 3);
    assert_eq!(
        queue.take(at(0)),
        vec![name("b"), name("a"), name("c")],
        "b was active already and keeps its place"
    );
}
