//! Image pull credentials: the registry logins held by `kubernetes.io/dockerconfigjson`
//! and `kubernetes.io/dockercfg` Secrets, and which of them apply to an image.
//!
//! ```text
//!   Secret .dockerconfigjson {"auths": {"<registry>": {auth | username+password}}}
//!   Secret .dockercfg        {"<registry>": {auth | username+password}}
//!        ─► [DockerCredential] ─► for_image("reg:5000/team/app:1") ─► [PullAuth], most
//!                                                                      specific first
//! ```
//!
//! A key names a registry as Docker writes it: a host with an optional port, optionally a
//! scheme (`https://`), a path under which the login applies (`reg/team`), and the
//! `/v1/`/`/v2/` API suffixes; Docker Hub's `https://index.docker.io/v1/` stands for
//! `docker.io`. A host may start with `*.` (one label, as kubelet matches). Pure: no I/O,
//! the pod worker reads the Secrets and hands them in.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::image::normalize_image;

/// Secret type of a `~/.docker/config.json` login file.
pub(crate) const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// Its key.
pub(crate) const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Secret type of the legacy `~/.dockercfg` file.
pub(crate) const DOCKER_CFG: &str = "kubernetes.io/dockercfg";
/// Its key.
pub(crate) const DOCKER_CFG_KEY: &str = ".dockercfg";

/// A registry login as a pull hands it to the runtime (CRI `AuthConfig`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PullAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// An identity token (OAuth refresh token), instead of a password.
    pub identity_token: String,
}

impl std::fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One login from a pull Secret, for the registry (and path) its key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DockerCredential {
    /// The registry host (with port), `docker.io` for Docker Hub; may start with `*.`.
    host: String,
    /// Repository path prefix the login is limited to (empty: the whole registry).
    path: String,
    auth: PullAuth,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
}

/// Why a pull Secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PullSecretError {
    /// The Secret is of another type.
    #[error("type {0:?} is not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg")]
    WrongType(String),
    /// Its key is missing.
    #[error("it has no {0} key")]
    MissingKey(&'static str),
    /// Its value is not the JSON document it should be, or an `auth` is not base64 of
    /// `user:password`.
    #[error("{key}: {message}")]
    Malformed {
        /// The Secret key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The logins in a pull Secret of `secret_type` whose decoded entries are `data`.
pub(crate) fn credentials(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<DockerCredential>, PullSecretError> {
    let (key, entries) = match secret_type {
        DOCKER_CONFIG_JSON => {
            let raw = data
                .get(DOCKER_CONFIG_JSON_KEY)
                .ok_or(PullSecretError::MissingKey(DOCKER_CONFIG_JSON_KEY))?;
            let parsed: ConfigJson =
                serde_json::from_slice(raw).map_err(|e| PullSecretError::Malformed {
                    key: DOCKER_CONFIG_JSON_KEY,
                    message: e.to_string(),
                })?;
            (DOCKER_CONFIG_JSON_KEY, parsed.auths)
        }
        DOCKER_CFG => {
            let raw = data
                .get(DOCKER_CFG_KEY)
                .ok_or(PullSecretError::MissingKey(DOCKER_CFG_KEY))?;
            let parsed: BTreeMap<String, Entry> =
                serde_json::from_slice(raw).map_err(|e| PullSecretError::Malformed {
                    key: DOCKER_CFG_KEY,
                    message: e.to_string(),
                })?;
            (DOCKER_CFG_KEY, parsed)
        }
        other => return Err(PullSecretError::WrongType(other.to_owned())),
    };
    entries
        .into_iter()
        .map(|(registry, entry)| {
            let auth = login(entry).map_err(|message| PullSecretError::Malformed {
                key,
                message: format!("auths[{registry:?}]: {message}"),
            })?;
            let (host, path) = registry_key(&registry);
            Ok(DockerCredential { host, path, auth })
        })
        .collect()
}

/// The login of one entry: `auth` (base64 `user:password`) wins over the plain fields.
fn login(entry: Entry) -> Result<PullAuth, String> {
    if entry.auth.is_empty() {
        return Ok(PullAuth {
            username: entry.username,
            password: entry.password,
            identity_token: entry.identity_token,
        });
    }
    let (username, password) = decode_auth(&entry.auth)?;
    Ok(PullAuth {
        username,
        password,
        identity_token: entry.identity_token,
    })
}

/// The user and password of an `auth` value (base64 of `user:password`).
pub(crate) fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| "auth is not base64".to_owned())?;
    let text = String::from_utf8(decoded).map_err(|_| "auth is not UTF-8".to_owned())?;
    let (username, password) = text
        .split_once(':')
        .ok_or_else(|| "auth is not base64 of user:password".to_owned())?;
    Ok((username.to_owned(), password.to_owned()))
}

/// The host and path prefix a registry key names.
fn registry_key(key: &str) -> (String, String) {
    let key = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let path = path.trim_end_matches('/');
    let path = match path {
        "v1" | "v2" => "",
        p => p.strip_suffix("/v1").or(p.strip_suffix("/v2")).unwrap_or(p),
    };
    (canonical_host(host), path.to_owned())
}

/// Docker Hub's many names as the one image references use.
fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// The registry host and repository path of an image reference.
pub(crate) fn registry_of(image: &str) -> (String, String) {
    let full = normalize_image(image);
    let untagged = full.split('@').next().unwrap_or_default();
    let name = untagged
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(untagged, |(name, _)| name)
        .to_owned();
    let (host, path) = name.split_once('/').unwrap_or((name.as_str(), ""));
    (canonical_host(host), path.to_owned())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let (pattern_host, pattern_port) = pattern.split_once(':').unwrap_or((pattern, ""));
    let (host_name, port) = host.split_once(':').unwrap_or((host, ""));
    let Some(suffix) = pattern_host.strip_prefix("*.") else {
        return false;
    };
    pattern_port == port
        && host_name
            .split_once('.')
            .is_some_and(|(_, rest)| rest == suffix)
}

fn path_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The logins of `credentials` that apply to `image`, most specific first (a longer path,
/// then an exact host before a wildcard); ties keep the order given (Secret order).
pub(crate) fn for_image(credentials: &[DockerCredential], image: &str) -> Vec<PullAuth> {
    let (host, path) = registry_of(image);
    let mut matching: Vec<(usize, bool, usize, &DockerCredential)> = credentials
        .iter()
        .enumerate()
        .filter(|(_, c)| host_matches(&c.host, &host) && path_matches(&c.path, &path))
        .map(|(i, c)| (c.path.len(), c.host.starts_with("*."), i, c))
        .collect();
    matching.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<PullAuth> = Vec::new();
    for (_, _, _, c) in matching {
        if !out.contains(&c.auth) {
            out.push(c.auth.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, value: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_owned(), value.as_bytes().to_vec())])
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn dockerconfigjson_auth_decodes_to_user_and_password() {
        let json = format!(
            r#"{{"auths":{{"reg.example:5000":{{"auth":"{}","email":"a@b"}}}}}}"#,
            b64("alice:pa:ss")
        );
        let creds = credentials(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", &json)).unwrap();
        let auths = for_image(&creds, "reg.example:5000/team/app:1");
        assert_eq!(auths.len(), 1);
        assert_eq!(auths[0].username, "alice");
        assert_eq!(auths[0].password, "pa:ss");
        assert!(for_image(&creds, "reg.example/team/app:1").is_empty());
        assert!(for_image(&creds, "busybox").is_empty());
    }

    #[test]
    fn dockercfg_takes_plain_username_and_password() {
        let cfg = r#"{"https://index.docker.io/v1/":{"username":"bob","password":"pw"}}"#;
        let creds = credentials(DOCKER_CFG, &data(".dockercfg", cfg)).unwrap();
        let auths = for_image(&creds, "busybox:1.36");
        assert_eq!(auths[0].username, "bob");
        assert_eq!(for_image(&creds, "docker.io/library/nginx").len(), 1);
        assert!(for_image(&creds, "quay.io/x/y").is_empty());
    }

    #[test]
    fn a_path_key_applies_below_its_path_and_wins_over_the_whole_registry() {
        let json = format!(
            r#"{{"auths":{{"reg.io":{{"auth":"{}"}},"https://reg.io/team/":{{"auth":"{}"}}}}}}"#,
            b64("all:1"),
            b64("team:2")
        );
        let creds = credentials(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", &json)).unwrap();
        let users = |image| {
            for_image(&creds, image)
                .into_iter()
                .map(|a| a.username)
                .collect::<Vec<_>>()
        };
        assert_eq!(users("reg.io/team/app:1"), ["team", "all"]);
        assert_eq!(users("reg.io/teammate/app:1"), ["all"]);
    }

    #[test]
    fn a_wildcard_host_matches_one_label() {
        let json = format!(r#"{{"auths":{{"*.reg.io":{{"auth":"{}"}}}}}}"#, b64("w:1"));
        let creds = credentials(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", &json)).unwrap();
        assert_eq!(for_image(&creds, "eu.reg.io/app").len(), 1);
        assert!(for_image(&creds, "a.eu.reg.io/app").is_empty());
        assert!(for_image(&creds, "reg.io/app").is_empty());
    }

    #[test]
    fn bad_secrets_say_what_is_wrong() {
        assert_eq!(
            credentials("Opaque", &BTreeMap::new()).unwrap_err(),
            PullSecretError::WrongType("Opaque".into())
        );
        assert_eq!(
            credentials(DOCKER_CONFIG_JSON, &BTreeMap::new()).unwrap_err(),
            PullSecretError::MissingKey(".dockerconfigjson")
        );
        let bad = r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#; // "nocolon"
        let err = credentials(DOCKER_CONFIG_JSON, &data(".dockerconfigjson", bad)).unwrap_err();
        assert!(err.to_string().contains("user:password"), "{err}");
    }

    #[test]
    fn image_registries_include_the_port() {
        assert_eq!(
            registry_of("127.0.0.1:5000/private/busybox:1"),
            ("127.0.0.1:5000".into(), "private/busybox".into())
        );
        assert_eq!(
            registry_of("nginx"),
            ("docker.io".into(), "library/nginx".into())
        );
        assert_eq!(
            registry_of("localhost:5000/app@sha256:abc"),
            ("localhost:5000".into(), "app".into())
        );
    }
}
