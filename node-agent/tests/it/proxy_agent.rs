//! The node proxy inside a running agent, against an in-process gateway: Services
//! without a selector and hand-written v1 Endpoints (legitimate Kubernetes usage), with
//! explicit ClusterIPs and NodePorts.
//!
//! - userspace mode (process runtime): NodePorts answer from test-run TCP backends;
//! - nftables mode (containerd): three busybox httpd pods behind a ClusterIP, a NodePort
//!   and a LoadBalancer address, requests from another pod through CRI exec, hairpin,
//!   endpoint removal, Service deletion, and the table gone when the agent stops.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use node_agent::{AgentConfig, ProxyMode};
use rafter_client::DeleteOptions;
use rafter_proto::v1::Pod;
use rafter_proto::{apply_defaults, parse_object, Kind, Object};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::agent::{container, pod, running, sh};
use crate::cluster::{Cluster, TestNode};
use crate::harness::{eventually, eventually_within, Runtime};

/// Creates or replaces the object of `yaml` through the API.
async fn put(cluster: &Cluster, yaml: &str) {
    let mut object = parse_object(yaml, "test").unwrap();
    apply_defaults(&mut object);
    let meta = object.metadata().clone();
    match cluster
        .client
        .get(object.kind(), &meta.namespace, &meta.name)
        .await
    {
        Ok(current) => {
            object.metadata_mut().resource_version = current.metadata().resource_version.clone();
            cluster.client.update(object).await.unwrap();
        }
        Err(_) => {
            cluster.client.create(object).await.unwrap();
        }
    }
}

async fn delete_service(cluster: &Cluster, name: &str) {
    cluster
        .client
        .delete(Kind::Service, "default", name, &DeleteOptions::default())
        .await
        .unwrap();
}

fn endpoints_yaml(name: &str, port: u16, ips: &[String]) -> String {
    let addresses: Vec<String> = ips.iter().map(|ip| format!("{{ip: '{ip}'}}")).collect();
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}, namespace: default}}\nsubsets: [{{addresses: [{}], ports: [{{name: http, port: {port}}}]}}]",
        addresses.join(", ")
    )
}

/// Ports handed out so far in this process (tests run in parallel: never the same twice).
static HANDED_OUT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// A free TCP port in the NodePort range (bound and released), never one handed out
/// before in this process.
fn free_node_port() -> u16 {
    let base = 30000 + (std::process::id() % 2000) as u16;
    loop {
        let n = HANDED_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 2767, "no free NodePort left");
        let port = 30000 + (base - 30000 + n) % 2767;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// Deletes the proxy table on drop, also when the test fails (the agent's clean stop
/// removes it too; a dropped agent does not).
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.0])
            .output();
    }
}

/// `GET /` over HTTP/1.0 to `addr`; the body.
async fn http_get(addr: SocketAddr) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .await
            .map_err(|e| e.to_string())?;
        Ok(text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or(&text)
            .trim()
            .to_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{addr}: timed out")))
}

/// A TCP backend answering every connection with an HTTP response of `body`.
async fn backend(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let reply = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

pub async fn the_userspace_proxy_spreads_node_port_connections_and_follows_changes(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start_with(&cluster, rt, |c: &mut AgentConfig| {
        c.proxy = ProxyMode::Userspace;
    })
    .await;
    let backends = [
        backend("b0").await,
        backend("b1").await,
        backend("b2").await,
    ];
    // The Endpoints carry one port: run the three backends' ports as three subsets.
    let node_port = free_node_port();
    put(&cluster, &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{type: NodePort, clusterIP: 10.96.77.1, ports: [{{name: http, port: 80, nodePort: {node_port}}}]}}")).await;
    let subsets = |addrs: &[SocketAddr]| {
        let subsets: Vec<String> = addrs
            .iter()
            .map(|a| {
                format!(
                    "{{addresses: [{{ip: '{}'}}], ports: [{{name: http, port: {}}}]}}",
                    a.ip(),
                    a.port()
                )
            })
            .collect();
        format!("apiVersion: v1\nkind: Endpoints\nmetadata: {{name: web, namespace: default}}\nsubsets: [{}]", subsets.join(", "))
    };
    put(&cluster, &subsets(&backends)).await;
    let front = SocketAddr::from((Ipv4Addr::LOCALHOST, node_port));
    let seen = eventually("the NodePort to reach all three backends", || async {
        let mut seen = BTreeMap::new();
        for _ in 0..30 {
            *seen.entry(http_get(front).await.ok()?).or_insert(0) += 1;
        }
        (seen.len() == 3).then_some(seen)
    })
    .await;
    assert_eq!(seen.values().sum::<usize>(), 30, "{seen:?}");

    // One endpoint removed: it is never reached again.
    put(&cluster, &subsets(&backends[..2])).await;
    eventually("the removed backend to leave the rotation", || async {
        let mut all = Vec::new();
        for _ in 0..20 {
            all.push(http_get(front).await.ok()?);
        }
        all.iter().all(|b| b != "b2").then_some(())
    })
    .await;

    // The Service gone: nothing listens.
    delete_service(&cluster, "web").await;
    eventually("the NodePort to close", || async {
        http_get(front).await.is_err().then_some(())
    })
    .await;
    drop(node);
}

/// The table of a test node's proxy (its own, removed when the agent stops).
fn table_of(node: &str) -> String {
    format!("t-{}", node.replace('-', "_"))
}

fn nft_proxy(c: &mut AgentConfig) {
    c.proxy = ProxyMode::Nftables {
        table: table_of(&c.node_name),
        command: vec!["nft".to_owned()],
    };
    c.node_ip = Some(host_address().to_string());
}

/// This host's address toward the outside (the node address NodePorts answer on).
fn host_address() -> Ipv4Addr {
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "get", "192.0.2.200"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("no source address in `ip route get`: {text}")
}

fn listed_table(table: &str) -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The id of a pod's first container in the runtime.
fn container_id(p: &Pod, name: &str) -> String {
    let id = &container(p, name).unwrap().container_id;
    id.split("://").nth(1).unwrap().to_owned()
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().unwrap().pod_ip.clone()
}

/// `wget` of `url` inside container `id`: the body, or what went wrong.
async fn wget_in(rt: &Runtime, id: &str, url: &str) -> Result<String, String> {
    // busybox wget's -q and -T crash; the exec's own timeout bounds it.
    let cmd: Vec<String> = ["wget", "-O", "-", url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match rt.exec_sync(id, &cmd, Duration::from_secs(3)).await {
        Ok(out) if out.exit_code == 0 => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        Ok(out) => Err(format!(
            "exit {}: {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

pub async fn pods_behind_services_through_nftables(rt: Runtime) {
    let cluster = Cluster::start().await;
    let mut node = TestNode::start_with(&cluster, rt.clone(), nft_proxy).await;
    let table = table_of(&node.name);
    let _guard = TableGuard(table.clone());
    let names = ["web-0", "web-1", "web-2"];
    for name in names {
        cluster
            .create_pod(pod(name, &node.name, vec![sh("httpd", HTTPD)]))
            .await;
    }
    cluster
        .create_pod(pod("client", &node.name, vec![sh("c", "exec sleep 600")]))
        .await;
    let mut pods = BTreeMap::new();
    for name in names.iter().chain(&["client"]) {
        pods.insert(
            *name,
            cluster
                .wait_pod(name, "Running", |p| running(p).map(|_| p.clone()))
                .await,
        );
    }
    let ips: Vec<String> = names.iter().map(|n| pod_ip(&pods[n])).collect();
    let client = container_id(&pods["client"], "c");
    let web0 = container_id(&pods["web-0"], "httpd");

    // A ClusterIP unlikely to clash with another test's: 10.97.<pid>.<n>.
    let octet = std::process::id() % 250;
    let cip = |n: u32| format!("10.97.{octet}.{n}");
    let (node_port, lb_port) = (free_node_port(), 18000 + (std::process::id() % 1000) as u16);
    let host = host_address();
    put(&cluster, &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{type: NodePort, clusterIP: '{}', ports: [{{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}]}}", cip(1))).await;
    put(&cluster, &endpoints_yaml("web", 8080, &ips)).await;
    put(&cluster, &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: lb, namespace: default}}\nspec: {{type: LoadBalancer, clusterIP: '{}', ports: [{{name: http, port: {lb_port}, targetPort: 8080, nodePort: {}}}]}}", cip(2), free_node_port())).await;
    put(&cluster, &endpoints_yaml("lb", 8080, &ips)).await;
    put(&cluster, &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: self0, namespace: default}}\nspec: {{clusterIP: '{}', ports: [{{name: http, port: 80}}]}}", cip(3))).await;
    put(&cluster, &endpoints_yaml("self0", 8080, &ips[..1])).await;
    // The masters' service load balancer would write this (see the actors' servicelb).
    let Object::Service(mut lb) = cluster
        .client
        .get(Kind::Service, "default", "lb")
        .await
        .unwrap()
    else {
        panic!("not a Service")
    };
    lb.status = Some(parse_status(&format!(
        "{{loadBalancer: {{ingress: [{{ip: '{host}'}}]}}}}"
    )));
    cluster
        .client
        .update_status(Object::Service(lb))
        .await
        .unwrap();

    // 30 requests from another pod reach all three replicas.
    let url = format!("http://{}/", cip(1));
    let seen = eventually(
        "30 requests through the ClusterIP to reach all three pods",
        || async {
            let mut seen = BTreeMap::new();
            for _ in 0..30 {
                *seen
                    .entry(wget_in(&rt, &client, &url).await.ok()?)
                    .or_insert(0) += 1;
            }
            (seen.len() == 3).then_some(seen)
        },
    )
    .await;
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        names.to_vec(),
        "each pod serves its hostname"
    );

    // The NodePort answers from the host on the node address; the LoadBalancer Service on
    // its ingress address.
    // (127.0.0.1: the userspace listeners beside the rules.)
    for addr in [
        SocketAddr::from((host, node_port)),
        SocketAddr::from((host, lb_port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, node_port)),
    ] {
        let body = eventually_within(
            Duration::from_secs(10),
            || format!("{addr} to answer"),
            || async { http_get(addr).await.ok() },
        )
        .await;
        assert!(names.contains(&body.as_str()), "{addr}: {body}");
    }

    // Hairpin: a pod reaches itself through its Service.
    let own = wget_in(&rt, &web0, &format!("http://{}/", cip(3))).await;
    assert_eq!(own.as_deref(), Ok("web-0"), "hairpin");

    // An endpoint removed: after its rules go, 100 requests in a row succeed.
    put(&cluster, &endpoints_yaml("web", 8080, &ips[..2])).await;
    eventually("the removed endpoint's rules to go", || async {
        let listed = listed_table(&table)?;
        let chain = |ip: &str| format!("ep-default/web/http/{ip}/8080");
        (!listed.contains(&chain(&ips[2])) && listed.contains(&chain(&ips[0]))).then_some(())
    })
    .await;
    for i in 0..100 {
        let body = wget_in(&rt, &client, &url).await;
        assert!(
            matches!(body.as_deref(), Ok("web-0" | "web-1")),
            "request {i} after the endpoint left: {body:?}"
        );
    }

    // The Service deleted: its rules go, the next request fails.
    delete_service(&cluster, "web").await;
    eventually("the deleted Service's rules to go", || async {
        (!listed_table(&table)?.contains(&cip(1))).then_some(())
    })
    .await;
    assert!(wget_in(&rt, &client, &url).await.is_err());

    // The agent stops cleanly: its table is gone.
    node.stop().await;
    assert_eq!(listed_table(&table), None);
}

fn parse_status(json_like: &str) -> rafter_proto::v1::ServiceStatus {
    let yaml = format!("apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: {{ports: [{{port: 1}}]}}\nstatus: {json_like}");
    match parse_object(&yaml, "test").unwrap() {
        Object::Service(s) => s.status.unwrap(),
        _ => unreachable!(),
    }
}
