//! The Service allocation repair loop on an actix System against the fake cluster: it
//! runs while this master leads, in the leader's term, again every interval, and its
//! findings become Warning events about the Services, once per leadership each.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::Kind;
use tokio::sync::watch;

use super::fake::FakeCluster;
use super::*;
use crate::action::{EventType, ObjectKey};
use crate::csr::{CertificateSigner, RequestSubject};

const WAIT: Duration = Duration::from_secs(10);

struct NoSigner;

impl CertificateSigner for NoSigner {
    fn subject(&self, _csr_pem: &str) -> Result<RequestSubject, String> {
        Err("no signing in this test".to_owned())
    }

    fn sign(&self, _: &str, _: &str, _: &[String], _: Option<i32>) -> Result<String, String> {
        Err("no signing in this test".to_owned())
    }
}

/// Starts the controllers over `cluster` with a repair pass every `interval`; the
/// leadership to send them, and the runtime.
fn repairing(
    cluster: &FakeCluster,
    interval: Duration,
) -> (watch::Sender<Option<u64>>, ControllerRuntime) {
    let (leader, leadership) = watch::channel(None);
    let runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(NoSigner),
        leadership,
        RuntimeConfig {
            allocation_repair: Some(interval),
            ..RuntimeConfig::default()
        },
    );
    (leader, runtime)
}

/// A pass that finds one problem, `reason`, with Service default/old.
fn problem_of_old(reason: &str, message: &str) -> AllocationRepair {
    AllocationRepair {
        released: vec![],
        restored: vec![],
        problems: vec![AllocationProblem {
            namespace: "default".into(),
            name: "old".into(),
            uid: "uid-old".into(),
            reason: reason.into(),
            message: message.into(),
        }],
    }
}

#[actix_rt::test]
async fn the_repair_pass_runs_on_the_leader_in_its_term_and_reports_as_events() {
    let cluster = FakeCluster::new(1);
    cluster.state().repair_answer = AllocationRepair {
        released: vec!["ClusterIP 10.96.0.9 of deleted Service \"team/db\"".to_owned()],
        restored: vec![],
        problems: vec![AllocationProblem {
            namespace: "default".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            reason: "PortAlreadyAllocated".into(),
            message: "node port 30080/TCP is also held by another Service".into(),
        }],
    };
    let (leader, runtime) = repairing(&cluster, Duration::from_millis(30));

    let recorded = |state: &super::fake::State| {
        state
            .events
            .iter()
            .filter(|e| e.reason == "PortAlreadyAllocated")
            .count()
    };
    leader.send_replace(Some(1));
    cluster
        .wait_until("three passes in term 1, the event recorded", WAIT, |s| {
            s.repairs.len() >= 3 && recorded(s) >= 1
        })
        .await;
    {
        let state = cluster.state();
        assert!(state.repairs.iter().all(|t| *t == 1), "{:?}", state.repairs);
        assert_eq!(recorded(&state), 1, "a problem that stays is recorded once");
        let event = state
            .events
            .iter()
            .find(|e| e.reason == "PortAlreadyAllocated")
            .expect("an event about the Service");
        assert_eq!(
            event.involved,
            ObjectKey::new(Kind::Service, "default", "web")
        );
        assert_eq!(event.involved_uid, "uid-web");
        assert_eq!(event.event_type, EventType::Warning);
        assert!(event.message.contains("30080/TCP"), "{}", event.message);
    }

    // Another master leads in term 2; then this one again, in term 3.
    cluster.set_term(2);
    leader.send_replace(None);
    let mut status = runtime.status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.active_term.is_none()))
        .await
        .expect("stopped")
        .expect("status");
    cluster.set_term(3);
    leader.send_replace(Some(3));
    cluster
        .wait_until("the problem recorded again in term 3", WAIT, |s| {
            s.repairs.iter().filter(|t| **t == 3).count() >= 2 && recorded(s) >= 2
        })
        .await;
    let state = cluster.state();
    assert_eq!(recorded(&state), 2, "once per leadership");
    assert!(
        state.repairs.iter().all(|t| *t == 1 || *t == 3),
        "only the leader's terms: {:?}",
        state.repairs
    );
    drop(state);
    runtime.stop();
}

#[actix_rt::test]
async fn a_problem_whose_event_was_not_written_is_recorded_at_a_later_pass() {
    let cluster = FakeCluster::new(1);
    {
        let mut state = cluster.state();
        state.repair_answer = problem_of_old(
            "ClusterIPOutOfRange",
            "10.200.0.77 is outside 10.201.0.0/24",
        );
        // A new leader's first writes may be refused (the store settling after a restart).
        state.failing_events = 2;
    }
    let (leader, runtime) = repairing(&cluster, Duration::from_millis(30));
    leader.send_replace(Some(1));
    cluster
        .wait_until("the event recorded after two failed writes", WAIT, |s| {
            s.failing_events == 0 && s.events.iter().any(|e| e.reason == "ClusterIPOutOfRange")
        })
        .await;
    cluster
        .wait_until("two more passes", WAIT, |s| s.repairs.len() >= 6)
        .await;
    let recorded = cluster
        .state()
        .events
        .iter()
        .filter(|e| e.reason == "ClusterIPOutOfRange")
        .count();
    assert_eq!(recorded, 1, "recorded once it was written, and only once");
    runtime.stop();
}

/// A new leader's first writes may be refused for a while (its controllers' roles still
/// being created after a restart): the pass is made again after a back-off, not a whole
/// interval later, both when the pass fails and when its event is not written.
#[actix_rt::test]
async fn a_failed_pass_or_event_is_tried_again_well_before_the_next_interval() {
    let cluster = FakeCluster::new(1);
    {
        let mut state = cluster.state();
        state.repair_answer = problem_of_old(
            "PortOutOfRange",
            "node port 30050/TCP is outside 31000-31099",
        );
        state.failing_repairs = 1;
        state.failing_events = 2;
    }
    // Far beyond this test's deadline: only the back-off can make the passes.
    let (leader, runtime) = repairing(&cluster, Duration::from_secs(3600));
    leader.send_replace(Some(1));
    cluster
        .wait_until(
            "the event recorded after a failed pass and two failed writes",
            WAIT,
            |s| s.events.iter().any(|e| e.reason == "PortOutOfRange"),
        )
        .await;
    let state = cluster.state();
    assert_eq!((state.failing_repairs, state.failing_events), (0, 0));
    // After the failed pass, three answered: one per event write.
    assert_eq!(state.repairs, vec![1, 1, 1], "a pass per failed write");
    drop(state);
    runtime.stop();
}
