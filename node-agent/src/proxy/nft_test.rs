//! Tests of the rule text: what a set of Services and Endpoints becomes, affinity, the
//! Local policy, Services without endpoints, removal — and `nft -c` accepting the text.

use super::*;
use crate::proxy::apply::check;
use crate::proxy::model::service_rules;
use crate::proxy::model::tests::state;

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]}";
const WEB_EP: &str = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: shop}\nsubsets:\n- addresses: [{ip: 10.88.0.5, nodeName: a}, {ip: 10.88.0.6, nodeName: b}]\n  ports: [{name: http, port: 8080}]";

fn ruleset(manifests: &[&str], node: &str) -> Ruleset {
    Ruleset::build("rafter", &service_rules(&state(manifests), node))
}

fn rules_of<'a>(text: &'a str, chain: &str) -> Vec<&'a str> {
    let prefix = format!("add rule ip rafter {chain} ");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

#[test]
fn a_node_port_service_with_two_endpoints_renders_the_whole_table() {
    let text = ruleset(&[WEB, WEB_EP], "a").full();
    let want = "\
add table ip rafter
delete table ip rafter
add table ip rafter
add chain ip rafter nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip rafter nat-output { type nat hook output priority -100; policy accept; }
add chain ip rafter nat-postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip rafter filter-input { type filter hook input priority filter - 10; policy accept; }
add chain ip rafter filter-forward { type filter hook forward priority filter - 10; policy accept; }
add chain ip rafter filter-output { type filter hook output priority filter - 10; policy accept; }
add chain ip rafter services
add chain ip rafter no-endpoints
add chain ip rafter ep-shop/web/http/10.88.0.5/8080
add chain ip rafter ep-shop/web/http/10.88.0.6/8080
add chain ip rafter svc-shop/web/http
add chain ip rafter ext-shop/web/http
add rule ip rafter nat-prerouting jump services
add rule ip rafter nat-output jump services
add rule ip rafter nat-postrouting meta mark & 0x4000 == 0 return
add rule ip rafter nat-postrouting meta mark set meta mark ^ 0x4000
add rule ip rafter nat-postrouting masquerade
add rule ip rafter filter-input jump no-endpoints
add rule ip rafter filter-forward jump no-endpoints
add rule ip rafter filter-output jump no-endpoints
add rule ip rafter services ip daddr . meta l4proto . th dport vmap { 10.96.0.10 . tcp . 80 : goto svc-shop/web/http }
add rule ip rafter services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap { tcp . 30080 : goto ext-shop/web/http }
add rule ip rafter ep-shop/web/http/10.88.0.5/8080 ip saddr 10.88.0.5 meta mark set meta mark | 0x4000
add rule ip rafter ep-shop/web/http/10.88.0.5/8080 meta l4proto tcp dnat to 10.88.0.5:8080
add rule ip rafter ep-shop/web/http/10.88.0.6/8080 ip saddr 10.88.0.6 meta mark set meta mark | 0x4000
add rule ip rafter ep-shop/web/http/10.88.0.6/8080 meta l4proto tcp dnat to 10.88.0.6:8080
add rule ip rafter svc-shop/web/http numgen random mod 2 vmap { 0 : goto ep-shop/web/http/10.88.0.5/8080, 1 : goto ep-shop/web/http/10.88.0.6/8080 }
add rule ip rafter ext-shop/web/http meta mark set meta mark | 0x4000
add rule ip rafter ext-shop/web/http goto svc-shop/web/http
";
    assert_eq!(text, want);
}

#[test]
fn client_ip_affinity_keeps_a_timed_set_per_endpoint_checked_before_the_random_pick() {
    let sticky = WEB.replace(
        "clusterIP: 10.96.0.10,",
        "clusterIP: 10.96.0.10, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}},",
    );
    let text = ruleset(&[&sticky, WEB_EP], "a").full();
    assert!(text.contains(
        "add set ip rafter aff-shop/web/http/10.88.0.5/8080/600 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }"
    ));
    assert_eq!(
        rules_of(&text, "svc-shop/web/http"),
        vec![
            "ip saddr @aff-shop/web/http/10.88.0.5/8080/600 goto ep-shop/web/http/10.88.0.5/8080",
            "ip saddr @aff-shop/web/http/10.88.0.6/8080/600 goto ep-shop/web/http/10.88.0.6/8080",
            "numgen random mod 2 vmap { 0 : goto ep-shop/web/http/10.88.0.5/8080, 1 : goto ep-shop/web/http/10.88.0.6/8080 }",
        ]
    );
    assert_eq!(
        rules_of(&text, "ep-shop/web/http/10.88.0.6/8080")[1],
        "update @aff-shop/web/http/10.88.0.6/8080/600 { ip saddr }"
    );
}

#[test]
fn local_policy_spreads_node_port_traffic_over_this_nodes_endpoints_without_masquerade() {
    let local = WEB.replace(
        "type: NodePort,",
        "type: NodePort, externalTrafficPolicy: Local,",
    );
    let text = ruleset(&[&local, WEB_EP], "b").full();
    assert_eq!(
        rules_of(&text, "ext-shop/web/http"),
        vec!["numgen random mod 1 vmap { 0 : goto ep-shop/web/http/10.88.0.6/8080 }"]
    );
    // The ClusterIP still reaches both.
    assert!(rules_of(&text, "svc-shop/web/http")[0].starts_with("numgen random mod 2 "));

    // On a node with none of the endpoints, the NodePort drops (nothing answers).
    let text = ruleset(&[&local, WEB_EP], "c").full();
    assert!(rules_of(&text, "ext-shop/web/http").is_empty());
    assert_eq!(
        rules_of(&text, "no-endpoints"),
        vec!["fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport { tcp . 30080 } drop"]
    );
    assert_eq!(
        rules_of(&text, "services"),
        vec!["ip daddr . meta l4proto . th dport vmap { 10.96.0.10 . tcp . 80 : goto svc-shop/web/http }"]
    );
}

#[test]
fn a_service_without_endpoints_rejects_on_its_cluster_ip_and_node_port() {
    let text = ruleset(&[WEB], "a").full();
    assert!(rules_of(&text, "services").is_empty());
    assert!(!text.contains("svc-shop"));
    assert_eq!(
        rules_of(&text, "no-endpoints"),
        vec![
            "ip daddr . meta l4proto . th dport { 10.96.0.10 . tcp . 80 } reject",
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport { tcp . 30080 } reject",
        ]
    );
}

#[test]
fn load_balancer_ingress_addresses_go_through_the_external_chain() {
    let lb = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, nodePort: 30080}]}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.2}, {ip: 127.0.0.1}]}}";
    let text = ruleset(&[lb, WEB_EP], "a").full();
    assert_eq!(
        rules_of(&text, "services")[0],
        "ip daddr . meta l4proto . th dport vmap { 10.96.0.10 . tcp . 80 : goto svc-shop/web/http, 192.0.2.2 . tcp . 80 : goto ext-shop/web/http }",
        "a loopback ingress is for the userspace listeners, not DNAT"
    );
}

#[test]
fn an_update_flushes_in_place_and_deletes_what_a_removed_service_had() {
    let other = "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {clusterIP: 10.96.0.11, sessionAffinity: ClientIP, ports: [{port: 8080}]}";
    let other_ep = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: api, namespace: shop}\nsubsets: [{addresses: [{ip: 10.88.0.9}], ports: [{port: 9000}]}]";
    let before = ruleset(&[WEB, WEB_EP, other, other_ep], "a");
    let after = ruleset(&[WEB, WEB_EP], "a");
    let text = after.update(&before.names());
    assert!(text.starts_with("add table ip rafter\nflush table ip rafter\n"));
    assert!(!text.contains("delete table"));
    let deleted: Vec<&str> = text.lines().filter(|l| l.starts_with("delete ")).collect();
    assert_eq!(
        deleted,
        vec![
            "delete chain ip rafter ep-shop/api/8080/10.88.0.9/9000",
            "delete chain ip rafter svc-shop/api/8080",
            "delete set ip rafter aff-shop/api/8080/10.88.0.9/9000/10800",
        ]
    );
    // Nothing of the kept Service is deleted, and nothing is left of the removed one.
    assert!(!text.contains("10.96.0.11"));
    assert_eq!(
        after
            .update(&after.names())
            .lines()
            .filter(|l| l.starts_with("delete "))
            .count(),
        0
    );
}

#[tokio::test]
async fn nft_accepts_the_generated_table_in_check_mode() {
    let sticky_local = "apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: shop}\nspec: {type: LoadBalancer, externalTrafficPolicy: Local, sessionAffinity: ClientIP, clusterIP: 10.96.0.12, externalIPs: [198.51.100.7], ports: [{name: a, port: 80, nodePort: 30081}, {name: d, port: 53, protocol: UDP, nodePort: 30053}]}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.2}]}}";
    let sticky_ep = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: lb, namespace: shop}\nsubsets: [{addresses: [{ip: 10.88.0.7, nodeName: a}, {ip: 10.88.0.8, nodeName: b}], ports: [{name: a, port: 8080}, {name: d, port: 5353, protocol: UDP}]}]";
    let empty = "apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: shop}\nspec: {type: NodePort, clusterIP: 10.96.0.13, ports: [{port: 80, nodePort: 30082}]}";
    let command = vec!["nft".to_owned()];
    for node in ["a", "c"] {
        let set = ruleset(&[WEB, WEB_EP, sticky_local, sticky_ep, empty], node);
        if let Err(e) = check(&command, &set.full()).await {
            panic!(
                "nft -c refused the table for node {node}: {e}\n{}",
                set.full()
            );
        }
    }
    // And it refuses what is wrong, naming the problem.
    let err = check(
        &command,
        "add rule ip rafter-missing-table nochain accept\n",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nft failed"), "{err}");
}
