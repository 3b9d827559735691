//! # Layout
//!
//! The tonic server every master runs: authentication, authorization, admission,
//! optimistic concurrency, watch streams and forwarding of writes to the Raft leader.
//! Nothing lives here yet: the gateway arrives with its own issue, after the store.
