//! Image references: normalising a name the way containerd does (`busybox` →
//! `docker.io/library/busybox:latest`) and reading the names an OCI layout tarball holds.
//!
//! Owns name handling for the backends that keep their own image list (process, hollow).
//! It must not fetch anything: Rafter's images are imported from local tarballs, never
//! pulled from a registry by these backends.

use std::io::Read;
use std::path::Path;

use crate::error::{Result, RuntimeError};
use crate::status::ImageInfo;

/// Annotation containerd reads to name an imported image.
const NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI image layout's reference name annotation.
const OCI_REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The fully qualified form of an image reference: registry, repository and tag.
/// `busybox` → `docker.io/library/busybox:latest`; `local/pause:1` →
/// `docker.io/local/pause:1`; references with a digest keep it.
pub fn normalize_image(reference: &str) -> String {
    let (name, suffix) = match reference.find('@') {
        Some(at) => (&reference[..at], reference[at..].to_owned()),
        None => {
            let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
            match reference[last_slash..].rfind(':') {
                Some(colon) => (
                    &reference[..last_slash + colon],
                    reference[last_slash + colon..].to_owned(),
                ),
                None => (reference, ":latest".to_owned()),
            }
        }
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{suffix}")
}

/// How a backend with its own image list reports `image`: present when `listed` says the
/// normalised name is in the list, with that name as id and tag.
pub(crate) fn listed_image(image: &str, listed: impl FnOnce(&str) -> bool) -> Option<ImageInfo> {
    let name = normalize_image(image);
    listed(&name).then(|| ImageInfo {
        id: name.clone(),
        repo_tags: vec![name],
        size: 0,
        pinned: false,
    })
}

/// The image `found`, or the error for `image` missing from this backend, saying `why`.
pub(crate) fn require_image(image: &str, found: Option<ImageInfo>, why: &str) -> Result<ImageInfo> {
    found.ok_or_else(|| RuntimeError::ImageNotFound {
        image: image.to_owned(),
        message: why.to_owned(),
    })
}

/// The image names in an image archive: the `io.containerd.image.name` annotations of an
/// OCI layout's `index.json`, or the `RepoTags` of a docker archive's `manifest.json`.
/// Blocking: call it from `spawn_blocking`.
pub fn names_in_oci_tarball(path: &Path) -> Result<Vec<String>> {
    let io_err = |e| RuntimeError::io("reading image archive", path, e);
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let entry_path = entry.path().map_err(io_err)?.into_owned();
        let name = entry_path
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if name != "index.json" && name != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(io_err)?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| RuntimeError::InvalidSpec {
                field: format!("{}: {name}", path.display()),
                message: e.to_string(),
            })?;
        let names: Vec<String> = if name == "index.json" {
            doc["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    // containerd's own annotation, or the OCI ref name when it is a whole
                    // reference (skopeo's `oci-archive:FILE:host/repo:tag`), not a tag alone.
                    m["annotations"][NAME_ANNOTATION].as_str().or_else(|| {
                        m["annotations"][OCI_REF_NAME_ANNOTATION]
                            .as_str()
                            .filter(|n| n.contains('/'))
                    })
                })
                .map(normalize_image)
                .collect()
        } else {
            doc.as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["RepoTags"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t.as_str().map(normalize_image))
                .collect()
        };
        return Ok(names);
    }
    Err(RuntimeError::InvalidSpec {
        field: path.display().to_string(),
        message: "not an image archive: neither an OCI layout (index.json) nor a docker archive (manifest.json)".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::normalize_image;

    #[test]
    fn short_names_normalise_like_containerd() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(normalize_image("local/pause:1"), "docker.io/local/pause:1");
        assert_eq!(
            normalize_image("docker.io/local/busybox:1"),
            "docker.io/local/busybox:1"
        );
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_image("quay.io/x/y@sha256:abc"),
            "quay.io/x/y@sha256:abc"
        );
    }
}
