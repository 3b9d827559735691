//! The agent's image endpoint: the internal gRPC service `rafter.agent.v1.AgentImages`,
//! which the masters' gateways call for `rafter image import` and `rafter image ls`. It is
//! served on the same listener, with the same checks, as the log endpoint (`log_server`).
//!
//! ```text
//!   gateway ─► AgentImages.Import(stream: {file_name, size} + pieces)
//!                │ spooled to DATA_DIR/image-imports/<file>.partN (removed in any case)
//!                │ all `size` bytes arrived?  no ─► InvalidArgument, nothing imported
//!                │ an image archive naming images (index.json / manifest.json)?
//!                │                            no ─► InvalidArgument naming the file
//!                ▼
//!              runtime.import_image(spool) ─► pinned.add(names) ─► ImportedImages{names}
//!
//!   gateway ─► AgentImages.List ─► runtime.list_images() ─► NodeImages (pinned marked)
//! ```
//!
//! An archive is imported only once it has wholly arrived and reads as an image archive,
//! so a cut stream or a garbage file leaves nothing behind. Owns the spool files and the
//! wire; the import itself is the runtime's, and who may import is the gateway's to
//! decide (it authorises `create` on `nodes/images`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rafter_proto::agent::agent_images_server::AgentImages;
use rafter_proto::agent::{ImportedImages, ListImagesRequest};
use rafter_proto::api;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::error::RuntimeError;
use crate::image::names_in_oci_tarball;
use crate::pinned_images::PinnedImages;
use crate::runtime::ContainerRuntime;

/// Where archives are spooled under the agent's data directory.
pub(crate) const SPOOL_DIR: &str = "image-imports";

/// The `AgentImages` service of one node.
pub(crate) struct ImageServer {
    node_name: String,
    runtime: Arc<dyn ContainerRuntime>,
    pinned: Arc<PinnedImages>,
    spool_dir: PathBuf,
    next: AtomicU64,
}

/// A spooled archive, removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %self.0.display(), error = %e, "a spooled image archive was not removed");
            }
        }
    }
}

impl ImageServer {
    pub(crate) fn new(
        node_name: String,
        runtime: Arc<dyn ContainerRuntime>,
        pinned: Arc<PinnedImages>,
        data_dir: &std::path::Path,
    ) -> ImageServer {
        ImageServer {
            node_name,
            runtime,
            pinned,
            spool_dir: data_dir.join(SPOOL_DIR),
            next: AtomicU64::new(0),
        }
    }

    /// Receives the archive into a spool file; the file, its name as the user gave it.
    async fn receive(
        &self,
        mut stream: Streaming<api::ImageImportRequest>,
    ) -> Result<(Spool, String), Status> {
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the import sent no archive"))?;
        let file_name = first.file_name.clone();
        if file_name.is_empty() {
            return Err(Status::invalid_argument(
                "the import's first message names no archive",
            ));
        }
        let internal = |what: &str, e: std::io::Error| {
            Status::internal(format!(
                "node {}: {what} {}: {e}",
                self.node_name,
                self.spool_dir.display()
            ))
        };
        tokio::fs::create_dir_all(&self.spool_dir)
            .await
            .map_err(|e| internal("creating", e))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let spool = Spool(
            self.spool_dir
                .join(format!("{}-{n}.tar", std::process::id())),
        );
        let mut file = tokio::fs::File::create(&spool.0)
            .await
            .map_err(|e| internal("writing in", e))?;
        let size = first.size;
        let mut received: u64 = 0;
        let mut piece = Some(first);
        while let Some(message) = piece.take() {
            received = received.saturating_add(message.data.len() as u64);
            if received > size {
                return Err(Status::invalid_argument(format!(
                    "{file_name} is longer than the {size} bytes announced: nothing was imported"
                )));
            }
            file.write_all(&message.data)
                .await
                .map_err(|e| internal("writing in", e))?;
            piece = stream.message().await?;
        }
        file.sync_all()
            .await
            .map_err(|e| internal("writing in", e))?;
        drop(file);
        if received != size {
            return Err(Status::invalid_argument(format!(
                "{file_name} was cut short: {received} of {size} bytes arrived; nothing was imported"
            )));
        }
        Ok((spool, file_name))
    }
}

/// The names an archive holds, or InvalidArgument naming the archive as the user gave it.
fn archive_names(spool: &std::path::Path, file_name: &str) -> Result<Vec<String>, Status> {
    let names = names_in_oci_tarball(spool).map_err(|e| {
        Status::invalid_argument(match e {
            RuntimeError::InvalidSpec { message, .. } => format!("{file_name}: {message}"),
            RuntimeError::Io { source, .. } => {
                format!("{file_name} cannot be read as a tar archive: {source}")
            }
            other => format!("{file_name}: {other}"),
        })
    })?;
    if names.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{file_name} names no image (a docker archive needs RepoTags in manifest.json, an \
             OCI layout an image name annotation in index.json): nothing was imported"
        )));
    }
    Ok(names)
}

#[tonic::async_trait]
impl AgentImages for ImageServer {
    async fn import(
        &self,
        request: Request<Streaming<api::ImageImportRequest>>,
    ) -> Result<Response<ImportedImages>, Status> {
        let (spool, file_name) = self.receive(request.into_inner()).await?;
        let path = spool.0.clone();
        let name = file_name.clone();
        let names = tokio::task::spawn_blocking(move || archive_names(&path, &name))
            .await
            .map_err(|e| Status::internal(format!("reading {file_name}: {e}")))??;
        let imported = self.runtime.import_image(&spool.0).await.map_err(|e| {
            Status::failed_precondition(format!(
                "node {}: the {} runtime did not import {file_name}: {e}",
                self.node_name,
                self.runtime.backend()
            ))
        })?;
        drop(spool);
        // What the runtime reports is what it imported; the archive's names if it says none.
        let images = if imported.is_empty() { names } else { imported };
        self.pinned.add(&images).await.map_err(|e| {
            Status::internal(format!(
                "node {}: {file_name} was imported but not pinned: {e}",
                self.node_name
            ))
        })?;
        info!(archive = %file_name, images = ?images, "image archive imported and pinned");
        Ok(Response::new(ImportedImages { images }))
    }

    async fn list(
        &self,
        _request: Request<ListImagesRequest>,
    ) -> Result<Response<api::NodeImages>, Status> {
        let images = self.runtime.list_images().await.map_err(|e| {
            Status::unavailable(format!(
                "node {}: the {} runtime did not list its images: {e}",
                self.node_name,
                self.runtime.backend()
            ))
        })?;
        let mut images: Vec<api::Image> = images
            .into_iter()
            .map(|i| api::Image {
                pinned: self.pinned.protects(&i),
                id: i.id,
                repo_tags: i.repo_tags,
                repo_digests: Vec::new(),
                size: i.size,
            })
            .collect();
        images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
        Ok(Response::new(api::NodeImages {
            node: self.node_name.clone(),
            error: String::new(),
            images,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::agent::agent_images_client::AgentImagesClient;
    use tokio::sync::watch;

    /// A docker archive whose manifest names `name` (and holds nothing else).
    fn docker_archive(name: &str) -> Vec<u8> {
        let manifest = format!(r#"[{{"Config":"c.json","RepoTags":["{name}"],"Layers":[]}}]"#);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "manifest.json", manifest.as_bytes())
            .unwrap();
        builder.into_inner().unwrap()
    }

    /// The pieces of an import of `data` announced as `size` bytes, named `file`.
    fn pieces(file: &str, size: u64, data: &[u8]) -> Vec<api::ImageImportRequest> {
        let mut out = vec![api::ImageImportRequest {
            file_name: file.into(),
            size,
            data: Vec::new(),
        }];
        out.extend(data.chunks(7).map(|c| api::ImageImportRequest {
            data: c.to_vec(),
            ..Default::default()
        }));
        out
    }

    #[tokio::test]
    async fn only_a_whole_image_archive_is_imported_and_what_it_names_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn ContainerRuntime> =
            Arc::new(crate::HollowRuntime::new(crate::HollowConfig::default()));
        let pinned_file = dir.path().join(crate::pinned_images::PINNED_IMAGES_FILE);
        let pinned = Arc::new(
            PinnedImages::load(pinned_file.clone(), Vec::new())
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(crate::log_server::serve(
            listener,
            dir.path().join("logs"),
            crate::metrics_server::MetricsServer::new("n1".into(), runtime.clone()),
            ImageServer::new("n1".into(), runtime.clone(), pinned.clone(), dir.path()),
            crate::exec_server::ExecServer::new(runtime),
            None,
            stopped,
        ));
        let mut client = AgentImagesClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let import = |requests: Vec<api::ImageImportRequest>| {
            let mut client = client.clone();
            async move { client.import(futures::stream::iter(requests)).await }
        };

        // Not a tar with a manifest or an index: refused, naming the file.
        let garbage = b"not a tar archive\n".repeat(40);
        let refused = import(pieces("garbage.tar", garbage.len() as u64, &garbage))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("garbage.tar"),
            "{}",
            refused.message()
        );

        // Fewer bytes than announced: nothing imported.
        let archive = docker_archive("docker.io/local/app:1");
        let refused = import(pieces("app.tar", archive.len() as u64 + 1, &archive))
            .await
            .unwrap_err();
        assert!(
            refused.message().contains("cut short"),
            "{}",
            refused.message()
        );
        assert!(!pinned.names().contains("docker.io/local/app:1"));

        // The whole archive: imported, and pinned in memory and in the file.
        let imported = import(pieces("app.tar", archive.len() as u64, &archive))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(imported.images, ["docker.io/local/app:1"]);
        assert!(pinned.names().contains("docker.io/local/app:1"));
        let text = std::fs::read_to_string(&pinned_file).unwrap();
        assert!(text.contains("docker.io/local/app:1"), "{text}");
        // No spooled archive is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join(SPOOL_DIR))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let listed = client
            .list(ListImagesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.node, "n1");

        let _ = stop.send(true);
        let _ = server.await;
    }
}
