use super::*;
use crate::replicaset;
use crate::testing::*;

fn dkey() -> ObjectKey {
    ObjectKey::new(Kind::Deployment, "default", "web")
}

/// A small cluster simulation: the deployment and ReplicaSet controllers run against one
/// cache; pods become ready `ready_after` seconds after they are created.
struct Sim {
    cache: Cache,
    now: i64,
    next_uid: u64,
    ready_after: i64,
    born: HashMap<String, i64>,
    events: Vec<String>,
}

impl Sim {
    fn new(d: v1::Deployment, ready_after: i64) -> Sim {
        Sim {
            cache: Cache::from_objects([Object::Deployment(d)]),
            now: 100,
            next_uid: 0,
            ready_after,
            born: HashMap::new(),
            events: Vec::new(),
        }
    }

    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Create(o) => {
                    let mut o = o.clone();
                    self.next_uid += 1;
                    let m = o.metadata_mut();
                    m.uid = format!("sim-{}", self.next_uid);
                    m.creation_timestamp = ts(self.now);
                    m.generation = 1;
                    if let Object::Pod(p) = &mut o {
                        p.spec.get_or_insert_with(Default::default).node_name = "n1".into();
                        p.status = Some(v1::PodStatus {
                            phase: "Pending".into(),
                            ..Default::default()
                        });
                        self.born.insert(m_name(&o), self.now);
                    }
                    assert!(
                        self.cache.get(&ObjectKey::of(&o)).is_none(),
                        "created twice: {}",
                        m_name(&o)
                    );
                    self.cache.upsert(o);
                }
                Action::Update(o) => {
                    let mut o = o.clone();
                    if let Some(current) = self.cache.get(&ObjectKey::of(&o)) {
                        match (&mut o, current.as_ref()) {
                            (Object::ReplicaSet(new), Object::ReplicaSet(cur)) => {
                                new.status = cur.status.clone()
                            }
                            (Object::Deployment(new), Object::Deployment(cur)) => {
                                new.status = cur.status.clone()
                            }
                            _ => {}
                        }
                    }
                    self.cache.upsert(o);
                }
                Action::UpdateStatus(o) => {
                    let Some(current) = self
                        .cache
                        .get(&ObjectKey::of(o))
                        .map(|c| c.as_ref().clone())
                    else {
                        continue;
                    };
                    let merged = match (current, o) {
                        (Object::ReplicaSet(mut cur), Object::ReplicaSet(new)) => {
                            cur.status = new.status.clone();
                            Object::ReplicaSet(cur)
                        }
                        (Object::Deployment(mut cur), Object::Deployment(new)) => {
                            cur.status = new.status.clone();
                            Object::Deployment(cur)
                        }
                        (_, other) => other.clone(),
                    };
                    self.cache.upsert(merged);
                }
                Action::Delete { key, .. } => {
                    self.cache.remove(key);
                }
                Action::RecordEvent(e) => self.events.push(e.message.clone()),
                _ => {}
            }
        }
    }

    fn run_replica_sets(&mut self) {
        let keys: Vec<ObjectKey> = self
            .cache
            .list(Kind::ReplicaSet)
            .map(|o| ObjectKey::of(o))
            .collect();
        for key in keys {
            let r = replicaset::reconcile(&self.cache, &key, at(self.now), self.next_uid);
            self.apply(&r.actions);
        }
    }

    fn step(&mut self) -> Reconciled {
        let r = reconcile(&self.cache, &dkey(), at(self.now));
        self.apply(&r.actions);
        self.run_replica_sets();
        self.now += 1;
        let ready: Vec<Object> = self
            .cache
            .list(Kind::Pod)
            .filter_map(|o| match o.as_ref() {
                Object::Pod(p) if !crate::pods::is_ready(p) => {
                    let born = self.born.get(&m_name(o)).copied().unwrap_or(0);
                    (self.now - born >= self.ready_after).then(|| {
                        let mut p = p.clone();
                        let status = p.status.get_or_insert_with(Default::default);
                        status.phase = "Running".into();
                        status.conditions = vec![ready_condition("True", self.now)];
                        Object::Pod(p)
                    })
                }
                _ => None,
            })
            .collect();
        for p in ready {
            self.cache.upsert(p);
        }
        self.run_replica_sets();
        r
    }

    fn deployment(&self) -> v1::Deployment {
        match self.cache.get(&dkey()).map(|o| o.as_ref()) {
            Some(Object::Deployment(d)) => d.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn set_deployment(&mut self, f: impl FnOnce(&mut v1::Deployment)) {
        let mut d = self.deployment();
        f(&mut d);
        d.metadata.get_or_insert_with(Default::default).generation += 1;
        self.cache.upsert(Object::Deployment(d));
    }

    fn replica_sets(&self) -> Vec<v1::ReplicaSet> {
        let mut out: Vec<v1::ReplicaSet> = self
            .cache
            .list(Kind::ReplicaSet)
            .filter_map(|o| match o.as_ref() {
                Object::ReplicaSet(rs) => Some(rs.clone()),
                _ => None,
            })
            .collect();
        out.sort_by(by_age);
        out
    }

    fn pods(&self) -> Vec<v1::Pod> {
        self.cache
            .list(Kind::Pod)
            .filter_map(|o| match o.as_ref() {
                Object::Pod(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn ready_pods(&self) -> usize {
        self.pods()
            .iter()
            .filter(|p| crate::pods::is_ready(p))
            .count()
    }

    fn is_rolled_out(&self) -> bool {
        let d = self.deployment();
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.unwrap_or_default();
        let old_pods = self
            .pods()
            .iter()
            .filter(|p| {
                p.spec.as_ref().is_some_and(|s| {
                    s.containers[0].image != image_of(&d_template(&self.deployment()))
                })
            })
            .count();
        status.updated_replicas == replicas
            && status.available_replicas == replicas
            && status.replicas == replicas
            && old_pods == 0
    }

    fn converge(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            if self.is_rolled_out() {
                return;
            }
            self.step();
        }
        panic!(
            "no convergence: {:?}\n{:?}",
            self.deployment().status,
            self.events
        );
    }
}

fn m_name(o: &Object) -> String {
    o.metadata().name.clone()
}

fn d_template(d: &v1::Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

fn image_of(t: &PodTemplateSpec) -> String {
    t.spec
        .as_ref()
        .map(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

fn set_image(d: &mut v1::Deployment, image: &str) {
    if let Some(spec) = d
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut())
    {
        spec.containers[0].image = image.to_owned();
    }
}

fn with_strategy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> v1::Deployment {
    let mut d = deployment("default", "web", replicas);
    if let Some(strategy) = d.spec.as_mut().and_then(|s| s.strategy.as_mut()) {
        strategy.rolling_update = Some(v1::RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        });
    }
    d
}

fn int(v: i32) -> IntOrString {
    IntOrString::Int(v)
}

fn pct(v: &str) -> IntOrString {
    IntOrString::String(v.to_owned())
}

#[test]
fn the_first_reconcile_creates_a_hashed_replica_set_at_revision_one() {
    let d = deployment("default", "web", 3);
    let hash = pod_template_hash(&d_template(&d), None);
    let cache = Cache::from_objects([Object::Deployment(d)]);
    let r = reconcile(&cache, &dkey(), at(10));
    let rs = r
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Create(Object::ReplicaSet(rs)) => Some(rs.clone()),
            _ => None,
        })
        .unwrap();
    let m = rs.metadata.as_ref().unwrap();
    assert_eq!(m.name, format!("web-{hash}"));
    assert_eq!(m.labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(
        m.annotations.get(REVISION_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert_eq!(m.owner_references[0].kind, "Deployment");
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.selector
            .as_ref()
            .unwrap()
            .match_labels
            .get(POD_TEMPLATE_HASH_LABEL),
        Some(&hash)
    );
    let tlabels = &spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels;
    assert_eq!(tlabels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    let events: Vec<_> = r.events().map(|e| e.message.clone()).collect();
    assert_eq!(
        events,
        [format!("Scaled up replica set web-{hash} from 0 to 3")]
    );
    let updated = r.actions.iter().find_map(|a| match a {
        Action::Update(Object::Deployment(d)) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(
        updated
            .and_then(|d| d.metadata?.annotations.get(REVISION_ANNOTATION).cloned())
            .as_deref(),
        Some("1")
    );
    let status = r
        .actions
        .iter()
        .find_map(|a| match a {
            Action::UpdateStatus(Object::Deployment(d)) => d.status.clone(),
            _ => None,
        })
        .unwrap();
    let progressing = condition(&status.conditions, "Progressing").unwrap();
    assert_eq!(progressing.reason, "NewReplicaSetCreated");
}

#[test]
fn the_template_hash_is_stable_short_and_ignores_its_own_label() {
    let d = deployment("default", "web", 1);
    let t = d_template(&d);
    let h = pod_template_hash(&t, None);
    assert_eq!(h, pod_template_hash(&t.clone(), None));
    assert!(
        h.len() <= 10 && h.chars().all(|c| HASH_ALPHABET.contains(&(c as u8))),
        "{h}"
    );
    let mut labelled = t.clone();
    labelled
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "x".into());
    assert_eq!(pod_template_hash(&labelled, None), h);
    let mut other = d.clone();
    set_image(&mut other, "nginx:2");
    assert_ne!(pod_template_hash(&d_template(&other), None), h);
    assert_ne!(pod_template_hash(&t, Some(1)), h);
}

#[test]
fn empty_resources_and_no_resources_are_the_same_template() {
    let d = deployment("default", "web", 1);
    let bare = d_template(&d);
    let mut spelled = bare.clone();
    for container in &mut spelled.spec.as_mut().unwrap().containers {
        container.resources = Some(Default::default());
    }
    assert_eq!(
        pod_template_hash(&spelled, None),
        pod_template_hash(&bare, None),
        "`resources: {{}}` hashes as no resources (JSON clients drop the empty object)"
    );
    assert!(same_template(Some(&spelled), Some(&bare)));
    let mut sized = bare.clone();
    sized.spec.as_mut().unwrap().containers[0].resources = Some(v1::ResourceRequirements {
        requests: [("cpu".to_owned(), "10m".to_owned())].into(),
        ..Default::default()
    });
    assert_ne!(
        pod_template_hash(&sized, None),
        pod_template_hash(&bare, None)
    );
}

/// Rolling update steps for given replicas/maxSurge/maxUnavailable, pods becoming ready
/// between steps: availability never drops below replicas − maxUnavailable and the pod
/// count never exceeds replicas + maxSurge.
#[test]
fn rollout_never_drops_below_min_available_nor_exceeds_max_surge() {
    let table = [
        (10, pct("25%"), pct("25%"), 3, 2),
        (10, int(0), int(1), 0, 1),
        (10, int(1), int(0), 1, 0),
        (3, int(1), int(0), 1, 0),
        (5, pct("50%"), int(0), 3, 0),
        (4, int(0), pct("50%"), 0, 2),
        (6, int(2), int(2), 2, 2),
        (1, pct("25%"), pct("25%"), 1, 0),
    ];
    for (replicas, surge, unavailable, want_surge, want_unavailable) in table {
        for ready_after in [1, 3] {
            let label = format!("{replicas} {surge:?} {unavailable:?} ready after {ready_after}");
            let mut sim = Sim::new(
                with_strategy(replicas, surge.clone(), unavailable.clone()),
                ready_after,
            );
            sim.converge(100);
            sim.set_deployment(|d| set_image(d, "nginx:2"));
            let max_pods = usize::try_from(replicas + want_surge).unwrap();
            let min_ready = usize::try_from(replicas - want_unavailable).unwrap();
            for step in 0..300 {
                if sim.is_rolled_out() {
                    break;
                }
                sim.step();
                let pods = sim.pods().len();
                let ready = sim.ready_pods();
                assert!(
                    pods <= max_pods,
                    "{label}: step {step}: {pods} pods > {max_pods}"
                );
                assert!(
                    ready >= min_ready,
                    "{label}: step {step}: {ready} ready < {min_ready}"
                );
                assert!(
                    step < 299,
                    "{label}: no convergence {:?}",
                    sim.deployment().status
                );
            }
            let rses = sim.replica_sets();
            assert_eq!(rses.len(), 2, "{label}");
            assert_eq!(rses[0].spec.as_ref().unwrap().replicas, Some(0), "{label}");
            assert_eq!(revision_of(rses[1].metadata.as_ref()), 2, "{label}");
            let d = sim.deployment();
            assert_eq!(revision_of(d.metadata.as_ref()), 2, "{label}");
            // One more reconcile marks the rollout complete.
            sim.step();
            let status = sim.deployment().status.unwrap();
            let progressing = condition(&status.conditions, "Progressing").unwrap();
            assert_eq!(progressing.reason, "NewReplicaSetAvailable", "{label}");
            assert_eq!(
                condition(&status.conditions, "Available").unwrap().status,
                "True"
            );
            assert!(
                sim.events
                    .iter()
                    .any(|e| e.starts_with("Scaled down replica set")),
                "{label}"
            );
        }
    }
}

#[test]
fn recreate_removes_every_old_pod_before_creating_new_ones() {
    let mut d = deployment("default", "web", 3);
    d.spec.as_mut().unwrap().strategy = Some(v1::DeploymentStrategy {
        r#type: "Recreate".into(),
        rolling_update: None,
    });
    let mut sim = Sim::new(d, 1);
    sim.converge(50);
    sim.set_deployment(|d| set_image(d, "nginx:2"));
    let mut saw_empty = false;
    for _ in 0..50 {
        if sim.is_rolled_out() {
            break;
        }
        sim.step();
        let images: std::collections::HashSet<String> = sim
            .pods()
            .iter()
            .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
            .collect();
        assert!(images.len() <= 1, "old and new pods together: {images:?}");
        saw_empty |= images.is_empty();
    }
    assert!(saw_empty);
    assert!(sim.is_rolled_out());
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll_out() {
    let mut sim = Sim::new(deployment("default", "web", 2), 1);
    sim.converge(50);
    sim.set_deployment(|d| {
        let spec = d.spec.as_mut().unwrap();
        spec.paused = true;
        spec.replicas = Some(4);
        set_image(d, "nginx:2");
    });
    for _ in 0..10 {
        sim.step();
    }
    let rses = sim.replica_sets();
    assert_eq!(rses.len(), 1);
    assert_eq!(rses[0].spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(sim.pods().len(), 4);
    let status = sim.deployment().status.unwrap();
    let progressing = condition(&status.conditions, "Progressing").unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("Unknown", "DeploymentPaused")
    );
    sim.set_deployment(|d| d.spec.as_mut().unwrap().paused = false);
    sim.converge(100);
    assert_eq!(sim.replica_sets().len(), 2);
}

#[test]
fn scaling_mid_rollout_is_shared_in_proportion() {
    let mut sim = Sim::new(with_strategy(10, int(3), int(2)), 1000);
    // Converge by hand: make the first pods ready at once.
    sim.ready_after = 1;
    sim.converge(50);
    sim.ready_after = 1000;
    sim.set_deployment(|d| set_image(d, "nginx:2"));
    for _ in 0..3 {
        sim.step();
    }
    let before: Vec<i32> = sim
        .replica_sets()
        .iter()
        .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap())
        .collect();
    assert_eq!(before, [8, 5]);
    sim.set_deployment(|d| d.spec.as_mut().unwrap().replicas = Some(20));
    sim.step();
    let after: Vec<i32> = sim
        .replica_sets()
        .iter()
        .map(|rs| rs.spec.as_ref().unwrap().replicas.unwrap())
        .collect();
    // 13 of 13 allowed become 23 of 23: 8·23/13 ≈ 14, the rest to the new one.
    assert_eq!(after.iter().sum::<i32>(), 23);
    assert_eq!(after, [14, 9]);
}

#[test]
fn old_empty_replica_sets_beyond_the_history_limit_are_deleted() {
    let mut d = deployment("default", "web", 1);
    d.spec.as_mut().unwrap().revision_history_limit = Some(2);
    let mut sim = Sim::new(d, 1);
    sim.converge(50);
    for image in ["nginx:2", "nginx:3", "nginx:4", "nginx:5"] {
        sim.set_deployment(|d| set_image(d, image));
        sim.converge(50);
        sim.step();
    }
    let revisions: Vec<i64> = sim
        .replica_sets()
        .iter()
        .map(|rs| revision_of(rs.metadata.as_ref()))
        .collect();
    let mut sorted = revisions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [3, 4, 5]);
}

#[test]
fn undo_puts_back_the_previous_template_and_gives_it_a_new_revision() {
    let mut sim = Sim::new(deployment("default", "web", 2), 1);
    sim.converge(50);
    sim.set_deployment(|d| set_image(d, "nginx:2"));
    sim.converge(50);
    let d = sim.deployment();
    let rses = sim.replica_sets();
    let refs: Vec<&v1::ReplicaSet> = rses.iter().collect();
    let template = rollback_template(&d, &refs, 0).unwrap();
    assert_eq!(image_of(&template), "nginx:1");
    assert!(!template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .contains_key(POD_TEMPLATE_HASH_LABEL));
    assert_eq!(
        image_of(&rollback_template(&d, &refs, 2).unwrap()),
        "nginx:2"
    );
    assert_eq!(
        rollback_template(&d, &refs, 7),
        Err(RollbackError::RevisionNotFound(7))
    );
    assert!(matches!(
        rollback_template(&d, &refs[..1], 0),
        Err(RollbackError::NoHistory(_))
    ));

    sim.set_deployment(|d| d.spec.as_mut().unwrap().template = Some(template));
    sim.converge(50);
    let rses = sim.replica_sets();
    assert_eq!(
        rses.len(),
        2,
        "the old ReplicaSet is reused, not duplicated"
    );
    assert_eq!(revision_of(rses[0].metadata.as_ref()), 3);
    assert_eq!(revision_of(sim.deployment().metadata.as_ref()), 3);
}

#[test]
fn undo_counts_replica_sets_sharing_a_revision_once_and_names_the_revision_it_chose() {
    let mut sim = Sim::new(deployment("default", "web", 2), 1);
    sim.converge(50);
    sim.set_deployment(|d| set_image(d, "nginx:2"));
    sim.converge(50);
    let d = sim.deployment();
    let mut rses = sim.replica_sets();
    // A second ReplicaSet carrying the newest revision (2) must not make 2 "the one
    // before the newest".
    let mut twin = rses
        .iter()
        .find(|rs| revision_of(rs.metadata.as_ref()) == 2)
        .cloned()
        .unwrap();
    twin.metadata.as_mut().unwrap().name.push_str("-twin");
    rses.push(twin);
    let refs: Vec<&v1::ReplicaSet> = rses.iter().collect();
    let (revision, template) = rollback_target(&d, &refs, 0).unwrap();
    assert_eq!(revision, 1);
    assert_eq!(image_of(&template), "nginx:1");
    assert_eq!(rollback_target(&d, &refs, 2).unwrap().0, 2);
    assert_eq!(
        rollback_template(&d, &refs, 0),
        Ok(template),
        "rollback_template is rollback_target's template"
    );
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut d = with_strategy(2, int(1), int(0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(30);
    let mut sim = Sim::new(d, 1);
    sim.converge(50);
    sim.ready_after = 10_000;
    sim.set_deployment(|d| set_image(d, "nginx:broken"));
    for _ in 0..3 {
        let r = sim.step();
        assert!(
            r.requeue_after
                .is_some_and(|d| d <= Duration::from_secs(31)),
            "{:?}",
            r.requeue_after
        );
    }
    let before = condition(&sim.deployment().status.unwrap().conditions, "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(before.reason, "ReplicaSetUpdated");
    sim.now += 40;
    sim.step();
    let status = sim.deployment().status.unwrap();
    let progressing = condition(&status.conditions, "Progressing").unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(
        progressing.message.contains("has timed out progressing"),
        "{}",
        progressing.message
    );
    // Still available: the old pods were never taken down.
    assert_eq!(
        condition(&status.conditions, "Available").unwrap().status,
        "True"
    );
}

#[test]
fn a_deployment_selecting_everything_is_refused_with_an_event() {
    let mut d = deployment("default", "web", 1);
    d.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    let r = reconcile(
        &Cache::from_objects([Object::Deployment(d)]),
        &dkey(),
        at(1),
    );
    assert_eq!(
        r.events().next().map(|e| e.reason.as_str()),
        Some("SelectingAll")
    );
    assert_eq!(r.actions.len(), 1);
}
