//! Cluster DNS on a `rafter up` cluster whose agent has a containerd of its own (its pod
//! network takes the node's pod CIDR, as `make up` sets it up): pods find Services by
//! name through the kube-dns Service, which the node proxy sends to the agent's DNS
//! server. The cluster gets a service range of its own, so no other cluster running on
//! this machine answers for its kube-dns address. Half-way through, a master is killed:
//! names keep resolving, and a Service created after the kill resolves too.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(120);

/// A containerd with a CNI conf template (the pod network starts at the node's pod CIDR),
/// stopped, with its bridge removed, when dropped. Its images (`images/*.tar`, built by
/// scripts/build-images.sh) are under `dir`.
pub(crate) struct PrivateContainerd {
    pub(crate) dir: tempfile::TempDir,
    bridge: String,
    pub(crate) sock: String,
}

impl PrivateContainerd {
    pub(crate) fn start(bridge: &str) -> PrivateContainerd {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd-setup.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .env("RAFTER_CNI_TEMPLATE", "1")
            .env("RAFTER_CNI_BRIDGE", bridge)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "containerd-setup.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_owned();
        PrivateContainerd {
            dir,
            bridge: bridge.to_owned(),
            sock,
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("containerd.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).output();
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}

/// Applies `manifests` and waits until pod `pod` (namespace `dev`) in them has finished;
/// its phase.
fn run_to_the_end(cluster: &Cluster, pod: &str, manifests: &str) -> String {
    let file = cluster.file(&format!("{pod}.yaml"), manifests);
    cluster.ok(&["apply", "-f", &file]);
    eventually(&format!("pod {pod} to finish"), LIMIT, || {
        let object = cluster.json(&["get", "pod", pod, "-n", "dev"]);
        let phase = object["status"]["phase"].as_str()?.to_owned();
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
}

/// The ClusterIP of Service `name` in `namespace`.
fn cluster_ip(cluster: &Cluster, name: &str, namespace: &str) -> String {
    cluster.json(&["get", "svc", name, "-n", namespace])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn pods_resolve_services_by_name_through_the_cluster_dns() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    let n = std::process::id() % 100 + 100;
    let containerd = PrivateContainerd::start(&format!("rdns{n}"));
    let range = format!("10.{n}.0.0/16");
    let cluster = Cluster::start_with(
        "dns",
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &containerd.sock,
            "--service-cluster-ip-range",
            &range,
        ],
    );
    let dns = cluster.json(&["get", "svc", "kube-dns", "-n", "kube-system"]);
    assert_eq!(dns["spec"]["clusterIP"], format!("10.{n}.0.10"), "{dns}");

    let manifests = "\
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Service
metadata: {name: db-service, namespace: dev}
spec:
  selector: {app: db}
  ports: [{name: mysql, port: 3306}]
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Service
metadata: {name: db-service, namespace: prod}
spec:
  selector: {app: db}
  ports: [{name: mysql, port: 3306}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: dev, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: docker.io/local/busybox:1
    command: [sh, -c, 'mkdir -p /www && echo served-by-name > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: dev}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
";
    let file = cluster.file("dns-app.yaml", manifests);
    cluster.ok(&["apply", "-f", &file]);
    let db_ip = cluster_ip(&cluster, "db-service", "dev");

    // The seeds' init container waits for a name; the app then looks names up and fetches
    // by name; an unknown name must not resolve.
    let client = "\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: dev}
spec:
  restartPolicy: Never
  initContainers:
  - name: wait
    image: docker.io/local/busybox:1
    command: [sh, -c, 'until nslookup db-service.dev.svc.cluster.local; do sleep 1; done']
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command:
    - sh
    - -c
    - |
      cat /etc/resolv.conf
      nslookup db-service.dev.svc.cluster.local || exit 1
      echo short-name; nslookup db-service
      echo other-namespace; nslookup db-service.prod.svc.cluster.local
      nslookup kubernetes.default.svc.cluster.local || exit 2
      until wget -O - http://web.dev.svc.cluster.local/; do sleep 1; done
      if nslookup nothing-here.dev.svc.cluster.local; then exit 3; fi
      echo all-resolved
";
    let phase = run_to_the_end(&cluster, "client", client);
    let prod_ip = cluster_ip(&cluster, "db-service", "prod");
    let logs = cluster.ok(&["logs", "client", "-n", "dev", "-c", "app"]);
    assert_eq!(phase, "Succeeded", "{logs}");
    assert!(logs.contains(&format!("nameserver 10.{n}.0.10")), "{logs}");
    assert!(
        logs.contains("search dev.svc.cluster.local svc.cluster.local cluster.local"),
        "{logs}"
    );
    assert!(
        logs.contains(&db_ip),
        "db-service resolves to {db_ip}: {logs}"
    );
    // The short name through the search list (busybox's nslookup tries every search
    // domain at once and prints each answer, so the addresses are checked, not its exit
    // status; it searches only names without a dot, so the other namespace's Service is
    // asked for in full).
    let after = |marker: &str| logs.split(marker).nth(1).unwrap_or_default().to_owned();
    let short = after("short-name");
    let short = short.split("other-namespace").next().unwrap_or_default();
    assert!(short.contains(&db_ip), "db-service is {db_ip}: {logs}");
    assert!(
        after("other-namespace").contains(&prod_ip),
        "prod's db-service is {prod_ip}: {logs}"
    );
    let api_ip = format!(" 10.{n}.0.1");
    assert!(
        logs.lines().any(|l| l.trim_end().ends_with(&api_ip)),
        "kubernetes.default resolves to{api_ip}: {logs}"
    );
    assert!(logs.contains("served-by-name"), "{logs}");
    assert!(logs.contains("all-resolved"), "{logs}");

    // A master dies. The agents answer from their own cache, so names keep resolving, and
    // their watch moves to another master, so a Service created after the kill resolves
    // too. The same pod looks up a headless Service (each ready pod's address, SRV with the
    // port) and names with a namespace but no domain through the resolver's search list.
    cluster.kill_master(0);
    let web_ip = cluster.json(&["get", "pod", "web", "-n", "dev"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let after_kill = "\
apiVersion: v1
kind: Service
metadata: {name: late, namespace: dev}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless, namespace: dev}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: late-client, namespace: dev}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command:
    - sh
    - -c
    - |
      until nslookup late.dev.svc.cluster.local; do sleep 1; done
      echo still-resolves; nslookup db-service.dev.svc.cluster.local || exit 1
      echo headless-lookup; nslookup web-headless.dev.svc.cluster.local || exit 2
      echo srv-lookup; nslookup -type=srv _http._tcp.web-headless.dev.svc.cluster.local || exit 3
      echo namespace-qualified; ping -c 1 -W 1 db-service.prod 2>&1 | head -1
      echo fetched; until wget -O - http://late.dev/; do sleep 1; done
      echo end
";
    let phase = run_to_the_end(&cluster, "late-client", after_kill);
    let late_ip = cluster_ip(&cluster, "late", "dev");
    let logs = cluster.ok(&["logs", "late-client", "-n", "dev"]);
    assert_eq!(phase, "Succeeded", "{logs}");
    let section = |from: &str, to: &str| {
        let rest = logs.split_once(from).map(|(_, r)| r).unwrap_or_default();
        rest.split_once(to).map_or(rest, |(s, _)| s).to_owned()
    };
    assert!(
        logs.split("still-resolves")
            .next()
            .unwrap_or_default()
            .contains(&late_ip),
        "late resolves to {late_ip}: {logs}"
    );
    assert!(
        section("still-resolves", "headless-lookup").contains(&db_ip),
        "{logs}"
    );
    assert!(
        section("headless-lookup", "srv-lookup").contains(&web_ip),
        "the headless Service answers with the pod's address {web_ip}: {logs}"
    );
    assert!(
        section("srv-lookup", "namespace-qualified").contains(" 8080 "),
        "SRV carries the port 8080: {logs}"
    );
    assert!(
        section("namespace-qualified", "fetched").contains(&prod_ip),
        "db-service.prod resolves through the search list to {prod_ip}: {logs}"
    );
    assert!(
        section("fetched", "end").contains("served-by-name"),
        "{logs}"
    );
    cluster.ok(&[
        "delete",
        "pod",
        "late-client",
        "-n",
        "dev",
        "--grace-period",
        "0",
    ]);

    for pod in ["client", "web"] {
        cluster.ok(&["delete", "pod", pod, "-n", "dev", "--grace-period", "0"]);
    }
    eventually("the pods to be gone", LIMIT, || {
        let pods = cluster.json(&["get", "pods", "-n", "dev"]);
        pods["items"].as_array()?.is_empty().then_some(())
    });
}
