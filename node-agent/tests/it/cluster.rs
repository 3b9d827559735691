//! An API gateway over the in-memory store on an ephemeral port, a client for it, and a
//! node agent on a chosen runtime — everything the agent scenarios need, in-process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api_gateway::testing::MemKv;
use api_gateway::{serve_with, Registry, ServeOptions, TokenFile, UserInfo};
use node_agent::{Agent, AgentConfig, BackoffPolicy, ContainerRuntime, LABEL_NODE_NAME};
use rafter_client::ResolvedConfig;
use rafter_client::{Client, ClientOptions};
use rafter_proto::v1::{Namespace, ObjectMeta, Pod};
use rafter_proto::{Kind, Object};

use crate::harness::{eventually, eventually_within, unique, Runtime, DELETION_DEADLINE};

const ADMIN_TOKEN: &str = "agent-tests-admin";

/// A gateway and an admin client.
pub struct Cluster {
    pub client: Client,
    /// The gateway's port.
    pub port: u16,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_on("127.0.0.1").await
    }

    /// A gateway listening on `address` (the admin client still uses 127.0.0.1).
    pub async fn start_on(address: &str) -> Cluster {
        let store = Arc::new(MemKv::new().unwrap());
        let registry = Registry::new(store.clone());
        let mut tokens = TokenFile::default();
        tokens.insert(
            ADMIN_TOKEN,
            UserInfo::new("admin", ["system:masters".to_owned()]),
        );
        let listener = tokio::net::TcpListener::bind((address, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The gateway issues ServiceAccount tokens (the agent's token volumes).
        let keys = api_gateway::generate_signing_key()
            .and_then(|pem| api_gateway::TokenKeys::from_pem(&pem))
            .unwrap();
        let options = ServeOptions {
            service_account_keys: Some(Arc::new(keys)),
            ..ServeOptions::default()
        };
        tokio::spawn(async move {
            let _ = serve_with(
                listener,
                None,
                registry,
                store,
                Arc::new(tokens),
                options,
                async {
                    let _ = rx.await;
                },
            )
            .await;
        });
        let client = admin_client(&format!("http://127.0.0.1:{port}")).await;
        for ns in ["default", "kube-node-lease"] {
            let namespace = Namespace {
                metadata: Some(ObjectMeta {
                    name: ns.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let _ = client.create(Object::Namespace(namespace)).await;
        }
        Cluster {
            client,
            port,
            _shutdown: tx,
        }
    }

    pub async fn pod(&self, name: &str) -> Option<Pod> {
        match self.client.get(Kind::Pod, "default", name).await {
            Ok(Object::Pod(p)) => Some(p),
            Err(e) if e.reason() == "NotFound" => None,
            other => panic!("get pod {name}: {other:?}"),
        }
    }

    /// Waits until pod `name` satisfies `check`; returns the value it gave.
    pub async fn wait_pod<T>(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Pod) -> Option<T>,
    ) -> T {
        eventually(&format!("pod {name}: {what}"), || async {
            self.pod(name).await.as_ref().and_then(&check)
        })
        .await
    }

    /// Waits until pod `name` is gone from the API (see [`DELETION_DEADLINE`]).
    pub async fn wait_gone(&self, name: &str) {
        eventually_within(
            DELETION_DEADLINE,
            || format!("pod {name} to be gone from the API"),
            || async { self.pod(name).await.is_none().then_some(()) },
        )
        .await
    }

    pub async fn create_pod(&self, pod: Pod) -> Pod {
        match self.client.create(Object::Pod(pod)).await.unwrap() {
            Object::Pod(p) => p,
            other => panic!("created {other:?}"),
        }
    }
}

/// An admin client (plaintext, the admin token) of the gateway at `endpoint`.
pub async fn admin_client(endpoint: &str) -> Client {
    let config = ResolvedConfig {
        context: String::new(),
        endpoints: vec![endpoint.to_owned()],
        ca_pem: None,
        identity: None,
        token: Some(ADMIN_TOKEN.to_owned()),
        namespace: "default".to_owned(),
        insecure: true,
    };
    let options = ClientOptions {
        total_timeout: Duration::from_secs(10),
        attempt_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    Client::connect_with(config, options).await.unwrap()
}

/// A node agent with fast back-off and resync, on its own data dir.
pub struct TestNode {
    pub name: String,
    pub runtime: Runtime,
    pub agent: Option<Agent>,
    pub data: tempfile::TempDir,
    pub manifest_dir: Option<PathBuf>,
    /// Applied to the agent's config on every (re)start.
    pub tweak: Arc<dyn Fn(&mut AgentConfig) + Send + Sync>,
    client: Client,
}

impl TestNode {
    pub async fn start(cluster: &Cluster, runtime: Runtime) -> TestNode {
        TestNode::start_with(cluster, runtime, |_| {}).await
    }

    /// Like [`TestNode::start`], with `tweak` applied to the agent's config.
    pub async fn start_with(
        cluster: &Cluster,
        runtime: Runtime,
        tweak: impl Fn(&mut AgentConfig) + Send + Sync + 'static,
    ) -> TestNode {
        let mut node = TestNode {
            name: unique("node"),
            runtime,
            agent: None,
            data: tempfile::tempdir().unwrap(),
            manifest_dir: None,
            tweak: Arc::new(tweak),
            client: cluster.client.clone(),
        };
        node.restart().await;
        node
    }

    pub fn config(&self) -> AgentConfig {
        let mut config = AgentConfig::new(self.name.clone(), self.data.path());
        config.lease_interval = Duration::from_millis(300);
        config.resync = Duration::from_millis(300);
        config.node_ip = Some("127.0.0.1".to_owned());
        config.backoff = BackoffPolicy {
            base: Duration::from_millis(400),
            max: Duration::from_secs(3),
        };
        config.manifest_dir = self.manifest_dir.clone();
        // Tests share one containerd: only a test that asks for it collects images.
        config.image_gc = None;
        (self.tweak)(&mut config);
        config
    }

    /// Starts the agent (stopping a running one first).
    pub async fn restart(&mut self) {
        self.stop().await;
        let api: Arc<dyn node_agent::ApiClient> = Arc::new(self.client.clone());
        let agent = Agent::start(self.config(), self.runtime.clone(), api)
            .await
            .unwrap();
        self.agent = Some(agent);
    }

    /// Stops the agent; containers keep running.
    pub async fn stop(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.config().log_dir()
    }

    /// Sandboxes of this node in the runtime.
    pub async fn sandboxes(&self) -> Vec<node_agent::Sandbox> {
        self.runtime
            .list_sandboxes()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.labels.get(LABEL_NODE_NAME) == Some(&self.name))
            .collect()
    }
}

impl Drop for TestNode {
    /// A failing test leaves no containerd pods behind: stop the agent (else it would
    /// restart what is removed), then remove this node's sandboxes through a fresh client
    /// on a fresh runtime (the test's runtime may be unwinding).
    fn drop(&mut self) {
        drop(self.agent.take());
        if self.runtime.backend() != "containerd" {
            return;
        }
        let Some(sock) = std::env::var_os("RAFTER_CONTAINERD_SOCK") else {
            return;
        };
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(client) =
                    node_agent::ContainerdRuntime::new(node_agent::ContainerdConfig::new(sock))
                else {
                    return;
                };
                // A pod worker that was mid-sync when the agent stopped may still create
                // one sandbox: sweep until a pass finds none.
                for _ in 0..5 {
                    let mine: Vec<_> = client
                        .list_sandboxes()
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|sb| sb.labels.get(LABEL_NODE_NAME) == Some(&name))
                        .collect();
                    if mine.is_empty() {
                        return;
                    }
                    for sb in mine {
                        let _ = client.stop_sandbox(&sb.id).await;
                        let _ = client.remove_sandbox(&sb.id).await;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        })
        .join();
    }
}
