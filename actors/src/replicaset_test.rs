use super::*;
use crate::testing::*;

fn rs_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ReplicaSet, "default", name)
}

fn created(r: &Reconciled) -> Vec<v1::Pod> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::Pod(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn deleted(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { key, .. } => Some(key.name.clone()),
            _ => None,
        })
        .collect()
}

fn updated_pods(r: &Reconciled) -> Vec<v1::Pod> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Update(Object::Pod(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn new_status(r: &Reconciled) -> Option<ReplicaSetStatus> {
    r.actions.iter().find_map(|a| match a {
        Action::UpdateStatus(Object::ReplicaSet(rs)) => rs.status.clone(),
        _ => None,
    })
}

#[test]
fn missing_pods_are_created_from_the_template_and_owned() {
    let rs = replica_set("default", "web", 3).build();
    let cache = Cache::from_objects([rs.clone()]);
    let r = reconcile(&cache, &rs_key("web"), at(10), 1);
    let pods = created(&r);
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let m = p.metadata.as_ref().unwrap();
        assert!(
            m.name.starts_with("web-") && m.name.len() == 9,
            "{}",
            m.name
        );
        assert_eq!(m.generate_name, "web-");
        assert_eq!(m.labels.get("app").map(String::as_str), Some("web"));
        let owner = &m.owner_references[0];
        assert_eq!(owner.uid, "uid-default-web");
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(owner.api_version, "apps/v1");
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(p.spec.as_ref().unwrap().containers[0].image, "nginx:1");
    }
    let names: std::collections::HashSet<_> = pods
        .iter()
        .map(|p| p.metadata.as_ref().unwrap().name.clone())
        .collect();
    assert_eq!(names.len(), 3);
    let events: Vec<_> = r
        .events()
        .map(|e| (e.reason.as_str(), e.message.clone()))
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|(reason, m)| *reason == "SuccessfulCreate" && m.starts_with("Created pod: web-")));
    assert_eq!(
        new_status(&r).map(|s| (s.replicas, s.observed_generation)),
        Some((0, 1))
    );
}

#[test]
fn matching_orphans_are_adopted_instead_of_creating() {
    let rs = replica_set("default", "web", 2).build();
    let cache = Cache::from_objects([
        rs.clone(),
        pod("default", "orphan")
            .label("app", "web")
            .running()
            .build(),
        pod("default", "stranger").label("app", "db").build(),
    ]);
    let r = reconcile(&cache, &rs_key("web"), at(10), 1);
    let adopted = updated_pods(&r);
    assert_eq!(adopted.len(), 1);
    let m = adopted[0].metadata.as_ref().unwrap();
    assert_eq!(m.name, "orphan");
    assert_eq!(m.owner_references[0].uid, "uid-default-web");
    assert_eq!(created(&r).len(), 1);
}

#[test]
fn pods_of_other_controllers_and_pods_being_deleted_do_not_count() {
    let rs = replica_set("default", "web", 2).build();
    let other = replica_set("default", "other", 1).build();
    let cache = Cache::from_objects([
        rs.clone(),
        pod("default", "theirs")
            .label("app", "web")
            .owner(&other, true)
            .build(),
        pod("default", "leaving")
            .label("app", "web")
            .owner(&rs, true)
            .deleting()
            .build(),
        pod("default", "done")
            .label("app", "web")
            .owner(&rs, true)
            .phase("Failed")
            .build(),
        pod("default", "mine")
            .label("app", "web")
            .owner(&rs, true)
            .build(),
    ]);
    let r = reconcile(&cache, &rs_key("web"), at(10), 1);
    assert_eq!(created(&r).len(), 1);
    assert!(updated_pods(&r).is_empty());
    assert!(deleted(&r).is_empty());
}

#[test]
fn pods_that_stop_matching_are_released() {
    let rs = replica_set("default", "web", 1).build();
    let cache = Cache::from_objects([
        rs.clone(),
        pod("default", "relabelled")
            .label("app", "debug")
            .owner(&rs, true)
            .build(),
    ]);
    let r = reconcile(&cache, &rs_key("web"), at(10), 1);
    let released = updated_pods(&r);
    assert_eq!(released.len(), 1);
    assert!(released[0]
        .metadata
        .as_ref()
        .unwrap()
        .owner_references
        .is_empty());
    assert_eq!(created(&r).len(), 1);
}

/// Which pod goes first when scaling 2 → 1; the other of each pair stays.
#[test]
fn surplus_pods_go_unscheduled_pending_not_ready_then_newest_first() {
    let rs = replica_set("default", "web", 1).build();
    let base = |name: &str| pod("default", name).label("app", "web").owner(&rs, true);
    let table = [
        (
            base("a").node("n1").ready_since(1),
            base("b").phase("Pending"),
            "b",
        ),
        (
            base("a").node("n1").running(),
            base("b").node("n1").phase("Pending"),
            "b",
        ),
        (
            base("a").node("n1").ready_since(1),
            base("b").node("n1").running(),
            "b",
        ),
        (
            base("a").node("n1").ready_since(1).restarts(4),
            base("b").node("n1").ready_since(1),
            "a",
        ),
        (
            base("a").node("n1").ready_since(1).created(5),
            base("b").node("n1").ready_since(1).created(3),
            "a",
        ),
    ];
    for (a, b, victim) in table {
        let cache = Cache::from_objects([rs.clone(), a.build(), b.build()]);
        let r = reconcile(&cache, &rs_key("web"), at(10), 1);
        assert_eq!(deleted(&r), [victim]);
        assert_eq!(
            r.events().map(|e| e.message.clone()).collect::<Vec<_>>(),
            [format!("Deleted pod: {victim}")]
        );
    }
}

#[test]
fn status_counts_ready_and_available_after_min_ready_seconds() {
    let rs = replica_set("default", "web", 3).min_ready(30).build();
    let base = |name: &str| {
        pod("default", name)
            .label("app", "web")
            .owner(&rs, true)
            .node("n1")
    };
    let cache = Cache::from_objects([
        rs.clone(),
        base("old").ready_since(0).build(),
        base("fresh").ready_since(90).build(),
        base("starting").running().build(),
    ]);
    let r = reconcile(&cache, &rs_key("web"), at(100), 1);
    let status = new_status(&r).unwrap();
    assert_eq!(
        (
            status.replicas,
            status.fully_labeled_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (3, 3, 2, 1)
    );
    assert_eq!(r.requeue_after, Some(Duration::from_secs(20)));
    assert!(created(&r).is_empty() && deleted(&r).is_empty());
}

#[test]
fn a_converged_replica_set_needs_nothing() {
    let rs = replica_set("default", "web", 1).build();
    let pod1 = pod("default", "a")
        .label("app", "web")
        .owner(&rs, true)
        .ready_since(0)
        .build();
    let first = reconcile(
        &Cache::from_objects([rs.clone(), pod1.clone()]),
        &rs_key("web"),
        at(5),
        1,
    );
    let Some(Action::UpdateStatus(updated)) = first.actions.first().cloned() else {
        panic!("{first:?}");
    };
    let again = reconcile(
        &Cache::from_objects([updated, pod1]),
        &rs_key("web"),
        at(5),
        1,
    );
    assert_eq!(again, Reconciled::nothing());
}

#[test]
fn a_replica_set_being_deleted_creates_nothing() {
    let mut rs = replica_set("default", "web", 3).build();
    rs.metadata_mut().deletion_timestamp = ts(1);
    let cache = Cache::from_objects([rs, pod("default", "orphan").label("app", "web").build()]);
    let r = reconcile(&cache, &rs_key("web"), at(5), 1);
    assert!(created(&r).is_empty());
    assert!(updated_pods(&r).is_empty());
}
