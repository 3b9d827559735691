//! A gateway on an ephemeral loopback port with TLS, and clients for it.

use std::sync::Arc;

use api_gateway::testing::MemKv;
use api_gateway::{
    serve_with, ClusterControl, KvStore, Registry, ServeOptions, ServerTls, TokenFile, UserInfo,
};
use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};
use rafter_proto::api::cluster_client::ClusterClient;
use rafter_proto::api::resources_client::ResourcesClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Status};

pub const ADMIN_TOKEN: &str = "admin-token-for-tests";
pub const JANE_TOKEN: &str = "jane-token-for-tests";

pub struct Gateway<S = MemKv> {
    pub endpoint: String,
    pub ca: ClusterCa,
    pub registry: Registry<S>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub type Client = ResourcesClient<InterceptedService<Channel, TokenInterceptor>>;

#[derive(Clone)]
pub struct TokenInterceptor(Option<String>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("bad token"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

pub async fn start() -> Gateway {
    start_with(ServeOptions::default()).await
}

/// A gateway served with `options` (an audit log).
pub async fn start_with(options: ServeOptions) -> Gateway {
    let store = Arc::new(MemKv::new().unwrap());
    start_on(store.clone(), store, options).await
}

/// A gateway over `store` whose cluster service is `control`, served with `options`.
pub async fn start_on<S: KvStore, C: ClusterControl>(
    store: Arc<S>,
    control: Arc<C>,
    options: ServeOptions,
) -> Gateway<S> {
    let ca = ClusterCa::generate("test").unwrap();
    let server = ca
        .issue(&CertRequest {
            common_name: "master".into(),
            organizations: vec![],
            subject_alt_names: vec!["localhost".into(), "127.0.0.1".into()],
            usage: CertUsage::ServerAndClient,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let mut tokens = TokenFile::default();
    tokens.insert(
        ADMIN_TOKEN,
        UserInfo::new("admin", ["system:masters".to_owned()]),
    );
    tokens.insert(JANE_TOKEN, UserInfo::new("jane", Vec::new()));
    let registry = Registry::new(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let tls = ServerTls {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
        client_ca_pem: ca.cert_pem().to_owned(),
        agent_client: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = registry.clone();
    tokio::spawn(async move {
        serve_with(
            listener,
            Some(tls),
            serving,
            control,
            Arc::new(tokens),
            options,
            async {
                let _ = rx.await;
            },
        )
        .await
        .unwrap();
    });
    Gateway {
        endpoint,
        ca,
        registry,
        _shutdown: tx,
    }
}

impl<S: KvStore> Gateway<S> {
    pub async fn channel(
        &self,
        identity: Option<Identity>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.cert_pem()))
            .domain_name("localhost");
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        Channel::from_shared(self.endpoint.clone())
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await
    }

    pub async fn client(&self, token: Option<&str>) -> Client {
        let channel = self.channel(None).await.unwrap();
        ResourcesClient::with_interceptor(channel, TokenInterceptor(token.map(str::to_owned)))
    }

    /// A client presenting a certificate the cluster CA issued for `user` in `groups`.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        let issued = self
            .ca
            .issue(&CertRequest {
                common_name: user.into(),
                organizations: groups.iter().map(|g| (*g).to_owned()).collect(),
                subject_alt_names: vec![],
                usage: CertUsage::Client,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let channel = self
            .channel(Some(Identity::from_pem(issued.cert_pem, issued.key_pem)))
            .await
            .unwrap();
        ResourcesClient::with_interceptor(channel, TokenInterceptor(None))
    }

    /// Binds ClusterRole `role` to user `user` in `namespace`, as the admin. The grant
    /// takes effect when the gateway's authorization cache sees it: use [`until_allowed`].
    pub async fn grant(&self, role: &str, user: &str, namespace: &str) {
        let binding = rafter_proto::parse_object(
            &format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {user}-{role}, namespace: {namespace}}}\nsubjects: [{{kind: User, name: {user}}}]\nroleRef: {{kind: ClusterRole, name: {role}, apiGroup: rbac.authorization.k8s.io}}\n"
            ),
            "grant",
        )
        .unwrap();
        self.client(Some(ADMIN_TOKEN))
            .await
            .create(rafter_proto::api::CreateRequest {
                object: Some(binding.into()),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap();
    }

    pub async fn cluster_client(
        &self,
        token: Option<&str>,
    ) -> ClusterClient<InterceptedService<Channel, TokenInterceptor>> {
        let channel = self.channel(None).await.unwrap();
        ClusterClient::with_interceptor(channel, TokenInterceptor(token.map(str::to_owned)))
    }
}

/// Runs `call` until it is not refused with PermissionDenied (a grant not yet seen by the
/// gateway's authorization cache), for at most 10 s; its last answer.
pub async fn until_allowed<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match call().await {
            Err(status)
                if status.code() == tonic::Code::PermissionDenied
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}
