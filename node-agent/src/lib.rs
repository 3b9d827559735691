//! # Layout
//!
//! The kubelet role: registers a Node, renews its Lease and runs the pods bound to it
//! through a container runtime. Nothing lives here yet: the agent arrives with its own
//! issue, after the gateway and its client library.
