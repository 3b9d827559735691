//! # Layout
//!
//! Multi-process fault tests (kill -9 of the leader, SIGSTOP, restarts, partitions) with a
//! linearizability check of the recorded history. The crate only holds test helpers; the
//! tests live under `tests/`. Nothing lives here yet: the suite grows with the store and
//! the gateway it exercises.
