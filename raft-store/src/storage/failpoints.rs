//! Test-only disk faults in the log writer, compiled in only with the `failpoints` feature
//! (the chaos tests' build of the `rafter` binary); without it [`wal_sync_error`] and
//! [`acknowledge_before_sync`] are constants the compiler removes.
//!
//! Owns the environment variables that arm them, read once per process:
//! - `RAFTER_FAILPOINT_WAL_SYNC_EIO=<file>`: while `<file>` exists, every sync of the log's
//!   write-ahead log fails with EIO (a disk that lost a write);
//! - `RAFTER_FAILPOINT_ACK_BEFORE_SYNC=<file>`: while `<file>` exists, a deliberately broken
//!   member that reports log entries durable before they are, writing them without the WAL
//!   at all (so a kill -9 loses them): the chaos tests prove their durability check
//!   catches it.
//!
//! It must never be enabled in a build users run.

/// The error the next WAL sync fails with, when the EIO failpoint is armed.
#[cfg(feature = "failpoints")]
pub(crate) fn wal_sync_error() -> Option<std::io::Error> {
    static ARMED_BY: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let file = ARMED_BY
        .get_or_init(|| std::env::var_os("RAFTER_FAILPOINT_WAL_SYNC_EIO").map(Into::into))
        .as_ref()?;
    // EIO is 5 on Linux.
    file.exists().then(|| std::io::Error::from_raw_os_error(5))
}

/// Without the `failpoints` feature, the WAL sync never fails on purpose.
#[cfg(not(feature = "failpoints"))]
pub(crate) fn wal_sync_error() -> Option<std::io::Error> {
    None
}

/// Whether this member is, for now, the deliberately broken one that acknowledges log
/// entries before they are durable.
#[cfg(feature = "failpoints")]
pub(crate) fn acknowledge_before_sync() -> bool {
    static ARMED_BY: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    ARMED_BY
        .get_or_init(|| std::env::var_os("RAFTER_FAILPOINT_ACK_BEFORE_SYNC").map(Into::into))
        .as_ref()
        .is_some_and(|file| file.exists())
}

/// Without the `failpoints` feature, entries are acknowledged only once synced.
#[cfg(not(feature = "failpoints"))]
pub(crate) fn acknowledge_before_sync() -> bool {
    false
}

/// Whether the failpoints are compiled in (logged at start-up, so tests can tell).
pub const FAILPOINTS_COMPILED: bool = cfg!(feature = "failpoints");
