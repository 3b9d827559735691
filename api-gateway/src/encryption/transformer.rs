//! [`Transformer`]: the configured providers of every kind, applied to stored values.
//! Pure apart from the OS randomness each encryption draws its nonce from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rafter_proto::Kind;

use super::config::{ProviderConfig, Rule};
use super::{EncryptionConfig, EncryptionError};

/// What every encrypted value starts with (Kubernetes' envelope prefix).
const PREFIX: &[u8] = b"k8s:enc:";
/// The aesgcm provider's name in the prefix.
const AESGCM: &str = "aesgcm";
/// The provider format version in the prefix.
const VERSION: &str = "v1";
/// AES-GCM's nonce length (96 bits).
const NONCE_LEN: usize = 12;

/// A fresh random 32-byte key (for `rafter up` and tests).
pub fn generate_key() -> [u8; 32] {
    Aes256Gcm::generate_key(OsRng).into()
}

struct AesKey {
    name: String,
    cipher: Aes256Gcm,
}

enum Provider {
    AesGcm(Vec<AesKey>),
    Identity,
}

/// Encrypts and decrypts stored values by kind. The default transformer stores every
/// kind as it is (and still refuses to return values that name a key).
#[derive(Default, Clone)]
pub struct Transformer {
    by_kind: HashMap<Kind, Arc<[Provider]>>,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&str> = self.by_kind.keys().map(|k| k.info().plural).collect();
        kinds.sort_unstable();
        f.debug_struct("Transformer")
            .field("kinds", &kinds)
            .finish()
    }
}

/// Whether a resource pattern of the configuration (`secrets`, `deployments.apps`,
/// `*.apps`, `*.` for the core group, `*.*`) names `kind`.
fn pattern_matches(pattern: &str, kind: Kind) -> bool {
    let info = kind.info();
    let (resource, group) = pattern.split_once('.').unwrap_or((pattern, ""));
    (resource == "*" || resource == info.plural) && (group == "*" || group == info.group)
}

fn build(rule: &Rule) -> Arc<[Provider]> {
    rule.providers
        .iter()
        .map(|p| match p {
            ProviderConfig::Identity => Provider::Identity,
            ProviderConfig::AesGcm(keys) => Provider::AesGcm(
                keys.iter()
                    .map(|k| AesKey {
                        name: k.name.clone(),
                        cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k.secret)),
                    })
                    .collect(),
            ),
        })
        .collect()
}

impl Transformer {
    /// Stores every kind as it is.
    pub fn identity() -> Transformer {
        Transformer::default()
    }

    /// The transformer of a configuration: for each kind, the first rule that names it.
    /// A resource pattern that names no kind is refused (a typo would leave data in clear).
    pub fn new(config: &EncryptionConfig) -> Result<Transformer, EncryptionError> {
        let mut by_kind = HashMap::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let providers = build(rule);
            for pattern in &rule.resources {
                let kinds: Vec<Kind> = Kind::all()
                    .filter(|k| pattern_matches(pattern, *k))
                    .collect();
                if kinds.is_empty() {
                    return Err(EncryptionError::Config(format!(
                        "resources[{i}].resources: {pattern:?} names no resource of this API"
                    )));
                }
                for kind in kinds {
                    by_kind
                        .entry(kind)
                        .or_insert_with(|| Arc::clone(&providers));
                }
            }
        }
        Ok(Transformer { by_kind })
    }

    /// Whether writes of `kind` are encrypted.
    pub fn encrypts(&self, kind: Kind) -> bool {
        self.by_kind
            .get(&kind)
            .and_then(|p| p.first())
            .is_some_and(|p| matches!(p, Provider::AesGcm(_)))
    }

    /// Whether a stored value is not what a write would store now: written by another
    /// provider or key than the kind's first one (a rewrite re-encrypts it).
    pub fn is_stale(&self, kind: Kind, stored: &[u8]) -> bool {
        match self.by_kind.get(&kind).and_then(|p| p.first()) {
            Some(Provider::AesGcm(keys)) => keys.first().is_none_or(|first| {
                let prefix = format!("k8s:enc:{AESGCM}:{VERSION}:{}:", first.name);
                !stored.starts_with(prefix.as_bytes())
            }),
            Some(Provider::Identity) | None => stored.starts_with(PREFIX),
        }
    }

    /// The value to store for `plain` at store key `key`, by the kind's first provider.
    pub fn encrypt(
        &self,
        kind: Kind,
        key: &[u8],
        plain: Vec<u8>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let Some(Provider::AesGcm(keys)) = self.by_kind.get(&kind).and_then(|p| p.first()) else {
            return Ok(plain);
        };
        let Some(first) = keys.first() else {
            return Ok(plain);
        };
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let sealed = first
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: key,
                },
            )
            .map_err(|e| EncryptionError::Encrypt {
                resource: String::from_utf8_lossy(key).into_owned(),
                detail: e.to_string(),
            })?;
        let mut out = Vec::with_capacity(PREFIX.len() + 32 + NONCE_LEN + sealed.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(format!("{AESGCM}:{VERSION}:{}:", first.name).as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of the value stored at `key`, by whichever configured provider and key
    /// the value names.
    pub fn decrypt<'a>(
        &self,
        kind: Kind,
        key: &[u8],
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, EncryptionError> {
        let resource = || String::from_utf8_lossy(key).into_owned();
        let providers = self.by_kind.get(&kind);
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return match providers {
                Some(p) if !p.iter().any(|p| matches!(p, Provider::Identity)) => {
                    Err(EncryptionError::NotEncrypted {
                        resource: resource(),
                    })
                }
                _ => Ok(Cow::Borrowed(stored)),
            };
        };
        // <provider>:<version>:<keyname>:<nonce><ciphertext>
        let mut fields = rest.splitn(4, |b| *b == b':');
        let (Some(provider), Some(version), Some(name), Some(sealed)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(EncryptionError::UnknownProvider {
                resource: resource(),
                provider: String::from_utf8_lossy(
                    rest.get(..rest.len().min(32)).unwrap_or_default(),
                )
                .into_owned(),
            });
        };
        let provider = String::from_utf8_lossy(provider).into_owned();
        if provider != AESGCM || version != VERSION.as_bytes() {
            return Err(EncryptionError::UnknownProvider {
                resource: resource(),
                provider: format!("{provider}:{}", String::from_utf8_lossy(version)),
            });
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let found = providers
            .into_iter()
            .flat_map(|p| p.iter())
            .find_map(|p| match p {
                Provider::AesGcm(keys) => keys.iter().find(|k| k.name == name),
                Provider::Identity => None,
            });
        let Some(found) = found else {
            return Err(EncryptionError::MissingKey {
                resource: resource(),
                provider,
                key: name,
            });
        };
        let failed = || EncryptionError::Decrypt {
            resource: resource(),
            provider: AESGCM.to_owned(),
            key: name.clone(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(failed());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        found
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: key,
                },
            )
            .map(Cow::Owned)
            .map_err(|_| failed())
    }
}
