//! A fake [`ClusterApi`] for the runtime's tests: an in-memory object map with revisions,
//! a change log that feeds the informer, term fencing, and a record of every write the
//! controllers attempted (with the term it carried and how it ended). Test-only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use rafter_proto::{Kind, Object};
use tokio::sync::{mpsc, watch};

use crate::action::{Action, EventRecord, ObjectKey};
use crate::cache::CacheEvent;
use crate::runtime::api::{
    is_informed, AllocationRepair, ApiError, ChangeStream, ClusterApi, Outcome, RevisionChanges,
    Snapshot,
};
use crate::runtime::controller::wall_clock;

/// One write a controller attempted.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub term: u64,
    pub action: Action,
    pub result: Result<u64, ApiError>,
}

#[derive(Default)]
pub(crate) struct State {
    pub objects: BTreeMap<ObjectKey, Object>,
    pub revision: u64,
    pub term: u64,
    pub attempts: Vec<Attempt>,
    pub events: Vec<EventRecord>,
    /// The next this many Bindings fail as Unavailable.
    pub failing_binds: usize,
    /// How many of the next event writes fail (Unavailable).
    pub failing_events: usize,
    /// How many of the next repair passes fail (Unavailable).
    pub failing_repairs: usize,
    /// The terms Service allocation repair passes ran in, in order.
    pub repairs: Vec<u64>,
    /// What every repair pass answers.
    pub repair_answer: AllocationRepair,
    log: Vec<RevisionChanges>,
    feeds: Vec<mpsc::UnboundedSender<Result<RevisionChanges, ApiError>>>,
    uids: u64,
}

impl State {
    pub fn list(&self, kind: Kind) -> Vec<&Object> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == kind)
            .map(|(_, o)| o)
            .collect()
    }

    pub fn pods(&self) -> Vec<&rafter_proto::v1::Pod> {
        self.list(Kind::Pod)
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    pub fn bound_pods(&self) -> usize {
        self.pods()
            .iter()
            .filter(|p| p.spec.as_ref().is_some_and(|s| !s.node_name.is_empty()))
            .count()
    }

    fn commit(&mut self, events: Vec<CacheEvent>) -> u64 {
        self.revision += 1;
        let changes = RevisionChanges {
            revision: self.revision,
            events,
        };
        self.feeds
            .retain(|feed| feed.send(Ok(changes.clone())).is_ok());
        self.log.push(changes);
        self.revision
    }

    fn store(&mut self, mut object: Object) -> u64 {
        let key = ObjectKey::of(&object);
        let revision = self.revision + 1;
        object.metadata_mut().resource_version = revision.to_string();
        self.objects.insert(key, object.clone());
        self.commit(vec![CacheEvent::Upsert(object)])
    }

    fn remove(&mut self, key: &ObjectKey) -> u64 {
        self.objects.remove(key);
        self.commit(vec![CacheEvent::Delete(key.clone())])
    }

    fn create(&mut self, mut object: Object) -> Result<u64, ApiError> {
        self.uids += 1;
        let uid = format!("uid-{}", self.uids);
        let meta = object.metadata_mut();
        if meta.name.is_empty() {
            meta.name = format!("{}{:05}", meta.generate_name, self.uids);
        }
        if meta.uid.is_empty() {
            meta.uid = uid;
        }
        if meta.creation_timestamp.is_none() {
            meta.creation_timestamp = Some(wall_clock().to_rfc3339());
        }
        if meta.generation == 0 {
            meta.generation = 1;
        }
        let key = ObjectKey::of(&object);
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists(key.to_string()));
        }
        Ok(self.store(object))
    }

    fn current(&self, key: &ObjectKey, resource_version: &str) -> Result<&Object, ApiError> {
        let current = self
            .objects
            .get(key)
            .ok_or_else(|| ApiError::NotFound(key.to_string()))?;
        if !resource_version.is_empty() && current.metadata().resource_version != resource_version {
            return Err(ApiError::Conflict(format!("{key} was modified")));
        }
        Ok(current)
    }

    fn update(&mut self, object: Object, status: bool) -> Result<u64, ApiError> {
        let key = ObjectKey::of(&object);
        let current = self
            .current(&key, &object.metadata().resource_version)?
            .clone();
        let mut next = if status {
            let mut next = current.clone();
            copy_status(&object, &mut next);
            next
        } else {
            let mut next = object;
            copy_status(&current, &mut next);
            let meta = next.metadata_mut();
            meta.uid = current.metadata().uid.clone();
            meta.deletion_timestamp = current.metadata().deletion_timestamp.clone();
            next
        };
        if !status && spec_differs(&current, &next) {
            next.metadata_mut().generation = current.metadata().generation + 1;
        }
        let meta = next.metadata();
        if meta.deletion_timestamp.is_some() && meta.finalizers.is_empty() {
            return Ok(self.remove(&key));
        }
        Ok(self.store(next))
    }

    fn delete(&mut self, key: &ObjectKey, uid: Option<&str>) -> Result<u64, ApiError> {
        let current = self.current(key, "")?.clone();
        if uid.is_some_and(|u| u != current.metadata().uid) {
            return Err(ApiError::Conflict(format!("{key} has another uid")));
        }
        if current.metadata().finalizers.is_empty() {
            return Ok(self.remove(key));
        }
        let mut marked = current;
        marked.metadata_mut().deletion_timestamp = Some(wall_clock().to_rfc3339());
        Ok(self.store(marked))
    }

    fn apply(&mut self, action: Action) -> Result<u64, ApiError> {
        match action {
            Action::Create(object) => self.create(object),
            Action::Update(object) => self.update(object, false),
            Action::UpdateStatus(object) => self.update(object, true),
            Action::Delete { key, uid, .. } => self.delete(&key, uid.as_deref()),
            Action::Evict {
                namespace,
                name,
                uid,
                ..
            } => self.delete(&ObjectKey::new(Kind::Pod, namespace, name), Some(&uid)),
            Action::Bind {
                namespace,
                name,
                uid,
                node,
            } => {
                let key = ObjectKey::new(Kind::Pod, namespace, name);
                let mut pod = match self.current(&key, "")? {
                    Object::Pod(pod) => pod.clone(),
                    _ => return Err(ApiError::Other("not a pod".to_owned())),
                };
                let meta = pod.metadata.clone().unwrap_or_default();
                if !uid.is_empty() && meta.uid != uid {
                    return Err(ApiError::Conflict("the pod was replaced".to_owned()));
                }
                let spec = pod.spec.get_or_insert_with(Default::default);
                if !spec.node_name.is_empty() {
                    return Err(ApiError::Conflict(format!(
                        "{key} is already bound to {}",
                        spec.node_name
                    )));
                }
                spec.node_name = node;
                Ok(self.store(Object::Pod(pod)))
            }
            Action::RecordEvent(event) => {
                self.events.push(event);
                Ok(self.commit(Vec::new()))
            }
        }
    }
}

fn short(action: &Action) -> String {
    match action {
        Action::Create(o) | Action::Update(o) | Action::UpdateStatus(o) => {
            let verb = match action {
                Action::Create(_) => "create",
                Action::Update(_) => "update",
                _ => "status",
            };
            format!("{verb} {}", ObjectKey::of(o))
        }
        Action::Delete { key, .. } => format!("delete {key}"),
        Action::Bind { name, node, .. } => format!("bind {name} {node}"),
        Action::Evict { name, .. } => format!("evict {name}"),
        Action::RecordEvent(e) => format!("event {} {}", e.reason, e.involved),
    }
}

fn copy_status(from: &Object, to: &mut Object) {
    match (from, to) {
        (Object::Pod(a), Object::Pod(b)) => b.status = a.status.clone(),
        (Object::Service(a), Object::Service(b)) => b.status = a.status.clone(),
        (Object::Node(a), Object::Node(b)) => b.status = a.status.clone(),
        (Object::ReplicaSet(a), Object::ReplicaSet(b)) => b.status = a.status.clone(),
        (Object::Deployment(a), Object::Deployment(b)) => b.status = a.status.clone(),
        (Object::DaemonSet(a), Object::DaemonSet(b)) => b.status = a.status.clone(),
        (Object::PersistentVolume(a), Object::PersistentVolume(b)) => b.status = a.status.clone(),
        (Object::PersistentVolumeClaim(a), Object::PersistentVolumeClaim(b)) => {
            b.status = a.status.clone()
        }
        (Object::CertificateSigningRequest(a), Object::CertificateSigningRequest(b)) => {
            b.status = a.status.clone()
        }
        _ => {}
    }
}

fn spec_differs(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Deployment(x), Object::Deployment(y)) => x.spec != y.spec,
        (Object::ReplicaSet(x), Object::ReplicaSet(y)) => x.spec != y.spec,
        (Object::DaemonSet(x), Object::DaemonSet(y)) => x.spec != y.spec,
        _ => false,
    }
}

/// The fake cluster. Cheap to clone; every clone is the same cluster.
#[derive(Clone)]
pub(crate) struct FakeCluster {
    state: Arc<Mutex<State>>,
    revision: watch::Sender<u64>,
}

impl FakeCluster {
    /// An empty cluster whose current term is `term`.
    pub fn new(term: u64) -> FakeCluster {
        let (revision, _) = watch::channel(0);
        FakeCluster {
            state: Arc::new(Mutex::new(State {
                term,
                ..Default::default()
            })),
            revision,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        let revision = self.state().revision;
        self.revision.send_replace(revision);
    }

    /// Creates an object as a user would (no term).
    pub fn create(&self, object: Object) -> Object {
        let key = ObjectKey::of(&object);
        self.state().create(object).expect("create");
        self.notify();
        self.get(&key).expect("created")
    }

    /// Changes an object as a user would (no term).
    pub fn modify(&self, key: &ObjectKey, change: impl FnOnce(&mut Object)) {
        {
            let mut state = self.state();
            let mut object = state.objects.get(key).cloned().expect("object");
            change(&mut object);
            state.update(object, false).expect("update");
        }
        self.notify();
    }

    /// Changes an object's status as its agent would (no term).
    pub fn modify_status(&self, key: &ObjectKey, change: impl FnOnce(&mut Object)) {
        {
            let mut state = self.state();
            let mut object = state.objects.get(key).cloned().expect("object");
            change(&mut object);
            state.update(object, true).expect("update status");
        }
        self.notify();
    }

    /// Deletes an object as a user would (no term).
    pub fn delete(&self, key: &ObjectKey) {
        self.state().delete(key, None).expect("delete");
        self.notify();
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.state().objects.get(key).cloned()
    }

    /// Another master now leads in `term`: writes of other terms are fenced.
    pub fn set_term(&self, term: u64) {
        self.state().term = term;
    }

    /// Breaks every change feed (as a compaction or a lagging subscriber would).
    pub fn break_feeds(&self) {
        let mut state = self.state();
        for feed in state.feeds.drain(..) {
            let _ = feed.send(Err(ApiError::Gone("feed broken by the test".to_owned())));
        }
    }

    /// Waits until `done` holds, at most `timeout`; panics with `what` otherwise.
    pub async fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&State) -> bool) {
        let mut changed = self.revision.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(&self.state()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                let state = self.state();
                let attempts: Vec<String> = state
                    .attempts
                    .iter()
                    .map(|a| format!("t{} {} -> {:?}", a.term, short(&a.action), a.result))
                    .collect();
                panic!(
                    "timed out waiting for {what}: {} objects, revision {}, attempts:\n{}",
                    state.objects.len(),
                    state.revision,
                    attempts.join("\n")
                );
            }
        }
    }
}

#[async_trait::async_trait]
impl ClusterApi for FakeCluster {
    async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let state = self.state();
        Ok(Snapshot {
            objects: state
                .objects
                .values()
                .filter(|o| is_informed(o.kind()))
                .map(|o| Arc::new(o.clone()))
                .collect(),
            revision: state.revision,
        })
    }

    async fn changes(&self, from: u64) -> Result<ChangeStream, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.state();
        for changes in state.log.iter().filter(|c| c.revision >= from) {
            let _ = tx.send(Ok(changes.clone()));
        }
        state.feeds.push(tx);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        Ok(stream.boxed())
    }

    async fn revision(&self) -> Result<u64, ApiError> {
        Ok(self.state().revision)
    }

    async fn execute(
        &self,
        _controller: &'static str,
        action: Action,
        term: u64,
    ) -> Result<Outcome, ApiError> {
        let result = {
            let mut state = self.state();
            let result = if term != state.term {
                Err(ApiError::Fenced(format!(
                    "term {term} is over (now {})",
                    state.term
                )))
            } else if matches!(action, Action::RecordEvent(_)) && state.failing_events > 0 {
                state.failing_events -= 1;
                Err(ApiError::Unavailable(
                    "event write failed by the test".to_owned(),
                ))
            } else if matches!(action, Action::Bind { .. }) && state.failing_binds > 0 {
                state.failing_binds -= 1;
                Err(ApiError::Unavailable("bind failed by the test".to_owned()))
            } else {
                state.apply(action.clone())
            };
            state.attempts.push(Attempt {
                term,
                action,
                result: result.clone(),
            });
            result
        };
        self.notify();
        result.map(|revision| Outcome { revision })
    }

    async fn repair_service_allocations(&self, term: u64) -> Result<AllocationRepair, ApiError> {
        let result = {
            let mut state = self.state();
            if term != state.term {
                Err(ApiError::Fenced(format!("term {term} is over")))
            } else if state.failing_repairs > 0 {
                state.failing_repairs -= 1;
                Err(ApiError::Unavailable(
                    "repair pass failed by the test".to_owned(),
                ))
            } else {
                state.repairs.push(term);
                Ok(state.repair_answer.clone())
            }
        };
        self.notify();
        result
    }
}
