//! The ResourceQuota controller: keeps `status.hard` (= `spec.hard`) and `status.used` of
//! a quota current with what its namespace holds, counted with `rafter_proto::quota`, the
//! definition the gateway charges writes with.
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
//! Owns the reported usage only. It must not admit or refuse anything: the gateway charges
//! each write against `spec.hard` in the write's own transaction. Releases (a pod that
//! finished or went, say) happen here, as a recount; the status write carries the
//! quota's resourceVersion, so it never undoes a charge it has not seen. Keys naming what
//! the informer does not cache (`count/configmaps`, say) are left out of `status.used`,
//! and the gateway counts them itself when it charges.

use rafter_proto::quota::{charge, count, counted_kind, sum};
use rafter_proto::v1::ResourceQuotaStatus;
use rafter_proto::{Object, Quantity};

use crate::action::{Action, ObjectKey, Reconciled};
use crate::cache::Cache;
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
    let mut used = rafter_proto::StringMap::new();
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

/// What the namespace's cached objects charge against `key`, by the same definition the
/// gateway charges writes with; `None` when the key counts a kind the informer does not
/// cache, or nothing at all.
fn usage(cache: &Cache, namespace: &str, key: &str, scopes: &[String]) -> Option<Quantity> {
    let kind = counted_kind(key)?;
    if !is_informed(kind) {
        return None;
    }
    Some(
        cache
            .list_namespaced(kind, namespace)
            .map(|object| charge(object, key, scopes))
            .fold(count(0), sum),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use rafter_proto::{parse_object, Kind};

    fn quota(hard: &str, scopes: &str) -> Object {
        parse_object(
            &format!("apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q, namespace: default, uid: q1}}\nspec: {{hard: {{{hard}}}, scopes: [{scopes}]}}\n"),
            "test",
        )
        .unwrap()
    }

    fn used(r: &Reconciled) -> rafter_proto::StringMap {
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
