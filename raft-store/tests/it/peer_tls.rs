//! Mutual TLS between members: members with certificates from the cluster CA replicate;
//! a member whose certificate comes from another CA never receives the log; and a
//! certificate of the cluster CA that does not name a member (a node's, a user's) gets
//! no Raft call through, forwarded writes and read index included.

use std::collections::BTreeMap;
use std::time::Duration;

use raft_store::{Consistency, Node, NodeConfig, PeerTls, PeerVerifier, PutRequest};
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
    issued(ca, "member")
}

/// Members' certificates have the organization `raft-members`; the verifier asks for it.
struct MembersOnly;

impl PeerVerifier for MembersOnly {
    fn verify(&self, cert_der: &[u8]) -> Result<(), String> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| e.to_string())?;
        let member = cert
            .subject()
            .iter_organization()
            .any(|o| o.as_str().ok() == Some("raft-members"));
        if member {
            Ok(())
        } else {
            Err(format!("{} is not in raft-members", cert.subject()))
        }
    }
}

/// A certificate of `ca` for `name`; members' carry the organization `raft-members`, and
/// the verifier that admits only them.
fn issued(ca: &Ca, name: &str) -> PeerTls {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    if name == "member" {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "raft-members");
    }
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
        verifier: Some(std::sync::Arc::new(MembersOnly)),
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
    // A member that has just won its election refuses proposals (ForwardToLeader) until it
    // has heard from a quorum, so the first write is retried on whichever member leads.
    let leader = eventually("a first write committed over mutual TLS", || async {
        let leader = [&one, &two]
            .into_iter()
            .find(|n| n.leader_term().is_some())?;
        match leader.put(PutRequest::new("k", "v")).await {
            Ok(_) => Some(leader.clone()),
            Err(e) if e.is_retryable() => None,
            Err(e) => panic!("the first write over mutual TLS: {e}"),
        }
    })
    .await;

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
    eventually("the member with a cluster certificate added", || async {
        let leader = [&one, &two]
            .into_iter()
            .find(|n| n.leader_term().is_some())?;
        match leader.add_learner(4, friend.addr().to_owned()).await {
            Ok(()) => Some(()),
            Err(e) if e.is_retryable() => None,
            Err(e) => panic!("adding member 4: {e}"),
        }
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_of_the_cluster_ca_that_names_no_member_gets_no_raft_call_through() {
    use rafter_proto::raft::raft_client::RaftClient;
    use rafter_proto::raft::RaftPayload;
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    init_tracing();
    let ca = ca();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let one = start(1, &dirs[0], member_tls(&ca)).await;
    let two = start(2, &dirs[1], member_tls(&ca)).await;
    let members: BTreeMap<u64, String> =
        [(1, one.addr().to_owned()), (2, two.addr().to_owned())].into();
    one.initialize(members).await.unwrap();
    let leader = eventually("a leader among members", || async {
        [&one, &two]
            .into_iter()
            .find(|n| n.leader_term().is_some())
            .cloned()
    })
    .await;
    eventually("a first write commits", || async {
        leader.put(PutRequest::new("k", "v")).await.ok()
    })
    .await;
    let term = leader.leader_term();
    let revision = leader.revision().await.unwrap();

    let put = raft_store::kv::Command {
        now_ms: 0,
        fence_term: None,
        op: raft_store::kv::Op::Put(PutRequest::new("k", "stolen")),
    };
    let write = bincode::serde::encode_to_vec(&put, bincode::config::standard()).unwrap();
    for outsider in ["system:node:n1", "admin"] {
        let tls = issued(&ca, outsider);
        let channel = Channel::from_shared(format!("https://{}", leader.addr()))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                    .domain_name("127.0.0.1"),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raft = RaftClient::new(channel);
        let payload = |data: &[u8]| RaftPayload {
            data: data.to_vec(),
        };
        let garbage = [0u8; 16];
        let calls = [
            (
                "client_write",
                raft.client_write(payload(&write)).await.map(|_| ()),
            ),
            (
                "read_index",
                raft.read_index(payload(&[])).await.map(|_| ()),
            ),
            (
                "append_entries",
                raft.append_entries(payload(&garbage)).await.map(|_| ()),
            ),
            ("vote", raft.vote(payload(&garbage)).await.map(|_| ())),
            (
                "pre_vote",
                raft.pre_vote(payload(&garbage)).await.map(|_| ()),
            ),
            (
                "install_snapshot",
                raft.install_snapshot(tokio_stream::iter(vec![payload(&garbage)]))
                    .await
                    .map(|_| ()),
            ),
        ];
        for (call, result) in calls {
            let status = result.expect_err(call);
            assert_eq!(
                status.code(),
                tonic::Code::PermissionDenied,
                "{outsider} {call}: {status:?}"
            );
            assert!(status.message().contains(outsider), "{}", status.message());
        }
    }
    assert_eq!(leader.leader_term(), term, "no vote moved the term");
    assert_eq!(
        leader.revision().await.unwrap(),
        revision,
        "nothing was written"
    );
    let kv = leader
        .get("k", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kv.value, b"v");
    for node in [one, two] {
        node.shutdown().await.unwrap();
    }
}
