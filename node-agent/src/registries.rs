//! [`Registries`]: the agent's registry settings (`--registries-config`, k3s's
//! `registries.yaml` shape) and their translation into containerd's per-registry
//! `hosts.toml` files, which CRI pulls read at every pull from containerd's registry
//! `config_path` (`--containerd-certs-dir`).
//!
//! ```text
//!   registries.yaml                          <certs dir>/<registry>/hosts.toml
//!   mirrors:                                 server = "https://registry-1.docker.io"
//!     docker.io:                  ──write──► [host."https://mirror.local:5000"]
//!       endpoint: [https://mirror.local:5000]    capabilities = ["pull", "resolve"]
//!   configs:                                     ca = "/etc/rafter/mirror-ca.crt"
//!     mirror.local:5000:
//!       tls: {ca_file: /etc/rafter/mirror-ca.crt}
//!       auth: {username: u, password: p} ──► the login of pulls from that registry when no
//!                                           pull Secret of the pod applies
//! ```
//!
//! `mirrors."*"` is containerd's `_default` (every registry without its own file). A
//! registry's `tls` applies wherever that host is used: as a registry of its own and as a
//! mirror endpoint. Owns parsing (unknown fields are refused, naming the file), the
//! rendering (pure) and the writing of the files it owns; it must not talk to containerd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pull_secrets::PullAuth;

/// First line of every `hosts.toml` the agent writes: files without it are left alone.
const MARKER: &str = "# written by the rafter node agent from its --registries-config";
/// Directory name containerd reads for registries without a directory of their own.
const DEFAULT_DIR: &str = "_default";

/// Why the registry settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file could not be read.
    #[error("reading registries config {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid (YAML syntax, an unknown field, a wrong type).
    #[error("registries config {path:?} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// serde's message, with the field's location.
        message: String,
    },
    /// A host name cannot be a directory name.
    #[error("registries config: {host:?} is not a registry host (mirrors/configs keys are host[:port] or \"*\")")]
    BadHost {
        /// The key.
        host: String,
    },
    /// A `hosts.toml` could not be written.
    #[error("writing {path:?}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The agent's registry settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Registry host (or `*`) → the endpoints pulls from it go to, in order.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Registry or endpoint host → its TLS settings and login.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// The mirrors of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs (`https://mirror:5000`, a bare host means https), tried in order before
    /// the registry itself.
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// TLS settings and login of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The login used when no pull Secret of the pod applies.
    #[serde(default)]
    pub auth: Option<RegistryLogin>,
    /// How to trust (and authenticate to) the host.
    #[serde(default)]
    pub tls: Option<RegistryTls>,
}

/// A registry login.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryLogin {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// Base64 of `user:password`, instead of the two fields.
    #[serde(default)]
    pub auth: String,
    /// An identity token, instead of a password.
    #[serde(default)]
    pub identity_token: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings of a registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryTls {
    /// CA certificate(s) to trust for it (PEM file).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM file), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM file).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Do not verify its certificate at all.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl Registries {
    /// Reads and checks a `registries.yaml`.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistriesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Registries::parse(&text).map_err(|e| match e {
            RegistriesError::Invalid { message, .. } => RegistriesError::Invalid {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks the YAML text of a `registries.yaml`.
    pub fn parse(text: &str) -> Result<Registries, RegistriesError> {
        let registries: Registries = if text.trim().is_empty() {
            Registries::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| RegistriesError::Invalid {
                path: PathBuf::new(),
                message: e.to_string(),
            })?
        };
        for host in registries.mirrors.keys().chain(registries.configs.keys()) {
            if host != "*" && !is_host(host) {
                return Err(RegistriesError::BadHost { host: host.clone() });
            }
        }
        Ok(registries)
    }

    /// The login configured for registry `host`, if any.
    pub(crate) fn login_for(&self, host: &str) -> Option<PullAuth> {
        let login = self.configs.get(host)?.auth.as_ref()?;
        let (mut username, mut password) = (login.username.clone(), login.password.clone());
        if !login.auth.is_empty() {
            (username, password) = crate::pull_secrets::decode_auth(&login.auth).ok()?;
        }
        Some(PullAuth {
            username,
            password,
            identity_token: login.identity_token.clone(),
        })
    }

    /// The `hosts.toml` of every registry with settings, by directory name.
    pub fn hosts_files(&self) -> BTreeMap<String, String> {
        let mut hosts: Vec<&String> = self.mirrors.keys().chain(self.configs.keys()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
            .into_iter()
            .map(|host| {
                let dir = if host == "*" {
                    DEFAULT_DIR.to_owned()
                } else {
                    host.clone()
                };
                (dir, self.render(host))
            })
            .collect()
    }

    fn render(&self, host: &str) -> String {
        let mut out = format!("{MARKER}\n");
        let mut urls: Vec<String> = self
            .mirrors
            .get(host)
            .map_or(&[][..], |m| &m.endpoint)
            .iter()
            .map(|endpoint| {
                if endpoint.contains("://") {
                    endpoint.trim_end_matches('/').to_owned()
                } else {
                    format!("https://{}", endpoint.trim_end_matches('/'))
                }
            })
            .collect();
        if host != "*" {
            let server = if host == "docker.io" {
                "https://registry-1.docker.io".to_owned()
            } else {
                format!("https://{host}")
            };
            out.push_str(&format!("server = {}\n", quote(&server)));
            if let Some(tls) = self.configs.get(host).and_then(|c| c.tls.as_ref()) {
                out.push_str(&tls_lines(tls));
            }
            // The registry itself last, as its own host entry too: containerd 1.6 takes a
            // file without any `[host]` table for broken and falls back to plain defaults.
            if !urls.contains(&server) {
                urls.push(server);
            }
        }
        for url in urls {
            out.push_str(&format!("\n[host.{}]\n", quote(&url)));
            out.push_str("capabilities = [\"pull\", \"resolve\"]\n");
            let endpoint_host = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            let registry = if endpoint_host == "registry-1.docker.io" {
                "docker.io"
            } else {
                endpoint_host
            };
            if let Some(tls) = self.configs.get(registry).and_then(|c| c.tls.as_ref()) {
                out.push_str(&tls_lines(tls));
            }
        }
        out
    }

    /// Writes [`hosts_files`](Self::hosts_files) under `dir` (containerd's registry
    /// `config_path`), and removes the files it wrote earlier for registries no longer
    /// configured. Files it did not write are left alone, and replaced only when the
    /// configuration names their registry. Blocking: call it from `spawn_blocking`.
    pub fn write_hosts(&self, dir: &Path) -> Result<(), RegistriesError> {
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| RegistriesError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        let files = self.hosts_files();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let file = entry.path().join("hosts.toml");
                let ours = std::fs::read_to_string(&file).is_ok_and(|t| t.starts_with(MARKER));
                if ours && !files.contains_key(&name) {
                    std::fs::remove_file(&file).map_err(write_err(&file))?;
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        for (name, text) in files {
            let host_dir = dir.join(&name);
            std::fs::create_dir_all(&host_dir).map_err(write_err(&host_dir))?;
            let file = host_dir.join("hosts.toml");
            let tmp = host_dir.join(".hosts.toml.tmp");
            std::fs::write(&tmp, text).map_err(write_err(&tmp))?;
            std::fs::rename(&tmp, &file).map_err(write_err(&file))?;
        }
        Ok(())
    }
}

/// Whether `s` is a `host[:port]` (letters, digits, `.`, `-`, `_`, one `:port`).
fn is_host(s: &str) -> bool {
    let (name, port) = s.split_once(':').unwrap_or((s, ""));
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && port.chars().all(|c| c.is_ascii_digit())
}

fn tls_lines(tls: &RegistryTls) -> String {
    let mut out = String::new();
    if let Some(ca) = &tls.ca_file {
        out.push_str(&format!("ca = {}\n", quote(&ca.display().to_string())));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        out.push_str(&format!(
            "client = [[{}, {}]]\n",
            quote(&cert.display().to_string()),
            quote(&key.display().to_string())
        ));
    }
    if tls.insecure_skip_verify {
        out.push_str("skip_verify = true\n");
    }
    out
}

/// A TOML basic string (JSON's escapes are a subset of TOML's).
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.local:5000"
      - mirror2.local
configs:
  mirror.local:5000:
    tls:
      ca_file: /etc/rafter/mirror-ca.crt
  127.0.0.1:5000:
    auth:
      username: alice
      password: s3cret
    tls:
      insecure_skip_verify: true
"#;

    #[test]
    fn mirrors_and_configs_become_hosts_toml_per_registry() {
        let registries = Registries::parse(EXAMPLE).unwrap();
        let files = registries.hosts_files();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["127.0.0.1:5000", "docker.io", "mirror.local:5000"]
        );
        let hub = &files["docker.io"];
        assert!(
            hub.contains("server = \"https://registry-1.docker.io\""),
            "{hub}"
        );
        let first = hub.find("[host.\"https://mirror.local:5000\"]").unwrap();
        let second = hub.find("[host.\"https://mirror2.local\"]").unwrap();
        assert!(first < second, "{hub}");
        assert!(
            hub[first..second].contains("ca = \"/etc/rafter/mirror-ca.crt\""),
            "{hub}"
        );
        let last = hub.find("[host.\"https://registry-1.docker.io\"]").unwrap();
        assert!(
            second < last,
            "the registry itself comes after its mirrors: {hub}"
        );
        let local = &files["127.0.0.1:5000"];
        assert!(local.contains("server = \"https://127.0.0.1:5000\""));
        let table = local.find("[host.\"https://127.0.0.1:5000\"]").unwrap();
        assert!(local[table..].contains("skip_verify = true"), "{local}");
    }

    #[test]
    fn a_login_is_found_by_registry_host() {
        let registries = Registries::parse(EXAMPLE).unwrap();
        let login = registries.login_for("127.0.0.1:5000").unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(registries.login_for("docker.io").is_none());
    }

    #[test]
    fn unknown_fields_and_bad_hosts_are_refused_by_name() {
        let err = Registries::parse("mirrors:\n  docker.io:\n    endpoints: [x]\n").unwrap_err();
        assert!(err.to_string().contains("endpoints"), "{err}");
        let err = Registries::parse("configs:\n  ../etc:\n    tls: {}\n").unwrap_err();
        assert!(matches!(err, RegistriesError::BadHost { .. }), "{err}");
    }

    #[test]
    fn the_star_mirror_is_containerds_default_directory() {
        let registries =
            Registries::parse("mirrors:\n  \"*\":\n    endpoint: [\"http://cache:5000\"]\n")
                .unwrap();
        let files = registries.hosts_files();
        let text = &files["_default"];
        assert!(!text.contains("server ="));
        assert!(text.contains("[host.\"http://cache:5000\"]"));
    }

    #[test]
    fn writing_replaces_its_own_files_and_leaves_others_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("other.io")).unwrap();
        std::fs::write(dir.path().join("other.io/hosts.toml"), "server = \"x\"\n").unwrap();
        Registries::parse(EXAMPLE)
            .unwrap()
            .write_hosts(dir.path())
            .unwrap();
        assert!(dir.path().join("docker.io/hosts.toml").exists());
        Registries::default().write_hosts(dir.path()).unwrap();
        assert!(!dir.path().join("docker.io/hosts.toml").exists());
        assert!(dir.path().join("other.io/hosts.toml").exists());
    }
}
