//! Every kind through a three-process cluster: created through one master, read through
//! another, listed, watched and updated through a third (a stale resourceVersion is a
//! Conflict), then deleted; the watch sees ADDED, MODIFIED and DELETED in revision order.

use std::time::{Duration, Instant};

use base64::Engine;
use chaos_tests::Cluster;
use futures::StreamExt;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{parse_object, Kind, Object};
use tonic::Code;

fn manifests() -> Vec<String> {
    let (csr_pem, _key) = rafter_client::new_request("jane", &[]).expect("a CSR");
    let csr = base64::engine::general_purpose::STANDARD.encode(csr_pem);
    let pod_spec = "containers: [{name: c, image: busybox}]";
    let template = format!("metadata: {{labels: {{app: k}}}}\n    spec: {{{pod_spec}}}");
    vec![
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: every-kind}\n".to_owned(),
        "apiVersion: v1\nkind: Node\nmetadata: {name: every-kind-node}\n".to_owned(),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: k}}\nspec: {{{pod_spec}}}\n"),
        // No selector: the Endpoints below are the user's, which the controllers leave alone.
        "apiVersion: v1\nkind: Service\nmetadata: {name: k}\nspec:\n  ports: [{port: 80}]\n".to_owned(),
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: k}\nsubsets:\n- addresses: [{ip: 10.1.2.3}]\n  ports: [{port: 80}]\n".to_owned(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata: {a: b}\n".to_owned(),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: k}\nstringData: {password: s3cret}\n".to_owned(),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: k}\n".to_owned(),
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: k}\nspec:\n  hard: {count/configmaps: '100'}\n".to_owned(),
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: k}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /tmp/k}\n".to_owned(),
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: k}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n".to_owned(),
        "apiVersion: v1\nkind: Event\nmetadata: {name: k}\ninvolvedObject: {kind: Pod, name: k, namespace: default}\nreason: Test\nmessage: hello\ntype: Normal\ncount: 1\n".to_owned(),
        format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: k}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: k}}}}\n  template:\n    {template}\n"),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: k}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: k}}}}\n  template:\n    {template}\n"),
        format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: k}}\nspec:\n  selector: {{matchLabels: {{app: k}}}}\n  template:\n    {template}\n"),
        format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: k}}\nspec:\n  template:\n    spec: {{restartPolicy: Never, {pod_spec}}}\n"),
        format!("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: k}}\nspec:\n  request: {csr}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [digital signature, key encipherment, client auth]\n"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: k}\nrules:\n- {apiGroups: [''], resources: [pods], verbs: [get]}\n".to_owned(),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: k}\nrules:\n- {apiGroups: [''], resources: [nodes], verbs: [list]}\n".to_owned(),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: k}\nsubjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]\nroleRef: {kind: Role, name: k, apiGroup: rbac.authorization.k8s.io}\n".to_owned(),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: k}\nsubjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]\nroleRef: {kind: ClusterRole, name: k, apiGroup: rbac.authorization.k8s.io}\n".to_owned(),
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: k}\nprovisioner: rafter.io/hostpath\n".to_owned(),
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: k}\nspec: {holderIdentity: k, leaseDurationSeconds: 40}\n".to_owned(),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k}\nspec:\n  podSelector: {matchLabels: {app: k}}\n  policyTypes: [Ingress]\n".to_owned(),
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: k}\nspec:\n  rules:\n  - http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: k, port: {number: 80}}}}\n".to_owned(),
        format!("apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: k}}\nspec:\n  schedule: '@yearly'\n  suspend: true\n  jobTemplate:\n    spec:\n      template:\n        spec: {{restartPolicy: Never, {pod_spec}}}\n"),
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: k}\nspec:\n  limits: [{type: Container, max: {cpu: '2'}}]\n".to_owned(),
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: k, labels: {kubernetes.io/service-name: k}}\naddressType: IPv4\nendpoints: [{addresses: [10.1.2.3], conditions: {ready: true}}]\nports: [{name: '', port: 80}]\n".to_owned(),
    ]
}

/// Retries a call while the cluster answers Unavailable (an election in progress on a
/// loaded machine): such an answer means the store did not take the request.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(response) => return response.into_inner(),
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("{what}: {status}"),
        }
    }
}

fn key(object: &Object) -> Option<ObjectKey> {
    let meta = object.metadata();
    Some(ObjectKey {
        kind: object.kind().name().to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_served_by_every_master_with_kubernetes_semantics() {
    let cluster = Cluster::start(3)
        .await
        .expect("a three-master cluster starts");
    let (one, two, mut three) = (
        cluster.client(1).await.unwrap(),
        cluster.client(2).await.unwrap(),
        cluster.client(3).await.unwrap(),
    );
    let mut seen = Vec::new();
    for text in manifests() {
        let mut object = parse_object(&text, "test").expect("a valid manifest");
        let kind = object.kind();
        if kind.info().namespaced {
            object.metadata_mut().namespace = "default".to_owned();
        }
        let namespace = object.metadata().namespace.clone();
        let list_request = api::ListRequest {
            kind: kind.name().into(),
            namespace: namespace.clone(),
            ..Default::default()
        };
        let list = retry("list", || {
            let (mut c, r) = (three.clone(), list_request.clone());
            async move { c.list(r).await }
        })
        .await;
        let watch_request = api::WatchRequest {
            kind: kind.name().into(),
            namespace: namespace.clone(),
            resource_version: list.resource_version.clone(),
            field_selector: format!("metadata.name={}", object.metadata().name),
            ..Default::default()
        };
        let mut watch = retry("watch", || {
            let (mut c, r) = (three.clone(), watch_request.clone());
            async move { c.watch(r).await }
        })
        .await;

        let create_request = api::CreateRequest {
            object: Some(TypedObject::from(object.clone())),
            dry_run: false,
            field_manager: Default::default(),
        };
        let created = retry("create", || {
            let (mut c, r) = (two.clone(), create_request.clone());
            async move { c.create(r).await }
        })
        .await;
        let created = Object::try_from(created).unwrap();
        let get_request = api::GetRequest {
            key: key(&object),
            consistency: 0,
        };
        let read = retry("get", || {
            let (mut c, r) = (one.clone(), get_request.clone());
            async move { c.get(r).await }
        })
        .await;
        assert_eq!(
            Object::try_from(read).unwrap().metadata().uid,
            created.metadata().uid,
            "{kind}"
        );
        let listed = retry("list", || {
            let (mut c, r) = (three.clone(), list_request.clone());
            async move { c.list(r).await }
        })
        .await;
        assert!(
            listed
                .items
                .into_iter()
                .filter_map(|o| Object::try_from(o).ok())
                .any(|o| o.metadata().uid == created.metadata().uid),
            "{kind} missing from the list"
        );

        // Update through another master; controllers may write in between, so retry on Conflict.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let current = Object::try_from(
                retry("get", || {
                    let (mut c, r) = (one.clone(), get_request.clone());
                    async move { c.get(r).await }
                })
                .await,
            )
            .unwrap();
            let mut labelled = current.clone();
            labelled
                .metadata_mut()
                .labels
                .insert("checked".into(), "yes".into());
            match three
                .update(api::UpdateRequest {
                    object: Some(TypedObject::from(labelled)),
                    ..Default::default()
                })
                .await
            {
                Ok(_) => break,
                Err(status)
                    if matches!(status.code(), Code::Aborted | Code::Unavailable)
                        && Instant::now() < deadline =>
                {
                    continue
                }
                Err(status) => panic!("update {kind}: {status}"),
            }
        }
        let stale = three
            .update(api::UpdateRequest {
                object: Some(TypedObject::from(created.clone())),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            stale.code(),
            Code::Aborted,
            "a stale {kind} update: {stale}"
        );

        let delete_request = api::DeleteRequest {
            key: key(&object),
            ..Default::default()
        };
        let deleted = retry("delete", || {
            let (mut c, r) = (two.clone(), delete_request.clone());
            async move { c.delete(r).await }
        })
        .await;
        assert!(deleted.deleted, "{kind} was not deleted at once");

        let mut events = Vec::new();
        while events.last() != Some(&(api::EventType::Deleted as i32)) {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .unwrap_or_else(|_| panic!("{kind}: the watch stopped after {events:?}"))
                .unwrap()
                .unwrap();
            let revision: u64 = event.resource_version.parse().unwrap();
            events.push(event.r#type);
            seen.push((kind, revision));
        }
        assert_eq!(
            events.first(),
            Some(&(api::EventType::Added as i32)),
            "{kind}: {events:?}"
        );
        assert!(
            events.contains(&(api::EventType::Modified as i32)),
            "{kind}: {events:?}"
        );
        let revisions: Vec<u64> = seen
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| *r)
            .collect();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "{kind}: revisions out of order {revisions:?}"
        );
    }
    let kinds: std::collections::BTreeSet<Kind> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds.len(),
        Kind::all().count() - 1,
        "every kind but Binding (a pods subresource) was checked"
    );
}
