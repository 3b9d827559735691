//! Images come from local OCI tarballs (scripts/build-images.sh), never from a registry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use node_agent::{ContainerRuntime, ProcessConfig, ProcessRuntime};

use crate::harness::{containerd, BUSYBOX};

/// Builds the test images into a temp dir, or `None` (with a notice) where the machine
/// lacks busybox-static.
fn build_images() -> Option<(tempfile::TempDir, PathBuf)> {
    if !Path::new("/bin/busybox").exists() {
        println!("SKIPPED: /bin/busybox missing (apt-get install busybox-static)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-images.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{} failed", script.display());
    let tar = dir.path().join("busybox.tar");
    Some((dir, tar))
}

#[tokio::test]
async fn importing_an_oci_tarball_makes_its_image_present_on_the_process_backend() {
    let Some((_dir, tar)) = tokio::task::spawn_blocking(build_images).await.unwrap() else {
        return;
    };
    let rt: Arc<dyn ContainerRuntime> = Arc::new(ProcessRuntime::new(ProcessConfig {
        images: Vec::new(),
        ..ProcessConfig::default()
    }));
    assert!(rt.image_status(BUSYBOX).await.unwrap().is_none());
    let names = rt.import_image(&tar).await.unwrap();
    assert_eq!(names, vec![BUSYBOX.to_string()]);
    assert!(rt.ensure_image("local/busybox:1").await.is_ok());
}

#[tokio::test]
async fn importing_an_oci_tarball_into_containerd_is_idempotent() {
    let Some(rt) = containerd().await else { return };
    let Some((_dir, tar)) = tokio::task::spawn_blocking(build_images).await.unwrap() else {
        return;
    };
    let names = rt.import_image(&tar).await.unwrap();
    assert_eq!(names, vec![BUSYBOX.to_string()]);
    let info = rt.ensure_image(BUSYBOX).await.unwrap();
    assert!(info.id.starts_with("sha256:"), "{info:?}");
    assert!(info.repo_tags.iter().any(|t| t == BUSYBOX), "{info:?}");
}

#[tokio::test]
async fn a_runtime_that_is_down_is_a_retryable_unavailable_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_agent::ContainerdConfig::new(dir.path().join("no.sock"));
    let rt = node_agent::ContainerdRuntime::new(config).unwrap();
    let err = rt.version().await.unwrap_err();
    assert!(
        matches!(err, node_agent::RuntimeError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
