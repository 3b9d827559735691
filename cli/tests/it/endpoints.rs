//! Endpoints and EndpointSlices on a `rafter up` cluster with real containers: three masters
//! and one agent running busybox pods through containerd (`RAFTER_CONTAINERD_SOCK`; the
//! test is skipped, saying so, without it). A 3-replica Deployment with a readiness probe
//! behind a Service: the Endpoints and the EndpointSlice list the three pod IPs; a pod
//! made NotReady leaves `addresses` within a second of its Ready condition turning false,
//! measured between the two changes as watches deliver them; a deleted pod leaves them
//! as fast. A Service targeting a port
//! name no pod has lists no endpoints and says why in a Warning event.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rafter_client::{Client, ResolvedConfig, WatchParams};
use rafter_proto::{v1, Kind, Object};
use serde_json::Value;

use crate::cluster::{eventually, Cluster};

/// The Deployment and Service. Each pod writes its name where its readiness probe looks;
/// the probe fails once a file of that name exists in the shared hostPath `ready_dir`.
fn manifest(ready_dir: &Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: docker.io/local/busybox:1
        command: [sh, -c, 'echo $POD_NAME > /tmp/name; trap "exit 0" TERM; while true; do sleep 1; done']
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          exec: {{command: [sh, -c, 'test -s /tmp/name && test ! -e /ready/$(cat /tmp/name)']}}
          periodSeconds: 1
          failureThreshold: 1
        volumeMounts:
        - {{name: ready, mountPath: /ready}}
      volumes:
      - name: ready
        hostPath: {{path: {dir}, type: Directory}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: web, port: 80, targetPort: http}}
"#,
        dir = ready_dir.display()
    )
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The names and IPs of the ready pods of `web`, when there are `count`.
fn ready_pods(cluster: &Cluster, count: usize) -> Option<Vec<(String, String)>> {
    let pods = items(&cluster.json(&["get", "pods", "-l", "app=web"]));
    let ready: Vec<(String, String)> = pods
        .iter()
        .filter(|p| pod_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_owned(),
                p["status"]["podIP"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (ready.len() == count).then_some(ready)
}

/// The ready and not-ready IPs of the Endpoints `web`, and every port it lists.
fn endpoints(ep: &v1::Endpoints) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for subset in &ep.subsets {
        ready.extend(subset.addresses.iter().map(|a| a.ip.clone()));
        not_ready.extend(subset.not_ready_addresses.iter().map(|a| a.ip.clone()));
        ports.extend(
            subset
                .ports
                .iter()
                .map(|p| format!("{}:{}/{}", p.name, p.port, p.protocol)),
        );
    }
    (ready, not_ready, ports)
}

/// The IPs an EndpointSlice marks ready, and the others.
fn slice_ips(slice: &v1::EndpointSlice) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut ready, mut other) = (BTreeSet::new(), BTreeSet::new());
    for endpoint in &slice.endpoints {
        let is_ready = endpoint.conditions.and_then(|c| c.ready) == Some(true);
        let set = if is_ready { &mut ready } else { &mut other };
        set.extend(endpoint.addresses.iter().cloned());
    }
    (ready, other)
}

fn pod_is_ready(pod: &v1::Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True")
    })
}

fn pod_name(pod: &v1::Pod) -> &str {
    pod.metadata.as_ref().map_or("", |m| m.name.as_str())
}

/// Watches pods, Endpoints and EndpointSlices in `default`; once each watch has delivered
/// its first event, runs `trigger`; then waits until a pod event satisfies `pod_changed`,
/// an Endpoints `web` event `ep_done` and a slice event `slice_done`. Returns how long
/// after the pod event the Endpoints and the slice events came, as delivered here.
async fn time_change(
    client: &Client,
    trigger: impl std::future::Future<Output = ()>,
    pod_changed: impl Fn(&v1::Pod) -> bool,
    ep_done: impl Fn(&v1::Endpoints) -> bool,
    slice_done: impl Fn(&v1::EndpointSlice) -> bool,
) -> (Duration, Duration) {
    let params = WatchParams::default();
    let mut pod_watch = Box::pin(client.watch(Kind::Pod, Some("default"), &params, None));
    let mut ep_watch = Box::pin(client.watch(Kind::Endpoints, Some("default"), &params, None));
    let mut slice_watch =
        Box::pin(client.watch(Kind::EndpointSlice, Some("default"), &params, None));
    // Each watch first delivers the current objects: the change comes after those.
    let mut started = [false; 3];
    let mut trigger = Some(trigger);
    let (mut pod_at, mut ep_at, mut slice_at) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pod_at.is_none() || ep_at.is_none() || slice_at.is_none() {
        let (which, event) = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                Some(e) = pod_watch.next() => (0, e),
                Some(e) = ep_watch.next() => (1, e),
                Some(e) = slice_watch.next() => (2, e),
                else => panic!("the watches ended"),
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("timed out: pod at {pod_at:?}, Endpoints at {ep_at:?}, slice at {slice_at:?}")
        });
        let event = event.expect("watch");
        let now = Instant::now();
        let armed = trigger.is_none();
        match event.object {
            Some(Object::Pod(pod)) if armed && pod_changed(&pod) => {
                pod_at.get_or_insert(now);
            }
            Some(Object::Endpoints(ep))
                if armed
                    && ep.metadata.as_ref().is_some_and(|m| m.name == "web")
                    && ep_done(&ep) =>
            {
                ep_at.get_or_insert(now);
            }
            Some(Object::EndpointSlice(slice)) if armed && slice_done(&slice) => {
                slice_at.get_or_insert(now);
            }
            _ => {}
        }
        started[which] = true;
        if started.iter().all(|s| *s) {
            if let Some(trigger) = trigger.take() {
                trigger.await;
            }
        }
    }
    let pod_at = pod_at.unwrap();
    (
        ep_at.unwrap().saturating_duration_since(pod_at),
        slice_at.unwrap().saturating_duration_since(pod_at),
    )
}

#[test]
fn endpoints_and_slices_follow_pod_readiness_and_deletion_within_a_second() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        eprintln!("skipped: RAFTER_CONTAINERD_SOCK is not set (scripts/containerd-setup.sh)");
        return;
    };
    let cluster = Cluster::start_with(
        "endpoints",
        &[
            "--agents",
            "1",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &socket,
        ],
    );
    let ready_dir = cluster.dir.join("ready");
    std::fs::create_dir_all(&ready_dir).unwrap();
    let file = cluster.file("web.yaml", &manifest(&ready_dir));
    cluster.ok(&["apply", "-f", &file]);
    let pods = eventually("three ready web pods", Duration::from_secs(120), || {
        ready_pods(&cluster, 3)
    });
    let ips: BTreeSet<String> = pods.iter().map(|(_, ip)| ip.clone()).collect();
    assert_eq!(ips.len(), 3, "three distinct pod IPs: {pods:?}");

    let tokio = tokio::runtime::Runtime::new().unwrap();
    let config = ResolvedConfig::load(Some(Path::new(&cluster.config)), None).unwrap();
    let client = tokio.block_on(Client::connect(config)).unwrap();
    let read_endpoints = || match tokio.block_on(client.get(Kind::Endpoints, "default", "web")) {
        Ok(Object::Endpoints(ep)) => Some(ep),
        _ => None,
    };
    let read_slices = || {
        let list = tokio
            .block_on(client.list(
                Kind::EndpointSlice,
                Some("default"),
                &rafter_client::ListParams {
                    label_selector: "kubernetes.io/service-name=web".to_owned(),
                    ..Default::default()
                },
            ))
            .ok()?;
        Some(
            list.items
                .into_iter()
                .filter_map(|o| match o {
                    Object::EndpointSlice(s) => Some(s),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
    };

    // Both list the three pods, on the pods' named port.
    let ep = eventually(
        "the Endpoints list the three pods",
        Duration::from_secs(10),
        || read_endpoints().filter(|ep| endpoints(ep).0 == ips),
    );
    let (_, not_ready, ports) = endpoints(&ep);
    assert!(not_ready.is_empty(), "{not_ready:?}");
    assert_eq!(ports, BTreeSet::from(["web:8080/TCP".to_owned()]));
    for address in ep.subsets.iter().flat_map(|s| s.addresses.iter()) {
        let target = address.target_ref.clone().unwrap_or_default();
        assert_eq!(target.kind, "Pod");
        assert!(pods
            .iter()
            .any(|(name, ip)| *name == target.name && *ip == address.ip));
        assert_eq!(address.node_name.as_deref(), Some("node-1"));
    }
    let slices = eventually(
        "one slice lists the three pods",
        Duration::from_secs(10),
        || read_slices().filter(|s| s.len() == 1 && slice_ips(&s[0]).0 == ips),
    );
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.ports.len(), 1);
    assert_eq!(
        (slice.ports[0].name.as_str(), slice.ports[0].port),
        ("web", 8080)
    );
    let owner = &slice.metadata.as_ref().unwrap().owner_references[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );

    // What a user sees.
    let table = cluster.ok(&["get", "endpoints"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ENDPOINTS", "AGE"]);
    for ip in &ips {
        assert!(table.contains(&format!("{ip}:8080")), "{table}");
    }
    let table = cluster.ok(&["get", "endpointslices"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert!(
        table.contains("IPv4") && table.contains(" 8080 "),
        "{table}"
    );
    let described = cluster.ok(&["describe", "svc", "web"]);
    let line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line:\n{described}"));
    for ip in &ips {
        assert!(line.contains(&format!("{ip}:8080")), "{described}");
    }

    // One pod turns NotReady: time its Ready condition turning false, and its leaving the
    // Endpoints' addresses and the slice's ready endpoints, as three watches see them.
    let (victim, victim_ip) = pods[1].clone();
    let marker = ready_dir.join(&victim);
    let (to_endpoints, to_slice) = tokio.block_on(time_change(
        &client,
        async { std::fs::write(&marker, b"down").unwrap() },
        |pod| pod_name(pod) == victim && !pod_is_ready(pod),
        |ep| {
            let (ready, not_ready, _) = endpoints(ep);
            !ready.contains(&victim_ip) && not_ready.contains(&victim_ip)
        },
        |slice| {
            let (ready, other) = slice_ips(slice);
            !ready.contains(&victim_ip) && other.contains(&victim_ip)
        },
    ));
    eprintln!("pod NotReady → Endpoints {to_endpoints:?}, EndpointSlice {to_slice:?}");
    assert!(
        to_endpoints < Duration::from_secs(1),
        "the Endpoints followed after {to_endpoints:?}"
    );
    assert!(
        to_slice < Duration::from_secs(1),
        "the EndpointSlice followed after {to_slice:?}"
    );
    let (ready, not_ready, _) = endpoints(&read_endpoints().unwrap());
    let rest: BTreeSet<String> = ips.iter().filter(|ip| **ip != victim_ip).cloned().collect();
    assert_eq!(ready, rest);
    assert_eq!(not_ready, BTreeSet::from([victim_ip.clone()]));

    // A Service targeting a port name no pod has: no endpoints, and it says why.
    let metrics = cluster.file(
        "metrics.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-metrics}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: metrics, port: 9100, targetPort: metrics}\n",
    );
    cluster.ok(&["apply", "-f", &metrics]);
    let described = eventually("the missing port reported", Duration::from_secs(10), || {
        let text = cluster.ok(&["describe", "svc", "web-metrics"]);
        (text.contains("TargetPortNotFound")
            && text.contains(&format!(
                "pod {victim} has no container port named \"metrics\""
            )))
        .then_some(text)
    });
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Endpoints:") && l.ends_with("<none>")),
        "{described}"
    );
    assert!(described.contains("Warning"), "{described}");
    cluster.ok(&["delete", "-f", &metrics]);

    // Ready again, it comes back.
    std::fs::remove_file(ready_dir.join(&victim)).unwrap();
    eventually("the pod back in addresses", Duration::from_secs(30), || {
        read_endpoints().filter(|ep| endpoints(ep).0 == ips)
    });

    // A pod deleted: it leaves the Endpoints as soon as it is terminating, and the slice
    // keeps it as a terminating endpoint that is not ready.
    let (doomed, doomed_ip) = pods[2].clone();
    let (to_endpoints, to_slice) = tokio.block_on(time_change(
        &client,
        {
            let client = client.clone();
            let doomed = doomed.clone();
            async move {
                let params = rafter_client::DeleteParams::default();
                tokio::spawn(async move {
                    client
                        .delete(Kind::Pod, "default", &doomed, &params)
                        .await
                        .unwrap()
                });
            }
        },
        |pod| {
            pod_name(pod) == doomed && pod.metadata.as_ref().unwrap().deletion_timestamp.is_some()
        },
        |ep| {
            let (ready, not_ready, _) = endpoints(ep);
            !ready.contains(&doomed_ip) && !not_ready.contains(&doomed_ip)
        },
        |slice| !slice_ips(slice).0.contains(&doomed_ip),
    ));
    eprintln!("pod deleted → Endpoints {to_endpoints:?}, EndpointSlice {to_slice:?}");
    assert!(
        to_endpoints < Duration::from_secs(1),
        "the Endpoints followed after {to_endpoints:?}"
    );
    assert!(
        to_slice < Duration::from_secs(1),
        "the EndpointSlice followed after {to_slice:?}"
    );
    // Its replacement joins once Ready.
    eventually(
        "three ready addresses again",
        Duration::from_secs(60),
        || {
            read_endpoints().filter(|ep| {
                let (ready, _, _) = endpoints(ep);
                ready.len() == 3 && !ready.contains(&doomed_ip)
            })
        },
    );

    // Everything goes with the Deployment and Service (the pods first, so no container
    // outlives the test).
    cluster.ok(&["delete", "-f", &file]);
    eventually(
        "the pods, Endpoints and slices gone",
        Duration::from_secs(60),
        || {
            let pods = items(&cluster.json(&["get", "pods", "-l", "app=web"]));
            (pods.is_empty() && read_endpoints().is_none() && read_slices()?.is_empty())
                .then_some(())
        },
    );
}
