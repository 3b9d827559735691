//! Three gateways over one shared in-memory store, as the three masters of one cluster,
//! each behind a loopback proxy that can cut its connections (a dead master) or hold
//! back its replies (a master whose answers are lost), and clients configured with all
//! of them.

use std::sync::Arc;
use std::time::Duration;

use api_gateway::testing::MemKv;
use api_gateway::{
    serve, ClusterControl, KvStore, Registry, ServerTls, StoreError, TokenFile, UserInfo,
};
use rafter_client::{CertRequest, CertUsage, DEFAULT_CERT_VALIDITY};
use rafter_client::{Client, ClientOptions, ClusterCa};
use rafter_client::{ClientIdentity, ResolvedConfig};
use rafter_proto::api::{self, ClusterStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use crate::support::ADMIN_TOKEN;

/// The `Cluster` service's view of master `id`: the shared store, under its own id.
struct Member {
    id: u64,
    store: Arc<MemKv>,
}

#[async_trait::async_trait]
impl ClusterControl for Member {
    async fn status(&self) -> Result<ClusterStatus, StoreError> {
        let mut status = self.store.status().await?;
        status.member_id = self.id;
        Ok(status)
    }

    async fn add_member(
        &self,
        request: api::AddMemberRequest,
    ) -> Result<ClusterStatus, StoreError> {
        self.store.add_member(request).await
    }

    async fn remove_member(&self, id: u64) -> Result<ClusterStatus, StoreError> {
        self.store.remove_member(id).await
    }

    async fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        self.store.snapshot().await
    }
}

/// A TCP proxy in front of one gateway.
struct Proxy {
    accepting: Option<JoinHandle<()>>,
    hold_replies: watch::Sender<bool>,
}

impl Proxy {
    async fn start(backend: std::net::SocketAddr) -> (Proxy, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hold_replies, holding) = watch::channel(false);
        let accepting = tokio::spawn(async move {
            // Dropped with this task: every connection is cut with it.
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut holding = holding.clone();
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let (_never, mut no_hold) = watch::channel(false);
                    tokio::join!(
                        pipe(client_read, server_write, &mut no_hold),
                        pipe(server_read, client_write, &mut holding),
                    );
                });
                while connections.try_join_next().is_some() {}
            }
        });
        (
            Proxy {
                accepting: Some(accepting),
                hold_replies,
            },
            port,
        )
    }

    /// Closes the listener and every connection.
    async fn cut(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Copies bytes one way; while `hold` is true, what was read waits.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hold: &mut watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hold.wait_for(|held| !*held).await.is_err() {
            break;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One master: a gateway and the proxy clients reach it through.
pub struct Master {
    /// `https://127.0.0.1:PORT` of the proxy.
    pub endpoint: String,
    /// `127.0.0.1:PORT`, as error messages name it.
    pub address: String,
    proxy: Proxy,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl Master {
    /// Shuts the gateway down and cuts every connection to it: clients see a dead master.
    pub async fn kill(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.proxy.cut().await;
        if let Some(serving) = self.serving.take() {
            tokio::time::timeout(Duration::from_secs(10), serving)
                .await
                .expect("the gateway stops once its connections are gone")
                .unwrap();
        }
    }

    /// While `hold` is true the master's replies are held back: requests arrive and are
    /// carried out, their answers are not seen.
    pub fn hold_replies(&self, hold: bool) {
        self.proxy.hold_replies.send_replace(hold);
    }
}

/// Three masters of one cluster.
pub struct Masters {
    pub ca: ClusterCa,
    pub masters: Vec<Master>,
}

impl Masters {
    pub async fn start(count: usize) -> Masters {
        let store = Arc::new(MemKv::new().unwrap());
        Masters::start_over(count, store.clone(), store).await
    }

    /// Masters whose registries use `kv` (a wrapper of `store`, say, that injects
    /// faults); the Cluster service reads `store`.
    pub async fn start_over<S: KvStore>(count: usize, store: Arc<MemKv>, kv: Arc<S>) -> Masters {
        let ca = ClusterCa::generate("client-tests").unwrap();
        let mut tokens = TokenFile::default();
        tokens.insert(
            ADMIN_TOKEN,
            UserInfo::new("admin", ["system:masters".to_owned()]),
        );
        let tokens = Arc::new(tokens);
        let mut masters = Vec::new();
        for id in 0..count {
            let server = ca
                .issue(&CertRequest {
                    common_name: format!("master-{id}"),
                    organizations: vec![],
                    subject_alt_names: vec!["localhost".into(), "127.0.0.1".into()],
                    usage: CertUsage::ServerAndClient,
                    validity: DEFAULT_CERT_VALIDITY,
                })
                .unwrap();
            let tls = ServerTls {
                cert_pem: server.cert_pem,
                key_pem: server.key_pem,
                client_ca_pem: ca.cert_pem().to_owned(),
                agent_client: None,
            };
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let backend = listener.local_addr().unwrap();
            let (shutdown, stop) = oneshot::channel::<()>();
            let control = Arc::new(Member {
                id: id as u64 + 1,
                store: store.clone(),
            });
            let serving = tokio::spawn(serve(
                listener,
                Some(tls),
                Registry::new(kv.clone()),
                control,
                tokens.clone(),
                async {
                    let _ = stop.await;
                },
            ));
            let serving = tokio::spawn(async move {
                serving.await.unwrap().unwrap();
            });
            let (proxy, port) = Proxy::start(backend).await;
            masters.push(Master {
                endpoint: format!("https://127.0.0.1:{port}"),
                address: format!("127.0.0.1:{port}"),
                proxy,
                shutdown: Some(shutdown),
                serving: Some(serving),
            });
        }
        Masters { ca, masters }
    }

    /// A config naming every master, with `token`.
    pub fn config(&self, token: Option<&str>) -> ResolvedConfig {
        ResolvedConfig {
            context: "test".into(),
            endpoints: self.masters.iter().map(|m| m.endpoint.clone()).collect(),
            ca_pem: Some(self.ca.cert_pem().to_owned()),
            identity: None,
            token: token.map(str::to_owned),
            namespace: "default".into(),
            insecure: false,
        }
    }

    /// A config presenting a client certificate the cluster CA issued to `user`.
    pub fn certificate_config(&self, user: &str, groups: &[&str]) -> ResolvedConfig {
        let issued = self
            .ca
            .issue(&CertRequest {
                common_name: user.into(),
                organizations: groups.iter().map(|g| g.to_string()).collect(),
                subject_alt_names: vec![],
                usage: CertUsage::Client,
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        ResolvedConfig {
            identity: Some(ClientIdentity {
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
            }),
            ..self.config(None)
        }
    }

    /// An admin client with short budgets, so that failures show quickly.
    pub async fn client(&self) -> Client {
        Client::connect_with(self.config(Some(ADMIN_TOKEN)), quick())
            .await
            .unwrap()
    }
}

/// Budgets for tests: a few seconds in all, one second per attempt.
pub fn quick() -> ClientOptions {
    ClientOptions {
        total_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        keepalive: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}
