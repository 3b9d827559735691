//! Size caps and rotation of container log files, as kubelet's container log manager
//! does them (`containerLogMaxSize`, `containerLogMaxFiles`):
//!
//! ```text
//!   pod worker sync, per running container:
//!     size(<n>.log) > max_size ─► rename to <n>.log.<UTC timestamp>
//!                               ─► runtime.reopen_container_log(id)   (the writer opens a
//!                                  fresh <n>.log: containerd through CRI ReopenContainerLog,
//!                                  the process backend in its log pump)
//!                               ─► delete the oldest <n>.log.* beyond max_files - 1
//! ```
//!
//! `max_files` counts the current file, as kubelet's does. Readers (`crate::logs`) only
//! ever read `<n>.log`, so `rafter logs` shows the current file and `--previous` the
//! previous attempt's current file. The cap is checked at each sync, so a file may
//! grow past it by what the container writes between two checks.
//!
//! Owns the naming of rotated files and which ones are kept ([`surplus`], pure) and the
//! rename and removal ([`rotate_if_needed`]); it must not talk to the runtime (the pod
//! worker asks it to reopen) nor read logs.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Kubelet's default `containerLogMaxSize` (10Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Kubelet's default `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: usize = 5;

/// How large a container's log may grow and how many files of it are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// Rotate once the current file is larger than this many bytes.
    pub max_size: u64,
    /// Files kept per container attempt, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// The suffix of a file rotated at `at`: `YYYYMMDD-HHMMSS.micros` in UTC, so names
/// sort in time order.
fn stamp(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_micros(at).to_string();
    // 2026-11-25T14:01:28.123456Z → 20261125-140128.123456
    let digits = text.trim_end_matches('Z').replace(['-', ':'], "");
    digits.replacen('T', "-", 1)
}

/// Of the rotated files of one log (names `<current>.<stamp>`), those to delete so that
/// at most `max_files - 1` remain: the oldest by name.
pub(crate) fn surplus(current: &str, names: &[String], max_files: usize) -> Vec<String> {
    let prefix = format!("{current}.");
    let mut rotated: Vec<&String> = names
        .iter()
        .filter(|n| n.strip_prefix(&prefix).is_some_and(|s| !s.is_empty()))
        .collect();
    rotated.sort();
    let keep = max_files.max(2) - 1;
    let excess = rotated.len().saturating_sub(keep);
    rotated.into_iter().take(excess).cloned().collect()
}

/// Rotates `path` when it is larger than the cap: renames it aside and deletes the
/// oldest rotated files beyond the limit. Returns the new name of the rotated file, or
/// `None` when nothing was done (small enough, or missing). The caller must then have
/// the writer reopen `path`.
pub(crate) async fn rotate_if_needed(
    path: &Path,
    policy: LogRotation,
    now: SystemTime,
) -> std::io::Result<Option<PathBuf>> {
    let size = match tokio::fs::metadata(path).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if size <= policy.max_size {
        return Ok(None);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let name = name.to_string_lossy().into_owned();
    let rotated = dir.join(format!("{name}.{}", stamp(now)));
    tokio::fs::rename(path, &rotated).await?;
    let mut names = Vec::new();
    let mut listing = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = listing.next_entry().await? {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    for old in surplus(&name, &names, policy.max_files) {
        match tokio::fs::remove_file(dir.join(&old)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(Some(rotated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_sort_in_time_order() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(stamp(t), "20261118-110640.123456");
        assert!(stamp(t) < stamp(t + Duration::from_micros(1)));
    }

    #[test]
    fn surplus_keeps_the_newest_max_files_minus_one_rotated_files() {
        let names: Vec<String> = [
            "0.log",
            "0.log.20261125-100000.000001",
            "0.log.20261125-100000.000003",
            "0.log.20261125-100000.000002",
            "1.log",
            "1.log.20261125-090000.000000",
            "0.log.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            surplus("0.log", &names, 3),
            vec!["0.log.20261125-100000.000001"]
        );
        assert!(surplus("0.log", &names, 5).is_empty());
        assert_eq!(
            surplus("0.log", &names, 1).len(),
            2,
            "the current file always stays"
        );
        assert!(surplus("1.log", &names, 2).is_empty());
    }

    #[tokio::test]
    async fn a_file_past_the_cap_is_rotated_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let policy = LogRotation {
            max_size: 10,
            max_files: 3,
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        tokio::fs::write(&path, b"small").await.unwrap();
        assert_eq!(rotate_if_needed(&path, policy, t0).await.unwrap(), None);
        for i in 0..4u64 {
            tokio::fs::write(&path, format!("content number {i}"))
                .await
                .unwrap();
            let rotated = rotate_if_needed(&path, policy, t0 + Duration::from_secs(i))
                .await
                .unwrap()
                .unwrap();
            assert!(!path.exists());
            assert_eq!(
                std::fs::read_to_string(rotated).unwrap(),
                format!("content number {i}")
            );
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["content number 2", "content number 3"]);
        let missing = dir.path().join("none.log");
        assert_eq!(rotate_if_needed(&missing, policy, t0).await.unwrap(), None);
    }
}
