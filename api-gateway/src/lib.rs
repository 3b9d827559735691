//! # Layout
//!
//! The tonic server every master runs: authentication, authorization, admission,
//! optimistic concurrency, watch streams and forwarding of writes to the Raft leader.
//!
//! | module | owns |
//! |---|---|
//! | `pki` | the cluster CA, issued certificates, CSR signing, identities in certificates |

mod pki;

pub use pki::{
    cert_identity, new_request, request_identity, CertAndKey, CertIdentity, CertRequest, CertUsage,
    ClusterCa, PkiError, DEFAULT_CERT_VALIDITY,
};
