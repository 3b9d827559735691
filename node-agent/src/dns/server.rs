//! The DNS server: answers questions about the cluster domain from the current
//! [`ClusterZone`] and forwards the rest to upstream resolvers (with their cache), over
//! UDP and TCP on one address.
//!
//! ```text
//!   query (UDP / TCP) ─► hickory's server: framing, FORMERR for what does not parse
//!        │ one question, opcode QUERY
//!        ▼
//!   zone.answer(name, type) ── Records / NoData / NxDomain ─► authoritative answer
//!        │ Outside
//!        ▼
//!   upstream resolver (cached) ─► its records, NXDOMAIN, NODATA, or SERVFAIL
//! ```
//!
//! Owns the request handling and the listening sockets; it must not build records (the
//! zone does) nor read the API (the caller swaps zones in through [`ZoneHandle`]).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tracing::{debug, warn};

use super::zone::{Answer, ClusterZone};

/// How long a TCP client may stay silent before its connection is closed.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// The zone the server answers from; replaced whole when Services or endpoints change.
#[derive(Clone)]
pub struct ZoneHandle(Arc<RwLock<Arc<ClusterZone>>>);

impl ZoneHandle {
    /// A handle serving `zone`.
    pub fn new(zone: ClusterZone) -> ZoneHandle {
        ZoneHandle(Arc::new(RwLock::new(Arc::new(zone))))
    }

    /// Serves `zone` from now on.
    pub fn replace(&self, zone: ClusterZone) {
        let zone = Arc::new(zone);
        match self.0.write() {
            Ok(mut current) => *current = zone,
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }

    /// The zone served now.
    pub fn current(&self) -> Arc<ClusterZone> {
        match self.0.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Where names outside the cluster domain are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The host's resolvers (`/etc/resolv.conf`).
    System,
    /// These servers (UDP, then TCP).
    Servers(Vec<SocketAddr>),
    /// Nowhere: such names are refused (REFUSED).
    None,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A socket could not be bound.
    #[error("DNS server on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The upstream resolver could not be set up (the host's configuration unreadable).
    #[error("setting up the upstream resolver: {0}")]
    Upstream(String),
}

/// How long one upstream attempt may take, and how many are made: a pod's resolver asks
/// again itself, so a dead upstream costs it a SERVFAIL in seconds, not a long hang.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(1);
const UPSTREAM_ATTEMPTS: usize = 2;

fn resolver(upstream: &Upstream) -> Result<Option<TokioResolver>, DnsError> {
    let tune = |mut builder: ResolverBuilder<TokioRuntimeProvider>| {
        let options = builder.options_mut();
        options.timeout = UPSTREAM_TIMEOUT;
        options.attempts = UPSTREAM_ATTEMPTS;
        builder
            .build()
            .map(Some)
            .map_err(|e| DnsError::Upstream(e.to_string()))
    };
    match upstream {
        Upstream::None => Ok(None),
        Upstream::System => TokioResolver::builder_tokio()
            .map_err(|e| DnsError::Upstream(e.to_string()))
            .and_then(tune),
        Upstream::Servers(servers) => {
            let servers = servers
                .iter()
                .map(|s| {
                    let connection = |mut c: ConnectionConfig| {
                        c.port = s.port();
                        c
                    };
                    NameServerConfig::new(
                        s.ip(),
                        true,
                        vec![
                            connection(ConnectionConfig::udp()),
                            connection(ConnectionConfig::tcp()),
                        ],
                    )
                })
                .collect();
            let config = ResolverConfig::from_parts(None, vec![], servers);
            tune(TokioResolver::builder_with_config(
                config,
                TokioRuntimeProvider::default(),
            ))
        }
    }
}

/// Answers one request at a time from the zone, or through the upstream resolver.
struct Handler {
    zone: ZoneHandle,
    upstream: Option<TokioResolver>,
}

/// The outcome of one question, before it is written.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        let refuse = |code| Reply {
            code,
            authoritative: false,
            answers: Vec::new(),
        };
        if request.metadata.message_type != MessageType::Query {
            return refuse(ResponseCode::FormErr);
        }
        if request.metadata.op_code != OpCode::Query {
            return refuse(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            // Not exactly one question.
            return refuse(ResponseCode::FormErr);
        };
        let (name, kind) = (info.query.name(), info.query.query_type());
        let answer = self.zone.current().answer(name, kind);
        let authoritative = |code, answers| Reply {
            code,
            authoritative: true,
            answers,
        };
        match answer {
            Answer::Records(records) => authoritative(ResponseCode::NoError, records),
            Answer::NoData => authoritative(ResponseCode::NoError, Vec::new()),
            Answer::NxDomain => authoritative(ResponseCode::NXDomain, Vec::new()),
            Answer::Outside => {
                let Some(upstream) = &self.upstream else {
                    return refuse(ResponseCode::Refused);
                };
                match upstream
                    .lookup(info.query.original().name().clone(), kind)
                    .await
                {
                    Ok(lookup) => Reply {
                        code: ResponseCode::NoError,
                        authoritative: false,
                        answers: lookup.answers().to_vec(),
                    },
                    Err(e) if e.is_nx_domain() => refuse(ResponseCode::NXDomain),
                    Err(e) if e.is_no_records_found() => refuse(ResponseCode::NoError),
                    Err(e) => {
                        debug!(name = %name, error = %e, "upstream did not answer");
                        refuse(ResponseCode::ServFail)
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.code;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = self.upstream.is_some();
        let message = MessageResponseBuilder::new(&request.queries, None).build(
            metadata,
            reply.answers.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                warn!(error = %e, "DNS answer not sent");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                }
                .into()
            }
        }
    }
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    server: Server<Handler>,
    addr: SocketAddr,
}

impl DnsServer {
    /// Serves UDP and TCP on `addr` (port 0: any free port, the same for both), answering
    /// from `zone` and forwarding other names to `upstream`.
    pub async fn start(
        addr: SocketAddr,
        zone: ZoneHandle,
        upstream: &Upstream,
    ) -> Result<DnsServer, DnsError> {
        let bind = |source| DnsError::Bind { addr, source };
        let tcp = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
        let addr = tcp.local_addr().map_err(bind)?;
        let udp = tokio::net::UdpSocket::bind(addr).await.map_err(bind)?;
        let mut server = Server::new(Handler {
            zone,
            upstream: resolver(upstream)?,
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64);
        Ok(DnsServer { server, addr })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the sockets to close.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            debug!(error = %e, "DNS server stopped with an error");
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}
