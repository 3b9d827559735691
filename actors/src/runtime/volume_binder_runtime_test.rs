//! The volume binder and the scheduler on the actix runtime against the fake cluster: a
//! pod waits for its claim, the claim binds when a fitting volume appears, then the pod
//! is placed.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::v1;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;

use super::fake::FakeCluster;
use super::*;
use crate::csr::{CertificateSigner, RequestSubject};
use crate::testing::{lease, node, pod};

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

fn storage(q: &str) -> rafter_proto::StringMap {
    rafter_proto::StringMap::from([("storage".to_owned(), q.to_owned())])
}

fn claim_phase(state: &super::fake::State, name: &str) -> String {
    state
        .list(Kind::PersistentVolumeClaim)
        .iter()
        .find_map(|o| match o {
            Object::PersistentVolumeClaim(c) if c.metadata.as_ref()?.name == name => {
                Some(c.status.clone().unwrap_or_default().phase)
            }
            _ => None,
        })
        .unwrap_or_default()
}

#[actix_rt::test]
async fn a_pod_waits_for_its_claim_which_binds_when_a_fitting_volume_appears() {
    let cluster = FakeCluster::new(1);
    let now = controller::wall_clock().unix_millis() / 1000;
    cluster.create(node("n0").build());
    let mut renewed = lease("n0", now);
    renewed.metadata_mut().uid.clear();
    cluster.create(renewed);
    cluster.create(Object::PersistentVolumeClaim(v1::PersistentVolumeClaim {
        metadata: Some(v1::ObjectMeta {
            name: "data".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(v1::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            resources: Some(v1::ResourceRequirements {
                requests: storage("1Gi"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let mut p = pod("default", "db").build();
    if let Object::Pod(p) = &mut p {
        p.metadata.as_mut().unwrap().uid.clear();
        p.spec.as_mut().unwrap().volumes = vec![v1::Volume {
            name: "data".into(),
            persistent_volume_claim: Some(v1::PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: false,
            }),
            ..Default::default()
        }];
    }
    cluster.create(p);

    let (_leader, leadership) = watch::channel(Some(1));
    let config = RuntimeConfig {
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(200),
        },
        ..RuntimeConfig::default()
    };
    let _runtime = ControllerRuntime::start(
        Arc::new(cluster.clone()),
        Arc::new(NoSigner),
        leadership,
        config,
    );

    cluster
        .wait_until("the claim Pending and the pod refused", WAIT, |s| {
            claim_phase(s, "data") == "Pending"
                && s.events.iter().any(|e| {
                    e.reason == "FailedScheduling"
                        && e.message == "pod has unbound immediate PersistentVolumeClaims"
                })
        })
        .await;
    assert_eq!(cluster.state().bound_pods(), 0);

    cluster.create(Object::PersistentVolume(v1::PersistentVolume {
        metadata: Some(v1::ObjectMeta {
            name: "pv-1".into(),
            ..Default::default()
        }),
        spec: Some(v1::PersistentVolumeSpec {
            capacity: storage("2Gi"),
            access_modes: vec!["ReadWriteOnce".into()],
            host_path: Some(v1::HostPathVolumeSource {
                path: "/srv/pv-1".into(),
                r#type: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    cluster
        .wait_until("the claim Bound and the pod placed", WAIT, |s| {
            claim_phase(s, "data") == "Bound" && s.bound_pods() == 1
        })
        .await;
    let state = cluster.state();
    let pv = state
        .list(Kind::PersistentVolume)
        .into_iter()
        .find_map(|o| match o {
            Object::PersistentVolume(pv) => Some(pv.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(pv.status.unwrap().phase, "Bound");
    assert_eq!(pv.spec.unwrap().claim_ref.unwrap().name, "data");
}
