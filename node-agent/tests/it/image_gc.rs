//! Image garbage collection and the images directory on a private containerd: with
//! thresholds that force collection, unused images go, and images a container uses (even
//! another agent's), the sandbox image and the images imported from `--images-dir` stay.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use node_agent::{ContainerRuntime, ContainerdConfig, ContainerdRuntime, ImageGcPolicy};
use rafter_proto::v1::Container;
use sha2::{Digest, Sha256};

use crate::agent::{delete_and_wait, pod, running};
use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, PrivateContainerd, BUSYBOX};

/// Writes an OCI layout archive of a one-file image named `name` (distinct content per
/// name, so a distinct image id).
fn tiny_oci_archive(path: &Path, name: &str) {
    let digest = |data: &[u8]| format!("sha256:{:x}", Sha256::digest(data));
    let mut layer = tar::Builder::new(Vec::new());
    let content = format!("image {name}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    layer
        .append_data(&mut header, "marker", content.as_bytes())
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/marker"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    })
    .to_string();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(manifest.as_bytes()), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name},
        }],
    })
    .to_string();
    let mut out = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, name, data).unwrap();
    };
    for blob in [&layer, config.as_bytes(), manifest.as_bytes()] {
        add(&format!("blobs/sha256/{}", &digest(blob)[7..]), blob);
    }
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", index.as_bytes());
    out.into_inner().unwrap().flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_gc_removes_unused_images_and_keeps_used_pinned_and_airgap_ones() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    crate::harness::capture_logs();
    let bridge = format!("rgc{}", std::process::id() % 100_000);
    let (_containerd, sock) = PrivateContainerd::start(&bridge, None);
    let rt = Arc::new(
        ContainerdRuntime::connect(ContainerdConfig::new(sock))
            .await
            .unwrap(),
    );
    let files = tempfile::tempdir().unwrap();
    let import = |file: &str, name: &str| {
        let archive = files.path().join(file);
        tiny_oci_archive(&archive, name);
        let rt = rt.clone();
        let name = name.to_owned();
        async move {
            assert_eq!(rt.import_image(&archive).await.unwrap(), [name]);
        }
    };
    import("a.tar", "docker.io/gc/unused-a:1").await;
    import("b.tar", "docker.io/gc/unused-b:1").await;
    let airgap = files.path().join("images");
    std::fs::create_dir(&airgap).unwrap();
    tiny_oci_archive(&airgap.join("app.tar"), "docker.io/airgap/app:1");

    // One agent (no collection) runs a pod of busybox.
    let cluster = Cluster::start().await;
    let runner = TestNode::start(&cluster, rt.clone()).await;
    let mut user = pod(
        "user",
        &runner.name,
        vec![Container {
            name: "app".into(),
            image: BUSYBOX.into(),
            command: vec!["sleep".into(), "3600".into()],
            ..Default::default()
        }],
    );
    user.spec.as_mut().unwrap().host_network = true;
    cluster.create_pod(user).await;
    cluster.wait_pod("user", "Running", running).await;

    // Another agent on the same containerd collects everything it may (high 1%, low 0%),
    // once it has seen an image unused for a second. That minimum age is what keeps a
    // collection from removing an image while `ctr images import` is still unpacking it
    // (the import of c below, made while this agent collects): with no minimum age, an
    // import lost that race now and then ("content digest … not found").
    let images = airgap.clone();
    let collector = TestNode::start_with(&cluster, rt.clone(), move |c| {
        c.images_dir = Some(images.clone());
        c.image_gc = Some(ImageGcPolicy {
            high_percent: 1,
            low_percent: 0,
            period: Duration::from_millis(200),
            min_age: Duration::from_secs(1),
            ..ImageGcPolicy::default()
        });
    })
    .await;
    for gone in ["docker.io/gc/unused-a:1", "docker.io/gc/unused-b:1"] {
        eventually(&format!("{gone} to be collected"), || async {
            rt.image_status(gone).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    // One more image, collected by a later pass: every pass until then kept the others.
    import("c.tar", "docker.io/gc/unused-c:1").await;
    eventually(
        "a later pass to collect docker.io/gc/unused-c:1",
        || async {
            rt.image_status("docker.io/gc/unused-c:1")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    for kept in [BUSYBOX, "docker.io/local/pause:1", "docker.io/airgap/app:1"] {
        assert!(
            rt.image_status(kept).await.unwrap().is_some(),
            "{kept} was collected"
        );
    }
    delete_and_wait(&cluster, &runner, "user").await;
    drop(collector);
}
