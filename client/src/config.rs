//! The client config file: clusters (every master endpoint and the CA), users (a token or
//! a client certificate) and contexts (a cluster, a user and a default namespace), in the
//! shape of a kubeconfig, as YAML.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Config
//! current-context: admin@dev
//! clusters:
//! - name: dev
//!   cluster:
//!     servers: [https://127.0.0.1:6443, https://127.0.0.1:6444]   # or `server: URL`
//!     certificate-authority: ca.crt          # or certificate-authority-data: BASE64 PEM
//!     # insecure: true                       # plaintext, local development only
//! users:
//! - name: admin
//!   user:
//!     token: s3cr3t                          # or client-certificate(-data) + client-key(-data)
//! contexts:
//! - name: admin@dev
//!   context: {cluster: dev, user: admin, namespace: default}
//! ```
//!
//! Owns the file format, where the file lives (`--kubeconfig`, then `$RAFTERCONFIG`, then
//! `~/.rafter/config`), writing it back (mode 0600: it holds keys and tokens) and turning
//! the current context into a [`ResolvedConfig`] the [`Client`](crate::Client) connects
//! with. Relative paths in the file are relative to the file's folder.
//!
//! Everything here is blocking file I/O: call it before the runtime starts or through
//! `tokio::task::spawn_blocking`, never on an async worker thread. It opens no connection.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The environment variable naming the client config file.
pub const CONFIG_ENV: &str = "RAFTERCONFIG";

/// The namespace of a context that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// What replaces secrets when a config is shown redacted.
pub const REDACTED: &str = "REDACTED";

/// What replaces certificate data when a config is shown redacted.
pub const DATA_OMITTED: &str = "DATA+OMITTED";

/// Why the client config could not be found, read, written or resolved. Every variant
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file was named and there is no home directory to look in.
    #[error("no client config file: pass --kubeconfig or set ${CONFIG_ENV} (there is no home directory to find ~/.rafter/config in)")]
    NoHome,
    /// The file could not be read (missing, unreadable).
    #[error("cannot read the client config {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a client config (YAML syntax, wrong field types, wrong kind).
    #[error("the client config {} is not valid: {message}", path.display())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with the line and column when the YAML parser knows them.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write the client config {}: {source}", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something the context needs is not in the file (no current context, an undefined
    /// cluster or user, a cluster without servers or CA, a certificate without its key ...).
    #[error("the client config {}: {problem}", path.display())]
    Incomplete {
        /// The config file.
        path: PathBuf,
        /// What is missing and how to add it.
        problem: String,
    },
    /// A file the config refers to (CA, client certificate, client key) cannot be read.
    #[error("the client config {}: cannot read the {what} {}: {source}", path.display(), file.display())]
    Referenced {
        /// The config file.
        path: PathBuf,
        /// Which field: "certificate-authority", "client-certificate" or "client-key".
        what: &'static str,
        /// The file it names, resolved against the config's folder.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An inline `*-data` field is not base64 of a PEM text.
    #[error("the client config {}: {field} of {owner:?} is not base64 PEM: {message}", path.display())]
    BadData {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// The cluster or user that holds it.
        owner: String,
        /// What the decoder said.
        message: String,
    },
}

/// The whole client config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion", default = "default_api_version")]
    pub api_version: String,
    /// Always `Config`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The context used unless another is asked for.
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub current_context: String,
    /// Clusters by name.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// Users (credentials) by name.
    #[serde(default)]
    pub users: Vec<NamedUser>,
    /// Contexts by name.
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// Where the config was read from; relative paths inside are relative to its folder.
    #[serde(skip)]
    path: Option<PathBuf>,
}

fn default_api_version() -> String {
    "v1".to_owned()
}

fn default_kind() -> String {
    "Config".to_owned()
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            api_version: default_api_version(),
            kind: default_kind(),
            current_context: String::new(),
            clusters: Vec::new(),
            users: Vec::new(),
            contexts: Vec::new(),
            path: None,
        }
    }
}

/// A cluster entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// The cluster's name in this file.
    pub name: String,
    /// How to reach it.
    #[serde(default)]
    pub cluster: ClusterEntry,
}

/// How to reach a cluster: every master and the CA that signed their certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterEntry {
    /// Every master's client endpoint, `https://host:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// One endpoint, as in a kubeconfig; joined with `servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Every master's Kubernetes REST endpoint (`https://host:port`), for the standard
    /// kubeconfig stock kubectl reads (`rafter config view --kubeconfig-format`); the
    /// `rafter` client itself speaks gRPC to `servers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rest_servers: Vec<String>,
    /// A PEM file of the cluster CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// The cluster CA, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// Plaintext gRPC: local development only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

/// A user entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    /// The user's name in this file.
    pub name: String,
    /// The credentials.
    #[serde(default)]
    pub user: UserEntry,
}

/// Credentials: a bearer token, a client certificate and key, or both.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserEntry {
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The client certificate, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    /// A PEM file of the client key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// The client key, base64 of its PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field(
                "client_key_data",
                &self.client_key_data.as_ref().map(|_| REDACTED),
            )
            .finish_non_exhaustive()
    }
}

/// A context entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    /// The context's name.
    pub name: String,
    /// What it pairs.
    #[serde(default)]
    pub context: ContextEntry,
}

/// A cluster, a user and a default namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// A cluster's name.
    #[serde(default)]
    pub cluster: String,
    /// A user's name; empty: no credentials.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The namespace of calls that name none; `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A client certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// Everything a [`Client`](crate::Client) needs, read out of one context.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedConfig {
    /// The context it came from (empty when built in code).
    pub context: String,
    /// Every master endpoint, `https://host:port` (`http://` when `insecure`).
    pub endpoints: Vec<String>,
    /// The cluster CA, PEM; `None` only when `insecure`.
    pub ca_pem: Option<String>,
    /// A client certificate to present.
    pub identity: Option<ClientIdentity>,
    /// A bearer token to send.
    pub token: Option<String>,
    /// The default namespace.
    pub namespace: String,
    /// Plaintext: local development only.
    pub insecure: bool,
}

impl fmt::Debug for ResolvedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedConfig")
            .field("context", &self.context)
            .field("endpoints", &self.endpoints)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| DATA_OMITTED))
            .field("identity", &self.identity)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("namespace", &self.namespace)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl ResolvedConfig {
    /// Reads the config file (`explicit`, else `$RAFTERCONFIG`, else `~/.rafter/config`)
    /// and resolves `context` (else its current context). Blocking.
    pub fn load(explicit: Option<&Path>, context: Option<&str>) -> Result<Self, ConfigError> {
        let path = ClientConfig::locate(explicit)?;
        ClientConfig::load(&path)?.resolve(context)
    }
}

impl ClientConfig {
    /// Which file to use: `explicit` (a `--kubeconfig` flag), else `$RAFTERCONFIG`, else
    /// `~/.rafter/config`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(path) = explicit {
            return Ok(path.to_owned());
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        dirs::home_dir()
            .map(|home| home.join(".rafter").join("config"))
            .ok_or(ConfigError::NoHome)
    }

    /// Reads and parses the file at `path`. Blocking.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = ClientConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// Parses config text; the error says what and where.
    pub fn parse(text: &str) -> Result<ClientConfig, String> {
        let config: ClientConfig = if text.trim().is_empty() {
            ClientConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        if config.kind != "Config" {
            return Err(format!(
                "kind is {:?}; a client config has kind: Config",
                config.kind
            ));
        }
        if config.api_version != "v1" {
            return Err(format!(
                "apiVersion is {:?}; a client config has apiVersion: v1",
                config.api_version
            ));
        }
        Ok(config)
    }

    /// The file this config was read from or last saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The config as a standard kubeconfig for stock kubectl: each cluster's `server` is
    /// its first REST endpoint (a kubeconfig cluster holds one), and the gRPC endpoints
    /// are left out. A cluster with no REST endpoint is an error naming it.
    pub fn to_kubeconfig(&self) -> Result<ClientConfig, ConfigError> {
        let mut out = self.clone();
        for cluster in &mut out.clusters {
            let Some(first) = cluster.cluster.rest_servers.first().cloned() else {
                return Err(self.incomplete(format!(
                    "cluster {:?} names no REST endpoint (rest-servers); `rafter up` writes them, or pass `rafter master --listen-rest` and add them",
                    cluster.name
                )));
            };
            cluster.cluster.server = Some(first);
            cluster.cluster.servers.clear();
            cluster.cluster.rest_servers.clear();
        }
        Ok(out)
    }

    /// The config as YAML.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }

    /// Writes the config to `path` atomically (a temporary file renamed over it), with
    /// mode 0600 since it may hold keys and tokens; creates the folder (0700) if needed.
    /// Blocking.
    pub fn save(&mut self, path: &Path) -> Result<(), ConfigError> {
        let write_error = |source| ConfigError::Write {
            path: path.to_owned(),
            source,
        };
        let text = self
            .to_yaml()
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !folder.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&folder).map_err(write_error)?;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".to_owned());
        let temporary = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
            let _ = std::fs::remove_file(&temporary);
            return Err(write_error(e));
        }
        self.path = Some(path.to_owned());
        Ok(())
    }

    fn origin(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<in memory>"))
    }

    fn incomplete(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::Incomplete {
            path: self.origin(),
            problem: problem.into(),
        }
    }

    /// The context named `name`.
    pub fn context(&self, name: &str) -> Option<&NamedContext> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&NamedCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&NamedUser> {
        self.users.iter().find(|u| u.name == name)
    }

    fn undefined_context(&self, name: &str) -> ConfigError {
        let known: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
        self.incomplete(format!(
            "context {name:?} is not defined (contexts: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    }

    /// The name of the current context, or an error saying how to set one.
    pub fn current_context_name(&self) -> Result<&str, ConfigError> {
        if self.current_context.is_empty() {
            return Err(
                self.incomplete("no current-context is set; run `rafter config use-context NAME`")
            );
        }
        Ok(&self.current_context)
    }

    /// Makes `name` the current context; it must be defined.
    pub fn use_context(&mut self, name: &str) -> Result<(), ConfigError> {
        if self.context(name).is_none() {
            return Err(self.undefined_context(name));
        }
        self.current_context = name.to_owned();
        Ok(())
    }

    /// Sets the default namespace of context `name`, which must be defined.
    pub fn set_namespace(&mut self, name: &str, namespace: &str) -> Result<(), ConfigError> {
        if self.context(name).is_none() {
            return Err(self.undefined_context(name));
        }
        for context in self.contexts.iter_mut().filter(|c| c.name == name) {
            context.context.namespace = Some(namespace.to_owned());
        }
        Ok(())
    }

    /// Only the current context, its cluster and its user.
    pub fn minified(&self) -> Result<ClientConfig, ConfigError> {
        let name = self.current_context_name()?;
        let context = self
            .context(name)
            .ok_or_else(|| self.undefined_context(name))?;
        Ok(ClientConfig {
            current_context: name.to_owned(),
            contexts: vec![context.clone()],
            clusters: self
                .cluster(&context.context.cluster)
                .into_iter()
                .cloned()
                .collect(),
            users: self
                .user(&context.context.user)
                .into_iter()
                .cloned()
                .collect(),
            ..self.clone()
        })
    }

    /// The config with tokens and keys replaced by `REDACTED` and inline certificates by
    /// `DATA+OMITTED`, for showing.
    pub fn redacted(&self) -> ClientConfig {
        let mut shown = self.clone();
        for cluster in &mut shown.clusters {
            let data = &mut cluster.cluster.certificate_authority_data;
            if data.is_some() {
                *data = Some(DATA_OMITTED.to_owned());
            }
        }
        for user in &mut shown.users {
            let u = &mut user.user;
            for secret in [&mut u.token, &mut u.client_key_data] {
                if secret.is_some() {
                    *secret = Some(REDACTED.to_owned());
                }
            }
            if u.client_certificate_data.is_some() {
                u.client_certificate_data = Some(DATA_OMITTED.to_owned());
            }
        }
        shown
    }

    /// Resolves `context` (else the current context) into what a client connects with,
    /// reading the files it names. Blocking.
    pub fn resolve(&self, context: Option<&str>) -> Result<ResolvedConfig, ConfigError> {
        let name = match context {
            Some(name) => name,
            None => self.current_context_name()?,
        };
        let context = self
            .context(name)
            .ok_or_else(|| self.undefined_context(name))?;
        let entry = &context.context;
        if entry.cluster.is_empty() {
            return Err(self.incomplete(format!("context {name:?} names no cluster")));
        }
        let cluster = self.cluster(&entry.cluster).ok_or_else(|| {
            self.incomplete(format!(
                "context {name:?} names cluster {:?}, which is not defined",
                entry.cluster
            ))
        })?;
        let (endpoints, ca_pem, insecure) = self.resolve_cluster(cluster)?;
        let (identity, token) = if entry.user.is_empty() {
            (None, None)
        } else {
            let user = self.user(&entry.user).ok_or_else(|| {
                self.incomplete(format!(
                    "context {name:?} names user {:?}, which is not defined",
                    entry.user
                ))
            })?;
            self.resolve_user(user)?
        };
        let namespace = entry
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Ok(ResolvedConfig {
            context: name.to_owned(),
            endpoints,
            ca_pem,
            identity,
            token,
            namespace,
            insecure,
        })
    }

    fn resolve_cluster(
        &self,
        cluster: &NamedCluster,
    ) -> Result<(Vec<String>, Option<String>, bool), ConfigError> {
        let entry = &cluster.cluster;
        let name = &cluster.name;
        let mut endpoints = Vec::new();
        for server in entry.servers.iter().chain(entry.server.iter()) {
            let endpoint = normalise_endpoint(server, entry.insecure)
                .map_err(|problem| self.incomplete(format!("cluster {name:?}: {problem}")))?;
            if !endpoints.contains(&endpoint) {
                endpoints.push(endpoint);
            }
        }
        if endpoints.is_empty() {
            return Err(self.incomplete(format!(
                "cluster {name:?} has no servers; list every master as `servers: [https://HOST:PORT, ...]`"
            )));
        }
        if entry.insecure {
            return Ok((endpoints, None, true));
        }
        let ca_pem = match (
            &entry.certificate_authority,
            &entry.certificate_authority_data,
        ) {
            (Some(_), Some(_)) => {
                return Err(self.incomplete(format!(
                    "cluster {name:?} sets both certificate-authority and certificate-authority-data; keep one"
                )))
            }
            (Some(file), None) => self.read_referenced("certificate-authority", file)?,
            (None, Some(data)) => self.decode_data("certificate-authority-data", name, data)?,
            (None, None) => {
                return Err(self.incomplete(format!(
                    "cluster {name:?} has neither certificate-authority nor certificate-authority-data (or insecure: true for plaintext development)"
                )))
            }
        };
        Ok((endpoints, Some(ca_pem), false))
    }

    fn resolve_user(
        &self,
        user: &NamedUser,
    ) -> Result<(Option<ClientIdentity>, Option<String>), ConfigError> {
        let entry = &user.user;
        let name = &user.name;
        let cert = match (&entry.client_certificate, &entry.client_certificate_data) {
            (Some(_), Some(_)) => {
                return Err(self.incomplete(format!(
                "user {name:?} sets both client-certificate and client-certificate-data; keep one"
            )))
            }
            (Some(file), None) => Some(self.read_referenced("client-certificate", file)?),
            (None, Some(data)) => Some(self.decode_data("client-certificate-data", name, data)?),
            (None, None) => None,
        };
        let key = match (&entry.client_key, &entry.client_key_data) {
            (Some(_), Some(_)) => {
                return Err(self.incomplete(format!(
                    "user {name:?} sets both client-key and client-key-data; keep one"
                )))
            }
            (Some(file), None) => Some(self.read_referenced("client-key", file)?),
            (None, Some(data)) => Some(self.decode_data("client-key-data", name, data)?),
            (None, None) => None,
        };
        let identity = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(ClientIdentity { cert_pem, key_pem }),
            (Some(_), None) => {
                return Err(self.incomplete(format!(
                    "user {name:?} has a client certificate but no client-key or client-key-data"
                )))
            }
            (None, Some(_)) => {
                return Err(self.incomplete(format!(
                    "user {name:?} has a client key but no client-certificate or client-certificate-data"
                )))
            }
            (None, None) => None,
        };
        let token = entry.token.clone().filter(|t| !t.is_empty());
        if identity.is_none() && token.is_none() {
            return Err(self.incomplete(format!(
                "user {name:?} has no credentials; give it a token or client-certificate and client-key"
            )));
        }
        Ok((identity, token))
    }

    /// A path from the file, relative to the file's folder, `~/` meaning the home folder.
    fn referenced_path(&self, file: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (file.strip_prefix("~/"), dirs::home_dir()) {
            return home.join(rest);
        }
        let path = PathBuf::from(file);
        match self.path.as_deref().and_then(Path::parent) {
            Some(folder) if path.is_relative() => folder.join(path),
            _ => path,
        }
    }

    fn read_referenced(&self, what: &'static str, file: &str) -> Result<String, ConfigError> {
        let file = self.referenced_path(file);
        std::fs::read_to_string(&file).map_err(|source| ConfigError::Referenced {
            path: self.origin(),
            what,
            file,
            source,
        })
    }

    fn decode_data(
        &self,
        field: &'static str,
        owner: &str,
        data: &str,
    ) -> Result<String, ConfigError> {
        let bad = |message: String| ConfigError::BadData {
            path: self.origin(),
            field,
            owner: owner.to_owned(),
            message,
        };
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".to_owned()))?;
        if !text.contains("-----BEGIN") {
            return Err(bad("the decoded text is not PEM".to_owned()));
        }
        Ok(text)
    }
}

/// `https://host:port` from what a user wrote: a bare `host:port` gets the scheme the
/// cluster's `insecure` flag calls for; a plaintext URL needs `insecure: true`.
fn normalise_endpoint(server: &str, insecure: bool) -> Result<String, String> {
    let server = server.trim().trim_end_matches('/');
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => (if insecure { "http" } else { "https" }, server),
    };
    let scheme = match (scheme, insecure) {
        ("https", false) | ("http", true) => scheme,
        ("https", true) => "http",
        ("http", false) => {
            return Err(format!(
                "server {server:?} is plaintext; use https:// or set insecure: true (local development only)"
            ))
        }
        (other, _) => return Err(format!("server {server:?} has scheme {other:?}; use https://")),
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "server {server:?} is not of the form https://HOST:PORT"
        ));
    }
    let url = format!("{scheme}://{rest}");
    url.parse::<tonic::codegen::http::Uri>()
        .map_err(|e| format!("server {server:?} is not a URL: {e}"))?;
    Ok(url)
}

#[cfg(test)]
#[path = "config_test.rs"]
mod tests;
