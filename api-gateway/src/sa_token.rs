//! ServiceAccount tokens: short-lived JWTs, ES256-signed with a key every master shares
//! (`sa.key` beside the cluster CA, made at `--init`), shaped as Kubernetes' bound tokens.
//!
//! ```text
//!   TokenRequest (serviceaccounts/token) ─► TokenGrant ─► TokenKeys::issue ─► JWT
//!       { iss, sub: system:serviceaccount:<ns>:<name>, aud, exp, iat, nbf,
//!         kubernetes.io: { namespace, serviceaccount{name,uid}, pod{name,uid}?, node{name,uid}? } }
//!   Bearer JWT ─► TokenKeys::verify (signature, iss, aud ∩ API audiences, exp/nbf) ─► Claims
//!             ─► auth: the ServiceAccount (and bound pod) still exist with those uids
//! ```
//!
//! Owns the claims, signing and verification (with the `jsonwebtoken` crate) and the
//! lifetime bounds. It reads no store: whether the ServiceAccount and pod named in a token
//! still exist is checked by `auth`, which asks the registry.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rafter_proto::well_known::{service_account_groups, service_account_user};
use serde::{Deserialize, Serialize};

use crate::auth::UserInfo;

/// The issuer of every token (`iss`), and the audience the API accepts by default, as
/// kube-apiserver's `--service-account-issuer` is by default.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The shortest lifetime a token may be given, as Kubernetes' TokenRequest allows.
pub const MIN_TOKEN_SECONDS: i64 = 600;
/// The lifetime of a token when the request asks for none.
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// The longest lifetime a token is given; longer requests are capped.
pub const MAX_TOKEN_SECONDS: i64 = 48 * 3600;
/// How far past `exp` (and before `nbf`) a token is still accepted: clock skew between
/// the masters and the node that mounted it.
const LEEWAY_SECONDS: u64 = 60;

/// Why a token could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signing key file is not an ECDSA P-256 private key (PKCS#8 PEM).
    #[error("the service account signing key is not an ECDSA P-256 PKCS#8 PEM key: {0}")]
    BadKey(String),
    /// Signing failed.
    #[error("signing the token failed: {0}")]
    Sign(String),
    /// The token's lifetime is out of bounds.
    #[error("expirationSeconds {0} is too short: a token lives at least {MIN_TOKEN_SECONDS} s")]
    TooShort(i64),
    /// The token has expired.
    #[error("the service account token has expired")]
    Expired,
    /// The token is for other audiences than this API's.
    #[error("the service account token is for other audiences than this API's")]
    WrongAudience,
    /// The signature does not verify, or the token is not a JWT of this cluster.
    #[error("the service account token is not valid: {0}")]
    Invalid(String),
}

/// An object a token names (`kubernetes.io.serviceaccount`, `.pod`, `.node`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundRef {
    /// Its name.
    pub name: String,
    /// Its uid when the token was made: a token outlives no deleted object.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: BoundRef,
    /// The pod the token is bound to, if any: it stops working when the pod is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<BoundRef>,
    /// The node the bound pod runs on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<BoundRef>,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Who the token is for.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// What the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

impl Claims {
    /// The user the token authenticates: `system:serviceaccount:<ns>:<name>` in
    /// `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn user(&self) -> UserInfo {
        let namespace = &self.kubernetes.namespace;
        UserInfo::new(
            service_account_user(namespace, &self.kubernetes.serviceaccount.name),
            service_account_groups(namespace),
        )
    }
}

/// What one token is granted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenGrant {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: BoundRef,
    /// The pod it is bound to.
    pub pod: Option<BoundRef>,
    /// The node of that pod.
    pub node: Option<BoundRef>,
    /// The audiences; empty: the API's.
    pub audiences: Vec<String>,
    /// The lifetime asked for; 0: [`DEFAULT_TOKEN_SECONDS`].
    pub seconds: i64,
}

/// The lifetime a request for `asked` seconds is given: the default for 0, capped at
/// [`MAX_TOKEN_SECONDS`], refused under [`MIN_TOKEN_SECONDS`].
pub fn token_lifetime(asked: i64) -> Result<i64, TokenError> {
    match asked {
        0 => Ok(DEFAULT_TOKEN_SECONDS),
        s if s < MIN_TOKEN_SECONDS => Err(TokenError::TooShort(s)),
        s => Ok(s.min(MAX_TOKEN_SECONDS)),
    }
}

/// Whether a bearer token is shaped as a JWT (three base64url parts), not as a static or
/// bootstrap token.
pub fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A new signing key: ECDSA P-256, PKCS#8 PEM (what `sa.key` holds).
pub fn generate_signing_key() -> Result<String, TokenError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(|e| TokenError::BadKey(e.to_string()))
}

/// The keys tokens are signed and verified with, and the audiences the API accepts.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    api_audiences: Vec<String>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// The keys of private key `pem` (PKCS#8 ECDSA P-256); its public half verifies.
    pub fn from_pem(pem: &str) -> Result<TokenKeys, TokenError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| TokenError::BadKey(e.to_string()))?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(TokenError::BadKey("not a P-256 key".to_owned()));
        }
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|e| TokenError::BadKey(e.to_string()))?;
        let decoding = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())
            .map_err(|e| TokenError::BadKey(e.to_string()))?;
        Ok(TokenKeys {
            encoding,
            decoding,
            issuer: DEFAULT_ISSUER.to_owned(),
            api_audiences: vec![DEFAULT_ISSUER.to_owned()],
        })
    }

    /// The audiences a token must name one of to be accepted by the API.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// A signed token for `grant`, issued at `now` (seconds since the epoch); its claims.
    pub fn issue(&self, grant: &TokenGrant, now: i64) -> Result<(String, Claims), TokenError> {
        let seconds = token_lifetime(grant.seconds)?;
        let audiences = if grant.audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            grant.audiences.clone()
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: service_account_user(&grant.namespace, &grant.service_account.name),
            aud: audiences,
            exp: now + seconds,
            iat: now,
            nbf: now,
            kubernetes: KubernetesClaims {
                namespace: grant.namespace.clone(),
                serviceaccount: grant.service_account.clone(),
                pod: grant.pod.clone(),
                node: grant.node.clone(),
            },
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))?;
        Ok((token, claims))
    }

    /// The claims of `token` if this cluster signed it, it is for the API's audiences and
    /// it is within its lifetime (by the clock, give or take a minute).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.api_audiences);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        if claims.sub
            != service_account_user(
                &claims.kubernetes.namespace,
                &claims.kubernetes.serviceaccount.name,
            )
        {
            return Err(TokenError::Invalid(
                "its subject is not the service account it names".to_owned(),
            ));
        }
        Ok(claims)
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> TokenGrant {
        TokenGrant {
            namespace: "team-a".into(),
            service_account: BoundRef {
                name: "builder".into(),
                uid: "sa-uid".into(),
            },
            pod: Some(BoundRef {
                name: "web".into(),
                uid: "pod-uid".into(),
            }),
            node: Some(BoundRef {
                name: "w1".into(),
                uid: String::new(),
            }),
            audiences: vec![],
            seconds: 0,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_the_claims_kubernetes_gives_and_names_its_user() {
        let keys = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
        let now = unix_now();
        let (token, issued) = keys.issue(&grant(), now).unwrap();
        assert!(is_jwt(&token), "{token}");
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims, issued);
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(claims.sub, "system:serviceaccount:team-a:builder");
        assert_eq!(claims.aud, [DEFAULT_ISSUER]);
        assert_eq!((claims.iat, claims.nbf), (now, now));
        assert_eq!(claims.exp, now + DEFAULT_TOKEN_SECONDS);
        assert_eq!(claims.kubernetes.serviceaccount.uid, "sa-uid");
        assert_eq!(claims.kubernetes.pod.as_ref().unwrap().uid, "pod-uid");
        assert_eq!(claims.kubernetes.node.as_ref().unwrap().name, "w1");
        let user = claims.user();
        assert_eq!(user.name, "system:serviceaccount:team-a:builder");
        for group in [
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated",
        ] {
            assert!(user.in_group(group), "{group}: {user:?}");
        }
        // The claim names are Kubernetes' own.
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["kubernetes.io"]["serviceaccount"]["name"], "builder");
        assert_eq!(json["kubernetes.io"]["pod"]["name"], "web");
    }

    #[test]
    fn an_expired_token_is_refused_and_one_not_yet_valid_too() {
        let keys = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
        let two_hours_ago = unix_now() - 7200;
        let (old, _) = keys.issue(&grant(), two_hours_ago).unwrap();
        assert_eq!(keys.verify(&old), Err(TokenError::Expired));
        let (future, _) = keys.issue(&grant(), unix_now() + 3600).unwrap();
        assert!(matches!(keys.verify(&future), Err(TokenError::Invalid(_))));
        // Within the lifetime it is accepted.
        let (fresh, _) = keys.issue(&grant(), unix_now() - 60).unwrap();
        assert!(keys.verify(&fresh).is_ok());
    }

    #[test]
    fn a_token_signed_by_another_key_or_tampered_with_is_refused() {
        let ours = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
        let theirs = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
        let (token, _) = theirs.issue(&grant(), unix_now()).unwrap();
        assert!(matches!(ours.verify(&token), Err(TokenError::Invalid(_))));
        let (good, _) = ours.issue(&grant(), unix_now()).unwrap();
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut claims = ours.verify(&good).unwrap();
        claims.kubernetes.serviceaccount.name = "admin".into();
        claims.sub = "system:serviceaccount:team-a:admin".into();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&claims).unwrap(),
        );
        assert!(matches!(
            ours.verify(&parts.join(".")),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_for_another_audience_is_not_accepted_by_the_api() {
        let keys = TokenKeys::from_pem(&generate_signing_key().unwrap()).unwrap();
        let mut vault = grant();
        vault.audiences = vec!["vault".into()];
        let (token, claims) = keys.issue(&vault, unix_now()).unwrap();
        assert_eq!(claims.aud, ["vault"]);
        assert_eq!(keys.verify(&token), Err(TokenError::WrongAudience));
        let mut both = grant();
        both.audiences = vec!["vault".into(), DEFAULT_ISSUER.into()];
        let (token, _) = keys.issue(&both, unix_now()).unwrap();
        assert!(keys.verify(&token).is_ok());
    }

    #[test]
    fn lifetimes_are_bounded() {
        assert_eq!(token_lifetime(0), Ok(DEFAULT_TOKEN_SECONDS));
        assert_eq!(token_lifetime(599), Err(TokenError::TooShort(599)));
        assert_eq!(token_lifetime(600), Ok(600));
        assert_eq!(token_lifetime(i64::MAX), Ok(MAX_TOKEN_SECONDS));
        assert!(
            TokenError::TooShort(5)
                .to_string()
                .contains("expirationSeconds"),
            "the error names the field"
        );
    }

    #[test]
    fn only_jwt_shaped_tokens_are_taken_for_service_account_tokens() {
        assert!(is_jwt("eyJh.eyJz.c2ln"));
        for not in [
            "abcdef.0123456789abcdef",
            "plain",
            "a.b.c.d",
            "a..c",
            "a.b c.d",
        ] {
            assert!(!is_jwt(not), "{not}");
        }
        assert!(TokenKeys::from_pem("not a key").is_err());
    }
}
