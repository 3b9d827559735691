use super::*;
use crate::testing::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Pod, "default", name)
}

fn bound_node(r: &Reconciled) -> Option<String> {
    r.actions.iter().find_map(|a| match a {
        Action::Bind { node, .. } => Some(node.clone()),
        _ => None,
    })
}

fn failure(r: &Reconciled) -> Option<String> {
    r.events()
        .find(|e| e.reason == "FailedScheduling")
        .map(|e| e.message.clone())
}

fn binds(r: &Reconciled) -> Vec<(String, String)> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Bind { name, node, .. } => Some((name.clone(), node.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn pods_naming_another_scheduler_or_already_bound_are_left_alone() {
    let cache = Cache::from_objects([
        node("n1").build(),
        pod("default", "mine").scheduler("my-scheduler").build(),
        pod("default", "bound").node("n1").build(),
        pod("default", "going").deleting().build(),
    ]);
    for name in ["mine", "bound", "going", "missing"] {
        assert_eq!(
            schedule_pod(&cache, &key(name), 1),
            Reconciled::nothing(),
            "{name}"
        );
    }
    assert!(schedule_pending(&cache, 1).actions.is_empty());
}

#[test]
fn a_schedulable_pod_is_bound_with_a_scheduled_event() {
    let cache = Cache::from_objects([node("n1").build(), pod("default", "web").build()]);
    let r = schedule_pod(&cache, &key("web"), 1);
    assert_eq!(bound_node(&r).as_deref(), Some("n1"));
    let event = r.events().next().unwrap();
    assert_eq!(event.reason, "Scheduled");
    assert_eq!(event.message, "Successfully assigned default/web to n1");
    assert_eq!(r.requeue_after, None);
}

/// The seeds' taint/toleration example as a table: which node a pod may land on when
/// node01 carries `spray=mortein:<effect>` and node02 is not Ready (so only node01 counts).
#[test]
fn a_pod_lands_only_on_nodes_whose_taints_it_tolerates() {
    type Toleration<'a> = Option<(&'a str, &'a str, &'a str, &'a str)>;
    let table: &[(&str, Toleration, bool)] = &[
        ("NoSchedule", None, false),
        (
            "NoSchedule",
            Some(("spray", "Equal", "mortein", "NoSchedule")),
            true,
        ),
        (
            "NoSchedule",
            Some(("spray", "Equal", "raid", "NoSchedule")),
            false,
        ),
        ("NoSchedule", Some(("spray", "Exists", "", "")), true),
        ("NoSchedule", Some(("", "Exists", "", "")), true),
        ("NoExecute", None, false),
        (
            "NoExecute",
            Some(("spray", "Equal", "mortein", "NoExecute")),
            true,
        ),
        (
            "NoExecute",
            Some(("spray", "Equal", "mortein", "NoSchedule")),
            false,
        ),
        ("PreferNoSchedule", None, true),
    ];
    for (effect, tol, schedulable) in table {
        let mut p = pod("default", "nginx");
        if let Some((k, op, v, e)) = tol {
            p = p.toleration(toleration(k, op, v, e));
        }
        let cache = Cache::from_objects([
            node("node01").taint("spray", "mortein", effect).build(),
            node("node02").ready("False").build(),
            p.build(),
        ]);
        let r = schedule_pod(&cache, &key("nginx"), 0);
        assert_eq!(
            bound_node(&r).is_some(),
            *schedulable,
            "{effect} {tol:?}: {:?}",
            failure(&r)
        );
    }
}

#[test]
fn the_failure_message_counts_nodes_per_reason_like_kube_scheduler() {
    let mut objects = vec![pod("default", "p").node_selector("size", "Large").build()];
    for i in 0..2 {
        objects.push(
            node(&format!("t{i}"))
                .label("size", "Large")
                .taint("key", "value", "NoSchedule")
                .build(),
        );
    }
    for i in 0..3 {
        objects.push(node(&format!("s{i}")).label("size", "Small").build());
    }
    let cache = Cache::from_objects(objects);
    let r = schedule_pod(&cache, &key("p"), 0);
    assert_eq!(bound_node(&r), None);
    assert_eq!(
        failure(&r).as_deref(),
        Some(
            "0/5 nodes are available: 2 node(s) had untolerated taint {key: value}, \
             3 node(s) didn't match Pod's node affinity/selector."
        )
    );
    assert_eq!(r.requeue_after, Some(UNSCHEDULABLE_RETRY));
    assert_eq!(r.events().next().unwrap().event_type, EventType::Warning);
}

#[test]
fn a_node_selector_with_no_match_stays_pending_and_with_no_nodes_says_so() {
    let cache = Cache::from_objects([pod("default", "p").build()]);
    assert_eq!(
        failure(&schedule_pod(&cache, &key("p"), 0)).as_deref(),
        Some("no nodes available to schedule pods")
    );
    let cache = Cache::from_objects([
        node("node01").label("size", "Small").build(),
        pod("default", "p").node_selector("size", "Large").build(),
    ]);
    assert_eq!(
        failure(&schedule_pod(&cache, &key("p"), 0)).as_deref(),
        Some("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
    );
}

#[test]
fn the_seeds_node_affinity_example_places_on_large_or_medium() {
    let cache = Cache::from_objects([
        node("node01").label("size", "Small").build(),
        node("node02").label("size", "Medium").build(),
        pod("default", "nginx")
            .required_terms(vec![term(vec![req("size", "In", &["Large", "Medium"])])])
            .build(),
    ]);
    let r = schedule_pod(&cache, &key("nginx"), 3);
    assert_eq!(bound_node(&r).as_deref(), Some("node02"));
}

#[test]
fn cordoned_and_not_ready_nodes_are_filtered() {
    let cache = Cache::from_objects([
        node("a").unschedulable().build(),
        node("b").ready("Unknown").build(),
        pod("default", "p").build(),
    ]);
    assert_eq!(
        failure(&schedule_pod(&cache, &key("p"), 0)).as_deref(),
        Some("0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable.")
    );
    let tolerant = Cache::from_objects([
        node("a").unschedulable().build(),
        pod("default", "p")
            .toleration(toleration(
                "node.kubernetes.io/unschedulable",
                "Exists",
                "",
                "NoSchedule",
            ))
            .build(),
    ]);
    assert_eq!(
        bound_node(&schedule_pod(&tolerant, &key("p"), 0)).as_deref(),
        Some("a")
    );
}

/// Resource fit against a node with 4 CPUs, 8Gi and room for 3 pods, already running a
/// pod requesting 1 CPU and 2Gi (and a finished one that no longer counts).
#[test]
fn requests_must_fit_what_bound_pods_leave_of_allocatable() {
    let table = [
        (("3", "6Gi"), None, None),
        (
            ("3100m", "1Gi"),
            None,
            Some("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        (
            ("1", "6145Mi"),
            None,
            Some("0/1 nodes are available: 1 Insufficient memory."),
        ),
        (
            ("4", "7Gi"),
            None,
            Some("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
        ),
        (
            ("100m", ""),
            Some(("3500m", "")),
            Some("0/1 nodes are available: 1 Insufficient cpu."),
        ),
        (("", ""), None, None),
    ];
    for ((cpu, memory), init, want) in table {
        let mut p = pod("default", "p").requests(cpu, memory);
        if let Some((c, m)) = init {
            p = p.init_requests(c, m);
        }
        let cache = Cache::from_objects([
            node("n1").allocatable("4", "8Gi", "3").build(),
            pod("default", "running")
                .node("n1")
                .requests("1", "2Gi")
                .running()
                .build(),
            pod("default", "done")
                .node("n1")
                .requests("2", "2Gi")
                .phase("Succeeded")
                .build(),
            p.build(),
        ]);
        let r = schedule_pod(&cache, &key("p"), 0);
        assert_eq!(failure(&r).as_deref(), want, "{cpu} {memory} {init:?}");
    }
}

#[test]
fn a_full_node_reports_too_many_pods() {
    let cache = Cache::from_objects([
        node("n1").allocatable("4", "8Gi", "1").build(),
        pod("default", "running").node("n1").build(),
        pod("default", "p").build(),
    ]);
    assert_eq!(
        failure(&schedule_pod(&cache, &key("p"), 0)).as_deref(),
        Some("0/1 nodes are available: 1 Too many pods.")
    );
}

#[test]
fn prefer_no_schedule_is_avoided_while_another_node_fits() {
    let cache = Cache::from_objects([
        node("a").taint("key", "value", "PreferNoSchedule").build(),
        node("b").build(),
        pod("default", "p").build(),
    ]);
    for seed in 0..8 {
        assert_eq!(
            bound_node(&schedule_pod(&cache, &key("p"), seed)).as_deref(),
            Some("b")
        );
    }
}

#[test]
fn preferred_affinity_weights_choose_the_node() {
    let cache = Cache::from_objects([
        node("a").label("disk", "ssd").build(),
        node("b").label("zone", "east").build(),
        pod("default", "p")
            .preferred(10, term(vec![req("disk", "In", &["ssd"])]))
            .preferred(50, term(vec![req("zone", "Exists", &[])]))
            .build(),
    ]);
    for seed in 0..8 {
        assert_eq!(
            bound_node(&schedule_pod(&cache, &key("p"), seed)).as_deref(),
            Some("b")
        );
    }
}

#[test]
fn the_least_allocated_node_wins() {
    let cache = Cache::from_objects([
        node("busy").build(),
        node("idle").build(),
        pod("default", "hog")
            .node("busy")
            .requests("3", "6Gi")
            .running()
            .build(),
        pod("default", "p").requests("100m", "100Mi").build(),
    ]);
    for seed in 0..8 {
        assert_eq!(
            bound_node(&schedule_pod(&cache, &key("p"), seed)).as_deref(),
            Some("idle")
        );
    }
}

#[test]
fn a_batch_spreads_replicas_of_one_owner_across_nodes() {
    let rs = replica_set("default", "web", 6).build();
    let mut objects = vec![node("a").build(), node("b").build(), node("c").build()];
    for i in 0..6 {
        objects.push(pod("default", &format!("web-{i}")).owner(&rs, true).build());
    }
    objects.push(rs);
    let cache = Cache::from_objects(objects);
    let r = schedule_pending(&cache, 9);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for (_, n) in binds(&r) {
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

#[test]
fn a_batch_counts_the_pods_it_just_placed() {
    let mut objects = vec![node("n1").allocatable("2", "8Gi", "110").build()];
    for i in 0..3 {
        objects.push(
            pod("default", &format!("p{i}"))
                .requests("1", "")
                .created(i)
                .build(),
        );
    }
    let cache = Cache::from_objects(objects);
    let r = schedule_pending(&cache, 0);
    let placed: Vec<String> = binds(&r).into_iter().map(|(p, _)| p).collect();
    assert_eq!(placed, ["p0", "p1"]);
    assert_eq!(
        failure(&r).as_deref(),
        Some("0/1 nodes are available: 1 Insufficient cpu.")
    );
}

#[test]
fn a_batch_places_higher_priority_pods_first() {
    let mut high = pod("default", "z-high")
        .requests("1", "")
        .created(5)
        .build_pod();
    if let Some(spec) = high.spec.as_mut() {
        spec.priority = Some(1000);
    }
    let cache = Cache::from_objects([
        node("n1").allocatable("1", "8Gi", "110").build(),
        pod("default", "a-low").requests("1", "").created(1).build(),
        Object::Pod(high),
    ]);
    let placed: Vec<String> = binds(&schedule_pending(&cache, 0))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(placed, ["z-high"]);
}

#[test]
fn large_clusters_search_a_shrinking_share_of_nodes() {
    assert_eq!(feasible_nodes_to_find(50), 50);
    assert_eq!(feasible_nodes_to_find(200), 100);
    assert_eq!(feasible_nodes_to_find(5000), 500);
    assert_eq!(feasible_nodes_to_find(100_000), 5000);
}

/// Throughput of one batch pass (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore]
fn batch_throughput_on_5000_nodes_and_30000_pods() {
    let mut objects = Vec::new();
    for n in 0..5000 {
        objects.push(
            node(&format!("hollow-{n:05}"))
                .allocatable("32", "128Gi", "110")
                .label("zone", if n % 2 == 0 { "a" } else { "b" })
                .build(),
        );
    }
    let rs: Vec<Object> = (0..300)
        .map(|i| replica_set("bench", &format!("rs{i}"), 100).build())
        .collect();
    for i in 0..30_000 {
        objects.push(
            pod("bench", &format!("p{i:05}"))
                .owner(&rs[i % 300], true)
                .requests("100m", "128Mi")
                .build(),
        );
    }
    let cache = Cache::from_objects(objects);
    let start = std::time::Instant::now();
    let r = schedule_pending(&cache, 7);
    let elapsed = start.elapsed();
    let bound = binds(&r).len();
    println!(
        "bound {bound} pods in {elapsed:?}: {:.0} pods/s",
        bound as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(bound, 30_000);
}

#[test]
fn assumed_pods_count_on_their_node_and_are_not_placed_again() {
    let mut cache = Cache::from_objects([
        node("n1").allocatable("1", "1Gi", "1").build(),
        pod("default", "a").uid("ua").build(),
        pod("default", "b").uid("ub").build(),
    ]);
    let mut assumed = Assumed::default();
    let first = schedule_pending_assuming(&cache, &assumed, 1);
    assert_eq!(binds(&first).len(), 1, "one pod fits n1");
    assumed.assume_binds(&first.actions);
    assert_eq!(assumed.len(), 1);

    // The bind is not in the cache yet: the bound pod is neither placed again nor is
    // its room given to the other pod.
    let second = schedule_pending_assuming(&cache, &assumed, 2);
    assert!(binds(&second).is_empty(), "{second:?}");
    assert!(failure(&second).is_some_and(|m| m.contains("Too many pods")));

    // Once the cache shows the binding, the assumption ends.
    let (placed, _) = binds(&first)[0].clone();
    let bound = pod("default", &placed)
        .uid(if placed == "a" { "ua" } else { "ub" })
        .node("n1")
        .build();
    cache.apply(crate::cache::CacheEvent::Upsert(bound));
    assumed.prune(&cache);
    assert!(assumed.is_empty());
}

#[test]
fn a_forgotten_pod_is_placed_again() {
    let cache = Cache::from_objects([node("n1").build(), pod("default", "a").uid("ua").build()]);
    let mut assumed = Assumed::default();
    let first = schedule_pending_assuming(&cache, &assumed, 1);
    assumed.assume_binds(&first.actions);
    assert!(schedule_pending_assuming(&cache, &assumed, 1)
        .actions
        .is_empty());
    assumed.forget("default", "a");
    assert_eq!(
        binds(&schedule_pending_assuming(&cache, &assumed, 1)),
        [("a".to_owned(), "n1".to_owned())]
    );
}

#[test]
fn an_assumption_ends_when_the_pod_is_replaced_or_deleted() {
    let mut cache =
        Cache::from_objects([node("n1").build(), pod("default", "a").uid("ua").build()]);
    let mut assumed = Assumed::default();
    assumed.assume_binds(&schedule_pending_assuming(&cache, &assumed, 1).actions);
    cache.apply(crate::cache::CacheEvent::Upsert(
        pod("default", "a").uid("other").build(),
    ));
    assumed.prune(&cache);
    assert!(
        assumed.is_empty(),
        "a new pod of the same name is not assumed"
    );
    assumed.assume_binds(&schedule_pending_assuming(&cache, &assumed, 1).actions);
    assert_eq!(assumed.len(), 1);
    cache.apply(crate::cache::CacheEvent::Delete(key("a")));
    assumed.prune(&cache);
    assert!(assumed.is_empty());
}
