//! The PersistentVolume binder: pairs a Pending PersistentVolumeClaim with an Available
//! PersistentVolume that fits it, and finishes bindings half done.
//!
//! ```text
//!   claim (key) ──► names a volume? ── yes ─► that PV names the claim (or no one)?
//!        │                                      yes: claimRef on the PV, both phases Bound
//!        │                                      no / PV gone: Pending (Lost once Bound)
//!        └─ no ──► the smallest Available PV that fits:
//!                  capacity.storage ≥ requests.storage, accessModes ⊇ the claim's,
//!                  same storageClassName and volumeMode, claim.selector matches its labels,
//!                  no claimRef (or one pre-binding it to this claim)
//!                     found: PV.spec.claimRef = claim, PVC.spec.volumeName = PV,
//!                            both statuses Bound (the PV first: a crash between the writes
//!                            leaves a PV that names the claim, which the next pass finishes)
//!                     none:  Pending, a FailedBinding event once
//! ```
//!
//!
//! ```text
//!   volume (key) ──► names a claim (with its uid) that is gone or was replaced?
//!                      yes: Released (whatever its reclaim policy: the data stays)
//! ```
//!
//! Pure, like every core here: no I/O and no clock. It must not provision volumes
//! (no storage classes with provisioners) nor recycle or delete released ones: a
//! Released PV keeps its data and its claimRef, and is bound again only once an
//! administrator clears the claimRef (as Kubernetes' Retain policy has it; Delete and
//! Recycle are treated as Retain).

use rafter_proto::v1::{self, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use rafter_proto::{Kind, Object, Quantity, Selector};

use crate::action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
use crate::cache::Cache;

/// The component name on the binder's events.
pub const PERSISTENT_VOLUME_CONTROLLER: &str = "persistentvolume-controller";
/// Annotation the binder puts on a claim it bound (Kubernetes' spelling).
pub const BIND_COMPLETED_ANNOTATION: &str = "pv.kubernetes.io/bind-completed";

const FILESYSTEM: &str = "Filesystem";

fn storage(map: &rafter_proto::StringMap) -> Option<i128> {
    map.get("storage")
        .and_then(|q| q.parse::<Quantity>().ok())
        .map(|q| q.value())
}

fn mode(m: &str) -> &str {
    if m.is_empty() {
        FILESYSTEM
    } else {
        m
    }
}

fn claim_meta(claim: &PersistentVolumeClaim) -> v1::ObjectMeta {
    claim.metadata.clone().unwrap_or_default()
}

/// Whether `reference` names `claim` (a reference without uid pre-binds by name).
fn names_claim(reference: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    let meta = claim_meta(claim);
    reference.name == meta.name
        && reference.namespace == meta.namespace
        && (reference.uid.is_empty() || reference.uid == meta.uid)
}

/// Whether `pv` may be bound to `claim`.
fn fits(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(pv_spec) = &pv.spec else {
        return false;
    };
    let meta = pv.metadata.clone().unwrap_or_default();
    if meta.deletion_timestamp.is_some() {
        return false;
    }
    let phase = pv.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    let free = match &pv_spec.claim_ref {
        None => matches!(phase, "" | "Available"),
        Some(r) => names_claim(r, claim) && phase != "Released" && phase != "Failed",
    };
    if !free {
        return false;
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let class = spec.storage_class_name.clone().unwrap_or_default();
    if pv_spec.storage_class_name != class || mode(&pv_spec.volume_mode) != mode(&spec.volume_mode)
    {
        return false;
    }
    if !spec
        .access_modes
        .iter()
        .all(|m| pv_spec.access_modes.contains(m))
    {
        return false;
    }
    let wanted = spec
        .resources
        .as_ref()
        .and_then(|r| storage(&r.requests))
        .unwrap_or(0);
    if storage(&pv_spec.capacity).is_none_or(|have| have < wanted) {
        return false;
    }
    // No selector: any volume (a nil label selector would match nothing).
    let Some(selector) = spec.selector.as_ref() else {
        return true;
    };
    match Selector::from_optional_label_selector(Some(selector)) {
        Ok(selector) => selector.matches(&meta.labels),
        Err(_) => false,
    }
}

fn claim_reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    let meta = claim_meta(claim);
    ObjectReference {
        kind: "PersistentVolumeClaim".to_owned(),
        namespace: meta.namespace,
        name: meta.name,
        uid: meta.uid,
        api_version: "v1".to_owned(),
        resource_version: meta.resource_version,
        ..Default::default()
    }
}

fn claim_status(claim: &PersistentVolumeClaim) -> v1::PersistentVolumeClaimStatus {
    claim.status.clone().unwrap_or_default()
}

/// The writes that make `pv` and `claim` name each other, with both phases Bound; only
/// those not already done.
fn bind(pv: &PersistentVolume, claim: &PersistentVolumeClaim, out: &mut Reconciled) {
    let pv_spec = pv.spec.clone().unwrap_or_default();
    let pv_name = pv
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let claim_uid = claim_meta(claim).uid;
    if pv_spec
        .claim_ref
        .as_ref()
        .is_none_or(|r| r.uid != claim_uid)
    {
        let mut updated = pv.clone();
        if let Some(spec) = updated.spec.as_mut() {
            spec.claim_ref = Some(claim_reference(claim));
        }
        out.actions
            .push(Action::Update(Object::PersistentVolume(updated)));
    }
    if pv.status.as_ref().map(|s| s.phase.as_str()) != Some("Bound") {
        let mut updated = pv.clone();
        updated.status = Some(v1::PersistentVolumeStatus {
            phase: "Bound".to_owned(),
            ..Default::default()
        });
        out.actions
            .push(Action::UpdateStatus(Object::PersistentVolume(updated)));
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let annotated = claim_meta(claim)
        .annotations
        .get(BIND_COMPLETED_ANNOTATION)
        .is_some_and(|v| v == "yes");
    if spec.volume_name != pv_name || !annotated {
        let mut updated = claim.clone();
        if let Some(spec) = updated.spec.as_mut() {
            spec.volume_name = pv_name.clone();
        }
        if let Some(meta) = updated.metadata.as_mut() {
            meta.annotations
                .insert(BIND_COMPLETED_ANNOTATION.to_owned(), "yes".to_owned());
        }
        out.actions
            .push(Action::Update(Object::PersistentVolumeClaim(updated)));
    }
    let bound = v1::PersistentVolumeClaimStatus {
        phase: "Bound".to_owned(),
        access_modes: pv_spec.access_modes.clone(),
        capacity: pv_spec.capacity.clone(),
    };
    if claim_status(claim) != bound {
        let mut updated = claim.clone();
        updated.status = Some(bound);
        out.actions
            .push(Action::UpdateStatus(Object::PersistentVolumeClaim(updated)));
    }
}

/// Sets the claim's phase (when it differs); a Warning event when it becomes `Pending`
/// with `why`.
fn set_phase(claim: &PersistentVolumeClaim, phase: &str, why: &str, out: &mut Reconciled) {
    let current = claim_status(claim);
    if current.phase == phase {
        return;
    }
    let mut updated = claim.clone();
    updated.status = Some(v1::PersistentVolumeClaimStatus {
        phase: phase.to_owned(),
        ..current
    });
    let object = Object::PersistentVolumeClaim(updated);
    out.actions.push(Action::RecordEvent(EventRecord::about(
        &object,
        EventType::Warning,
        if phase == "Lost" {
            "ClaimLost"
        } else {
            "FailedBinding"
        },
        why.to_owned(),
        PERSISTENT_VOLUME_CONTROLLER,
    )));
    out.actions.push(Action::UpdateStatus(object));
}

/// Binds the claim `key` (a PersistentVolumeClaim) if it can be, or says why not.
pub fn reconcile(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let mut out = Reconciled::nothing();
    let Some(object) = cache.get(key) else {
        return out;
    };
    let Object::PersistentVolumeClaim(claim) = object.as_ref() else {
        return out;
    };
    if claim_meta(claim).deletion_timestamp.is_some() {
        return out;
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let was_bound = claim_status(claim).phase == "Bound";
    if !spec.volume_name.is_empty() {
        let pv = cache
            .get(&ObjectKey::new(
                Kind::PersistentVolume,
                "",
                &spec.volume_name,
            ))
            .and_then(|o| match o.as_ref() {
                Object::PersistentVolume(pv) => Some(pv.clone()),
                _ => None,
            });
        match pv {
            Some(pv)
                if pv.spec.as_ref().is_some_and(|s| {
                    s.claim_ref.as_ref().is_none_or(|r| names_claim(r, claim))
                }) =>
            {
                bind(&pv, claim, &mut out)
            }
            Some(_) => set_phase(
                claim,
                if was_bound { "Lost" } else { "Pending" },
                &format!(
                    "volume {:?} is already bound to a different claim",
                    spec.volume_name
                ),
                &mut out,
            ),
            None => set_phase(
                claim,
                if was_bound { "Lost" } else { "Pending" },
                &format!("volume {:?} not found", spec.volume_name),
                &mut out,
            ),
        }
        return out;
    }
    let best = cache
        .list(Kind::PersistentVolume)
        .filter_map(|o| match o.as_ref() {
            Object::PersistentVolume(pv) if fits(pv, claim) => Some(pv),
            _ => None,
        })
        .min_by_key(|pv| {
            let spec = pv.spec.as_ref();
            // Pre-bound volumes first, then the smallest, then by name.
            let prebound = spec.is_some_and(|s| s.claim_ref.is_some());
            let size = spec.and_then(|s| storage(&s.capacity)).unwrap_or(i128::MAX);
            let name = pv
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            (!prebound, size, name)
        });
    match best {
        Some(pv) => bind(pv, claim, &mut out),
        None => {
            let why = if spec.storage_class_name.as_deref().unwrap_or("").is_empty() {
                "no persistent volumes available for this claim and no storage class is set"
                    .to_owned()
            } else {
                format!(
                    "no persistent volumes available for this claim in storage class {:?}",
                    spec.storage_class_name.as_deref().unwrap_or("")
                )
            };
            set_phase(claim, "Pending", &why, &mut out);
        }
    }
    out
}

/// Marks the volume `key` Released when the claim it was bound to is gone or replaced.
pub fn reconcile_volume(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let mut out = Reconciled::nothing();
    let Some(object) = cache.get(key) else {
        return out;
    };
    let Object::PersistentVolume(pv) = object.as_ref() else {
        return out;
    };
    let Some(reference) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return out;
    };
    let phase = pv.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("");
    if reference.uid.is_empty() || !matches!(phase, "" | "Available" | "Bound") {
        // Pre-bound by name (waiting for its claim), or already Released / Failed.
        return out;
    }
    let claim_key = ObjectKey::new(
        Kind::PersistentVolumeClaim,
        reference.namespace.clone(),
        reference.name.clone(),
    );
    let claim_there = cache.get(&claim_key).is_some_and(|o| match o.as_ref() {
        Object::PersistentVolumeClaim(c) => claim_meta(c).uid == reference.uid,
        _ => false,
    });
    if claim_there {
        return out;
    }
    let mut updated = pv.clone();
    updated.status = Some(v1::PersistentVolumeStatus {
        phase: "Released".to_owned(),
        message: format!(
            "claim {}/{} was deleted; the volume keeps its data (reclaim policy {})",
            reference.namespace,
            reference.name,
            pv.spec
                .as_ref()
                .map(|s| s.persistent_volume_reclaim_policy.as_str())
                .filter(|p| !p.is_empty())
                .unwrap_or("Retain")
        ),
        reason: String::new(),
    });
    out.actions
        .push(Action::UpdateStatus(Object::PersistentVolume(updated)));
    out
}

/// Why `pod` cannot be placed yet because of its persistentVolumeClaim volumes: a claim
/// that does not exist, is being deleted, or is not Bound (all claims bind immediately
/// here, so the scheduler waits for the binder). `None` when every claim is Bound.
pub fn unbound_claim(cache: &Cache, pod: &v1::Pod) -> Option<String> {
    let namespace = pod
        .metadata
        .as_ref()
        .map(|m| m.namespace.as_str())
        .unwrap_or("");
    let volumes = pod.spec.as_ref().map(|s| &s.volumes[..]).unwrap_or(&[]);
    let mut unbound = false;
    for source in volumes
        .iter()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
    {
        let key = ObjectKey::new(Kind::PersistentVolumeClaim, namespace, &source.claim_name);
        let claim = match cache.get(&key).map(|o| o.as_ref()) {
            Some(Object::PersistentVolumeClaim(c)) => c,
            _ => {
                return Some(format!(
                    "persistentvolumeclaim {:?} not found",
                    source.claim_name
                ))
            }
        };
        if claim_meta(claim).deletion_timestamp.is_some() {
            return Some(format!(
                "persistentvolumeclaim {:?} is being deleted",
                source.claim_name
            ));
        }
        let bound = claim_status(claim).phase == "Bound"
            && claim
                .spec
                .as_ref()
                .is_some_and(|s| !s.volume_name.is_empty());
        unbound |= !bound;
    }
    unbound.then(|| "pod has unbound immediate PersistentVolumeClaims".to_owned())
}

#[cfg(test)]
#[path = "volume_binder_test.rs"]
mod tests;
