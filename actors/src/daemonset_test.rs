use super::*;
use crate::testing::*;

fn key() -> ObjectKey {
    ObjectKey::new(Kind::DaemonSet, "kube-system", "agent")
}

fn ds() -> Object {
    Object::DaemonSet(daemon_set("kube-system", "agent"))
}

fn created_on(r: &Reconciled) -> Vec<String> {
    let mut nodes: Vec<String> = r
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(Object::Pod(p)) => Some(p.spec.as_ref().unwrap().node_name.clone()),
            _ => None,
        })
        .collect();
    nodes.sort();
    nodes
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

fn status(r: &Reconciled) -> DaemonSetStatus {
    r.actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(Object::DaemonSet(d)) => d.status.clone(),
            _ => None,
        })
        .unwrap_or_default()
}

fn daemon_pod(ds: &Object, name: &str, node: &str) -> PodBuilder {
    let spec = match ds {
        Object::DaemonSet(d) => d.spec.clone().unwrap_or_default(),
        _ => unreachable!(),
    };
    let hash = pod_template_hash(&spec.template.unwrap_or_default(), None);
    pod("kube-system", name)
        .label("app", "agent")
        .label(REVISION_HASH_LABEL, &hash)
        .owner(ds, true)
        .node(node)
}

#[test]
fn every_eligible_node_gets_one_pod_bound_to_it() {
    let cache = Cache::from_objects([ds(), node("a").build(), node("b").build()]);
    let r = reconcile(&cache, &key(), at(1), 1);
    assert_eq!(created_on(&r), ["a", "b"]);
    let Some(Action::Create(Object::Pod(p))) = r.actions.first() else {
        panic!("{r:?}");
    };
    let m = p.metadata.as_ref().unwrap();
    assert!(m.name.starts_with("agent-"));
    assert_eq!(m.owner_references[0].kind, "DaemonSet");
    assert!(m.labels.contains_key(REVISION_HASH_LABEL));
    let tolerated: Vec<&str> = p
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .iter()
        .map(|t| t.key.as_str())
        .collect();
    assert!(tolerated.contains(&"node.kubernetes.io/unreachable"));
    assert!(tolerated.contains(&"node.kubernetes.io/unschedulable"));
    assert_eq!(status(&r).desired_number_scheduled, 2);
}

/// Which nodes get a daemon pod: (node, whether it gets one).
#[test]
fn eligibility_follows_selectors_taints_and_automatic_tolerations() {
    let mut with_selector = daemon_set("kube-system", "agent");
    with_selector
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
        .unwrap()
        .node_selector
        .insert("role".into(), "edge".into());
    let table = [
        (node("plain").build(), true),
        (node("cordoned").unschedulable().build(), true),
        (
            node("not-ready")
                .ready("False")
                .taint("node.kubernetes.io/not-ready", "", "NoExecute")
                .build(),
            true,
        ),
        (
            node("unreachable")
                .ready("Unknown")
                .taint("node.kubernetes.io/unreachable", "", "NoExecute")
                .build(),
            true,
        ),
        (
            node("master")
                .taint("node-role.kubernetes.io/master", "", "NoSchedule")
                .build(),
            false,
        ),
        (
            node("dedicated")
                .taint("dedicated", "db", "NoExecute")
                .build(),
            false,
        ),
        (
            node("prefer").taint("k", "v", "PreferNoSchedule").build(),
            true,
        ),
    ];
    for (n, want) in table.clone() {
        let name = n.metadata().name.clone();
        let cache = Cache::from_objects([ds(), n]);
        let r = reconcile(&cache, &key(), at(1), 1);
        assert_eq!(!created_on(&r).is_empty(), want, "{name}");
    }
    let cache = Cache::from_objects([
        Object::DaemonSet(with_selector),
        node("edge").label("role", "edge").build(),
        node("core").label("role", "core").build(),
    ]);
    assert_eq!(created_on(&reconcile(&cache, &key(), at(1), 1)), ["edge"]);
}

#[test]
fn pods_leave_nodes_that_go_away_or_gain_a_no_execute_taint() {
    let d = ds();
    let cache = Cache::from_objects([
        d.clone(),
        node("stays").build(),
        node("evicting")
            .taint("dedicated", "db", "NoExecute")
            .build(),
        node("noschedule")
            .taint("dedicated", "db", "NoSchedule")
            .build(),
        daemon_pod(&d, "agent-stays", "stays")
            .ready_since(0)
            .build(),
        daemon_pod(&d, "agent-evicting", "evicting")
            .ready_since(0)
            .build(),
        daemon_pod(&d, "agent-noschedule", "noschedule")
            .ready_since(0)
            .build(),
        daemon_pod(&d, "agent-gone", "gone").ready_since(0).build(),
    ]);
    let r = reconcile(&cache, &key(), at(10), 1);
    let mut gone = deleted(&r);
    gone.sort();
    assert_eq!(gone, ["agent-evicting", "agent-gone"]);
    assert!(created_on(&r).is_empty());
    let s = status(&r);
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_misscheduled
        ),
        (1, 1, 2)
    );
}

#[test]
fn duplicates_keep_the_oldest_and_failed_pods_are_replaced() {
    let d = ds();
    let cache = Cache::from_objects([
        d.clone(),
        node("a").build(),
        node("b").build(),
        daemon_pod(&d, "agent-old", "a")
            .created(1)
            .ready_since(2)
            .build(),
        daemon_pod(&d, "agent-new", "a")
            .created(5)
            .ready_since(6)
            .build(),
        daemon_pod(&d, "agent-failed", "b").phase("Failed").build(),
    ]);
    let r = reconcile(&cache, &key(), at(10), 1);
    let mut gone = deleted(&r);
    gone.sort();
    assert_eq!(gone, ["agent-failed", "agent-new"]);
    assert!(
        created_on(&r).is_empty(),
        "recreated once the failed pod is gone"
    );
    let after = Cache::from_objects([d.clone(), node("b").build()]);
    assert_eq!(created_on(&reconcile(&after, &key(), at(10), 1)), ["b"]);
}

#[test]
fn a_daemon_set_being_deleted_leaves_its_pods_to_the_garbage_collector() {
    let mut d = ds();
    d.metadata_mut().deletion_timestamp = ts(1);
    let cache = Cache::from_objects([
        d.clone(),
        node("a").taint("dedicated", "db", "NoExecute").build(),
        node("b").build(),
        daemon_pod(&d, "agent-a", "a").ready_since(0).build(),
    ]);
    let r = reconcile(&cache, &key(), at(10), 1);
    assert!(deleted(&r).is_empty());
    assert!(created_on(&r).is_empty());
}

#[test]
fn status_counts_ready_available_and_updated_pods() {
    let d = ds();
    let cache = Cache::from_objects([
        d.clone(),
        node("a").build(),
        node("b").build(),
        node("c").build(),
        daemon_pod(&d, "agent-a", "a").ready_since(0).build(),
        daemon_pod(&d, "agent-b", "b").running().build(),
    ]);
    let s = status(&reconcile(&cache, &key(), at(10), 1));
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.number_available,
            s.number_unavailable,
            s.updated_number_scheduled
        ),
        (3, 2, 1, 1, 2, 2)
    );
}

#[test]
fn a_template_change_replaces_at_most_max_unavailable_pods_at_a_time() {
    let d = ds();
    let mut objects = vec![d.clone()];
    for n in ["a", "b", "c"] {
        objects.push(node(n).build());
        objects.push(
            pod("kube-system", &format!("agent-{n}"))
                .label("app", "agent")
                .label(REVISION_HASH_LABEL, "old")
                .owner(&d, true)
                .node(n)
                .ready_since(0)
                .build(),
        );
    }
    let r = reconcile(&Cache::from_objects(objects.clone()), &key(), at(10), 1);
    assert_eq!(deleted(&r).len(), 1);
    assert_eq!(status(&r).updated_number_scheduled, 0);
    // With one node already missing its pod, nothing more goes.
    objects.retain(|o| o.metadata().name != "agent-a");
    let r = reconcile(&Cache::from_objects(objects), &key(), at(10), 1);
    assert!(deleted(&r).is_empty());
    assert_eq!(created_on(&r), ["a"]);
}
