use super::*;
use rafter_proto::parse_object;

fn policy(yaml: &str) -> Policy {
    let mut policy = Policy::default();
    for doc in rafter_proto::parse_manifests(yaml, "test") {
        policy.put(&doc.unwrap().object);
    }
    policy
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups.iter().map(|g| (*g).to_owned()))
}

/// The seeds' RBAC examples: a Role `pod-reader` bound to jane in `default`, and a
/// ClusterRole `node-manager` bound to the `ops` group.
const SEEDS: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: default, name: pod-reader}
rules:
- apiGroups: ['']
  resources: [pods]
  verbs: [get, watch, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: default}
subjects:
- {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-manager}
rules:
- apiGroups: ['']
  resources: [nodes, nodes/status]
  verbs: [get, list, watch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops-nodes}
subjects:
- {kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: ClusterRole, name: node-manager, apiGroup: rbac.authorization.k8s.io}
";

#[test]
fn a_role_binding_grants_its_role_in_its_namespace_only() {
    let p = policy(SEEDS);
    let jane = user("jane", &[]);
    let read = |verb, ns| p.allows(&Attributes::resource(&jane, verb, Kind::Pod).namespace(ns));
    assert!(read("list", "default"));
    assert!(read("get", "default"));
    assert!(!read("delete", "default"), "the role does not grant delete");
    assert!(!read("list", "prod"), "the binding is in default");
    assert!(!read("list", ""), "not across namespaces");
    let logs = Attributes::resource(&jane, "get", Kind::Pod)
        .subresource("log")
        .namespace("default");
    assert!(!p.allows(&logs), "pods does not grant pods/log");
    let secrets = Attributes::resource(&jane, "get", Kind::Secret).namespace("default");
    assert!(!p.allows(&secrets));
    let bob = user("bob", &[]);
    assert!(!p.allows(&Attributes::resource(&bob, "list", Kind::Pod).namespace("default")));
}

#[test]
fn a_cluster_role_binding_grants_everywhere_by_group() {
    let p = policy(SEEDS);
    let ops = user("ann", &["ops"]);
    assert!(p.allows(&Attributes::resource(&ops, "update", Kind::Node).name("n1")));
    assert!(p.allows(
        &Attributes::resource(&ops, "update", Kind::Node)
            .subresource("status")
            .name("n1")
    ));
    assert!(!p.allows(&Attributes::resource(&ops, "delete", Kind::Node).name("n1")));
    let outsider = user("carl", &["dev"]);
    assert!(!p.allows(&Attributes::resource(&outsider, "get", Kind::Node).name("n1")));
}

#[test]
fn wildcards_subresources_and_resource_names_match_as_kubernetes_does() {
    let p = policy(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: mixed}
rules:
- apiGroups: [apps]
  resources: ['*/scale']
  verbs: [get, update]
- apiGroups: ['']
  resources: [configmaps]
  resourceNames: [settings]
  verbs: ['*']
- nonResourceURLs: [/healthz, /apis/*]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: mixed, namespace: team}
subjects: [{kind: User, name: sam}]
roleRef: {kind: ClusterRole, name: mixed}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mixed}
subjects: [{kind: ServiceAccount, name: robot, namespace: ci}]
roleRef: {kind: ClusterRole, name: mixed}
",
    );
    let sam = user("sam", &[]);
    let scale = Attributes::resource(&sam, "update", Kind::Deployment)
        .subresource("scale")
        .namespace("team")
        .name("web");
    assert!(
        p.allows(&scale),
        "*/scale through a RoleBinding to a ClusterRole"
    );
    assert!(!p.allows(&Attributes {
        verb: "delete",
        ..scale.clone()
    }));
    let deployment = Attributes::resource(&sam, "update", Kind::Deployment)
        .namespace("team")
        .name("web");
    assert!(!p.allows(&deployment), "*/scale is not the object itself");
    let settings = Attributes::resource(&sam, "delete", Kind::ConfigMap).namespace("team");
    assert!(p.allows(&settings.clone().name("settings")));
    assert!(!p.allows(&settings.clone().name("other")));
    assert!(
        !p.allows(&settings),
        "a list names no object, so resourceNames refuse it"
    );
    assert!(
        !p.allows(&Attributes::non_resource(&sam, "get", "/healthz")),
        "non-resource URLs only through cluster bindings"
    );
    let robot = user("system:serviceaccount:ci:robot", &[]);
    assert!(p.allows(&Attributes::non_resource(&robot, "get", "/healthz")));
    assert!(p.allows(&Attributes::non_resource(&robot, "get", "/apis/apps/v1")));
    assert!(!p.allows(&Attributes::non_resource(&robot, "get", "/metrics")));
    let impostor = user("system:serviceaccount:other:robot", &[]);
    assert!(!p.allows(&Attributes::non_resource(&impostor, "get", "/healthz")));
}

#[test]
fn deleting_a_binding_or_its_role_takes_the_grant_away() {
    let mut p = policy(SEEDS);
    let jane = user("jane", &[]);
    let list = Attributes::resource(&jane, "list", Kind::Pod).namespace("default");
    assert!(p.allows(&list));
    let role = parse_object(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {namespace: default, name: pod-reader}\n",
        "t",
    )
    .unwrap();
    p.remove(&role);
    assert!(
        !p.allows(&list),
        "a binding to a missing role grants nothing"
    );
    p.put(&role);
    assert!(!p.allows(&list), "the role now has no rules");
    p.clear(Kind::RoleBinding);
    assert_eq!(p.bindings(), 1);
}

#[test]
fn the_default_policy_gives_admins_everything_and_bootstrappers_only_requests() {
    let mut p = Policy::default();
    for object in crate::bootstrap_policy::default_policy() {
        p.put(&object);
    }
    let admin = user("admin", &["system:masters"]);
    assert!(p.allows(&Attributes::resource(&admin, "delete", Kind::Secret).namespace("x")));
    assert!(p.allows(&Attributes::non_resource(
        &admin,
        "delete",
        "/cluster/members"
    )));
    let token = user("system:bootstrap:abcdef", &["system:bootstrappers"]);
    assert!(p.allows(&Attributes::resource(
        &token,
        "create",
        Kind::CertificateSigningRequest
    )));
    let approve = Attributes::resource(&token, "update", Kind::CertificateSigningRequest)
        .subresource("approval");
    assert!(!p.allows(&approve));
    assert!(!p.allows(&Attributes::resource(&token, "list", Kind::Secret)));
    let nobody = user("nobody", &[]);
    assert!(p.allows(&Attributes::non_resource(&nobody, "get", "/version")));
    assert!(!p.allows(&Attributes::resource(&nobody, "list", Kind::Pod).namespace("default")));
}

#[test]
fn the_view_edit_and_admin_roles_read_services_endpoints_and_endpoint_slices() {
    for role in ["view", "edit", "admin"] {
        let mut p = Policy::default();
        for object in crate::bootstrap_policy::default_policy() {
            p.put(&object);
        }
        let binding = parse_object(
            &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: b, namespace: shop}}\nsubjects: [{{kind: User, name: jane}}]\nroleRef: {{kind: ClusterRole, name: {role}}}\n"),
            "t",
        )
        .unwrap();
        p.put(&binding);
        let jane = user("jane", &[]);
        for kind in [Kind::Service, Kind::Endpoints, Kind::EndpointSlice] {
            for verb in ["get", "list", "watch"] {
                let request = Attributes::resource(&jane, verb, kind).namespace("shop");
                assert!(p.allows(&request), "{role}: {verb} {kind}");
            }
        }
        let write = Attributes::resource(&jane, "create", Kind::EndpointSlice).namespace("shop");
        assert!(!p.allows(&write), "{role} writes no EndpointSlices");
        let elsewhere = Attributes::resource(&jane, "list", Kind::EndpointSlice).namespace("x");
        assert!(!p.allows(&elsewhere), "{role} is bound in shop only");
    }
}

#[test]
fn built_in_objects_apply_until_the_store_holds_their_name() {
    let mut p = Policy::with_builtins(crate::bootstrap_policy::default_policy());
    let token = user("system:bootstrap:abcdef", &["system:bootstrappers"]);
    let file = Attributes::resource(&token, "create", Kind::CertificateSigningRequest);
    assert!(
        p.allows(&file),
        "the built-in binding applies before any list"
    );
    // An administrator's own binding of that name replaces the built-in one...
    let narrowed = parse_object(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: 'system:node-bootstrapper'}\nroleRef: {kind: ClusterRole, name: 'system:node-bootstrapper'}\nsubjects: [{kind: Group, name: 'system:bootstrappers:only-these'}]\n",
        "t",
    )
    .unwrap();
    p.put(&narrowed);
    assert!(!p.allows(&file), "the stored binding rules");
    // ...and a fresh list without it, or its deletion, brings the built-in one back.
    p.remove(&narrowed);
    assert!(p.allows(&file));
    p.put(&narrowed);
    p.clear(Kind::ClusterRoleBinding);
    assert!(p.allows(&file));
    assert!(
        !Policy::default().allows(&file),
        "a policy without built-ins has none"
    );
}

#[test]
fn a_binding_changed_in_place_grants_its_new_subjects_only() {
    let mut p = policy(SEEDS);
    let jane = user("jane", &[]);
    let bob = user("bob", &[]);
    let list = |u| Attributes::resource(u, "list", Kind::Pod).namespace("default");
    assert!(p.allows(&list(&jane)) && !p.allows(&list(&bob)));
    let rebound = parse_object(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: read-pods, namespace: default}\nsubjects: [{kind: User, name: bob}]\nroleRef: {kind: Role, name: pod-reader}\n",
        "t",
    )
    .unwrap();
    p.put(&rebound);
    assert!(
        !p.allows(&list(&jane)),
        "jane's grant went with the old subjects"
    );
    assert!(p.allows(&list(&bob)));
    p.clear(Kind::RoleBinding);
    assert!(!p.allows(&list(&bob)));
    let ops = user("ann", &["ops"]);
    assert!(
        p.allows(&Attributes::resource(&ops, "get", Kind::Node).name("n1")),
        "clearing RoleBindings keeps the cluster bindings"
    );
}
