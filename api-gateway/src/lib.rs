//! # Layout
//!
//! The tonic server every master runs: authentication, authorization, admission,
//! optimistic concurrency, watch streams and forwarding of writes to the Raft leader.
//!
//! | module | owns |
//! |---|---|
//! | `audit` | the audit log: Kubernetes' audit Event shape, the Policy, the size-rotated file, and the [`Auditor`](audit::Auditor) every call of both services is recorded through |
//! | `allocator` | Services' ClusterIPs and NodePorts: the ranges ([`ServiceRanges`]), reservation keys written in the Service's own transaction, the repair pass ([`RepairReport`]) |
//! | `admission` | defaults, validation, namespace existence, LimitRange |
//! | `limit_ranger` | LimitRange defaults and bounds of pods and claims (pure) |
//! | `encryption` | encryption at rest: the `EncryptionConfiguration` file and the [`Transformer`] the registry applies to stored values |
//! | `cluster` | the gRPC `Cluster` service over the local member ([`ClusterControl`]) |
//! | `auth` | who is calling ([`Authenticator`]): client certificates, the static token file, bootstrap tokens, ServiceAccount tokens |
//! | `sa_token` | ServiceAccount tokens: the claims, signing and verifying them ([`TokenKeys`]), their lifetimes |
//! | `flow_control` | fair queuing of mutating requests by user on a master's seats ([`FlowControl`]): 429 for a full queue or a long wait, `system:masters` exempt |
//! | `impersonation` | acting as another user (`--as`): the metadata and the `impersonate` checks |
//! | `authz` | whether the caller may ([`Authorizer`], [`Attributes`]): one seam every request of every service passes, a [`Chain`] of authorizers |
//! | `rbac` | Roles, ClusterRoles and their bindings evaluated from memory ([`Rbac`] over a [`Policy`]) |
//! | `node_authz` | what a node's agent may do ([`NodeAuthorizer`] over a [`NodeGraph`]): its own objects and what its pods reference |
//! | `authz_cache` | the policy and node graph kept current from the store's changes on each master ([`AuthzCache`]) |
//! | `bootstrap_policy` | the default ClusterRoles and bindings, created when missing |
//! | `patch` | JSON merge patch and strategic merge patch over JSON values ([`apply_patch`]) |
//! | `node_images` | nodes/images: `rafter image import` relayed to every Ready node's agent, `rafter image ls` asked of each, per-node results |
//! | `node_metrics` | `rafter top`: asking each node's agent for its measured usage, a per-node error for those that cannot answer |
//! | `pod_logs` | pods/log: the pod's node and container, the node's agent endpoint, relaying its stream |
//! | `pod_exec` | pods/exec and pods/attach: opening the exec or attach stream of the pod's agent (found as for logs) and relaying both ways |
//! | `pod_port_forward` | pods/portforward: opening the port-forward stream (one TCP connection) of the pod's agent and relaying bytes both ways |
//! | `quota` | ResourceQuota: a write's charge against its namespace's quotas, checked and written in the write's own transaction |
//! | `registry` | Kubernetes object semantics on the store: keys, resourceVersion, status, deletion, lists, watches |
//! | `rest` | the Kubernetes REST front door (stock kubectl, client libraries) onto the same service: routing, discovery, JSON, Tables, watch lines, Status errors, OpenAPI |
//! | `server` | the listener: TLS, limits, health service, shutdown ([`serve`]) |
//! | `service` | the gRPC `Resources` service: wire ⇄ registry, what a bootstrapper sees, CSR requesters |
//! | `status` | registry errors as gRPC status codes ([`status_of`]) |
//! | `token_request` | serviceaccounts/token: the checks before a token is issued, a node's tokens bound to its pods |
//! | `store` | the seam to the replicated store ([`KvStore`]) |
//! | `watch_cache` | lists and watches served from memory on each master ([`WatchCache`]): every object key, recent changes decoded once for all watchers, consistent reads at the store's revision |
//! | `testing` | with the `testing` feature: `MemKv`, an in-memory store for tests |
//!
//! The store behind [`KvStore`] is given by the process that serves (`rafter-master` gives
//! its raft-store member); this crate links neither RocksDB nor openraft nor actix, and
//! knows no controller. Certificates and the wire vocabulary come from `rafter-client` and
//! `rafter-proto`.

mod admission;
mod agent_dial;
mod allocator;
pub mod audit;
mod auth;
mod authz;
mod authz_cache;
mod bootstrap_policy;
mod cluster;
mod encryption;
mod flow_control;
mod impersonation;
mod limit_ranger;
mod managed_fields;
mod node_authz;
mod node_images;
mod node_metrics;
mod patch;
mod pod_exec;
mod pod_logs;
mod pod_port_forward;
mod prometheus;
mod quota;
mod rbac;
mod registry;
mod rest;
mod sa_token;
mod server;
mod service;
mod status;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod token_request;
mod watch_cache;

pub use allocator::{
    RangeError, RepairProblem, RepairReport, ServiceRanges, ALLOCATIONS_PREFIX, API_SERVICE,
};
pub use auth::{
    authenticate_bootstrap, bearer_token, AuthError, Authenticator, TokenFile, UserInfo,
};
pub use authz::{Attributes, Authorizer, Chain, Decision, PrivilegedGroup, RuleList, Target};
pub use authz_cache::{AuthzCache, CacheGuard};
pub use bootstrap_policy::{default_policy, ensure_default_policy};
pub use cluster::{ClusterControl, ClusterService};
pub use encryption::{generate_key, EncryptionConfig, EncryptionError, Transformer};
pub use flow_control::{FlowControl, FlowControlConfig, Throttled};
pub use node_authz::{NodeAuthorizer, NodeGraph};
pub use patch::{apply_patch, merge_patch, strategic_merge_patch, PatchError};
pub use prometheus::{prometheus_text, Figure};
pub use rbac::{Policy, Rbac, SERVICE_ACCOUNT_USER_PREFIX};
pub use registry::{
    decode, kind_prefix, now_rfc3339, object_key, ListPage, Registry, RegistryError, Subresource,
    MAX_OBJECT_BYTES, SYSTEM_NAMESPACES,
};
pub use rest::RestError;
pub use sa_token::{
    generate_signing_key, unix_now, BoundRef, Claims, KubernetesClaims, TokenError, TokenGrant,
    TokenKeys, DEFAULT_ISSUER, DEFAULT_TOKEN_SECONDS, MAX_TOKEN_SECONDS, MIN_TOKEN_SECONDS,
};
pub use server::{
    authorizer, serve, serve_with, ServeError, ServeOptions, ServerTls, MAX_REQUEST_BYTES,
};
pub use service::ResourcesService;
pub use status::status_of;
pub use store::{EventStream, KvStore, StoreError};
pub use watch_cache::{WatchCache, WatchCacheConfig, WatchCacheStats};
