//! The cluster's public-key infrastructure: the cluster CA, certificates issued from it
//! for masters (server + peer), agents and users (client), signing of PKCS#10 requests,
//! and reading who a client certificate names.
//!
//! Owns key generation and X.509 (rcgen to write, x509-parser to read). It does not
//! decide who may get a certificate (the CSR signer and admission do) and does no I/O:
//! callers store the PEM text where they keep their material.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A failure to make, sign or read a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or the key.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM text is not a certificate or key of the expected kind.
    #[error("{what} is not valid PEM: {detail}")]
    BadPem {
        /// What was being read ("the CA certificate", "the client certificate" ...).
        what: &'static str,
        /// The parser's words.
        detail: String,
    },
    /// A certificate request names something this CA does not issue.
    #[error("the certificate request is refused: {0}")]
    Refused(String),
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUsage {
    /// A TLS server (a master's client endpoint).
    Server,
    /// A TLS client (a user, an agent).
    Client,
    /// Both: masters use one certificate to serve and to dial their peers.
    ServerAndClient,
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Who a certificate names: the subject's common name is the user, its organisations
/// the groups (as Kubernetes reads client certificates).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertIdentity {
    /// The common name (`system:node:worker-1`, `admin`).
    pub user: String,
    /// The organisations (`system:nodes`, `system:masters`).
    pub groups: Vec<String>,
}

/// What to put in an issued certificate.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// The subject's common name: the user name for client certificates.
    pub common_name: String,
    /// Organisations: the groups for client certificates.
    pub organizations: Vec<String>,
    /// DNS names and IP addresses the certificate is valid for (servers).
    pub subject_alt_names: Vec<String>,
    /// Server, client or both.
    pub usage: CertUsage,
    /// How long the certificate is valid.
    pub validity: Duration,
}

/// How long the cluster CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// Default validity of issued certificates.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::days(365);

/// The cluster certificate authority.
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Creates a new CA for a cluster named `cluster_name`.
    pub fn generate(cluster_name: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&format!("rafter-ca ({cluster_name})"), &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        let issuer = Issuer::new(params, key);
        Ok(ClusterCa {
            cert_pem,
            key_pem,
            issuer,
        })
    }

    /// Loads a CA from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadPem {
            what: "the CA key",
            detail: e.to_string(),
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| PkiError::BadPem {
            what: "the CA certificate",
            detail: e.to_string(),
        })?;
        Ok(ClusterCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM: what clients and peers trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM: kept by masters only.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate with a fresh key.
    pub fn issue(&self, request: &CertRequest) -> Result<CertAndKey, PkiError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(request)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a PKCS#10 request (PEM). The subject and key come from the request; usage and
    /// validity from the caller, who has checked the request against the signer's rules.
    pub fn sign_request(
        &self,
        csr_pem: &str,
        usage: CertUsage,
        validity: Duration,
    ) -> Result<String, PkiError> {
        let mut csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadPem {
                what: "the certificate request",
                detail: e.to_string(),
            })?;
        let now = OffsetDateTime::now_utc();
        csr.params.not_before = now - Duration::minutes(5);
        csr.params.not_after = now + validity;
        csr.params.serial_number = Some(random_serial());
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        csr.params.extended_key_usages = extended_usages(usage);
        Ok(csr.signed_by(&self.issuer)?.pem())
    }
}

/// Reads the subject of a certificate request (PEM) without signing it.
pub fn request_identity(csr_pem: &str) -> Result<CertIdentity, PkiError> {
    Ok(request_names(csr_pem)?.identity)
}

/// Who a certificate request names and for which hosts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestNames {
    /// The subject, read as a client identity.
    pub identity: CertIdentity,
    /// DNS names among the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses among the subject alternative names, as text.
    pub ip_addresses: Vec<String>,
    /// Email addresses among the subject alternative names.
    pub emails: Vec<String>,
    /// URIs and any other kind of alternative name.
    pub others: Vec<String>,
}

/// Reads the subject and the subject alternative names of a certificate request (PEM).
pub fn request_names(csr_pem: &str) -> Result<RequestNames, PkiError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadPem {
        what: "the certificate request",
        detail: e.to_string(),
    })?;
    let mut names = RequestNames {
        identity: identity_of(&csr.params.distinguished_name),
        ..Default::default()
    };
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(n) => names.dns_names.push(n.as_str().to_owned()),
            SanType::IpAddress(ip) => names.ip_addresses.push(ip.to_string()),
            SanType::Rfc822Name(e) => names.emails.push(e.as_str().to_owned()),
            SanType::URI(u) => names.others.push(u.as_str().to_owned()),
            other => names.others.push(format!("{other:?}")),
        }
    }
    Ok(names)
}

/// Makes a new key and a PKCS#10 request (PEM) for `common_name` in `organizations`:
/// what an agent files as a CertificateSigningRequest for its client certificate.
pub fn new_request(
    common_name: &str,
    organizations: &[String],
) -> Result<(String, String), PkiError> {
    new_serving_request(common_name, organizations, &[])
}

/// Like [`new_request`], naming `hosts` (DNS names or IP addresses) as subject alternative
/// names: what an agent files for its serving certificate.
pub fn new_serving_request(
    common_name: &str,
    organizations: &[String],
    hosts: &[String],
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name, organizations);
    params.subject_alt_names = hosts.iter().map(|h| san_of(h)).collect::<Result<_, _>>()?;
    let csr = params.serialize_request(&key)?;
    let pem = csr.pem()?;
    Ok((pem, key.serialize_pem()))
}

/// Reads who a client certificate (DER) names.
pub fn cert_identity(der: &[u8]) -> Result<CertIdentity, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::BadPem {
        what: "the client certificate",
        detail: e.to_string(),
    })?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Ok(CertIdentity { user, groups })
}

/// What a certificate says about itself: who it names and when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, read as a client identity.
    pub identity: CertIdentity,
    /// Valid from, seconds since the Unix epoch.
    pub not_before: i64,
    /// Valid until, seconds since the Unix epoch.
    pub not_after: i64,
    /// The DNS names and IP addresses (as text) it is valid for.
    pub hosts: Vec<String>,
}

/// Reads the first certificate of a PEM text: its subject and validity.
pub fn cert_info(cert_pem: &str) -> Result<CertInfo, PkiError> {
    let bad = |detail: String| PkiError::BadPem {
        what: "the certificate",
        detail,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.trim_start().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(bad(format!("a {} block, not a CERTIFICATE", pem.label)));
    }
    let (_, cert) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let validity = cert.validity();
    let hosts = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(n) => Some((*n).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_text(bytes),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(CertInfo {
        hosts,
        identity: cert_identity(&pem.contents)?,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

/// An IP address of an X.509 name (4 or 16 bytes) as text.
fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

/// Whether `key_pem` is the private key of the certificate `cert_pem` (their public keys
/// are the same): a certificate stored next to another key cannot be used.
pub fn key_matches_cert(cert_pem: &str, key_pem: &str) -> Result<bool, PkiError> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::BadPem {
        what: "the private key",
        detail: e.to_string(),
    })?;
    let bad = |detail: String| PkiError::BadPem {
        what: "the certificate",
        detail,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.trim_start().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| bad(e.to_string()))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.der_bytes())
}

fn identity_of(dn: &DistinguishedName) -> CertIdentity {
    let mut user = String::new();
    let mut groups = Vec::new();
    for (ty, value) in dn.iter() {
        let text = dn_text(value);
        match ty {
            DnType::CommonName => user = text,
            DnType::OrganizationName => groups.push(text),
            _ => {}
        }
    }
    CertIdentity { user, groups }
}

fn dn_text(value: &rcgen::DnValue) -> String {
    match value {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_owned(),
        rcgen::DnValue::TeletexString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

fn distinguished_name(common_name: &str, organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for org in organizations {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn
}

/// An IP address or DNS name as a subject alternative name.
fn san_of(name: &str) -> Result<SanType, PkiError> {
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => name
            .to_owned()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|_| {
                PkiError::Refused(format!("{name:?} is neither an IP address nor a DNS name"))
            }),
    }
}

fn leaf_params(request: &CertRequest) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&request.common_name, &request.organizations);
    params.subject_alt_names = request
        .subject_alt_names
        .iter()
        .map(|name| san_of(name))
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = extended_usages(request.usage);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + request.validity;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn extended_usages(usage: CertUsage) -> Vec<ExtendedKeyUsagePurpose> {
    match usage {
        CertUsage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        CertUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        CertUsage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive serial: clear the top bit.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(pem_text: &str) -> Vec<u8> {
        let mut reader = std::io::BufReader::new(pem_text.as_bytes());
        let der = rustls_pemfile::certs(&mut reader).next().unwrap().unwrap();
        der.to_vec()
    }

    #[test]
    fn issued_client_certificates_name_user_and_groups() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca
            .issue(&CertRequest {
                common_name: "system:node:w1".into(),
                organizations: vec!["system:nodes".into()],
                subject_alt_names: vec![],
                usage: CertUsage::Client,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let id = cert_identity(&der_of(&issued.cert_pem)).unwrap();
        assert_eq!(
            id,
            CertIdentity {
                user: "system:node:w1".into(),
                groups: vec!["system:nodes".into()]
            }
        );
    }

    #[test]
    fn a_ca_reloaded_from_pem_signs_requests() {
        let ca = ClusterCa::generate("test").unwrap();
        let again = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let (csr, _key) = new_request("jane", &["dev".to_owned()]).unwrap();
        assert_eq!(request_identity(&csr).unwrap().user, "jane");
        let cert = again
            .sign_request(&csr, CertUsage::Client, Duration::days(1))
            .unwrap();
        let id = cert_identity(&der_of(&cert)).unwrap();
        assert_eq!(id.user, "jane");
        assert_eq!(id.groups, vec!["dev".to_owned()]);
    }

    #[test]
    fn a_serving_request_names_its_hosts_and_its_certificate_keeps_them() {
        let ca = ClusterCa::generate("test").unwrap();
        let hosts = ["w1".to_owned(), "10.0.0.5".to_owned(), "fd00::5".to_owned()];
        let (csr, _key) =
            new_serving_request("system:node:w1", &["system:nodes".to_owned()], &hosts).unwrap();
        let names = request_names(&csr).unwrap();
        assert_eq!(names.identity.user, "system:node:w1");
        assert_eq!(names.dns_names, vec!["w1".to_owned()]);
        assert_eq!(
            names.ip_addresses,
            vec!["10.0.0.5".to_owned(), "fd00::5".to_owned()]
        );
        assert!(names.emails.is_empty() && names.others.is_empty());
        let cert = ca
            .sign_request(&csr, CertUsage::Server, Duration::days(1))
            .unwrap();
        assert_eq!(cert_info(&cert).unwrap().hosts, hosts.to_vec());
        assert!(new_serving_request("x", &[], &["nœud.example".to_owned()]).is_err());
    }

    #[test]
    fn signed_requests_say_who_they_name_and_how_long_they_are_valid() {
        let ca = ClusterCa::generate("test").unwrap();
        let (csr, _key) = new_request("system:node:w1", &["system:nodes".to_owned()]).unwrap();
        let cert = ca
            .sign_request(&csr, CertUsage::Client, Duration::seconds(600))
            .unwrap();
        let info = cert_info(&cert).unwrap();
        assert_eq!(info.identity.user, "system:node:w1");
        assert_eq!(info.identity.groups, vec!["system:nodes".to_owned()]);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(info.not_before <= now && now < info.not_after, "{info:?}");
        assert!((info.not_after - now - 600).abs() < 60, "{info:?}");
        assert!(cert_info("not a certificate").is_err());
    }

    #[test]
    fn a_key_matches_only_its_own_certificate() {
        let ca = ClusterCa::generate("test").unwrap();
        let (csr, key) = new_request("system:node:w1", &[]).unwrap();
        let (_, other_key) = new_request("system:node:w1", &[]).unwrap();
        let cert = ca
            .sign_request(&csr, CertUsage::Client, Duration::seconds(600))
            .unwrap();
        assert!(key_matches_cert(&cert, &key).unwrap());
        assert!(!key_matches_cert(&cert, &other_key).unwrap());
        assert!(key_matches_cert(&cert, "garbage").is_err());
    }

    #[test]
    fn garbage_is_refused_with_what_was_read() {
        let err = ClusterCa::from_pem("nope", "nope").unwrap_err();
        assert!(err.to_string().contains("the CA key"), "{err}");
        let ca = ClusterCa::generate("test").unwrap();
        let err = ca
            .sign_request(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                CertUsage::Client,
                Duration::days(1),
            )
            .unwrap_err();
        assert!(err.to_string().contains("certificate request"), "{err}");
    }

    #[test]
    fn server_names_may_be_dns_names_or_ip_addresses() {
        let ca = ClusterCa::generate("test").unwrap();
        let issued = ca.issue(&CertRequest {
            common_name: "master-1".into(),
            organizations: vec![],
            subject_alt_names: vec!["localhost".into(), "127.0.0.1".into()],
            usage: CertUsage::ServerAndClient,
            validity: DEFAULT_CERT_VALIDITY,
        });
        assert!(issued.is_ok());
    }
}
