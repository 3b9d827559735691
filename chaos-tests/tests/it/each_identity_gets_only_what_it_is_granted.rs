//! Authorization on three real masters over real TLS, one matrix per identity: a node's
//! certificate (`system:node:n1`) gets its own objects and what its pods reference and
//! nothing else; a user bound by a RoleBinding to one namespace gets that namespace's
//! grant only; a user with no bindings gets nothing but questions about itself; and the
//! Raft ports refuse every call from a node's and from an administrator's certificate,
//! with the store's revision and term unchanged. Each row says what it asked of which
//! master, so a failure names the row.

use std::time::{Duration, Instant};

use chaos_tests::Cluster;
use rafter_client::{CertRequest, CertUsage, ClusterCa, DEFAULT_CERT_VALIDITY};
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::parse_object;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

type Client = ResourcesClient<Channel>;

/// A certificate of the cluster's CA for `user` in `groups`, as a TLS identity.
fn identity(cluster: &Cluster, user: &str, groups: &[&str]) -> Identity {
    let pki = cluster.pki_path();
    let ca = ClusterCa::from_pem(
        &std::fs::read_to_string(pki.join("ca.crt")).unwrap(),
        &std::fs::read_to_string(pki.join("ca.key")).unwrap(),
    )
    .unwrap();
    let issued = ca
        .issue(&CertRequest {
            common_name: user.to_owned(),
            organizations: groups.iter().map(|g| (*g).to_owned()).collect(),
            subject_alt_names: Vec::new(),
            usage: CertUsage::Client,
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    Identity::from_pem(issued.cert_pem, issued.key_pem)
}

/// A TLS channel to `port` on localhost, trusting the cluster CA, presenting `identity`.
async fn channel(cluster: &Cluster, port: u16, identity: &Identity) -> Channel {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cluster.ca_pem().unwrap()))
        .identity(identity.clone())
        .domain_name("localhost");
    Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A client of master `index`'s API presenting `identity`.
async fn client_of(cluster: &Cluster, index: usize, identity: &Identity) -> Client {
    let port = cluster.masters()[index].client_port;
    ResourcesClient::new(channel(cluster, port, identity).await)
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

/// One request of a matrix.
#[derive(Clone)]
enum Call {
    Get(&'static str, &'static str, &'static str),
    List(&'static str, &'static str, &'static str),
    Create(String),
    Delete(&'static str, &'static str, &'static str),
    Approve(&'static str),
    Bind(&'static str, &'static str, &'static str),
    Evict(&'static str, &'static str),
}

impl Call {
    fn describe(&self) -> String {
        match self {
            Call::Get(k, ns, n) => format!("get {k} {ns}/{n}"),
            Call::List(k, ns, f) => format!("list {k} in {ns:?} ({f})"),
            Call::Create(yaml) => format!(
                "create {}",
                yaml.lines().take(3).collect::<Vec<_>>().join(" ")
            ),
            Call::Delete(k, ns, n) => format!("delete {k} {ns}/{n}"),
            Call::Approve(n) => format!("approve csr {n}"),
            Call::Bind(ns, n, node) => format!("bind {ns}/{n} to {node}"),
            Call::Evict(ns, n) => format!("evict {ns}/{n}"),
        }
    }

    async fn run(&self, client: &mut Client) -> Result<(), tonic::Status> {
        match self.clone() {
            Call::Get(kind, namespace, name) => client
                .get(api::GetRequest {
                    key: key(kind, namespace, name),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::List(kind, namespace, fields) => client
                .list(api::ListRequest {
                    kind: kind.into(),
                    namespace: namespace.into(),
                    field_selector: fields.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::Create(yaml) => client
                .create(api::CreateRequest {
                    object: Some(typed(&yaml)),
                    dry_run: true,
                    field_manager: Default::default(),
                })
                .await
                .map(|_| ()),
            Call::Delete(kind, namespace, name) => client
                .delete(api::DeleteRequest {
                    key: key(kind, namespace, name),
                    dry_run: true,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::Approve(name) => client
                .approve_certificate(api::CertificateApprovalRequest {
                    name: name.into(),
                    approve: true,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Call::Bind(namespace, name, node) => client
                .bind(api::BindRequest {
                    binding: Some(rafter_proto::v1::Binding {
                        metadata: Some(rafter_proto::v1::ObjectMeta {
                            name: name.into(),
                            namespace: namespace.into(),
                            ..Default::default()
                        }),
                        target: Some(rafter_proto::v1::ObjectReference {
                            kind: "Node".into(),
                            name: node.into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                })
                .await
                .map(|_| ()),
            Call::Evict(namespace, name) => client
                .evict(api::EvictRequest {
                    namespace: namespace.into(),
                    name: name.into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        }
    }
}

/// Runs every row on the masters in turn: refused rows must be PermissionDenied naming
/// `who`; allowed rows must not be refused (asked again for up to 10 s, as a master's
/// authorization cache follows the store a moment behind).
async fn check_matrix(
    cluster: &Cluster,
    identity: &Identity,
    who: &str,
    allowed: &[Call],
    refused: &[Call],
) {
    let mut clients = Vec::new();
    for index in 0..cluster.masters().len() {
        clients.push(client_of(cluster, index, identity).await);
    }
    for (row, call) in allowed.iter().enumerate() {
        let index = row % clients.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match call.run(&mut clients[index]).await {
                Err(status) if status.code() == Code::PermissionDenied => {
                    assert!(
                        Instant::now() < deadline,
                        "{who} was refused {} on master {}: {}",
                        call.describe(),
                        index + 1,
                        status.message()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => break,
            }
        }
    }
    for (row, call) in refused.iter().enumerate() {
        let index = row % clients.len();
        match call.run(&mut clients[index]).await {
            Err(status) if status.code() == Code::PermissionDenied => assert!(
                status.message().contains(who),
                "{}: the refusal does not name {who}: {}",
                call.describe(),
                status.message()
            ),
            other => panic!(
                "{who} was not refused {} on master {}: {other:?}",
                call.describe(),
                index + 1
            ),
        }
    }
}

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

fn secret(namespace: &str, name: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\nstringData: {{k: v}}\n")
}

fn config_map(namespace: &str, name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\n")
}

const WEB: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  nodeName: n1
  volumes: [{name: tls, secret: {secretName: web-tls}}, {name: cfg, configMap: {name: web-config}}]
  containers:
  - name: c
    image: busybox
    env: [{name: P, valueFrom: {secretKeyRef: {name: db-password, key: k}}}]
";

const OTHER: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: shop}\nspec: {nodeName: n2, containers: [{name: c, image: busybox}]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_gets_only_what_it_is_granted() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let mut admin = cluster.client(1).await.unwrap();
    let mut objects = vec![namespace("prod"), namespace("shop")];
    for (ns, name) in [
        ("prod", "db"),
        ("shop", "web-tls"),
        ("shop", "db-password"),
        ("shop", "unrelated"),
    ] {
        objects.push(secret(ns, name));
    }
    objects.push(config_map("shop", "web-config"));
    objects.push(config_map("shop", "other-config"));
    objects.extend([WEB.to_owned(), OTHER.to_owned()]);
    objects.push(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: jane-edit, namespace: shop}\nsubjects: [{kind: User, name: jane}]\nroleRef: {kind: ClusterRole, name: edit, apiGroup: rbac.authorization.k8s.io}\n"
            .to_owned(),
    );
    for yaml in &objects {
        admin
            .create(api::CreateRequest {
                object: Some(typed(yaml)),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .unwrap_or_else(|e| panic!("seeding {yaml}: {e}"));
    }

    // A node's certificate.
    let node = identity(&cluster, "system:node:n1", &["system:nodes"]);
    let node_allowed = vec![
        Call::Get("secrets", "shop", "web-tls"),
        Call::Get("secrets", "shop", "db-password"),
        Call::Get("configmaps", "shop", "web-config"),
        Call::Get("pods", "shop", "web"),
        Call::List("pods", "", "spec.nodeName=n1"),
        Call::Create("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n".into()),
        Call::Create(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n1, namespace: kube-node-lease}\nspec: {holderIdentity: n1}\n"
                .into(),
        ),
        Call::Delete("pods", "shop", "web"),
        Call::List("services", "", ""),
        Call::Get("nodes", "", "n2"),
        Call::List("nodes", "", ""),
    ];
    let node_refused = vec![
        Call::Get("secrets", "shop", "unrelated"),
        Call::Get("secrets", "prod", "db"),
        Call::List("secrets", "", ""),
        Call::List("secrets", "shop", ""),
        Call::Get("configmaps", "shop", "other-config"),
        Call::Get("pods", "shop", "other"),
        Call::List("pods", "", ""),
        Call::List("pods", "", "spec.nodeName=n2"),
        Call::Delete("pods", "shop", "other"),
        Call::Delete("nodes", "", "n2"),
        Call::Create("apiVersion: v1\nkind: Node\nmetadata: {name: n9}\n".into()),
        Call::Create(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n2, namespace: kube-node-lease}\nspec: {holderIdentity: n2}\n"
                .into(),
        ),
        Call::Create(config_map("kube-system", "x")),
        Call::Create(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: shop}\n".into(),
        ),
        Call::Create(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: me-admin}\nsubjects: [{kind: User, name: 'system:node:n1'}]\nroleRef: {kind: ClusterRole, name: cluster-admin}\n".into(),
        ),
        Call::Create(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: mine, namespace: shop}\nspec: {nodeName: n1, containers: [{name: c, image: busybox}]}\n".into(),
        ),
        Call::Approve("node-csr-anything"),
        Call::Bind("shop", "ghost", "n1"),
        Call::Evict("shop", "other"),
        Call::Delete("deployments", "shop", "web"),
        Call::List("namespaces", "", ""),
    ];
    check_matrix(&cluster, &node, "n1", &node_allowed, &node_refused).await;

    // A user bound to `edit` in shop only.
    let jane = identity(&cluster, "jane", &[]);
    let jane_allowed = vec![
        Call::List("pods", "shop", ""),
        Call::Get("pods", "shop", "web"),
        Call::Get("secrets", "shop", "unrelated"),
        Call::Create(config_map("shop", "janes")),
        Call::Delete("pods", "shop", "other"),
        Call::Create(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: busybox}]}}}\n"
                .into(),
        ),
        Call::List("configmaps", "shop", ""),
        Call::Get("deployments", "shop", "d"),
    ];
    let jane_refused = vec![
        Call::List("pods", "prod", ""),
        Call::Get("secrets", "prod", "db"),
        Call::List("secrets", "", ""),
        Call::Create(config_map("prod", "janes")),
        Call::Create(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: escalate, namespace: shop}\nsubjects: [{kind: User, name: jane}]\nroleRef: {kind: ClusterRole, name: cluster-admin}\n".into(),
        ),
        Call::List("nodes", "", ""),
        Call::Delete("nodes", "", "n1"),
        Call::Approve("node-csr-anything"),
    ];
    check_matrix(&cluster, &jane, "jane", &jane_allowed, &jane_refused).await;

    // A user with no bindings: nothing.
    let bob = identity(&cluster, "bob", &["developers"]);
    let bob_refused = vec![
        Call::List("pods", "shop", ""),
        Call::Get("pods", "shop", "web"),
        Call::List("namespaces", "", ""),
        Call::Create(config_map("shop", "bobs")),
        Call::Get("secrets", "shop", "unrelated"),
        Call::Delete("pods", "shop", "web"),
        Call::List("nodes", "", ""),
        Call::Get("configmaps", "shop", "web-config"),
    ];
    check_matrix(&cluster, &bob, "bob", &[], &bob_refused).await;
    // ...but it may ask what it may do.
    let mut bob_client = client_of(&cluster, 0, &bob).await;
    let review = bob_client
        .review_access(api::AccessReviewRequest {
            verb: "get".into(),
            non_resource_path: "/version".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(review.allowed && review.user == "bob", "{review:?}");

    raft_ports_refuse_nodes_and_users(&cluster).await;
}

/// Every Raft call from a node's and from an administrator's certificate of the cluster
/// CA is refused on every member, and nothing moves.
async fn raft_ports_refuse_nodes_and_users(cluster: &Cluster) {
    use rafter_proto::raft::raft_client::RaftClient;
    use rafter_proto::raft::RaftPayload;

    let term = cluster.status(1).await.unwrap().term;
    // The masters' own start-up writes (the kubernetes Endpoints and their slices) settle
    // first, so that any later change could only come from the calls below.
    let before = settled_revision(cluster).await;
    for (who, groups) in [
        ("system:node:n1", &["system:nodes"][..]),
        ("admin", &["system:masters"][..]),
    ] {
        let identity = identity(cluster, who, groups);
        for master in cluster.masters() {
            let channel = channel(cluster, master.peer_port, &identity).await;
            let mut raft = RaftClient::new(channel);
            let payload = || RaftPayload { data: vec![0; 16] };
            let calls = [
                (
                    "client_write",
                    raft.client_write(payload()).await.map(|_| ()),
                ),
                ("read_index", raft.read_index(payload()).await.map(|_| ())),
                (
                    "append_entries",
                    raft.append_entries(payload()).await.map(|_| ()),
                ),
                ("vote", raft.vote(payload()).await.map(|_| ())),
                ("pre_vote", raft.pre_vote(payload()).await.map(|_| ())),
            ];
            for (call, result) in calls {
                let status = result.expect_err(call);
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{who} {call} on member {}: {status:?}",
                    master.id
                );
            }
        }
    }
    assert_eq!(
        cluster.status(1).await.unwrap().term,
        term,
        "no vote moved the term"
    );
    assert_eq!(
        revision(cluster).await,
        before,
        "nothing was written through Raft"
    );
}

/// The store's revision once it has not moved for a second (at most 30 s).
async fn settled_revision(cluster: &Cluster) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = revision(cluster).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = revision(cluster).await;
        if now == last || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// The store's revision now, read linearizably through the API.
async fn revision(cluster: &Cluster) -> String {
    let mut admin = cluster.client(1).await.unwrap();
    admin
        .list(api::ListRequest {
            kind: "namespaces".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .resource_version
}
