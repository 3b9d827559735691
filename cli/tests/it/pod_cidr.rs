//! Pod CIDRs on a `rafter up` cluster: the masters' IPAM controller gives every node its
//! own subnet of the cluster CIDR (10.244.0.0/16 in /24s by default).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};

#[test]
fn every_node_gets_its_own_pod_cidr_from_the_cluster_cidr() {
    let cluster = Cluster::start_with("cidr", &["--agents", "2", "--runtime", "process"]);
    let cidrs = eventually("two nodes with pod CIDRs", Duration::from_secs(60), || {
        let nodes = cluster.json(&["get", "nodes"]);
        let cidrs: Vec<String> = nodes["items"]
            .as_array()?
            .iter()
            .filter_map(|n| n["spec"]["podCIDR"].as_str().map(str::to_owned))
            .collect();
        (cidrs.len() == 2).then_some(cidrs)
    });
    let distinct: BTreeSet<&String> = cidrs.iter().collect();
    assert_eq!(distinct.len(), 2, "{cidrs:?}");
    for cidr in &cidrs {
        assert!(
            cidr.starts_with("10.244.") && cidr.ends_with(".0/24"),
            "{cidr} is not a /24 of 10.244.0.0/16"
        );
    }
}
