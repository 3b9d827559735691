//! Integration tests of the `rafter` binary, driven as a user would drive it.

mod config;
mod dry_run;
mod support;
mod verbs;
