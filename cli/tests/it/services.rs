//! Services on a `rafter up` cluster with a containerd agent: the masters' service load
//! balancer gives a LoadBalancer Service the nodes' addresses, and the agent's proxy
//! answers on them (and on the NodePort). The Service has no selector and hand-written
//! Endpoints (legitimate Kubernetes usage), so this needs no Endpoints controller.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, Cluster};

const LIMIT: Duration = Duration::from_secs(90);

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: lb-web
spec:
  replicas: 3
  selector:
    matchLabels: {app: lb-web}
  template:
    metadata:
      labels: {app: lb-web}
    spec:
      containers:
      - name: web
        image: docker.io/local/busybox:1
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
";

/// `GET /` over HTTP/1.0; the body.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.split("\r\n\r\n").nth(1)?.trim().to_owned())
}

fn ready_pod_ips(cluster: &Cluster) -> Option<BTreeMap<String, String>> {
    let list = cluster.json(&["get", "pods", "-l", "app=lb-web"]);
    let pods = list["items"].as_array()?;
    let ready = |p: &Value| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    };
    let ips: BTreeMap<String, String> = pods
        .iter()
        .filter(|p| ready(p))
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_owned(),
                p["status"]["podIP"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (ips.len() == 3).then_some(ips)
}

/// A port free on this machine in `range`, starting at an offset of this process.
fn free_port(range: std::ops::Range<u16>) -> u16 {
    let len = range.end - range.start;
    let offset = (std::process::id() % u32::from(len)) as u16;
    (0..len)
        .map(|i| range.start + (offset + i) % len)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .unwrap()
}

#[test]
fn a_load_balancer_service_answers_on_the_nodes_addresses_and_its_node_port() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    let cluster = Cluster::start_with("svc-lb", &["--agents", "1", "--runtime", "containerd"]);
    let file = cluster.file("lb-web.yaml", DEPLOYMENT);
    cluster.ok(&["apply", "-f", &file]);
    let pods = eventually("3 Ready httpd pods", LIMIT, || ready_pod_ips(&cluster));

    let port = free_port(18000..19000);
    let node_port = free_port(31000..32000);
    let cluster_ip = format!("10.97.{}.200", std::process::id() % 250);
    let addresses: Vec<String> = pods.values().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: lb-web}}\nspec:\n  type: LoadBalancer\n  clusterIP: '{cluster_ip}'\n  ports: [{{name: http, port: {port}, targetPort: 8080, nodePort: {node_port}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: lb-web}}\nsubsets: [{{addresses: [{}], ports: [{{name: http, port: 8080}}]}}]\n",
        addresses.join(", ")
    );
    let file = cluster.file("lb-svc.yaml", &service);
    cluster.ok(&["apply", "-f", &file]);

    // The masters' service load balancer writes the Ready node's InternalIP.
    let node = cluster.json(&["get", "node", "node-1"]);
    let internal_ip = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap()
        .to_owned();
    eventually(
        "the Service's ingress to be the node's address",
        LIMIT,
        || {
            let svc = cluster.json(&["get", "svc", "lb-web"]);
            let ingress = svc["status"]["loadBalancer"]["ingress"].as_array()?;
            (ingress.len() == 1 && ingress[0]["ip"] == internal_ip.as_str()).then_some(())
        },
    );

    // 30 requests on the ingress address reach all three pods; the NodePort answers too.
    let ip: std::net::IpAddr = internal_ip.parse().unwrap();
    let seen = eventually("the ingress address to reach every pod", LIMIT, || {
        let mut seen = BTreeMap::new();
        for _ in 0..30 {
            *seen
                .entry(http_get(SocketAddr::new(ip, port))?)
                .or_insert(0) += 1;
        }
        (seen.len() == 3).then_some(seen)
    });
    let served: Vec<&String> = seen.keys().collect();
    let names: Vec<&String> = pods.keys().collect();
    assert_eq!(served, names, "each pod serves its hostname (its name)");
    let body = eventually("the NodePort to answer", LIMIT, || {
        http_get(SocketAddr::new(ip, node_port))
    });
    assert!(pods.contains_key(&body), "{body}");

    // `rafter down` stops the agent cleanly: its proxy table (named after the node and the
    // cluster's first API port) is gone.
    let config = std::fs::read_to_string(&cluster.config).unwrap();
    let api_port = config
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_owned();
    let table = format!("rafter-node-1-{api_port}");
    let listed = |table: &str| {
        std::process::Command::new("nft")
            .args(["list", "table", "ip", table])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        listed(&table),
        "the agent's table {table} exists while it runs"
    );
    let dir = cluster.dir.display().to_string();
    cluster.ok(&["down", "--dir", &dir]);
    assert!(!listed(&table), "the agent's table {table} outlived it");
}
