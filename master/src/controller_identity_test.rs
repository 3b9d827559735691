use std::sync::Arc;

use actors::{Action, EventRecord, EventType, ObjectKey};
use api_gateway::{default_policy, Authorizer, Chain, Decision, Policy, Rbac};
use rafter_proto::v1::{
    CertificateSigningRequest, CronJob, Deployment, Endpoints, Job, Node, ObjectMeta,
    PersistentVolumeClaim, Pod, ReplicaSet, ResourceQuota, Secret, Service, ServiceAccount,
};
use rafter_proto::{Kind, Object};

use super::*;

/// RBAC over the default policy alone, as every master starts with it.
fn rbac() -> Rbac {
    let policy = Arc::new(Policy::with_builtins(default_policy()));
    Rbac::new(move || policy.clone())
}

fn meta(namespace: &str, name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    })
}

fn pod(namespace: &str, name: &str) -> Object {
    Object::Pod(Pod {
        metadata: meta(namespace, name),
        ..Default::default()
    })
}

fn delete(kind: Kind, namespace: &str, name: &str) -> Action {
    Action::Delete {
        key: ObjectKey::new(kind, namespace, name),
        uid: None,
        grace_period_seconds: None,
        propagation: None,
    }
}

fn event(kind: Kind, namespace: &str, name: &str, component: &'static str) -> Action {
    Action::RecordEvent(EventRecord {
        involved: ObjectKey::new(kind, namespace, name),
        involved_uid: String::new(),
        event_type: EventType::Normal,
        reason: "Test".into(),
        message: "a test event".into(),
        component,
    })
}

fn decide(controller: &str, action: &Action) -> Decision {
    let user = controller_user(controller);
    let request = request_of(action);
    rbac().authorize(&request.attributes(&user))
}

/// What each controller's core decides, one example of each kind of action.
fn decided_actions() -> Vec<(&'static str, Action)> {
    let rs = Object::ReplicaSet(ReplicaSet {
        metadata: meta("web", "front-1"),
        ..Default::default()
    });
    let deployment = Object::Deployment(Deployment {
        metadata: meta("web", "front"),
        ..Default::default()
    });
    let node = Object::Node(Node {
        metadata: meta("", "n1"),
        ..Default::default()
    });
    let endpoints = Object::Endpoints(Endpoints {
        metadata: meta("web", "front"),
        ..Default::default()
    });
    let service = Object::Service(Service {
        metadata: meta("web", "front"),
        ..Default::default()
    });
    let claim = Object::PersistentVolumeClaim(PersistentVolumeClaim {
        metadata: meta("web", "data"),
        ..Default::default()
    });
    let csr = Object::CertificateSigningRequest(CertificateSigningRequest {
        metadata: meta("", "node-csr-1"),
        ..Default::default()
    });
    let account = Object::ServiceAccount(ServiceAccount {
        metadata: meta("web", "default"),
        ..Default::default()
    });
    let job = Object::Job(Job {
        metadata: meta("web", "pi"),
        ..Default::default()
    });
    let cron_job = Object::CronJob(CronJob {
        metadata: meta("web", "tick"),
        ..Default::default()
    });
    let quota = Object::ResourceQuota(ResourceQuota {
        metadata: meta("web", "pods"),
        ..Default::default()
    });
    vec![
        (
            "replicaset-controller",
            Action::Create(pod("web", "front-1-abcde")),
        ),
        (
            "replicaset-controller",
            delete(Kind::Pod, "web", "front-1-abcde"),
        ),
        ("replicaset-controller", Action::UpdateStatus(rs.clone())),
        (
            "replicaset-controller",
            event(Kind::ReplicaSet, "web", "front-1", "replicaset-controller"),
        ),
        ("deployment-controller", Action::Create(rs.clone())),
        ("deployment-controller", Action::Update(rs.clone())),
        (
            "deployment-controller",
            delete(Kind::ReplicaSet, "web", "front-1"),
        ),
        ("deployment-controller", Action::Update(deployment.clone())),
        ("deployment-controller", Action::UpdateStatus(deployment)),
        (
            "daemonset-controller",
            Action::Create(pod("web", "agent-x")),
        ),
        ("node-controller", Action::Update(node.clone())),
        ("node-controller", Action::UpdateStatus(node.clone())),
        (
            "node-controller",
            Action::UpdateStatus(pod("web", "front-1-abcde")),
        ),
        (
            "node-controller",
            Action::Evict {
                namespace: "web".into(),
                name: "front-1-abcde".into(),
                uid: "u".into(),
                grace_period_seconds: None,
            },
        ),
        (
            "node-controller",
            event(Kind::Node, "", "n1", "node-controller"),
        ),
        ("node-ipam-controller", Action::Update(node)),
        (
            "default-scheduler",
            Action::Bind {
                namespace: "web".into(),
                name: "front-1-abcde".into(),
                uid: "u".into(),
                node: "n1".into(),
            },
        ),
        (
            "default-scheduler",
            event(Kind::Pod, "web", "front-1-abcde", "default-scheduler"),
        ),
        (
            "garbage-collector",
            delete(Kind::ReplicaSet, "web", "front-1"),
        ),
        (
            "garbage-collector",
            delete(Kind::ConfigMap, "web", "settings"),
        ),
        ("garbage-collector", Action::Update(pod("web", "orphan"))),
        ("csr-controller", Action::UpdateStatus(csr)),
        ("serviceaccount-controller", Action::Create(account)),
        ("service-lb-controller", Action::UpdateStatus(service)),
        (
            "cluster-dns-endpoints-controller",
            Action::Create(endpoints.clone()),
        ),
        ("endpoint-controller", Action::Update(endpoints)),
        ("endpoint-controller", delete(Kind::Endpoints, "web", "old")),
        (
            "endpointslice-controller",
            delete(Kind::EndpointSlice, "web", "front-x"),
        ),
        (
            "endpointslicemirroring-controller",
            delete(Kind::EndpointSlice, "web", "front-y"),
        ),
        ("persistentvolume-controller", Action::Update(claim.clone())),
        ("persistentvolume-controller", Action::UpdateStatus(claim)),
        ("job-controller", Action::Create(pod("web", "pi-abcde"))),
        ("job-controller", delete(Kind::Pod, "web", "pi-abcde")),
        ("job-controller", Action::UpdateStatus(job.clone())),
        ("job-controller", delete(Kind::Job, "web", "pi")),
        ("cronjob-controller", Action::Create(job)),
        ("cronjob-controller", delete(Kind::Job, "web", "pi")),
        ("cronjob-controller", Action::UpdateStatus(cron_job)),
        ("resourcequota-controller", Action::UpdateStatus(quota)),
        (
            "service-allocation-repair",
            event(Kind::Service, "web", "front", "service-allocation-repair"),
        ),
    ]
}

#[test]
fn every_controller_may_carry_out_what_its_core_decides() {
    for (controller, action) in decided_actions() {
        assert_eq!(
            decide(controller, &action),
            Decision::Allow,
            "{controller}: {:?}",
            request_of(&action)
        );
    }
}

#[test]
fn controllers_are_refused_what_is_not_their_business() {
    let secret = Object::Secret(Secret {
        metadata: meta("web", "db-password"),
        ..Default::default()
    });
    let refused = [
        ("cronjob-controller", Action::Create(pod("web", "direct"))),
        ("job-controller", Action::Update(pod("web", "pi-abcde"))),
        ("resourcequota-controller", delete(Kind::Pod, "web", "p")),
        (
            "replicaset-controller",
            delete(Kind::Secret, "web", "db-password"),
        ),
        (
            "replicaset-controller",
            delete(Kind::Deployment, "web", "front"),
        ),
        (
            "deployment-controller",
            Action::Create(pod("web", "direct")),
        ),
        (
            "default-scheduler",
            delete(Kind::Pod, "web", "front-1-abcde"),
        ),
        ("default-scheduler", Action::Create(secret.clone())),
        ("endpoint-controller", delete(Kind::Node, "", "n1")),
        ("serviceaccount-controller", Action::Create(secret)),
        (
            "service-lb-controller",
            Action::Update(pod("web", "front-1-abcde")),
        ),
        ("csr-controller", Action::Create(pod("kube-system", "p"))),
        ("node-ipam-controller", delete(Kind::Node, "", "n1")),
        (
            "service-allocation-repair",
            delete(Kind::Service, "web", "front"),
        ),
        // A name no default role is bound to may do nothing.
        (
            "made-up-controller",
            event(Kind::Pod, "web", "p", "made-up-controller"),
        ),
    ];
    for (controller, action) in refused {
        // RBAC has no opinion on what it does not allow (the chain then refuses it,
        // naming the user); a denial it gives itself names the user too.
        match decide(controller, &action) {
            Decision::Allow => panic!("{controller} was allowed {:?}", request_of(&action)),
            Decision::NoOpinion => {}
            Decision::Deny(reason) => assert!(reason.contains(controller), "{reason}"),
        }
    }
}

#[test]
fn a_refusal_names_the_controller_and_what_it_asked() {
    let chain = Chain::new(vec![Box::new(rbac())]);
    let action = delete(Kind::Pod, "web", "front-1-abcde");
    let reason = authorize(&chain, "default-scheduler", &action).unwrap_err();
    assert!(
        reason.contains(
            r#"User "system:controller:default-scheduler" cannot delete resource "pods""#
        ),
        "{reason}"
    );
    assert!(reason.contains(r#""web""#), "{reason}");
    let bind = Action::Bind {
        namespace: "web".into(),
        name: "front-1-abcde".into(),
        uid: "u".into(),
        node: "n1".into(),
    };
    assert_eq!(authorize(&chain, "default-scheduler", &bind), Ok(()));
}

#[test]
fn actions_become_the_requests_a_client_would_make() {
    let bind = Action::Bind {
        namespace: "web".into(),
        name: "p".into(),
        uid: "u".into(),
        node: "n1".into(),
    };
    let request = request_of(&bind);
    assert_eq!(
        (
            request.verb,
            request.kind,
            request.subresource,
            request.namespace,
            request.name
        ),
        ("create", Kind::Pod, "binding", "web", "p")
    );
    let status = Action::UpdateStatus(pod("web", "p"));
    let request = request_of(&status);
    assert_eq!((request.verb, request.subresource), ("update", "status"));
    assert!(request.object.is_some());
    // Events about cluster-scoped objects are created in `default`, as the event says.
    let node_event = event(Kind::Node, "", "n1", "node-controller");
    let request = request_of(&node_event);
    assert_eq!(
        (request.verb, request.kind, request.namespace),
        ("create", Kind::Event, "default")
    );
    assert_eq!(
        controller_user("endpoint-controller").name,
        "system:controller:endpoint-controller"
    );
}
