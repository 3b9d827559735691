//! `decoded_bytes` bounds what decoding an object really allocates, for the shapes a
//! cluster holds. Its own test binary: the counting allocator below wraps every allocation
//! of the process, and counts per thread so tests running alongside do not mix.

// reason: test code, a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use rafter_proto::{apply_defaults, decoded_bytes, parse_object, Object};

thread_local! {
    static ALLOCATED: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting the bytes each thread holds.
struct Counting;

// reason: a global allocator is an unsafe trait; this one only forwards to the system's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size() as isize));
        // SAFETY: forwarded with the caller's layout, as the trait requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.with(|a| a.set(a.get() - layout.size() as isize));
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocated() -> isize {
    ALLOCATED.with(Cell::get)
}

/// Decodes `object`'s encoding as the API server's registry does (type meta and
/// resourceVersion set) into an `Arc`, and returns the bytes that took and the encoding's
/// length.
fn decoded_cost(object: &Object) -> (usize, usize) {
    let bytes = object.encode_to_vec();
    let before = allocated();
    let mut decoded = Object::decode(object.kind(), &bytes).unwrap();
    decoded.set_type_meta();
    decoded.metadata_mut().resource_version = "1234567".to_owned();
    let shared = Arc::new(decoded);
    let cost = allocated() - before;
    drop(shared);
    (usize::try_from(cost).unwrap(), bytes.len())
}

fn object(yaml: &str) -> Object {
    let mut object = parse_object(yaml, "footprint").unwrap();
    apply_defaults(&mut object);
    object
}

const BOUND_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sched-000001
  namespace: bench
  uid: 0b7f6a3c-8d4e-4c1a-9a55-3b1d0c3e2f11
  creationTimestamp: "2026-12-06T17:00:00Z"
  labels: {app: bench-scheduler}
spec:
  nodeName: hollow-01234
  containers:
  - name: app
    image: registry.k8s.io/pause:3.9
    resources:
      requests: {cpu: 100m, memory: 64Mi}
status:
  phase: Pending
  conditions:
  - {type: PodScheduled, status: "True", lastTransitionTime: "2026-12-06T17:00:01Z"}
"#;

const RUNNING_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web-7d4b9c-x2x9q
  namespace: shop
  uid: 5c1e2d3f-0a4b-4c5d-8e9f-112233445566
  creationTimestamp: "2026-12-06T17:00:00Z"
  labels: {app: web, pod-template-hash: 7d4b9c, tier: frontend}
  annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9090"}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d4b9c, uid: 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d, controller: true, blockOwnerDeletion: true}
spec:
  nodeName: worker-3
  serviceAccountName: web
  containers:
  - name: web
    image: registry.example.com/shop/web:1.4.2
    args: [--port=8080, --metrics-port=9090]
    ports: [{containerPort: 8080, name: http}, {containerPort: 9090, name: metrics}]
    env:
    - {name: MODE, value: production}
    - {name: DB_HOST, value: db.shop.svc.cluster.local}
    - name: DB_PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    resources:
      requests: {cpu: 250m, memory: 256Mi}
      limits: {cpu: "1", memory: 512Mi}
    readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 5}
    livenessProbe: {httpGet: {path: /live, port: 8080}, initialDelaySeconds: 10}
    volumeMounts: [{name: config, mountPath: /etc/web}]
  - name: sidecar
    image: registry.example.com/shop/log-shipper:2.0
    resources:
      requests: {cpu: 50m, memory: 32Mi}
  volumes:
  - name: config
    configMap: {name: web-config}
status:
  phase: Running
  hostIP: 10.0.0.13
  podIP: 10.244.3.17
  podIPs: [{ip: 10.244.3.17}]
  startTime: "2026-12-06T17:00:02Z"
  conditions:
  - {type: PodScheduled, status: "True", lastTransitionTime: "2026-12-06T17:00:01Z"}
  - {type: Initialized, status: "True", lastTransitionTime: "2026-12-06T17:00:02Z"}
  - {type: ContainersReady, status: "True", lastTransitionTime: "2026-12-06T17:00:05Z"}
  - {type: Ready, status: "True", lastTransitionTime: "2026-12-06T17:00:05Z"}
  containerStatuses:
  - name: web
    image: registry.example.com/shop/web:1.4.2
    imageID: sha256:4f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80
    containerID: containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    ready: true
    started: true
    state: {running: {startedAt: "2026-12-06T17:00:04Z"}}
  - name: sidecar
    image: registry.example.com/shop/log-shipper:2.0
    ready: true
    state: {running: {startedAt: "2026-12-06T17:00:03Z"}}
"#;

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: worker-3
  uid: 7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2918
  labels: {kubernetes.io/hostname: worker-3, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec:
  podCIDR: 10.244.3.0/24
  podCIDRs: [10.244.3.0/24]
status:
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
  allocatable: {cpu: 3800m, memory: 15Gi, pods: "110"}
  addresses: [{type: InternalIP, address: 10.0.0.13}, {type: Hostname, address: worker-3}]
  conditions:
  - {type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "2026-12-06T17:00:00Z", lastTransitionTime: "2026-12-06T16:00:00Z"}
  - {type: MemoryPressure, status: "False", reason: KubeletHasSufficientMemory, lastHeartbeatTime: "2026-12-06T17:00:00Z", lastTransitionTime: "2026-12-06T16:00:00Z"}
"#;

const LEASE: &str = r#"
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: worker-3, namespace: kube-node-lease}
spec: {holderIdentity: worker-3, leaseDurationSeconds: 40, renewTime: "2026-12-06T17:00:00.000000Z"}
"#;

const EVENT: &str = r#"
apiVersion: v1
kind: Event
metadata: {name: sched-000001.17f0a1b2c3d4e5f6, namespace: bench}
involvedObject: {kind: Pod, namespace: bench, name: sched-000001, uid: 0b7f6a3c-8d4e-4c1a-9a55-3b1d0c3e2f11}
reason: Scheduled
message: Successfully assigned bench/sched-000001 to hollow-01234
type: Normal
source: {component: default-scheduler}
count: 1
firstTimestamp: "2026-12-06T17:00:01Z"
lastTimestamp: "2026-12-06T17:00:01Z"
"#;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:1.4.2
        ports: [{containerPort: 8080}]
"#;

#[test]
fn shrinking_gives_back_the_room_decoding_left_and_changes_nothing() {
    // `at_most`: what the informer holds of each once shrunk. The fields most pods leave
    // unset (probes, security contexts, a container's last state) are boxed, so they cost
    // a pointer each; held inline, a bound pod took 2,653 bytes and a running one 9,495.
    // String maps are sorted vectors: as B-trees (a 544-byte node per map) a bound pod took
    // 1,949 bytes, a running one 7,895 and a node 2,589.
    for (name, yaml, at_least, at_most) in [
        ("bound pod", BOUND_POD, 500, 1_100),
        ("running pod", RUNNING_POD, 2_000, 6_000),
        ("node", NODE, 200, 1_500),
    ] {
        let object = object(yaml);
        let bytes = object.encode_to_vec();
        let before = allocated();
        let mut decoded = Object::decode(object.kind(), &bytes).unwrap();
        let plain = allocated() - before;
        decoded.shrink_to_fit();
        let shrunk = allocated() - before;
        println!("{name}: {plain} bytes decoded, {shrunk} shrunk");
        assert!(
            plain - shrunk >= at_least,
            "{name}: shrinking gave back {} bytes of {plain}, expected {at_least} or more",
            plain - shrunk
        );
        assert!(
            shrunk <= at_most,
            "{name}: {shrunk} bytes once shrunk, expected {at_most} or fewer"
        );
        assert_eq!(decoded, object, "{name}: shrinking changed the object");
    }
}

#[test]
fn the_estimate_bounds_what_decoding_allocates() {
    for (name, yaml) in [
        ("bound pod", BOUND_POD),
        ("running pod", RUNNING_POD),
        ("node", NODE),
        ("lease", LEASE),
        ("event", EVENT),
        ("deployment", DEPLOYMENT),
    ] {
        let (cost, encoded) = decoded_cost(&object(yaml));
        let estimate = decoded_bytes(encoded);
        println!("{name}: {encoded} bytes encoded, {cost} decoded, {estimate} estimated");
        assert!(
            cost <= estimate,
            "{name}: decoding {encoded} bytes allocated {cost}, above the estimate {estimate}"
        );
        // An estimate far above the truth would make caches hold much less than their budget.
        assert!(
            estimate <= 4 * cost,
            "{name}: the estimate {estimate} is over four times the {cost} allocated"
        );
    }
}
