//! Integration tests of the `rafter` binary, driven as a user would drive it.

mod bootstrap;
mod cluster;
mod config;
mod dry_run;
mod e2e;
mod logs;
mod pod_cidr;
mod support;
mod top;
mod verbs;
mod volumes;
