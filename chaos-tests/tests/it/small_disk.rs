//! A small filesystem a test makes and fills: an ext4 image, loop-mounted, unmounted and
//! deleted when dropped. For the disk-space faults (ENOSPC, a disk below its reserve).
//!
//! Needs root and loop devices; [`SmallDisk::make`] says why it cannot be made otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tests with small disks take turns: run side by side, their clusters stopped taking
/// writes (each test's first create timed out), which neither does alone.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this test's turn with small disks; the turn lasts as long as the guard.
pub async fn take_turn() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

/// A loop-mounted ext4 image.
pub struct SmallDisk {
    image: PathBuf,
    /// Where it is mounted.
    pub mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A `megabytes` filesystem with no blocks reserved for root (what is free is what the
    /// masters, running as root, see), or why one cannot be made here.
    pub fn make(megabytes: u64) -> Result<SmallDisk, String> {
        if !is_root() {
            return Err("not root: cannot mount a loop device".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(megabytes * 1024 * 1024))
            .map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", "-m", "0", path(&image)])?;
        run("mount", &["-o", "loop", path(&image), path(&mount)])?;
        Ok(SmallDisk {
            image,
            mount,
            _dir: dir,
        })
    }

    /// Writes zeros into a file until the filesystem is full; returns that file.
    pub fn fill(&self) -> PathBuf {
        let filler = self.mount.join("filler");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // What is left in a partly written block, too.
        let _ = file.write_all(&[0u8; 4096]);
        let _ = file.sync_all();
        filler
    }

    /// Writes zeros into a file until about `megabytes` are left free (never passing
    /// through a full disk on the way); returns that file.
    pub fn leave_free(&self, megabytes: u64) -> PathBuf {
        let filler = self.mount.join("filler");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        let keep = megabytes * 1024 * 1024;
        while self.free_bytes() > keep + chunk.len() as u64 {
            file.write_all(&chunk).unwrap();
            file.sync_all().unwrap();
        }
        filler
    }

    /// Bytes free on the filesystem.
    pub fn free_bytes(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(&self.mount).unwrap();
        stat.blocks_available() * stat.fragment_size()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if run("umount", &[path(&self.mount)]).is_err() {
            let _ = run("umount", &["-l", path(&self.mount)]);
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

fn is_root() -> bool {
    // /proc/self/status: "Uid:\t<real>\t<effective>...".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
