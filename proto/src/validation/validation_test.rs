//! Tests of `validate`, over objects written as manifests.

use super::*;
use crate::parse_object;

fn object(yaml: &str) -> Object {
    match parse_object(yaml, "test") {
        Ok(object) => object,
        Err(e) => panic!("test manifest does not parse: {e}\n{yaml}"),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    validate(&object(yaml))
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Asserts the manifest gives exactly the expected errors, each matched by its start.
fn assert_errors(case: &str, yaml: &str, expected: &[&str]) {
    let got = errors(yaml);
    for want in expected {
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{case}: no error starting {want:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{case}: got {got:#?}");
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {example.com/owner: team-a}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [front]}]
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      restartPolicy: Always
      volumes:
      - name: config
        configMap: {name: web-config}
      initContainers:
      - name: init
        image: busybox:1.36
        command: [sh, -c, 'true']
      containers:
      - name: nginx
        image: nginx:1.25
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 80, protocol: TCP}]
        env:
        - {name: MODE, value: prod}
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        resources:
          requests: {cpu: 250m, memory: 64Mi}
          limits: {cpu: '1', memory: 128Mi}
        volumeMounts: [{name: config, mountPath: /etc/nginx/conf.d}]
        livenessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 5
      tolerations:
      - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
      - {operator: Exists}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/arch, operator: In, values: [amd64]}
              - {key: cores, operator: Gt, values: ['4']}
";

#[test]
fn a_valid_deployment_passes_with_no_errors() {
    assert_eq!(errors(DEPLOYMENT), Vec::<String>::new());
}

#[test]
fn a_valid_deployment_still_passes_after_defaults() {
    let mut deploy = object(DEPLOYMENT);
    crate::apply_defaults(&mut deploy);
    assert_eq!(validate(&deploy), vec![]);
}

#[test]
fn a_pod_with_three_problems_reports_all_three_with_their_paths() {
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: My_Pod}
spec:
  restartPolicy: Sometimes
  containers:
  - image: nginx
";
    let got = errors(yaml);
    assert_eq!(
        got,
        vec![
            "metadata.name: Invalid value: \"My_Pod\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.containers[0].name: Required value",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]
    );
}

#[test]
fn field_errors_render_like_kubernetes() {
    let cases = [
        (
            FieldErrorKind::Required,
            "",
            "spec.containers[0].name: Required value",
        ),
        (
            FieldErrorKind::Duplicate("nginx".into()),
            "",
            "spec.containers[1].name: Duplicate value: \"nginx\"",
        ),
        (
            FieldErrorKind::Invalid("70000".into()),
            "must be between 1 and 65535, inclusive",
            "p: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            FieldErrorKind::NotSupported {
                value: "x".into(),
                supported: vec!["A", "B"],
            },
            "",
            "p: Unsupported value: \"x\": supported values: \"A\", \"B\"",
        ),
        (
            FieldErrorKind::Forbidden,
            "may not be set",
            "p: Forbidden: may not be set",
        ),
        (
            FieldErrorKind::NotFound("data".into()),
            "",
            "p: Not found: \"data\"",
        ),
        (
            FieldErrorKind::TooLong { max: 262144 },
            "",
            "p: Too long: must have at most 262144 bytes",
        ),
    ];
    for (kind, detail, want) in cases {
        let path = want.split(':').next().unwrap_or_default().to_owned();
        let err = FieldError {
            path,
            kind,
            detail: detail.to_owned(),
        };
        assert_eq!(err.to_string(), want);
    }
}

/// Each case: what it shows, a manifest, and the errors it must give (each by its start).
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "selector does not match the template labels",
        "
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, image: nginx}]}
",
        &["spec.template.metadata.labels: Invalid value: \"app=api\": `selector` does not match template `labels`"],
    ),
    (
        "apps kinds require a selector",
        "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: agent}]}
",
        &["spec.selector: Required value"],
    ),
    (
        "a node port that is no port number is refused (the cluster's range is the allocator's)",
        "
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 70000}]
",
        &["spec.ports[0].nodePort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
    ),
    (
        "a ClientIP affinity longer than a day is refused",
        "
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}
  ports: [{port: 80}]
",
        &["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be between 1 and 86400"],
    ),
    (
        "a node port on a ClusterIP service is forbidden",
        "
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80, nodePort: 30080}]
",
        &["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ),
    (
        "service ports: range, target port names, unnamed ports among several, type",
        "
apiVersion: v1
kind: Service
metadata: {name: 1web}
spec:
  type: Internal
  ports:
  - {name: http, port: 0, targetPort: HTTP_PORT}
  - {port: 443, protocol: QUIC}
",
        &[
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label",
            "spec.type: Unsupported value: \"Internal\"",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: \"HTTP_PORT\": must contain only alpha-numeric",
            "spec.ports[0].targetPort: Invalid value: \"HTTP_PORT\": must contain at least one letter",
            "spec.ports[1].name: Required value",
            "spec.ports[1].protocol: Unsupported value: \"QUIC\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
        ],
    ),
    (
        "duplicate container names across init containers and containers",
        "
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers: [{name: nginx, image: busybox}]
  containers: [{name: app, image: app}, {name: nginx, image: nginx}]
",
        &["spec.containers[1].name: Duplicate value: \"nginx\""],
    ),
    (
        "toleration operator Exists with a value",
        "
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: nginx}]
  tolerations:
  - {key: gpu, operator: Exists, value: 'true'}
  - {key: gpu, operator: Maybe, effect: NoRun}
  - {key: gpu, operator: Equal, value: x, effect: NoSchedule, tolerationSeconds: 5}
",
        &[
            "spec.tolerations[0].value: Invalid value: \"true\": value must be empty when `operator` is 'Exists'",
            "spec.tolerations[1].operator: Unsupported value: \"Maybe\": supported values: \"Exists\", \"Equal\"",
            "spec.tolerations[1].effect: Unsupported value: \"NoRun\"",
            "spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        ],
    ),
    (
        "node affinity operators and their values",
        "
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: nginx}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: cores, operator: Gt, values: ['2', '4']}
          - {key: cores, operator: Lt, values: [many]}
          - {key: zone, operator: In}
          - {key: zone, operator: Exists, values: [a]}
          - {key: zone, operator: Near, values: [a]}
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 0
        preference: {matchExpressions: [{key: disk, operator: In, values: [ssd]}]}
",
        &[
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values[0]: Invalid value: \"many\": must be an integer",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[2].values: Required value",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[3].values: Forbidden",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[4].operator: Unsupported value: \"Near\"",
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100",
        ],
    ),
    (
        "container details: ports, env, resources, mounts, probes, pull policy",
        "
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {'bad key!': v, app: 'a b'}}
spec:
  terminationGracePeriodSeconds: -1
  volumes:
  - {name: data, emptyDir: {}, hostPath: {path: /data}}
  - {name: data, secret: {secretName: s}}
  - {name: nothing}
  containers:
  - name: c
    image: nginx
    imagePullPolicy: Sometimes
    ports: [{containerPort: 70000}]
    env:
    - {name: 'A=B', value: x}
    - name: FROM
      valueFrom:
        configMapKeyRef: {name: cm, key: k}
        fieldRef: {fieldPath: metadata.name}
    resources:
      requests: {cpu: '2', memory: lots}
      limits: {cpu: '1'}
    volumeMounts: [{name: logs, mountPath: /logs}]
    readinessProbe:
      exec: {command: [cat]}
      tcpSocket: {port: 80}
    livenessProbe: {periodSeconds: -5}
",
        &[
            "metadata.labels: Invalid value: \"bad key!\"",
            "metadata.labels[app]: Invalid value: \"a b\"",
            "spec.volumes[0]: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.volumes[2]: Required value: must specify a volume type",
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\"",
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000",
            "spec.containers[0].env[0].name: Invalid value: \"A=B\"",
            "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
            "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match",
            "spec.containers[0].resources.requests[cpu]: Invalid value: 2: must be less than or equal to cpu limit of 1",
            "spec.containers[0].volumeMounts[0].name: Not found: \"logs\"",
            "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -5: must be greater than or equal to 0",
            "spec.terminationGracePeriodSeconds: Invalid value: -1",
        ],
    ),
    (
        "job templates must say OnFailure or Never",
        "
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  backoffLimit: -1
  template:
    spec:
      containers: [{name: pi, image: perl}]
",
        &[
            "spec.backoffLimit: Invalid value: -1",
            "spec.template.spec.restartPolicy: Required value: supported values: \"OnFailure\", \"Never\"",
        ],
    ),
    (
        "limit ranges: unknown type, min over max, default over max",
        "
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Node
  - type: Container
    min: {cpu: '2'}
    max: {cpu: '1'}
    default: {memory: 2Gi}
    defaultRequest: {memory: 1Gi}
  - type: PersistentVolumeClaim
    max: {memory: 1Gi}
    default: {memory: 2Gi}
",
        &[
            "spec.limits[0].type: Unsupported value: \"Node\"",
            "spec.limits[1].min[cpu]: Invalid value: 2: min value 2 is greater than max value 1",
            "spec.limits[2].default[memory]: Invalid value: \"2Gi\": default value 2Gi is greater than max value 1Gi",
        ],
    ),
    (
        "cron jobs: a bad schedule, zone, policy, deadline and job template",
        "
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: 61 * * * *
  timeZone: Mars/Olympus
  concurrencyPolicy: Sometimes
  startingDeadlineSeconds: -5
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: busybox}]
",
        &[
            "spec.schedule: Invalid value: \"61 * * * *\"",
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone \"Mars/Olympus\"",
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\"",
            "spec.startingDeadlineSeconds: Invalid value: -5",
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value",
        ],
    ),
    (
        "pod failure policies: unknown action, both matchers, OnFailure pods",
        "
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  podFailurePolicy:
    rules:
    - action: Explode
      onExitCodes: {operator: In, values: [42]}
    - action: FailJob
      onExitCodes: {operator: In, values: [1]}
      onPodConditions: [{type: DisruptionTarget}]
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: pi, image: perl}]
",
        &[
            "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
            "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\"",
            "spec.podFailurePolicy.rules[1]: Invalid value: \"\": specify exactly one of onExitCodes and onPodConditions",
        ],
    ),
    (
        "deployment strategy: Recreate with rollingUpdate, both zero, bad percent, template restart policy",
        "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}
  template:
    metadata: {labels: {app: web}}
    spec: {restartPolicy: Never, containers: [{name: c, image: nginx}]}
",
        &[
            "spec.replicas: Invalid value: -1",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ],
    ),
    (
        "daemonset strategy: OnDelete with rollingUpdate, selector not matching the template",
        "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  updateStrategy: {type: OnDelete, rollingUpdate: {maxUnavailable: 1}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: busybox}]}
",
        &[
            "spec.updateStrategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'OnDelete'",
            "spec.template.metadata.labels: Invalid value",
        ],
    ),
    (
        "rolling update limits may not both be zero",
        "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  strategy: {type: Blue, rollingUpdate: {maxSurge: 0%, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
",
        &[
            "spec.strategy.type: Unsupported value: \"Blue\": supported values: \"RollingUpdate\", \"Recreate\"",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ],
    ),
    (
        "cluster-scoped kinds have no namespace; node taints need a known effect",
        "
apiVersion: v1
kind: Node
metadata: {name: node01.example.com, namespace: default}
spec:
  podCIDR: 10.244.0.0/33
  taints: [{key: dedicated, value: gpu, effect: NoWay}]
",
        &[
            "metadata.namespace: Forbidden",
            "spec.taints[0].effect: Unsupported value: \"NoWay\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            "spec.podCIDR: Invalid value: \"10.244.0.0/33\"",
        ],
    ),
    (
        "namespace names are labels and a name is required",
        "
apiVersion: v1
kind: Namespace
metadata: {name: team.a}
",
        &["metadata.name: Invalid value: \"team.a\": a lowercase RFC 1123 label"],
    ),
    (
        "a name or generateName is required",
        "
apiVersion: v1
kind: ConfigMap
metadata: {namespace: Bad_NS}
data: {'bad/key': x, good.key: y}
",
        &[
            "metadata.name: Required value: name or generateName is required",
            "metadata.namespace: Invalid value: \"Bad_NS\"",
            "data[bad/key]: Invalid value: \"bad/key\": a valid config key",
        ],
    ),
    (
        "secret data must be base64 under valid keys",
        "
apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
data: {tls.crt: 'not base64!'}
stringData: {'a b': x}
",
        &[
            "data[tls.crt]: Invalid value: \"<11 bytes>\": must be valid base64",
            "stringData[a b]: Invalid value: \"a b\"",
            "data[tls.key]: Required value",
        ],
    ),
    (
        "secret types outside the known list are refused unless domain-qualified",
        "
apiVersion: v1
kind: Secret
metadata: {name: s}
type: opaque
",
        &["type: Unsupported value: \"opaque\""],
    ),
    (
        "claims need access modes and a storage request",
        "
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: c}
spec:
  accessModes: [ReadWriteSometimes]
  volumeMode: Block
",
        &[
            "spec.accessModes[0]: Unsupported value: \"ReadWriteSometimes\"",
            "spec.resources.requests[storage]: Required value",
        ],
    ),
    (
        "persistent volumes need a capacity, access modes and exactly one source",
        "
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  capacity: {storage: 1Gi, cpu: '1'}
  persistentVolumeReclaimPolicy: Keep
",
        &[
            "spec.capacity[cpu]: Unsupported value: \"cpu\": supported values: \"storage\"",
            "spec.accessModes: Required value",
            "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\"",
            "spec: Required value: must specify a volume type",
        ],
    ),
    (
        "rbac: rules need verbs, bindings a known role kind and known subject kinds",
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods}
subjects:
- {kind: Robot, name: r2d2}
- {kind: ServiceAccount, name: ''}
roleRef: {kind: Policy, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
",
        &[
            "roleRef.kind: Unsupported value: \"Policy\": supported values: \"Role\", \"ClusterRole\"",
            "subjects[0].kind: Unsupported value: \"Robot\"",
            "subjects[1].name: Required value",
        ],
    ),
    (
        "role rules need verbs",
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules: [{apiGroups: [''], resources: [pods]}]
",
        &["rules[0].verbs: Required value"],
    ),
    (
        "a binding needs a target name",
        "
apiVersion: v1
kind: Binding
metadata: {name: nginx}
target: {kind: Node}
",
        &["target.name: Required value"],
    ),
    (
        "a csr needs a PEM request, a signer and known usages",
        "
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: jane}
spec:
  request: aGVsbG8=
  usages: [digital signature, server auth, world domination]
",
        &[
            "spec.request: Invalid value: \"<8 bytes>\": PEM block type must be CERTIFICATE REQUEST",
            "spec.signerName: Required value",
            "spec.usages[2]: Unsupported value: \"world domination\"",
        ],
    ),
    (
        "storage classes, network policies and ingresses check their enums",
        "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: Shop.Example.com
    http:
      paths:
      - {path: /, pathType: Everything, backend: {service: {name: web, port: {number: 80}}}}
      - {path: api, pathType: Prefix, backend: {service: {name: api}}}
",
        &[
            "spec.rules[0].host: Invalid value: \"Shop.Example.com\"",
            "spec.rules[0].http.paths[0].pathType: Unsupported value: \"Everything\"",
            "spec.rules[0].http.paths[1].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[1].backend.service.port: Required value",
        ],
    ),
    (
        "network policy peers and ports",
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Sideways]
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]
    ports: [{protocol: TCP, port: 70000}]
",
        &[
            "spec.ingress[0].ports[0].port: Invalid value: 70000",
            "spec.ingress[0].from[0]: Forbidden: may not specify more than 1 peer type",
            "spec.policyTypes[1]: Unsupported value: \"Sideways\"",
        ],
    ),
    (
        "endpoint slice addresses follow the address type; ports are named once and in range",
        "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc12}
addressType: IPv4
endpoints:
- addresses: [10.244.1.5, 'fd00::1']
  nodeName: Node_1
- addresses: []
ports:
- {name: http, port: 80}
- {name: http, port: 0, protocol: ICMP}
",
        &[
            "endpoints[0].addresses[1]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
            "endpoints[0].nodeName: Invalid value: \"Node_1\"",
            "endpoints[1].addresses: Required value",
            "ports[1].name: Duplicate value: \"http\"",
            "ports[1].port: Invalid value: 0",
            "ports[1].protocol: Unsupported value: \"ICMP\"",
        ],
    ),
    (
        "an endpoint slice names its address type",
        "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc12}
endpoints: [{addresses: [10.0.0.1]}]
",
        &["addressType: Required value"],
    ),
];

#[test]
fn each_broken_manifest_gives_exactly_its_errors() {
    for (case, yaml, expected) in CASES {
        assert_errors(case, yaml, expected);
    }
}

const CSR_PEM: &str =
    "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";

#[test]
fn a_csr_with_a_pem_request_and_a_signer_passes() {
    use base64::Engine;
    let request = base64::engine::general_purpose::STANDARD.encode(CSR_PEM);
    let yaml = format!(
        "
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: jane}}
spec:
  request: {request}
  signerName: kubernetes.io/kube-apiserver-client
  usages: [client auth]
"
    );
    assert_eq!(errors(&yaml), Vec::<String>::new());
}

#[test]
fn valid_objects_of_other_kinds_pass() {
    let manifests = [
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: NodePort, selector: {app: web}, ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}, {name: https, port: 443}]}",
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv-log}\nspec: {accessModes: [ReadWriteMany], capacity: {storage: 100Mi}, hostPath: {path: /pv/log}}",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: claim}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 50Mi}}}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {FROM_CONFIGMAP: dmFsdWUy}\nstringData: {plain: text}",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: helm}\ntype: helm.sh/release.v1",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: 'system:read'}\nsubjects: [{kind: ServiceAccount, name: dashboard, namespace: kube-system}, {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]\nroleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: pi, image: perl}]}}}",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: local-storage}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer",
        "apiVersion: v1\nkind: Binding\nmetadata: {name: nginx}\ntarget: {apiVersion: v1, kind: Node, name: node01}",
        "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {containers: [{name: c, image: nginx}]}",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-x1, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [10.244.1.5], conditions: {ready: true, serving: true, terminating: false}, nodeName: n1, targetRef: {kind: Pod, name: web-1, namespace: default}}]\nports: [{name: http, port: 8080, protocol: TCP}]",
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {publishNotReadyAddresses: true, clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}",
    ];
    for yaml in manifests {
        assert_eq!(errors(yaml), Vec::<String>::new(), "{yaml}");
    }
}

#[test]
fn dns_config_is_required_with_dns_policy_none_and_bounded() {
    let pod = |spec: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n{spec}"
        )
    };
    assert_errors(
        "None without dnsConfig",
        &pod("  dnsPolicy: None\n"),
        &["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"],
    );
    assert_errors(
        "None without nameservers",
        &pod("  dnsPolicy: None\n  dnsConfig: {searches: [a.example]}\n"),
        &["spec.dnsConfig.nameservers: Required value"],
    );
    assert_errors(
        "bad nameservers and options",
        &pod("  dnsConfig:\n    nameservers: [1.1.1.1, 8.8.8.8, 9.9.9.9, dns.example]\n    options: [{value: '2'}]\n"),
        &[
            "spec.dnsConfig.nameservers: Invalid value",
            "spec.dnsConfig.nameservers[3]: Invalid value: \"dns.example\": must be a valid IP address",
            "spec.dnsConfig.options[0].name: Required value",
        ],
    );
    assert_errors(
        "a valid None",
        &pod("  dnsPolicy: None\n  dnsConfig:\n    nameservers: [10.0.0.10]\n    searches: [corp.example]\n    options: [{name: ndots, value: '2'}, {name: edns0}]\n"),
        &[],
    );
}
