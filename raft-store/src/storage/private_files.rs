//! The modes of the files the store writes: its data hold every object of the cluster, so
//! directories are created 0700 and files 0600, at creation. RocksDB's own files take the
//! process umask (the master sets 0077); they sit inside the 0700 directory either way.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and missing parents with mode 0700.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) `path` for writing with mode 0600.
pub(crate) fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}
