//! Mutual TLS between members: members with certificates from the cluster CA replicate;
//! a member whose certificate comes from another CA never receives the log.

use std::collections::BTreeMap;
use std::time::Duration;

use raft_store::{Consistency, Node, NodeConfig, PeerTls, PutRequest};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType,
};

use crate::cluster::{eventually, init_tracing};

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert_pem = params.self_signed(&key).unwrap().pem();
    Ca {
        cert_pem,
        issuer: Issuer::new(params, key),
    }
}

fn member_tls(ca: &Ca) -> PeerTls {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    PeerTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.cert_pem.clone(),
    }
}

async fn start(id: u64, dir: &tempfile::TempDir, tls: PeerTls) -> Node {
    let mut config = NodeConfig::new(id, dir.path());
    config.tls = Some(tls);
    config.request_timeout = Duration::from_secs(3);
    Node::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_members_with_a_certificate_from_the_cluster_ca_receive_the_log() {
    init_tracing();
    let (cluster_ca, foreign_ca) = (ca(), ca());
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(1, &dirs[0], member_tls(&cluster_ca)).await;
    let two = start(2, &dirs[1], member_tls(&cluster_ca)).await;
    let members: BTreeMap<u64, String> =
        [(1, one.addr().to_owned()), (2, two.addr().to_owned())].into();
    one.initialize(members).await.unwrap();
    let leader = eventually("a leader over mutual TLS", || async {
        [&one, &two]
            .into_iter()
            .find(|n| n.leader_term().is_some())
            .cloned()
    })
    .await;
    leader.put(PutRequest::new("k", "v")).await.unwrap();

    // A stranger with a certificate from another CA is added as a learner and never
    // gets the log: the TLS handshake fails in both directions.
    let stranger = start(3, &dirs[2], member_tls(&foreign_ca)).await;
    // (openraft may report the learner added; what matters is that nothing reaches it.)
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        leader.add_learner(3, stranger.addr().to_owned()),
    )
    .await;

    // A member with a certificate from the cluster CA joins and catches up.
    let friend = start(4, &dirs[3], member_tls(&cluster_ca)).await;
    leader
        .add_learner(4, friend.addr().to_owned())
        .await
        .unwrap();
    let kv = eventually(
        "the member with a cluster certificate applies the log",
        || async { friend.get("k", Consistency::Serializable).await.unwrap() },
    )
    .await;
    assert_eq!(kv.value, b"v");
    // By the time a legitimate newcomer has the log, the stranger still has nothing.
    assert!(stranger
        .get("k", Consistency::Serializable)
        .await
        .unwrap()
        .is_none());
    assert_eq!(stranger.revision().await.unwrap(), 0);
    for node in [one, two, stranger, friend] {
        node.shutdown().await.unwrap();
    }
}
