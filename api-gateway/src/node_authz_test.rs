use super::*;
use crate::auth::UserInfo;
use rafter_proto::parse_object;

fn node_user(name: &str) -> UserInfo {
    UserInfo::new(format!("system:node:{name}"), [NODES_GROUP.to_owned()])
}

fn graph() -> NodeGraph {
    let mut g = NodeGraph::default();
    for yaml in [
        "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  nodeName: n1
  imagePullSecrets: [{name: registry}]
  volumes:
  - {name: cfg, configMap: {name: web-config}}
  - {name: tls, secret: {secretName: web-tls}}
  - {name: data, persistentVolumeClaim: {claimName: web-data}}
  containers:
  - name: c
    image: busybox
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db-password, key: p}}
    envFrom:
    - configMapRef: {name: web-env}
",
        "apiVersion: v1
kind: Pod
metadata: {name: other, namespace: shop}
spec:
  nodeName: n2
  volumes: [{name: s, secret: {secretName: other-secret}}]
  containers: [{name: c, image: busybox}]
",
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: web-data, namespace: shop}
spec: {volumeName: pv-7, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
",
    ] {
        g.put(&parse_object(yaml, "t").unwrap());
    }
    g
}

fn authorizer(g: NodeGraph) -> NodeAuthorizer {
    NodeAuthorizer::new(move |check| check(&g))
}

#[test]
fn a_node_reads_only_what_its_pods_reference() {
    let a = authorizer(graph());
    let n1 = node_user("n1");
    let get = |kind, ns: &'static str, name: &'static str| {
        a.authorize(
            &Attributes::resource(&n1, "get", kind)
                .namespace(ns)
                .name(name),
        )
    };
    for (kind, name) in [
        (Kind::Secret, "registry"),
        (Kind::Secret, "web-tls"),
        (Kind::Secret, "db-password"),
        (Kind::ConfigMap, "web-config"),
        (Kind::ConfigMap, "web-env"),
        (Kind::PersistentVolumeClaim, "web-data"),
        (Kind::ServiceAccount, "default"),
        (Kind::Pod, "web"),
    ] {
        assert_eq!(get(kind, "shop", name), Decision::Allow, "{kind} {name}");
    }
    assert_eq!(get(Kind::PersistentVolume, "", "pv-7"), Decision::Allow);
    for (kind, ns, name) in [
        (Kind::Secret, "shop", "other-secret"),
        (Kind::Secret, "kube-system", "web-tls"),
        (Kind::Pod, "shop", "other"),
        (Kind::PersistentVolume, "", "pv-8"),
    ] {
        let Decision::Deny(why) = get(kind, ns, name) else {
            panic!("n1 read {kind} {ns}/{name}");
        };
        assert!(why.contains("\"n1\"") && why.contains(name), "{why}");
    }
    let list = Attributes::resource(&n1, "list", Kind::Secret);
    assert!(matches!(a.authorize(&list), Decision::Deny(_)));
}

#[test]
fn a_node_lists_its_own_pods_and_writes_only_its_own_objects() {
    let a = authorizer(graph());
    let n1 = node_user("n1");
    let pods = |verb, selector| {
        a.authorize(&Attributes {
            target: Target::resource(Kind::Pod).field_selector(selector),
            ..Attributes::resource(&n1, verb, Kind::Pod)
        })
    };
    assert_eq!(pods("watch", "spec.nodeName=n1"), Decision::Allow);
    assert_eq!(pods("list", "spec.nodeName=n1"), Decision::Allow);
    assert!(matches!(
        pods("list", "spec.nodeName=n2"),
        Decision::Deny(_)
    ));
    assert!(matches!(pods("list", ""), Decision::Deny(_)));
    let on = |verb, kind, sub, ns, name| {
        a.authorize(
            &Attributes::resource(&n1, verb, kind)
                .subresource(sub)
                .namespace(ns)
                .name(name),
        )
    };
    assert_eq!(
        on("update", Kind::Node, "status", "", "n1"),
        Decision::Allow
    );
    assert_eq!(on("create", Kind::Node, "", "", "n1"), Decision::Allow);
    // Every Node is readable: the agent routes to the other nodes' pods.
    for verb in ["get", "list", "watch"] {
        assert_eq!(
            on(verb, Kind::Node, "", "", "n2"),
            Decision::Allow,
            "{verb}"
        );
    }
    assert_eq!(
        on("update", Kind::Lease, "", "kube-node-lease", "n1"),
        Decision::Allow
    );
    assert_eq!(
        on("update", Kind::Pod, "status", "shop", "web"),
        Decision::Allow
    );
    assert_eq!(on("delete", Kind::Pod, "", "shop", "web"), Decision::Allow);
    for (verb, kind, sub, ns, name) in [
        ("update", Kind::Node, "status", "", "n2"),
        ("update", Kind::Node, "", "", "n2"),
        ("patch", Kind::Node, "", "", "n2"),
        ("delete", Kind::Node, "", "", "n2"),
        ("delete", Kind::Node, "", "", "n1"),
        ("update", Kind::Lease, "", "kube-node-lease", "n2"),
        ("update", Kind::Pod, "status", "shop", "other"),
        ("delete", Kind::Pod, "", "shop", "other"),
        ("create", Kind::Pod, "binding", "shop", "other"),
        ("create", Kind::Pod, "eviction", "shop", "other"),
        ("delete", Kind::Deployment, "", "shop", "web"),
        ("create", Kind::Role, "", "shop", "r"),
        ("create", Kind::ConfigMap, "", "kube-system", "x"),
        (
            "update",
            Kind::CertificateSigningRequest,
            "approval",
            "",
            "csr-1",
        ),
    ] {
        assert!(
            matches!(on(verb, kind, sub, ns, name), Decision::Deny(_)),
            "n1 may not {verb} {kind}/{sub} {ns}/{name}"
        );
    }
}

#[test]
fn a_node_creates_only_mirror_pods_bound_to_itself() {
    let a = authorizer(graph());
    let n1 = node_user("n1");
    let pod = |node: &str, mirror: bool| {
        let annotations = if mirror {
            "annotations: {kubernetes.io/config.mirror: abc}"
        } else {
            "annotations: {}"
        };
        parse_object(
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: m, namespace: kube-system, {annotations}}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: busybox}}]}}\n"
            ),
            "t",
        )
        .unwrap()
    };
    let create = |object: &Object| {
        a.authorize(&Attributes {
            object: Some(object),
            ..Attributes::resource(&n1, "create", Kind::Pod).namespace("kube-system")
        })
    };
    assert_eq!(create(&pod("n1", true)), Decision::Allow);
    assert!(matches!(create(&pod("n2", true)), Decision::Deny(_)));
    assert!(matches!(create(&pod("n1", false)), Decision::Deny(_)));
}

#[test]
fn other_users_get_no_opinion_and_a_moved_pod_moves_its_grants() {
    let mut g = graph();
    let jane = UserInfo::new("jane", Vec::new());
    let a = authorizer(g.clone());
    let secret = Attributes::resource(&jane, "get", Kind::Secret)
        .namespace("shop")
        .name("web-tls");
    assert_eq!(a.authorize(&secret), Decision::NoOpinion);
    let not_a_node = UserInfo::new("system:node:n1", Vec::new());
    assert_eq!(
        a.authorize(&Attributes {
            user: &not_a_node,
            ..secret.clone()
        }),
        Decision::NoOpinion,
        "a node's name without the nodes group is not a node"
    );
    let web = parse_object(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {nodeName: n1, containers: [{name: c, image: busybox}]}\n",
        "t",
    )
    .unwrap();
    g.remove(&web);
    assert!(!g.referenced_by("n1", Kind::Secret, "shop", "web-tls"));
    assert!(!g.pod_on("n1", "shop", "web"));
    assert!(g.pod_on("n2", "shop", "other"));
}

#[test]
fn a_node_reads_services_endpoints_and_endpoint_slices_and_writes_none() {
    let a = authorizer(graph());
    let n1 = node_user("n1");
    for kind in [Kind::Service, Kind::Endpoints, Kind::EndpointSlice] {
        for verb in ["get", "list", "watch"] {
            let request = Attributes::resource(&n1, verb, kind).namespace("shop");
            assert_eq!(a.authorize(&request), Decision::Allow, "{verb} {kind}");
        }
        for verb in ["create", "update", "delete"] {
            let request = Attributes::resource(&n1, verb, kind)
                .namespace("shop")
                .name("web");
            assert!(
                matches!(a.authorize(&request), Decision::Deny(_)),
                "n1 may not {verb} {kind}"
            );
        }
    }
}

#[test]
fn a_relisted_kind_is_adopted_whole_and_the_other_kinds_stay() {
    let mut live = graph();
    let mut listed = NodeGraph::default();
    listed.put(
        &parse_object(
            "apiVersion: v1
kind: Pod
metadata: {name: moved, namespace: shop}
spec:
  nodeName: n3
  volumes: [{name: data, persistentVolumeClaim: {claimName: web-data}}]
  containers: [{name: c, image: busybox}]
",
            "t",
        )
        .unwrap(),
    );
    live.adopt(Kind::Pod, listed);
    assert!(!live.pod_on("n1", "shop", "web"));
    assert!(!live.referenced_by("n1", Kind::Secret, "shop", "web-tls"));
    assert!(live.pod_on("n3", "shop", "moved"));
    // The claim was not relisted: it stays, and leads the new pod's node to its volume.
    assert!(live.referenced_by("n3", Kind::PersistentVolume, "", "pv-7"));
}

fn pod_with_secret(name: &str, node: &str, secret: &str) -> Object {
    parse_object(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  nodeName: {node}\n  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]\n  containers: [{{name: c, image: busybox}}]\n"
        ),
        "t",
    )
    .unwrap()
}

#[test]
fn pods_of_one_shape_share_their_strings_and_reference_lists() {
    let mut g = NodeGraph::default();
    for (name, node) in [("a", "n1"), ("b", "n1"), ("c", "n2")] {
        g.put(&pod_with_secret(name, node, "shared"));
    }
    let shop = &g.pods["shop"];
    let (a, b, c) = (&shop["a"], &shop["b"], &shop["c"]);
    assert!(Arc::ptr_eq(&a.references, &b.references));
    assert!(Arc::ptr_eq(&a.references, &c.references));
    assert!(Arc::ptr_eq(&a.node, &b.node));
    assert!(!Arc::ptr_eq(&a.node, &c.node));
    assert!(g.referenced_by("n2", Kind::Secret, "shop", "shared"));
    assert!(!g.referenced_by("n2", Kind::Secret, "other", "shared"));
}

#[test]
fn interned_names_no_pod_holds_are_swept() {
    let mut g = NodeGraph::default();
    // Pods come and go, each with a secret of its own; one stays.
    g.put(&pod_with_secret("kept", "n1", "kept-secret"));
    for i in 0..5_000 {
        let pod = pod_with_secret(&format!("p{i}"), &format!("n{}", i % 7), &format!("s{i}"));
        g.put(&pod);
        assert!(g.referenced_by(
            &format!("n{}", i % 7),
            Kind::Secret,
            "shop",
            &format!("s{i}")
        ));
        g.remove(&pod);
    }
    let held = g.interned.names.len() + g.interned.references.len();
    assert!(held < 3_000, "{held} interned entries for 1 pod");
    assert!(g.referenced_by("n1", Kind::Secret, "shop", "kept-secret"));
    assert!(!g.referenced_by("n1", Kind::Secret, "shop", "s4999"));
    assert!(!g.pod_on("n1", "shop", "p4999"));
    assert_eq!(g.by_node.len(), 1, "only the kept pod's node is left");
    assert_eq!(g.pods["shop"].len(), 1);
}
