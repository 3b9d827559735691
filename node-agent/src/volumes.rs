//! Pod volumes on the node: `emptyDir` (a directory under the agent's data dir),
//! `hostPath` (checked or created per its `type`), `configMap` and `secret` (one file per
//! key, secrets base64-decoded, on a tmpfs of their own: see `tmpfs`; files 0600 unless
//! `defaultMode` or an item's `mode` says otherwise), `persistentVolumeClaim` (the hostPath of the
//! PersistentVolume the claim is bound to, treated as a hostPath volume), and the bind
//! [`Mount`]s each container gets.
//!
//! ```text
//!   <data-dir>/pods/<uid>/volumes/<volume name>/...   ──bind──► container mountPath
//! ```
//!
//! Owns the per-pod directory and its removal. File work goes through `tokio::fs` (never
//! blocking an async thread). It must not read the API itself: ConfigMaps and Secrets
//! come through [`PodObjects`]. A claim that is not bound yet, a PV that is not
//! hostPath, and `nfs` surface as a `CreateContainerConfigError` (retried with back-off).
//! On the process backend mounts are ignored (see `process`): the container sees the
//! PV's hostPath at its host path.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rafter_proto::v1::{Container, KeyToPath, Pod, Volume};

use crate::env::{ConfigError, PodObjects};
use crate::spec::Mount;
use crate::tmpfs;

/// Mode of a secret volume's files when the volume names no `defaultMode` (an item's
/// `mode`, then `defaultMode`, win as for configMaps): readable by the owner only.
const SECRET_DEFAULT_MODE: i32 = 0o600;

/// The agent's directory for one pod.
pub(crate) fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

fn volume_error(volume: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Volume {
        volume: volume.to_owned(),
        message: message.to_string(),
    }
}

/// A relative path that stays inside its directory.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Prepares every volume of `pod`; returns volume name → host path.
pub(crate) async fn prepare(
    pod: &Pod,
    objects: &mut PodObjects<'_>,
    pod_dir: &Path,
) -> Result<HashMap<String, PathBuf>, ConfigError> {
    let mut paths = HashMap::new();
    let volumes: &[Volume] = pod.spec.as_ref().map(|s| &s.volumes[..]).unwrap_or(&[]);
    for volume in volumes {
        let name = &volume.name;
        let dir = pod_dir.join("volumes").join(name);
        let path = if volume.empty_dir.is_some() {
            mkdir(&dir, name).await?;
            dir
        } else if let Some(host) = &volume.host_path {
            host_path(name, &host.path, &host.r#type).await?
        } else if let Some(cm) = &volume.config_map {
            let entries = match objects.config_map(&cm.name).await? {
                Some(e) => e,
                None if cm.optional.unwrap_or(false) => Vec::new(),
                None => {
                    return Err(ConfigError::ObjectNotFound {
                        kind: "configmap",
                        name: cm.name.clone(),
                    })
                }
            };
            write_projection(
                name,
                &dir,
                entries,
                &cm.items,
                cm.default_mode.unwrap_or(0o644),
            )
            .await?;
            dir
        } else if let Some(secret) = &volume.secret {
            let entries = match objects.secret(&secret.secret_name).await? {
                Some(e) => e,
                None if secret.optional.unwrap_or(false) => Vec::new(),
                None => {
                    return Err(ConfigError::ObjectNotFound {
                        kind: "secret",
                        name: secret.secret_name.clone(),
                    })
                }
            };
            tmpfs::mount_secret_dir(&dir)
                .await
                .map_err(|e| volume_error(name, e))?;
            write_projection(
                name,
                &dir,
                entries,
                &secret.items,
                secret.default_mode.unwrap_or(SECRET_DEFAULT_MODE),
            )
            .await?;
            dir
        } else if let Some(claim) = &volume.persistent_volume_claim {
            let (path, kind) = objects.claimed_host_path(name, &claim.claim_name).await?;
            host_path(name, &path, &kind).await?
        } else {
            return Err(volume_error(
                name,
                "only emptyDir, hostPath, configMap, secret and persistentVolumeClaim \
                 (bound to a hostPath PersistentVolume) volumes are supported",
            ));
        };
        paths.insert(name.clone(), path);
    }
    Ok(paths)
}

async fn mkdir(dir: &Path, volume: &str) -> Result<(), ConfigError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| volume_error(volume, format!("creating {}: {e}", dir.display())))
}

async fn host_path(volume: &str, path: &str, kind: &str) -> Result<PathBuf, ConfigError> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(volume_error(
            volume,
            format!("hostPath {path:?} is not absolute"),
        ));
    }
    let meta = tokio::fs::metadata(&p).await.ok();
    match kind {
        "DirectoryOrCreate" if meta.is_none() => mkdir(&p, volume).await?,
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = p.parent() {
                mkdir(parent, volume).await?;
            }
            tokio::fs::write(&p, b"")
                .await
                .map_err(|e| volume_error(volume, format!("creating {path}: {e}")))?;
        }
        "Directory" if !meta.as_ref().is_some_and(|m| m.is_dir()) => {
            return Err(volume_error(
                volume,
                format!("hostPath {path} is not a directory"),
            ))
        }
        "File" if !meta.as_ref().is_some_and(|m| m.is_file()) => {
            return Err(volume_error(
                volume,
                format!("hostPath {path} is not a file"),
            ))
        }
        _ => {}
    }
    Ok(p)
}

/// Writes `entries` (or the `items` subset, renamed) as files under `dir`, removing
/// files of keys that went away. Unchanged files are not rewritten.
pub(crate) async fn write_projection(
    volume: &str,
    dir: &Path,
    entries: Vec<(String, Vec<u8>)>,
    items: &[KeyToPath],
    default_mode: i32,
) -> Result<(), ConfigError> {
    mkdir(dir, volume).await?;
    let mut files: Vec<(String, Vec<u8>, i32)> = Vec::new();
    if items.is_empty() {
        for (k, v) in entries {
            files.push((k, v, default_mode));
        }
    } else {
        for item in items {
            let Some((_, v)) = entries.iter().find(|(k, _)| *k == item.key) else {
                return Err(volume_error(volume, format!("no key {:?}", item.key)));
            };
            files.push((
                item.path.clone(),
                v.clone(),
                item.mode.unwrap_or(default_mode),
            ));
        }
    }
    for (rel, content, mode) in &files {
        if !safe_relative(rel) {
            return Err(volume_error(
                volume,
                format!("path {rel:?} leaves the volume"),
            ));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            mkdir(parent, volume).await?;
        }
        if tokio::fs::read(&path).await.ok().as_deref() != Some(&content[..]) {
            let tmp = path.with_extension("rafter-tmp");
            let write = async {
                tokio::fs::write(&tmp, content).await?;
                tokio::fs::set_permissions(
                    &tmp,
                    std::fs::Permissions::from_mode(*mode as u32 & 0o777),
                )
                .await?;
                tokio::fs::rename(&tmp, &path).await
            };
            write
                .await
                .map_err(|e| volume_error(volume, format!("writing {}: {e}", path.display())))?;
        }
    }
    // Top-level files of keys that are gone.
    if let Ok(mut listing) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(entry)) = listing.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kept = files
                .iter()
                .any(|(rel, _, _)| rel == &name || rel.starts_with(&format!("{name}/")));
            if !kept {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
    Ok(())
}

/// The bind mounts of `container`, from its `volumeMounts` and the prepared volumes of
/// `pod`. A claim the pod mounts `readOnly` is read-only in every container.
pub(crate) fn mounts(
    pod: &Pod,
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<Mount>, ConfigError> {
    let pod_volumes: &[Volume] = pod.spec.as_ref().map(|s| &s.volumes[..]).unwrap_or(&[]);
    let forced_read_only = |name: &str| {
        pod_volumes.iter().any(|v| {
            v.name == name
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.read_only)
        })
    };
    container
        .volume_mounts
        .iter()
        .map(|vm| {
            let base = volumes.get(&vm.name).ok_or_else(|| {
                volume_error(
                    &vm.name,
                    format!("container {} mounts an undeclared volume", container.name),
                )
            })?;
            let host_path = if vm.sub_path.is_empty() {
                base.clone()
            } else if safe_relative(&vm.sub_path) {
                base.join(&vm.sub_path)
            } else {
                return Err(volume_error(
                    &vm.name,
                    format!("subPath {:?} leaves the volume", vm.sub_path),
                ));
            };
            Ok(Mount {
                host_path,
                container_path: vm.mount_path.clone(),
                read_only: vm.read_only || forced_read_only(&vm.name),
            })
        })
        .collect()
}

/// Removes everything the agent kept for a pod, its secret volumes' tmpfs mounts first
/// (a mount that cannot be detached is logged; the removal then fails on it and says so).
pub(crate) async fn remove_pod_dir(pod_dir: &Path) {
    tmpfs::unmount_under(pod_dir).await;
    if let Err(e) = tokio::fs::remove_dir_all(pod_dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %pod_dir.display(), error = %e, "pod directory not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projected_paths_must_stay_inside_the_volume() {
        assert!(safe_relative("a/b.conf"));
        assert!(!safe_relative("../etc/passwd"));
        assert!(!safe_relative("/etc/passwd"));
        assert!(!safe_relative(""));
    }

    #[test]
    fn a_claim_mounted_read_only_by_the_pod_is_read_only_in_every_container() {
        use rafter_proto::v1::{PersistentVolumeClaimVolumeSource, PodSpec, VolumeMount};
        let claim = |name: &str, read_only: bool| Volume {
            name: name.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name.into(),
                read_only,
            }),
            ..Default::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                volumes: vec![claim("ro", true), claim("rw", false)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mount = |name: &str| VolumeMount {
            name: name.into(),
            mount_path: format!("/{name}"),
            ..Default::default()
        };
        let container = Container {
            name: "app".into(),
            volume_mounts: vec![mount("ro"), mount("rw")],
            ..Default::default()
        };
        let volumes = HashMap::from([
            ("ro".to_string(), PathBuf::from("/pv/ro")),
            ("rw".to_string(), PathBuf::from("/pv/rw")),
        ]);
        let got = mounts(&pod, &container, &volumes).unwrap();
        let flags: Vec<bool> = got.iter().map(|m| m.read_only).collect();
        assert_eq!(flags, vec![true, false]);
    }

    #[tokio::test]
    async fn projection_writes_keys_as_files_and_drops_removed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("cfg");
        let entries = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ];
        write_projection("cfg", &vol, entries, &[], 0o644)
            .await
            .unwrap();
        assert_eq!(std::fs::read(vol.join("a")).unwrap(), b"1");
        let entries = vec![("a".to_string(), b"3".to_vec())];
        write_projection("cfg", &vol, entries, &[], 0o644)
            .await
            .unwrap();
        assert_eq!(std::fs::read(vol.join("a")).unwrap(), b"3");
        assert!(!vol.join("b").exists());
    }
}
