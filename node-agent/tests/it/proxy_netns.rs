//! The node proxy's nftables rules in the kernel, in a network namespace each test makes
//! (loopback and a veth pair only; deleted on drop): busybox `httpd` endpoints on
//! addresses of the namespace's loopback, requests with busybox `wget` from inside it, and
//! the rules written by [`NftTable`] through `ip netns exec NS nft`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use node_agent::{service_rules, NftTable, Ruleset, ServiceState};
use rafter_proto::{apply_defaults, parse_object, Object};

use crate::harness::{eventually_within, unique};

/// A network namespace with a node address (10.201.0.1 on a veth, default route out of
/// it so ClusterIPs route) and endpoint addresses on its loopback; deleted on drop with
/// every server it runs.
pub struct Netns {
    pub name: String,
    servers: Vec<tokio::process::Child>,
    _roots: Vec<tempfile::TempDir>,
}

/// The namespace's node address.
pub const NODE_IP: &str = "10.201.0.1";

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("rafter-proxy").chars().take(40).collect::<String>();
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            servers: Vec::new(),
            _roots: Vec::new(),
        };
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "v0",
        ]);
        ip(&["-n", n, "link", "set", "v0", "up"]);
        ip(&["-n", n, "link", "set", "v1", "up"]);
        ip(&["-n", n, "route", "add", "default", "via", "10.201.0.2"]);
        ns
    }

    /// The command that runs nft in the namespace.
    pub fn nft_command(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name, "nft"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Serves `body` over HTTP on `addr:port` (the address is added to loopback).
    pub async fn serve(&mut self, addr: &str, port: u16, body: &str) {
        ip(&[
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "lo",
        ]);
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), body).unwrap();
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "httpd", "-f"])
            .args(["-p", &format!("{addr}:{port}"), "-h"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.servers.push(child);
        self._roots.push(root);
        let url = format!("http://{addr}:{port}/");
        eventually_within(
            Duration::from_secs(10),
            || format!("httpd on {url}"),
            || async { self.get(&url).await.ok().filter(|b| b == body) },
        )
        .await;
    }

    /// GETs `url` from inside the namespace: the body, or wget's error.
    pub async fn get(&self, url: &str) -> Result<String, String> {
        // busybox wget's own -T segfaults (Debian's busybox 1.35): time it out here.
        let run = tokio::process::Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "wget"])
            .args(["-O", "-", url])
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(Duration::from_secs(3), run).await {
            Ok(out) => out.unwrap(),
            Err(_) => return Err(format!("{url}: timed out")),
        };
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// `count` GETs of `url`, counted by answer.
    pub async fn tally(&self, url: &str, count: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..count {
            let answer = self
                .get(url)
                .await
                .unwrap_or_else(|e| format!("error: {e}"));
            *seen.entry(answer).or_default() += 1;
        }
        seen
    }

    /// The proxy table as nft lists it, or `None` when it does not exist.
    pub fn table(&self, table: &str) -> Option<String> {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &self.name, "nft", "list", "table", "ip", table,
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.start_kill();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A state holding the manifests (Services and Endpoints), defaulted as the API does.
pub fn state(manifests: &[&str]) -> ServiceState {
    let mut state = ServiceState::default();
    for yaml in manifests {
        let mut object = parse_object(yaml, "test").unwrap();
        apply_defaults(&mut object);
        let key = (
            object.metadata().namespace.clone(),
            object.metadata().name.clone(),
        );
        match object {
            Object::Service(s) => {
                state.services.insert(key, s);
            }
            Object::Endpoints(e) => {
                state.endpoints.insert(key, e);
            }
            other => panic!("not a Service or Endpoints: {other:?}"),
        }
    }
    state
}

fn endpoints(ips: &[&str]) -> String {
    let addresses: Vec<String> = ips
        .iter()
        .map(|ip| format!("{{ip: {ip}, nodeName: n1}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: web, namespace: shop}}\nsubsets: [{{addresses: [{}], ports: [{{name: http, port: 8080}}]}}]",
        addresses.join(", ")
    )
}

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, nodePort: 30080}]}\nstatus: {loadBalancer: {ingress: [{ip: 10.201.0.1}]}}";

async fn apply(table: &mut NftTable, manifests: &[&str]) {
    apply_as(table, manifests, "n1").await
}

/// Applies the rules node `node` makes of `manifests`.
async fn apply_as(table: &mut NftTable, manifests: &[&str], node: &str) {
    let rules = service_rules(&state(manifests), node);
    table
        .apply(&Ruleset::build(table.name(), &rules))
        .await
        .unwrap();
}

async fn three_endpoints() -> Netns {
    let mut ns = Netns::new();
    for (i, addr) in ["10.200.0.2", "10.200.0.3", "10.200.0.4"]
        .iter()
        .enumerate()
    {
        ns.serve(addr, 8080, &format!("replica-{i}")).await;
    }
    ns
}

fn replicas(seen: &BTreeMap<String, usize>) -> Vec<&str> {
    seen.keys()
        .filter(|k| k.starts_with("replica-"))
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn cluster_ip_node_port_and_ingress_spread_over_every_endpoint() {
    let ns = three_endpoints().await;
    let mut table = NftTable::new("rafter", ns.nft_command());
    let eps = endpoints(&["10.200.0.2", "10.200.0.3", "10.200.0.4"]);
    apply(&mut table, &[WEB, &eps]).await;
    for url in [
        "http://10.96.0.10:80/",
        &format!("http://{NODE_IP}:30080/"),
        &format!("http://{NODE_IP}:80/"),
    ] {
        let seen = ns.tally(url, 30).await;
        assert_eq!(
            replicas(&seen),
            vec!["replica-0", "replica-1", "replica-2"],
            "30 requests to {url}: {seen:?}"
        );
        assert_eq!(seen.values().sum::<usize>(), 30, "{url}: {seen:?}");
    }
}

#[tokio::test]
async fn client_ip_affinity_keeps_a_client_on_one_endpoint_across_syncs() {
    let ns = three_endpoints().await;
    let mut table = NftTable::new("rafter", ns.nft_command());
    let sticky = WEB.replace(
        "clusterIP: 10.96.0.10,",
        "clusterIP: 10.96.0.10, sessionAffinity: ClientIP,",
    );
    let eps = endpoints(&["10.200.0.2", "10.200.0.3", "10.200.0.4"]);
    apply(&mut table, &[&sticky, &eps]).await;
    let first = ns.tally("http://10.96.0.10/", 10).await;
    assert_eq!(first.len(), 1, "one client, one endpoint: {first:?}");
    // A sync (another Service appears) keeps the affinity entries.
    let other = "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: shop}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}";
    apply(&mut table, &[&sticky, &eps, other]).await;
    let again = ns.tally("http://10.96.0.10/", 10).await;
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        again.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn removed_endpoints_and_services_take_their_rules_with_them() {
    let ns = three_endpoints().await;
    let mut table = NftTable::new("rafter", ns.nft_command());
    let eps = endpoints(&["10.200.0.2", "10.200.0.3", "10.200.0.4"]);
    apply(&mut table, &[WEB, &eps]).await;
    assert_eq!(replicas(&ns.tally("http://10.96.0.10/", 30).await).len(), 3);

    // One endpoint removed: 100 requests in a row succeed, none reach it.
    let two = endpoints(&["10.200.0.2", "10.200.0.4"]);
    apply(&mut table, &[WEB, &two]).await;
    let seen = ns.tally("http://10.96.0.10/", 100).await;
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["replica-0", "replica-2"],
        "{seen:?}"
    );
    let listed = ns.table("rafter").unwrap();
    assert!(!listed.contains("10.200.0.3"), "{listed}");

    // No endpoint at all: the ClusterIP and the NodePort refuse at once.
    apply(&mut table, &[WEB]).await;
    for url in ["http://10.96.0.10/", &format!("http://{NODE_IP}:30080/")] {
        let err = ns.get(url).await.unwrap_err();
        assert!(err.contains("refused"), "{url}: {err}");
    }

    // The Service gone: nothing of it is left in the table.
    apply(&mut table, &[]).await;
    let listed = ns.table("rafter").unwrap();
    assert!(
        !listed.contains("10.96.0.10") && !listed.contains("30080"),
        "{listed}"
    );
    assert!(ns.get("http://10.96.0.10/").await.is_err());

    // Removing the table leaves nothing.
    table.remove().await.unwrap();
    assert_eq!(ns.table("rafter"), None);
}

#[tokio::test]
async fn a_failed_sync_changes_nothing_and_the_next_one_replaces_the_whole_table() {
    let ns = three_endpoints().await;
    let mut table = NftTable::new("rafter", ns.nft_command());
    let eps = endpoints(&["10.200.0.2", "10.200.0.3", "10.200.0.4"]);
    let other = "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: shop}\nspec: {clusterIP: 10.96.0.11, ports: [{name: http, port: 80}]}";
    let other_eps = eps.replace("name: web", "name: other");
    apply(&mut table, &[WEB, &eps, other, &other_eps]).await;
    // Someone else removes the table: the next in-place update (which deletes the
    // chains of `other`) fails as one transaction — no table appears half-filled.
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "nft", "delete", "table", "ip", "rafter",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let rules = service_rules(&state(&[WEB, &eps]), "n1");
    let ruleset = Ruleset::build("rafter", &rules);
    let err = table.apply(&ruleset).await.unwrap_err();
    assert!(err.to_string().contains("nft failed"), "{err}");
    assert_eq!(
        ns.table("rafter"),
        None,
        "a failed transaction left a table"
    );
    // The retry rebuilds the whole table.
    let applied = table.apply(&ruleset).await.unwrap();
    assert!(applied.full);
    assert_eq!(replicas(&ns.tally("http://10.96.0.10/", 30).await).len(), 3);
}

#[tokio::test]
async fn local_policy_node_ports_reach_only_this_nodes_endpoints_and_drop_without_one() {
    let ns = three_endpoints().await;
    let mut table = NftTable::new("rafter", ns.nft_command());
    let local = WEB.replace(
        "type: LoadBalancer,",
        "type: LoadBalancer, externalTrafficPolicy: Local,",
    );
    // 10.200.0.2 runs on n1, 10.200.0.3 on n2.
    let eps = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: shop}\nsubsets: [{addresses: [{ip: 10.200.0.2, nodeName: n1}, {ip: 10.200.0.3, nodeName: n2}], ports: [{name: http, port: 8080}]}]";
    apply_as(&mut table, &[&local, eps], "n1").await;
    let node_port = format!("http://{NODE_IP}:30080/");
    let seen = ns.tally(&node_port, 20).await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        vec!["replica-0"],
        "{seen:?}"
    );
    let seen = ns.tally("http://10.96.0.10/", 30).await;
    assert_eq!(
        replicas(&seen),
        vec!["replica-0", "replica-1"],
        "the ClusterIP reaches both: {seen:?}"
    );

    // As node n3, which runs none: the NodePort and the ingress address answer nothing
    // (dropped, not refused), the ClusterIP still works.
    apply_as(&mut table, &[&local, eps], "n3").await;
    for url in [node_port.as_str(), &format!("http://{NODE_IP}:80/")] {
        let err = ns.get(url).await.unwrap_err();
        assert!(err.contains("timed out"), "{url}: {err}");
    }
    assert!(ns
        .get("http://10.96.0.10/")
        .await
        .unwrap()
        .starts_with("replica-"));
}
