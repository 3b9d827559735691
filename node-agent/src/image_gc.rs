//! Image garbage collection by disk usage, as the kubelet does it: when the filesystem
//! holding the runtime's images is used past the high threshold, unused images are removed,
//! least recently used first, until usage would be back under the low threshold.
//!
//! ```text
//!   every period:  runtime.image_fs() ─► used% < high? ─► nothing
//!                                        │ else: to free = used − capacity × low%
//!   runtime.list_images() − in use (any container of the runtime, whoever made it)
//!                         − pinned (the sandbox image, --pinned-images, imported airgap
//!                           images and `rafter image import`s, read at every pass from
//!                           `pinned_images`; the runtime's own pinned flag)
//!        ─► candidates, oldest last use first (then largest) ─► remove until freed ≥ to free
//! ```
//!
//! [`plan`] is pure (no I/O, no clock: times come in); [`run`] is the loop that carries it
//! out. An image's last use is the last time the loop saw a container using it, or when the
//! loop first saw the image. It must not touch images while thresholds are not passed, and
//! never an image a container of the runtime uses (agents may share one containerd).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::pinned_images::PinnedImages;
use crate::runtime::ContainerRuntime;
use crate::status::ImageInfo;

/// Settings of image garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// Collect when the image filesystem is used at or past this percentage (kubelet's
    /// `--image-gc-high-threshold`, 85).
    pub high_percent: u8,
    /// Collect down to this percentage (`--image-gc-low-threshold`, 80).
    pub low_percent: u8,
    /// How often usage is checked.
    pub period: Duration,
    /// Images never removed (the sandbox image, `--pinned-images`). The agent adds the
    /// images of `--images-dir` and of `rafter image import` (`pinned_images`).
    pub pinned: Vec<String>,
    /// An image used (or first seen) more recently than this is kept (kubelet's
    /// `--image-minimum-gc-age`, 2 min): a pull that has not made its container yet.
    pub min_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_percent: 85,
            low_percent: 80,
            period: Duration::from_secs(300),
            pinned: vec!["docker.io/local/pause:1".to_owned()],
            min_age: Duration::from_secs(120),
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageGcError {
    /// The thresholds are out of range or in the wrong order.
    #[error("--image-gc-low-threshold ({low}) must be below --image-gc-high-threshold ({high}), both 0-100")]
    Thresholds {
        /// The high threshold.
        high: u8,
        /// The low threshold.
        low: u8,
    },
}

impl ImageGcPolicy {
    /// Checks the thresholds.
    pub fn validate(&self) -> Result<(), ImageGcError> {
        if self.high_percent > 100 || self.low_percent >= self.high_percent {
            return Err(ImageGcError::Thresholds {
                high: self.high_percent,
                low: self.low_percent,
            });
        }
        Ok(())
    }
}

/// How full the image filesystem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Bytes in use on the filesystem.
    pub used_bytes: u64,
    /// Its size in bytes.
    pub capacity_bytes: u64,
}

/// One image as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) image: ImageInfo,
    pub(crate) last_used: Instant,
}

/// The ids of the images to remove, in order, given the filesystem `usage`, every image
/// with its last use, the images in use and the pinned ones (ids or names), at `now`.
pub(crate) fn plan(
    usage: FsUsage,
    policy: &ImageGcPolicy,
    images: &[Candidate],
    in_use: &HashSet<String>,
    pinned: &HashSet<String>,
    now: Instant,
) -> Vec<String> {
    if usage.capacity_bytes == 0 {
        return Vec::new();
    }
    let percent = usage.used_bytes.saturating_mul(100) / usage.capacity_bytes;
    if percent < u64::from(policy.high_percent) {
        return Vec::new();
    }
    let target = usage.capacity_bytes / 100 * u64::from(policy.low_percent);
    let to_free = usage.used_bytes.saturating_sub(target);
    let protected = |image: &ImageInfo| {
        image.pinned
            || in_use.contains(&image.id)
            || pinned.contains(&image.id)
            || image
                .repo_tags
                .iter()
                .any(|t| in_use.contains(t) || pinned.contains(t))
    };
    let mut candidates: Vec<&Candidate> = images
        .iter()
        .filter(|c| !protected(&c.image))
        .filter(|c| now.saturating_duration_since(c.last_used) >= policy.min_age)
        .collect();
    candidates.sort_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then(b.image.size.cmp(&a.image.size))
            .then(a.image.id.cmp(&b.image.id))
    });
    let mut freed = 0u64;
    let mut out = Vec::new();
    for c in candidates {
        if freed >= to_free {
            break;
        }
        freed = freed.saturating_add(c.image.size);
        out.push(c.image.id.clone());
    }
    out
}

/// Checks usage every `policy.period` and removes images as [`plan`] says, until `stop`
/// turns true. A runtime without an image filesystem (process, hollow) ends the loop.
/// The pinned names are read at every pass: `rafter image import` adds to them.
pub(crate) async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    policy: ImageGcPolicy,
    pinned: Arc<PinnedImages>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_used: HashMap<String, Instant> = HashMap::new();
    loop {
        let pinned = pinned.names();
        match collect_once(runtime.as_ref(), &policy, &pinned, &mut last_used).await {
            Ok(true) => {}
            Ok(false) => {
                info!(
                    runtime = runtime.backend(),
                    "no image filesystem to watch; image garbage collection is off"
                );
                return;
            }
            Err(e) => warn!(error = %e, "image garbage collection failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(policy.period) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One pass; false when the runtime has no image filesystem.
async fn collect_once(
    runtime: &dyn ContainerRuntime,
    policy: &ImageGcPolicy,
    pinned: &HashSet<String>,
    last_used: &mut HashMap<String, Instant>,
) -> crate::error::Result<bool> {
    let Some(usage) = runtime.image_fs_usage().await? else {
        return Ok(false);
    };
    let images = runtime.list_images().await?;
    let in_use = runtime.images_in_use().await?;
    let now = Instant::now();
    last_used.retain(|id, _| images.iter().any(|i| &i.id == id));
    let candidates: Vec<Candidate> = images
        .into_iter()
        .map(|image| {
            let used =
                in_use.contains(&image.id) || image.repo_tags.iter().any(|t| in_use.contains(t));
            let seen = last_used.entry(image.id.clone()).or_insert(now);
            if used {
                *seen = now;
            }
            Candidate {
                last_used: *seen,
                image,
            }
        })
        .collect();
    let remove = plan(usage, policy, &candidates, &in_use, pinned, now);
    if remove.is_empty() {
        return Ok(true);
    }
    info!(
        used_bytes = usage.used_bytes,
        capacity_bytes = usage.capacity_bytes,
        high = policy.high_percent,
        low = policy.low_percent,
        images = remove.len(),
        "image filesystem past the high threshold; removing unused images"
    );
    for id in remove {
        match runtime.remove_image(&id).await {
            Ok(()) => {
                last_used.remove(&id);
                info!(image = %id, "unused image removed");
            }
            Err(e) => warn!(image = %id, error = %e, "unused image not removed"),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tag: &str, size: u64) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_tags: vec![tag.into()],
            size,
            pinned: false,
        }
    }

    fn policy(high: u8, low: u8) -> ImageGcPolicy {
        ImageGcPolicy {
            high_percent: high,
            low_percent: low,
            min_age: Duration::from_secs(60),
            ..ImageGcPolicy::default()
        }
    }

    #[test]
    fn below_the_high_threshold_nothing_is_removed() {
        let start = Instant::now();
        let images = [Candidate {
            image: image("a", "x/a:1", 10),
            last_used: start,
        }];
        let usage = FsUsage {
            used_bytes: 84,
            capacity_bytes: 100,
        };
        let none = HashSet::new();
        assert!(plan(usage, &policy(85, 80), &images, &none, &none, start).is_empty());
    }

    #[test]
    fn past_the_high_threshold_the_oldest_unused_go_until_the_low_one_is_reached() {
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        let images = [
            Candidate {
                image: image("new", "x/new:1", 3_000),
                last_used: at(30),
            },
            Candidate {
                image: image("old", "x/old:1", 3_000),
                last_used: at(10),
            },
            Candidate {
                image: image("older", "x/older:1", 3_000),
                last_used: at(5),
            },
            Candidate {
                image: image("used", "x/used:1", 50_000),
                last_used: at(0),
            },
            Candidate {
                image: image("pause", "docker.io/local/pause:1", 50_000),
                last_used: at(0),
            },
            Candidate {
                image: ImageInfo {
                    pinned: true,
                    ..image("runtime-pinned", "x/p:1", 50_000)
                },
                last_used: at(0),
            },
        ];
        let usage = FsUsage {
            used_bytes: 90_000,
            capacity_bytes: 100_000,
        };
        let in_use = HashSet::from(["x/used:1".to_owned()]);
        let pinned = HashSet::from(["docker.io/local/pause:1".to_owned()]);
        let now = at(100);
        // 90% used, down to 85%: 5000 bytes, two 3000-byte images, oldest first.
        assert_eq!(
            plan(usage, &policy(90, 85), &images, &in_use, &pinned, now),
            ["older", "old"]
        );
        // Down to 0%: everything not used or pinned.
        assert_eq!(
            plan(usage, &policy(1, 0), &images, &in_use, &pinned, now),
            ["older", "old", "new"]
        );
        // Used within the minimum age (60 s): kept.
        assert_eq!(
            plan(usage, &policy(1, 0), &images, &in_use, &pinned, at(80)),
            ["older", "old"]
        );
    }

    #[test]
    fn thresholds_must_be_ordered() {
        assert!(policy(85, 80).validate().is_ok());
        assert!(policy(80, 80).validate().is_err());
        assert!(policy(101, 80).validate().is_err());
    }
}
