//! TLS bootstrap against an in-process gateway serving TLS with a test CA. No controllers
//! run here, so the test itself plays the approver and the signer: it denies a request
//! (the agent must fail naming the reason), or approves and signs it (the agent must
//! store a certificate for system:node:<name> with a private key, and reuse it later
//! without any token).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use api_gateway::testing::MemKv;
use api_gateway::{serve, Registry, ServerTls, TokenFile, UserInfo};
use base64::Engine;
use node_agent::{
    client_certificate, BootstrapError, TlsBootstrapConfig, CLIENT_CERT_FILE, CLIENT_KEY_FILE,
};
use rafter_client::BootstrapToken;
use rafter_client::{cert_info, CertRequest, CertUsage, Client, ClusterCa, DEFAULT_CERT_VALIDITY};
use rafter_client::{ListParams, ResolvedConfig};
use rafter_proto::v1::{CertificateSigningRequest, Namespace, ObjectMeta};
use rafter_proto::{Kind, Object};

use crate::harness::eventually;

const ADMIN_TOKEN: &str = "bootstrap-tests-admin";

struct TlsCluster {
    ca: ClusterCa,
    /// Masters and CA, no credentials.
    cluster: ResolvedConfig,
    admin: Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TlsCluster {
    async fn start() -> TlsCluster {
        let ca = ClusterCa::generate("bootstrap-test").unwrap();
        let serving = ca
            .issue(&CertRequest {
                common_name: "master".into(),
                organizations: vec![],
                subject_alt_names: vec!["127.0.0.1".into(), "localhost".into()],
                usage: CertUsage::Server,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let tls = ServerTls {
            cert_pem: serving.cert_pem,
            key_pem: serving.key_pem,
            client_ca_pem: ca.cert_pem().to_owned(),
            agent_client: None,
        };
        let store = Arc::new(MemKv::new().unwrap());
        let registry = Registry::new(store.clone());
        let mut tokens = TokenFile::default();
        tokens.insert(
            ADMIN_TOKEN,
            UserInfo::new("admin", ["system:masters".to_owned()]),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = serve(
                listener,
                Some(tls),
                registry,
                store,
                Arc::new(tokens),
                async {
                    let _ = rx.await;
                },
            )
            .await;
        });
        let cluster = ResolvedConfig {
            context: String::new(),
            endpoints: vec![format!("https://127.0.0.1:{port}")],
            ca_pem: Some(ca.cert_pem().to_owned()),
            identity: None,
            token: None,
            namespace: "default".to_owned(),
            insecure: false,
        };
        let admin = Client::connect(ResolvedConfig {
            token: Some(ADMIN_TOKEN.to_owned()),
            ..cluster.clone()
        })
        .await
        .unwrap();
        let namespace = Namespace {
            metadata: Some(ObjectMeta {
                name: "kube-system".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        admin.create(Object::Namespace(namespace)).await.unwrap();
        TlsCluster {
            ca,
            cluster,
            admin,
            _shutdown: tx,
        }
    }

    async fn bootstrap_token(&self) -> String {
        let token = BootstrapToken::generate();
        self.admin
            .create(Object::Secret(token.to_secret(None, &[])))
            .await
            .unwrap();
        format!("{}.{}", token.id, token.secret)
    }

    /// The first certificate request filed, once there is one.
    async fn filed_request(&self) -> CertificateSigningRequest {
        eventually("a certificate request", || async {
            let list = self
                .admin
                .list(
                    Kind::CertificateSigningRequest,
                    None,
                    &ListParams::default(),
                )
                .await
                .ok()?;
            list.items.into_iter().find_map(|o| match o {
                Object::CertificateSigningRequest(csr) => Some(csr),
                _ => None,
            })
        })
        .await
    }
}

#[tokio::test]
async fn a_denied_request_fails_the_bootstrap_naming_the_reason() {
    let cluster = TlsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = TlsBootstrapConfig::new("w1", dir.path(), cluster.cluster.clone());
    config.bootstrap_token = Some(cluster.bootstrap_token().await);
    let joining = tokio::spawn(async move { client_certificate(&config).await });
    let csr = cluster.filed_request().await;
    let name = csr.metadata.unwrap().name;
    cluster
        .admin
        .approve_certificate(&name, false, "NotOnTheList", "w1 is not expected")
        .await
        .unwrap();
    let err = joining.await.unwrap().unwrap_err();
    assert!(matches!(err, BootstrapError::Denied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&name)
            && text.contains("NotOnTheList")
            && text.contains("w1 is not expected"),
        "{text}"
    );
    assert!(!dir.path().join(CLIENT_CERT_FILE).exists());
}

#[tokio::test]
async fn a_signed_request_leaves_a_node_certificate_that_is_reused_without_a_token() {
    let cluster = TlsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = cluster.bootstrap_token().await;
    let token_id = token.split('.').next().unwrap().to_owned();
    let mut config = TlsBootstrapConfig::new("w1", dir.path(), cluster.cluster.clone());
    config.bootstrap_token = Some(token);
    let joining = {
        let config = config.clone();
        tokio::spawn(async move { client_certificate(&config).await })
    };
    let csr = cluster.filed_request().await;
    let spec = csr.spec.clone().unwrap();
    assert_eq!(
        spec.signer_name,
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(
        spec.usages,
        ["digital signature", "key encipherment", "client auth"]
    );
    assert_eq!(
        spec.username,
        format!("system:bootstrap:{token_id}"),
        "the gateway records who filed the request"
    );
    // Approve and sign, as the masters' CSR controller does.
    let name = csr.metadata.clone().unwrap().name;
    let approved = cluster
        .admin
        .approve_certificate(&name, true, "TestApprove", "")
        .await
        .unwrap();
    let request = base64::engine::general_purpose::STANDARD
        .decode(&spec.request)
        .unwrap();
    let cert = cluster
        .ca
        .sign_request(
            std::str::from_utf8(&request).unwrap(),
            CertUsage::Client,
            DEFAULT_CERT_VALIDITY,
        )
        .unwrap();
    let mut signed = approved;
    signed
        .status
        .get_or_insert_with(Default::default)
        .certificate = base64::engine::general_purpose::STANDARD.encode(&cert);
    cluster
        .admin
        .update_status(Object::CertificateSigningRequest(signed))
        .await
        .unwrap();

    let (identity, _renew_at) = joining.await.unwrap().unwrap();
    assert_eq!(identity.cert_pem, cert);
    let on_disk = std::fs::read_to_string(dir.path().join(CLIENT_CERT_FILE)).unwrap();
    let info = cert_info(&on_disk).unwrap();
    assert_eq!(info.identity.user, "system:node:w1");
    assert_eq!(info.identity.groups, ["system:nodes"]);
    let key = dir.path().join(CLIENT_KEY_FILE);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is private");

    // The certificate authenticates as the node.
    let as_node = Client::connect(ResolvedConfig {
        identity: Some(identity.clone()),
        ..cluster.cluster.clone()
    })
    .await
    .unwrap();
    let review = as_node
        .review_access(rafter_proto::api::AccessReviewRequest {
            verb: "get".into(),
            kind: "nodes".into(),
            name: "w1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(review.user, "system:node:w1");
    assert!(review.allowed, "a node may read its own Node");

    // A second start uses the stored certificate: no token, no new request.
    config.bootstrap_token = None;
    let (again, _) = client_certificate(&config).await.unwrap();
    assert_eq!(again.cert_pem, cert);
    let requests = cluster
        .admin
        .list(
            Kind::CertificateSigningRequest,
            None,
            &ListParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(requests.items.len(), 1, "no second request was filed");

    // A key that is not the certificate's (a crash between the two writes) is not used.
    let good_key = std::fs::read_to_string(&key).unwrap();
    let (_, stray_key) = rafter_client::new_request("x", &[]).unwrap();
    std::fs::write(&key, stray_key).unwrap();
    let err = client_certificate(&config).await.unwrap_err();
    assert!(err.to_string().contains("not the certificate's"), "{err}");
    std::fs::write(&key, good_key).unwrap();

    // Another node name in the same dir has no usable certificate and no token.
    let other = TlsBootstrapConfig::new("w2", dir.path(), cluster.cluster.clone());
    let err = client_certificate(&other).await.unwrap_err();
    assert!(matches!(err, BootstrapError::NoCredentials { .. }), "{err}");
    assert!(err.to_string().contains("system:node:w1"), "{err}");
}

#[tokio::test]
async fn an_insecure_cluster_cannot_bootstrap_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ResolvedConfig {
        context: String::new(),
        endpoints: vec!["http://127.0.0.1:1".into()],
        ca_pem: None,
        identity: None,
        token: Some("abcdef.0123456789abcdef".into()),
        namespace: "default".into(),
        insecure: true,
    };
    let config = TlsBootstrapConfig::new("w1", dir.path(), cluster);
    let err = client_certificate(&config).await.unwrap_err();
    assert!(matches!(err, BootstrapError::Insecure), "{err}");
}
