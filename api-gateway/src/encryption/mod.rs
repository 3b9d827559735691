//! Encryption at rest: what the registry does to an object's bytes on their way to and
//! from the store.
//!
//! ```text
//!  encode: object ─► protobuf ─► Transformer::encrypt(kind, key) ─► store value
//!  decode: store value ─► Transformer::decrypt(kind, key) ─► protobuf ─► object
//!
//!  stored value = "k8s:enc:aesgcm:v1:<keyname>:" ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16)
//!                 (AES-256-GCM; the store key is the additional authenticated data, so a
//!                 value moved to another key does not decrypt)
//!               | protobuf bytes                    (identity: no prefix)
//! ```
//!
//! The configuration has Kubernetes' `EncryptionConfiguration` shape ([`EncryptionConfig`]):
//! per set of resources an ordered provider list, of which the **first encrypts** every
//! write and **all decrypt**. Each encrypted value names its key, so rotation is: put the
//! new key first (keeping the old one after it), rewrite every object (`rafter secrets
//! reencrypt`), then drop the old key.
//!
//! Rules this module keeps:
//! - a value that names a key the configuration lacks is an error naming that key
//!   ([`EncryptionError::MissingKey`]); ciphertext is never returned as data;
//! - a plaintext value of an encrypted resource is read only when `identity` is among its
//!   providers (as Kubernetes);
//! - nonces are 96 random bits from the OS per write, as Kubernetes' aesgcm provider does.
//!   With random nonces a key should encrypt fewer than 2^32 values (NIST SP 800-38D's bound
//!   on the collision risk): rotate keys long before that.
//!
//! It does no I/O (the master reads the file) and implements no cryptography: AES-GCM is
//! RustCrypto's `aes-gcm` crate.

#[cfg(test)]
mod at_rest_test;
mod config;
mod transformer;
#[cfg(test)]
mod transformer_test;

pub use config::EncryptionConfig;
pub use transformer::{generate_key, Transformer};

/// Why an encryption configuration was refused or a value could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The configuration text is not an `EncryptionConfiguration`.
    #[error("encryption configuration: {0}")]
    Config(String),
    /// A stored value names a key that no provider of the configuration has.
    #[error("{resource} is encrypted with {provider} key {key:?}, which the encryption configuration does not have; add that key to the configuration to read it")]
    MissingKey {
        /// The store key of the value.
        resource: String,
        /// The provider the value names (`aesgcm`).
        provider: String,
        /// The key name the value names.
        key: String,
    },
    /// A stored value names a provider this build does not know.
    #[error("{resource} is encrypted with the unknown provider {provider:?}")]
    UnknownProvider {
        /// The store key of the value.
        resource: String,
        /// The provider the value names.
        provider: String,
    },
    /// The named key did not authenticate the value: a different key under the same name,
    /// a value moved to another store key, or corruption.
    #[error("{resource} does not decrypt with {provider} key {key:?} (a different key under that name, or corrupted data)")]
    Decrypt {
        /// The store key of the value.
        resource: String,
        /// The provider.
        provider: String,
        /// The key name.
        key: String,
    },
    /// A value is stored unencrypted and the resource's providers do not include identity.
    #[error("{resource} is stored unencrypted and the encryption configuration for it has no identity provider to read it")]
    NotEncrypted {
        /// The store key of the value.
        resource: String,
    },
    /// Encryption itself failed (a value beyond AES-GCM's length limit).
    #[error("cannot encrypt {resource}: {detail}")]
    Encrypt {
        /// The store key of the value.
        resource: String,
        /// What failed.
        detail: String,
    },
}
