//! The DNS server on loopback: cluster names answered from the zone over UDP and TCP,
//! other names forwarded (to a second server standing in for the host's resolver), zone
//! changes visible at once, and random or malformed packets answered with FORMERR or
//! dropped while valid queries keep being answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use node_agent::dns::{ClusterZone, DnsServer, Upstream, ZoneHandle};
use rafter_proto::v1::{ObjectMeta, Service, ServiceSpec};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn service(ns: &str, name: &str, ip: &str) -> Service {
    Service {
        metadata: Some(ObjectMeta {
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }),
        spec: Some(ServiceSpec {
            cluster_ip: ip.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn zone(domain: &str, services: &[Service]) -> ClusterZone {
    ClusterZone::build(domain, services, &BTreeMap::new()).unwrap()
}

fn query(id: u16, name: &str, kind: RecordType) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    message.to_vec().unwrap()
}

/// One UDP exchange; `None` if nothing came back within a second.
async fn udp(server: SocketAddr, packet: &[u8]) -> Option<Message> {
    udp_within(server, packet, Duration::from_secs(1)).await
}

/// One UDP exchange; `None` if nothing came back within `limit`.
async fn udp_within(server: SocketAddr, packet: &[u8], limit: Duration) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(packet, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(limit, socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(Message::from_vec(&buf[..n]).expect("the server sent a well-formed message"))
}

/// One TCP exchange (two-byte length prefix).
async fn tcp(server: SocketAddr, packet: &[u8]) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let len = u16::try_from(packet.len()).unwrap().to_be_bytes();
    stream.write_all(&len).await.unwrap();
    stream.write_all(packet).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn addresses(message: &Message) -> Vec<String> {
    let mut out: Vec<String> = message.answers.iter().map(|r| r.data.to_string()).collect();
    out.sort();
    out
}

async fn start(zone: ClusterZone, upstream: &Upstream) -> (DnsServer, ZoneHandle) {
    let handle = ZoneHandle::new(zone);
    let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), handle.clone(), upstream)
        .await
        .unwrap();
    (server, handle)
}

#[tokio::test]
async fn cluster_names_are_answered_over_udp_and_tcp_and_follow_the_zone() {
    let (server, handle) = start(
        zone(
            "cluster.local",
            &[service("dev", "db-service", "10.96.0.20")],
        ),
        &Upstream::None,
    )
    .await;
    let name = "db-service.dev.svc.cluster.local.";
    for reply in [
        udp(server.addr(), &query(7, name, RecordType::A))
            .await
            .unwrap(),
        tcp(server.addr(), &query(8, name, RecordType::A)).await,
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(addresses(&reply), ["10.96.0.20"]);
    }
    let reply = udp(
        server.addr(),
        &query(9, "nope.dev.svc.cluster.local.", RecordType::A),
    )
    .await
    .unwrap();
    assert_eq!(reply.metadata.id, 9);
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    // A new zone (a Service moved) is what the next query sees.
    handle.replace(zone(
        "cluster.local",
        &[service("dev", "db-service", "10.96.0.21")],
    ));
    let reply = udp(server.addr(), &query(10, name, RecordType::A))
        .await
        .unwrap();
    assert_eq!(addresses(&reply), ["10.96.0.21"]);
    // Outside names with no upstream are refused, not invented.
    let reply = udp(server.addr(), &query(11, "example.com.", RecordType::A))
        .await
        .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    server.shutdown().await;
}

#[tokio::test]
async fn other_names_are_forwarded_upstream() {
    // The upstream: a second server, authoritative for another domain.
    let (upstream, _) = start(
        zone("example.test", &[service("x", "www", "192.0.2.8")]),
        &Upstream::None,
    )
    .await;
    let (server, _) = start(
        zone("cluster.local", &[]),
        &Upstream::Servers(vec![upstream.addr()]),
    )
    .await;
    let reply = udp(
        server.addr(),
        &query(21, "www.x.svc.example.test.", RecordType::A),
    )
    .await
    .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.authoritative, "a forwarded answer");
    assert!(reply.metadata.recursion_available);
    assert_eq!(addresses(&reply), ["192.0.2.8"]);
    let reply = udp(
        server.addr(),
        &query(22, "gone.x.svc.example.test.", RecordType::A),
    )
    .await
    .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    // Upstream gone: SERVFAIL once its attempts time out, and cluster names still answer.
    upstream.shutdown().await;
    let reply = udp_within(
        server.addr(),
        &query(23, "other.x.svc.example.test.", RecordType::A),
        Duration::from_secs(10),
    )
    .await
    .expect("an answer once the upstream attempts time out");
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let reply = udp(server.addr(), &query(24, "cluster.local.", RecordType::SOA))
        .await
        .unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn malformed_and_random_packets_never_stop_the_server() {
    let (server, _) = start(
        zone(
            "cluster.local",
            &[service("dev", "db-service", "10.96.0.20")],
        ),
        &Upstream::None,
    )
    .await;
    let valid = query(1, "db-service.dev.svc.cluster.local.", RecordType::A);

    // A well-formed header claiming a question that is not there: FORMERR.
    let mut truncated = valid.clone();
    truncated.truncate(14);
    let reply = udp(server.addr(), &truncated)
        .await
        .expect("an answer to a cut query");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, 1);
    // Two questions in one query: FORMERR.
    let mut two = Message::new(2, MessageType::Query, OpCode::Query);
    two.add_query(Query::query(
        Name::from_ascii("a.cluster.local.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let reply = udp(server.addr(), &two.to_vec().unwrap()).await.unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // A response sent to the server is not answered as a query.
    let mut response = Message::new(3, MessageType::Response, OpCode::Query);
    response.add_query(Query::query(
        Name::from_ascii("a.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let reply = udp(server.addr(), &response.to_vec().unwrap()).await;
    assert!(
        reply.is_none() || reply.is_some_and(|r| r.metadata.response_code == ResponseCode::FormErr),
        "a response is dropped or refused"
    );

    // Random packets, from a fixed seed so a failure can be replayed.
    let seed = std::env::var("RAFTER_DNS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..2000 {
        let len = rng.gen_range(0..600);
        let mut packet: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if rng.gen_bool(0.5) && packet.len() > 12 {
            // Keep a plausible header (one question) so decoding goes deeper.
            packet[2] = 0x01;
            packet[3] = 0x00;
            packet[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        }
        socket.send_to(&packet, server.addr()).await.unwrap();
    }
    // An oversized TCP message (the largest length prefix, then garbage and a hang-up).
    {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(&[0xff, 0xff]).await.unwrap();
        let junk: Vec<u8> = (0..65535).map(|_| rng.gen()).collect();
        stream.write_all(&junk).await.unwrap();
    }
    // Whatever came back to the fuzzing socket parses as a DNS message.
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await
    {
        let reply = Message::from_vec(&buf[..n]).expect("a reply that parses");
        assert_eq!(reply.metadata.message_type, MessageType::Response);
    }
    // And the server still answers, over both transports (seed {seed}).
    let reply = udp(server.addr(), &valid).await.expect("still answering");
    assert_eq!(addresses(&reply), ["10.96.0.20"], "seed {seed}");
    let reply = tcp(server.addr(), &valid).await;
    assert_eq!(addresses(&reply), ["10.96.0.20"], "seed {seed}");
}
