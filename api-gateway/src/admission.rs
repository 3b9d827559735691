//! Admission: what every create and update passes before it is written.
//!
//! In order: Kubernetes' defaults; the resource defaults the seeds describe for containers
//! that ask for nothing (requests 0.5 CPU / 256Mi, limits 1 CPU / 512Mi, as a namespace
//! LimitRange would give); validation with every field error; the namespace must exist
//! and not be terminating (creates only); ResourceQuota for pods (creates only).
//!
//! Owns those checks and nothing else: it never writes, and it reads through the registry.

use std::collections::BTreeMap;

use rafter_proto::v1::{Container, Pod};
use rafter_proto::{apply_defaults, validate, Kind, Object, Quantity};

use crate::registry::{Registry, RegistryError, SYSTEM_NAMESPACES};
use rafter_proto::{ListOptions, ReadConsistency};

use crate::store::KvStore;

/// Requests given to a container that asks for none.
const DEFAULT_REQUESTS: &[(&str, &str)] = &[("cpu", "500m"), ("memory", "256Mi")];
/// Limits given to a container that sets none.
const DEFAULT_LIMITS: &[(&str, &str)] = &[("cpu", "1"), ("memory", "512Mi")];

/// Admits `object` for a create (`current = None`) or an update of `current`.
pub(crate) async fn admit<S: KvStore>(
    registry: &Registry<S>,
    object: &mut Object,
    current: Option<&Object>,
) -> Result<(), RegistryError> {
    apply_defaults(object);
    if current.is_none() {
        default_container_resources(object);
    }
    let errors = validate(object);
    if !errors.is_empty() {
        return Err(RegistryError::Invalid {
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
        check_namespace(registry, &namespace).await?;
        if let Object::Pod(pod) = object {
            check_pod_quota(registry, &namespace, pod).await?;
        }
    }
    Ok(())
}

fn check_immutable(current: &Object, next: &Object) -> Result<(), RegistryError> {
    let invalid = |path: &str| RegistryError::Invalid {
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

async fn check_namespace<S: KvStore>(
    registry: &Registry<S>,
    namespace: &str,
) -> Result<(), RegistryError> {
    // The local member's state first; a namespace missing there is confirmed linearizably
    // (it may have been created a moment ago through another master).
    let found = match registry
        .get(
            Kind::Namespace,
            "",
            namespace,
            ReadConsistency::Serializable,
        )
        .await
    {
        Err(RegistryError::NotFound { .. }) => {
            registry
                .get(
                    Kind::Namespace,
                    "",
                    namespace,
                    ReadConsistency::Linearizable,
                )
                .await
        }
        other => other,
    };
    match found {
        Ok(ns) if ns.metadata().deletion_timestamp.is_some() => Err(RegistryError::Forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ))),
        Ok(_) => Ok(()),
        Err(RegistryError::NotFound { .. }) if SYSTEM_NAMESPACES.contains(&namespace) => Ok(()),
        Err(RegistryError::NotFound { .. }) => Err(RegistryError::Forbidden(format!(
            "namespace {namespace:?} not found; create it first (rafter create namespace {namespace})"
        ))),
        Err(e) => Err(e),
    }
}

fn default_container_resources(object: &mut Object) {
    let spec = match object {
        Object::Pod(pod) => pod.spec.as_mut(),
        Object::Deployment(d) => d
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut()),
        Object::ReplicaSet(r) => r
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut()),
        Object::DaemonSet(d) => d
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut()),
        Object::Job(j) => j
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut()),
        _ => None,
    };
    let Some(spec) = spec else { return };
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut())
    {
        let resources = container.resources.get_or_insert_with(Default::default);
        if resources.requests.is_empty() && resources.limits.is_empty() {
            for (name, value) in DEFAULT_REQUESTS {
                resources
                    .requests
                    .insert((*name).to_owned(), (*value).to_owned());
            }
            for (name, value) in DEFAULT_LIMITS {
                resources
                    .limits
                    .insert((*name).to_owned(), (*value).to_owned());
            }
        }
    }
}

/// What a pod counts against a quota: `pods`, and requests/limits of its containers.
fn pod_usage(pod: &Pod) -> BTreeMap<String, Quantity> {
    let mut usage = BTreeMap::new();
    usage.insert(
        "pods".to_owned(),
        Quantity::from_units(1, rafter_proto::QuantityFormat::DecimalSi),
    );
    usage.insert(
        "count/pods".to_owned(),
        Quantity::from_units(1, rafter_proto::QuantityFormat::DecimalSi),
    );
    let containers: Vec<&Container> = pod.spec.iter().flat_map(|s| s.containers.iter()).collect();
    for container in containers {
        let Some(resources) = &container.resources else {
            continue;
        };
        for (prefix, map) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            for (name, text) in map {
                let Ok(quantity) = text.parse::<Quantity>() else {
                    continue;
                };
                let mut keys = vec![format!("{prefix}.{name}")];
                if prefix == "requests" {
                    keys.push(name.clone());
                }
                for key in keys {
                    let total = match usage.get(&key) {
                        Some(sum) => sum.checked_add(&quantity).unwrap_or(quantity),
                        None => quantity,
                    };
                    usage.insert(key, total);
                }
            }
        }
    }
    usage
}

async fn check_pod_quota<S: KvStore>(
    registry: &Registry<S>,
    namespace: &str,
    pod: &Pod,
) -> Result<(), RegistryError> {
    // Whether any quota applies is read from the local member (quotas change rarely, and
    // most namespaces have none); the usage it limits is read linearizably.
    let mut quota_options = ListOptions::all(Kind::ResourceQuota, Some(namespace));
    quota_options.consistency = ReadConsistency::Serializable;
    let quotas = registry.list(&quota_options).await?.items;
    if quotas.is_empty() {
        return Ok(());
    }
    let pods = registry
        .list(&ListOptions::all(Kind::Pod, Some(namespace)))
        .await?
        .items;
    let mut used: BTreeMap<String, Quantity> = BTreeMap::new();
    for other in &pods {
        let Object::Pod(other) = other else { continue };
        let terminal = other
            .status
            .as_ref()
            .is_some_and(|s| s.phase == "Succeeded" || s.phase == "Failed");
        if terminal
            || other
                .metadata
                .as_ref()
                .is_some_and(|m| m.deletion_timestamp.is_some())
        {
            continue;
        }
        for (key, quantity) in pod_usage(other) {
            let total = match used.get(&key) {
                Some(sum) => sum.checked_add(&quantity).unwrap_or(quantity),
                None => quantity,
            };
            used.insert(key, total);
        }
    }
    let requested = pod_usage(pod);
    for quota in &quotas {
        let Object::ResourceQuota(quota) = quota else {
            continue;
        };
        let Some(spec) = &quota.spec else { continue };
        let name = quota
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        for (resource, hard_text) in &spec.hard {
            let Ok(hard) = hard_text.parse::<Quantity>() else {
                continue;
            };
            let asked = requested.get(resource);
            let is_compute = resource.contains("cpu") || resource.contains("memory");
            if asked.is_none() && is_compute {
                return Err(RegistryError::Forbidden(format!(
                    "failed quota: {name}: must specify {resource} for every container"
                )));
            }
            let Some(asked) = asked else { continue };
            let zero = Quantity::from_millis(0);
            let in_use = used.get(resource).copied().unwrap_or(zero);
            let total = in_use.checked_add(asked).unwrap_or(*asked);
            if total > hard {
                return Err(RegistryError::Forbidden(format!(
                    "exceeded quota: {name}, requested: {resource}={asked}, used: {resource}={in_use}, limited: {resource}={hard}"
                )));
            }
        }
    }
    Ok(())
}
