//! Secret volumes on tmpfs, as the kubelet does: a Secret's files live in memory only,
//! never on the node's disk.
//!
//! ```text
//!   <data-dir>/pods/<uid>/volumes/<secret volume>   ◄── tmpfs (size=4m, mode=0700,
//!                                                        nosuid,nodev,noexec)
//! ```
//!
//! Owns the mount and unmount of those directories and the parsing of
//! `/proc/self/mountinfo` ([`parse_mountinfo`], pure) that finds them again: a directory
//! already mounted is not mounted twice, a pod's mounts are detached before its
//! directory is removed, and an agent that starts again detaches the mounts of pods it no
//! longer runs ([`mounts_under`]). mount(2), umount2(2) and the read of mountinfo are
//! blocking syscalls: every public function here runs them on a blocking thread.
//!
//! Where mounting is refused (`EPERM`: the agent is not root, or runs without
//! `CAP_SYS_ADMIN`), [`mount_secret_dir`] answers [`Mounted::Refused`] and the caller
//! writes plain files; the reason is logged once at warn level. Any other failure is an
//! error: as root the volume is tmpfs or the container does not start. This module must
//! not write the volume's files (see `volumes`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// Size cap of one secret volume's tmpfs: a Secret holds at most 1 MiB of data, and a
/// changed key is written beside the old file before it replaces it.
const SIZE_OPTION: &str = "size=4m,mode=0700";

/// Where the mount table of this process's mount namespace is read.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Set once mount(2) answered `EPERM` (and the fallback was logged): the process's
/// privileges do not change, so later volumes go straight to plain files (and a
/// directory a container already bind-mounts is never emptied).
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Why a mount or an unmount failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TmpfsError {
    /// mount(2) failed for a reason other than missing privileges.
    #[error("mounting tmpfs on {path}: {errno}")]
    Mount {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// The directory could not be created or emptied before the mount.
    #[error("preparing {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The mount table could not be read.
    #[error("reading {MOUNTINFO}: {0}")]
    MountInfo(#[source] std::io::Error),
    /// The blocking task running the syscall was lost.
    #[error("the blocking task was cancelled: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The outcome of [`mount_secret_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mounted {
    /// The directory is a tmpfs now (mounted by this call, or already).
    Tmpfs,
    /// Mounting is not allowed here; the volume is plain files.
    Refused,
}

/// One line of `/proc/self/mountinfo`, the fields this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: PathBuf,
    /// The filesystem type (`tmpfs`, `ext4`, ...).
    pub fs_type: String,
}

/// Parses the text of a `mountinfo` file (proc(5)); lines that do not parse are skipped.
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2) (3)  (4)   (5)     (6)       (7)   (8) (9)    (10)        (11)
/// ```
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let mount_point = fields.nth(4)?;
            // Optional fields run until the lone "-" separator.
            let mut rest = fields.skip_while(|f| *f != "-");
            rest.next()?;
            let fs_type = rest.next()?;
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_owned(),
            })
        })
        .collect()
}

/// Decodes mountinfo's `\ooo` escapes (space, tab, newline and backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(octal, 8) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of `entries` strictly under `dir`, deepest first (the order to unmount).
pub(crate) fn under(entries: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e.mount_point != dir && e.mount_point.starts_with(dir))
        .map(|e| e.mount_point.clone())
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn read_mountinfo() -> Result<Vec<MountEntry>, TmpfsError> {
    std::fs::read_to_string(MOUNTINFO)
        .map(|text| parse_mountinfo(&text))
        .map_err(TmpfsError::MountInfo)
}

/// `path` with symlinks resolved as the kernel writes it in mountinfo (itself when it
/// does not exist).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Makes `dir` (created if missing) a size-limited tmpfs of mode 0700, unless it is one
/// already. Plain files left in it by an agent without tmpfs are removed first, so no
/// Secret stays on disk under the mount.
pub(crate) async fn mount_secret_dir(dir: &Path) -> Result<Mounted, TmpfsError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || mount_blocking(&dir)).await?
}

fn mount_blocking(dir: &Path) -> Result<Mounted, TmpfsError> {
    let mount_error = |errno| TmpfsError::Mount {
        path: dir.to_path_buf(),
        errno,
    };
    let io_error = |source| TmpfsError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let target = canonical(dir);
    let mounted = read_mountinfo()?
        .iter()
        .any(|e| e.mount_point == target && e.fs_type == "tmpfs");
    if mounted {
        return Ok(Mounted::Tmpfs);
    }
    if REFUSED.load(Ordering::Relaxed) {
        return Ok(Mounted::Refused);
    }
    // Files written before (on disk) must not stay hidden under the mount.
    clear_contents(&target).map_err(io_error)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match nix::mount::mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        flags,
        Some(SIZE_OPTION),
    ) {
        Ok(()) => Ok(Mounted::Tmpfs),
        Err(Errno::EPERM) => {
            if !REFUSED.swap(true, Ordering::Relaxed) {
                let reason = if nix::unistd::geteuid().is_root() {
                    "the agent runs as root without CAP_SYS_ADMIN (mount refused with EPERM)"
                } else {
                    "the agent does not run as root"
                };
                tracing::warn!(
                    reason,
                    "secret volumes cannot be tmpfs mounts; writing them as plain files on disk"
                );
            }
            Ok(Mounted::Refused)
        }
        Err(errno) => Err(mount_error(errno)),
    }
}

/// Removes what `dir` holds, keeping `dir` itself (a container may bind-mount it).
fn clear_contents(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Detaches every mount under `dir` (lazily: a mount still in use goes when its last
/// user does), deepest first. Failures are logged, not returned: removing the directory
/// is what the caller does next, and a mount left behind only makes that fail loudly.
pub(crate) async fn unmount_under(dir: &Path) {
    let dir = dir.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        let entries = read_mountinfo()?;
        for point in under(&entries, &canonical(&dir)) {
            unmount_logged(&point);
        }
        Ok::<_, TmpfsError>(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "mounts of a pod directory not checked"),
        Err(e) => tracing::warn!(error = %e, "mounts of a pod directory not checked"),
    }
}

fn unmount_logged(point: &Path) {
    if let Err(errno) = nix::mount::umount2(point, MntFlags::MNT_DETACH) {
        tracing::warn!(mount = %point.display(), error = %errno, "tmpfs not unmounted");
    }
}

/// The pod uids that have a mount under `pods_dir` (`<pods_dir>/<uid>/...`), to find
/// those of pods that are gone after an agent restart.
pub(crate) async fn mounted_pod_uids(pods_dir: &Path) -> Result<Vec<String>, TmpfsError> {
    let pods_dir = pods_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let pods_dir = canonical(&pods_dir);
        let entries = read_mountinfo()?;
        Ok(uids_under(&entries, &pods_dir))
    })
    .await?
}

/// The first path component below `pods_dir` of every mount under it, once each.
fn uids_under(entries: &[MountEntry], pods_dir: &Path) -> Vec<String> {
    let mut uids: Vec<String> = under(entries, pods_dir)
        .iter()
        .filter_map(|p| p.strip_prefix(pods_dir).ok()?.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    uids.sort();
    uids.dedup();
    uids
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
36 22 0:33 / /data/pods/u1/volumes/sec rw,nosuid,nodev,noexec,relatime shared:5 master:2 - tmpfs tmpfs rw,size=4096k,mode=700
37 22 0:34 / /data/pods/u1/volumes/sec/inner rw - tmpfs tmpfs rw
38 22 0:35 / /data/pods/u2/volumes/my\\040secret rw - tmpfs tmpfs rw
39 22 0:36 / /data/podsx/u3 rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn mountinfo_lines_give_the_mount_point_and_the_type_after_the_optional_fields() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries.len(), 5, "the garbage line is skipped: {entries:?}");
        assert_eq!(entries[0].mount_point, PathBuf::from("/"));
        assert_eq!(entries[0].fs_type, "ext4");
        assert_eq!(
            entries[1].mount_point,
            PathBuf::from("/data/pods/u1/volumes/sec")
        );
        assert_eq!(entries[1].fs_type, "tmpfs");
        assert_eq!(
            entries[3].mount_point,
            PathBuf::from("/data/pods/u2/volumes/my secret"),
            "octal escapes are decoded"
        );
    }

    #[test]
    fn escapes_decode_and_a_trailing_backslash_stays() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape("end\\"), "end\\");
        assert_eq!(unescape("x\\09"), "x\\09");
    }

    #[test]
    fn mounts_under_a_directory_come_deepest_first_and_exclude_look_alikes() {
        let entries = parse_mountinfo(SAMPLE);
        let got = under(&entries, Path::new("/data/pods/u1"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/data/pods/u1/volumes/sec/inner"),
                PathBuf::from("/data/pods/u1/volumes/sec"),
            ]
        );
        assert!(under(&entries, Path::new("/data/pods/u1/volumes/sec/inner")).is_empty());
    }

    #[test]
    fn the_pods_with_mounts_are_named_by_their_directory() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(
            uids_under(&entries, Path::new("/data/pods")),
            vec!["u1".to_string(), "u2".to_string()]
        );
    }
}
