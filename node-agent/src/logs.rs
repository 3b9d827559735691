//! Reading container logs for `rafter logs`: the runtime's CRI-format files under the
//! agent's log directory, `<log-dir>/<namespace>_<pod>_<uid>/<container>/<attempt>.log`.
//!
//! ```text
//!   read_logs(tail N, previous) ─► the newest (or second newest) attempt's file,
//!                                  records joined into lines, last N
//!   follow_logs ─► those lines, then new lines as the file grows (polled), moving on
//!                  to a newer attempt's file when the container restarts, and across a
//!                  rotation (the rest of the rotated file, then the new one)
//! ```
//!
//! Owns finding and reading the files (through `tokio::fs`). It must not write or rotate
//! them (the runtime and `log_rotation` do) nor know how the request arrived. The gateway's pods/log
//! proxy reaches them through the agent's log endpoint (`log_server`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::Stream;

use crate::cri_log::messages;

/// Which log to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The container's name.
    pub container: String,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// The previous attempt's log instead of the current one.
    pub previous: bool,
}

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No log of this container (or no previous attempt) exists on the node.
    #[error("no {which} log for container {container:?} of pod {pod}")]
    NotFound {
        /// `current` or `previous`.
        which: &'static str,
        /// The container.
        container: String,
        /// `namespace/name`.
        pod: String,
    },
    /// The file cannot be read.
    #[error("reading {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn container_dir(root: &Path, r: &LogRequest) -> PathBuf {
    root.join(format!("{}_{}_{}", r.namespace, r.pod_name, r.pod_uid))
        .join(&r.container)
}

/// The attempts with a log file, newest first.
async fn attempts(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    if let Ok(mut listing) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = listing.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_suffix(".log")
                .and_then(|n| n.parse::<u32>().ok())
            {
                found.push((n, entry.path()));
            }
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

async fn pick(root: &Path, r: &LogRequest) -> Result<(u32, PathBuf), LogError> {
    let all = attempts(&container_dir(root, r)).await;
    let index = usize::from(r.previous);
    all.into_iter()
        .nth(index)
        .ok_or_else(|| LogError::NotFound {
            which: if r.previous { "previous" } else { "current" },
            container: r.container.clone(),
            pod: format!("{}/{}", r.namespace, r.pod_name),
        })
}

fn tail(mut lines: Vec<String>, n: Option<usize>) -> Vec<String> {
    if let Some(n) = n {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// The lines of a container's log (current or previous attempt), last `tail` only.
pub async fn read_logs(log_root: &Path, request: &LogRequest) -> Result<Vec<String>, LogError> {
    let (_, path) = pick(log_root, request).await?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|source| LogError::Io {
            path: path.clone(),
            source,
        })?;
    let lines = messages(&bytes).into_iter().map(|(_, m)| m).collect();
    Ok(tail(lines, request.tail))
}

struct Follow {
    root: PathBuf,
    request: LogRequest,
    attempt: u32,
    path: PathBuf,
    offset: u64,
    /// The inode of the file being read, to notice a rotation (the path then names a
    /// new file).
    inode: u64,
    pending: Vec<String>,
    started: bool,
}

async fn inode_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    tokio::fs::metadata(path).await.ok().map(|m| m.ino())
}

/// The file in `path`'s directory with inode `inode`: where a rotated log went.
async fn find_rotated(path: &Path, inode: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    let mut listing = tokio::fs::read_dir(dir).await.ok()?;
    while let Ok(Some(entry)) = listing.next_entry().await {
        let candidate = entry.path();
        if candidate != path && inode_of(&candidate).await == Some(inode) {
            return Some(candidate);
        }
    }
    None
}

/// Whole lines of `bytes` from `offset`; the offset after them.
fn complete_lines(bytes: &[u8], offset: u64) -> (Vec<String>, u64) {
    let new = bytes.get(offset as usize..).unwrap_or_default();
    match new.iter().rposition(|b| *b == b'\n') {
        Some(end) => (
            messages(&new[..=end]).into_iter().map(|(_, m)| m).collect(),
            offset + end as u64 + 1,
        ),
        None => (Vec::new(), offset),
    }
}

/// The log's lines as [`read_logs`] gives them, then every new line as it is written,
/// until the stream is dropped. Polls every 200 ms.
pub fn follow_logs(
    log_root: &Path,
    request: LogRequest,
) -> impl Stream<Item = Result<String, LogError>> + Send + 'static {
    let state = Follow {
        root: log_root.to_owned(),
        request,
        attempt: 0,
        path: PathBuf::new(),
        offset: 0,
        inode: 0,
        pending: Vec::new(),
        started: false,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if !s.pending.is_empty() {
                let line = s.pending.remove(0);
                return Some((Ok(line), Some(s)));
            }
            if !s.started {
                let (attempt, path) = match pick(&s.root, &s.request).await {
                    Ok(v) => v,
                    Err(e) => return Some((Err(e), None)),
                };
                let bytes = match tokio::fs::read(&path).await {
                    Ok(b) => b,
                    Err(source) => return Some((Err(LogError::Io { path, source }), None)),
                };
                let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let lines = messages(&bytes[..complete])
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
                s.pending = tail(lines, s.request.tail);
                s.inode = inode_of(&path).await.unwrap_or(0);
                s.attempt = attempt;
                s.path = path;
                s.offset = complete as u64;
                s.started = true;
                continue;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let inode = inode_of(&s.path).await;
            if let Some(inode) = inode.filter(|i| *i != s.inode) {
                // Rotated: finish the old file where it went, then read the new one
                // from its start.
                if let Some(old) = find_rotated(&s.path, s.inode).await {
                    let bytes = tokio::fs::read(&old).await.unwrap_or_default();
                    s.pending = complete_lines(&bytes, s.offset).0;
                }
                s.inode = inode;
                s.offset = 0;
                continue;
            }
            let bytes = tokio::fs::read(&s.path).await.unwrap_or_default();
            let (lines, offset) = complete_lines(&bytes, s.offset);
            if !lines.is_empty() {
                s.pending = lines;
                s.offset = offset;
                continue;
            }
            // A restart writes a new attempt's file: follow it from its start.
            let current = LogRequest {
                previous: false,
                ..s.request.clone()
            };
            if let Ok((attempt, path)) = pick(&s.root, &current).await {
                if attempt > s.attempt {
                    s.attempt = attempt;
                    s.inode = inode_of(&path).await.unwrap_or(0);
                    s.path = path;
                    s.offset = 0;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri_log::{encode_line, LogStream};
    use futures::StreamExt;
    use std::time::SystemTime;

    fn request() -> LogRequest {
        LogRequest {
            namespace: "ns".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            container: "c".into(),
            ..LogRequest::default()
        }
    }

    async fn write(root: &Path, attempt: u32, lines: &[&str]) {
        let dir = container_dir(root, &request());
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend(encode_line(
                SystemTime::now(),
                LogStream::Stdout,
                l.as_bytes(),
                true,
            ));
        }
        let path = dir.join(format!("{attempt}.log"));
        let mut old = tokio::fs::read(&path).await.unwrap_or_default();
        old.extend(bytes);
        tokio::fs::write(path, old).await.unwrap();
    }

    #[tokio::test]
    async fn tail_and_previous_pick_the_right_attempt_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 0, &["a", "b"]).await;
        write(dir.path(), 1, &["c", "d", "e"]).await;
        let mut r = request();
        r.tail = Some(2);
        assert_eq!(read_logs(dir.path(), &r).await.unwrap(), vec!["d", "e"]);
        r.previous = true;
        r.tail = None;
        assert_eq!(read_logs(dir.path(), &r).await.unwrap(), vec!["a", "b"]);
        r.container = "other".into();
        assert!(matches!(
            read_logs(dir.path(), &r).await,
            Err(LogError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn follow_carries_on_across_a_rotation_and_read_shows_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 0, &["before"]).await;
        let mut stream = Box::pin(follow_logs(dir.path(), request()));
        assert_eq!(stream.next().await.unwrap().unwrap(), "before");
        write(dir.path(), 0, &["last of the old file"]).await;
        let current = container_dir(dir.path(), &request()).join("0.log");
        let aside = current.with_extension("log.20261125-140000.000000");
        tokio::fs::rename(&current, &aside).await.unwrap();
        write(dir.path(), 0, &["first of the new file"]).await;
        for want in ["last of the old file", "first of the new file"] {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap();
            assert_eq!(next.unwrap().unwrap(), want);
        }
        let read = read_logs(dir.path(), &request()).await.unwrap();
        assert_eq!(read, vec!["first of the new file"]);
    }

    #[tokio::test]
    async fn follow_delivers_lines_written_later() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 0, &["first"]).await;
        let mut stream = Box::pin(follow_logs(dir.path(), request()));
        assert_eq!(stream.next().await.unwrap().unwrap(), "first");
        write(dir.path(), 0, &["second"]).await;
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap();
        assert_eq!(next.unwrap().unwrap(), "second");
    }
}
