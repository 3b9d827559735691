use std::collections::BTreeMap;

use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use rafter_proto::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectMeta, Service, ServicePort,
    ServiceSpec,
};

use super::{Answer, ClusterZone};

fn service(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32)]) -> Service {
    Service {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }),
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.into(),
            ports: ports
                .iter()
                .map(|(n, p)| ServicePort {
                    name: (*n).into(),
                    protocol: "TCP".into(),
                    port: *p,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn endpoints(ns: &str, name: &str, addresses: &[(&str, &str)], port: (&str, i32)) -> Endpoints {
    Endpoints {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }),
        subsets: vec![EndpointSubset {
            addresses: addresses
                .iter()
                .map(|(ip, host)| EndpointAddress {
                    ip: (*ip).into(),
                    hostname: (*host).into(),
                    ..Default::default()
                })
                .collect(),
            ports: vec![EndpointPort {
                name: port.0.into(),
                port: port.1,
                protocol: "TCP".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn q(text: &str) -> LowerName {
    LowerName::new(&Name::from_ascii(text).unwrap())
}

fn rdata(answer: Answer) -> Vec<String> {
    match answer {
        Answer::Records(records) => {
            let mut out: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
            out.sort();
            out
        }
        other => panic!("expected records, got {other:?}"),
    }
}

fn zone() -> ClusterZone {
    let services = [
        service("dev", "db-service", "10.96.0.20", &[("mysql", 3306)]),
        service("prod", "db-service", "10.96.0.30", &[]),
        service("dev", "pending", "", &[]),
        service("dev", "peers", "None", &[]),
        Service {
            spec: Some(ServiceSpec {
                r#type: "ExternalName".into(),
                external_name: "db.example.com".into(),
                ..Default::default()
            }),
            ..service("dev", "outside", "", &[])
        },
    ];
    let eps = BTreeMap::from([(
        ("dev".to_owned(), "peers".to_owned()),
        endpoints(
            "dev",
            "peers",
            &[("10.244.1.5", "web-0"), ("10.244.2.7", "")],
            ("http", 8080),
        ),
    )]);
    ClusterZone::build("cluster.local", &services, &eps).unwrap()
}

#[test]
fn a_service_resolves_to_its_cluster_ip_in_its_namespace() {
    let zone = zone();
    assert_eq!(
        rdata(zone.answer(&q("db-service.dev.svc.cluster.local."), RecordType::A)),
        ["10.96.0.20"]
    );
    assert_eq!(
        rdata(zone.answer(&q("DB-Service.prod.svc.cluster.local."), RecordType::A)),
        ["10.96.0.30"],
        "names are case-insensitive"
    );
    assert_eq!(
        zone.answer(&q("db-service.dev.svc.cluster.local."), RecordType::AAAA),
        Answer::NoData
    );
    assert_eq!(
        zone.answer(&q("db-service.test.svc.cluster.local."), RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        zone.answer(&q("dev.svc.cluster.local."), RecordType::A),
        Answer::NoData,
        "a namespace exists as a parent name"
    );
    assert_eq!(
        zone.answer(&q("pending.dev.svc.cluster.local."), RecordType::A),
        Answer::NoData,
        "a Service without an address yet exists"
    );
}

#[test]
fn named_ports_have_srv_records_and_cluster_ips_ptr_records() {
    let zone = zone();
    assert_eq!(
        rdata(zone.answer(
            &q("_mysql._tcp.db-service.dev.svc.cluster.local."),
            RecordType::SRV
        )),
        ["0 100 3306 db-service.dev.svc.cluster.local."]
    );
    assert_eq!(
        rdata(zone.answer(&q("20.0.96.10.in-addr.arpa."), RecordType::PTR)),
        ["db-service.dev.svc.cluster.local."]
    );
    assert_eq!(
        zone.answer(&q("99.0.96.10.in-addr.arpa."), RecordType::PTR),
        Answer::Outside,
        "reverse names the zone does not hold are forwarded"
    );
}

#[test]
fn a_headless_service_answers_with_each_ready_endpoint() {
    let zone = zone();
    assert_eq!(
        rdata(zone.answer(&q("peers.dev.svc.cluster.local."), RecordType::A)),
        ["10.244.1.5", "10.244.2.7"]
    );
    assert_eq!(
        rdata(zone.answer(&q("web-0.peers.dev.svc.cluster.local."), RecordType::A)),
        ["10.244.1.5"]
    );
    assert_eq!(
        rdata(zone.answer(&q("10-244-2-7.peers.dev.svc.cluster.local."), RecordType::A)),
        ["10.244.2.7"]
    );
    assert_eq!(
        rdata(zone.answer(
            &q("_http._tcp.peers.dev.svc.cluster.local."),
            RecordType::SRV
        )),
        [
            "0 100 8080 10-244-2-7.peers.dev.svc.cluster.local.",
            "0 100 8080 web-0.peers.dev.svc.cluster.local."
        ]
    );
}

#[test]
fn external_names_are_cnames_and_pod_names_carry_their_address() {
    let zone = zone();
    let Answer::Records(records) = zone.answer(&q("outside.dev.svc.cluster.local."), RecordType::A)
    else {
        panic!("no CNAME");
    };
    assert!(matches!(&records[0].data, RData::CNAME(c) if c.0.to_ascii() == "db.example.com."));
    assert_eq!(
        rdata(zone.answer(&q("10-244-1-5.dev.pod.cluster.local."), RecordType::A)),
        ["10.244.1.5"]
    );
    assert_eq!(
        zone.answer(&q("not-an-ip.dev.pod.cluster.local."), RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        zone.answer(&q("dev.pod.cluster.local."), RecordType::A),
        Answer::NoData
    );
}

#[test]
fn other_names_are_outside_and_bad_domains_are_refused() {
    let zone = zone();
    assert_eq!(
        zone.answer(&q("example.com."), RecordType::A),
        Answer::Outside
    );
    assert_eq!(
        zone.answer(&q("cluster.local.example.com."), RecordType::A),
        Answer::Outside
    );
    let err = ClusterZone::empty("").unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    assert!(ClusterZone::empty("bad..domain").is_err());
}
