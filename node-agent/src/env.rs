//! Container configuration that needs the API: environment variables from `env`
//! (`value`, `valueFrom.configMapKeyRef` / `secretKeyRef` / `fieldRef`) and `envFrom`,
//! and the ConfigMaps and Secrets that volumes and variables read ([`PodObjects`]).
//!
//! Owns the resolution rules: `envFrom` first, in order, then `env` in order, later
//! names overriding earlier ones; a literal `value`'s `$(NAME)` references expanded
//! against what was defined before it ([`crate::expansion`]); secrets base64-decoded;
//! optional references that are missing skipped. It must not create containers or write files (volumes do that).

use std::collections::HashMap;

use base64::Engine;
use rafter_proto::v1::{ConfigMap, Container, Pod, Secret};
use rafter_proto::{Kind, Object};

use crate::api::{ApiClient, ApiError};
use crate::expansion::expand_with_env;

/// Why a container's configuration cannot be built yet (`CreateContainerConfigError`).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ConfigError {
    /// A referenced ConfigMap or Secret does not exist.
    #[error("{kind} {name:?} not found")]
    ObjectNotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A referenced key is not in the ConfigMap or Secret.
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Namespace of the object.
        namespace: String,
        /// Name of the object.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `fieldRef` names a field the agent does not provide.
    #[error("unsupported fieldRef fieldPath {0:?}")]
    FieldPath(String),
    /// A Secret value is not base64.
    #[error("secret {name:?} key {key}: value is not base64")]
    BadSecret {
        /// The secret.
        name: String,
        /// The key.
        key: String,
    },
    /// The API could not be asked; retried.
    #[error("cannot read {what}: {message}")]
    Api {
        /// What was being read.
        what: String,
        /// The API error.
        message: String,
    },
    /// A volume could not be prepared.
    #[error("volume {volume:?}: {message}")]
    Volume {
        /// The volume's name.
        volume: String,
        /// What went wrong.
        message: String,
    },
}

/// The ConfigMaps and Secrets of one pod's namespace, read at most once per sync.
pub(crate) struct PodObjects<'a> {
    api: &'a dyn ApiClient,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl<'a> PodObjects<'a> {
    pub(crate) fn new(api: &'a dyn ApiClient, namespace: &str) -> PodObjects<'a> {
        PodObjects {
            api,
            namespace: namespace.to_owned(),
            config_maps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The hostPath of the PersistentVolume bound to claim `name` (and its `type`), once
    /// the claim is Bound to a PV that names it back.
    pub(crate) async fn claimed_host_path(
        &mut self,
        volume: &str,
        name: &str,
    ) -> Result<(String, String), ConfigError> {
        let unbound = |message: String| ConfigError::Volume {
            volume: volume.to_owned(),
            message,
        };
        let claim = match self
            .api
            .get(Kind::PersistentVolumeClaim, &self.namespace, name)
            .await
        {
            Ok(Object::PersistentVolumeClaim(c)) => c,
            Ok(_) | Err(ApiError::NotFound(_)) => {
                return Err(ConfigError::ObjectNotFound {
                    kind: "persistentvolumeclaim",
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(api_error(format!("persistentvolumeclaim {name:?}"), e)),
        };
        let pv_name = claim
            .spec
            .as_ref()
            .map(|s| s.volume_name.clone())
            .unwrap_or_default();
        let phase = claim
            .status
            .as_ref()
            .map(|s| s.phase.as_str())
            .unwrap_or("");
        if pv_name.is_empty() || phase != "Bound" {
            return Err(unbound(format!(
                "persistentvolumeclaim {name:?} is not bound"
            )));
        }
        let pv = match self.api.get(Kind::PersistentVolume, "", &pv_name).await {
            Ok(Object::PersistentVolume(pv)) => pv,
            Ok(_) | Err(ApiError::NotFound(_)) => {
                return Err(unbound(format!(
                    "persistentvolume {pv_name:?} of claim {name:?} not found"
                )))
            }
            Err(e) => return Err(api_error(format!("persistentvolume {pv_name:?}"), e)),
        };
        let spec = pv.spec.unwrap_or_default();
        let claim_uid = claim
            .metadata
            .as_ref()
            .map(|m| m.uid.as_str())
            .unwrap_or("");
        let names_claim = spec.claim_ref.as_ref().is_some_and(|r| {
            r.name == name
                && r.namespace == self.namespace
                && (r.uid.is_empty() || r.uid == claim_uid)
        });
        if !names_claim {
            return Err(unbound(format!(
                "persistentvolume {pv_name:?} is not bound to claim {name:?}"
            )));
        }
        let Some(host) = spec.host_path else {
            return Err(unbound(format!(
                "persistentvolume {pv_name:?} is not a hostPath volume (the only kind supported)"
            )));
        };
        Ok((host.path, host.r#type))
    }

    /// The ConfigMap's entries (`data` as is, `binaryData` decoded), `None` if missing.
    pub(crate) async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<Vec<(String, Vec<u8>)>>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let got = match self.api.get(Kind::ConfigMap, &self.namespace, name).await {
                Ok(Object::ConfigMap(cm)) => Some(cm),
                Ok(_) => None,
                Err(ApiError::NotFound(_)) => None,
                Err(e) => return Err(api_error(format!("configmap {name:?}"), e)),
            };
            self.config_maps.insert(name.to_owned(), got);
        }
        Ok(self
            .config_maps
            .get(name)
            .and_then(Option::as_ref)
            .map(|cm| {
                let mut entries: Vec<(String, Vec<u8>)> = cm
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                for (k, v) in &cm.binary_data {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .unwrap_or_else(|_| v.clone().into_bytes());
                    entries.push((k.clone(), bytes));
                }
                entries
            }))
    }

    /// The Secret's entries, base64-decoded, `None` if missing.
    pub(crate) async fn secret(
        &mut self,
        name: &str,
    ) -> Result<Option<Vec<(String, Vec<u8>)>>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let got = match self.api.get(Kind::Secret, &self.namespace, name).await {
                Ok(Object::Secret(s)) => Some(s),
                Ok(_) => None,
                Err(ApiError::NotFound(_)) => None,
                Err(e) => return Err(api_error(format!("secret {name:?}"), e)),
            };
            self.secrets.insert(name.to_owned(), got);
        }
        let Some(secret) = self.secrets.get(name).and_then(Option::as_ref) else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        for (k, v) in &secret.data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| ConfigError::BadSecret {
                    name: name.to_owned(),
                    key: k.clone(),
                })?;
            entries.push((k.clone(), bytes));
        }
        for (k, v) in &secret.string_data {
            entries.push((k.clone(), v.clone().into_bytes()));
        }
        Ok(Some(entries))
    }
}

fn api_error(what: String, e: ApiError) -> ConfigError {
    ConfigError::Api {
        what,
        message: e.to_string(),
    }
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    if let Some(slot) = env.iter_mut().find(|(n, _)| *n == name) {
        slot.1 = value;
    } else {
        env.push((name, value));
    }
}

/// The value of a `fieldRef` path for `pod`.
pub(crate) fn field_value(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let meta = pod.metadata.as_ref();
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.map(|m| m.name.clone()),
        "metadata.namespace" => meta.map(|m| m.namespace.clone()),
        "metadata.uid" => meta.map(|m| m.uid.clone()),
        "spec.nodeName" => spec.map(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.map(|s| s.service_account_name.clone()),
        "status.podIP" => Some(pod_ip.to_owned()),
        "status.hostIP" => Some(host_ip.to_owned()),
        other => {
            let (map, key) = if let Some(rest) = other.strip_prefix("metadata.labels['") {
                (meta.map(|m| &m.labels), rest.strip_suffix("']")?)
            } else if let Some(rest) = other.strip_prefix("metadata.annotations['") {
                (meta.map(|m| &m.annotations), rest.strip_suffix("']")?)
            } else {
                return None;
            };
            Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
        }
    };
    Some(value.unwrap_or_default())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The container's environment, resolved, in order.
pub(crate) async fn resolve_env(
    objects: &mut PodObjects<'_>,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env = Vec::new();
    for from in &container.env_from {
        let (entries, optional, kind, name) = if let Some(r) = &from.config_map_ref {
            (
                objects.config_map(&r.name).await?,
                r.optional.unwrap_or(false),
                "configmap",
                r.name.clone(),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                objects.secret(&r.name).await?,
                r.optional.unwrap_or(false),
                "secret",
                r.name.clone(),
            )
        } else {
            continue;
        };
        match entries {
            Some(entries) => {
                for (k, v) in entries {
                    set(&mut env, format!("{}{k}", from.prefix), text(&v));
                }
            }
            None if optional => {}
            None => return Err(ConfigError::ObjectNotFound { kind, name }),
        }
    }
    for var in &container.env {
        let Some(source) = &var.value_from else {
            // A literal value may refer to variables defined before it.
            let value = expand_with_env(&var.value, &env);
            set(&mut env, var.name.clone(), value);
            continue;
        };
        let value = if let Some(r) = &source.config_map_key_ref {
            lookup(
                objects.config_map(&r.name).await?,
                "ConfigMap",
                objects.namespace(),
                &r.name,
                &r.key,
                r.optional.unwrap_or(false),
            )?
        } else if let Some(r) = &source.secret_key_ref {
            lookup(
                objects.secret(&r.name).await?,
                "Secret",
                objects.namespace(),
                &r.name,
                &r.key,
                r.optional.unwrap_or(false),
            )?
        } else if let Some(r) = &source.field_ref {
            Some(
                field_value(pod, &r.field_path, pod_ip, host_ip)
                    .ok_or_else(|| ConfigError::FieldPath(r.field_path.clone()))?,
            )
        } else {
            None
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn lookup(
    entries: Option<Vec<(String, Vec<u8>)>>,
    kind: &'static str,
    namespace: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> Result<Option<String>, ConfigError> {
    let Some(entries) = entries else {
        return if optional {
            Ok(None)
        } else {
            Err(ConfigError::ObjectNotFound {
                kind: if kind == "Secret" {
                    "secret"
                } else {
                    "configmap"
                },
                name: name.to_owned(),
            })
        };
    };
    match entries.into_iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(Some(text(&v))),
        None if optional => Ok(None),
        None => Err(ConfigError::KeyNotFound {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        }),
    }
}
