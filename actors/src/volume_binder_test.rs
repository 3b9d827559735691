use rafter_proto::v1::{
    self, LabelSelector, ObjectMeta, ObjectReference, PersistentVolume, PersistentVolumeClaim,
};
use rafter_proto::{Kind, Object};

use super::*;

fn storage(q: &str) -> rafter_proto::StringMap {
    rafter_proto::StringMap::from([("storage".to_owned(), q.to_owned())])
}

fn pv(name: &str, size: &str, modes: &[&str]) -> PersistentVolume {
    PersistentVolume {
        metadata: Some(ObjectMeta {
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }),
        spec: Some(v1::PersistentVolumeSpec {
            capacity: storage(size),
            access_modes: modes.iter().map(|m| m.to_string()).collect(),
            host_path: Some(v1::HostPathVolumeSource {
                path: format!("/data/{name}"),
                r#type: String::new(),
            }),
            ..Default::default()
        }),
        status: Some(v1::PersistentVolumeStatus {
            phase: "Available".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn claim(name: &str, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: Some(ObjectMeta {
            name: name.to_owned(),
            namespace: "ns".to_owned(),
            uid: format!("uid-{name}"),
            ..Default::default()
        }),
        spec: Some(v1::PersistentVolumeClaimSpec {
            access_modes: modes.iter().map(|m| m.to_string()).collect(),
            resources: Some(v1::ResourceRequirements {
                requests: storage(size),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn reference(claim_name: &str, uid: &str) -> Option<ObjectReference> {
    Some(ObjectReference {
        kind: "PersistentVolumeClaim".to_owned(),
        namespace: "ns".to_owned(),
        name: claim_name.to_owned(),
        uid: uid.to_owned(),
        ..Default::default()
    })
}

fn run(claim: PersistentVolumeClaim, pvs: Vec<PersistentVolume>) -> Reconciled {
    let key = ObjectKey::new(
        Kind::PersistentVolumeClaim,
        "ns",
        claim.metadata.as_ref().unwrap().name.clone(),
    );
    let mut objects = vec![Object::PersistentVolumeClaim(claim)];
    objects.extend(pvs.into_iter().map(Object::PersistentVolume));
    reconcile(&Cache::from_objects(objects), &key)
}

/// The PV a pass binds the claim to, if any.
fn bound_to(r: &Reconciled) -> Option<String> {
    r.actions.iter().find_map(|a| match a {
        Action::Update(Object::PersistentVolumeClaim(c)) => {
            Some(c.spec.as_ref()?.volume_name.clone())
        }
        _ => None,
    })
}

#[test]
fn a_pending_claim_is_bound_to_a_fitting_volume_on_both_sides() {
    let r = run(
        claim("data", "1Gi", &["ReadWriteOnce"]),
        vec![pv("pv-1", "2Gi", &["ReadWriteOnce", "ReadOnlyMany"])],
    );
    let [Action::Update(Object::PersistentVolume(pv)), Action::UpdateStatus(Object::PersistentVolume(pv_status)), Action::Update(Object::PersistentVolumeClaim(pvc)), Action::UpdateStatus(Object::PersistentVolumeClaim(pvc_status))] =
        &r.actions[..]
    else {
        panic!("unexpected actions {:#?}", r.actions);
    };
    let claim_ref = pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(
        (
            claim_ref.namespace.as_str(),
            claim_ref.name.as_str(),
            claim_ref.uid.as_str()
        ),
        ("ns", "data", "uid-data")
    );
    assert_eq!(pv_status.status.as_ref().unwrap().phase, "Bound");
    assert_eq!(pvc.spec.as_ref().unwrap().volume_name, "pv-1");
    assert_eq!(
        pvc.metadata.as_ref().unwrap().annotations[BIND_COMPLETED_ANNOTATION],
        "yes"
    );
    let status = pvc_status.status.as_ref().unwrap();
    assert_eq!(status.phase, "Bound");
    assert_eq!(status.capacity, storage("2Gi"));
    assert_eq!(status.access_modes, vec!["ReadWriteOnce", "ReadOnlyMany"]);
}

#[test]
fn the_binder_picks_the_volume_the_rules_allow() {
    let rwo = &["ReadWriteOnce"][..];
    let with = |mut p: PersistentVolume, f: &dyn Fn(&mut PersistentVolume)| {
        f(&mut p);
        p
    };
    let classy = |c: &str| {
        let mut cl = claim("data", "1Gi", rwo);
        cl.spec.as_mut().unwrap().storage_class_name = Some(c.to_owned());
        cl
    };
    let selecting = {
        let mut cl = claim("data", "1Gi", rwo);
        cl.spec.as_mut().unwrap().selector = Some(LabelSelector {
            match_labels: rafter_proto::StringMap::from([("tier".to_owned(), "fast".to_owned())]),
            ..Default::default()
        });
        cl
    };
    let cases: Vec<(
        &str,
        PersistentVolumeClaim,
        Vec<PersistentVolume>,
        Option<&str>,
    )> = vec![
        (
            "too small",
            claim("data", "1Gi", rwo),
            vec![pv("small", "512Mi", rwo)],
            None,
        ),
        (
            "exactly the size asked",
            claim("data", "1Gi", rwo),
            vec![pv("exact", "1024Mi", rwo)],
            Some("exact"),
        ),
        (
            "an access mode missing",
            claim("data", "1Gi", &["ReadWriteMany"]),
            vec![pv("rwo", "5Gi", rwo)],
            None,
        ),
        (
            "the smallest that fits",
            claim("data", "1Gi", rwo),
            vec![
                pv("big", "10Gi", rwo),
                pv("tiny", "100Mi", rwo),
                pv("mid", "2Gi", rwo),
            ],
            Some("mid"),
        ),
        (
            "storage class must match",
            classy("fast"),
            vec![pv("plain", "5Gi", rwo)],
            None,
        ),
        (
            "storage class matches",
            classy("fast"),
            vec![
                pv("plain", "1Gi", rwo),
                with(pv("fast", "5Gi", rwo), &|p| {
                    p.spec.as_mut().unwrap().storage_class_name = "fast".into()
                }),
            ],
            Some("fast"),
        ),
        (
            "a class-less claim skips classed volumes",
            claim("data", "1Gi", rwo),
            vec![with(pv("fast", "5Gi", rwo), &|p| {
                p.spec.as_mut().unwrap().storage_class_name = "fast".into()
            })],
            None,
        ),
        (
            "bound to another claim",
            claim("data", "1Gi", rwo),
            vec![with(pv("taken", "5Gi", rwo), &|p| {
                p.spec.as_mut().unwrap().claim_ref = reference("other", "uid-other");
                p.status.as_mut().unwrap().phase = "Bound".into();
            })],
            None,
        ),
        (
            "released volumes are not reused",
            claim("data", "1Gi", rwo),
            vec![with(pv("released", "5Gi", rwo), &|p| {
                p.status.as_mut().unwrap().phase = "Released".into();
            })],
            None,
        ),
        (
            "pre-bound by name wins over a smaller free one",
            claim("data", "1Gi", rwo),
            vec![
                pv("free", "1Gi", rwo),
                with(pv("reserved", "5Gi", rwo), &|p| {
                    p.spec.as_mut().unwrap().claim_ref = reference("data", "");
                }),
            ],
            Some("reserved"),
        ),
        (
            "selector must match the volume's labels",
            selecting.clone(),
            vec![pv("unlabelled", "5Gi", rwo)],
            None,
        ),
        (
            "selector matches",
            selecting,
            vec![
                pv("unlabelled", "1Gi", rwo),
                with(pv("labelled", "5Gi", rwo), &|p| {
                    p.metadata
                        .as_mut()
                        .unwrap()
                        .labels
                        .insert("tier".into(), "fast".into());
                }),
            ],
            Some("labelled"),
        ),
        (
            "block volumes do not serve filesystem claims",
            claim("data", "1Gi", rwo),
            vec![with(pv("block", "5Gi", rwo), &|p| {
                p.spec.as_mut().unwrap().volume_mode = "Block".into();
            })],
            None,
        ),
    ];
    for (what, claim, pvs, want) in cases {
        let r = run(claim, pvs);
        assert_eq!(bound_to(&r).as_deref(), want, "{what}: {:#?}", r.actions);
        if want.is_none() {
            let event = r
                .events()
                .next()
                .unwrap_or_else(|| panic!("{what}: no event"));
            assert_eq!(event.reason, "FailedBinding", "{what}");
        }
    }
}

#[test]
fn an_unmatched_claim_is_marked_pending_once() {
    let r = run(claim("data", "1Gi", &["ReadWriteOnce"]), vec![]);
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::UpdateStatus(Object::PersistentVolumeClaim(c)) if c.status.as_ref().unwrap().phase == "Pending"
    )));
    let mut pending = claim("data", "1Gi", &["ReadWriteOnce"]);
    pending.status = Some(v1::PersistentVolumeClaimStatus {
        phase: "Pending".into(),
        ..Default::default()
    });
    assert_eq!(run(pending, vec![]).actions, vec![]);
}

#[test]
fn a_half_done_binding_is_finished_and_a_done_one_left_alone() {
    let rwo = &["ReadWriteOnce"][..];
    let mut c = claim("data", "1Gi", rwo);
    c.spec.as_mut().unwrap().volume_name = "pv-1".into();
    let mut v = pv("pv-1", "1Gi", rwo);
    v.spec.as_mut().unwrap().claim_ref = reference("data", "uid-data");
    // The PV names the claim and the claim the PV, but neither status says Bound yet.
    let r = run(c.clone(), vec![v.clone()]);
    let kinds: Vec<&str> = r
        .actions
        .iter()
        .map(|a| match a {
            Action::Update(Object::PersistentVolumeClaim(_)) => "update claim",
            Action::UpdateStatus(Object::PersistentVolume(_)) => "pv status",
            Action::UpdateStatus(Object::PersistentVolumeClaim(_)) => "claim status",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["pv status", "update claim", "claim status"]);

    v.status.as_mut().unwrap().phase = "Bound".into();
    c.metadata
        .as_mut()
        .unwrap()
        .annotations
        .insert(BIND_COMPLETED_ANNOTATION.into(), "yes".into());
    c.status = Some(v1::PersistentVolumeClaimStatus {
        phase: "Bound".into(),
        access_modes: vec!["ReadWriteOnce".into()],
        capacity: storage("1Gi"),
    });
    assert_eq!(run(c, vec![v]).actions, vec![]);
}

#[test]
fn a_claim_whose_volume_went_to_another_claim_or_away_is_lost_once_bound() {
    let rwo = &["ReadWriteOnce"][..];
    let mut c = claim("data", "1Gi", rwo);
    c.spec.as_mut().unwrap().volume_name = "pv-1".into();
    let mut other = pv("pv-1", "1Gi", rwo);
    other.spec.as_mut().unwrap().claim_ref = reference("other", "uid-other");
    let r = run(c.clone(), vec![other]);
    assert_eq!(bound_to(&r), None);
    assert_eq!(r.events().next().unwrap().reason, "FailedBinding");
    c.status = Some(v1::PersistentVolumeClaimStatus {
        phase: "Bound".into(),
        ..Default::default()
    });
    let r = run(c, vec![]);
    assert_eq!(r.events().next().unwrap().reason, "ClaimLost");
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::UpdateStatus(Object::PersistentVolumeClaim(c)) if c.status.as_ref().unwrap().phase == "Lost"
    )));
}

#[test]
fn a_pod_waits_for_its_claims_to_be_bound() {
    let pod = |claims: &[&str]| v1::Pod {
        metadata: Some(ObjectMeta {
            name: "p".into(),
            namespace: "ns".into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            volumes: claims
                .iter()
                .map(|c| v1::Volume {
                    name: c.to_string(),
                    persistent_volume_claim: Some(v1::PersistentVolumeClaimVolumeSource {
                        claim_name: c.to_string(),
                        read_only: false,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut bound = claim("bound", "1Gi", &["ReadWriteOnce"]);
    bound.spec.as_mut().unwrap().volume_name = "pv-1".into();
    bound.status = Some(v1::PersistentVolumeClaimStatus {
        phase: "Bound".into(),
        ..Default::default()
    });
    let cache = Cache::from_objects([
        Object::PersistentVolumeClaim(bound),
        Object::PersistentVolumeClaim(claim("pending", "1Gi", &["ReadWriteOnce"])),
    ]);
    assert_eq!(unbound_claim(&cache, &pod(&[])), None);
    assert_eq!(unbound_claim(&cache, &pod(&["bound"])), None);
    assert_eq!(
        unbound_claim(&cache, &pod(&["bound", "pending"])).as_deref(),
        Some("pod has unbound immediate PersistentVolumeClaims")
    );
    assert_eq!(
        unbound_claim(&cache, &pod(&["pending", "gone"])).as_deref(),
        Some("persistentvolumeclaim \"gone\" not found")
    );
}

#[test]
fn a_volume_whose_claim_is_gone_or_replaced_is_released() {
    let rwo = &["ReadWriteOnce"][..];
    let bound_pv = |uid: &str| {
        let mut v = pv("pv-1", "1Gi", rwo);
        v.spec.as_mut().unwrap().claim_ref = reference("data", uid);
        v.status.as_mut().unwrap().phase = "Bound".into();
        v
    };
    let key = ObjectKey::new(Kind::PersistentVolume, "", "pv-1");
    let released = |objects: Vec<Object>| {
        let r = reconcile_volume(&Cache::from_objects(objects), &key);
        r.actions.iter().any(|a| matches!(
            a,
            Action::UpdateStatus(Object::PersistentVolume(p)) if p.status.as_ref().unwrap().phase == "Released"
        ))
    };
    let live = Object::PersistentVolumeClaim(claim("data", "1Gi", rwo));
    let mut replaced = claim("data", "1Gi", rwo);
    replaced.metadata.as_mut().unwrap().uid = "uid-new".into();
    let cases: Vec<(&str, Vec<Object>, bool)> = vec![
        (
            "its claim is there",
            vec![Object::PersistentVolume(bound_pv("uid-data")), live.clone()],
            false,
        ),
        (
            "its claim was deleted",
            vec![Object::PersistentVolume(bound_pv("uid-data"))],
            true,
        ),
        (
            "its claim was replaced by a namesake",
            vec![
                Object::PersistentVolume(bound_pv("uid-data")),
                Object::PersistentVolumeClaim(replaced),
            ],
            true,
        ),
        (
            "pre-bound by name, waiting for its claim",
            vec![Object::PersistentVolume(bound_pv(""))],
            false,
        ),
        (
            "free",
            vec![Object::PersistentVolume(pv("pv-1", "1Gi", rwo))],
            false,
        ),
    ];
    for (what, objects, want) in cases {
        assert_eq!(released(objects), want, "{what}");
    }
}
