//! # Layout
//!
//! The pure cores of Rafter's controllers: each is a function over a read-only [`Cache`]
//! snapshot that returns [`Action`]s, with time and randomness passed in. The actix actors
//! that feed them from the replicated log and carry out their actions wrap these cores.
//!
//! | module | owns |
//! |---|---|
//! | `action` | [`Action`], [`Reconciled`], [`ObjectKey`], [`EventRecord`]: what a core returns |
//! | `timestamp` | [`Timestamp`]: "now" as the caller decides it, RFC 3339 conversion |
//! | `cache` | [`Cache`] with its indexes; [`CacheWriter`] (one) and [`CacheReader`] (many) |
//! | `pods` | shared facts: controller ownerReference, ready/available, requests |
//!
//! This crate must not do I/O, read the clock or draw random numbers in a core: the same
//! cache, key, time and seed always give the same actions.

mod action;
mod cache;
mod claim;
mod daemonset;
mod deployment;
mod drain;
mod node_lifecycle;
mod placement;
mod pods;
mod replicaset;
mod scheduler;
mod timestamp;

#[cfg(test)]
mod testing;

pub use action::{Action, EventRecord, EventType, ObjectKey, Propagation, Reconciled};
pub use cache::{Cache, CacheEvent, CacheReader, CacheWriter};
pub use pods::{controller_ref, pod_requests, Resources};
pub use timestamp::Timestamp;
