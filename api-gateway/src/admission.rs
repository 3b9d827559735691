//! Admission: what every create and update passes before it is written.
//!
//! In order: Kubernetes' defaults; validation with every field error; the namespace must
//! exist and not be terminating (creates only); the namespace's LimitRanges (creates of
//! pods and PersistentVolumeClaims: default limits and requests of containers, then min,
//! max and maxLimitRequestRatio; see `limit_ranger`) — a container that asks for nothing
//! in a namespace without a LimitRange gets nothing, as in Kubernetes; a pod's
//! ServiceAccount (`default` when it names none; refused when it names one that does not
//! exist). ResourceQuota is not judged here but in the write's own transaction (the
//! `quota` module), so that concurrent writes cannot pass a limit together.
//!
//! Owns those checks and nothing else: it never writes, and it reads only through the
//! narrow [`AdmissionReader`] trait (the registry implements it), so it knows nothing of
//! keys, revisions or the store, and the registry is the only module that calls it.
//!
//! ```text
//!   registry.create/update ──► admit(reader, object, current) ──► Ok | AdmissionError
//!                                   │ get / list
//!                                   ▼
//!                             AdmissionReader (the registry, or a test's fake)
//! ```

use rafter_proto::v1::{LimitRange, Pod};

use crate::limit_ranger;
use rafter_proto::well_known::{DEFAULT_SERVICE_ACCOUNT, SYSTEM_NAMESPACES};
use rafter_proto::{apply_defaults, validate, Kind, ListOptions, Object, ReadConsistency};

/// What admission may read: one object by name, and lists.
#[async_trait::async_trait]
pub(crate) trait AdmissionReader: Send + Sync {
    /// Why a read failed; handed back to the caller untouched.
    type Error: Send;

    /// The object, or `None` when it does not exist.
    async fn get_object(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<Option<Object>, Self::Error>;

    /// Every object `options` selects (all pages).
    async fn list_objects(&self, options: &ListOptions) -> Result<Vec<Object>, Self::Error>;
}

/// Why an object was not admitted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmissionError<E> {
    /// The object is invalid: every field error, with its path.
    #[error("{kind} {name:?} is invalid: {}", errors.join("; "))]
    Invalid {
        /// The kind.
        kind: Kind,
        /// The object's name.
        name: String,
        /// Field errors, `path: message`.
        errors: Vec<String>,
    },
    /// A policy refuses it (namespace missing or terminating, quota exceeded ...).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// What admission needed to read could not be read.
    #[error("admission could not read what it checks")]
    Read(E),
}

/// The annotation that marks a mirror pod (a static pod's copy in the API).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Admits `object` for a create (`current = None`) or an update of `current`.
pub(crate) async fn admit<R: AdmissionReader>(
    reader: &R,
    object: &mut Object,
    current: Option<&Object>,
) -> Result<(), AdmissionError<R::Error>> {
    apply_defaults(object);
    let errors = validate(object);
    if !errors.is_empty() {
        return Err(AdmissionError::Invalid {
            kind: object.kind(),
            name: object.metadata().name.clone(),
            errors: errors.iter().map(ToString::to_string).collect(),
        });
    }
    if let Some(current) = current {
        check_immutable(current, object)?;
        return Ok(());
    }
    let kind = object.kind();
    if kind.info().namespaced {
        let namespace = object.metadata().namespace.clone();
        check_namespace(reader, &namespace).await?;
        check_limit_ranges(reader, &namespace, object).await?;
        if let Object::Pod(pod) = object {
            check_service_account(reader, &namespace, pod).await?;
        }
    }
    Ok(())
}

fn check_immutable<E>(current: &Object, next: &Object) -> Result<(), AdmissionError<E>> {
    let invalid = |path: &str| AdmissionError::Invalid {
        kind: next.kind(),
        name: next.metadata().name.clone(),
        errors: vec![format!("{path}: Invalid value: field is immutable")],
    };
    let bound_node = bound_node(current);
    if !bound_node.is_empty() && bound_node != self::bound_node(next) {
        return Err(invalid("spec.nodeName"));
    }
    if workload_selector(current) != workload_selector(next) {
        return Err(invalid("spec.selector"));
    }
    Ok(())
}

/// The node a pod is bound to ("" when unbound or not a pod).
fn bound_node(object: &Object) -> &str {
    match object {
        Object::Pod(pod) => pod.spec.as_ref().map_or("", |s| s.node_name.as_str()),
        _ => "",
    }
}

/// The selector of a workload, which apps/v1 makes immutable.
fn workload_selector(object: &Object) -> Option<&rafter_proto::v1::LabelSelector> {
    match object {
        Object::Deployment(d) => d.spec.as_ref().and_then(|s| s.selector.as_ref()),
        Object::ReplicaSet(r) => r.spec.as_ref().and_then(|s| s.selector.as_ref()),
        Object::DaemonSet(d) => d.spec.as_ref().and_then(|s| s.selector.as_ref()),
        _ => None,
    }
}

/// Kubernetes' ServiceAccount admission: a pod that names no ServiceAccount runs as
/// `default`, and one naming a ServiceAccount that does not exist is refused. The
/// `default` ServiceAccount of a namespace made a moment ago may not exist yet (the
/// ServiceAccounts controller is making it): such a pod is admitted, and its agent waits
/// for the account before it starts the pod. A pod that names no `imagePullSecrets` gets
/// its account's (so its node may read them, and pulls with them). Mirror pods are left
/// as they are.
async fn check_service_account<R: AdmissionReader>(
    reader: &R,
    namespace: &str,
    pod: &mut Pod,
) -> Result<(), AdmissionError<R::Error>> {
    let mirror = pod
        .metadata
        .as_ref()
        .is_some_and(|m| m.annotations.contains_key(MIRROR_POD_ANNOTATION));
    let Some(spec) = pod.spec.as_mut() else {
        return Ok(());
    };
    if mirror {
        return Ok(());
    }
    if spec.service_account_name.is_empty() {
        spec.service_account_name = DEFAULT_SERVICE_ACCOUNT.to_owned();
    }
    let name = spec.service_account_name.clone();
    let read = |consistency| reader.get_object(Kind::ServiceAccount, namespace, &name, consistency);
    let found = match read(ReadConsistency::Serializable).await {
        Ok(None) if name != DEFAULT_SERVICE_ACCOUNT => read(ReadConsistency::Linearizable).await,
        other => other,
    }
    .map_err(AdmissionError::Read)?;
    match found {
        Some(Object::ServiceAccount(account)) => {
            if spec.image_pull_secrets.is_empty() {
                spec.image_pull_secrets = account.image_pull_secrets;
            }
            Ok(())
        }
        Some(_) => Ok(()),
        None if name == DEFAULT_SERVICE_ACCOUNT => Ok(()),
        None => Err(AdmissionError::Forbidden(format!(
            "error looking up service account {namespace}/{name}: serviceaccount {name:?} not found (spec.serviceAccountName); create it first (rafter create serviceaccount {name} -n {namespace})"
        ))),
    }
}

async fn check_namespace<R: AdmissionReader>(
    reader: &R,
    namespace: &str,
) -> Result<(), AdmissionError<R::Error>> {
    // The local member's state first; a namespace missing there is confirmed linearizably
    // (it may have been created a moment ago through another master).
    let read = |consistency| reader.get_object(Kind::Namespace, "", namespace, consistency);
    let found = match read(ReadConsistency::Serializable).await {
        Ok(None) => read(ReadConsistency::Linearizable).await,
        other => other,
    }
    .map_err(AdmissionError::Read)?;
    match found {
        Some(ns) if ns.metadata().deletion_timestamp.is_some() => Err(AdmissionError::Forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ))),
        Some(_) => Ok(()),
        None if SYSTEM_NAMESPACES.contains(&namespace) => Ok(()),
        None => Err(AdmissionError::Forbidden(format!(
            "namespace {namespace:?} not found; create it first (rafter create namespace {namespace})"
        ))),
    }
}

/// The namespace's LimitRanges on a new pod (defaults, then bounds) or claim (bounds).
async fn check_limit_ranges<R: AdmissionReader>(
    reader: &R,
    namespace: &str,
    object: &mut Object,
) -> Result<(), AdmissionError<R::Error>> {
    if !matches!(object, Object::Pod(_) | Object::PersistentVolumeClaim(_)) {
        return Ok(());
    }
    // LimitRanges change rarely: read from the local member, as quotas are.
    let mut options = ListOptions::all(Kind::LimitRange, Some(namespace));
    options.consistency = ReadConsistency::Serializable;
    let ranges: Vec<LimitRange> = reader
        .list_objects(&options)
        .await
        .map_err(AdmissionError::Read)?
        .into_iter()
        .filter_map(|o| match o {
            Object::LimitRange(lr) => Some(lr),
            _ => None,
        })
        .collect();
    if ranges.is_empty() {
        return Ok(());
    }
    let refused = match object {
        Object::Pod(pod) => {
            let mirror = pod
                .metadata
                .as_ref()
                .is_some_and(|m| m.annotations.contains_key(MIRROR_POD_ANNOTATION));
            if mirror {
                return Ok(());
            }
            limit_ranger::default_pod(pod, &ranges);
            limit_ranger::check_pod(pod, &ranges)
        }
        Object::PersistentVolumeClaim(claim) => limit_ranger::check_claim(claim, &ranges),
        _ => Ok(()),
    };
    refused.map_err(AdmissionError::Forbidden)
}
