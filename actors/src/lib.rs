//! # Layout
//!
//! The pure cores of Rafter's controllers. Each is a function over a read-only [`Cache`]
//! snapshot that returns [`Action`]s (and when to look again), with time and randomness
//! passed in as arguments. The actix actors that feed these cores from the replicated log
//! and carry out their actions (fenced by the Raft term) wrap them; they live in `runtime`.
//!
//! ```text
//!  informer ─► CacheWriter ─► Cache ◄─ CacheReader (one per controller)
//!                                │ &Cache, key, now, seed
//!                                ▼
//!   scheduler · replicaset · deployment · daemonset · node_lifecycle · pod_cidr · gc
//!   · job · cronjob · volume_binder · endpoints · endpoint_slice · endpoint_slice_mirroring · service_lb · cluster_dns
//!                                │ Reconciled { actions, requeue_after }
//!                                ▼
//!   actor: Create / Update / UpdateStatus / Delete / Bind / Evict / RecordEvent
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `action` | [`Action`], [`Reconciled`], [`ObjectKey`], [`EventRecord`]: what a core returns |
//! | `timestamp` | [`Timestamp`]: "now" as the caller decides it, RFC 3339 conversion |
//! | `cache` | [`Cache`] and its indexes; [`CacheWriter`] (one) and [`CacheReader`] (many) |
//! | `pods` | shared facts: controller ownerReference, active/ready/available, requests |
//! | `claim` | adopting orphans and releasing non-matching dependents by selector |
//! | `placement` | taints vs tolerations, nodeSelector, node affinity |
//! | `scheduler` | [`schedule_pod`], [`schedule_pending`] (batch pass), [`Assumed`] pods |
//! | `scheduling_queue` | [`SchedulingQueue`]: which pending pods a pass tries (new and changed ones; unschedulable ones after a change that may let them fit) |
//! | `quota` | [`reconcile_quota`]: a ResourceQuota's `status.used` from what its namespace holds |
//! | `replicaset` | [`reconcile_replica_set`] |
//! | `deployment` | [`reconcile_deployment`], [`rollback_template`], [`rollback_target`], [`pod_template_hash`] |
//! | `daemonset` | [`reconcile_daemon_set`] |
//! | `cronjob` | [`reconcile_cron_job`]: a Job per schedule tick (concurrency policy, starting deadline, suspend, history limits) |
//! | `job` | [`reconcile_job`]: a Job's pods to completion (parallelism, Indexed, back-off, deadline, TTL, suspend, podFailurePolicy) |
//! | `node_lifecycle` | [`reconcile_node`]: lease staleness, lifecycle taints, taint eviction |
//! | `pod_cidr` | [`reconcile_pod_cidrs`]: a `spec.podCIDR` per node from the [`ClusterCidr`], derived from the stored nodes |
//! | `service_account` | [`reconcile_service_accounts`]: a `default` ServiceAccount in every active namespace |
//! | `drain` | [`plan_drain`], [`cordon`] |
//! | `gc` | [`collect_garbage`]: ownerReference cascades (background, foreground, orphan) |
//! | `csr` | [`reconcile_csr`]: CSR auto-approval, signer rules, issuing through a [`CertificateSigner`] |
//! | `cluster_dns` | [`reconcile_cluster_dns`]: the `kube-dns` Endpoints = the Ready nodes' advertised DNS servers |
//! | `service_lb` | [`reconcile_service_lb`]: a LoadBalancer Service's `status.loadBalancer.ingress` = the Ready nodes' InternalIPs (k3s's ServiceLB, no cloud) |
//! | `volume_binder` | [`reconcile_claim`]: binds Pending PersistentVolumeClaims to fitting PersistentVolumes; [`reconcile_volume`]: Released once the claim is gone |
//! | `service_backends` | the pods backing a Service and its ports resolved per pod (shared by the next two) |
//! | `endpoints` | [`reconcile_endpoints`]: a Service's v1 Endpoints (ready and not-ready addresses) |
//! | `endpoint_slice` | [`reconcile_endpoint_slices`]: a Service's `discovery.k8s.io/v1` EndpointSlices |
//! | `endpoint_slice_mirroring` | [`reconcile_mirrored_slices`]: the user's Endpoints of a Service without a selector, as EndpointSlices |
//! | `runtime` | the actix runtime: informer, controller actors, leadership, [`ClusterApi`] |
//!
//! Rules every core follows: no I/O, no clock, no random numbers (the same cache, key,
//! time and seed always give the same actions); no waiting on its own writes — the actor
//! must not reconcile a key again before the cache shows the previous reconcile's writes,
//! or a controller would act twice on the same gap (Kubernetes' "expectations").

mod action;
mod cache;
mod claim;
mod cluster_dns;
mod cronjob;
mod csr;
mod daemonset;
mod deployment;
mod drain;
mod endpoint_slice;
mod endpoint_slice_mirroring;
mod endpoints;
mod gc;
mod job;
mod node_lifecycle;
mod placement;
mod pod_cidr;
mod pods;
mod quota;
mod replicaset;
pub mod runtime;
mod scheduler;
mod scheduling_queue;
mod service_account;
mod service_backends;
mod service_lb;
mod volume_binder;

#[cfg(test)]
mod testing;

pub use action::{Action, EventRecord, EventType, ObjectKey, Reconciled};
pub use cache::{Cache, CacheEvent, CacheReader, CacheWriter};
pub use cluster_dns::{
    cluster_dns_key, dns_subsets, reconcile as reconcile_cluster_dns, CLUSTER_DNS_SERVICE,
};
pub use cronjob::{
    job_for_tick, job_name as cron_job_name, reconcile as reconcile_cron_job,
    SCHEDULED_TIMESTAMP_ANNOTATION,
};
pub use csr::{
    reconcile as reconcile_csr, CertificateSigner, RequestSubject, KUBELET_CLIENT, KUBELET_SERVING,
    KUBE_APISERVER_CLIENT,
};
pub use daemonset::{reconcile as reconcile_daemon_set, with_daemon_tolerations};
pub use deployment::{
    owned_replica_sets, pod_template_hash, reconcile as reconcile_deployment, rollback_target,
    rollback_template, RollbackError, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
};
pub use drain::{cordon, plan_drain, DrainBlockers, DrainError, DrainOptions};
pub use endpoint_slice::{reconcile as reconcile_endpoint_slices, MAX_ENDPOINTS_PER_SLICE};
pub use endpoint_slice_mirroring::reconcile as reconcile_mirrored_slices;
pub use endpoints::{reconcile as reconcile_endpoints, TARGET_PORT_NOT_FOUND};
pub use gc::collect_garbage;
pub use job::{
    format_indexes, parse_indexes, pod_index, reconcile as reconcile_job, JobBackoff,
    COMPLETION_INDEX_ANNOTATION, COMPLETION_INDEX_ENV, CONTROLLER_UID_LABEL, JOB_NAME_LABEL,
};
pub use node_lifecycle::{
    reconcile as reconcile_node, Heard, NodeHealth, NodeLifecycleConfig, LEASE_NAMESPACE,
};
pub use placement::{matches_node_selector_and_affinity, tolerates};
pub use pod_cidr::{reconcile as reconcile_pod_cidrs, ClusterCidr, ClusterCidrError};
pub use pods::{controller_ref, pod_requests, Resources};
pub use quota::reconcile as reconcile_quota;
pub use rafter_proto::Propagation;
pub use rafter_proto::Timestamp;
pub use rafter_proto::{CidrError, Ipv4Cidr};
pub use replicaset::reconcile as reconcile_replica_set;
pub use runtime::{
    AllocationProblem, AllocationRepair, ApiError, ClusterApi, ControllerRuntime, EventRate,
    Outcome, RevisionChanges, RuntimeConfig, RuntimeError, RuntimeStatus, RuntimeThread, Snapshot,
};
pub use scheduler::{
    pending_in_queue_order, schedule_pending, schedule_pending_assuming, schedule_pod,
    schedule_pods_assuming, Assumed, DEFAULT_SCHEDULER, PODS_PER_PASS, UNSCHEDULABLE_RETRY,
};
pub use scheduling_queue::{PodName, SchedulingPass, SchedulingQueue};
pub use service_account::reconcile as reconcile_service_accounts;
pub use service_lb::{ingress_addresses, reconcile as reconcile_service_lb};
pub use volume_binder::{
    reconcile as reconcile_claim, reconcile_volume, unbound_claim, BIND_COMPLETED_ANNOTATION,
    PERSISTENT_VOLUME_CONTROLLER,
};
