//! # Layout
//!
//! The tonic server every master runs: authentication, authorization, admission,
//! optimistic concurrency, watch streams and forwarding of writes to the Raft leader.
//!
//! | module | owns |
//! |---|---|
//! | `admission` | defaults, container resource defaults, validation, namespace existence, quota |
//! | `cluster` | the gRPC `Cluster` service over the local member ([`ClusterControl`]) |
//! | `auth` | who is calling: client certificates, the static token file, bootstrap tokens |
//! | `patch` | JSON merge patch and strategic merge patch over JSON values ([`apply_patch`]) |
//! | `pki` | the cluster CA, issued certificates, CSR signing, identities in certificates |
//! | `registry` | Kubernetes object semantics on the store: keys, resourceVersion, status, deletion, lists, watches |
//! | `server` | the listener: TLS, limits, health service, shutdown ([`serve`]) |
//! | `service` | the gRPC `Resources` service: authentication, authorization, wire ⇄ registry, status codes |
//! | `store` | the seam to the replicated store ([`KvStore`]) and an in-memory one for tests |

mod admission;
mod auth;
mod cluster;
mod patch;
mod pki;
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
    cert_identity, new_request, request_identity, CertAndKey, CertIdentity, CertRequest, CertUsage,
    ClusterCa, PkiError, DEFAULT_CERT_VALIDITY,
};

pub use cluster::{ClusterControl, ClusterService};
pub use registry::{
    kind_prefix, now_rfc3339, object_key, DeleteOptions, ListOptions, ListPage, Propagation,
    Registry, RegistryError, Subresource, WatchEvent, WatchEventType, MAX_OBJECT_BYTES,
    SYSTEM_NAMESPACES,
};
pub use server::{serve, ServeError, ServerTls, MAX_REQUEST_BYTES};
pub use service::{status_of, Authenticator, ResourcesService};
pub use store::{EventStream, KvStore, MemKv, ReadConsistency, StoreError};
