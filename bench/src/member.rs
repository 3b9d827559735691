//! `bench member` (hidden): one store member in its own process, serving the small
//! `rafter.bench.v1.BenchKv` gRPC API the benchmark drives.
//!
//! Owns [`MemberArgs`] and the KV service. The member uses the store's default settings
//! (heartbeat 50 ms, elections 150–300 ms, synced log appends) and forwards writes that
//! reach a follower to the leader. Its runtime has the threads it is given (the driver
//! gives each member its share of the CPUs, as `rafter master --worker-threads` can). It
//! stops on SIGTERM/Ctrl-C or when killed.
//!
//! ```text
//!  bench (driver) ──gRPC BenchKv──► member ─► raft_store::Node ══Raft gRPC══► other members
//! ```

use raft_store::WatchReceiver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use raft_store::{Consistency, Node, NodeConfig, NodeError, PutRequest};
use tonic::{Request, Response, Status};

use crate::pb;
use crate::pb::bench_kv_server::{BenchKv, BenchKvServer};

/// `bench member`.
#[derive(Debug, clap::Args)]
pub(crate) struct MemberArgs {
    /// Member id (non-zero).
    #[arg(long)]
    id: u64,
    /// The store's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// The Raft (peer) listener.
    #[arg(long)]
    raft_addr: SocketAddr,
    /// The benchmark KV listener.
    #[arg(long)]
    kv_addr: SocketAddr,
    /// Create the cluster with these voters: ID=RAFT_ADDR,... (first start of one member).
    #[arg(long, value_delimiter = ',')]
    init: Vec<String>,
    /// Threads of the member's async runtime; 0: one per CPU.
    #[arg(long, default_value_t = 0)]
    worker_threads: usize,
    /// Wait out a dead leader's lease (`NodeConfig::fast_failover` off).
    #[arg(long)]
    no_fast_failover: bool,
}

fn parse_members(entries: &[String]) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut members = BTreeMap::new();
    for entry in entries {
        let (id, addr) = entry
            .split_once('=')
            .with_context(|| format!("{entry:?} is not ID=ADDR"))?;
        members.insert(id.parse()?, addr.to_owned());
    }
    Ok(members)
}

/// Runs one member until it is told to stop.
pub(crate) fn run(args: MemberArgs) -> anyhow::Result<()> {
    crate::init_logging();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        runtime.worker_threads(args.worker_threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        let mut config = NodeConfig::new(args.id, &args.data_dir);
        config.listen_addr = args.raft_addr;
        config.forward_writes = true;
        config.fast_failover = !args.no_fast_failover;
        let node = Node::start(config).await?;
        if !args.init.is_empty() {
            node.initialize(parse_members(&args.init)?).await?;
        }
        let service = BenchKvServer::new(KvService { node: node.clone() });
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(service)
            .serve_with_shutdown(args.kv_addr, async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
            })
            .await
            .context("serving the benchmark KV API")?;
        node.shutdown().await?;
        Ok(())
    })
}

struct KvService {
    node: Node,
}

fn status(e: NodeError) -> Status {
    if e.is_retryable() {
        Status::unavailable(e.to_string())
    } else {
        Status::internal(e.to_string())
    }
}

#[tonic::async_trait]
impl BenchKv for KvService {
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutReply>, Status> {
        let pb::PutRequest { key, value } = request.into_inner();
        let reply = self
            .node
            .put(PutRequest::new(key, value))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::PutReply {
            revision: reply.revision,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetReply>, Status> {
        let pb::GetRequest { key, serializable } = request.into_inner();
        let consistency = if serializable {
            Consistency::Serializable
        } else {
            Consistency::Linearizable
        };
        let kv = self.node.get(key, consistency).await.map_err(status)?;
        Ok(Response::new(pb::GetReply {
            found: kv.is_some(),
            value: kv.map(|kv| kv.value).unwrap_or_default(),
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let metrics = self.node.metrics().borrow_watched().clone();
        Ok(Response::new(pb::StatusReply {
            id: self.node.id(),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
        }))
    }
}
