//! The images this node never garbage-collects, and the file that keeps the imported ones
//! across restarts.
//!
//! ```text
//!   at start:  --sandbox-image / --pinned-images (config)  ┐
//!              --images-dir archives' names                ├─► PinnedImages ─► image_gc (each pass)
//!              DATA_DIR/pinned-images (earlier imports)    ┘        ▲         image_server (PINNED)
//!   later:     `rafter image import` (image_server) ── add ─────────┘
//!                                                        └─► DATA_DIR/pinned-images (rewritten)
//! ```
//!
//! Names are kept normalised (`busybox:1` → `docker.io/library/busybox:1`), as image GC
//! compares them. Only the names added at run time are written to the file (one per
//! line); the configured ones come from the flags at every start. The file is replaced
//! atomically (write, fsync, rename), so a crash leaves the old list or the new one.
//! Owns the set and its file; it must not remove images or talk to the runtime.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::image::normalize_image;
use crate::status::ImageInfo;

/// The file under the agent's data directory that lists imported (pinned) images.
pub(crate) const PINNED_IMAGES_FILE: &str = "pinned-images";

/// Why the pinned images' file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PinnedImagesError {
    /// Reading or replacing the file failed.
    #[error("the pinned images file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default)]
struct Sets {
    /// Every pinned name, configured or imported.
    all: BTreeSet<String>,
    /// The names added at run time, as the file lists them.
    imported: BTreeSet<String>,
}

/// The node's pinned images: configured, imported at start, and imported since.
#[derive(Debug)]
pub(crate) struct PinnedImages {
    file: PathBuf,
    sets: Mutex<Sets>,
}

impl PinnedImages {
    /// The configured names `base` plus those `file` lists (a missing file lists none).
    pub(crate) async fn load(
        file: PathBuf,
        base: impl IntoIterator<Item = String>,
    ) -> Result<PinnedImages, PinnedImagesError> {
        let imported: BTreeSet<String> = match tokio::fs::read_to_string(&file).await {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(normalize_image)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => return Err(PinnedImagesError::Io { path: file, source }),
        };
        let mut all: BTreeSet<String> = base.into_iter().map(|n| normalize_image(&n)).collect();
        all.extend(imported.iter().cloned());
        Ok(PinnedImages {
            file,
            sets: Mutex::new(Sets { all, imported }),
        })
    }

    /// A copy of every pinned name, normalised.
    pub(crate) fn names(&self) -> HashSet<String> {
        let sets = self
            .sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sets.all.iter().cloned().collect()
    }

    /// Whether `image` (by id or any of its names) is pinned here or by the runtime.
    pub(crate) fn protects(&self, image: &ImageInfo) -> bool {
        let names = self.names();
        image.pinned
            || names.contains(&image.id)
            || image
                .repo_tags
                .iter()
                .any(|t| names.contains(&normalize_image(t)))
    }

    /// Pins `names` from now on and across restarts: the file is rewritten with them.
    pub(crate) async fn add(&self, names: &[String]) -> Result<(), PinnedImagesError> {
        let listed = {
            let mut sets = self
                .sets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut changed = false;
            for name in names.iter().map(|n| normalize_image(n)) {
                sets.all.insert(name.clone());
                changed |= sets.imported.insert(name);
            }
            if !changed {
                return Ok(());
            }
            sets.imported.iter().cloned().collect::<Vec<_>>()
        };
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || write_list(&file, &listed)).await;
        match written {
            Ok(result) => result,
            Err(e) => Err(PinnedImagesError::Io {
                path: self.file.clone(),
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// Replaces `file` with `names`, one per line: a temporary file, fsync, rename.
fn write_list(file: &Path, names: &[String]) -> Result<(), PinnedImagesError> {
    use std::io::Write;
    let io = |source| PinnedImagesError::Io {
        path: file.to_owned(),
        source,
    };
    let mut text =
        String::from("# Images imported with `rafter image import`: never garbage-collected.\n");
    for name in names {
        text.push_str(name);
        text.push('\n');
    }
    let temporary = file.with_extension("new");
    let mut out = std::fs::File::create(&temporary).map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    out.sync_all().map_err(io)?;
    std::fs::rename(&temporary, file).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tag: &str) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size: 1,
            pinned: false,
        }
    }

    #[tokio::test]
    async fn imported_names_are_pinned_at_once_and_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PINNED_IMAGES_FILE);
        let pinned = PinnedImages::load(file.clone(), ["local/pause:1".to_owned()])
            .await
            .unwrap();
        assert!(pinned.protects(&image("sha256:p", "docker.io/local/pause:1")));
        assert!(!pinned.protects(&image("sha256:a", "docker.io/local/app:1")));

        pinned.add(&["local/app:1".to_owned()]).await.unwrap();
        assert!(pinned.protects(&image("sha256:a", "docker.io/local/app:1")));

        // A restart reads the imported name back; the configured one comes from the flags.
        let again = PinnedImages::load(file.clone(), Vec::new()).await.unwrap();
        assert!(again.protects(&image("sha256:a", "docker.io/local/app:1")));
        assert!(!again.protects(&image("sha256:p", "docker.io/local/pause:1")));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.lines().any(|l| l == "docker.io/local/app:1"), "{text}");
        assert!(!text.contains("pause"), "{text}");
    }
}
