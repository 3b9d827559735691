//! Pods pulling their images from a real registry (the `registry` fixture: TLS from a test
//! CA, htpasswd) through a private containerd whose registry `config_path` the agent fills
//! from its registries config (the CA of the test registry). Pods use the host network, so
//! no CNI is needed. Only when `RAFTER_CONTAINERD_SOCK` says containerd is usable here.

use std::sync::Arc;

use base64::Engine;
use node_agent::{ContainerdConfig, ContainerdRuntime, Registries, RegistryConfig, RegistryTls};
use rafter_client::ListParams;
use rafter_proto::v1::{Container, LocalObjectReference, ObjectMeta, Pod, Secret, ServiceAccount};
use rafter_proto::{Kind, Object};

use crate::agent::{container, delete_and_wait, pod, running};
use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, PrivateContainerd};
use crate::registry::TestRegistry;

/// A registry, a private containerd trusting it through the agent's registries config, a
/// gateway and an agent.
struct Env {
    registry: TestRegistry,
    cluster: Cluster,
    node: TestNode,
    containerd: PrivateContainerd,
}

async fn env() -> Option<Env> {
    env_trusting(true).await
}

/// An [`Env`] whose agent names the registry in its registries config, with the test CA
/// when `trust` (else containerd speaks https to it but cannot verify it).
async fn env_trusting(trust: bool) -> Option<Env> {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return None;
    }
    crate::harness::capture_logs();
    let registry = TestRegistry::start("puller", "right-password");
    let bridge = format!("rpull{}", std::process::id() % 100_000);
    let (containerd, sock) = PrivateContainerd::start(&bridge, None);
    let rt = Arc::new(
        ContainerdRuntime::connect(ContainerdConfig::new(sock))
            .await
            .unwrap(),
    );
    let cluster = Cluster::start().await;
    let mut registries = Registries::default();
    registries.configs.insert(
        registry.host.clone(),
        RegistryConfig {
            auth: None,
            tls: trust.then(|| RegistryTls {
                ca_file: Some(registry.ca_file()),
                ..Default::default()
            }),
        },
    );
    let certs = containerd.certs_dir();
    let node = TestNode::start_with(&cluster, rt, move |c| {
        c.registries = registries.clone();
        c.registry_hosts_dir = Some(certs.clone());
    })
    .await;
    Some(Env {
        registry,
        cluster,
        node,
        containerd,
    })
}

impl Env {
    /// Pushes the busybox archive under `repository:tag`; the image reference.
    fn push_busybox(&self, repository_and_tag: &str) -> String {
        self.registry.push(
            &self.containerd.images_dir().join("busybox.tar"),
            repository_and_tag,
        )
    }

    /// A `kubernetes.io/dockerconfigjson` Secret `name` with a login for the registry.
    async fn pull_secret(&self, name: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", self.registry.user));
        let json = serde_json::json!({"auths": {self.registry.host.clone(): {"auth": auth}}});
        let secret = Secret {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            r#type: "kubernetes.io/dockerconfigjson".into(),
            data: rafter_proto::StringMap::from([(
                ".dockerconfigjson".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(json.to_string()),
            )]),
            ..Default::default()
        };
        self.cluster
            .client
            .create(Object::Secret(secret))
            .await
            .unwrap();
    }

    /// A host-network pod running `image` (`sleep`), with these pull Secrets.
    fn pod(&self, name: &str, image: &str, secrets: &[&str]) -> Pod {
        let app = Container {
            name: "app".into(),
            image: image.into(),
            command: vec!["sh".into(), "-c".into(), "exec sleep 3600".into()],
            ..Default::default()
        };
        let mut p = pod(name, &self.node.name, vec![app]);
        let spec = p.spec.as_mut().unwrap();
        spec.host_network = true;
        spec.image_pull_secrets = secrets
            .iter()
            .map(|s| LocalObjectReference { name: (*s).into() })
            .collect();
        p
    }

    /// The messages of the pod's events with `reason`.
    async fn events(&self, pod: &str, reason: &str) -> Vec<String> {
        let list = self
            .cluster
            .client
            .list(Kind::Event, Some("default"), &ListParams::default())
            .await
            .unwrap();
        list.items
            .into_iter()
            .filter_map(|o| match o {
                Object::Event(e) => Some(e),
                _ => None,
            })
            .filter(|e| {
                e.reason == reason && e.involved_object.as_ref().is_some_and(|o| o.name == pod)
            })
            .map(|e| e.message)
            .collect()
    }

    /// Waits until the pod has an event with `reason` whose message contains `text`
    /// (events are written after the fact, in the order they were recorded); the message.
    async fn wait_event(&self, pod: &str, reason: &str, text: &str) -> String {
        eventually(
            &format!("a {reason} event of {pod} saying {text}"),
            || async {
                self.events(pod, reason)
                    .await
                    .into_iter()
                    .find(|m| m.contains(text))
            },
        )
        .await
    }

    /// Waits until the pod's container waits with ErrImagePull or ImagePullBackOff, and
    /// its events hold a Failed pull whose message contains `reason`; the message.
    async fn wait_pull_failure(&self, name: &str, reason: &str) -> String {
        self.cluster
            .wait_pod(name, "ErrImagePull or ImagePullBackOff", |p| {
                let waiting = container(p, "app")?.state.as_ref()?.waiting.as_ref()?;
                ["ErrImagePull", "ImagePullBackOff"]
                    .contains(&waiting.reason.as_str())
                    .then_some(())
            })
            .await;
        eventually(
            &format!("a Failed event of {name} saying {reason}"),
            || async {
                self.events(name, "Failed")
                    .await
                    .into_iter()
                    .find(|m| m.to_lowercase().contains(reason))
            },
        )
        .await
    }

    async fn image_id(&self, name: &str) -> String {
        self.cluster
            .wait_pod(name, "running with an image id", |p| {
                running(p)?;
                let id = container(p, "app")?.image_id.clone();
                (!id.is_empty()).then_some(id)
            })
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_runs_only_with_the_right_pull_secret() {
    let Some(env) = env().await else { return };
    let image = env.push_busybox("private/busybox:1");
    env.pull_secret("right", "right-password").await;
    env.pull_secret("wrong", "wrong-password").await;

    env.cluster
        .create_pod(env.pod("nosecret", &image, &[]))
        .await;
    let message = env.wait_pull_failure("nosecret", "unauthorized").await;
    assert!(message.contains(&image), "{message}");
    assert_eq!(
        env.cluster
            .pod("nosecret")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase,
        "Pending"
    );

    env.cluster
        .create_pod(env.pod("wrongpassword", &image, &["wrong"]))
        .await;
    env.wait_pull_failure("wrongpassword", "unauthorized").await;

    // The right login after a wrong one: each applicable login is tried in turn.
    env.cluster
        .create_pod(env.pod("withsecret", &image, &["wrong", "right"]))
        .await;
    env.cluster.wait_pod("withsecret", "Running", running).await;
    env.wait_event("withsecret", "Pulled", "Successfully pulled")
        .await;
    assert!(!env.events("withsecret", "Pulling").await.is_empty());

    for name in ["nosecret", "wrongpassword", "withsecret"] {
        delete_and_wait(&env.cluster, &env.node, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_accounts_pull_secrets_reach_its_pods() {
    let Some(env) = env().await else { return };
    let image = env.push_busybox("private/sa-busybox:1");
    env.pull_secret("sa-login", "right-password").await;
    let account = ServiceAccount {
        metadata: Some(ObjectMeta {
            name: "puller".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        image_pull_secrets: vec![LocalObjectReference {
            name: "sa-login".into(),
        }],
        ..Default::default()
    };
    env.cluster
        .client
        .create(Object::ServiceAccount(account))
        .await
        .unwrap();
    let mut p = env.pod("viasa", &image, &[]);
    p.spec.as_mut().unwrap().service_account_name = "puller".into();
    let created = env.cluster.create_pod(p).await;
    let secrets: Vec<_> = created
        .spec
        .as_ref()
        .unwrap()
        .image_pull_secrets
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(
        secrets,
        ["sa-login"],
        "admission copies the account's pull secrets"
    );
    env.cluster.wait_pod("viasa", "Running", running).await;
    delete_and_wait(&env.cluster, &env.node, "viasa").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_pulls_again_after_the_tag_moves() {
    let Some(env) = env().await else { return };
    env.pull_secret("login", "right-password").await;
    // :latest means imagePullPolicy Always.
    let image = env.push_busybox("moving/app:latest");
    env.cluster
        .create_pod(env.pod("first", &image, &["login"]))
        .await;
    let first = env.image_id("first").await;
    delete_and_wait(&env.cluster, &env.node, "first").await;

    // Another image (the pause archive: same layer, another config) under the same tag.
    env.registry.push(
        &env.containerd.images_dir().join("pause.tar"),
        "moving/app:latest",
    );
    let mut again = env.pod("second", &image, &["login"]);
    // The pause image's own command is a sleep; keep the shell one anyway.
    again.spec.as_mut().unwrap().containers[0].image_pull_policy = "Always".into();
    env.cluster.create_pod(again).await;
    let second = env.image_id("second").await;
    assert_ne!(
        first, second,
        "the second pod runs the image the tag moved to"
    );
    env.wait_event("second", "Pulled", "Successfully pulled")
        .await;
    assert_eq!(env.events("second", "Pulling").await.len(), 1);

    // IfNotPresent does not go to the registry for an image the node has.
    let mut cached = env.pod("cached", &image, &[]);
    cached.spec.as_mut().unwrap().containers[0].image_pull_policy = "IfNotPresent".into();
    env.cluster.create_pod(cached).await;
    assert_eq!(env.image_id("cached").await, second);
    env.wait_event("cached", "Pulled", "already present").await;
    assert!(env.events("cached", "Pulling").await.is_empty());
    for name in ["second", "cached"] {
        delete_and_wait(&env.cluster, &env.node, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_registry_certificate_fails_the_pull_with_a_tls_reason() {
    // The agent names the registry (so containerd speaks https to it, not the plain http
    // it tries first for a loopback address) but gives no CA for it.
    let Some(env) = env_trusting(false).await else {
        return;
    };
    let image = env.push_busybox("tls/app:1");
    env.pull_secret("login", "right-password").await;
    env.cluster
        .create_pod(env.pod("untrusted", &image, &["login"]))
        .await;
    let message = env.wait_pull_failure("untrusted", "x509").await;
    assert!(message.contains(&image), "{message}");
    delete_and_wait(&env.cluster, &env.node, "untrusted").await;
}
