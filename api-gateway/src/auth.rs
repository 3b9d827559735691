//! Authentication: who is calling. A caller proves itself with a client certificate
//! issued by the cluster CA (user = subject CN, groups = O), with a bearer token from the
//! static token file, with a bootstrap token (`<id>.<secret>`, kept as a Secret of type
//! `bootstrap.kubernetes.io/token` in `kube-system`), or with a ServiceAccount token (a
//! JWT the masters signed, `sa_token`: user `system:serviceaccount:<ns>:<name>`).
//!
//! Owns parsing of credentials and the token file and the decision "who is this"
//! ([`Authenticator`], which every service asks first); it does not decide what the caller
//! may do (`authz`). It reads through the registry the Secret of a presented bootstrap
//! token, and the ServiceAccount (and bound pod) a ServiceAccount token names: a token
//! outlives neither.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use rafter_client::cert_identity;
use rafter_client::BootstrapToken;
use rafter_proto::v1::Secret;
use rafter_proto::{Kind, Object, ReadConsistency};
use tonic::{Request, Status};

use crate::registry::{now_rfc3339, Registry, RegistryError};
use crate::sa_token::{is_jwt, TokenError, TokenKeys};
use crate::status::status_of;
use crate::store::KvStore;

pub use rafter_proto::well_known::{
    AUTHENTICATED_GROUP, BOOTSTRAPPERS_GROUP, BOOTSTRAP_TOKEN_SECRET_TYPE, MASTERS_GROUP,
};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`admin`, `system:node:w1`, `system:bootstrap:abcdef`).
    pub name: String,
    /// The groups, always including `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with the given groups plus `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = String>) -> UserInfo {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        UserInfo {
            name: name.into(),
            groups,
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Why a caller was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("no credentials: present a client certificate issued by the cluster CA or an `authorization: Bearer <token>` header")]
    Missing,
    /// The bearer token is not one the cluster knows.
    #[error("the bearer token is not valid")]
    UnknownToken,
    /// The bootstrap token is past its expiration.
    #[error("the bootstrap token {0} has expired")]
    Expired(String),
    /// The bootstrap token's Secret names an extra group outside `system:bootstrappers:*`:
    /// the token is refused, so no token can carry a holder into another group.
    #[error("the bootstrap token {token} is not usable: its auth-extra-groups names {group:?}, which is not a system:bootstrappers:* group")]
    ForbiddenExtraGroup {
        /// The token id.
        token: String,
        /// The group it named.
        group: String,
    },
    /// A ServiceAccount token that does not verify (signature, audience, expiry).
    #[error(transparent)]
    ServiceAccountToken(#[from] TokenError),
    /// A ServiceAccount token names an object that is gone or was replaced (another uid).
    #[error("the service account token is no longer valid: {0}")]
    StaleServiceAccountToken(String),
    /// The authorization header is not `Bearer <token>`.
    #[error("the authorization header must be `Bearer <token>`")]
    MalformedHeader,
    /// A line of the static token file could not be read.
    #[error("token file line {line}: {detail}")]
    TokenFile {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// Static bearer tokens, read from a CSV file of `token,user,uid[,"group1,group2"]` lines
/// (the format of kube-apiserver's `--token-auth-file`).
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Parses the file's text. Blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<TokenFile, AuthError> {
        let mut tokens = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let error = |detail: &str| AuthError::TokenFile {
                line: i + 1,
                detail: detail.to_owned(),
            };
            if fields.len() < 3 {
                return Err(error("expected token,user,uid[,groups]"));
            }
            if fields[0].is_empty() || fields[1].is_empty() {
                return Err(error("the token and the user must not be empty"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if tokens
                .insert(fields[0].clone(), UserInfo::new(fields[1].clone(), groups))
                .is_some()
            {
                return Err(error("the token is listed twice"));
            }
        }
        Ok(TokenFile { tokens })
    }

    /// Adds one token.
    pub fn insert(&mut self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// The user a token belongs to.
    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.tokens.get(token)
    }
}

/// Splits one CSV line, honouring double quotes around a field.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    fields.push(current.trim().to_owned());
    fields
}

/// Extracts the token from an `authorization` header value.
pub fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthError::MalformedHeader)?
        .trim();
    if token.is_empty() {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}

/// Whether `group` is one a bootstrap token may add to its holder's groups:
/// `system:bootstrappers:<name>`, as Kubernetes' bootstrap token authenticator allows.
fn is_bootstrapper_subgroup(group: &str) -> bool {
    group
        .strip_prefix(BOOTSTRAPPERS_GROUP)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        })
}

/// Checks bootstrap token `token` against its stored Secret at time `now` (RFC 3339,
/// compared as text: both are UTC `Z` timestamps of the same shape).
pub fn authenticate_bootstrap(
    token: &BootstrapToken,
    secret: &Secret,
    now_rfc3339: &str,
) -> Result<UserInfo, AuthError> {
    let field = |key: &str| -> Option<String> {
        let raw = secret.data.get(key)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
        String::from_utf8(bytes).ok()
    };
    if secret.r#type != BOOTSTRAP_TOKEN_SECRET_TYPE
        || field("token-id").as_deref() != Some(token.id.as_str())
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return Err(AuthError::UnknownToken);
    }
    // Compare secrets without an early exit on the first differing byte.
    let stored = field("token-secret").unwrap_or_default();
    let same = stored.len() == token.secret.len()
        && stored
            .bytes()
            .zip(token.secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(AuthError::UnknownToken);
    }
    if let Some(expiration) = field("expiration") {
        if expiration.as_str() <= now_rfc3339 {
            return Err(AuthError::Expired(token.id.clone()));
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_owned()];
    if let Some(extra) = field("auth-extra-groups") {
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !is_bootstrapper_subgroup(group) {
                return Err(AuthError::ForbiddenExtraGroup {
                    token: token.id.clone(),
                    group: group.to_owned(),
                });
            }
            groups.push(group.to_owned());
        }
    }
    Ok(UserInfo::new(
        format!("system:bootstrap:{}", token.id),
        groups,
    ))
}

/// Decides who is calling: a client certificate the TLS layer verified against the
/// cluster CA, a bearer token of the token file, or a bootstrap token stored in the cluster.
pub struct Authenticator<S> {
    registry: Registry<S>,
    tokens: Arc<TokenFile>,
    service_account_keys: Option<Arc<TokenKeys>>,
}

impl<S> Clone for Authenticator<S> {
    fn clone(&self) -> Self {
        Authenticator {
            registry: self.registry.clone(),
            tokens: self.tokens.clone(),
            service_account_keys: self.service_account_keys.clone(),
        }
    }
}

impl<S: KvStore> Authenticator<S> {
    /// An authenticator reading bootstrap tokens through `registry`.
    pub fn new(registry: Registry<S>, tokens: Arc<TokenFile>) -> Authenticator<S> {
        Authenticator {
            registry,
            tokens,
            service_account_keys: None,
        }
    }

    /// Also accepts ServiceAccount tokens verified with `keys` (`None`: refuses them).
    pub fn with_service_account_keys(mut self, keys: Option<Arc<TokenKeys>>) -> Authenticator<S> {
        self.service_account_keys = keys;
        self
    }

    /// The user of ServiceAccount token `token`, once its signature, audience and lifetime
    /// hold and the ServiceAccount and bound pod it names still exist with their uids.
    async fn authenticate_service_account(&self, token: &str) -> Result<UserInfo, Status> {
        let refused = |e: AuthError| Status::unauthenticated(e.to_string());
        let Some(keys) = &self.service_account_keys else {
            return Err(refused(AuthError::UnknownToken));
        };
        let claims = keys.verify(token).map_err(|e| refused(e.into()))?;
        let bound = &claims.kubernetes;
        let namespace = bound.namespace.as_str();
        let mut checks = vec![(Kind::ServiceAccount, &bound.serviceaccount)];
        if let Some(pod) = &bound.pod {
            checks.push((Kind::Pod, pod));
        }
        for (kind, reference) in checks {
            let found = match self
                .registry
                .get(
                    kind,
                    namespace,
                    &reference.name,
                    ReadConsistency::Serializable,
                )
                .await
            {
                Ok(object) => Some(object),
                Err(RegistryError::NotFound { .. }) => None,
                Err(e) => return Err(status_of(e)),
            };
            // A pod in its grace period still runs and may still call.
            let live = found
                .as_ref()
                .is_some_and(|o| o.metadata().uid == reference.uid);
            if !live {
                return Err(refused(AuthError::StaleServiceAccountToken(format!(
                    "{} {namespace}/{} (uid {}) it was issued for no longer exists",
                    kind.info().name.to_lowercase(),
                    reference.name,
                    reference.uid
                ))));
            }
        }
        Ok(claims.user())
    }

    /// Who is calling, or `Unauthenticated`.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<UserInfo, Status> {
        if let Some(certs) = request.peer_certs() {
            if let Some(cert) = certs.first() {
                let identity = cert_identity(cert.as_ref()).map_err(|e| {
                    Status::unauthenticated(format!("the client certificate cannot be read: {e}"))
                })?;
                return Ok(UserInfo::new(identity.user, identity.groups));
            }
        }
        let Some(header) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(AuthError::Missing.to_string()));
        };
        let header = header
            .to_str()
            .map_err(|_| Status::unauthenticated(AuthError::MalformedHeader.to_string()))?;
        let token = bearer_token(header).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if let Some(user) = self.tokens.lookup(token) {
            return Ok(user.clone());
        }
        if is_jwt(token) {
            return self.authenticate_service_account(token).await;
        }
        let Some(bootstrap) = BootstrapToken::parse(token) else {
            return Err(Status::unauthenticated(AuthError::UnknownToken.to_string()));
        };
        let secret = match self
            .registry
            .get(
                Kind::Secret,
                "kube-system",
                &bootstrap.secret_name(),
                // A deleted or rotated token must stop working at once, on every master.
                ReadConsistency::Linearizable,
            )
            .await
        {
            Ok(Object::Secret(secret)) => secret,
            Ok(_) | Err(RegistryError::NotFound { .. }) => {
                return Err(Status::unauthenticated(AuthError::UnknownToken.to_string()))
            }
            Err(e) => return Err(status_of(e)),
        };
        authenticate_bootstrap(&bootstrap, &secret, &now_rfc3339())
            .map_err(|e| Status::unauthenticated(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_maps_tokens_to_users_and_groups() {
        let file = TokenFile::parse(
            "# comment\n\nsecret1,admin,1,\"system:masters,ops\"\nsecret2,jane,2\n",
        )
        .unwrap();
        let admin = file.lookup("secret1").unwrap();
        assert_eq!(admin.name, "admin");
        assert!(
            admin.in_group("system:masters")
                && admin.in_group("ops")
                && admin.in_group(AUTHENTICATED_GROUP)
        );
        assert_eq!(file.lookup("secret2").unwrap().name, "jane");
        assert!(file.lookup("nope").is_none());
    }

    #[test]
    fn a_bad_token_file_line_is_named() {
        let err = TokenFile::parse("ok,u,1\nbroken\n").unwrap_err();
        assert_eq!(
            err,
            AuthError::TokenFile {
                line: 2,
                detail: "expected token,user,uid[,groups]".into()
            }
        );
        assert!(TokenFile::parse("a,u,1\na,v,2\n").is_err());
    }

    #[test]
    fn bearer_headers_must_say_bearer() {
        assert_eq!(bearer_token("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token("Basic abc"), Err(AuthError::MalformedHeader));
        assert_eq!(bearer_token("Bearer "), Err(AuthError::MalformedHeader));
    }

    #[test]
    fn bootstrap_tokens_authenticate_against_their_secret_until_they_expire() {
        let token = BootstrapToken::generate();
        assert_eq!(
            BootstrapToken::parse(&format!("{}.{}", token.id, token.secret)),
            Some(token.clone())
        );
        let secret = token.to_secret(
            Some("2030-01-01T00:00:00Z"),
            &["system:bootstrappers:worker"],
        );
        let user = authenticate_bootstrap(&token, &secret, "2026-11-25T00:00:00Z").unwrap();
        assert_eq!(user.name, format!("system:bootstrap:{}", token.id));
        assert!(user.in_group(BOOTSTRAPPERS_GROUP) && user.in_group("system:bootstrappers:worker"));
        assert_eq!(
            authenticate_bootstrap(&token, &secret, "2031-01-01T00:00:00Z"),
            Err(AuthError::Expired(token.id.clone()))
        );
        let wrong = BootstrapToken {
            id: token.id.clone(),
            secret: "0000000000000000".into(),
        };
        assert_eq!(
            authenticate_bootstrap(&wrong, &secret, "2026-11-25T00:00:00Z"),
            Err(AuthError::UnknownToken)
        );
    }

    #[test]
    fn only_well_shaped_strings_are_bootstrap_tokens() {
        assert!(BootstrapToken::parse("abcdef.0123456789abcdef").is_some());
        for bad in [
            "abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
        ] {
            assert!(BootstrapToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_token_whose_extra_groups_leave_the_bootstrappers_is_refused() {
        let token = BootstrapToken::generate();
        let now = "2026-11-25T00:00:00Z";
        for group in [MASTERS_GROUP, "system:nodes", "system:bootstrappers", "ops"] {
            let secret = token.to_secret(None, &["system:bootstrappers:worker", group]);
            let err = authenticate_bootstrap(&token, &secret, now).unwrap_err();
            assert!(
                matches!(&err, AuthError::ForbiddenExtraGroup { group: g, .. } if g == group),
                "{group}: {err}"
            );
            assert!(err.to_string().contains(group), "{err}");
        }
        let fine = token.to_secret(None, &["system:bootstrappers:worker"]);
        let user = authenticate_bootstrap(&token, &fine, now).unwrap();
        assert!(user.in_group("system:bootstrappers:worker") && !user.in_group(MASTERS_GROUP));
    }
}
