//! The ServiceAccount volume of a pod, as the kubelet projects it: a token for the pod's
//! ServiceAccount (bound to the pod), the cluster CA and the pod's namespace, at
//! `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}` in every
//! container, refreshed at 80% of the token's lifetime.
//!
//! ```text
//!   automountServiceAccountToken: pod's, else the ServiceAccount's, else true
//!     │ true
//!     ▼
//!   TokenRequest (serviceaccounts/token, boundPod = the pod) ─► token, expiry
//!     ▼
//!   <data-dir>/pods/<uid>/volumes/kube-api-access  (tmpfs, as secret volumes: `tmpfs`)
//!     token  ca.crt  namespace        ──bind (read-only)──► every container's mount path
//!   refresh at issued + 80% of the lifetime: a new token written in place
//! ```
//!
//! Owns that decision, the request and the files. A pod whose ServiceAccount does not
//! exist is a `CreateContainerConfigError`, retried with back-off, as the kubelet's; the
//! `default` of a namespace made a moment ago is first waited for a few seconds (the
//! ServiceAccounts controller makes it within milliseconds). An agent given
//! no CA to project (`AgentConfig::service_account_ca`) mounts nothing. It must not decide
//! when containers start (the pod worker does).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rafter_proto::api::TokenRequest;
use rafter_proto::v1::{Container, Pod};
use rafter_proto::well_known::{DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT_MOUNT_PATH};
use rafter_proto::{Kind, Object, Timestamp};

use crate::api::{ApiClient, ApiError};
use crate::env::ConfigError;
use crate::spec::Mount;
use crate::tmpfs;
use crate::volumes;

/// The directory of the volume under the pod's `volumes/`.
pub(crate) const VOLUME: &str = "kube-api-access";
/// The lifetime asked for each token (the server's default).
const TOKEN_SECONDS: i64 = 3600;
/// How long a missing `default` ServiceAccount is waited for before the container start
/// is backed off.
const DEFAULT_ACCOUNT_PATIENCE: Duration = Duration::from_secs(3);
/// The mode of the projected files: readable by any user the container runs as, as
/// Kubernetes' projected ServiceAccount volume.
const FILE_MODE: i32 = 0o644;

/// A projected token: where it is and when to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Projected {
    /// The volume's directory on the host.
    pub(crate) dir: PathBuf,
    /// When to ask for a new token (80% of the lifetime).
    pub(crate) refresh_at: SystemTime,
}

fn config_error(message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Volume {
        volume: VOLUME.to_owned(),
        message: message.to_string(),
    }
}

/// The ServiceAccount `pod` runs as.
pub(crate) fn account_of(pod: &Pod) -> &str {
    match pod.spec.as_ref().map(|s| s.service_account_name.as_str()) {
        Some(name) if !name.is_empty() => name,
        _ => DEFAULT_SERVICE_ACCOUNT,
    }
}

/// Whether `pod` gets a token: its own `automountServiceAccountToken` if set, else its
/// ServiceAccount's, else yes. `None`: the pod's choice is not enough and the
/// ServiceAccount must be read.
pub(crate) fn pod_choice(pod: &Pod) -> Option<bool> {
    pod.spec
        .as_ref()
        .and_then(|s| s.automount_service_account_token)
}

/// Whether `pod` gets a token, reading its ServiceAccount when the pod does not say.
async fn wanted(api: &dyn ApiClient, pod: &Pod, namespace: &str) -> Result<bool, ConfigError> {
    if let Some(choice) = pod_choice(pod) {
        return Ok(choice);
    }
    let name = account_of(pod);
    let patience = tokio::time::Instant::now() + DEFAULT_ACCOUNT_PATIENCE;
    let read = loop {
        match api.get(Kind::ServiceAccount, namespace, name).await {
            Err(ApiError::NotFound(_))
                if name == DEFAULT_SERVICE_ACCOUNT && tokio::time::Instant::now() < patience =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    match read {
        Ok(Object::ServiceAccount(sa)) => Ok(sa.automount_service_account_token != Some(false)),
        Ok(_) => Err(config_error(
            "the API returned another kind for a serviceaccount",
        )),
        Err(ApiError::NotFound(_)) => Err(ConfigError::ObjectNotFound {
            kind: "serviceaccount",
            name: name.to_owned(),
        }),
        Err(e) => Err(config_error(format!(
            "reading serviceaccount {name:?}: {e}"
        ))),
    }
}

/// The time 80% of the way from `now` to `expires`.
pub(crate) fn refresh_time(now: SystemTime, expires: SystemTime) -> SystemTime {
    let lifetime = expires.duration_since(now).unwrap_or(Duration::ZERO);
    now + lifetime.mul_f64(0.8)
}

/// Projects the token volume of `pod` under `pod_dir` (a fresh token each call), or
/// `None` when the pod gets none.
pub(crate) async fn project(
    api: &dyn ApiClient,
    pod: &Pod,
    pod_dir: &Path,
    ca_pem: &str,
) -> Result<Option<Projected>, ConfigError> {
    let meta = pod.metadata.clone().unwrap_or_default();
    if !wanted(api, pod, &meta.namespace).await? {
        return Ok(None);
    }
    let account = account_of(pod);
    let request = TokenRequest {
        namespace: meta.namespace.clone(),
        service_account: account.to_owned(),
        audiences: Vec::new(),
        expiration_seconds: TOKEN_SECONDS,
        bound_pod_name: meta.name.clone(),
        bound_pod_uid: meta.uid.clone(),
    };
    // The `default` account of a namespace made a moment ago may still be on its way from
    // the ServiceAccounts controller: ask again for a short while before backing off.
    let patience = tokio::time::Instant::now() + DEFAULT_ACCOUNT_PATIENCE;
    let answer = loop {
        match api.create_token(request.clone()).await {
            Err(ApiError::NotFound(_))
                if account == DEFAULT_SERVICE_ACCOUNT && tokio::time::Instant::now() < patience =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other,
        }
    }
    .map_err(|e| match e {
        ApiError::NotFound(_) => ConfigError::ObjectNotFound {
            kind: "serviceaccount",
            name: account.to_owned(),
        },
        e => config_error(format!(
            "requesting a token for serviceaccount {account:?}: {e}"
        )),
    })?;
    let now = SystemTime::now();
    let expires = Timestamp::parse(&answer.expiration_timestamp)
        .and_then(|t| u64::try_from(t.unix_millis()).ok())
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap_or(now + Duration::from_secs(TOKEN_SECONDS.unsigned_abs()));
    let dir = pod_dir.join("volumes").join(VOLUME);
    tmpfs::mount_secret_dir(&dir).await.map_err(config_error)?;
    let files = vec![
        ("token".to_owned(), answer.token.into_bytes()),
        ("ca.crt".to_owned(), ca_pem.as_bytes().to_vec()),
        ("namespace".to_owned(), meta.namespace.into_bytes()),
    ];
    volumes::write_projection(VOLUME, &dir, files, &[], FILE_MODE).await?;
    Ok(Some(Projected {
        dir,
        refresh_at: refresh_time(now, expires),
    }))
}

/// The mount of the projected volume in `container`, unless the container mounts a
/// volume of its own at that path.
pub(crate) fn mount(projected: &Projected, container: &Container) -> Option<Mount> {
    let taken = container
        .volume_mounts
        .iter()
        .any(|m| m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT_PATH);
    (!taken).then(|| Mount {
        host_path: projected.dir.clone(),
        container_path: SERVICE_ACCOUNT_MOUNT_PATH.to_owned(),
        read_only: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1::{PodSpec, VolumeMount};

    #[test]
    fn the_token_is_refreshed_at_eighty_percent_of_its_lifetime() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = refresh_time(now, now + Duration::from_secs(3600));
        assert_eq!(at, now + Duration::from_secs(2880));
        assert_eq!(refresh_time(now, now - Duration::from_secs(5)), now);
    }

    #[test]
    fn the_pod_names_its_account_or_runs_as_default_and_may_opt_out() {
        let mut pod = Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        assert_eq!(account_of(&pod), "default");
        assert_eq!(pod_choice(&pod), None);
        let spec = pod.spec.as_mut().unwrap();
        spec.service_account_name = "builder".into();
        spec.automount_service_account_token = Some(false);
        assert_eq!(account_of(&pod), "builder");
        assert_eq!(pod_choice(&pod), Some(false));
    }

    #[test]
    fn a_container_mounting_its_own_volume_at_the_path_keeps_it() {
        let projected = Projected {
            dir: PathBuf::from("/data/pods/u/volumes/kube-api-access"),
            refresh_at: SystemTime::UNIX_EPOCH,
        };
        let mut container = Container::default();
        let mount = mount(&projected, &container).unwrap();
        assert_eq!(mount.container_path, SERVICE_ACCOUNT_MOUNT_PATH);
        assert!(mount.read_only);
        container.volume_mounts.push(VolumeMount {
            name: "mine".into(),
            mount_path: format!("{SERVICE_ACCOUNT_MOUNT_PATH}/"),
            ..Default::default()
        });
        assert!(super::mount(&projected, &container).is_none());
    }
}
