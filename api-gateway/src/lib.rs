//! # Layout
//!
//! The tonic server every master runs: authentication, authorization, admission,
//! optimistic concurrency, watch streams and forwarding of writes to the Raft leader.
//!
//! | module | owns |
//! |---|---|
//! | `admission` | defaults, container resource defaults, validation, namespace existence, quota |
//! | `client` | the failover-aware client library and the client config file ([`Client`], [`ClientConfig`]) |
//! | `controllers` | the controllers on a master: [`MasterCluster`] (`actors::ClusterApi`), [`CaSigner`], leadership |
//! | `cluster` | the gRPC `Cluster` service over the local member ([`ClusterControl`]) |
//! | `auth` | who is calling: client certificates, the static token file, bootstrap tokens |
//! | `patch` | JSON merge patch and strategic merge patch over JSON values ([`apply_patch`]) |
//! | `master` | one master process: PKI files, store member, gateway, start-up and shutdown ([`Master`]) |
//! | `node_metrics` | `rafter top`: asking each node's agent for its measured usage, a per-node error for those that cannot answer |
//! | `pod_logs` | pods/log: the pod's node and container, the node's agent endpoint, relaying its stream |
//! | `pki` | the cluster CA, issued certificates, CSR signing, identities in certificates |
//! | `raft_kv` | the store on a master: the local raft-store member ([`RaftKv`]) |
//! | `registry` | Kubernetes object semantics on the store: keys, resourceVersion, status, deletion, lists, watches |
//! | `server` | the listener: TLS, limits, health service, shutdown ([`serve`]) |
//! | `service` | the gRPC `Resources` service: authentication, authorization, wire ⇄ registry, status codes |
//! | `store` | the seam to the replicated store ([`KvStore`]) and an in-memory one for tests |

mod admission;
mod agent_dial;
mod auth;
pub mod client;
mod cluster;
mod controllers;
mod master;
mod node_metrics;
mod patch;
mod pki;
mod pod_logs;
mod raft_kv;
mod registry;
mod server;
mod service;
mod store;

pub use auth::{
    bearer_token, AuthError, BootstrapToken, TokenFile, UserInfo, AUTHENTICATED_GROUP,
    BOOTSTRAPPERS_GROUP, BOOTSTRAP_TOKEN_SECRET_TYPE, MASTERS_GROUP,
};

pub use patch::{apply_patch, merge_patch, strategic_merge_patch, PatchError, PatchType};

pub use pki::{
    cert_identity, cert_info, key_matches_cert, new_request, new_serving_request, request_identity,
    request_names, CertAndKey, CertIdentity, CertInfo, CertRequest, CertUsage, ClusterCa, PkiError,
    RequestNames, DEFAULT_CERT_VALIDITY,
};

pub use client::{Client, ClientConfig, ClientError, ClientOptions, LogParams, ResolvedConfig};
pub use cluster::{ClusterControl, ClusterService};
pub use controllers::{leadership, CaSigner, MasterCluster};
pub use master::{
    load_or_create_ca, pki_files, Master, MasterConfig, MasterError, DEFAULT_HISTORY_RETENTION,
};
pub use pod_logs::{AGENT_LOGS_ENDPOINT_ANNOTATION, AGENT_STATUS_METADATA};
pub use raft_kv::{store_error, RaftKv};
pub use registry::{
    kind_prefix, now_rfc3339, object_key, DeleteOptions, ListOptions, ListPage, Propagation,
    Registry, RegistryError, Subresource, WatchEvent, WatchEventType, MAX_OBJECT_BYTES,
    SYSTEM_NAMESPACES,
};
pub use server::{serve, ServeError, ServerTls, MAX_REQUEST_BYTES};
pub use service::{status_of, Authenticator, ResourcesService};
pub use store::{EventStream, KvStore, MemKv, ReadConsistency, StoreError};
