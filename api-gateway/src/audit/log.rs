//! [`AuditLog`]: JSON lines appended to a 0600 file, synced before `record` returns, and
//! rotated by size (`path` → `path.1` → ... → `path.<max_backups>`, the oldest dropped).
//! `record` blocks on the disk: async callers run it in `spawn_blocking`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{AuditError, Event};

struct Open {
    file: std::fs::File,
    size: u64,
}

/// The audit log file.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    open: Mutex<Open>,
}

fn open(path: &Path) -> Result<Open, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    Ok(Open { file, size })
}

impl AuditLog {
    /// Opens (appends to) the log at `path`; rotates once it passes `max_bytes`, keeping
    /// `max_backups` old files.
    pub fn open(path: &Path, max_bytes: u64, max_backups: usize) -> Result<AuditLog, AuditError> {
        Ok(AuditLog {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            max_backups,
            open: Mutex::new(open(path)?),
        })
    }

    fn backup(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&self, current: &mut Open) -> Result<(), AuditError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AuditError::Io { path, source }
        };
        if self.max_backups == 0 {
            std::fs::remove_file(&self.path).map_err(io(&self.path))?;
        } else {
            for n in (1..self.max_backups).rev() {
                let from = self.backup(n);
                if from.exists() {
                    std::fs::rename(&from, self.backup(n + 1)).map_err(io(&from))?;
                }
            }
            std::fs::rename(&self.path, self.backup(1)).map_err(io(&self.path))?;
        }
        *current = open(&self.path)?;
        Ok(())
    }

    /// Appends `event` as one line and syncs it to disk.
    pub fn record(&self, event: &Event) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(event)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        line.push(b'\n');
        let mut current = self
            .open
            .lock()
            .map_err(|_| io(std::io::Error::other("the audit log lock was poisoned")))?;
        if current.size > 0 && current.size + line.len() as u64 > self.max_bytes {
            self.rotate(&mut current)?;
        }
        current.file.write_all(&line).map_err(io)?;
        current.file.sync_data().map_err(io)?;
        current.size += line.len() as u64;
        Ok(())
    }
}
