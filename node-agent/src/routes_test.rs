use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rafter_proto::v1::{Node, NodeAddress, NodeSpec, NodeStatus, ObjectMeta};

use rafter_proto::Ipv4Cidr;

use super::{desired, plan, RouteChange, Skipped};

fn node(name: &str, cidr: &str, ip: &str) -> (String, Node) {
    let node = Node {
        metadata: Some(ObjectMeta {
            name: name.into(),
            ..Default::default()
        }),
        spec: Some(NodeSpec {
            pod_cidr: cidr.into(),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: vec![
                NodeAddress {
                    r#type: "Hostname".into(),
                    address: name.into(),
                },
                NodeAddress {
                    r#type: "InternalIP".into(),
                    address: ip.into(),
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    (name.to_owned(), node)
}

fn subnet(text: &str) -> Ipv4Cidr {
    Ipv4Cidr::parse(text).unwrap()
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

#[test]
fn every_other_node_is_routed_through_its_internal_ip() {
    let nodes: BTreeMap<String, Node> = [
        node("a", "10.244.1.0/24", "10.0.0.1"),
        node("b", "10.244.2.0/24", "10.0.0.2"),
        node("c", "10.244.3.0/24", "10.0.0.3"),
        node("fresh", "", "10.0.0.4"),
    ]
    .into();
    let local = BTreeSet::from([ip("10.0.0.1"), ip("127.0.0.1")]);
    let (routes, skipped) = desired("a", &nodes, &local);
    assert_eq!(
        routes,
        BTreeMap::from([
            (subnet("10.244.2.0/24"), ip("10.0.0.2")),
            (subnet("10.244.3.0/24"), ip("10.0.0.3")),
        ])
    );
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn nodes_of_this_host_get_no_route() {
    // Agents sharing one machine: its bridges already reach each other's pods.
    let nodes: BTreeMap<String, Node> = [
        node("a", "10.244.1.0/24", "192.168.5.10"),
        node("b", "10.244.2.0/24", "192.168.5.10"),
        node("c", "10.244.3.0/24", "127.0.0.1"),
    ]
    .into();
    let local = BTreeSet::from([ip("192.168.5.10")]);
    let (routes, skipped) = desired("a", &nodes, &local);
    assert!(routes.is_empty(), "{routes:?}");
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[test]
fn unusable_nodes_are_skipped_with_the_reason() {
    let nodes: BTreeMap<String, Node> = [
        node("a", "10.244.1.0/24", "10.0.0.1"),
        node("bad", "10.244.2.7/24", "10.0.0.2"),
        node("nameless", "10.244.3.0/24", "not-an-ip"),
        node("clash", "10.244.0.0/16", "10.0.0.4"),
        node("ok", "10.245.0.0/24", "10.0.0.5"),
    ]
    .into();
    let (routes, skipped) = desired("a", &nodes, &BTreeSet::new());
    assert_eq!(
        routes,
        BTreeMap::from([(subnet("10.245.0.0/24"), ip("10.0.0.5"))])
    );
    assert_eq!(
        skipped,
        BTreeMap::from([
            ("bad".to_owned(), Skipped::BadCidr("10.244.2.7/24".into())),
            ("nameless".to_owned(), Skipped::NoAddress),
            (
                "clash".to_owned(),
                Skipped::Overlaps(subnet("10.244.1.0/24"))
            ),
        ])
    );
    assert_eq!(
        skipped["clash"].to_string(),
        "its podCIDR overlaps this node's 10.244.1.0/24"
    );
}

#[test]
fn the_plan_adds_moves_and_removes_only_what_differs() {
    let current = BTreeMap::from([
        (subnet("10.244.2.0/24"), ip("10.0.0.2")),
        (subnet("10.244.3.0/24"), ip("10.0.0.3")),
        (subnet("10.244.9.0/24"), ip("10.0.0.9")),
    ]);
    let desired = BTreeMap::from([
        (subnet("10.244.2.0/24"), ip("10.0.0.2")),
        (subnet("10.244.3.0/24"), ip("10.0.0.33")),
        (subnet("10.244.4.0/24"), ip("10.0.0.4")),
    ]);
    assert_eq!(
        plan(&current, &desired),
        vec![
            RouteChange::Delete(subnet("10.244.9.0/24")),
            RouteChange::Replace(subnet("10.244.3.0/24"), ip("10.0.0.33")),
            RouteChange::Replace(subnet("10.244.4.0/24"), ip("10.0.0.4")),
        ]
    );
    assert!(plan(&desired, &desired).is_empty());
}
