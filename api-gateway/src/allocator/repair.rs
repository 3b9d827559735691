//! The repair pass over reservations, as Kubernetes' allocator repair loop: judged on the
//! Services and reservation keys read at one store revision.
//!
//! ```text
//!  reservations at R ─► owner uid among the Services at R? ── no ─► release (mod_revision == as read)
//!                              │ yes, but the Service no longer holds the value ─► release
//!  Services at R ─► each value: reserved by it ─► fine
//!                               not reserved (or by a gone Service) ─► restore (create_revision == 0,
//!                                                                       Service unchanged) + report
//!                               reserved by another live Service ─► report
//!                               out of the (changed) range ─► report, reservation kept
//! ```
//!
//! A reservation is released only if, at R, no Service with its owner's uid holds the
//! value, and the release applies only if the key is still what was read: a Service's
//! reservation is written in the Service's own transaction, so a live allocation can
//! never look orphaned at one revision. Owns that judgement; the registry reads and writes.

use std::collections::{BTreeMap, BTreeSet};

use raft_store::kv::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, PutRequest, TxnOp,
    TxnRequest,
};
use rafter_proto::v1::Service;

use super::{held, Held, Owner, ServiceRanges};

/// A Service whose values and reservations disagree, as the repair pass reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairProblem {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's uid.
    pub uid: String,
    /// Kubernetes' event reason: `ClusterIPNotAllocated`, `ClusterIPAlreadyAllocated`,
    /// `ClusterIPOutOfRange`, `PortNotAllocated`, `PortAlreadyAllocated`, `PortOutOfRange`.
    pub reason: String,
    /// What is wrong, for a person.
    pub message: String,
}

/// What one repair pass did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// The store revision the pass judged at.
    pub revision: u64,
    /// Reservations released (their Service is gone or holds the value no longer).
    pub released: Vec<String>,
    /// Values of Services that had no reservation and now have one.
    pub restored: Vec<String>,
    /// Services whose values lack a reservation or clash.
    pub problems: Vec<RepairProblem>,
}

/// One release the pass makes.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// The reservation as read.
    pub reservation: KeyValue,
    /// The Service that must be unchanged for it to apply (key, mod_revision), when the
    /// owner is alive but holds the value no longer.
    pub service: Option<(String, u64)>,
    /// For the report.
    pub description: String,
}

/// One reservation the pass writes for a Service that lacks it.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    /// The value.
    pub value: Held,
    /// The Service holding it.
    pub owner: Owner,
    /// The Service's key and mod_revision, which must be unchanged.
    pub service: (String, u64),
}

/// What a pass does.
#[derive(Debug, Clone, Default)]
pub(crate) struct RepairPlan {
    /// Releases, made first.
    pub releases: Vec<Release>,
    /// Restores, made after.
    pub restores: Vec<Restore>,
    /// What it reports.
    pub problems: Vec<RepairProblem>,
}

/// A stored Service as the pass reads it.
pub(crate) struct StoredService {
    /// The object.
    pub service: Service,
    /// Its store key.
    pub key: String,
    /// Its mod_revision.
    pub mod_revision: u64,
}

fn problem(owner: &Owner, reason: &str, message: String) -> RepairProblem {
    RepairProblem {
        namespace: owner.namespace.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        reason: reason.to_owned(),
        message,
    }
}

impl Release {
    /// The transaction that makes it: only if the key (and the Service) are as read.
    pub(crate) fn txn(&self) -> TxnRequest {
        let mut compare = vec![Compare::new(
            self.reservation.key.clone(),
            CompareOp::Equal,
            CompareTarget::ModRevision(self.reservation.mod_revision),
        )];
        if let Some((key, revision)) = &self.service {
            compare.push(Compare::new(
                key.clone(),
                CompareOp::Equal,
                CompareTarget::ModRevision(*revision),
            ));
        }
        TxnRequest {
            compare,
            success: vec![TxnOp::Delete(DeleteRequest::new(KeyRange::key(
                self.reservation.key.clone(),
            )))],
            failure: vec![],
        }
    }
}

impl Restore {
    /// The transaction that makes it: only if the value is free and the Service as read.
    pub(crate) fn txn(&self) -> TxnRequest {
        let key = self.value.key();
        TxnRequest {
            compare: vec![
                Compare::new(
                    key.clone(),
                    CompareOp::Equal,
                    CompareTarget::CreateRevision(0),
                ),
                Compare::new(
                    self.service.0.clone(),
                    CompareOp::Equal,
                    CompareTarget::ModRevision(self.service.1),
                ),
            ],
            success: vec![TxnOp::Put(PutRequest::new(key, self.owner.encode()))],
            failure: vec![],
        }
    }

    /// For the report.
    pub(crate) fn description(&self) -> String {
        format!("{} of {}", self.value.describe(), self.owner)
    }
}

/// Judges the Services and reservations read at one revision.
pub(crate) fn plan_repair(
    ranges: &ServiceRanges,
    services: &[StoredService],
    reservations: &[KeyValue],
) -> RepairPlan {
    let mut plan = RepairPlan::default();
    let live: BTreeMap<String, (&StoredService, BTreeSet<Held>)> = services
        .iter()
        .map(|s| (Owner::of(&s.service).uid, (s, held(&s.service))))
        .collect();
    // Who holds each value's reservation after this pass's releases.
    let mut reserved: BTreeMap<Held, String> = BTreeMap::new();
    for kv in reservations {
        let Some(value) = Held::from_key(&kv.key) else {
            continue;
        };
        let Some(owner) = Owner::decode(&kv.value) else {
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "an unreadable reservation is left as it is");
            reserved.insert(value, String::new());
            continue;
        };
        match live.get(&owner.uid) {
            None => plan.releases.push(Release {
                reservation: kv.clone(),
                service: None,
                description: format!("{} of deleted {owner}", value.describe()),
            }),
            Some((stored, holds)) if !holds.contains(&value) => plan.releases.push(Release {
                reservation: kv.clone(),
                service: Some((stored.key.clone(), stored.mod_revision)),
                description: format!("{} no longer held by {owner}", value.describe()),
            }),
            Some(_) => {
                reserved.insert(value, owner.uid);
            }
        }
    }
    // Services in name order: of two holding one unreserved value, the first gets it.
    let mut ordered: Vec<&StoredService> = services.iter().collect();
    ordered.sort_by(|a, b| a.key.cmp(&b.key));
    for stored in ordered {
        let owner = Owner::of(&stored.service);
        for value in held(&stored.service) {
            let (prefix, in_range, range) = match &value {
                Held::Ip(ip) => (
                    "ClusterIP",
                    ranges.ip_usable(*ip),
                    ranges.service_cidr().to_string(),
                ),
                Held::NodePort { port, .. } => {
                    ("Port", ranges.port_usable(*port), ranges.ports_text())
                }
            };
            if !in_range {
                // Reported whether reserved or not (the masters' range changed); a
                // reservation it has stays, so the value stays its own.
                plan.problems.push(problem(
                    &owner,
                    &format!("{prefix}OutOfRange"),
                    format!(
                        "{} is not within the configured range {range}; please recreate the Service",
                        value.describe()
                    ),
                ));
                continue;
            }
            match reserved.get(&value) {
                Some(uid) if *uid == owner.uid => {}
                Some(_) => plan.problems.push(problem(
                    &owner,
                    &format!("{prefix}AlreadyAllocated"),
                    format!(
                        "{} is also held by another Service; delete and recreate this one to get a value of its own",
                        value.describe()
                    ),
                )),
                None => {
                    reserved.insert(value.clone(), owner.uid.clone());
                    plan.problems.push(problem(
                        &owner,
                        &format!("{prefix}NotAllocated"),
                        format!(
                            "{} had no reservation; it is reserved for this Service now",
                            value.describe()
                        ),
                    ));
                    plan.restores.push(Restore {
                        value,
                        owner: owner.clone(),
                        service: (stored.key.clone(), stored.mod_revision),
                    });
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1;

    fn service(ns: &str, name: &str, uid: &str, ip: &str, node_ports: &[i32]) -> StoredService {
        StoredService {
            service: Service {
                metadata: Some(v1::ObjectMeta {
                    namespace: ns.into(),
                    name: name.into(),
                    uid: uid.into(),
                    ..Default::default()
                }),
                spec: Some(v1::ServiceSpec {
                    r#type: "NodePort".into(),
                    cluster_ip: ip.into(),
                    ports: node_ports
                        .iter()
                        .enumerate()
                        .map(|(i, p)| v1::ServicePort {
                            name: format!("p{i}"),
                            port: 80 + i as i32,
                            node_port: *p,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            key: format!("/registry/core/services/{ns}/{name}"),
            mod_revision: 7,
        }
    }

    fn reservation(value: &Held, ns: &str, name: &str, uid: &str) -> KeyValue {
        KeyValue {
            key: value.key().into_bytes(),
            value: Owner {
                namespace: ns.into(),
                name: name.into(),
                uid: uid.into(),
            }
            .encode(),
            mod_revision: 5,
            ..Default::default()
        }
    }

    fn ip(text: &str) -> Held {
        Held::Ip(text.parse().unwrap())
    }

    fn tcp(port: i32) -> Held {
        Held::NodePort {
            protocol: "tcp".into(),
            port,
        }
    }

    #[test]
    fn reservations_of_gone_services_are_released_and_live_ones_kept() {
        let services = [service("a", "web", "u1", "10.96.0.10", &[30080])];
        let reservations = [
            reservation(&ip("10.96.0.10"), "a", "web", "u1"),
            reservation(&tcp(30080), "a", "web", "u1"),
            reservation(&ip("10.96.0.11"), "gone", "db", "u2"),
            reservation(&tcp(30081), "gone", "db", "u2"),
            // The same name, an earlier incarnation: its value is not the live one's.
            reservation(&tcp(30082), "a", "web", "u0"),
        ];
        let plan = plan_repair(&ServiceRanges::default(), &services, &reservations);
        let released: Vec<Held> = plan
            .releases
            .iter()
            .map(|r| Held::from_key(&r.reservation.key).unwrap())
            .collect();
        assert_eq!(released, [ip("10.96.0.11"), tcp(30081), tcp(30082)]);
        assert!(plan.releases.iter().all(|r| r.service.is_none()));
        assert!(
            plan.restores.is_empty() && plan.problems.is_empty(),
            "{plan:?}"
        );
    }

    #[test]
    fn a_value_a_live_service_gave_up_is_released_only_while_it_is_unchanged() {
        let services = [service("a", "web", "u1", "10.96.0.10", &[])];
        let reservations = [
            reservation(&ip("10.96.0.10"), "a", "web", "u1"),
            reservation(&tcp(30080), "a", "web", "u1"),
        ];
        let plan = plan_repair(&ServiceRanges::default(), &services, &reservations);
        assert_eq!(plan.releases.len(), 1);
        assert_eq!(
            plan.releases[0].service,
            Some(("/registry/core/services/a/web".to_owned(), 7))
        );
    }

    #[test]
    fn unreserved_values_are_restored_once_and_clashes_and_strays_reported() {
        let services = [
            service("a", "one", "u1", "10.96.0.10", &[30080]),
            service("b", "two", "u2", "10.96.0.10", &[30090]),
            service("c", "three", "u3", "10.0.0.5", &[]),
        ];
        let reservations = [reservation(&tcp(30090), "x", "other", "u9")];
        let plan = plan_repair(&ServiceRanges::default(), &services, &reservations);
        let restored: Vec<(String, Held)> = plan
            .restores
            .iter()
            .map(|r| (r.owner.name.clone(), r.value.clone()))
            .collect();
        // u9 is gone: its 30090 is released first, then restored for "two".
        assert_eq!(
            restored,
            [
                ("one".to_owned(), ip("10.96.0.10")),
                ("one".to_owned(), tcp(30080)),
                ("two".to_owned(), tcp(30090)),
            ]
        );
        assert_eq!(plan.releases.len(), 1);
        let reasons: Vec<(&str, &str)> = plan
            .problems
            .iter()
            .map(|p| (p.name.as_str(), p.reason.as_str()))
            .collect();
        assert!(
            reasons.contains(&("two", "ClusterIPAlreadyAllocated")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("three", "ClusterIPOutOfRange")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("one", "ClusterIPNotAllocated")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("one", "PortNotAllocated")),
            "{reasons:?}"
        );
    }

    #[test]
    fn values_outside_a_changed_range_are_reported_even_when_reserved_and_stay_reserved() {
        let services = [service("a", "old", "u1", "10.200.0.77", &[30050])];
        let reservations = [
            reservation(&ip("10.200.0.77"), "a", "old", "u1"),
            reservation(&tcp(30050), "a", "old", "u1"),
        ];
        let ranges = ServiceRanges::parse("10.201.0.0/24", "31000-31099").unwrap();
        let plan = plan_repair(&ranges, &services, &reservations);
        assert!(
            plan.releases.is_empty() && plan.restores.is_empty(),
            "{plan:?}"
        );
        let problems: Vec<(&str, &str)> = plan
            .problems
            .iter()
            .map(|p| (p.reason.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "ClusterIPOutOfRange");
        assert!(problems[0].1.contains("10.201.0.0/24"), "{problems:?}");
        assert_eq!(problems[1].0, "PortOutOfRange");
        assert!(problems[1].1.contains("31000-31099"), "{problems:?}");
    }
}
