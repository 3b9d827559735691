use rafter_proto::v1::{ObjectMeta, Pod, PodDnsConfig, PodDnsConfigOption, PodSpec};

use super::{pod_dns, ClusterDns, DnsSettings};

fn pod(policy: &str, host_network: bool, config: Option<PodDnsConfig>) -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: "p".into(),
            namespace: "dev".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            dns_policy: policy.into(),
            host_network,
            dns_config: config.map(Box::new),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cluster() -> ClusterDns {
    ClusterDns {
        servers: vec!["10.96.0.10".into()],
        domain: "cluster.local".into(),
        host: DnsSettings::parse("nameserver 192.168.1.1\nsearch corp.example\n"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn cluster_first_points_at_the_cluster_dns_with_the_namespace_searched_first() {
    let want = DnsSettings {
        servers: strings(&["10.96.0.10"]),
        searches: strings(&[
            "dev.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
        ]),
        options: strings(&["ndots:5"]),
    };
    assert_eq!(
        pod_dns(&pod("ClusterFirst", false, None), &cluster()),
        Some(want.clone())
    );
    assert_eq!(
        pod_dns(&pod("", false, None), &cluster()),
        Some(want.clone()),
        "the default"
    );
    assert_eq!(
        pod_dns(&pod("ClusterFirstWithHostNet", true, None), &cluster()),
        Some(want)
    );
}

#[test]
fn the_host_network_default_and_no_cluster_dns_use_the_hosts_resolver() {
    assert_eq!(pod_dns(&pod("ClusterFirst", true, None), &cluster()), None);
    assert_eq!(pod_dns(&pod("Default", false, None), &cluster()), None);
    let no_dns = ClusterDns {
        servers: Vec::new(),
        ..cluster()
    };
    assert_eq!(pod_dns(&pod("ClusterFirst", false, None), &no_dns), None);
}

#[test]
fn dns_config_adds_to_the_policy_or_is_all_with_none() {
    let config = PodDnsConfig {
        nameservers: strings(&["1.1.1.1", "10.96.0.10"]),
        searches: strings(&["extra.example"]),
        options: vec![
            PodDnsConfigOption {
                name: "ndots".into(),
                value: Some("2".into()),
            },
            PodDnsConfigOption {
                name: "edns0".into(),
                value: None,
            },
        ],
    };
    let got = pod_dns(
        &pod("ClusterFirst", false, Some(config.clone())),
        &cluster(),
    )
    .unwrap();
    assert_eq!(got.servers, strings(&["10.96.0.10", "1.1.1.1"]));
    assert_eq!(
        got.searches.last().map(String::as_str),
        Some("extra.example")
    );
    assert_eq!(
        got.options,
        strings(&["ndots:2", "edns0"]),
        "a name given again replaces"
    );

    let none = pod_dns(&pod("None", false, Some(config.clone())), &cluster()).unwrap();
    assert_eq!(none.servers, strings(&["1.1.1.1", "10.96.0.10"]));
    assert_eq!(none.searches, strings(&["extra.example"]));

    let default = pod_dns(&pod("Default", false, Some(config)), &cluster()).unwrap();
    assert_eq!(
        default.servers,
        strings(&["192.168.1.1", "1.1.1.1", "10.96.0.10"])
    );
    assert_eq!(
        default.searches,
        strings(&["corp.example", "extra.example"])
    );
}
