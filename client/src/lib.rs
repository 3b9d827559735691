//! # Layout
//!
//! `rafter-client`: the client library the CLI, the node agent, the controllers and the tests share: typed
//! calls to the `Resources` and `Cluster` services of a cluster of masters, with failover.
//!
//! ```text
//!   ClientConfig (file) ──resolve──► ResolvedConfig ──connect──► Client
//!                                                                 │ typed call
//!                                                                 ▼
//!                                      Failover: one lazily connected channel per master,
//!                                      a current master, back-off, rounds within a budget
//!                                                                 │
//!                                      master A ✗  master B ✓  master C
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `client` | [`Client`]: the typed calls, each through the failover loop |
//! | `config` | the kubeconfig-shaped file: finding, reading, writing, resolving a context |
//! | `contact` | whether a master ever spoke on the client's connections: a request to one that never did was not sent |
//! | `error` | [`ClientError`] and the classification of a failed attempt |
//! | `failover` | which master to try next and the retry loop every call goes through |
//! | `watch` | watches that resume from the last delivered resourceVersion |
//! | `bootstrap_token` | [`BootstrapToken`]: a joining node's token and the Secret that stores it |
//! | `private_files` | files that hold keys or cluster data: 0600 in 0700 directories, checked before use |
//! | `printing` | the columns and cells of each kind in a listing (`rafter get`, the REST API's Table answers), ages, selectors |
//! | `pki` | the cluster CA, issued certificates, certificate requests, identities in certificates |
//!
//! What is retried where: reads (get, list, watch, scale and cluster status) on any
//! failure of the transport or an Unavailable answer; writes only when the request is
//! known not to have been applied (the connection could not be made, or the gateway
//! answered Unavailable, which it does only when the write was not proposed: no leader,
//! the store refused it). A write whose connection broke mid-request or whose deadline
//! passed fails with [`ClientError::OutcomeUnknown`], and so does a write the gateway
//! answered with DeadlineExceeded: the gateway answers so when its store does not know
//! the outcome (the log entry was discarded by a new leader, a forwarded write's reply
//! was lost, no quorum answered after it was proposed), and marks that status with the
//! `rafter-outcome-unknown` metadata key
//! ([`OUTCOME_UNKNOWN_METADATA`](rafter_proto::well_known::OUTCOME_UNKNOWN_METADATA)); a
//! marked status is never taken for "not sent", whatever its code. Such a write is
//! never sent again as if it was not sent: a `generateName` create, a patch or a scale
//! without resourceVersion would apply twice. Creates of named objects are the exception: they
//! are sent again, since the store cannot create one name twice, and an AlreadyExists
//! on the retry is reported as OutcomeUnknown (the object may be the one this call
//! created or someone else's: compare its uid or content to find out). Creates with
//! `generateName` and no name are never sent again, since a retry would create a second
//! object. A log stream ([`Client::logs`]) is opened like a read, but once bytes flow it
//! is not resumed on another master: a break ends it with an error.
//!
//! This crate must not read files on async threads (config loading is blocking and
//! belongs before the runtime or in `spawn_blocking`), and never retries a call whose
//! answer was definitive (NotFound, Conflict, Unauthenticated ...).
//!
//! It depends on `rafter-proto` and the transport only: no store, no registry, no
//! controller. The wire vocabulary it speaks (delete options, watch events, patch types,
//! timestamps) is `rafter-proto`'s, re-exported here for callers' convenience.

mod bootstrap_token;
mod client;
pub mod config;
mod contact;
mod error;
mod failover;
mod pki;
pub mod printing;
pub mod private_files;
mod watch;

pub use bootstrap_token::BootstrapToken;
pub use client::*;
pub use config::{
    ClientConfig, ClientIdentity, ClusterEntry, ConfigError, ContextEntry, NamedCluster,
    NamedContext, NamedUser, ResolvedConfig, UserEntry, CONFIG_ENV, DEFAULT_NAMESPACE,
};
pub use error::{ClientError, EndpointFailure};
pub use pki::{
    cert_identity, cert_info, key_matches_cert, new_request, new_serving_request, request_identity,
    request_names, CertAndKey, CertIdentity, CertInfo, CertRequest, CertUsage, ClusterCa, PkiError,
    RequestNames, DEFAULT_CERT_VALIDITY,
};
pub use rafter_proto::{
    DeleteOptions, PatchType, Propagation, Timestamp, WatchEvent, WatchEventType,
};
