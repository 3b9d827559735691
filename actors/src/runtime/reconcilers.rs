//! The controllers as the runtime drives them: each pure core paired with the keys a
//! change wakes (note 4 of the cores' author: the owning Deployment when a ReplicaSet
//! changes, the DaemonSets when a node changes, the scheduler when nodes or pods change).
//!
//! | reconciler | key | woken by |
//! |---|---|---|
//! | [`ReplicaSets`] | ReplicaSet | itself; its pods (controller ref); orphan pods its selector matches |
//! | [`Jobs`] | Job | itself; its pods (controller ref) |
//! | [`CronJobs`] | CronJob | itself; its Jobs (controller ref); the next tick (requeue) |
//! | [`Quotas`] | ResourceQuota | itself; every quota of the namespace of any other changed object |
//! | [`Deployments`] | Deployment | itself; its ReplicaSets; orphan ReplicaSets it selects; deleted pods of its ReplicaSets |
//! | [`DaemonSets`] | DaemonSet | itself; its pods; every node change |
//! | [`Nodes`] | Node | itself; its Lease; pods on it while it has NoExecute taints |
//! | [`PodCidrs`] | one pass | any node change |
//! | [`Scheduler`] | one pass (writes pipelined) | any pod, node or claim change while pods are unscheduled |
//! | [`Garbage`] | any object | itself; dependents of a deleted owner; owners of a changed dependent |
//! | [`ServiceAccounts`] | Namespace | itself; a deleted ServiceAccount named `default` |
//! | [`Csrs`] | CSR | itself |
//! | [`EndpointsController`] | Service | itself; pods its selector matches (before and after the change); its Endpoints |
//! | [`EndpointSlices`] | Service | itself; pods its selector matches (before and after the change); slices it manages |
//! | [`ServiceLbs`] | Service | itself; every LoadBalancer Service on any node change |
//! | [`ClusterDnsEndpoints`] | the `kube-dns` Service | a node, the `kube-dns` Service or its Endpoints changed |
//! | [`MirroredSlices`] | Service (existing or not) | a Service; the Endpoints of its name; slices it mirrored |
//! | [`VolumeBinder`] | PersistentVolumeClaim or PersistentVolume | a claim: itself and the volume it names; a volume: itself, the claim it names and every claim without a volume |
//!
//! Owns no state of its own beyond configuration. It must not write.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rafter_proto::{Kind, Object, Selector};

use crate::action::{Action, EventRecord, ObjectKey, Reconciled};
use crate::cache::Cache;
use crate::csr::{self, CertificateSigner};
use crate::endpoint_slice::managed_for;
use crate::node_lifecycle::{NodeHealth, NodeLifecycleConfig, LEASE_NAMESPACE};
use crate::placement::NO_EXECUTE;
use crate::pods::controller_ref;
use crate::reconcile_service_accounts;
use crate::runtime::api::{is_informed, ApiError, Outcome, INFORMED_KINDS};
use crate::runtime::controller::Reconciler;
use crate::runtime::event_budget::SCHEDULED;
use crate::runtime::informer::Change;
use crate::service_backends::selects;
use crate::{
    cluster_dns_key, collect_garbage, pending_in_queue_order, reconcile_claim,
    reconcile_cluster_dns, reconcile_cron_job, reconcile_daemon_set, reconcile_deployment,
    reconcile_endpoint_slices, reconcile_endpoints, reconcile_job, reconcile_mirrored_slices,
    reconcile_node, reconcile_pod_cidrs, reconcile_quota, reconcile_replica_set,
    reconcile_service_lb, reconcile_volume, schedule_pods_assuming, Assumed, ClusterCidr,
    JobBackoff, SchedulingPass, SchedulingQueue, PODS_PER_PASS,
};
use rafter_proto::well_known::{ENDPOINT_SLICE_CONTROLLER, ENDPOINT_SLICE_MIRRORING_CONTROLLER};
use rafter_proto::Timestamp;

fn keys_of(cache: &Cache, kind: Kind) -> Vec<ObjectKey> {
    cache.list(kind).map(|o| ObjectKey::of(o)).collect()
}

/// Both sides of a change that exist.
fn sides(change: &Change) -> impl Iterator<Item = &Object> {
    change
        .old
        .iter()
        .chain(change.new.iter())
        .map(|o| o.as_ref())
}

/// The key of the controller (of kind `owner_kind`) of `object`.
fn controller_key(object: &Object, owner_kind: Kind) -> Option<ObjectKey> {
    let meta = object.metadata();
    let owner = controller_ref(meta)?;
    (owner.kind == owner_kind.name())
        .then(|| ObjectKey::new(owner_kind, meta.namespace.clone(), owner.name.clone()))
}

/// The owners of `kind` in the object's namespace whose selector matches an orphan.
fn selecting_owners(cache: &Cache, object: &Object, owner_kind: Kind, keys: &mut Vec<ObjectKey>) {
    let meta = object.metadata();
    if controller_ref(meta).is_some() || meta.deletion_timestamp.is_some() {
        return;
    }
    for owner in cache.list_namespaced(owner_kind, &meta.namespace) {
        let selector = match owner.as_ref() {
            Object::ReplicaSet(rs) => rs.spec.as_ref().and_then(|s| s.selector.as_ref()),
            Object::Deployment(d) => d.spec.as_ref().and_then(|s| s.selector.as_ref()),
            _ => None,
        };
        let matches = Selector::from_optional_label_selector(selector)
            .is_ok_and(|s| !s.is_empty() && s.matches(&meta.labels));
        if matches {
            keys.push(ObjectKey::of(owner));
        }
    }
}

/// Keys of the `owner_kind` objects a changed dependent concerns: its controller before
/// and after the change, and owners whose selector now matches it (orphans to adopt).
fn owners_of(cache: &Cache, change: &Change, owner_kind: Kind, keys: &mut Vec<ObjectKey>) {
    for side in sides(change) {
        keys.extend(controller_key(side, owner_kind));
    }
    if let Some(new) = &change.new {
        selecting_owners(cache, new, owner_kind, keys);
    }
}

/// The ReplicaSet controller.
pub(crate) struct ReplicaSets;

impl Reconciler for ReplicaSets {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "replicaset-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::ReplicaSet => keys.push(change.key.clone()),
            Kind::Pod => {
                owners_of(cache, change, Kind::ReplicaSet, keys);
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::ReplicaSet)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        seed: u64,
    ) -> Reconciled {
        reconcile_replica_set(cache, key, now, seed)
    }
}

/// The Job controller.
pub(crate) struct Jobs {
    pub(crate) backoff: JobBackoff,
}

impl Reconciler for Jobs {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "job-controller"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Job => keys.push(change.key.clone()),
            Kind::Pod => {
                for side in sides(change) {
                    keys.extend(controller_key(side, Kind::Job));
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Job)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_job(cache, key, now, self.backoff)
    }
}

/// The CronJob controller.
pub(crate) struct CronJobs;

impl Reconciler for CronJobs {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "cronjob-controller"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::CronJob => keys.push(change.key.clone()),
            Kind::Job => {
                for side in sides(change) {
                    keys.extend(controller_key(side, Kind::CronJob));
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::CronJob)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_cron_job(cache, key, now)
    }
}

/// The ResourceQuota usage controller.
pub(crate) struct Quotas;

impl Reconciler for Quotas {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "resourcequota-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        if change.key.kind == Kind::ResourceQuota {
            keys.push(change.key.clone());
        } else if !change.key.namespace.is_empty() && change.key.kind != Kind::Event {
            keys.extend(
                cache
                    .list_namespaced(Kind::ResourceQuota, &change.key.namespace)
                    .map(|o| ObjectKey::of(o)),
            );
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::ResourceQuota)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_quota(cache, key)
    }
}

/// The Deployment controller.
pub(crate) struct Deployments;

impl Reconciler for Deployments {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "deployment-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Deployment => keys.push(change.key.clone()),
            Kind::ReplicaSet => {
                owners_of(cache, change, Kind::Deployment, keys);
            }
            Kind::Pod if change.new.is_none() => {
                // Recreate waits for the old pods to be gone.
                let owner = change
                    .old
                    .as_deref()
                    .and_then(|pod| controller_key(pod, Kind::ReplicaSet))
                    .and_then(|rs| cache.get(&rs))
                    .and_then(|rs| controller_key(rs, Kind::Deployment));
                keys.extend(owner);
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Deployment)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_deployment(cache, key, now)
    }
}

/// The DaemonSet controller.
pub(crate) struct DaemonSets;

impl Reconciler for DaemonSets {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "daemonset-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::DaemonSet => keys.push(change.key.clone()),
            Kind::Pod => {
                for side in sides(change) {
                    keys.extend(controller_key(side, Kind::DaemonSet));
                }
            }
            Kind::Node => keys.extend(keys_of(cache, Kind::DaemonSet)),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::DaemonSet)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        seed: u64,
    ) -> Reconciled {
        reconcile_daemon_set(cache, key, now, seed)
    }
}

/// The node lifecycle controller.
pub(crate) struct Nodes {
    pub(crate) config: NodeLifecycleConfig,
    /// When each node's agent was last seen to renew, by this master's clock.
    pub(crate) health: NodeHealth,
}

impl Reconciler for Nodes {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "node-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Node => keys.push(change.key.clone()),
            Kind::Lease if change.key.namespace == LEASE_NAMESPACE => {
                keys.push(ObjectKey::new(Kind::Node, "", change.key.name.clone()));
            }
            Kind::Pod => {
                for side in sides(change) {
                    let Object::Pod(pod) = side else { continue };
                    let node = pod.spec.as_ref().map_or("", |s| s.node_name.as_str());
                    let tainted = cache.node(node).is_some_and(|n| {
                        n.spec
                            .as_ref()
                            .is_some_and(|s| s.taints.iter().any(|t| t.effect == NO_EXECUTE))
                    });
                    if tainted {
                        keys.push(ObjectKey::new(Kind::Node, "", node));
                    }
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Node)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_node(cache, key, now, &self.config, &mut self.health)
    }

    fn reset(&mut self) {
        self.health.clear();
    }
}

/// The ServiceAccounts controller: a `default` ServiceAccount in every namespace.
pub(crate) struct ServiceAccounts;

impl Reconciler for ServiceAccounts {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "serviceaccount-controller"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Namespace => keys.push(change.key.clone()),
            Kind::ServiceAccount if change.new.is_none() => keys.push(ObjectKey::new(
                Kind::Namespace,
                "",
                change.key.namespace.clone(),
            )),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Namespace)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_service_accounts(cache, key)
    }
}

/// The node IPAM controller's one key: a pass over every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CidrPass;

/// The node IPAM controller: one pass gives every node without a podCIDR its own subnet,
/// so two nodes are never handed one subnet before the cache shows the first write.
pub(crate) struct PodCidrs {
    pub(crate) cidr: ClusterCidr,
}

impl Reconciler for PodCidrs {
    type Key = CidrPass;

    fn name(&self) -> &'static str {
        "node-ipam-controller"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<CidrPass>) {
        if change.key.kind == Kind::Node {
            keys.push(CidrPass);
        }
    }

    fn all_keys(&self, _cache: &Cache) -> Vec<CidrPass> {
        vec![CidrPass]
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        _key: &CidrPass,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_pod_cidrs(cache, &self.cidr)
    }
}

/// The scheduler, in batch mode: one pass places the pods its queue hands out
/// ([`SchedulingQueue`]: new and changed pods; the unschedulable ones only after a change
/// that may let them fit, or after their wait). Its writes are pipelined: a pass's
/// Bindings and events are carried out with many in flight while the next pass already
/// places the pods that arrived meanwhile, counting the pods it bound but does not yet
/// see bound ([`Assumed`]) on their nodes.
pub(crate) struct Scheduler {
    assumed: Assumed,
    /// Each `Scheduled` event of a pod whose Binding is not yet written: it is recorded
    /// once the Binding is, and dropped if the Binding fails (as kube-scheduler records
    /// it after binding), so a pod placed again gets one event, not two.
    held_events: HashMap<(String, String), EventRecord>,
    queue: SchedulingQueue,
    /// At most this many pods per pass ([`PODS_PER_PASS`]).
    pods_per_pass: usize,
}

impl Default for Scheduler {
    fn default() -> Scheduler {
        Scheduler::with_pods_per_pass(PODS_PER_PASS)
    }
}

impl Scheduler {
    pub(crate) fn with_pods_per_pass(pods_per_pass: usize) -> Scheduler {
        Scheduler {
            assumed: Assumed::default(),
            held_events: HashMap::new(),
            queue: SchedulingQueue::default(),
            pods_per_pass: pods_per_pass.max(1),
        }
    }
}

impl Reconciler for Scheduler {
    type Key = SchedulingPass;

    fn name(&self) -> &'static str {
        "default-scheduler"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<SchedulingPass>) {
        keys.extend(self.queue.observe(change));
    }

    fn all_keys(&self, _cache: &Cache) -> Vec<SchedulingPass> {
        vec![SchedulingPass::Everything]
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &SchedulingPass,
        now: Timestamp,
        seed: u64,
    ) -> Reconciled {
        self.assumed.prune(cache);
        if *key == SchedulingPass::Everything {
            self.queue.take_everything();
            self.queue
                .activate_all(pending_in_queue_order(cache, &self.assumed));
        }
        let names = self.queue.take_up_to(now, self.pods_per_pass);
        let pods = names.iter().filter_map(|(ns, name)| cache.pod(ns, name));
        let (mut reconciled, failed) = schedule_pods_assuming(cache, &self.assumed, pods, seed);
        self.queue.failed(failed, now);
        self.assumed.assume_binds(&reconciled.actions);
        self.hold_scheduled_events(&mut reconciled.actions);
        reconciled.requeue_after = self.queue.next_retry(now);
        if self.queue.active_len() > 0 {
            // More pods wait than one pass takes: the next pass follows this one's writes.
            reconciled.requeue_within(Duration::ZERO);
        }
        reconciled
    }

    /// What a pass leaves (pods past its cap, unschedulable pods waiting for their retry)
    /// is in the queue: the pass that follows takes from it, and a pass over every
    /// pending pod is not repeated for it.
    fn requeue_key(&self, _key: &SchedulingPass) -> SchedulingPass {
        SchedulingPass::Changes
    }

    fn pipelined(&self) -> bool {
        true
    }

    fn written(&mut self, action: &Action, result: &Result<Outcome, ApiError>) -> Vec<Action> {
        let Action::Bind {
            namespace, name, ..
        } = action
        else {
            return Vec::new();
        };
        let held = self.held_events.remove(&(namespace.clone(), name.clone()));
        if result.is_err() {
            // Pending again: the next pass places it anew, with an event of its own.
            self.assumed.forget(namespace, name);
            self.queue.retry(namespace, name);
            return Vec::new();
        }
        if self.held_events.is_empty() && self.held_events.capacity() > 1024 {
            // A burst's table is given back once its Bindings are written.
            self.held_events.shrink_to_fit();
        }
        held.map(Action::RecordEvent).into_iter().collect()
    }

    fn reset(&mut self) {
        self.assumed.clear();
        self.queue.clear();
        self.held_events.clear();
    }
}

impl Scheduler {
    /// Takes out of `actions` the `Scheduled` event of each pod they bind, to be recorded
    /// when its Binding is written ([`Reconciler::written`]).
    fn hold_scheduled_events(&mut self, actions: &mut Vec<Action>) {
        let bound: HashSet<(&str, &str)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Bind {
                    namespace, name, ..
                } => Some((namespace.as_str(), name.as_str())),
                _ => None,
            })
            .collect();
        let hold: Vec<bool> = actions
            .iter()
            .map(|action| {
                matches!(action, Action::RecordEvent(event)
                if event.reason == SCHEDULED
                    && event.involved.kind == Kind::Pod
                    && bound.contains(&(
                        event.involved.namespace.as_str(),
                        event.involved.name.as_str(),
                    )))
            })
            .collect();
        drop(bound);
        let mut held = Vec::new();
        let mut kept = Vec::with_capacity(actions.len());
        for (action, hold) in actions.drain(..).zip(hold) {
            match action {
                Action::RecordEvent(event) if hold => held.push(event),
                other => kept.push(other),
            }
        }
        *actions = kept;
        for event in held {
            let key = (
                event.involved.namespace.clone(),
                event.involved.name.clone(),
            );
            self.held_events.insert(key, event);
        }
    }
}

/// The garbage collector. Only owners of informed kinds can be judged gone: an object
/// with an owner reference to any other kind is left alone.
pub(crate) struct Garbage;

impl Garbage {
    fn judgeable(object: &Object) -> bool {
        object
            .metadata()
            .owner_references
            .iter()
            .all(|r| Kind::from_name(&r.kind).is_ok_and(is_informed))
    }
}

impl Reconciler for Garbage {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        if change.new.is_some() {
            keys.push(change.key.clone());
        }
        if let Some(old) = &change.old {
            if change.new.is_none() {
                keys.extend(
                    cache
                        .dependents_of(&old.metadata().uid)
                        .map(|o| ObjectKey::of(o)),
                );
            }
            for owner in &old.metadata().owner_references {
                keys.extend(cache.get_by_uid(&owner.uid).map(|o| ObjectKey::of(o)));
            }
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        INFORMED_KINDS
            .iter()
            .flat_map(|kind| cache.list(*kind))
            .filter(|o| {
                let meta = o.metadata();
                !meta.owner_references.is_empty() || meta.deletion_timestamp.is_some()
            })
            .map(|o| ObjectKey::of(o))
            .collect()
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        match cache.get(key) {
            Some(object) if Garbage::judgeable(object) => collect_garbage(cache, key),
            _ => Reconciled::nothing(),
        }
    }
}

/// The CSR signing controller.
pub(crate) struct Csrs {
    pub(crate) signer: Arc<dyn CertificateSigner>,
}

impl Reconciler for Csrs {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "csr-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::CertificateSigningRequest if change.new.is_some() => {
                keys.push(change.key.clone());
            }
            // A serving request may name an address its Node reports only later.
            Kind::Node if change.new.is_some() => {
                keys.extend(csr::pending_serving_requests(cache, &change.key.name));
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::CertificateSigningRequest)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        csr::reconcile(cache, key, now, self.signer.as_ref())
    }
}

/// The built-in service load balancer: a LoadBalancer Service's ingress is the Ready
/// nodes' addresses.
pub(crate) struct ServiceLbs;

impl Reconciler for ServiceLbs {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "service-lb-controller"
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Service if change.new.is_some() => keys.push(change.key.clone()),
            // A node's readiness or address changed: every load balancer may change.
            Kind::Node => keys.extend(
                cache
                    .list(Kind::Service)
                    .filter(|o| match o.as_ref() {
                        Object::Service(s) => {
                            s.spec.as_ref().is_some_and(|s| s.r#type == "LoadBalancer")
                        }
                        _ => false,
                    })
                    .map(|o| ObjectKey::of(o)),
            ),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Service)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_service_lb(cache, key)
    }
}

/// The cluster DNS Service's endpoints: the nodes' DNS servers.
pub(crate) struct ClusterDnsEndpoints;

impl Reconciler for ClusterDnsEndpoints {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        "cluster-dns-endpoints-controller"
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        let dns = |kind| cluster_dns_key(kind);
        let relevant = change.key.kind == Kind::Node
            || change.key == dns(Kind::Service)
            || change.key == dns(Kind::Endpoints);
        if relevant {
            keys.push(dns(Kind::Service));
        }
    }

    fn all_keys(&self, _cache: &Cache) -> Vec<ObjectKey> {
        vec![cluster_dns_key(Kind::Service)]
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        _key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_cluster_dns(cache)
    }
}

/// The PersistentVolume binder.
pub(crate) struct VolumeBinder;

impl Reconciler for VolumeBinder {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        crate::PERSISTENT_VOLUME_CONTROLLER
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::PersistentVolumeClaim => {
                if change.new.is_some() {
                    keys.push(change.key.clone());
                }
                // The volume it named may be Released now.
                for side in sides(change) {
                    if let Object::PersistentVolumeClaim(c) = side {
                        if let Some(name) = c
                            .spec
                            .as_ref()
                            .map(|s| s.volume_name.clone())
                            .filter(|n| !n.is_empty())
                        {
                            keys.push(ObjectKey::new(Kind::PersistentVolume, "", name));
                        }
                    }
                }
            }
            Kind::PersistentVolume => {
                keys.push(change.key.clone());
                // The claim the volume names (before and after), and every claim still
                // looking for a volume.
                for side in sides(change) {
                    if let Object::PersistentVolume(pv) = side {
                        if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                            keys.push(ObjectKey::new(
                                Kind::PersistentVolumeClaim,
                                r.namespace.clone(),
                                r.name.clone(),
                            ));
                        }
                    }
                }
                for claim in cache.list(Kind::PersistentVolumeClaim) {
                    if let Object::PersistentVolumeClaim(c) = claim.as_ref() {
                        if c.spec.as_ref().is_none_or(|s| s.volume_name.is_empty()) {
                            keys.push(ObjectKey::of(claim));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        let mut keys = keys_of(cache, Kind::PersistentVolumeClaim);
        keys.extend(keys_of(cache, Kind::PersistentVolume));
        keys
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        match key.kind {
            Kind::PersistentVolume => reconcile_volume(cache, key),
            _ => reconcile_claim(cache, key),
        }
    }
}

/// The Services a pod change concerns: those whose selector matches the pod before or
/// after the change (a relabelled pod leaves one Service and joins another).
fn services_of_pod(cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
    let namespace = change.key.namespace.as_str();
    for service in cache.list_namespaced(Kind::Service, namespace) {
        let Object::Service(svc) = service.as_ref() else {
            continue;
        };
        if sides(change).any(|pod| selects(svc, &pod.metadata().labels)) {
            keys.push(ObjectKey::of(service));
        }
    }
}

/// The key of the Service named `name` in `namespace` when the cache holds it.
fn existing_service(cache: &Cache, namespace: &str, name: &str) -> Option<ObjectKey> {
    let key = ObjectKey::new(Kind::Service, namespace, name);
    cache.get(&key).map(|_| key)
}

/// The Endpoints controller.
pub(crate) struct EndpointsController;

impl Reconciler for EndpointsController {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        crate::endpoints::COMPONENT
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Service => keys.push(change.key.clone()),
            Kind::Pod => services_of_pod(cache, change, keys),
            // Someone changed or removed what the controller wrote: write it again. An
            // Endpoints with no Service yet is the user's and wakes nothing.
            Kind::Endpoints => keys.extend(existing_service(
                cache,
                &change.key.namespace,
                &change.key.name,
            )),
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Service)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_endpoints(cache, key)
    }
}

/// The EndpointSlice controller.
pub(crate) struct EndpointSlices;

impl Reconciler for EndpointSlices {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        crate::endpoint_slice::COMPONENT
    }

    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        match change.key.kind {
            Kind::Service => keys.push(change.key.clone()),
            Kind::Pod => services_of_pod(cache, change, keys),
            Kind::EndpointSlice => {
                for side in sides(change) {
                    if let Object::EndpointSlice(slice) = side {
                        if let Some(service) = managed_for(slice, ENDPOINT_SLICE_CONTROLLER) {
                            keys.extend(existing_service(cache, &change.key.namespace, service));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of(cache, Kind::Service)
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_endpoint_slices(cache, key)
    }
}

/// The EndpointSlice mirroring controller.
pub(crate) struct MirroredSlices;

impl Reconciler for MirroredSlices {
    type Key = ObjectKey;

    fn name(&self) -> &'static str {
        crate::endpoint_slice_mirroring::COMPONENT
    }

    fn keys_for(&mut self, _cache: &Cache, change: &Change, keys: &mut Vec<ObjectKey>) {
        let service =
            |name: &str| ObjectKey::new(Kind::Service, change.key.namespace.clone(), name);
        match change.key.kind {
            Kind::Service | Kind::Endpoints => keys.push(service(&change.key.name)),
            Kind::EndpointSlice => {
                for side in sides(change) {
                    if let Object::EndpointSlice(slice) = side {
                        keys.extend(
                            managed_for(slice, ENDPOINT_SLICE_MIRRORING_CONTROLLER).map(service),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        // The Services, and the names of slices mirrored for a Service that is gone.
        let mut keys = keys_of(cache, Kind::Service);
        for slice in cache.list(Kind::EndpointSlice) {
            if let Object::EndpointSlice(s) = slice.as_ref() {
                if let Some(name) = managed_for(s, ENDPOINT_SLICE_MIRRORING_CONTROLLER) {
                    keys.push(ObjectKey::new(
                        Kind::Service,
                        slice.metadata().namespace.clone(),
                        name,
                    ));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &ObjectKey,
        _now: Timestamp,
        _seed: u64,
    ) -> Reconciled {
        reconcile_mirrored_slices(cache, key)
    }
}
