//! A ServiceAccount token from inside a real pod, on three real masters over real TLS: a
//! `rafter agent` on containerd (with a node certificate of the cluster CA, so its token
//! requests pass the Node authorizer) runs a busybox pod as ServiceAccount
//! `sa-team/builder`, which a RoleBinding grants `view` in `sa-team`. The pod prints the
//! token mounted at `/var/run/secrets/kubernetes.io/serviceaccount/token`; read back
//! through `rafter logs`' API, it is allowed what `view` grants in `sa-team` on every
//! master, refused everything else with `User "system:serviceaccount:sa-team:builder"
//! cannot ...`, and refused as a credential once its pod is deleted. Every namespace, old
//! and new, has its `default` ServiceAccount from the controller.
//!
//! Runs when `RAFTER_CONTAINERD_SOCK` names a containerd (`scripts/containerd-setup.sh`);
//! says SKIPPED otherwise.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos_tests::{rafter_binary, Cluster};
use futures::StreamExt;
use rafter_client::{CertRequest, CertUsage, ClusterCa, LogParams, DEFAULT_CERT_VALIDITY};
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Kind};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request, Status};

use crate::support::library_client;

const NODE: &str = "sa-node";
const NAMESPACE: &str = "sa-team";
const USER: &str = "system:serviceaccount:sa-team:builder";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone)]
struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type TokenClient = ResourcesClient<InterceptedService<Channel, Bearer>>;

/// A client of master `port` presenting only `token` (no client certificate).
async fn token_client(cluster: &Cluster, port: u16, token: &str) -> TokenClient {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cluster.ca_pem().unwrap()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer = Bearer(format!("Bearer {token}").parse().unwrap());
    ResourcesClient::with_interceptor(channel, bearer)
}

/// Writes a client certificate of the cluster CA for `system:node:<NODE>` where the
/// agent looks for one (its cert dir), with the CA beside it.
fn node_certificate(cluster: &Cluster, cert_dir: &std::path::Path) {
    let pki = cluster.pki_path();
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let ca = ClusterCa::from_pem(
        &ca_pem,
        &std::fs::read_to_string(pki.join("ca.key")).unwrap(),
    )
    .unwrap();
    let issued = ca
        .issue(&CertRequest {
            common_name: format!("system:node:{NODE}"),
            organizations: vec!["system:nodes".to_owned()],
            subject_alt_names: Vec::new(),
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    std::fs::create_dir_all(cert_dir).unwrap();
    std::fs::write(cert_dir.join("client.crt"), issued.cert_pem).unwrap();
    std::fs::write(cert_dir.join("client.key"), issued.key_pem).unwrap();
    std::fs::write(cert_dir.join("ca.crt"), ca_pem).unwrap();
}

fn typed(yaml: &str) -> TypedObject {
    TypedObject::from(parse_object(yaml, "test").unwrap())
}

fn key(kind: &str, namespace: &str, name: &str) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// One request the pod's token makes.
#[derive(Clone, Debug)]
enum Call {
    Get(&'static str, &'static str, &'static str),
    List(&'static str, &'static str),
    Create(&'static str),
    Delete(&'static str, &'static str, &'static str),
    Token(&'static str),
}

impl Call {
    async fn run(&self, client: &mut TokenClient) -> Result<(), Status> {
        match self.clone() {
            Call::Get(kind, ns, name) => client
                .get(api::GetRequest {
                    key: key(kind, ns, name),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::List(kind, ns) => client
                .list(api::ListRequest {
                    kind: kind.into(),
                    namespace: ns.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::Create(yaml) => client
                .create(api::CreateRequest {
                    object: Some(typed(yaml)),
                    dry_run: true,
                    field_manager: Default::default(),
                })
                .await
                .map(|_| ()),
            Call::Delete(kind, ns, name) => client
                .delete(api::DeleteRequest {
                    key: key(kind, ns, name),
                    dry_run: true,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::Token(sa) => client
                .create_token(api::TokenRequest {
                    namespace: NAMESPACE.into(),
                    service_account: sa.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        }
    }
}

/// The token line the pod printed, read through the API's pods/log.
async fn token_from_pod_log(client: &rafter_client::Client, deadline: Instant) -> String {
    loop {
        let mut stream = Box::pin(client.logs(NAMESPACE, "reader", LogParams::default()));
        let mut text = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.extend(chunk);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        if let Some(token) = text.lines().find_map(|l| l.strip_prefix("token=")) {
            if token.split('.').count() == 3 {
                return token.to_owned();
            }
        }
        if Instant::now() > deadline {
            let pod = client.get(Kind::Pod, NAMESPACE, "reader").await;
            panic!("the pod printed no token within the deadline; log {text:?}; pod {pod:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_service_account_token_gets_only_what_its_binding_grants() {
    let Some(sock) = std::env::var_os("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let (admin, work) = library_client(&cluster).await;
    let cert_dir = work.path().join("agent-pki");
    node_certificate(&cluster, &cert_dir);
    let servers: Vec<String> = cluster
        .masters()
        .iter()
        .map(|m| format!("https://127.0.0.1:{}", m.client_port))
        .collect();
    let agent_log = std::fs::File::create(work.path().join("agent.log")).unwrap();
    let _agent = Agent(
        Command::new(rafter_binary())
            .args(["agent", "--name", NODE, "--runtime", "containerd"])
            .arg("--containerd-socket")
            .arg(&sock)
            .arg("--server")
            .arg(servers.join(","))
            .arg("--ca")
            .arg(cluster.pki_path().join("ca.crt"))
            .arg("--cert-dir")
            .arg(&cert_dir)
            .arg("--data-dir")
            .arg(work.path().join("agent"))
            .args(["--node-ip", "127.0.0.1", "--lease-interval", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()
            .unwrap(),
    );

    for yaml in [
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"),
        format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: builder, namespace: {NAMESPACE}}}\n"),
        format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: builder-view, namespace: {NAMESPACE}}}\nsubjects: [{{kind: ServiceAccount, name: builder}}]\nroleRef: {{kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}}\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {NAMESPACE}}}\nstringData: {{password: s3cret}}\n"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader, namespace: {NAMESPACE}}}\nspec:\n  nodeName: {NODE}\n  serviceAccountName: builder\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: docker.io/local/busybox:1\n    command: [sh, -c, 'echo token=$(cat {MOUNT}/token); echo ns=$(cat {MOUNT}/namespace); exec sleep 3600']\n"
        ),
    ] {
        admin.create(parse_object(&yaml, "test").unwrap()).await.unwrap();
    }

    // The ServiceAccounts controller gave every namespace, old and new, its `default`.
    for namespace in ["default", "kube-system", NAMESPACE] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin
            .get(Kind::ServiceAccount, namespace, "default")
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {namespace}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let token = token_from_pod_log(&admin, Instant::now() + Duration::from_secs(90)).await;

    let allowed = [
        Call::List("pods", NAMESPACE),
        Call::Get("pods", NAMESPACE, "reader"),
        Call::List("configmaps", NAMESPACE),
        Call::List("services", NAMESPACE),
        Call::List("serviceaccounts", NAMESPACE),
        Call::Get("serviceaccounts", NAMESPACE, "builder"),
        Call::List("events", NAMESPACE),
        Call::List("persistentvolumeclaims", NAMESPACE),
        Call::List("deployments", NAMESPACE),
        Call::List("replicasets", NAMESPACE),
        Call::List("jobs", NAMESPACE),
        Call::List("leases", NAMESPACE),
    ];
    let refused = [
        Call::List("secrets", NAMESPACE),
        Call::Get("secrets", NAMESPACE, "db"),
        Call::List("pods", "default"),
        Call::List("pods", ""),
        Call::List("secrets", "kube-system"),
        Call::List("nodes", ""),
        Call::Get("nodes", "", NODE),
        Call::Create("apiVersion: v1\nkind: Pod\nmetadata: {name: more, namespace: sa-team}\nspec: {containers: [{name: c, image: busybox}]}\n"),
        Call::Create("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: sa-team}\n"),
        Call::Create("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: escalate, namespace: sa-team}\nsubjects: [{kind: ServiceAccount, name: builder}]\nroleRef: {kind: ClusterRole, name: admin, apiGroup: rbac.authorization.k8s.io}\n"),
        Call::Create("apiVersion: v1\nkind: Namespace\nmetadata: {name: elsewhere}\n"),
        Call::Create("apiVersion: v1\nkind: Secret\nmetadata: {name: mine, namespace: sa-team}\nstringData: {k: v}\n"),
        Call::Create("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: all, namespace: sa-team}\nrules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n"),
        Call::Create("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: builder-admin}\nsubjects: [{kind: ServiceAccount, name: builder, namespace: sa-team}]\nroleRef: {kind: ClusterRole, name: cluster-admin, apiGroup: rbac.authorization.k8s.io}\n"),
        Call::Delete("pods", NAMESPACE, "reader"),
        Call::Delete("serviceaccounts", NAMESPACE, "builder"),
        Call::Delete("namespaces", "", NAMESPACE),
        Call::List("rolebindings", NAMESPACE),
        Call::List("configmaps", "default"),
        Call::List("leases", "kube-node-lease"),
        Call::List("certificatesigningrequests", ""),
        Call::List("deployments", "default"),
        Call::Token("builder"),
        Call::Token("default"),
    ];
    assert!(allowed.len() >= 8 && refused.len() >= 20);
    for (index, master) in cluster.masters().iter().enumerate() {
        let mut client = token_client(&cluster, master.client_port, &token).await;
        for call in &allowed {
            // The RoleBinding was written a moment ago: give every master's cache time.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match call.run(&mut client).await {
                    Ok(()) => break,
                    Err(s) if s.code() == Code::PermissionDenied && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(s) => panic!("master {index}: {call:?} by the pod's token: {s:?}"),
                }
            }
        }
        for call in &refused {
            match call.run(&mut client).await {
                Err(s) if s.code() == Code::PermissionDenied => assert!(
                    s.message().contains(&format!("User {USER:?} cannot")),
                    "master {index}: {call:?}: {}",
                    s.message()
                ),
                other => panic!("master {index}: {call:?} by the pod's token: expected Forbidden, got {other:?}"),
            }
        }
    }

    // The token is bound to the pod: once the pod is gone, so is the credential.
    admin
        .delete(
            Kind::Pod,
            NAMESPACE,
            "reader",
            &rafter_client::DeleteOptions::default(),
        )
        .await
        .unwrap();
    let mut client = token_client(&cluster, cluster.masters()[0].client_port, &token).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Call::List("pods", NAMESPACE).run(&mut client).await {
            Err(s) if s.code() == Code::Unauthenticated => {
                assert!(
                    s.message().contains("pod sa-team/reader"),
                    "{}",
                    s.message()
                );
                break;
            }
            other if Instant::now() < deadline => {
                let _ = other;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!("the token of a deleted pod still answers: {other:?}"),
        }
    }
}
