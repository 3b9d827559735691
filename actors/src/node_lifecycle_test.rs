use super::*;
use crate::testing::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Node, "", name)
}

fn config() -> NodeLifecycleConfig {
    NodeLifecycleConfig::default()
}

/// Reconciles node `name` at `now` by a controller that first looked at it, as the cache
/// is now, at `first_look`.
fn reconcile_seen_since(cache: &Cache, name: &str, first_look: i64, now: i64) -> Reconciled {
    let mut health = NodeHealth::default();
    health.observe(cache, cache.node(name).unwrap(), at(first_look));
    reconcile(cache, &key(name), at(now), &config(), &mut health)
}

/// Reconciles node `name` at `now` by a controller looking at it for the first time.
fn reconcile_first_look(cache: &Cache, name: &str, now: i64) -> Reconciled {
    reconcile(
        cache,
        &key(name),
        at(now),
        &config(),
        &mut NodeHealth::default(),
    )
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
    let r = reconcile_seen_since(&cache, "n1", 100, 110);
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
    let r = reconcile_seen_since(&cache, "n1", 100, 141);
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
    let r = reconcile_seen_since(&cache, "n1", 100, 105);
    let taints = node_update(&r).unwrap().spec.unwrap().taints;
    assert_eq!(
        taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        [NOT_READY_TAINT]
    );
    assert!(node_status(&r).is_none());
}

#[test]
fn a_returning_node_is_cleaned_of_lifecycle_taints_only() {
    let tainted = || {
        node("n1")
            .taint_added(UNREACHABLE_TAINT, "NoExecute", 0)
            .taint("dedicated", "db", "NoSchedule")
            .build()
    };
    let mut health = NodeHealth::default();
    let silent = Cache::from_objects([tainted(), lease("n1", 0)]);
    let r = reconcile(&silent, &key("n1"), at(400), &config(), &mut health);
    assert!(
        node_update(&r).is_none(),
        "not cleaned before it renews: {r:?}"
    );
    let cache = Cache::from_objects([tainted(), lease("n1", 500)]);
    let r = reconcile(&cache, &key("n1"), at(505), &config(), &mut health);
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
        let r = reconcile_first_look(&cache, "n1", now);
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
    let r = reconcile_first_look(&cache, "n1", 101);
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
    let r = reconcile_first_look(&cache, "n1", 100_000);
    assert!(evicted(&r).is_empty());
}

/// An agent whose clock is off by a minute (either way) or an hour behind renews every
/// 10 s by its own clock: judged by when the controller saw each renewal, its node stays
/// Ready, untainted, its pods in place.
#[test]
fn an_agent_whose_clock_is_off_keeps_its_node_ready() {
    for skew in [-60, 60, -3600] {
        let mut health = NodeHealth::default();
        for step in 0..20 {
            let now = 1000 + 10 * step;
            let cache = Cache::from_objects([
                node("n1").build(),
                lease("n1", now + skew),
                pod("default", "web").node("n1").ready_since(900).build(),
            ]);
            let r = reconcile(&cache, &key("n1"), at(now), &config(), &mut health);
            assert!(
                r.actions.is_empty(),
                "skew {skew} s, at {now}: the controller acted: {r:?}"
            );
        }
    }
}

/// An agent that stops renewing is Unknown once the grace period passes on the
/// controller's clock, even if the renewTime it last wrote lies in the future.
#[test]
fn a_silent_agent_is_unknown_after_the_grace_period_whatever_its_timestamp_says() {
    let cache = Cache::from_objects([node("n1").build(), lease("n1", 1000 + 3600)]);
    let mut health = NodeHealth::default();
    let r = reconcile(&cache, &key("n1"), at(1000), &config(), &mut health);
    assert!(r.actions.is_empty(), "{r:?}");
    let r = reconcile(&cache, &key("n1"), at(1040), &config(), &mut health);
    assert!(r.actions.is_empty(), "within the grace period: {r:?}");
    let r = reconcile(&cache, &key("n1"), at(1041), &config(), &mut health);
    let status = node_status(&r).expect("the node's conditions are updated");
    assert_eq!(
        condition(&status.conditions, "Ready").map(|c| c.status.as_str()),
        Some("Unknown")
    );
    let taints = node_update(&r).unwrap().spec.unwrap().taints;
    assert_eq!(taints[0].key, UNREACHABLE_TAINT);
}

/// A controller that starts leading keeps an unreachable node's taint (and its pods'
/// eviction schedule) until it sees the agent renew, instead of cleaning it at first look.
#[test]
fn a_new_leader_keeps_an_unreachable_node_tainted_until_its_agent_renews() {
    let silent = Cache::from_objects([
        node("n1")
            .ready("Unknown")
            .taint_added(UNREACHABLE_TAINT, "NoExecute", 100)
            .build(),
        lease("n1", 50),
    ]);
    let mut health = NodeHealth::default();
    for now in [200, 230, 260] {
        let r = reconcile(&silent, &key("n1"), at(now), &config(), &mut health);
        assert!(node_update(&r).is_none(), "at {now}: {r:?}");
        assert!(r.events().next().is_none(), "at {now}: {r:?}");
    }
    let renewed = Cache::from_objects([
        node("n1")
            .ready("True")
            .taint_added(UNREACHABLE_TAINT, "NoExecute", 100)
            .build(),
        lease("n1", 265),
    ]);
    let r = reconcile(&renewed, &key("n1"), at(265), &config(), &mut health);
    assert!(node_update(&r).unwrap().spec.unwrap().taints.is_empty());
}
