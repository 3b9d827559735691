//! Files that hold cluster data or keys: created 0600 in 0700 directories (the mode is set
//! at creation, never widened and then narrowed), and checked before a key is trusted.
//!
//! Owns only modes and atomic writes; what goes in the files belongs to the callers. It
//! must not change the mode of a file it did not create (an operator's choice is refused
//! with the file named, not silently fixed).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of a private file.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// The mode of a private directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Why a private file or directory could not be created, or is not private.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file may be read (or written) by its group or by others.
    #[error("{} has mode {mode:04o}, which its group or others may access; it holds keys or cluster data: chmod 600 it", path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivateFileError + '_ {
    move |source| PrivateFileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` and any missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dir(dir: &Path) -> Result<(), PrivateFileError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(io(dir))
}

/// Opens `path` for writing, created (or truncated) with mode 0600.
pub fn create_private_file(path: &Path) -> Result<std::fs::File, PrivateFileError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .map_err(io(path))
}

/// Writes `bytes` to `path` atomically (a 0600 temporary file beside it, synced, renamed).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PrivateFileError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = create_private_file(&temporary).and_then(|mut file| {
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(&temporary))
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path).map_err(io(path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    renamed
}

/// Refuses a file its group or others may access.
pub fn check_private(path: &Path) -> Result<(), PrivateFileError> {
    let mode = std::fs::metadata(path)
        .map_err(io(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads a private file, refusing it when its group or others may access it.
pub fn read_private(path: &Path) -> Result<String, PrivateFileError> {
    check_private(path)?;
    std::fs::read_to_string(path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_are_created_private_and_open_files_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let key = dir.join("key");
        write_private(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(read_private(&key).unwrap(), "secret");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_private(&key).unwrap_err();
        assert!(matches!(err, PrivateFileError::TooOpen { mode: 0o644, .. }));
        assert!(err.to_string().contains("key"), "{err}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
