use super::*;
use crate::testing::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Node, "", name)
}

fn config() -> NodeLifecycleConfig {
    NodeLifecycleConfig::default()
}

fn node_update(r: &Reconciled) -> Option<v1::Node> {
    r.actions.iter().find_map(|a| match a {
        Action::Update(Object::Node(n)) => Some(n.clone()),
        _ => None,
    })
}

fn node_status(r: &Reconciled) -> Option<v1::NodeStatus> {
    r.actions.iter().find_map(|a| match a {
        Action::UpdateStatus(Object::Node(n)) => n.status.clone(),
        _ => None,
    })
}

fn evicted(r: &Reconciled) -> Vec<String> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Evict { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_with_a_fresh_lease_is_left_alone_until_the_grace_period_ends() {
    let cache = Cache::from_objects([node("n1").build(), lease("n1", 100)]);
    let r = reconcile(&cache, &key("n1"), at(110), &config());
    assert!(r.actions.is_empty(), "{r:?}");
    assert_eq!(r.requeue_after, Some(Duration::from_secs(31)));
}

#[test]
fn a_silent_node_becomes_unknown_unreachable_and_its_pods_not_ready() {
    let cache = Cache::from_objects([
        node("n1").build(),
        lease("n1", 100),
        pod("default", "web").node("n1").ready_since(50).build(),
    ]);
    let r = reconcile(&cache, &key("n1"), at(141), &config());
    let status = node_status(&r).unwrap();
    let ready = condition(&status.conditions, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("Unknown", "NodeStatusUnknown")
    );
    let taints = node_update(&r).unwrap().spec.unwrap().taints;
    assert_eq!(taints.len(), 1);
    assert_eq!(
        (taints[0].key.as_str(), taints[0].effect.as_str()),
        (UNREACHABLE_TAINT, "NoExecute")
    );
    assert_eq!(taints[0].time_added, ts(141));
    let events: Vec<_> = r
        .events()
        .map(|e| (e.reason.clone(), e.message.clone()))
        .collect();
    assert_eq!(
        events,
        [(
            "NodeNotReady".to_owned(),
            "Node n1 status is now: NodeNotReady".to_owned()
        )]
    );
    let pod_marked = r
        .actions
        .iter()
        .any(|a| matches!(a, Action::UpdateStatus(Object::Pod(p)) if !crate::pods::is_ready(p)));
    assert!(pod_marked);
    // The pod has no toleration: the default 300 s applies from when the taint was added.
    assert!(evicted(&r).is_empty());
    assert_eq!(r.requeue_after, Some(Duration::from_secs(300)));
}

#[test]
fn a_node_reporting_not_ready_gets_the_not_ready_taint() {
    let cache = Cache::from_objects([node("n1").ready("False").build(), lease("n1", 100)]);
    let r = reconcile(&cache, &key("n1"), at(105), &config());
    let taints = node_update(&r).unwrap().spec.unwrap().taints;
    assert_eq!(
        taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        [NOT_READY_TAINT]
    );
    assert!(node_status(&r).is_none());
}

#[test]
fn a_returning_node_is_cleaned_of_lifecycle_taints_only() {
    let cache = Cache::from_objects([
        node("n1")
            .taint_added(UNREACHABLE_TAINT, "NoExecute", 0)
            .taint("dedicated", "db", "NoSchedule")
            .build(),
        lease("n1", 500),
    ]);
    let r = reconcile(&cache, &key("n1"), at(505), &config());
    let taints = node_update(&r).unwrap().spec.unwrap().taints;
    assert_eq!(
        taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["dedicated"]
    );
    assert_eq!(
        r.events().next().map(|e| e.reason.as_str()),
        Some("NodeReady")
    );
}

/// Taint-based eviction on a node tainted unreachable at t=1000: (pod, now, evicted?).
#[test]
fn pods_are_evicted_when_their_toleration_of_a_no_execute_taint_runs_out() {
    let mut bounded = toleration(UNREACHABLE_TAINT, "Exists", "", "NoExecute");
    bounded.toleration_seconds = Some(60);
    let forever = toleration(UNREACHABLE_TAINT, "Exists", "", "NoExecute");
    let table = [
        (pod("d", "default").node("n1"), 1299, false),
        (pod("d", "default").node("n1"), 1300, true),
        (
            pod("d", "bounded").node("n1").toleration(bounded.clone()),
            1059,
            false,
        ),
        (
            pod("d", "bounded").node("n1").toleration(bounded),
            1060,
            true,
        ),
        (
            pod("d", "forever").node("n1").toleration(forever),
            99_999,
            false,
        ),
        (
            pod("d", "everything")
                .node("n1")
                .toleration(toleration("", "Exists", "", "")),
            99_999,
            false,
        ),
        (
            pod("d", "finished").node("n1").phase("Succeeded"),
            99_999,
            false,
        ),
    ];
    for (p, now, want) in table {
        let p = p.build();
        let name = p.metadata().name.clone();
        let cache = Cache::from_objects([
            node("n1")
                .ready("Unknown")
                .taint_added(UNREACHABLE_TAINT, "NoExecute", 1000)
                .build(),
            lease("n1", 0),
            p,
        ]);
        let r = reconcile(&cache, &key("n1"), at(now), &config());
        assert_eq!(
            evicted(&r) == [name.clone()],
            want,
            "{name} at {now}: {r:?}"
        );
        if want {
            let e = r
                .events()
                .find(|e| e.reason == "TaintManagerEviction")
                .unwrap();
            assert_eq!(e.message, format!("Marking for deletion Pod d/{name}"));
            assert_eq!(e.involved.kind, Kind::Pod);
        }
    }
}

#[test]
fn a_user_no_execute_taint_evicts_untolerating_pods_at_once() {
    let cache = Cache::from_objects([
        node("n1").taint("dedicated", "db", "NoExecute").build(),
        lease("n1", 100),
        pod("d", "web").node("n1").build(),
        pod("d", "db")
            .node("n1")
            .toleration(toleration("dedicated", "Equal", "db", "NoExecute"))
            .build(),
    ]);
    let r = reconcile(&cache, &key("n1"), at(101), &config());
    assert_eq!(evicted(&r), ["web"]);
}

#[test]
fn a_daemon_pod_survives_an_unreachable_node() {
    let ds = Object::DaemonSet(daemon_set("kube-system", "agent"));
    let spec = crate::daemonset::with_daemon_tolerations(&Default::default());
    let mut p = pod("kube-system", "agent-x")
        .owner(&ds, true)
        .node("n1")
        .build_pod();
    p.spec.as_mut().unwrap().tolerations = spec.tolerations;
    let cache = Cache::from_objects([
        node("n1")
            .ready("Unknown")
            .taint_added(UNREACHABLE_TAINT, "NoExecute", 0)
            .build(),
        Object::Pod(p),
    ]);
    let r = reconcile(&cache, &key("n1"), at(100_000), &config());
    assert!(evicted(&r).is_empty());
}
