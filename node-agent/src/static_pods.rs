//! Static pods: Pod manifests in the agent's `--manifest-dir`, run without the API, and
//! their mirror pods, which show them in the API when it is reachable.
//!
//! ```text
//!   <manifest-dir>/*.yaml|*.yml|*.json ──parse, defaults──► Pod "<name>-<node>",
//!        uid "static-<hash>", spec.nodeName = node ──► a pod worker (Source::Static)
//!   every round, API reachable: mirror pod missing ─► create it with the annotation
//!        kubernetes.io/config.mirror=<hash>; a mirror being deleted ─► delete it now
//!        (grace 0); it is created again next round, as long as the manifest exists
//! ```
//!
//! Owns reading the directory (in `spawn_blocking`) and the mirror objects. It must not
//! run containers (the workers do) nor treat mirror pods from the API as pods to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rafter_proto::v1::Pod;
use rafter_proto::{apply_defaults, parse_manifests, Kind, Object};
use tracing::{info, warn};

use crate::api::{ApiClient, ApiError};
use crate::pod_worker::MIRROR_ANNOTATION;

/// Annotation with the static pod's config hash.
pub const CONFIG_HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// Annotation naming where a pod's config came from (`file`).
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// FNV-1a, 64 bits: a stable hash of a manifest (not for security).
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Turns one parsed manifest into the static pod this node runs.
pub(crate) fn static_pod(mut pod: Pod, node: &str) -> Pod {
    let content = serde_json::to_vec(&pod).unwrap_or_default();
    let mut object = Object::Pod(pod.clone());
    apply_defaults(&mut object);
    if let Object::Pod(defaulted) = object {
        pod = defaulted;
    }
    let hash = format!(
        "{:016x}",
        fnv64(&[node.as_bytes(), b"\0", &content].concat())
    );
    let meta = pod.metadata.get_or_insert_with(Default::default);
    meta.name = format!("{}-{node}", meta.name);
    if meta.namespace.is_empty() {
        meta.namespace = "default".to_owned();
    }
    meta.uid = format!("static-{hash}");
    meta.resource_version.clear();
    meta.annotations
        .insert(CONFIG_HASH_ANNOTATION.to_owned(), hash);
    meta.annotations
        .insert(CONFIG_SOURCE_ANNOTATION.to_owned(), "file".to_owned());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = node.to_owned();
    pod.status = None;
    pod
}

/// Reads every manifest of `dir`: uid → static pod. Bad files are logged and skipped.
pub(crate) async fn load(dir: &Path, node: &str) -> BTreeMap<String, Pod> {
    let dir: PathBuf = dir.to_owned();
    let node = node.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let mut pods = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return pods;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let is_manifest = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if !is_manifest {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for doc in parse_manifests(&text, &path.display().to_string()) {
                match doc {
                    Ok(d) => match d.object {
                        Object::Pod(p) => {
                            let pod = static_pod(p, &node);
                            let uid = pod
                                .metadata
                                .as_ref()
                                .map(|m| m.uid.clone())
                                .unwrap_or_default();
                            pods.insert(uid, pod);
                        }
                        other => {
                            warn!(file = %path.display(), kind = %other.kind(), "static manifests may hold only Pods")
                        }
                    },
                    Err(e) => warn!(error = %e, "static pod manifest skipped"),
                }
            }
        }
        pods
    });
    read.await.unwrap_or_default()
}

/// Makes sure each static pod has its mirror pod in the API.
pub(crate) async fn sync_mirrors(
    api: &dyn ApiClient,
    pods: &BTreeMap<String, Pod>,
) -> Result<(), ApiError> {
    for pod in pods.values() {
        let meta = pod.metadata.clone().unwrap_or_default();
        let hash = meta
            .annotations
            .get(CONFIG_HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        match api.get(Kind::Pod, &meta.namespace, &meta.name).await {
            Ok(Object::Pod(existing)) => {
                let em = existing.metadata.unwrap_or_default();
                let stale = em.annotations.get(MIRROR_ANNOTATION) != Some(&hash);
                if em.deletion_timestamp.is_some()
                    || (stale && em.annotations.contains_key(MIRROR_ANNOTATION))
                {
                    api.delete_pod(&meta.namespace, &meta.name, &em.uid)
                        .await
                        .or_else(ignore_gone)?;
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let mut mirror = pod.clone();
        let mm = mirror.metadata.get_or_insert_with(Default::default);
        mm.uid.clear();
        mm.annotations.insert(MIRROR_ANNOTATION.to_owned(), hash);
        match api.create(Object::Pod(mirror)).await {
            Ok(_) => {
                info!(pod = %format!("{}/{}", meta.namespace, meta.name), "mirror pod created")
            }
            Err(ApiError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn ignore_gone(e: ApiError) -> Result<(), ApiError> {
    match e {
        ApiError::NotFound(_) | ApiError::Conflict(_) => Ok(()),
        e => Err(e),
    }
}

/// True for a mirror pod (the API's shadow of a static pod: never run from the API).
pub(crate) fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .as_ref()
        .is_some_and(|m| m.annotations.contains_key(MIRROR_ANNOTATION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_pod_is_named_after_its_node_with_a_stable_uid() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let parse = || match parse_manifests(text, "t").remove(0).unwrap().object {
            Object::Pod(p) => p,
            _ => unreachable!(),
        };
        let a = static_pod(parse(), "n1");
        let b = static_pod(parse(), "n1");
        let meta = a.metadata.as_ref().unwrap();
        assert_eq!(meta.name, "web-n1");
        assert_eq!(meta.namespace, "default");
        assert!(meta.uid.starts_with("static-"));
        assert_eq!(meta.uid, b.metadata.unwrap().uid);
        assert_eq!(a.spec.as_ref().unwrap().node_name, "n1");
        assert_ne!(meta.uid, static_pod(parse(), "n2").metadata.unwrap().uid);
    }
}
