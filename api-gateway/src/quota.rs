//! ResourceQuota enforcement inside the write itself: what a create or update charges
//! against each quota of its namespace, checked against `spec.hard` and written into the
//! quota's `status.used` in the same store transaction as the object.
//!
//! ```text
//!  object ─► quotas of its namespace (read with the attempt's consistency)
//!         ─► per quota: rafter_proto::quota::charges(object) − charges(before update)
//!         ─► used (status.used, or counted from a list while the quota is new) + charge
//!              > hard ─► Forbidden "exceeded quota: q, requested: …, used: …, limited: …"
//!         ─► Plan { compare quota ModRevision, put quota with the new status.used }
//! ```
//!
//! Two writers charging the same quota both compare its revision, so one of them fails its
//! transaction and charges again from what the other left: a hard limit holds however many
//! masters take creates at once. Releases (deletes, pods that finish) are not written here:
//! the quota controller recounts `status.used` from what the namespace holds, with the
//! same [`rafter_proto::quota`] definition, and its status write is guarded by the
//! quota's resourceVersion, so it never undoes a charge it has not seen.
//!
//! Owns the charge and its refusal only. It must not count a namespace for the record
//! (the controller keeps `status.used`), nor decide what an object charges (the proto
//! crate's `quota` module does).

use std::collections::BTreeMap;

use raft_store::kv::{
    Compare, CompareOp, CompareTarget, KeyRange, KeyValue, PutRequest, RangeRequest, TxnOp,
};
use rafter_proto::quota::{charges, counted_kind, missing_compute, sum};
use rafter_proto::v1::{ResourceQuota, ResourceQuotaStatus};
use rafter_proto::{Kind, Object, Quantity, ReadConsistency};

use crate::allocator::Plan;
use crate::registry::{decode, encode, list_prefix, Registry, RegistryError};
use crate::store::KvStore;

/// Whether objects of `kind` can be charged against a quota at all (namespaced, and not
/// a record of what happened).
fn chargeable(kind: Kind) -> bool {
    kind.info().namespaced && kind != Kind::Event
}

/// What `next` charges beyond what `current` (the object before an update) charged, per
/// hard key of `quota`; keys it does not charge more are left out.
fn increase(
    quota: &ResourceQuota,
    next: &Object,
    current: Option<&Object>,
) -> BTreeMap<String, Quantity> {
    let spec = quota.spec.clone().unwrap_or_default();
    let mut asked = charges(next, &spec);
    if let Some(current) = current {
        let before = charges(current, &spec);
        asked.retain(|key, amount| match before.get(key) {
            Some(held) if *held >= *amount => false,
            Some(held) => {
                *amount = amount.checked_sub(held).unwrap_or(*amount);
                true
            }
            None => true,
        });
    }
    asked
}

/// One hard key a write would pass.
struct Refused {
    key: String,
    asked: Quantity,
    used: Quantity,
    hard: Quantity,
}

/// Kubernetes' words: `exceeded quota: q, requested: pods=1, used: pods=10, limited:
/// pods=10`, each part listing every key passed.
fn exceeded_message(name: &str, refused: &[Refused]) -> String {
    let part = |value: fn(&Refused) -> Quantity| {
        refused
            .iter()
            .map(|r| format!("{}={}", r.key, value(r)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
        part(|r| r.asked),
        part(|r| r.used),
        part(|r| r.hard)
    )
}

fn quota_name(quota: &ResourceQuota) -> String {
    quota
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

impl<S: KvStore> Registry<S> {
    /// The quota writes that go into `next`'s transaction (`current`: the object before
    /// an update, `None` for a create), or `Forbidden` naming the quota and the key it
    /// would exceed. Objects that no quota of their namespace counts plan nothing.
    pub(crate) async fn plan_quota(
        &self,
        current: Option<&Object>,
        next: &Object,
        consistency: ReadConsistency,
    ) -> Result<Plan, RegistryError> {
        let kind = next.kind();
        if !chargeable(kind) {
            return Ok(Plan::default());
        }
        let namespace = next.metadata().namespace.clone();
        let prefix = list_prefix(Kind::ResourceQuota, Some(&namespace));
        // A first attempt reads the watch cache (as Kubernetes' quota admission reads its
        // informer); the charge's compare catches a stale count, and the retry reads the
        // store linearizably.
        let request = RangeRequest::new(KeyRange::prefix(prefix));
        let quotas = match consistency {
            ReadConsistency::Serializable => self.range_page(request, consistency).await?,
            ReadConsistency::Linearizable => self.store_page(request, consistency).await?,
        }
        .kvs;
        let mut plan = Plan::default();
        let mut exceeded = Vec::new();
        for kv in &quotas {
            let Object::ResourceQuota(mut quota) =
                decode(self.transformer(), Kind::ResourceQuota, kv)?
            else {
                continue;
            };
            let spec = quota.spec.clone().unwrap_or_default();
            let name = quota_name(&quota);
            if let Object::Pod(pod) = next {
                if current.is_none() {
                    if let Some(missing) = missing_compute(pod, &spec) {
                        return Err(RegistryError::Forbidden(format!(
                            "failed quota: {name}: {missing}"
                        )));
                    }
                }
            }
            let asked = increase(&quota, next, current);
            if asked.is_empty() {
                continue;
            }
            let mut status = quota.status.clone().unwrap_or_default();
            let mut refused = Vec::new();
            for (key, amount) in &asked {
                let Some(hard) = spec.hard.get(key).and_then(|h| h.parse::<Quantity>().ok()) else {
                    continue;
                };
                let used = match status
                    .used
                    .get(key)
                    .and_then(|u| u.parse::<Quantity>().ok())
                {
                    Some(used) => used,
                    None => self.count_usage(&namespace, key, &spec.scopes).await?,
                };
                let total = sum(used, *amount);
                if total > hard {
                    refused.push(Refused {
                        key: key.clone(),
                        asked: *amount,
                        used,
                        hard,
                    });
                } else {
                    status.used.insert(key.clone(), total.to_string());
                }
            }
            if !refused.is_empty() {
                exceeded.push(exceeded_message(&name, &refused));
                continue;
            }
            status.hard = spec.hard.clone();
            quota.status = Some(ResourceQuotaStatus {
                hard: status.hard,
                used: status.used,
            });
            self.charge(&mut plan, kv, Object::ResourceQuota(quota))?;
        }
        if !exceeded.is_empty() {
            return Err(RegistryError::Forbidden(exceeded.join("; ")));
        }
        Ok(plan)
    }

    /// Adds to `plan` the write of `quota` (with its new usage), guarded by the revision
    /// it was read at.
    fn charge(&self, plan: &mut Plan, kv: &KeyValue, quota: Object) -> Result<(), RegistryError> {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        plan.compares.push(Compare::new(
            kv.key.clone(),
            CompareOp::Equal,
            CompareTarget::ModRevision(kv.mod_revision),
        ));
        plan.ops.push(TxnOp::Put(PutRequest::new(
            kv.key.clone(),
            encode(self.transformer(), &key, &quota)?,
        )));
        Ok(())
    }

    /// What the namespace holds against `key`, counted from a linearizable list: the
    /// baseline of a quota whose controller has not reported that key yet.
    async fn count_usage(
        &self,
        namespace: &str,
        key: &str,
        scopes: &[String],
    ) -> Result<Quantity, RegistryError> {
        let Some(kind) = counted_kind(key) else {
            return Ok(rafter_proto::quota::count(0));
        };
        let listed = self
            .store()
            .range(
                RangeRequest::new(KeyRange::prefix(list_prefix(kind, Some(namespace)))),
                ReadConsistency::Linearizable,
            )
            .await?
            .kvs;
        let mut total = rafter_proto::quota::count(0);
        for kv in &listed {
            let object = decode(self.transformer(), kind, kv)?;
            total = sum(total, rafter_proto::quota::charge(&object, key, scopes));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::parse_object;

    fn object(yaml: &str) -> Object {
        parse_object(yaml, "test").unwrap()
    }

    fn quota(hard: &str) -> ResourceQuota {
        match object(&format!(
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: q, namespace: default}}\nspec: {{hard: {{{hard}}}}}\n"
        )) {
            Object::ResourceQuota(q) => q,
            _ => unreachable!(),
        }
    }

    fn service(kind: &str, ports: usize) -> Object {
        let ports: Vec<String> = (0..ports)
            .map(|i| format!("{{port: {}, name: p{i}}}", 80 + i))
            .collect();
        object(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: default}}\nspec: {{type: {kind}, ports: [{}]}}\n",
            ports.join(", ")
        ))
    }

    #[test]
    fn a_create_charges_everything_an_update_only_what_grew() {
        let quota = quota("services: '5', services.nodeports: '4'");
        let created = increase(&quota, &service("NodePort", 2), None);
        assert_eq!(created["services"].to_string(), "1");
        assert_eq!(created["services.nodeports"].to_string(), "2");

        let grown = increase(
            &quota,
            &service("NodePort", 3),
            Some(&service("ClusterIP", 3)),
        );
        assert!(
            !grown.contains_key("services"),
            "the Service was counted when it was created: {grown:?}"
        );
        assert_eq!(grown["services.nodeports"].to_string(), "3");

        let shrunk = increase(
            &quota,
            &service("ClusterIP", 1),
            Some(&service("NodePort", 2)),
        );
        assert!(shrunk.is_empty(), "nothing grew: {shrunk:?}");
    }

    fn registry() -> Registry<crate::testing::MemKv> {
        Registry::new(std::sync::Arc::new(crate::testing::MemKv::new().unwrap()))
    }

    fn pod(name: &str, resources: &str) -> Object {
        object(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: busybox, resources: {{{resources}}}}}\n"
        ))
    }

    async fn used(r: &Registry<crate::testing::MemKv>, key: &str) -> String {
        let Object::ResourceQuota(q) = r
            .get(
                Kind::ResourceQuota,
                "default",
                "q",
                ReadConsistency::Linearizable,
            )
            .await
            .unwrap()
        else {
            panic!("not a quota")
        };
        q.status
            .unwrap_or_default()
            .used
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn concurrent_creates_take_exactly_the_hard_limit() {
        let r = registry();
        r.create(
            object("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {pods: '10'}}\n"),
            false,
        )
        .await
        .unwrap();
        let outcomes = futures::future::join_all((0..50).map(|i| {
            let r = r.clone();
            async move { r.create(pod(&format!("p{i}"), ""), false).await }
        }))
        .await;
        let created = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(created, 10, "{outcomes:?}");
        for outcome in &outcomes {
            if let Err(e) = outcome {
                assert!(
                    matches!(e, RegistryError::Forbidden(m)
                        if m == "exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10"),
                    "{e}"
                );
            }
        }
        assert_eq!(used(&r, "pods").await, "10");
    }

    #[tokio::test]
    async fn a_quota_on_compute_refuses_pods_that_do_not_say_what_they_ask() {
        let r = registry();
        r.create(
            object("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {requests.cpu: '1', limits.memory: 1Gi}}\n"),
            false,
        )
        .await
        .unwrap();
        let err = r.create(pod("bare", ""), false).await.unwrap_err();
        assert!(
            matches!(&err, RegistryError::Forbidden(m)
                if m == "failed quota: q: must specify limits.memory for: c; requests.cpu for: c"),
            "{err}"
        );
        let sized = "requests: {cpu: 600m}, limits: {memory: 512Mi}";
        r.create(pod("a", sized), false).await.unwrap();
        let err = r.create(pod("b", sized), false).await.unwrap_err();
        assert!(
            matches!(&err, RegistryError::Forbidden(m)
                if m == "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"),
            "{err}"
        );
        assert_eq!(
            used(&r, "requests.cpu").await,
            "600m",
            "a refused create charges nothing"
        );
        assert_eq!(used(&r, "limits.memory").await, "512Mi");
    }

    #[tokio::test]
    async fn a_new_quota_counts_what_exists_and_a_dry_run_charges_nothing() {
        let r = registry();
        for name in ["a", "b"] {
            r.create(
                object(&format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
                )),
                false,
            )
            .await
            .unwrap();
        }
        r.create(
            object("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec: {hard: {count/configmaps: '3', services.nodeports: '2'}}\n"),
            false,
        )
        .await
        .unwrap();
        let third = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
        r.create(third.clone(), true).await.unwrap();
        assert_eq!(
            used(&r, "count/configmaps").await,
            "",
            "a dry run writes nothing"
        );
        r.create(third, false).await.unwrap();
        assert_eq!(
            used(&r, "count/configmaps").await,
            "3",
            "two that were there, and this one"
        );
        let err = r
            .create(
                object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n"),
                false,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Forbidden(m) if m.contains("count/configmaps=3")),
            "{err}"
        );

        // An update is charged for what it adds: two node ports fit, a third does not.
        let mut service = r.create(service("ClusterIP", 3), false).await.unwrap();
        if let Object::Service(s) = &mut service {
            s.spec.as_mut().unwrap().r#type = "NodePort".to_owned();
        }
        let err = r
            .update(service, crate::registry::Subresource::Main, false)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RegistryError::Forbidden(m)
                if m.contains("requested: services.nodeports=3, used: services.nodeports=0, limited: services.nodeports=2")),
            "{err}"
        );
        let Object::Service(kept) = r
            .get(Kind::Service, "default", "s", ReadConsistency::Linearizable)
            .await
            .unwrap()
        else {
            panic!("not a Service")
        };
        assert_eq!(
            kept.spec.unwrap().r#type,
            "ClusterIP",
            "a refused update changes nothing"
        );
    }

    #[test]
    fn events_and_cluster_objects_are_never_charged() {
        assert!(!chargeable(Kind::Event));
        assert!(!chargeable(Kind::Node));
        assert!(chargeable(Kind::Pod));
        assert!(chargeable(Kind::ConfigMap));
    }
}
