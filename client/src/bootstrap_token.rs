//! [`BootstrapToken`]: the `<id>.<secret>` tokens a new node joins with, and the Secret in
//! `kube-system` that stores one (`bootstrap.kubernetes.io/token`).
//!
//! Owns the token's format: parsing, generating, and its Secret's shape, for the CLI that
//! creates tokens and the agent that presents one. Deciding whether a presented token is
//! valid is the server's (`api-gateway`'s authentication).

use base64::Engine;
use rafter_proto::v1::Secret;
use rafter_proto::well_known::BOOTSTRAP_TOKEN_SECRET_TYPE;

/// A bootstrap token split into its public id and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part, six characters `[a-z0-9]`.
    pub id: String,
    /// The secret part, sixteen characters `[a-z0-9]`.
    pub secret: String,
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`; anything else is not a bootstrap token.
    pub fn parse(token: &str) -> Option<BootstrapToken> {
        let (id, secret) = token.split_once('.')?;
        let ok = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        (ok(id, 6) && ok(secret, 16)).then(|| BootstrapToken {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A fresh random token.
    pub fn generate() -> BootstrapToken {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
                .collect()
        };
        BootstrapToken {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// The name of the Secret that holds this token.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The Secret that stores this token, valid until `expiration` (RFC 3339) when given.
    pub fn to_secret(&self, expiration: Option<&str>, extra_groups: &[&str]) -> Secret {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut data = rafter_proto::StringMap::new();
        data.insert("token-id".to_owned(), b64(&self.id));
        data.insert("token-secret".to_owned(), b64(&self.secret));
        data.insert("usage-bootstrap-authentication".to_owned(), b64("true"));
        data.insert("usage-bootstrap-signing".to_owned(), b64("true"));
        if let Some(expiration) = expiration {
            data.insert("expiration".to_owned(), b64(expiration));
        }
        if !extra_groups.is_empty() {
            data.insert("auth-extra-groups".to_owned(), b64(&extra_groups.join(",")));
        }
        Secret {
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            metadata: Some(rafter_proto::v1::ObjectMeta {
                name: self.secret_name(),
                namespace: "kube-system".to_owned(),
                ..Default::default()
            }),
            data,
            r#type: BOOTSTRAP_TOKEN_SECRET_TYPE.to_owned(),
            ..Default::default()
        }
    }
}
