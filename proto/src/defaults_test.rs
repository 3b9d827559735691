//! Tests of `apply_defaults`.

use super::*;
use crate::parse_object;

fn defaulted(yaml: &str) -> Object {
    let mut object = match parse_object(yaml, "test") {
        Ok(object) => object,
        Err(e) => panic!("test manifest does not parse: {e}\n{yaml}"),
    };
    apply_defaults(&mut object);
    object
}

/// The defaulted object as JSON, to read fields by pointer.
fn json(yaml: &str) -> serde_json::Value {
    match defaulted(yaml).to_json_value() {
        Ok(value) => value,
        Err(e) => panic!("does not serialise: {e}"),
    }
}

fn assert_fields(case: &str, yaml: &str, fields: &[(&str, serde_json::Value)]) {
    let value = json(yaml);
    for (pointer, want) in fields {
        assert_eq!(
            value.pointer(pointer),
            Some(want),
            "{case}: {pointer} in {value:#}"
        );
    }
}

/// What a case shows, a manifest, and JSON pointers with their expected values.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, serde_json::Value)]);

#[test]
fn empty_fields_get_the_kubernetes_defaults() {
    use serde_json::json as j;
    let cases: &[Case] = &[
        (
            "pod",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  tolerations: [{key: k, value: v}]\n  containers:\n  - {name: a, image: nginx, ports: [{containerPort: 80}], readinessProbe: {httpGet: {port: 80}}}\n  - {name: b, image: 'nginx:1.25'}\n  - {name: c, image: 'registry:5000/nginx:latest'}\n  - {name: d, image: 'nginx@sha256:abc'}",
            &[
                ("/metadata/namespace", j!("default")),
                ("/spec/restartPolicy", j!("Always")),
                ("/spec/dnsPolicy", j!("ClusterFirst")),
                ("/spec/schedulerName", j!("default-scheduler")),
                ("/spec/terminationGracePeriodSeconds", j!(30)),
                ("/spec/tolerations/0/operator", j!("Equal")),
                ("/spec/containers/0/imagePullPolicy", j!("Always")),
                ("/spec/containers/0/ports/0/protocol", j!("TCP")),
                ("/spec/containers/0/readinessProbe/timeoutSeconds", j!(1)),
                ("/spec/containers/0/readinessProbe/periodSeconds", j!(10)),
                ("/spec/containers/0/readinessProbe/successThreshold", j!(1)),
                ("/spec/containers/0/readinessProbe/failureThreshold", j!(3)),
                ("/spec/containers/1/imagePullPolicy", j!("IfNotPresent")),
                ("/spec/containers/2/imagePullPolicy", j!("Always")),
                ("/spec/containers/3/imagePullPolicy", j!("IfNotPresent")),
            ],
        ),
        (
            "service",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}, {port: 443, targetPort: https}]}",
            &[
                ("/spec/type", j!("ClusterIP")),
                ("/spec/sessionAffinity", j!("None")),
                ("/spec/ports/0/protocol", j!("TCP")),
                ("/spec/ports/0/targetPort", j!(80)),
                ("/spec/ports/1/targetPort", j!("https")),
            ],
        ),
        (
            "service with ClientIP affinity",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {sessionAffinity: ClientIP, ports: [{port: 80}]}",
            &[("/spec/sessionAffinityConfig/clientIP/timeoutSeconds", j!(10800))],
        ),
        (
            "deployment",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: nginx}]}}",
            &[
                ("/spec/replicas", j!(1)),
                ("/spec/strategy/type", j!("RollingUpdate")),
                ("/spec/strategy/rollingUpdate/maxSurge", j!("25%")),
                ("/spec/strategy/rollingUpdate/maxUnavailable", j!("25%")),
                ("/spec/revisionHistoryLimit", j!(10)),
                ("/spec/progressDeadlineSeconds", j!(600)),
                ("/spec/template/spec/restartPolicy", j!("Always")),
                ("/spec/template/spec/containers/0/imagePullPolicy", j!("Always")),
            ],
        ),
        (
            "daemon set",
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: a}}\n  template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: agent}]}}",
            &[
                ("/spec/updateStrategy/type", j!("RollingUpdate")),
                ("/spec/updateStrategy/rollingUpdate/maxUnavailable", j!(1)),
                ("/spec/revisionHistoryLimit", j!(10)),
                ("/spec/template/spec/dnsPolicy", j!("ClusterFirst")),
            ],
        ),
        (
            "job",
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: pi, image: perl}]}}}",
            &[
                ("/spec/completions", j!(1)),
                ("/spec/parallelism", j!(1)),
                ("/spec/backoffLimit", j!(6)),
                ("/spec/template/spec/restartPolicy", j!("Never")),
                ("/spec/template/spec/schedulerName", j!("default-scheduler")),
            ],
        ),
        (
            "volumes, claims and classes",
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /d}}",
            &[("/spec/persistentVolumeReclaimPolicy", j!("Retain")), ("/spec/volumeMode", j!("Filesystem"))],
        ),
        (
            "claim",
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}",
            &[("/spec/volumeMode", j!("Filesystem")), ("/metadata/namespace", j!("default"))],
        ),
        (
            "storage class",
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: sc}\nprovisioner: example.com/x",
            &[("/reclaimPolicy", j!("Delete")), ("/volumeBindingMode", j!("Immediate"))],
        ),
        (
            "namespace",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}",
            &[("/status/phase", j!("Active"))],
        ),
        (
            "secret",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}",
            &[("/type", j!("Opaque"))],
        ),
    ];
    for (case, yaml, fields) in cases {
        assert_fields(case, yaml, fields);
    }
}

#[test]
fn defaults_do_not_overwrite_user_values() {
    use serde_json::json as j;
    let yaml = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 0
  revisionHistoryLimit: 2
  progressDeadlineSeconds: 60
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      dnsPolicy: Default
      schedulerName: my-scheduler
      terminationGracePeriodSeconds: 5
      tolerations: [{operator: Exists}]
      containers:
      - name: c
        image: nginx
        imagePullPolicy: Never
        ports: [{containerPort: 53, protocol: UDP}]
        livenessProbe: {tcpSocket: {port: 53}, timeoutSeconds: 7, periodSeconds: 3, failureThreshold: 9}
";
    assert_fields(
        "deployment with everything set",
        yaml,
        &[
            ("/metadata/namespace", j!("shop")),
            ("/spec/revisionHistoryLimit", j!(2)),
            ("/spec/progressDeadlineSeconds", j!(60)),
            ("/spec/strategy/rollingUpdate/maxSurge", j!(2)),
            ("/spec/strategy/rollingUpdate/maxUnavailable", j!("25%")),
            ("/spec/template/spec/dnsPolicy", j!("Default")),
            ("/spec/template/spec/schedulerName", j!("my-scheduler")),
            ("/spec/template/spec/terminationGracePeriodSeconds", j!(5)),
            ("/spec/template/spec/tolerations/0/operator", j!("Exists")),
            (
                "/spec/template/spec/containers/0/imagePullPolicy",
                j!("Never"),
            ),
            (
                "/spec/template/spec/containers/0/ports/0/protocol",
                j!("UDP"),
            ),
            (
                "/spec/template/spec/containers/0/livenessProbe/timeoutSeconds",
                j!(7),
            ),
            (
                "/spec/template/spec/containers/0/livenessProbe/periodSeconds",
                j!(3),
            ),
            (
                "/spec/template/spec/containers/0/livenessProbe/failureThreshold",
                j!(9),
            ),
        ],
    );
    // replicas: 0 is a value the user set, not a missing one.
    let Object::Deployment(deploy) = defaulted(yaml) else {
        panic!("not a deployment")
    };
    assert_eq!(deploy.spec.and_then(|s| s.replicas), Some(0));
}

#[test]
fn job_templates_keep_an_empty_restart_policy_for_validation_to_refuse() {
    let yaml = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {template: {spec: {containers: [{name: pi, image: perl}]}}}";
    let job = defaulted(yaml);
    let Object::Job(j) = &job else {
        panic!("not a job")
    };
    let policy = j
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.restart_policy.clone());
    assert_eq!(policy.as_deref(), Some(""));
    let errors: Vec<String> = crate::validate(&job)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, vec!["spec.template.spec.restartPolicy: Required value: supported values: \"OnFailure\", \"Never\""]);
}

#[test]
fn string_data_is_merged_into_data_base64_encoded_and_cleared() {
    let yaml = "
apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
data: {kept: a2VwdA==, replaced: b2xk}
stringData: {replaced: new, added: 'hello world'}
";
    let Object::Secret(secret) = defaulted(yaml) else {
        panic!("not a secret")
    };
    let data: Vec<(&str, &str)> = secret
        .data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        data,
        vec![
            ("added", "aGVsbG8gd29ybGQ="),
            ("kept", "a2VwdA=="),
            ("replaced", "bmV3")
        ]
    );
    assert!(secret.string_data.is_empty());
    assert_eq!(secret.r#type, "Opaque");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    let cases = [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:2", "IfNotPresent"),
        ("nginx@sha256:0123", "IfNotPresent"),
    ];
    for (image, want) in cases {
        assert_eq!(image_pull_policy(image), want, "{image}");
    }
}

#[test]
fn defaulting_twice_changes_nothing_more() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: nginx}]}}";
    let once = defaulted(yaml);
    let mut twice = once.clone();
    apply_defaults(&mut twice);
    assert_eq!(once, twice);
}
