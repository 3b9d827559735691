//! Integration tests of the `rafter` binary, driven as a user would drive it.

// reason: test code, a panic is the failure report; clippy.toml lets #[test] functions
// unwrap, but not the fixtures and helpers they share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attach;
mod bootstrap;
mod cluster;
mod cluster_status;
mod config;
mod dns;
mod dry_run;
mod e2e;
mod endpoints;
mod exec;
mod images;
mod jobs;
mod kubectl;
mod logs;
mod pod_cidr;
mod port_forward;
mod quota;
mod rbac;
mod services;
mod support;
mod top;
mod verbs;
mod volumes;
