//! Seats handed to flows in turn, full queues and long waits refused, and no seat lost to a
//! request that went away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;

fn control(seats: usize, queue_length: usize) -> Arc<FlowControl> {
    FlowControl::new(FlowControlConfig {
        seats,
        queue_length,
        queue_wait: Duration::from_secs(15),
    })
}

type Seated = mpsc::UnboundedSender<(&'static str, oneshot::Sender<()>)>;

/// Starts a request of `user` that, once seated, reports `label` and holds its seat until
/// told to go.
fn spawn_request(
    control: &Arc<FlowControl>,
    user: &'static str,
    label: &'static str,
    seated: &Seated,
) -> JoinHandle<Result<(), Throttled>> {
    let (c, s) = (Arc::clone(control), seated.clone());
    tokio::spawn(async move {
        let seat = c.seat(user, false).await?;
        let (done, go) = oneshot::channel();
        let _ = s.send((label, done));
        let _ = go.await;
        drop(seat);
        Ok(())
    })
}

/// [`spawn_request`] for a request that must wait: returns once it is in its queue.
async fn queued(
    control: &Arc<FlowControl>,
    user: &'static str,
    label: &'static str,
    seated: &Seated,
) -> JoinHandle<Result<(), Throttled>> {
    let before = control.waiting();
    let task = spawn_request(control, user, label, seated);
    tokio::time::timeout(Duration::from_secs(5), async {
        while control.waiting() == before {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the request queued");
    task
}

#[tokio::test]
async fn a_freed_seat_goes_to_the_flows_in_turn_not_to_the_longest_queue() {
    let control = control(1, 16);
    let (seated_tx, mut seated) = mpsc::unbounded_channel();
    let _first = spawn_request(&control, "heavy", "heavy-1", &seated_tx);
    let (label, release_first) = seated.recv().await.expect("seated");
    assert_eq!(label, "heavy-1");
    let mut tasks = Vec::new();
    for label in ["heavy-2", "heavy-3", "heavy-4"] {
        tasks.push(queued(&control, "heavy", label, &seated_tx).await);
    }
    tasks.push(queued(&control, "light", "light-1", &seated_tx).await);
    assert_eq!(control.waiting(), 4);

    let mut order = Vec::new();
    let _ = release_first.send(());
    for _ in 0..4 {
        let (label, release) = seated.recv().await.expect("seated in turn");
        order.push(label);
        let _ = release.send(());
    }
    assert_eq!(order, ["heavy-2", "light-1", "heavy-3", "heavy-4"]);
    for task in tasks {
        task.await.expect("joined").expect("seated");
    }
    assert_eq!(control.waiting(), 0);
    assert_eq!(control.queues().free, 1, "every seat back");
}

#[tokio::test]
async fn a_full_queue_refuses_its_user_alone_naming_it() {
    let control = control(1, 2);
    let held = control.seat("busy", false).await.expect("a free seat");
    let (seated_tx, _seated) = mpsc::unbounded_channel();
    let _a = queued(&control, "busy", "busy-2", &seated_tx).await;
    let _b = queued(&control, "busy", "busy-3", &seated_tx).await;
    let refused = control
        .seat("busy", false)
        .await
        .expect_err("its queue is full");
    assert_eq!(
        refused,
        Throttled::QueueFull {
            user: "busy".into(),
            waiting: 2
        }
    );
    assert!(refused.to_string().contains("\"busy\""), "{refused}");
    // Another user still queues, and the exempt are served at once.
    let _c = queued(&control, "other", "other-1", &seated_tx).await;
    assert_eq!(control.waiting(), 3);
    let exempt = control.seat("admin", true).await;
    assert!(exempt.is_ok());
    drop(held);
}

#[tokio::test]
async fn a_request_that_waits_too_long_is_refused_and_takes_no_seat_with_it() {
    let control = FlowControl::new(FlowControlConfig {
        seats: 1,
        queue_length: 8,
        queue_wait: Duration::from_millis(200),
    });
    let held = control.seat("a", false).await.expect("a free seat");
    let refused = control
        .seat("b", false)
        .await
        .expect_err("no seat within the wait");
    assert!(
        matches!(&refused, Throttled::WaitedTooLong { user, .. } if user == "b"),
        "{refused:?}"
    );
    assert_eq!(control.waiting(), 0, "it left its queue");
    drop(held);
    let again = control.seat("b", false).await;
    assert!(again.is_ok(), "the seat came back");
}

#[tokio::test]
async fn a_request_that_went_away_while_waiting_does_not_keep_a_seat() {
    let control = control(1, 8);
    let held = control.seat("a", false).await.expect("a free seat");
    let c = Arc::clone(&control);
    let waiting = tokio::spawn(async move { c.seat("b", false).await.map(drop) });
    while control.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    waiting.abort();
    let _ = waiting.await;
    drop(held);
    let next = tokio::time::timeout(Duration::from_secs(5), control.seat("c", false))
        .await
        .expect("not left waiting for a seat the gone request took");
    assert!(next.is_ok());
}

#[tokio::test]
async fn no_seats_to_count_serves_everyone_at_once() {
    let control = control(0, 0);
    let seats: Vec<Seat> = futures::future::join_all((0..100).map(|_| control.seat("u", false)))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("no limit");
    assert_eq!(seats.len(), 100);
    assert_eq!(control.waiting(), 0);
}
