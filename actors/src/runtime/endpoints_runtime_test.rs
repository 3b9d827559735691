//! The Endpoints and EndpointSlice controllers on the actix runtime against the fake
//! cluster: a pod's readiness change reaches both within a second (the pod event wakes
//! the Services selecting it), nothing is rewritten once they agree, and both go with
//! their Service (the garbage collector follows their ownerReference); the Endpoints a
//! user writes for a Service without a selector are left alone and mirrored into a slice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rafter_proto::v1;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;

use super::fake::{FakeCluster, State};
use super::*;
use crate::action::{Action, ObjectKey};
use crate::csr::{CertificateSigner, RequestSubject};
use crate::testing::{pod, service};

const WAIT: Duration = Duration::from_secs(10);

/// This test signs nothing.
struct NoSigner;

impl CertificateSigner for NoSigner {
    fn subject(&self, _csr_pem: &str) -> Result<RequestSubject, String> {
        Err("no CSRs in this test".to_owned())
    }

    fn sign(
        &self,
        _csr_pem: &str,
        _signer_name: &str,
        _usages: &[String],
        _expiration_seconds: Option<i32>,
    ) -> Result<String, String> {
        Err("no CSRs in this test".to_owned())
    }
}

/// The ready and not-ready IPs of the Endpoints `web`.
fn endpoint_ips(state: &State) -> Option<(Vec<String>, Vec<String>)> {
    let key = ObjectKey::new(Kind::Endpoints, "default", "web");
    let Some(Object::Endpoints(ep)) = state.objects.get(&key) else {
        return None;
    };
    let mut ready: Vec<String> = Vec::new();
    let mut not_ready: Vec<String> = Vec::new();
    for subset in &ep.subsets {
        ready.extend(subset.addresses.iter().map(|a| a.ip.clone()));
        not_ready.extend(subset.not_ready_addresses.iter().map(|a| a.ip.clone()));
    }
    Some((ready, not_ready))
}

/// The IPs the slices of `web` mark ready, and how many slices there are.
fn slice_ready_ips(state: &State) -> (Vec<String>, usize) {
    let slices: Vec<&v1::EndpointSlice> = state
        .list(Kind::EndpointSlice)
        .into_iter()
        .filter_map(|o| match o {
            Object::EndpointSlice(s) => Some(s),
            _ => None,
        })
        .collect();
    let ready = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.clone())
        .collect();
    (ready, slices.len())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[actix_rt::test]
async fn a_readiness_change_reaches_endpoints_and_slices_within_a_second() {
    let cluster = FakeCluster::new(1);
    let mut svc = service("default", "web").port("http", 80, "8080").build();
    svc.metadata_mut().uid.clear();
    let svc = cluster.create(svc);
    for (i, ip) in ["10.244.1.5", "10.244.1.6", "10.244.2.3"]
        .iter()
        .enumerate()
    {
        let mut p = pod("default", &format!("web-{i}"))
            .label("app", "web")
            .node("n1")
            .serving(ip, true)
            .build();
        p.metadata_mut().uid.clear();
        cluster.create(p);
    }
    let (_leader, leadership) = watch::channel(Some(1));
    let config = RuntimeConfig {
        ..RuntimeConfig::default()
    };
    let _runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(NoSigner),
        leadership,
        config,
    );
    let all = strings(&["10.244.1.5", "10.244.1.6", "10.244.2.3"]);
    cluster
        .wait_until("three ready endpoints in both", WAIT, |s| {
            endpoint_ips(s) == Some((all.clone(), Vec::new()))
                && slice_ready_ips(s) == (all.clone(), 1)
        })
        .await;

    // Converged means quiet: neither controller rewrites what it wrote.
    let settled = cluster.state().attempts.len();
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        cluster.wait_until("no write", WAIT, |s| s.attempts.len() > settled),
    )
    .await;
    assert!(
        quiet.is_err(),
        "the controllers kept writing after converging"
    );

    let changed_at = Instant::now();
    cluster.modify_status(&ObjectKey::new(Kind::Pod, "default", "web-1"), |o| {
        if let Object::Pod(p) = o {
            let status = p.status.as_mut().unwrap();
            status.conditions[0].status = "False".to_owned();
        }
    });
    let rest = strings(&["10.244.1.5", "10.244.2.3"]);
    cluster
        .wait_until("web-1 not ready in both", WAIT, |s| {
            endpoint_ips(s) == Some((rest.clone(), strings(&["10.244.1.6"])))
                && slice_ready_ips(s) == (rest.clone(), 1)
        })
        .await;
    let took = changed_at.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Gone with the Service, through their ownerReferences.
    cluster.delete(&ObjectKey::of(&svc));
    cluster
        .wait_until("endpoints and slices collected", WAIT, |s| {
            endpoint_ips(s).is_none() && slice_ready_ips(s).1 == 0
        })
        .await;
    let state = cluster.state();
    let deletes = state
        .attempts
        .iter()
        .filter(|a| matches!(&a.action, Action::Delete { key, .. } if key.kind == Kind::Endpoints))
        .count();
    assert_eq!(deletes, 1);
}

#[actix_rt::test]
async fn user_endpoints_of_a_service_without_a_selector_are_left_alone_and_mirrored() {
    let cluster = FakeCluster::new(1);
    let mut svc = service("default", "web")
        .no_selector()
        .port("pg", 5432, "")
        .build();
    svc.metadata_mut().uid.clear();
    cluster.create(svc);
    let user = cluster.create(Object::Endpoints(v1::Endpoints {
        metadata: Some(v1::ObjectMeta {
            name: "web".to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        }),
        subsets: vec![v1::EndpointSubset {
            addresses: vec![v1::EndpointAddress {
                ip: "192.0.2.10".to_owned(),
                ..Default::default()
            }],
            ports: vec![v1::EndpointPort {
                name: "pg".to_owned(),
                port: 5432,
                protocol: "TCP".to_owned(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }));
    // A pod that would match, were there a selector (running, so bound: a pending one
    // would bring the scheduler's FailedScheduling event, a write of its own).
    let mut p = pod("default", "web-0")
        .label("app", "web")
        .node("n1")
        .serving("10.244.1.5", true)
        .build();
    p.metadata_mut().uid.clear();
    cluster.create(p);
    let (_leader, leadership) = watch::channel(Some(1));
    let config = RuntimeConfig {
        ..RuntimeConfig::default()
    };
    let _runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(NoSigner),
        leadership,
        config,
    );
    cluster
        .wait_until("the mirrored slice", WAIT, |s| {
            slice_ready_ips(s) == (strings(&["192.0.2.10"]), 1)
        })
        .await;
    let settled = cluster.state().attempts.len();
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        cluster.wait_until("no write", WAIT, |s| s.attempts.len() > settled),
    )
    .await;
    assert!(quiet.is_err(), "the controllers kept writing");
    let state = cluster.state();
    let key = ObjectKey::of(&user);
    assert_eq!(
        state.objects.get(&key),
        Some(&user),
        "the user's Endpoints changed"
    );
    assert!(
        !state.attempts.iter().any(|a| match &a.action {
            Action::Create(o) | Action::Update(o) => ObjectKey::of(o) == key,
            Action::Delete { key: k, .. } => *k == key,
            _ => false,
        }),
        "a controller wrote the user's Endpoints"
    );
}
