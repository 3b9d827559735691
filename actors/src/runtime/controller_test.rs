//! The controller actor's timer: requeues come back on time, an earlier one re-arms it,
//! and nothing stays armed once nothing is delayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::*;
use crate::action::{ObjectKey, Reconciled};
use crate::cache::{Cache, CacheWriter};
use crate::runtime::fake::FakeCluster;
use crate::runtime::informer::Change;
use crate::runtime::RuntimeConfig;
use rafter_proto::Kind;

/// Reconciles `"slow"` (every key after a lead), which asks to come back in an hour, and
/// `"fast"` (woken by any change), which asks to come back after 20 ms until it has been
/// reconciled `fast_rounds` times.
struct Requeuer {
    counts: Counts,
    fast_rounds: usize,
}

impl Reconciler for Requeuer {
    type Key = &'static str;

    fn name(&self) -> &'static str {
        "requeuer"
    }

    fn keys_for(&mut self, _: &Cache, _: &Change, keys: &mut Vec<&'static str>) {
        keys.push("fast");
    }

    fn all_keys(&self, _: &Cache) -> Vec<&'static str> {
        vec!["slow"]
    }

    fn reconcile(&mut self, _: &Cache, key: &&'static str, _: Timestamp, _: u64) -> Reconciled {
        let mut counts = self.counts.lock().unwrap();
        let count = counts.entry(*key).or_insert(0);
        *count += 1;
        let requeue_after = match *key {
            "slow" => Some(Duration::from_secs(3600)),
            _ if *count < self.fast_rounds => Some(Duration::from_millis(20)),
            _ => None,
        };
        Reconciled {
            actions: Vec::new(),
            requeue_after,
        }
    }
}

/// How often each key was reconciled.
type Counts = Arc<Mutex<HashMap<&'static str, usize>>>;

/// Whether the controller has a timer armed, and for when.
#[derive(Message)]
#[rtype(result = "Option<Instant>")]
struct Armed;

impl Handler<Armed> for Controller<Requeuer> {
    type Result = Option<Instant>;

    fn handle(&mut self, _: Armed, _: &mut Self::Context) -> Option<Instant> {
        self.timer.as_ref().map(|(at, _)| *at)
    }
}

fn start(fast_rounds: usize) -> (Addr<Controller<Requeuer>>, Counts) {
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let reconciler = Requeuer {
        counts: Arc::clone(&counts),
        fast_rounds,
    };
    let controller = Controller::new(
        reconciler,
        Arc::new(FakeCluster::new(1)),
        CacheWriter::new().reader(),
        RuntimeConfig::default(),
    );
    (controller.start(), counts)
}

fn count(counts: &Mutex<HashMap<&'static str, usize>>, key: &str) -> usize {
    counts.lock().unwrap().get(key).copied().unwrap_or(0)
}

#[actix_rt::test]
async fn a_sooner_requeue_re_arms_the_timer_and_nothing_stays_armed_after_the_last() {
    let (addr, counts) = start(4);
    addr.send(Lead { term: Some(1) }).await.unwrap();
    let hour = addr
        .send(Armed)
        .await
        .unwrap()
        .expect("slow's requeue is armed");
    assert!(hour > Instant::now() + Duration::from_secs(3000));

    // A change wakes "fast", whose 20 ms requeue is due long before the armed hour.
    let change = Change {
        key: ObjectKey::new(Kind::Pod, "default", "web"),
        old: None,
        new: None,
    };
    addr.send(CacheUpdate {
        revision: 2,
        changes: Arc::new(vec![change]),
        relisted: false,
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&counts, "fast") < 4 {
        assert!(
            Instant::now() < deadline,
            "the 20 ms requeues did not come back (fast reconciled {} times): the hour-long \
             timer armed first was not replaced by the sooner one",
            count(&counts, "fast")
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        count(&counts, "slow"),
        1,
        "the hour-long requeue fired early"
    );
    let armed = addr.send(Armed).await.unwrap();
    assert_eq!(
        armed,
        Some(hour),
        "once fast stops asking, the timer is the hour-long requeue's again"
    );
    assert_eq!(
        count(&counts, "fast"),
        4,
        "fast stops asking after its fourth round"
    );
}

#[actix_rt::test]
async fn a_follower_arms_no_timer_and_losing_the_lead_disarms_it() {
    let (addr, counts) = start(1);
    addr.send(Lead { term: None }).await.unwrap();
    assert_eq!(
        addr.send(Armed).await.unwrap(),
        None,
        "a follower arms nothing"
    );
    assert_eq!(count(&counts, "slow"), 0);

    addr.send(Lead { term: Some(1) }).await.unwrap();
    assert!(
        addr.send(Armed).await.unwrap().is_some(),
        "the leader's hour-long requeue is armed"
    );
    addr.send(Lead { term: None }).await.unwrap();
    assert_eq!(
        addr.send(Armed).await.unwrap(),
        None,
        "losing the lead cancels the timer"
    );
}
