//! # Layout
//!
//! `rafter-master`: the composition root of one master process. It wires the store member
//! (`raft-store`), the API server (`api-gateway`) and the controllers (`actors`) together,
//! and is the only crate that depends on all three.
//!
//! ```text
//!  pki dir ──► CA, serving cert ───────────────┐
//!  data dir ──► raft-store Node ──► RaftKv ──► api_gateway::Registry ──► serve (gRPC, TLS)
//!                     │                                   ▲
//!                     └─ applied entries ──► informer ──► controllers (actix thread, leader only)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `master` | one master process: PKI files, store member, gateway, start-up and shutdown ([`Master`]) |
//! | `raft_kv` | the store on a master: the local raft-store member as the gateway's `KvStore` ([`RaftKv`]) |
//! | `controller_identity` | each controller's own user (`system:controller:<name>`) and its actions as the API requests they amount to, for authorization |
//! | `controllers` | the controllers on a master: [`MasterCluster`] (`actors::ClusterApi`), [`CaSigner`], leadership, the applied-log feed |
//!
//! It must not hold Kubernetes semantics (the registry's), decide anything a controller
//! decides (the cores in `actors`), or serve requests itself (the gateway does).

mod controller_identity;
mod controllers;
mod master;
mod raft_kv;

pub use api_gateway::{FlowControlConfig, ServiceRanges, WatchCacheConfig};
pub use controllers::{leadership, CaSigner, MasterCluster};
pub use master::{
    load_audit, load_encryption, load_or_create_ca, pki_files, write_generated_encryption_config,
    AuditConfig, ClusterDnsConfig, Master, MasterConfig, MasterError, DEFAULT_HISTORY_RETENTION,
    DEFAULT_SCHEDULER_WRITES_IN_FLIGHT,
};
pub use raft_kv::{store_error, RaftKv};
