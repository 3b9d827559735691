//! [`ImagePuller`]: gets a container's image onto the node as its `imagePullPolicy` says,
//! with the logins of the pod's `imagePullSecrets` (admission copies the ServiceAccount's
//! into a pod that names none, as Kubernetes does), and says what happened in the pod's
//! Events.
//!
//! ```text
//!   policy (container's, else Always for :latest / no tag, IfNotPresent otherwise)
//!     Never        ── present? ─ yes ─► run │ no ─► ErrImageNeverPull
//!     IfNotPresent ── present? ─ yes ─► Pulled "already present" │ no ─┐
//!     Always       ───────────────────────────────────────────────────┴► Pulling
//!        logins: pull Secrets matching the image's registry (most specific first),
//!                else the agent's registries.yaml login for it, else anonymous;
//!        each tried in turn until one pulls ─► Pulled "in 1.2s"
//!                                        └──► Failed "<registry's reason>" ─► ErrImagePull
//! ```
//!
//! The pod worker blocks the container with the returned reason and retries after its
//! back-off (shown as `ImagePullBackOff`). Owns the policy and the logins; it must not
//! decide back-off or status, which are the worker's and `pod_sync`'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use rafter_proto::v1::{Container, Pod};
use rafter_proto::{image_pull_policy, Kind, Object};
use tracing::{info, warn};

use crate::api::ApiClient;
use crate::error::RuntimeError;
use crate::events::{PodEvents, NORMAL, WARNING};
use crate::pull_secrets::{self, DockerCredential, PullAuth};
use crate::registries::Registries;
use crate::runtime::ContainerRuntime;

/// Waiting reason of a pull that failed (then `ImagePullBackOff` while backing off).
pub(crate) const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// Waiting reason of a missing image under policy Never.
pub(crate) const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";

/// Why the image is not there: a waiting reason and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullFailure {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// What pulls need, shared by the pod workers.
pub(crate) struct ImagePuller {
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) api: Arc<dyn ApiClient>,
    pub(crate) registries: Arc<Registries>,
    pub(crate) events: PodEvents,
}

impl ImagePuller {
    /// Makes `container`'s image present as its pull policy says.
    pub(crate) async fn ensure(&self, pod: &Pod, container: &Container) -> Result<(), PullFailure> {
        let image = container.image.as_str();
        let policy = if container.image_pull_policy.is_empty() {
            image_pull_policy(image)
        } else {
            container.image_pull_policy.as_str()
        };
        let present = match self.runtime.image_status(image).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                return Err(PullFailure {
                    reason: ERR_IMAGE_PULL,
                    message: format!("cannot ask the runtime for image {image:?}: {e}"),
                })
            }
        };
        match policy {
            "Never" if present => return Ok(()),
            "Never" => {
                let message =
                    format!("Container image {image:?} is not present with pull policy of Never");
                self.event(
                    pod,
                    container,
                    WARNING,
                    ERR_IMAGE_NEVER_PULL,
                    message.clone(),
                );
                return Err(PullFailure {
                    reason: ERR_IMAGE_NEVER_PULL,
                    message,
                });
            }
            "IfNotPresent" if present => {
                let message = format!("Container image {image:?} already present on machine");
                self.event(pod, container, NORMAL, "Pulled", message);
                return Ok(());
            }
            _ => {}
        }
        self.pull(pod, container).await
    }

    async fn pull(&self, pod: &Pod, container: &Container) -> Result<(), PullFailure> {
        let image = container.image.as_str();
        self.event(
            pod,
            container,
            NORMAL,
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        let mut logins: Vec<Option<PullAuth>> =
            pull_secrets::for_image(&self.pod_credentials(pod).await, image)
                .into_iter()
                .map(Some)
                .collect();
        if logins.is_empty() {
            let (host, _) = pull_secrets::registry_of(image);
            logins.push(self.registries.login_for(&host));
        }
        let started = Instant::now();
        let mut last_error = None;
        for login in &logins {
            match self.runtime.pull_image(image, login.as_ref()).await {
                Ok(info) => {
                    let took = started.elapsed();
                    info!(image, id = %info.id, took_ms = took.as_millis() as u64, "image pulled");
                    let message = format!(
                        "Successfully pulled image {image:?} in {:.3}s. Image size: {} bytes.",
                        took.as_secs_f64(),
                        info.size
                    );
                    self.event(pod, container, NORMAL, "Pulled", message);
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        let detail = match last_error {
            Some(RuntimeError::PullFailed { message, .. }) => message,
            Some(e) => e.to_string(),
            None => "no pull was attempted".to_owned(),
        };
        let message = format!("Failed to pull image {image:?}: {detail}");
        self.event(pod, container, WARNING, "Failed", message.clone());
        self.event(
            pod,
            container,
            WARNING,
            "Failed",
            format!("Error: {ERR_IMAGE_PULL}"),
        );
        Err(PullFailure {
            reason: ERR_IMAGE_PULL,
            message,
        })
    }

    /// The logins of the pod's pull Secrets, in the order the pod names them. A Secret that
    /// is missing or unreadable is skipped with a warning, as the kubelet does (the pull
    /// may still work anonymously, or fail and say why).
    async fn pod_credentials(&self, pod: &Pod) -> Vec<DockerCredential> {
        let Some(spec) = &pod.spec else {
            return Vec::new();
        };
        let namespace = pod
            .metadata
            .as_ref()
            .map(|m| m.namespace.as_str())
            .unwrap_or_default();
        let mut out = Vec::new();
        for reference in &spec.image_pull_secrets {
            let name = reference.name.as_str();
            let secret = match self.api.get(Kind::Secret, namespace, name).await {
                Ok(Object::Secret(secret)) => secret,
                Ok(_) => continue,
                Err(e) => {
                    warn!(namespace, secret = name, error = %e,
                        "image pull secret not readable; pulling without it");
                    continue;
                }
            };
            let mut data = BTreeMap::new();
            for (key, value) in &secret.data {
                match base64::engine::general_purpose::STANDARD.decode(value) {
                    Ok(bytes) => {
                        data.insert(key.clone(), bytes);
                    }
                    Err(_) => warn!(namespace, secret = name, key, "secret value is not base64"),
                }
            }
            match pull_secrets::credentials(&secret.r#type, &data) {
                Ok(creds) => out.extend(creds),
                Err(e) => warn!(namespace, secret = name, error = %e,
                    "image pull secret unusable; pulling without it"),
            }
        }
        out
    }

    fn event(
        &self,
        pod: &Pod,
        container: &Container,
        event_type: &str,
        reason: &str,
        message: String,
    ) {
        self.events
            .container(pod, &container.name, event_type, reason, message);
    }
}
