//! The `EncryptionConfiguration` file (apiVersion `apiserver.config.k8s.io/v1`): parsing
//! and validation only. Turning it into ciphers is `transformer`'s job.

use base64::Engine;
use serde::Deserialize;

use super::EncryptionError;

/// The API version of the configuration, as Kubernetes spells it.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The kind of the configuration.
pub const KIND: &str = "EncryptionConfiguration";

/// A validated encryption configuration: resource rules in order, each with its providers.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    pub(crate) rules: Vec<Rule>,
}

impl std::fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("EncryptionConfig")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// One `resources:` entry: which resources, and their providers (first encrypts).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) resources: Vec<String>,
    pub(crate) providers: Vec<ProviderConfig>,
}

/// One provider of a rule.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum ProviderConfig {
    /// AES-256-GCM with named keys; the first key encrypts.
    AesGcm(Vec<KeyConfig>),
    /// Values stored as they are.
    Identity,
}

/// A named 32-byte key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyConfig {
    pub(crate) name: String,
    pub(crate) secret: [u8; 32],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<FileRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    resources: Vec<String>,
    providers: Vec<FileProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    #[serde(default)]
    aesgcm: Option<FileKeys>,
    #[serde(default)]
    identity: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    keys: Vec<FileKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    name: String,
    secret: String,
}

fn invalid(detail: impl Into<String>) -> EncryptionError {
    EncryptionError::Config(detail.into())
}

impl EncryptionConfig {
    /// Parses and validates a configuration (YAML or JSON).
    pub fn parse(text: &str) -> Result<EncryptionConfig, EncryptionError> {
        let file: File = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(invalid(format!(
                "expected apiVersion {API_VERSION} and kind {KIND}, found {} {}",
                file.api_version, file.kind
            )));
        }
        let mut rules = Vec::new();
        for (i, rule) in file.resources.into_iter().enumerate() {
            let at = format!("resources[{i}]");
            if rule.resources.is_empty() {
                return Err(invalid(format!("{at}.resources: must name a resource")));
            }
            if rule.providers.is_empty() {
                return Err(invalid(format!("{at}.providers: must list a provider")));
            }
            let mut providers = Vec::new();
            for (j, provider) in rule.providers.into_iter().enumerate() {
                let at = format!("{at}.providers[{j}]");
                providers.push(match (provider.aesgcm, provider.identity) {
                    (Some(keys), None) => ProviderConfig::AesGcm(parse_keys(&at, keys)?),
                    (None, Some(_)) => ProviderConfig::Identity,
                    _ => {
                        return Err(invalid(format!(
                            "{at}: exactly one of aesgcm or identity (the providers this build has)"
                        )))
                    }
                });
            }
            rules.push(Rule {
                resources: rule.resources,
                providers,
            });
        }
        Ok(EncryptionConfig { rules })
    }

    /// A configuration that encrypts `resources` with one new AES-GCM key named `key_name`
    /// and still reads unencrypted values, as YAML: what `rafter up` writes.
    pub fn generate_yaml(resources: &[&str], key_name: &str, secret: &[u8; 32]) -> String {
        let secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let resources = resources.join(", ");
        format!(
            "apiVersion: {API_VERSION}\nkind: {KIND}\nresources:\n  - resources: [{resources}]\n    providers:\n      - aesgcm:\n          keys:\n            - name: {key_name}\n              secret: {secret}\n      - identity: {{}}\n"
        )
    }
}

fn parse_keys(at: &str, keys: FileKeys) -> Result<Vec<KeyConfig>, EncryptionError> {
    if keys.keys.is_empty() {
        return Err(invalid(format!("{at}.aesgcm.keys: must list a key")));
    }
    let mut parsed: Vec<KeyConfig> = Vec::new();
    for (k, key) in keys.keys.into_iter().enumerate() {
        let at = format!("{at}.aesgcm.keys[{k}]");
        if key.name.is_empty() || key.name.contains(':') {
            return Err(invalid(format!(
                "{at}.name: must be non-empty and hold no ':'"
            )));
        }
        if parsed.iter().any(|p| p.name == key.name) {
            return Err(invalid(format!(
                "{at}.name: duplicate key name {:?}",
                key.name
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|e| invalid(format!("{at}.secret: not base64: {e}")))?;
        let secret: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            invalid(format!(
                "{at}.secret: must be 32 bytes (AES-256), found {}",
                b.len()
            ))
        })?;
        parsed.push(KeyConfig {
            name: key.name,
            secret,
        });
    }
    Ok(parsed)
}
