//! The ResourceQuota controller: keeps `status.hard` (= `spec.hard`) and `status.used` of
//! a quota current with what its namespace holds.
//!
//! ```text
//!  spec.hard keys ─► usage from the cache, per key:
//!    pods, count/pods, cpu, memory, requests.*, limits.*  ─ pods not finished, within the scopes
//!    services, services.nodeports, services.loadbalancers
//!    persistentvolumeclaims, requests.storage
//!    count/<plural>[.<group>]                               ─ objects of an informed kind
//!  status differs ─► UpdateStatus
//! ```
//!
//! Owns the reported usage only. It must not admit or refuse anything: admission enforces
//! `spec.hard`. Keys naming what the informer does not cache (`count/configmaps`, say) are
//! left out of `status.used`.

use std::collections::BTreeMap;

use rafter_proto::v1::{self, ResourceQuotaStatus};
use rafter_proto::{Kind, Object, Quantity, QuantityFormat};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::pods::is_terminal;
use crate::runtime::is_informed;

/// Reconciles one ResourceQuota.
pub fn reconcile(cache: &Cache, key: &ObjectKey) -> Reconciled {
    let Some(object) = cache.get(key) else {
        return Reconciled::nothing();
    };
    let Object::ResourceQuota(quota) = object.as_ref() else {
        return Reconciled::nothing();
    };
    let spec = quota.spec.clone().unwrap_or_default();
    let namespace = &key.namespace;
    let mut used = BTreeMap::new();
    for resource in spec.hard.keys() {
        if let Some(q) = usage(cache, namespace, resource, &spec.scopes) {
            used.insert(resource.clone(), q.to_string());
        }
    }
    let status = ResourceQuotaStatus {
        hard: spec.hard.clone(),
        used,
    };
    let mut out = Reconciled::nothing();
    if quota.status.as_ref() != Some(&status) {
        let mut updated = quota.clone();
        updated.status = Some(status);
        out.actions
            .push(Action::UpdateStatus(Object::ResourceQuota(updated)));
    }
    out
}

fn count(n: usize) -> Quantity {
    Quantity::from_units(
        i128::try_from(n).unwrap_or(i128::MAX),
        QuantityFormat::DecimalSi,
    )
}

/// Whether a pod counts under every scope of the quota.
fn in_scopes(pod: &v1::Pod, scopes: &[String]) -> bool {
    let spec = pod.spec.clone().unwrap_or_default();
    let best_effort = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter())
        .all(|c| {
            c.resources
                .as_ref()
                .is_none_or(|r| r.requests.is_empty() && r.limits.is_empty())
        });
    let terminating = spec.active_deadline_seconds.is_some();
    scopes.iter().all(|scope| match scope.as_str() {
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        _ => true,
    })
}

fn sum(values: impl Iterator<Item = Quantity>) -> Quantity {
    values.fold(Quantity::from_millis(0), |a, b| {
        a.checked_add(&b).unwrap_or(a)
    })
}

/// A pod's requests or limits of `resource` over its containers.
fn pod_amount(pod: &v1::Pod, kind: &str, resource: &str) -> Quantity {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    sum(containers.filter_map(|c| {
        let r = c.resources.as_ref()?;
        let map = if kind == "limits" {
            &r.limits
        } else {
            &r.requests
        };
        map.get(resource)?.parse::<Quantity>().ok()
    }))
}

fn usage(cache: &Cache, namespace: &str, resource: &str, scopes: &[String]) -> Option<Quantity> {
    let pods = || {
        cache
            .pods_in(namespace)
            .filter(|p| !is_terminal(p) && in_scopes(p, scopes))
    };
    let services = || {
        cache
            .list_namespaced(Kind::Service, namespace)
            .filter_map(|o| match o.as_ref() {
                Object::Service(s) => Some(s),
                _ => None,
            })
    };
    let claims = || {
        cache
            .list_namespaced(Kind::PersistentVolumeClaim, namespace)
            .filter_map(|o| match o.as_ref() {
                Object::PersistentVolumeClaim(c) => Some(c),
                _ => None,
            })
    };
    Some(match resource {
        "pods" | "count/pods" => count(pods().count()),
        "cpu" | "memory" => sum(pods().map(|p| pod_amount(p, "requests", resource))),
        "services" | "count/services" => count(services().count()),
        "services.nodeports" => count(
            services()
                .filter_map(|s| s.spec.as_ref())
                .map(|s| s.ports.iter().filter(|p| p.node_port != 0).count())
                .sum(),
        ),
        "services.loadbalancers" => count(
            services()
                .filter(|s| s.spec.as_ref().is_some_and(|s| s.r#type == "LoadBalancer"))
                .count(),
        ),
        "persistentvolumeclaims" | "count/persistentvolumeclaims" => count(claims().count()),
        "requests.storage" => sum(claims().filter_map(|c| {
            let text = c
                .spec
                .as_ref()?
                .resources
                .as_ref()?
                .requests
                .get("storage")?;
            text.parse::<Quantity>().ok()
        })),
        other => {
            if let Some(name) = other
                .strip_prefix("requests.")
                .or(other.strip_prefix("limits."))
            {
                let kind = if other.starts_with("limits.") {
                    "limits"
                } else {
                    "requests"
                };
                return Some(sum(pods().map(|p| pod_amount(p, kind, name))));
            }
            let counted = other.strip_prefix("count/")?;
            let kind = Kind::all().find(|k| {
                let info = k.info();
                let full = if info.group.is_empty() {
                    info.plural.to_owned()
                } else {
                    format!("{}.{}", info.plural, info.group)
                };
                full == counted
            })?;
            if !is_informed(kind) {
                return None;
            }
            count(cache.list_namespaced(kind, namespace).count())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use rafter_proto::parse_object;

    fn quota(hard: &str, scopes: &str) -> Object {
        parse_object(
            &format!("apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q, namespace: default, uid: q1}}\nspec: {{hard: {{{hard}}}, scopes: [{scopes}]}}\n"),
            "test",
        )
        .unwrap()
    }

    fn used(r: &Reconciled) -> BTreeMap<String, String> {
        r.actions
            .iter()
            .find_map(|a| match a {
                Action::UpdateStatus(Object::ResourceQuota(q)) => q.status.clone(),
                _ => None,
            })
            .map(|s| s.used)
            .unwrap_or_default()
    }

    #[test]
    fn used_counts_running_pods_their_requests_and_counted_kinds() {
        let cache = Cache::from_objects([
            quota("pods: '10', requests.cpu: '2', limits.memory: 1Gi, count/jobs.batch: '5', count/configmaps: '3'", ""),
            pod("default", "a").requests("250m", "64Mi").running().build(),
            pod("default", "b").requests("500m", "").build(),
            pod("default", "done").requests("1", "").phase("Succeeded").build(),
            pod("other", "c").requests("1", "").build(),
        ]);
        let r = reconcile(&cache, &ObjectKey::new(Kind::ResourceQuota, "default", "q"));
        let used = used(&r);
        assert_eq!(
            used["pods"], "2",
            "finished pods and other namespaces do not count"
        );
        assert_eq!(used["requests.cpu"], "750m");
        assert_eq!(used["limits.memory"], "0");
        assert_eq!(used["count/jobs.batch"], "0");
        assert!(
            !used.contains_key("count/configmaps"),
            "not cached: not reported"
        );
        let mut settled = Cache::from_objects([]);
        for object in cache.list(Kind::Pod) {
            settled.upsert(object.as_ref().clone());
        }
        if let Some(Action::UpdateStatus(q)) = r.actions.first() {
            settled.upsert(q.clone());
        }
        let again = reconcile(
            &settled,
            &ObjectKey::new(Kind::ResourceQuota, "default", "q"),
        );
        assert!(
            again.actions.is_empty(),
            "an unchanged status is not written again"
        );
    }

    #[test]
    fn scopes_pick_the_pods_that_count() {
        let cache = Cache::from_objects([
            quota("pods: '10'", "BestEffort"),
            pod("default", "plain").build(),
            pod("default", "sized").requests("100m", "").build(),
        ]);
        let r = reconcile(&cache, &ObjectKey::new(Kind::ResourceQuota, "default", "q"));
        assert_eq!(used(&r)["pods"], "1");
    }
}
