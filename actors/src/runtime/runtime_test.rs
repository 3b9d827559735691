//! The runtime's actors on an actix System against the fake cluster.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rafter_proto::v1;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;

use super::fake::{Attempt, FakeCluster};
use super::*;
use crate::action::{Action, ObjectKey};
use crate::csr::{CertificateSigner, RequestSubject, KUBELET_CLIENT, KUBELET_SERVING};
use crate::testing::{deployment, lease, node, pod};
use crate::{SchedulingPass, Timestamp};

const WAIT: Duration = Duration::from_secs(10);

/// A signer whose "PEM" is `CN;O[;IP,...]`, issuing `CERT(<request>)`.
struct TestSigner;

impl CertificateSigner for TestSigner {
    fn subject(&self, csr_pem: &str) -> Result<RequestSubject, String> {
        let mut parts = csr_pem.split(';');
        let (Some(cn), Some(o)) = (parts.next(), parts.next()) else {
            return Err("unparsable".to_owned());
        };
        Ok(RequestSubject {
            common_name: cn.to_owned(),
            organizations: vec![o.to_owned()],
            ip_addresses: parts
                .next()
                .map(|ips| ips.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            ..Default::default()
        })
    }

    fn sign(
        &self,
        csr_pem: &str,
        _signer_name: &str,
        _usages: &[String],
        _expiration_seconds: Option<i32>,
    ) -> Result<String, String> {
        Ok(format!("CERT({csr_pem})"))
    }
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(200),
        },
        ..RuntimeConfig::default()
    }
}

struct Harness {
    cluster: FakeCluster,
    leader: watch::Sender<Option<u64>>,
    runtime: ControllerRuntime,
}

impl Harness {
    fn start(cluster: &FakeCluster, term: Option<u64>) -> Harness {
        let (leader, leadership) = watch::channel(term);
        let runtime = ControllerRuntime::start(
            Arc::new(cluster.clone()),
            Arc::new(TestSigner),
            leadership,
            config(),
        );
        Harness {
            cluster: cluster.clone(),
            leader,
            runtime,
        }
    }

    async fn wait_status(&self, what: &str, done: impl Fn(&RuntimeStatus) -> bool) {
        let mut status = self.runtime.status();
        tokio::time::timeout(WAIT, status.wait_for(|s| done(s)))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for the runtime: {what}"))
            .expect("status channel");
    }
}

/// The FailedScheduling events a scheduling pass records.
fn failed_scheduling(r: &crate::action::Reconciled) -> usize {
    r.actions
        .iter()
        .filter(|a| matches!(a, Action::RecordEvent(e) if e.reason == "FailedScheduling"))
        .count()
}

/// Ready nodes whose agents renewed their Leases just now.
fn nodes(cluster: &FakeCluster, count: usize) {
    let now = controller::wall_clock().unix_millis() / 1000;
    for i in 0..count {
        let name = format!("n{i}");
        cluster.create(node(&name).build());
        let mut renewed = lease(&name, now);
        renewed.metadata_mut().uid.clear();
        cluster.create(renewed);
    }
}

fn web(replicas: i32) -> Object {
    let mut d = deployment("default", "web", replicas);
    d.metadata.as_mut().unwrap().uid.clear();
    Object::Deployment(d)
}

fn replica_sets(cluster: &FakeCluster) -> usize {
    cluster.state().list(Kind::ReplicaSet).len()
}

/// With a budget of Scheduled events (no refill, a burst of 4), forty pods are all bound
/// but only four Scheduled events are written.
#[actix_rt::test]
async fn a_budget_of_scheduled_events_binds_every_pod_and_writes_only_the_burst() {
    let cluster = FakeCluster::new(1);
    nodes(&cluster, 3);
    cluster.create(web(40));
    let (_leader, leadership) = watch::channel(Some(1));
    let _runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(TestSigner),
        leadership,
        RuntimeConfig {
            scheduled_events: Some(crate::runtime::EventRate {
                per_second: 0.0,
                burst: 4,
            }),
            ..config()
        },
    );
    cluster
        .wait_until("40 pods bound and their deployment's status", WAIT, |s| {
            s.pods().len() == 40
                && s.bound_pods() == 40
                && s.list(Kind::Deployment).iter().any(|d| match d {
                    Object::Deployment(d) => d.status.as_ref().is_some_and(|st| st.replicas == 40),
                    _ => false,
                })
        })
        .await;
    let state = cluster.state();
    let scheduled = state
        .events
        .iter()
        .filter(|e| e.reason == "Scheduled")
        .count();
    assert_eq!(scheduled, 4, "the burst, and no refill");
    assert!(
        state.events.iter().any(|e| e.reason == "SuccessfulCreate"),
        "other events are not budgeted"
    );
}

#[actix_rt::test]
async fn a_deployment_of_ten_replicas_converges_with_every_pod_bound() {
    let cluster = FakeCluster::new(1);
    nodes(&cluster, 3);
    cluster.create(web(10));
    let h = Harness::start(&cluster, Some(1));
    h.cluster
        .wait_until("10 pods bound", WAIT, |s| {
            s.pods().len() == 10 && s.bound_pods() == 10
        })
        .await;
    // A pod's Scheduled event is a write of its own after its Binding, so it may land
    // after the pod shows as bound.
    h.cluster
        .wait_until("10 Scheduled events", WAIT, |s| {
            s.events.iter().filter(|e| e.reason == "Scheduled").count() >= 10
        })
        .await;
    h.cluster
        .wait_until("deployment status", WAIT, |s| {
            s.list(Kind::Deployment).iter().any(|d| match d {
                Object::Deployment(d) => d.status.as_ref().is_some_and(|st| st.replicas == 10),
                _ => false,
            })
        })
        .await;
    {
        let state = cluster.state();
        assert_eq!(
            state.list(Kind::ReplicaSet).len(),
            1,
            "exactly one ReplicaSet"
        );
        let binds = state
            .attempts
            .iter()
            .filter(|a| matches!(a.action, Action::Bind { .. }) && a.result.is_ok())
            .count();
        assert_eq!(binds, 10, "each pod bound once by the scheduler");
        let scheduled = state
            .events
            .iter()
            .filter(|e| e.reason == "Scheduled")
            .count();
        assert_eq!(scheduled, 10);
        assert!(state.attempts.iter().all(|a| a.term == 1));
        let mut per_node = std::collections::BTreeMap::new();
        for p in state.pods() {
            *per_node
                .entry(p.spec.as_ref().unwrap().node_name.clone())
                .or_insert(0) += 1;
        }
        assert_eq!(per_node.len(), 3, "replicas are spread: {per_node:?}");
    }
    let status = h.runtime.status().borrow().clone();
    assert_eq!(status.active_term, Some(1));
    assert!(status.last_handover.is_some());

    // Converged means quiet: no controller keeps rewriting what it already wrote (the
    // clock moves on; conditions must not churn with it).
    let settled = cluster.state().attempts.len();
    let quiet = tokio::time::timeout(
        Duration::from_millis(2500),
        h.cluster
            .wait_until("no write", WAIT, |s| s.attempts.len() > settled),
    )
    .await;
    assert!(quiet.is_err(), "controllers kept writing after converging");
}

#[actix_rt::test]
async fn leadership_loss_stops_writes_and_a_new_term_resumes_without_a_duplicate_replica_set() {
    let cluster = FakeCluster::new(1);
    nodes(&cluster, 2);
    let d = cluster.create(web(10));
    let h = Harness::start(&cluster, Some(1));
    h.cluster
        .wait_until("the ReplicaSet and some pods", WAIT, |s| {
            !s.list(Kind::ReplicaSet).is_empty() && !s.pods().is_empty()
        })
        .await;

    // Another master wins term 2; this one learns it lost.
    cluster.set_term(2);
    h.leader.send_replace(None);
    h.wait_status("stopped", |s| s.active_term.is_none() && s.stops == 1)
        .await;
    let stopped_at = cluster.state().attempts.len();
    cluster.modify(&ObjectKey::of(&d), |o| {
        if let Object::Deployment(d) = o {
            d.spec.as_mut().unwrap().replicas = Some(12);
        }
    });
    // Nothing may be written while not leading: give the actors time to misbehave.
    let quiet = tokio::time::timeout(
        Duration::from_millis(300),
        h.cluster
            .wait_until("no write", WAIT, |s| s.attempts.len() > stopped_at),
    )
    .await;
    assert!(quiet.is_err(), "a write was attempted while not leading");

    // This master leads again in term 4 (after term 2's leader failed).
    cluster.set_term(4);
    h.leader.send_replace(Some(4));
    h.cluster
        .wait_until("12 pods bound", WAIT, |s| {
            s.pods().len() == 12 && s.bound_pods() == 12
        })
        .await;
    let state = cluster.state();
    assert_eq!(
        state.list(Kind::ReplicaSet).len(),
        1,
        "no duplicate ReplicaSet"
    );
    assert!(state.attempts[stopped_at..].iter().all(|a| a.term == 4));
    drop(state);
    assert_eq!(replica_sets(&cluster), 1);
    let status = h.runtime.status().borrow().clone();
    assert_eq!((status.active_term, status.activations), (Some(4), 2));
}

/// A CertificateSigningRequest `name` for `signer`, filed by `username`, whose (test
/// signer's) request text is `request`.
fn signing_request(
    name: &str,
    request: &str,
    signer: &str,
    usages: &[&str],
    username: &str,
) -> Object {
    Object::CertificateSigningRequest(v1::CertificateSigningRequest {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::CertificateSigningRequestSpec {
            request: base64::engine::general_purpose::STANDARD.encode(request),
            signer_name: signer.to_owned(),
            usages: usages.iter().map(|u| (*u).to_owned()).collect(),
            username: username.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Waits until the CSR `name` carries a certificate.
async fn wait_for_certificate(cluster: &FakeCluster, name: &str) {
    let key = ObjectKey::new(Kind::CertificateSigningRequest, "", name);
    cluster
        .wait_until(&format!("a certificate for {name}"), WAIT, |s| {
            match s.objects.get(&key) {
                Some(Object::CertificateSigningRequest(c)) => c
                    .status
                    .as_ref()
                    .is_some_and(|st| !st.certificate.is_empty()),
                _ => false,
            }
        })
        .await;
}

#[actix_rt::test]
async fn an_approved_kubelet_csr_is_signed_by_the_signer() {
    let cluster = FakeCluster::new(1);
    cluster.create(signing_request(
        "node-n1",
        "system:node:n1;system:nodes",
        KUBELET_CLIENT,
        &["digital signature", "client auth"],
        "system:bootstrap:abc123",
    ));
    let _h = Harness::start(&cluster, Some(1));
    wait_for_certificate(&cluster, "node-n1").await;
    let key = ObjectKey::new(Kind::CertificateSigningRequest, "", "node-n1");
    let Some(Object::CertificateSigningRequest(csr)) = cluster.get(&key) else {
        panic!("the CSR is gone");
    };
    let status = csr.status.unwrap();
    let approved = status
        .conditions
        .iter()
        .find(|c| c.r#type == "Approved")
        .unwrap();
    assert_eq!(approved.reason, "AutoApproved");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(status.certificate)
        .unwrap();
    assert_eq!(pem, b"CERT(system:node:n1;system:nodes)");
}

#[actix_rt::test]
async fn a_nodes_serving_request_for_its_own_address_is_approved_and_signed() {
    let cluster = FakeCluster::new(1);
    cluster.create(signing_request(
        "serving-n1",
        "system:node:n1;system:nodes;10.0.0.5",
        KUBELET_SERVING,
        &["digital signature", "server auth"],
        "system:node:n1",
    ));
    let _h = Harness::start(&cluster, Some(1));
    // The agent files its request while it registers: the Node (with the address) may
    // arrive before or after the controller first looks at the request (the requeue on
    // a Node change is tested on its own below).
    let mut registered = node("n1").build_node();
    registered
        .status
        .get_or_insert_with(Default::default)
        .addresses
        .push(v1::NodeAddress {
            r#type: "InternalIP".to_owned(),
            address: "10.0.0.5".to_owned(),
        });
    cluster.create(Object::Node(registered));
    wait_for_certificate(&cluster, "serving-n1").await;
}

#[actix_rt::test]
async fn a_pod_that_fits_no_node_stays_pending_with_a_failed_scheduling_event_until_a_node_it_fits_joins(
) {
    let cluster = FakeCluster::new(1);
    cluster.create(node("small").allocatable("1", "1Gi", "10").build());
    let mut renewed = lease("small", controller::wall_clock().unix_millis() / 1000);
    renewed.metadata_mut().uid.clear();
    cluster.create(renewed);
    let mut big = pod("default", "big").requests("2", "100Mi").build();
    big.metadata_mut().uid.clear();
    cluster.create(big);
    let _h = Harness::start(&cluster, Some(1));
    cluster
        .wait_until("FailedScheduling", WAIT, |s| {
            s.events.iter().any(|e| e.reason == "FailedScheduling")
        })
        .await;
    {
        let state = cluster.state();
        let event = state
            .events
            .iter()
            .find(|e| e.reason == "FailedScheduling")
            .unwrap();
        assert_eq!(event.involved.name, "big");
        assert!(
            event.message.contains("0/1 nodes are available"),
            "{}",
            event.message
        );
        assert!(
            event.message.to_lowercase().contains("cpu"),
            "{}",
            event.message
        );
        assert_eq!(state.bound_pods(), 0);
    }

    // A node it fits joins: the pod is tried again at once, not after its minute's wait
    // (nor the 30 s resync).
    cluster.create(node("large").allocatable("4", "8Gi", "10").build());
    let mut renewed = lease("large", controller::wall_clock().unix_millis() / 1000);
    renewed.metadata_mut().uid.clear();
    cluster.create(renewed);
    cluster
        .wait_until("big bound", WAIT, |s| s.bound_pods() == 1)
        .await;
}

#[actix_rt::test]
async fn a_broken_change_feed_is_listed_again_and_controllers_keep_converging() {
    let cluster = FakeCluster::new(1);
    nodes(&cluster, 1);
    let h = Harness::start(&cluster, Some(1));
    h.wait_status("leading", |s| s.active_term == Some(1)).await;
    cluster.break_feeds();
    cluster.create(web(3));
    h.cluster
        .wait_until("3 pods bound", WAIT, |s| s.bound_pods() == 3)
        .await;
    assert_eq!(replica_sets(&cluster), 1);
}

#[actix_rt::test]
async fn nothing_is_written_by_a_master_that_never_leads() {
    let cluster = FakeCluster::new(1);
    nodes(&cluster, 1);
    cluster.create(web(3));
    let h = Harness::start(&cluster, None);
    let quiet = tokio::time::timeout(
        Duration::from_millis(300),
        cluster.wait_until("a write", WAIT, |s| !s.attempts.is_empty()),
    )
    .await;
    assert!(quiet.is_err());
    assert_eq!(h.runtime.status().borrow().activations, 0);
}

#[actix_rt::test]
async fn pipelined_binds_place_every_pod_once_within_capacity_and_failed_binds_are_retried() {
    let cluster = FakeCluster::new(1);
    let now = controller::wall_clock().unix_millis() / 1000;
    for i in 0..10 {
        let name = format!("n{i}");
        cluster.create(node(&name).allocatable("4", "8Gi", "12").build());
        let mut renewed = lease(&name, now);
        renewed.metadata_mut().uid.clear();
        cluster.create(renewed);
    }
    cluster.state().failing_binds = 7;
    let (_leader, leadership) = watch::channel(Some(1));
    let _runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(TestSigner),
        leadership,
        RuntimeConfig {
            pipelined_writes: 3,
            ..config()
        },
    );
    // Pods keep arriving while earlier binds are in flight.
    for i in 0..120 {
        let mut p = pod("default", &format!("p{i}"))
            .requests("250m", "256Mi")
            .build();
        p.metadata_mut().uid.clear();
        cluster.create(p);
        if i % 40 == 39 {
            tokio::task::yield_now().await;
        }
    }
    cluster
        .wait_until("120 pods bound", WAIT, |s| s.bound_pods() == 120)
        .await;
    // Each pod's Scheduled event is recorded once its Binding is written: none for the
    // failed ones, so every pod has one, naming the node it is bound to.
    cluster
        .wait_until("120 Scheduled events", WAIT, |s| {
            s.events.iter().filter(|e| e.reason == "Scheduled").count() >= 120
        })
        .await;
    let state = cluster.state();
    let mut scheduled: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for event in state.events.iter().filter(|e| e.reason == "Scheduled") {
        let pod = event.involved.name.clone();
        scheduled
            .entry(pod)
            .or_default()
            .push(event.message.clone());
    }
    assert_eq!(scheduled.len(), 120, "every pod has its event");
    for p in state.pods() {
        let meta = p.metadata.as_ref().unwrap();
        let node = &p.spec.as_ref().unwrap().node_name;
        assert_eq!(
            scheduled[&meta.name],
            [format!(
                "Successfully assigned default/{} to {node}",
                meta.name
            )],
            "one event, for the binding that was written"
        );
    }
    let mut per_node = std::collections::BTreeMap::new();
    for p in state.pods() {
        *per_node
            .entry(p.spec.as_ref().unwrap().node_name.clone())
            .or_insert(0) += 1;
    }
    assert!(
        per_node.values().all(|n| *n <= 12),
        "no node above its 12 pods: {per_node:?}"
    );
    let binds: Vec<&Attempt> = state
        .attempts
        .iter()
        .filter(|a| matches!(a.action, Action::Bind { .. }))
        .collect();
    let failed = binds.iter().filter(|a| a.result.is_err()).count();
    assert_eq!(failed, 7, "the failed binds were the injected ones");
    assert_eq!(binds.len() - failed, 120, "each pod bound exactly once");
    assert_eq!(state.failing_binds, 0);
}

#[test]
fn a_node_change_brings_back_that_nodes_pending_serving_requests() {
    let pending = v1::CertificateSigningRequest {
        metadata: Some(v1::ObjectMeta {
            name: "serving-n1".to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::CertificateSigningRequestSpec {
            signer_name: KUBELET_SERVING.to_owned(),
            username: "system:node:n1".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let n1 = node("n1").build();
    let cache = crate::cache::Cache::from_objects([
        Object::CertificateSigningRequest(pending),
        n1.clone(),
        node("n2").build(),
    ]);
    let mut csrs = Csrs {
        signer: Arc::new(TestSigner),
    };
    let change = |name: &str, new: Option<Object>| Change {
        key: ObjectKey::new(Kind::Node, "", name),
        old: None,
        new: new.map(Arc::new),
    };
    let mut keys = Vec::new();
    csrs.keys_for(&cache, &change("n1", Some(n1)), &mut keys);
    assert_eq!(
        keys,
        [ObjectKey::new(
            Kind::CertificateSigningRequest,
            "",
            "serving-n1"
        )]
    );
    keys.clear();
    csrs.keys_for(&cache, &change("n2", Some(node("n2").build())), &mut keys);
    csrs.keys_for(&cache, &change("n1", None), &mut keys);
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn a_new_pod_costs_one_placement_while_the_unschedulable_pods_wait() {
    let mut objects: Vec<Object> = (0..50)
        .map(|i| {
            pod("default", &format!("big-{i}"))
                .requests("8", "1Gi")
                .build()
        })
        .collect();
    objects.push(node("small").allocatable("1", "1Gi", "110").build());
    let now = controller::wall_clock();
    let mut scheduler = Scheduler::default();
    let cache = crate::cache::Cache::from_objects(objects.clone());
    let first = scheduler.reconcile(&cache, &SchedulingPass::Everything, now, 1);
    assert_eq!(failed_scheduling(&first), 50);
    assert_eq!(first.requeue_after, Some(crate::UNSCHEDULABLE_RETRY));

    let web = pod("default", "web").requests("100m", "10Mi").build();
    objects.push(web.clone());
    let cache = crate::cache::Cache::from_objects(objects);
    let mut keys = Vec::new();
    let created = Change {
        key: ObjectKey::of(&web),
        old: None,
        new: Some(Arc::new(web)),
    };
    scheduler.keys_for(&cache, &created, &mut keys);
    assert_eq!(keys, [SchedulingPass::Changes]);
    let later = Timestamp::from_unix_millis(now.unix_millis() + 1_000);
    let second = scheduler.reconcile(&cache, &SchedulingPass::Changes, later, 2);
    assert_eq!(
        failed_scheduling(&second),
        0,
        "the 50 that fit nowhere were not tried again"
    );
    assert!(
        second
            .actions
            .iter()
            .any(|a| matches!(a, Action::Bind { name, .. } if name == "web")),
        "{:?}",
        second.actions
    );
    assert_eq!(second.requeue_after, Some(Duration::from_secs(59)));

    let retry = Timestamp::from_unix_millis(now.unix_millis() + 60_000);
    let third = scheduler.reconcile(&cache, &SchedulingPass::Changes, retry, 3);
    assert_eq!(
        failed_scheduling(&third),
        50,
        "after their wait they are tried again"
    );
}

#[test]
fn a_pass_places_at_most_its_cap_and_the_next_passes_place_the_rest() {
    let cap = 300;
    let total = cap + 100;
    let mut objects: Vec<Object> = (0..total)
        .map(|i| {
            pod("default", &format!("p-{i:05}"))
                .requests("10m", "1Mi")
                .build()
        })
        .collect();
    // Five pods that fit no node, first in the queue's order (same age, names sort first).
    objects.extend((0..5).map(|i| {
        pod("default", &format!("a-big-{i}"))
            .requests("100", "1Gi")
            .build()
    }));
    objects.extend((0..50).map(|i| {
        node(&format!("n-{i}"))
            .allocatable("64", "256Gi", "110")
            .build()
    }));
    let cache = crate::cache::Cache::from_objects(objects);
    let now = controller::wall_clock();
    let mut scheduler = Scheduler::with_pods_per_pass(cap);
    let binds = |r: &crate::action::Reconciled| -> Vec<String> {
        r.actions
            .iter()
            .filter_map(|a| match a {
                Action::Bind { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };

    let first = scheduler.reconcile(&cache, &SchedulingPass::Everything, now, 1);
    let mut bound = binds(&first);
    assert_eq!(bound.len(), cap - 5);
    assert_eq!(failed_scheduling(&first), 5);
    assert_eq!(
        first.requeue_after,
        Some(Duration::ZERO),
        "pods are left: the next pass follows at once"
    );
    assert_eq!(
        scheduler.requeue_key(&SchedulingPass::Everything),
        SchedulingPass::Changes,
        "what is left is in the queue: no second pass over every pending pod"
    );
    // The cache does not show the Bindings yet: the next pass places only the others.
    let second = scheduler.reconcile(&cache, &SchedulingPass::Changes, now, 2);
    bound.extend(binds(&second));
    assert_eq!(
        failed_scheduling(&second),
        0,
        "the pods that fit nowhere wait for their retry"
    );
    assert_eq!(
        second.requeue_after,
        Some(crate::UNSCHEDULABLE_RETRY),
        "only the retry is left"
    );
    bound.sort();
    bound.dedup();
    assert_eq!(bound.len(), total, "every pod placed once");
}
